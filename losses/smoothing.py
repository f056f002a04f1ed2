"""Haversine label smoothing (PIGEON, Haas et al. 2024) for cell classification.

A training point x gets a soft target over all K cells instead of a one-hot label::

    target_i = exp(-(d(g_i, x) - min_j d(g_j, x)) / tau)

where g_i are the cell centroids, d the great-circle distance in km and tau in km (default 75).
The nearest cell gets 1, cells 1 tau farther get 1/e, and so on. PIGEON uses these unnormalised
targets directly in a cross-entropy; ``normalize=True`` divides each row by its sum (a proper
distribution). Distances come from ``geocell.haversine_matrix`` (the fast chord + asin path).

Example:
    >>> t = haversine_smoothing_targets([0.0], [0.0], [0.0, 0.0], [0.0, 1.0], tau_km=75.0)
    >>> t.round(4).tolist()   # 1 degree of longitude on the equator = 111.195 km
    [[1.0, 0.227]]
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from geocell.constants import EARTH_RADIUS_KM
from geocell.geodesy import haversine_matrix

from ._checks import check_latlon_1d, check_positive

__all__ = ["haversine_smoothing_targets", "HaversineSmoothingLoss", "DEFAULT_TAU_KM"]

#: PIGEON's smoothing temperature, km.
DEFAULT_TAU_KM = 75.0

#: Torch path: exponents below this are flushed to a target of exactly 0. exp(-87) = 1.6e-38 is
#: the smallest normal float32; below it torch's exp() produces subnormals, which cost ~20x more
#: CPU time per element (measured: 46-64 ms instead of 2.3-3.3 ms for 2.56M float32 values on
#: one core) and carry no weight in any loss. (d - d_min) > 87 tau: beyond 6,525 km at 75 km.
_EXPONENT_FLOOR = -87.0
#: Targets at or below this (exp(-86.5) = 2.7e-38, safely above the clamped exp(-87) in every
#: dtype) are set to 0.
_FLOOR_VALUE = float(np.exp(_EXPONENT_FLOOR + 0.5))


def _as_array(x: Any) -> Any:
    """Tensors stay tensors; anything else becomes a floating numpy array."""
    if isinstance(x, torch.Tensor):
        return x
    a = np.asarray(x)
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)


def haversine_smoothing_targets(
    lat: Any,
    lon: Any,
    cell_lat: Any,
    cell_lon: Any,
    tau_km: float = DEFAULT_TAU_KM,
    normalize: bool = False,
    radius_km: float = EARTH_RADIUS_KM,
) -> Any:
    """PIGEON's haversine-smoothed soft targets.

    Args:
        lat, lon: (B,) true locations, degrees.
        cell_lat, cell_lon: (K,) cell centroids, degrees.
        tau_km: temperature, km (> 0).
        normalize: divide each row by its sum (rows sum to 1); PIGEON uses False.
        radius_km: sphere radius (PIGEON: 6378.137 in one place; the mean radius by default).

    Returns:
        (B, K) targets in [0, 1], the row maximum exactly 1 at the nearest centroid (unnormalised);
        numpy or torch like the inputs (torch if any input is a tensor), no gradient. On the
        torch path targets below exp(-86.5) = 2.7e-38 (cells more than 86.5 tau farther than
        the nearest one) are exactly 0: float32 cannot hold them as normal numbers, and torch's
        exp computes subnormal results ~20x slower per element. (numpy's exp has no such slow
        path, so the numpy path returns them as computed.)

    Raises:
        ValueError: tau_km <= 0, shapes that are not (B,) / (K,) pairs, NaN or out-of-range
        coordinates.
    """
    tau = check_positive(tau_km, "tau_km")
    lat, lon, cell_lat, cell_lon = (_as_array(v) for v in (lat, lon, cell_lat, cell_lon))
    check_latlon_1d(lat, lon, "lat/lon")
    check_latlon_1d(cell_lat, cell_lon, "cell_lat/cell_lon")
    if cell_lat.shape[0] == 0:
        raise ValueError("at least one cell centroid is needed")
    if any(isinstance(v, torch.Tensor) for v in (lat, lon, cell_lat, cell_lon)):
        with torch.no_grad():
            d = haversine_matrix(lat, lon, cell_lat, cell_lon, radius_km=radius_km)
            # exponent (d_min - d) / tau in one pass, in place: d_min / tau + (-1 / tau) * d
            torch.add(d.amin(dim=1, keepdim=True) / tau, d, alpha=-1.0 / tau, out=d)
            d.clamp_(min=_EXPONENT_FLOOR).exp_()
            torch.nn.functional.threshold_(d, _FLOOR_VALUE, 0.0)
            if normalize:
                d.div_(d.sum(dim=1, keepdim=True))
        return d
    d = haversine_matrix(lat, lon, cell_lat, cell_lon, radius_km=radius_km)
    np.subtract(d.min(axis=1, keepdims=True), d, out=d)
    d *= 1.0 / tau
    np.exp(d, out=d)  # numpy's exp has no subnormal slow path: no floor needed (measured)
    if normalize:
        d /= d.sum(axis=1, keepdims=True)
    return d


class HaversineSmoothingLoss(nn.Module):
    """Cross-entropy of cell logits against haversine-smoothed targets.

    ``loss = mean_b( -sum_i target_bi * log_softmax(logits_b)_i )``.

    Args:
        cell_lat, cell_lon: (K,) cell centroids, degrees (stored as buffers).
        tau_km: temperature, km (> 0).
        normalize: normalised targets instead of PIGEON's unnormalised ones.
        reduction: ``"mean"`` over the batch, ``"sum"``, or ``"none"`` for (B,) values.

    Shapes: ``forward(logits (B, K), lat (B,), lon (B,))`` with degrees -> a scalar (nats, scaled
    by the target mass per row when unnormalised).

    Raises:
        ValueError: tau_km <= 0, mismatched shapes, NaN coordinates.

    Example:
        >>> loss = HaversineSmoothingLoss([0.0, 10.0], [0.0, 10.0])
        >>> value = loss(torch.zeros(3, 2), torch.zeros(3), torch.zeros(3))
        >>> value.shape
        torch.Size([])
    """

    def __init__(
        self,
        cell_lat: Any,
        cell_lon: Any,
        tau_km: float = DEFAULT_TAU_KM,
        normalize: bool = False,
        reduction: Literal["mean", "sum", "none"] = "mean",
        radius_km: float = EARTH_RADIUS_KM,
    ) -> None:
        super().__init__()
        self.tau_km = check_positive(tau_km, "tau_km")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        lat = torch.as_tensor(np.array(cell_lat, dtype=np.float64), dtype=torch.float32)
        lon = torch.as_tensor(np.array(cell_lon, dtype=np.float64), dtype=torch.float32)
        check_latlon_1d(lat, lon, "cell_lat/cell_lon")
        self.register_buffer("cell_lat", lat, persistent=False)
        self.register_buffer("cell_lon", lon, persistent=False)
        self.normalize = bool(normalize)
        self.reduction = reduction
        self.radius_km = float(radius_km)

    def targets(self, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
        """(B, K) soft targets for true locations (B,) in degrees."""
        return haversine_smoothing_targets(
            lat, lon, self.cell_lat, self.cell_lon, self.tau_km, self.normalize, self.radius_km
        )

    def forward(self, logits: torch.Tensor, lat: torch.Tensor, lon: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2 or logits.shape[1] != self.cell_lat.shape[0]:
            raise ValueError(
                f"logits must have shape (B, {self.cell_lat.shape[0]}), got {tuple(logits.shape)}"
            )
        lat = torch.as_tensor(lat, device=logits.device)
        lon = torch.as_tensor(lon, device=logits.device)
        if lat.shape != (logits.shape[0],):
            raise ValueError(f"lat must have shape ({logits.shape[0]},) like the logits' batch, got {tuple(lat.shape)}")
        target = self.targets(lat.to(self.cell_lat.dtype), lon.to(self.cell_lat.dtype)).to(logits.dtype)
        loss = -(target * torch.log_softmax(logits, dim=-1)).sum(dim=-1)
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
