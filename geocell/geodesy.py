"""Distances and positions on the Earth, for numpy arrays and torch tensors alike.

Every function broadcasts like a numpy ufunc, takes latitude before longitude, works in degrees
and kilometres, and returns a Python float when every input is a scalar. Each formula is written
once against the array API (``array_api_compat``): a torch tensor in gives a torch tensor out on
the same device and with autograd intact; torch is never imported by this module.

NaN propagates as in numpy; use :func:`geocell.validate.check_latlon` to reject bad
coordinates up front.

Example:
    >>> from geocell import haversine
    >>> round(haversine(48.8566, 2.3522, 51.5074, -0.1278))   # Paris -> London, km
    344
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np
from array_api_compat import array_namespace, is_torch_array

from .constants import (
    ACCURACY_THRESHOLDS_KM,
    EARTH_RADIUS_KM,
    GEOSCORE_MAX,
    GEOSCORE_SCALE_KM,
)

__all__ = [
    "haversine",
    "haversine_matrix",
    "geodesic",
    "latlon_to_xyz",
    "xyz_to_latlon",
    "spherical_mean",
    "destination",
    "geoguessr_score",
    "accuracy_at",
]

_DEG = math.pi / 180.0
_RAD = 180.0 / math.pi

#: Above this value of sin(angle/2) (within ~570 km of the antipode) asin is ill-conditioned in
#: float32, so haversine_matrix recomputes those entries from the antipodal chord.
_NEAR_ANTIPODE_HALF_CHORD = 0.999


def _as_arrays(*values: Any) -> tuple[Any, list[Any], bool]:
    """Return (namespace, arrays, all_scalar) for a mix of scalars, numpy arrays and tensors.

    Python numbers and lists become float64 numpy arrays; numpy integer arrays become float64;
    if any value is a torch tensor the others are converted to tensors of its dtype and device.
    """
    all_scalar = all(np.ndim(v) == 0 and not is_torch_array(v) for v in values)
    tensors = [v for v in values if is_torch_array(v)]
    if tensors:
        ref = tensors[0]
        import torch  # only reached when the caller already uses torch

        dtype = ref.dtype if ref.is_floating_point() else torch.get_default_dtype()
        arrays = [torch.as_tensor(v, dtype=dtype, device=ref.device) for v in values]
    else:
        arrays = []
        for v in values:
            a = np.asarray(v)
            if not np.issubdtype(a.dtype, np.floating):
                try:
                    a = a.astype(np.float64)
                except (TypeError, ValueError) as exc:
                    raise TypeError(f"expected numbers, got {a.dtype} values such as {a.flat[0]!r}") from exc
            arrays.append(a)
    return array_namespace(*arrays), arrays, all_scalar


def _out(x: Any, all_scalar: bool) -> Any:
    return float(x) if all_scalar else x


def haversine(lat1: Any, lon1: Any, lat2: Any, lon2: Any, *, radius_km: float = EARTH_RADIUS_KM) -> Any:
    """Great-circle distance on a sphere, km.

    Args:
        lat1, lon1: first points, degrees; any broadcastable shape.
        lat2, lon2: second points, degrees; broadcastable with the first.
        radius_km: sphere radius; the mean Earth radius by default (pass 6371.0 or 6378.137 to
            reproduce projects that use those).

    Returns:
        Distances in km with the broadcast shape (float for scalar inputs). Within 0.56% of the
        WGS84 ellipsoidal distance everywhere (see :func:`geodesic`).

    Example:
        >>> haversine([0.0, 0.0], [0.0, 0.0], [0.0, 90.0], [180.0, 0.0]).round(1)
        array([20015.1, 10007.6])
    """
    xp, (lat1, lon1, lat2, lon2), scalar = _as_arrays(lat1, lon1, lat2, lon2)
    phi1, phi2 = lat1 * _DEG, lat2 * _DEG
    sin_dlat = xp.sin((phi2 - phi1) * 0.5)
    sin_dlon = xp.sin((lon2 - lon1) * (_DEG * 0.5))
    a = sin_dlat * sin_dlat + xp.cos(phi1) * xp.cos(phi2) * sin_dlon * sin_dlon
    d = (2.0 * radius_km) * xp.asin(xp.sqrt(xp.clip(a, 0.0, 1.0)))
    return _out(d, scalar)


def latlon_to_xyz(lat: Any, lon: Any) -> Any:
    """Unit vectors on the sphere, shape ``(..., 3)`` (x towards 0N 0E, z towards the north pole).

    Example:
        >>> latlon_to_xyz(0.0, 90.0).round(6).tolist()
        [0.0, 1.0, 0.0]
    """
    xp, (lat, lon), _ = _as_arrays(lat, lon)
    lat, lon = xp.broadcast_arrays(lat, lon)
    phi, lam = lat * _DEG, lon * _DEG
    cos_phi = xp.cos(phi)
    return xp.stack([cos_phi * xp.cos(lam), cos_phi * xp.sin(lam), xp.sin(phi)], axis=-1)


def xyz_to_latlon(xyz: Any) -> tuple[Any, Any]:
    """Inverse of :func:`latlon_to_xyz`: ``(..., 3)`` vectors (any non-zero length) -> (lat, lon).

    Longitudes come back in [-180, 180]. A zero vector gives lat 0, lon 0.
    """
    xp, (xyz,), _ = _as_arrays(xyz)
    if xyz.shape[-1] != 3:
        raise ValueError(f"xyz must have a last axis of length 3, got shape {tuple(xyz.shape)}")
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lat = xp.atan2(z, xp.sqrt(x * x + y * y)) * _RAD
    lon = xp.atan2(y, x) * _RAD
    return lat, lon


def _chord_matrix(xyz_a: Any, xyz_b: Any) -> Any:
    """Euclidean distances (N, K) between unit vectors, from differences (no cancellation)."""
    if is_torch_array(xyz_a):
        import torch

        return torch.cdist(xyz_a, xyz_b, compute_mode="donot_use_mm_for_euclid_dist")
    from scipy.spatial.distance import cdist

    return cdist(xyz_a, xyz_b).astype(np.result_type(xyz_a, xyz_b), copy=False)


def haversine_matrix(
    lat_a: Any, lon_a: Any, lat_b: Any, lon_b: Any, *, radius_km: float = EARTH_RADIUS_KM
) -> Any:
    """All pairwise great-circle distances between two point sets, km, shape ``(N, K)``.

    The fast path for label smoothing: points become unit vectors, the chord ``c = |a - b|`` is
    taken from coordinate differences (``torch.cdist`` without the matrix-product shortcut, or
    scipy's ``cdist``), and the distance is ``2 R asin(c / 2)``. A dot product + ``acos`` would be
    faster but loses short distances in float32 (``1 - cos`` cancels: about 3 km of error near
    0 km); differences keep the float32 error within a few metres. Near the antipode, where asin
    is ill-conditioned, entries are recomputed from the antipodal chord ``|a + b|``. In float32
    the absolute error stays below 1 km at every distance (tested against float64).

    Args:
        lat_a, lon_a: ``(N,)`` degrees.
        lat_b, lon_b: ``(K,)`` degrees (e.g. cell centroids).
        radius_km: sphere radius.

    Returns:
        ``(N, K)`` distances in km, numpy or torch like the inputs.

    Example:
        >>> haversine_matrix([0.0], [0.0], [0.0, 0.0], [90.0, 180.0]).round(1)
        array([[10007.6, 20015.1]])
    """
    xp, (lat_a, lon_a, lat_b, lon_b), _ = _as_arrays(lat_a, lon_a, lat_b, lon_b)
    for name, arr in (("lat_a", lat_a), ("lon_a", lon_a), ("lat_b", lat_b), ("lon_b", lon_b)):
        if arr.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {tuple(arr.shape)}")
    xyz_a, xyz_b = latlon_to_xyz(lat_a, lon_a), latlon_to_xyz(lat_b, lon_b)
    chord = _chord_matrix(xyz_a, xyz_b)
    if is_torch_array(chord) and not chord.requires_grad:
        # no autograd to keep: work in place on the fresh (N, K) buffer (fewer passes over memory)
        half_chord = chord.mul_(0.5).clamp_(max=1.0)
        near_antipode = half_chord > _NEAR_ANTIPODE_HALF_CHORD
        dist = half_chord.asin_().mul_(2.0 * radius_km)
    elif not is_torch_array(chord):
        half_chord = np.clip(np.multiply(chord, 0.5, out=chord), 0.0, 1.0, out=chord)
        near_antipode = half_chord > _NEAR_ANTIPODE_HALF_CHORD
        dist = np.multiply(np.arcsin(half_chord, out=half_chord), 2.0 * radius_km, out=half_chord)
    else:
        half_chord = xp.clip(chord * 0.5, 0.0, 1.0)
        near_antipode = half_chord > _NEAR_ANTIPODE_HALF_CHORD
        dist = (2.0 * radius_km) * xp.asin(half_chord)
    if bool(xp.any(near_antipode)):
        if is_torch_array(near_antipode):
            rows, cols = near_antipode.nonzero(as_tuple=True)
        else:
            rows, cols = np.nonzero(near_antipode)
        anti = xyz_a[rows, :] + xyz_b[cols, :]
        half_anti = xp.clip(xp.sqrt(xp.sum(anti * anti, axis=-1)) * 0.5, 0.0, 1.0)
        dist[rows, cols] = (math.pi * radius_km) - (2.0 * radius_km) * xp.asin(half_anti)
    return dist


def geodesic(lat1: Any, lon1: Any, lat2: Any, lon2: Any, *, ellps: str = "WGS84") -> Any:
    """Distance on an ellipsoid (WGS84 by default) through pyproj's ``Geod.inv``, km.

    About 20x slower than :func:`haversine`; use it as the reference. Tensors are computed on the
    CPU in float64 and returned as tensors (no gradient).

    Example:
        >>> round(geodesic(0.0, 0.0, 0.0, 1.0), 3)   # one degree along the equator
        111.319
    """
    from pyproj import Geod

    xp, arrays, scalar = _as_arrays(lat1, lon1, lat2, lon2)
    torch_like = arrays[0] if is_torch_array(arrays[0]) else None
    np_arrays = [np.asarray(a.detach().cpu()) if is_torch_array(a) else a for a in arrays]
    lat1, lon1, lat2, lon2 = np.broadcast_arrays(*[a.astype(np.float64) for a in np_arrays])
    shape = lat1.shape
    _, _, metres = Geod(ellps=ellps).inv(
        np.ascontiguousarray(lon1).ravel(),
        np.ascontiguousarray(lat1).ravel(),
        np.ascontiguousarray(lon2).ravel(),
        np.ascontiguousarray(lat2).ravel(),
    )
    km = np.asarray(metres, dtype=np.float64).reshape(shape) / 1000.0
    if torch_like is not None:
        import torch

        return torch.as_tensor(km, dtype=torch_like.dtype, device=torch_like.device)
    return _out(km, scalar)


def spherical_mean(
    lat: Any, lon: Any, weights: Any | None = None, *, axis: int = -1
) -> tuple[Any, Any]:
    """Mean position on the sphere: the normalised (weighted) mean of unit vectors.

    Unlike averaging degrees, this is correct across the antimeridian and near the poles.

    Args:
        lat, lon: degrees, reduced along ``axis``.
        weights: optional non-negative weights broadcastable to ``lat``.
        axis: axis to reduce.

    Returns:
        (lat, lon) in degrees with ``axis`` removed.

    Raises:
        ValueError: if the mean vector is (numerically) zero, e.g. two antipodal points, where the
            mean position is undefined.

    Example:
        >>> [round(v, 6) for v in spherical_mean([10.0, 10.0], [179.0, -179.0])]
        [10.001493, 180.0]
    """
    xyz = latlon_to_xyz(lat, lon)
    xp = array_namespace(xyz)
    xyz_axis = axis - 1 if axis < 0 else axis  # the same axis of xyz, which has a trailing (3,)
    if weights is None:
        w = xp.ones_like(xyz[..., 0])
    else:
        _, (w,), _ = _as_arrays(weights)
        if bool(xp.any(w < 0)):
            raise ValueError("weights must be non-negative")
        w = xp.broadcast_to(w, xyz.shape[:-1])
    total = xp.sum(xyz * w[..., None], axis=xyz_axis)
    norm = xp.sqrt(xp.sum(total * total, axis=-1))
    if bool(xp.any(norm <= 1e-9 * xp.sum(w, axis=axis))):
        raise ValueError(
            "the spherical mean is undefined: the unit vectors cancel out (e.g. antipodal points)"
            " or all weights are zero"
        )
    lat_out, lon_out = xyz_to_latlon(total)
    scalar = np.ndim(lat_out) == 0 and not is_torch_array(lat_out)
    return _out(lat_out, scalar), _out(lon_out, scalar)


def destination(
    lat: Any, lon: Any, bearing_deg: Any, distance_km: Any, *, radius_km: float = EARTH_RADIUS_KM
) -> tuple[Any, Any]:
    """Point reached from (lat, lon) along a great circle with an initial bearing, on a sphere.

    Args:
        lat, lon: start, degrees.
        bearing_deg: initial bearing, degrees clockwise from north.
        distance_km: distance travelled, km.

    Returns:
        (lat, lon) in degrees, longitude normalised to [-180, 180).

    Example:
        >>> [round(v, 4) for v in destination(0.0, 0.0, 90.0, 10007.557)]
        [0.0, 90.0]
    """
    xp, (lat, lon, bearing, dist), scalar = _as_arrays(lat, lon, bearing_deg, distance_km)
    phi, theta, delta = lat * _DEG, bearing * _DEG, dist / radius_km
    sin_phi2 = xp.sin(phi) * xp.cos(delta) + xp.cos(phi) * xp.sin(delta) * xp.cos(theta)
    phi2 = xp.asin(xp.clip(sin_phi2, -1.0, 1.0))
    dlam = xp.atan2(
        xp.sin(theta) * xp.sin(delta) * xp.cos(phi), xp.cos(delta) - xp.sin(phi) * sin_phi2
    )
    lon2 = (lon + dlam * _RAD + 180.0) % 360.0 - 180.0
    return _out(phi2 * _RAD, scalar), _out(lon2, scalar)


def geoguessr_score(
    distance_km: Any, *, scale_km: float = GEOSCORE_SCALE_KM, max_score: float = GEOSCORE_MAX
) -> Any:
    """GeoGuessr points for a guess ``distance_km`` away: ``max_score * exp(-d / scale_km)``.

    Example:
        >>> round(geoguessr_score(1492.7), 1)
        1839.4
    """
    xp, (d,), scalar = _as_arrays(distance_km)
    return _out(max_score * xp.exp(-d / scale_km), scalar)


def accuracy_at(
    distance_km: Any,
    *,
    thresholds: Iterable[float] = ACCURACY_THRESHOLDS_KM,
    inclusive: bool = True,
) -> Mapping[float, float]:
    """Fraction of errors within each threshold (the street/city/region/country/continent table).

    Args:
        distance_km: ``(N,)`` errors in km (numpy or torch); NaN is rejected.
        thresholds: km.
        inclusive: count ``d <= t`` (default) or ``d < t`` (some papers use ``<``).

    Returns:
        ``{threshold_km: fraction in [0, 1]}`` in the order given.

    Example:
        >>> accuracy_at([0.5, 30.0, 800.0], thresholds=(1, 25, 1000))
        {1: 0.3333333333333333, 25: 0.3333333333333333, 1000: 1.0}
    """
    d = np.asarray(distance_km.detach().cpu() if is_torch_array(distance_km) else distance_km, dtype=np.float64)
    d = d.reshape(-1)
    if d.size == 0:
        raise ValueError("accuracy_at needs at least one distance")
    bad = np.flatnonzero(~np.isfinite(d) | (d < 0))
    if bad.size:
        raise ValueError(f"distance_km[{bad[0]}] = {d[bad[0]]!r}: expected a finite distance >= 0 km")
    compare = np.less_equal if inclusive else np.less
    return {t: float(np.mean(compare(d, t))) for t in thresholds}
