"""Held-out region ids: the clusters of a spatially disjoint split, for the cluster bootstrap.

A spatial split (:func:`geocell_engine.data.splits.spatial_split`) holds out whole regions: every
validation/test point lies within ``region_km`` of its region's seed, and seeds are at least
``2 region_km + buffer_km`` apart. Hence

- two held-out points of the same region are at most ``2 region_km`` apart, and
- two held-out points of different regions are at least ``buffer_km`` apart
  (``(2 r + b) - r - r``).

When ``2 region_km < buffer_km`` the regions are exactly the connected components of the
held-out points linked at any distance in between: :func:`link_regions` links at the midpoint.
So the region of each point follows from the coordinates alone, and bluemarble-v1's frozen
manifests (whose sha256s stay as they are) determine its regions: 150 km regions, 363 km buffer,
linked at 331.5 km. :func:`bluemarble_regions` does this for a split, and
:func:`bluemarble_clusters` maps prediction ids to regions.

A region is named by the smallest point id among its members, so the id of a region does not
depend on which subset of points is passed (val alone, test alone, or both).

Example:
    >>> import numpy as np
    >>> from geocell.geodesy import destination
    >>> lat, lon = destination([0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 20.0, 20.0], [0, 90, 0, 90], [0, 100, 0, 100])
    >>> link_regions(lat, lon, [7, 3, 10, 12], link_km=331.5).tolist()
    [3, 3, 10, 10]
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from geocell.validate import check_latlon
from geocell_engine.errors import SplitError

__all__ = [
    "link_regions",
    "region_link_km",
    "bluemarble_regions",
    "bluemarble_clusters",
    "dataset_clusters",
]


def region_link_km(region_km: float, buffer_km: float) -> float:
    """The link distance that recovers the regions of a spatial split: the midpoint of
    ``(2 region_km, buffer_km)``, km.

    Raises:
        SplitError: ``2 region_km >= buffer_km``: then two regions can come as close as two
            points of one region, and coordinates alone do not determine the regions.
    """
    if not (2.0 * region_km < buffer_km):
        raise SplitError(
            f"regions of {region_km:g} km radius with a {buffer_km:g} km buffer cannot be recovered from "
            f"coordinates: points of one region can be {2 * region_km:g} km apart, points of two regions "
            f"only {buffer_km:g} km; need 2 * region_km < buffer_km")
    return (2.0 * region_km + buffer_km) / 2.0


def link_regions(lat: Any, lon: Any, ids: Any, *, link_km: float) -> np.ndarray:
    """Connected components of points linked when at most ``link_km`` apart (great circle).

    Args:
        lat, lon: ``(N,)`` degrees of the held-out points.
        ids: ``(N,)`` int point ids; a component is named by its smallest id.
        link_km: km.

    Returns:
        ``(N,)`` int64 region ids.

    Pairs are found with a k-d tree on unit vectors (the chord is monotone in the great-circle
    distance) and components with :func:`scipy.sparse.csgraph.connected_components`.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    from geocell.constants import EARTH_RADIUS_KM
    from geocell.geodesy import latlon_to_xyz

    lat_a, lon_a, _ = check_latlon(lat, lon)
    lat_a, lon_a = lat_a.reshape(-1), lon_a.reshape(-1)
    ids_a = np.asarray(ids).reshape(-1)
    if ids_a.size != lat_a.size:
        raise SplitError(f"{ids_a.size} ids for {lat_a.size} points")
    if ids_a.dtype.kind not in "iu":
        raise SplitError(f"ids must be integers, got dtype {ids_a.dtype}")
    if not (np.isfinite(link_km) and link_km > 0):
        raise SplitError(f"link_km must be a positive number of km, got {link_km!r}")
    n = lat_a.size
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    chord = 2.0 * np.sin(min(link_km / EARTH_RADIUS_KM, np.pi) / 2.0)
    pairs = cKDTree(latlon_to_xyz(lat_a, lon_a)).query_pairs(chord, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, label = connected_components(graph, directed=False)
    smallest = np.full(label.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(smallest, label, ids_a.astype(np.int64))
    return smallest[label]


def bluemarble_regions(split, spec=None) -> np.ndarray:
    """Region ids of the points of a bluemarble validation or test split.

    Args:
        split: a :class:`~geocell_engine.data.bluemarble.BlueMarbleSplit` (``"val"`` or
            ``"test"``), or anything with ``lat``, ``lon`` and int ``ids`` of held-out points.
        spec: the definition (default :data:`~geocell_engine.data.bluemarble.BLUEMARBLE_V1`):
            its ``region_km`` and ``buffer_km`` give the link distance.

    Returns:
        ``(N,)`` int64: each point's region, named by its smallest point id. For bluemarble-v1:
        68 test regions and 68 validation regions (``info.json``'s ``stats.regions``).

    Raises:
        SplitError: the training split (it has no regions), or a spec whose regions cannot be
            recovered from coordinates.
    """
    from geocell_engine.data.bluemarble import BLUEMARBLE_V1

    spec = BLUEMARBLE_V1 if spec is None else spec
    if getattr(split, "split", None) == "train":
        raise SplitError("the training split has no held-out regions; pass the val or test split")
    return link_regions(split.lat, split.lon, np.asarray(split.ids).astype(np.int64),
                        link_km=region_link_km(spec.region_km, spec.buffer_km))


def bluemarble_clusters(ids: Any, cache_dir: str | os.PathLike | None = None, spec=None) -> np.ndarray:
    """The held-out region of each bluemarble sample id (what the cluster bootstrap needs).

    Reads the data set's manifests from the cache (building it on first use, as
    :func:`~geocell_engine.data.bluemarble.load_bluemarble` does). A version whose ``split.csv``
    records the region of each point (bluemarble-v2) gives those ids; otherwise (v1) the
    validation and test points are linked together (they are ``buffer_km`` apart, so no region
    mixes the two).

    Args:
        ids: ``(N,)`` point ids (ints or their strings, as in ``Predictions.ids`` and
            ``predictions.csv``) of validation or test samples.

    Returns:
        ``(N,)`` int64 region ids.

    Raises:
        SplitError: an id that is not a validation or test point of the data set (named).
    """
    from geocell_engine.data import bluemarble as bm

    spec = bm.BLUEMARBLE_V1 if spec is None else spec
    folder = bm._dataset_dir(spec, cache_dir)
    if not folder.is_dir():
        bm.build_bluemarble(folder, spec)
    bm._read_info(folder, spec)
    points = bm._read_points(folder)
    held = points.split != "train"
    if points.region is not None:
        region = np.asarray(points.region, dtype=np.int64)[held]
    else:
        region = link_regions(points.lat[held], points.lon[held], points.ids[held],
                              link_km=region_link_km(spec.region_km, spec.buffer_km))
    lookup = dict(zip(points.ids[held].tolist(), region.tolist()))
    raw = np.asarray(ids).reshape(-1)
    try:
        keys = raw.astype(np.int64) if raw.dtype.kind in "iu" else np.array([int(str(v)) for v in raw], dtype=np.int64)
    except ValueError as exc:
        raise SplitError(f"{spec.name} ids are integers; got {exc}") from exc
    out = np.empty(keys.size, dtype=np.int64)
    for j, key in enumerate(keys.tolist()):
        if key not in lookup:
            where = "a training point" if key in set(points.ids[~held].tolist()) else "not a point"
            raise SplitError(f"id {key} (index {j}) is {where} of {spec.name}; regions exist for val/test points only")
        out[j] = lookup[key]
    return out


def dataset_clusters(data: str, ids: Any, cache_dir: str | os.PathLike | None = None) -> np.ndarray | None:
    """The resampling clusters of a data set's validation / test samples, or None.

    What ``train`` and ``evaluate`` give the cluster bootstrap: for a bundled bluemarble version
    (``"bluemarble-v1"``, ``"bluemarble-v2"``) the held-out region of each sample id
    (:func:`bluemarble_clusters`); for any other data (a manifest) None: its samples are
    resampled one by one.

    Args:
        data: the data set name or manifest path, as ``--data`` takes it.
        ids: ``(N,)`` sample ids (ints or strings) of validation or test samples.

    Raises:
        SplitError: a bluemarble id that is not a validation / test point (named).

    Example:
        >>> dataset_clusters("my_manifest.csv", ["a", "b"]) is None
        True
    """
    from geocell_engine.data.bluemarble import BLUEMARBLE_VERSIONS

    if str(data) not in BLUEMARBLE_VERSIONS:
        return None
    return bluemarble_clusters(ids, cache_dir=cache_dir, spec=BLUEMARBLE_VERSIONS[str(data)])
