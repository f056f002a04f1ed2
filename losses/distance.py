"""Clipped distance regression for the ``distance`` head, with the identity term and a sampler
that balances near and far (image, anchor) pairs.

Targets are great-circle distances from the image's true location to each anchor, clipped at
``clip_km`` (default 1110 km = 10 degrees of arc). With a few hundred anchors spread over the
globe almost every pair is "far" (target = the clip), so an unweighted loss teaches the head to
output the clip everywhere. The loss therefore gives the near pairs (true distance < clip) and the
far pairs of each image fixed shares of its weight (``near_fraction``, default one half), and
:class:`NearFarPairSampler` can pick a balanced subset of pairs per image so that the head only
scores those (``DistanceHead.forward(features, anchor_index=...)``).

The identity term: the discriminator applied to an image paired with itself must say 0 km
(``DistanceOutput.self_distance_km``); it anchors the scale of the embedding space.

Example:
    >>> import torch
    >>> from heads import DistanceHead
    >>> head = DistanceHead(8, anchor_lat=[0.0, 5.0, 60.0], anchor_lon=[0.0, 5.0, 100.0])
    >>> criterion = ClippedDistanceLoss.from_head(head)
    >>> lat, lon = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 3.0])
    >>> sampler = NearFarPairSampler(pairs_per_image=2, seed=0)
    >>> idx = sampler.sample(lat, lon, head.anchor_lat, head.anchor_lon)
    >>> loss = criterion(head(torch.randn(2, 8), anchor_index=idx), lat, lon)
    >>> loss.shape
    torch.Size([])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from geocell.constants import EARTH_RADIUS_KM
from geocell.geodesy import haversine_matrix

from ._checks import check_batch, check_fraction, check_latlon_1d, check_positive

__all__ = ["ClippedDistanceLoss", "DistanceLossTerms", "NearFarPairSampler", "DEFAULT_CLIP_KM"]

#: 10 degrees of arc on the mean-radius sphere, km.
DEFAULT_CLIP_KM = 1110.0

RegressionKind = Literal["l1", "mse", "smooth_l1"]


@dataclass(frozen=True)
class DistanceLossTerms:
    """The parts of :class:`ClippedDistanceLoss` (dimensionless: distances divided by the clip).

    Attributes:
        pairs: the balanced (image, anchor) regression term.
        identity: the identity term (image paired with itself -> 0 km), unweighted.
        total: ``pairs + identity_weight * identity``.
    """

    pairs: torch.Tensor
    identity: torch.Tensor
    total: torch.Tensor


def _float32(values: Any) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        return values.detach().to(torch.float32).reshape(-1)
    return torch.as_tensor(np.array(values, dtype=np.float64), dtype=torch.float32).reshape(-1)


def _anchor_tensors(anchor_lat: Any, anchor_lon: Any) -> tuple[torch.Tensor, torch.Tensor]:
    lat, lon = _float32(anchor_lat), _float32(anchor_lon)
    check_latlon_1d(lat, lon, "anchor_lat/anchor_lon")
    if lat.numel() == 0:
        raise ValueError("at least one anchor is needed")
    return lat, lon


def _true_distances(
    lat: torch.Tensor, lon: torch.Tensor, anchor_lat: torch.Tensor, anchor_lon: torch.Tensor,
    anchor_index: Optional[torch.Tensor], radius_km: float,
) -> torch.Tensor:
    with torch.no_grad():
        d = haversine_matrix(lat.to(anchor_lat), lon.to(anchor_lon), anchor_lat, anchor_lon, radius_km=radius_km)
        return d if anchor_index is None else d.gather(1, anchor_index)


class NearFarPairSampler:
    """Picks ``pairs_per_image`` anchors per image, ``near_fraction`` of them near.

    Near means a true distance below ``near_km`` (the clip by default). When an image has too few
    near anchors the remaining slots take far ones (and vice versa); anchors are drawn without
    replacement, so ``pairs_per_image`` may not exceed the number of anchors. The loss re-weights
    whatever it gets, so the near/far balance of the *loss* holds even then.

    Args:
        pairs_per_image: n, anchors per image.
        near_fraction: share of the n slots reserved for near anchors.
        near_km: near/far threshold, km.
        seed: seed of the sampler's own torch generator (None: torch's global one).

    Example:
        >>> s = NearFarPairSampler(pairs_per_image=2, seed=0)
        >>> s.sample(torch.tensor([0.0]), torch.tensor([0.0]),
        ...          torch.tensor([0.0, 0.0, 50.0]), torch.tensor([1.0, 2.0, 50.0])).shape
        torch.Size([1, 2])
    """

    def __init__(
        self,
        pairs_per_image: int = 32,
        near_fraction: float = 0.5,
        near_km: float = DEFAULT_CLIP_KM,
        seed: Optional[int] = None,
        radius_km: float = EARTH_RADIUS_KM,
    ) -> None:
        if not isinstance(pairs_per_image, int) or pairs_per_image < 1:
            raise ValueError(f"pairs_per_image must be a positive int, got {pairs_per_image!r}")
        self.pairs_per_image = pairs_per_image
        self.near_fraction = check_fraction(near_fraction, "near_fraction")
        self.near_km = check_positive(near_km, "near_km")
        self.radius_km = float(radius_km)
        self.generator = None if seed is None else torch.Generator().manual_seed(int(seed))

    def sample(
        self, lat: torch.Tensor, lon: torch.Tensor, anchor_lat: torch.Tensor, anchor_lon: torch.Tensor
    ) -> torch.Tensor:
        """(B,) true locations and (M,) anchors, degrees -> (B, n) long anchor indices."""
        lat, lon = torch.as_tensor(lat), torch.as_tensor(lon)
        check_latlon_1d(lat, lon, "lat/lon")
        num_anchors = int(_float32(anchor_lat).numel())
        n = self.pairs_per_image
        if n > num_anchors:
            raise ValueError(f"pairs_per_image={n} exceeds the number of anchors ({num_anchors})")
        anchor_lat, anchor_lon = _float32(anchor_lat), _float32(anchor_lon)
        d = _true_distances(lat, lon, anchor_lat, anchor_lon, None, self.radius_km)
        near = d < self.near_km
        keys = torch.rand(d.shape, generator=self.generator).to(d.device)
        n_near = int(round(n * self.near_fraction))
        # smallest keys first: near anchors (keys < 1) before far ones (keys >= 2) as fallback
        near_pick = (keys + 2.0 * (~near)).topk(n_near, dim=1, largest=False).indices if n_near else None
        far_keys = keys + 2.0 * near
        if near_pick is not None:
            far_keys = far_keys.scatter(1, near_pick, 8.0)  # never pick an anchor twice
        far_pick = far_keys.topk(n - n_near, dim=1, largest=False).indices if n > n_near else None
        picks = [p for p in (near_pick, far_pick) if p is not None]
        return torch.cat(picks, dim=1)


class ClippedDistanceLoss(nn.Module):
    """Regression of clipped great-circle distances, near/far balanced, plus the identity term.

    For pairs (b, m) with predicted distance p (km, in [0, clip]) and true distance t (km)::

        e_bm    = f(p_bm / clip - min(t_bm, clip) / clip)        f: l1 | mse | smooth_l1
        pairs   = mean_b [ near_fraction * mean_{near m} e_bm + (1 - near_fraction) * mean_{far m} e_bm ]
        identity = mean_b f(self_distance_b / clip)               (target 0 km)
        loss    = pairs + identity_weight * identity

    (An image without near pairs, or without far pairs, puts its whole weight on the other group.)

    Args:
        anchor_lat, anchor_lon: (M,) anchor positions, degrees (as the head's).
        clip_km: the clip (> 0), km; use the head's.
        identity_weight: weight of the identity term (>= 0; 0 switches it off).
        near_fraction: the near pairs' share of each image's weight, in [0, 1].
        kind: the per-pair penalty.
        radius_km: sphere radius for the true distances.

    Shapes: ``forward(output, lat (B,), lon (B,))`` where ``output`` is a
    :class:`heads.DistanceOutput` (or a (B, M) / (B, n) tensor of km with ``anchor_index`` and
    ``self_distance_km`` given separately) -> scalar.

    Raises:
        ValueError: clip_km <= 0, negative identity_weight, mismatched shapes, NaN coordinates.
    """

    def __init__(
        self,
        anchor_lat: Any,
        anchor_lon: Any,
        clip_km: float = DEFAULT_CLIP_KM,
        identity_weight: float = 1.0,
        near_fraction: float = 0.5,
        kind: RegressionKind = "l1",
        radius_km: float = EARTH_RADIUS_KM,
    ) -> None:
        super().__init__()
        lat, lon = _anchor_tensors(anchor_lat, anchor_lon)
        self.register_buffer("anchor_lat", lat, persistent=False)
        self.register_buffer("anchor_lon", lon, persistent=False)
        self.clip_km = check_positive(clip_km, "clip_km")
        if not (np.isfinite(identity_weight) and identity_weight >= 0):
            raise ValueError(f"identity_weight must be >= 0, got {identity_weight!r}")
        self.identity_weight = float(identity_weight)
        self.near_fraction = check_fraction(near_fraction, "near_fraction")
        if kind not in ("l1", "mse", "smooth_l1"):
            raise ValueError(f"kind must be 'l1', 'mse' or 'smooth_l1', got {kind!r}")
        self.kind = kind
        self.radius_km = float(radius_km)

    @classmethod
    def from_head(cls, head: Any, **kwargs: Any) -> "ClippedDistanceLoss":
        """Take the anchors and the clip from a :class:`heads.DistanceHead`."""
        kwargs.setdefault("clip_km", head.clip_km)
        return cls(head.anchor_lat, head.anchor_lon, **kwargs)

    def _penalty(self, err: torch.Tensor) -> torch.Tensor:
        if self.kind == "l1":
            return err.abs()
        if self.kind == "mse":
            return err * err
        return F.smooth_l1_loss(err, torch.zeros_like(err), reduction="none", beta=0.05)

    def terms(
        self,
        output: Any,
        lat: torch.Tensor,
        lon: torch.Tensor,
        anchor_index: Optional[torch.Tensor] = None,
        self_distance_km: Optional[torch.Tensor] = None,
    ) -> DistanceLossTerms:
        """The loss and its parts; arguments as :meth:`forward`."""
        if isinstance(output, torch.Tensor):
            pred = output
        else:
            pred = output.distance_km
            anchor_index = output.anchor_index if anchor_index is None else anchor_index
            self_distance_km = output.self_distance_km if self_distance_km is None else self_distance_km
        lat = torch.as_tensor(lat, device=pred.device)
        lon = torch.as_tensor(lon, device=pred.device)
        check_latlon_1d(lat, lon, "lat/lon")
        check_batch(pred, lat, "ClippedDistanceLoss")
        if anchor_index is None:
            if pred.dim() != 2 or pred.shape[1] != self.anchor_lat.numel():
                raise ValueError(
                    f"predictions must have shape (B, {self.anchor_lat.numel()}) without anchor_index,"
                    f" got {tuple(pred.shape)}"
                )
        elif tuple(anchor_index.shape) != tuple(pred.shape):
            raise ValueError(
                f"anchor_index shape {tuple(anchor_index.shape)} differs from predictions {tuple(pred.shape)}"
            )
        true = _true_distances(lat, lon, self.anchor_lat, self.anchor_lon, anchor_index, self.radius_km)
        near = true < self.clip_km
        target = torch.clamp(true, max=self.clip_km) / self.clip_km
        err = self._penalty(pred / self.clip_km - target.to(pred.dtype))
        n_near = near.sum(dim=1, keepdim=True)
        n_far = near.shape[1] - n_near
        w_near = torch.where(n_far > 0, self.near_fraction, 1.0) / n_near.clamp_min(1)
        w_far = torch.where(n_near > 0, 1.0 - self.near_fraction, 1.0) / n_far.clamp_min(1)
        weight = torch.where(near, w_near, w_far).to(pred.dtype)
        pairs = (weight * err).sum(dim=1).mean()
        if self_distance_km is None:
            identity = pred.new_zeros(())
        else:
            if tuple(self_distance_km.shape) != (pred.shape[0],):
                raise ValueError(
                    f"self_distance_km must have shape ({pred.shape[0]},), got {tuple(self_distance_km.shape)}"
                )
            identity = self._penalty(self_distance_km / self.clip_km).mean()
        return DistanceLossTerms(pairs, identity, pairs + self.identity_weight * identity)

    def forward(
        self,
        output: Any,
        lat: torch.Tensor,
        lon: torch.Tensor,
        anchor_index: Optional[torch.Tensor] = None,
        self_distance_km: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Scalar loss.

        Args:
            output: a :class:`heads.DistanceOutput`, or predicted distances (B, M) / (B, n) km.
            lat, lon: (B,) true locations, degrees.
            anchor_index: (B, n) anchors of the predictions (taken from ``output`` if it has them).
            self_distance_km: (B,) identity-pair predictions (taken from ``output``); without
                them the identity term is 0.
        """
        return self.terms(output, lat, lon, anchor_index, self_distance_km).total
