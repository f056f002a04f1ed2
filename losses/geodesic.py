"""Losses for the ``latlon`` head: mean great-circle error and MSE on unit vectors.

Both accept the head's output (anything with ``xyz``, or ``lat`` and ``lon``) or a (B, 3) tensor
of vectors (normalised here), and true coordinates in degrees.

Example:
    >>> import torch
    >>> from geocell import latlon_to_xyz
    >>> pred = latlon_to_xyz(torch.tensor([0.0]), torch.tensor([1.0]))      # (1, 3)
    >>> round(float(GeodesicLoss()(pred, torch.tensor([0.0]), torch.tensor([0.0]))), 2)
    111.2
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from geocell.constants import EARTH_RADIUS_KM
from geocell.geodesy import haversine, latlon_to_xyz, xyz_to_latlon

from ._checks import check_batch, check_latlon_1d

__all__ = ["GeodesicLoss", "UnitVectorMSELoss"]

Reduction = Literal["mean", "sum", "none"]


def _reduce(values: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _pred_xyz(pred: Any) -> torch.Tensor:
    if not isinstance(pred, torch.Tensor):
        if hasattr(pred, "xyz"):
            pred = pred.xyz
        else:
            return latlon_to_xyz(pred.lat, pred.lon)
    if pred.dim() != 2 or pred.shape[1] != 3:
        raise ValueError(f"predicted vectors must have shape (B, 3), got {tuple(pred.shape)}")
    if not bool(torch.isfinite(pred).all()):
        raise ValueError("predicted vectors contain NaN or infinite values")
    return pred / pred.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _targets(lat: Any, lon: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lat = torch.as_tensor(lat, device=like.device).to(like.dtype)
    lon = torch.as_tensor(lon, device=like.device).to(like.dtype)
    check_latlon_1d(lat, lon, "lat/lon")
    check_batch(like, lat, "target coordinates")
    return lat, lon


class GeodesicLoss(nn.Module):
    """Mean great-circle distance between predicted and true points, km.

    The prediction is decoded with ``geocell.xyz_to_latlon`` and measured with
    ``geocell.haversine``. Its gradient is undefined only where the prediction equals the target
    exactly (the distance's kink at 0) or sits exactly on a pole; neither happens with float
    predictions in practice.

    Args:
        radius_km: sphere radius.
        reduction: ``"mean"`` (km), ``"sum"`` or ``"none"`` ((B,) km).

    Shapes: ``forward(pred (B, 3) or head output, lat (B,), lon (B,))`` degrees -> km.

    Raises:
        ValueError: wrong shapes, NaN coordinates or predictions.
    """

    def __init__(self, radius_km: float = EARTH_RADIUS_KM, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.radius_km = float(radius_km)
        self.reduction = reduction

    def forward(self, pred: Any, lat: Any, lon: Any) -> torch.Tensor:
        xyz = _pred_xyz(pred)
        lat, lon = _targets(lat, lon, xyz)
        p_lat, p_lon = xyz_to_latlon(xyz)
        return _reduce(haversine(p_lat, p_lon, lat, lon, radius_km=self.radius_km), self.reduction)


class UnitVectorMSELoss(nn.Module):
    """Squared Euclidean distance between predicted and true unit vectors.

    ``|p - t|^2 = 4 sin^2(theta / 2)`` for the angle theta between them: dimensionless, 0 for a
    perfect guess, 4 for the antipode. Smooth everywhere (no kink at 0, no trouble at the poles),
    so it is the easier loss to start training with; :class:`GeodesicLoss` weighs large errors
    linearly instead of saturating.

    Args:
        reduction: ``"mean"`` over the batch, ``"sum"`` or ``"none"`` ((B,)).

    Shapes: ``forward(pred (B, 3) or head output, lat (B,), lon (B,))`` degrees -> scalar.

    Raises:
        ValueError: wrong shapes, NaN coordinates or predictions.
    """

    def __init__(self, reduction: Reduction = "mean") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    def forward(self, pred: Any, lat: Any, lon: Any) -> torch.Tensor:
        xyz = _pred_xyz(pred)
        lat, lon = _targets(lat, lon, xyz)
        diff = xyz - latlon_to_xyz(lat, lon)
        return _reduce((diff * diff).sum(dim=-1), self.reduction)
