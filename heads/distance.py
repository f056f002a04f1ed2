"""The ``distance`` head: a pairwise discriminator between an image and fixed anchors.

Anchors are places with fixed positions (country centroids, cell centroids) and *learned*
embeddings. For every (image, anchor) pair the head predicts the great-circle distance from the
image's location to the anchor, clipped at ``clip_km`` (default 1110 km, 10 degrees of arc):
``distance = clip_km * sigmoid(mlp(image_embedding, anchor_embedding))``, so outputs always lie
in [0, clip_km]. The same discriminator applied to the image paired with itself gives the
*identity term* (target 0 km; see :class:`losses.ClippedDistanceLoss`).

The pair MLP's first layer acts on the concatenation ``[image, anchor]``, which splits into
``W_i image + W_a anchor``: both halves are computed once (B x H and M x H) and broadcast, so all
B x M pairs cost one (B, M, H) ReLU and one H-vector dot product.

Locating an image from its predicted distances (both are offered and compared in
``benchmarks/bench_model.py``): :func:`nearest_anchor` takes the anchor with the smallest
predicted distance; :func:`multilaterate` fits the clipped model by weighted least squares on the
sphere, ``min_x sum_m w_m (min(d(x, a_m), clip) - p_m)^2``, from the best-fitting anchors
(multi-start) refined by Levenberg-Marquardt steps in the tangent plane.

Example:
    >>> import torch
    >>> head = DistanceHead(16, anchor_lat=[0.0, 10.0, 50.0], anchor_lon=[0.0, 20.0, 5.0])
    >>> out = head(torch.randn(2, 16))
    >>> out.distance_km.shape, bool((out.distance_km <= 1110.0).all())
    (torch.Size([2, 3]), True)
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

import numpy as np
import torch
from torch import nn

from geocell.constants import EARTH_RADIUS_KM
from geocell.geodesy import haversine_matrix, latlon_to_xyz, xyz_to_latlon
from losses.distance import DEFAULT_CLIP_KM

from .outputs import DistanceOutput
from .registry import Head, register_head

__all__ = ["DistanceHead", "multilaterate", "nearest_anchor", "DEFAULT_CLIP_KM"]


@register_head("distance")
class DistanceHead(Head):
    """Features (B, F) -> clipped distances (B, M) to M anchors, km.

    Args:
        in_features: F.
        anchor_lat, anchor_lon: (M,) anchor positions, degrees (fixed buffers).
        clip_km: output scale and the clip of the targets.
        embed_dim: width D of the image and anchor embeddings.
        hidden: width H of the pair MLP.
        anchor_labels: optional names of the anchors (e.g. ``adm0_a3`` codes).

    Raises:
        ValueError: bad anchor coordinates, clip_km <= 0.
    """

    def __init__(
        self,
        in_features: int,
        anchor_lat: Any,
        anchor_lon: Any,
        clip_km: float = DEFAULT_CLIP_KM,
        embed_dim: int = 64,
        hidden: int = 64,
        anchor_labels: Optional[Sequence[str]] = None,
    ) -> None:
        super().__init__(in_features)
        lat = torch.as_tensor(np.array(anchor_lat, dtype=np.float64), dtype=torch.float32).reshape(-1)
        lon = torch.as_tensor(np.array(anchor_lon, dtype=np.float64), dtype=torch.float32).reshape(-1)
        if lat.numel() != lon.numel() or lat.numel() < 1:
            raise ValueError(f"anchor_lat and anchor_lon must be non-empty and equally long, got {lat.numel()} and {lon.numel()}")
        if not bool(((lat.abs() <= 90) & torch.isfinite(lon)).all()):
            raise ValueError("anchor coordinates must be finite with latitude in [-90, 90]")
        if not clip_km > 0:
            raise ValueError(f"clip_km must be > 0, got {clip_km!r}")
        if embed_dim < 1 or hidden < 1:
            raise ValueError(f"embed_dim and hidden must be >= 1, got {embed_dim} and {hidden}")
        self.num_anchors = lat.numel()
        self.clip_km = float(clip_km)
        self.labels = None if anchor_labels is None else tuple(str(v) for v in anchor_labels)
        if self.labels is not None and len(self.labels) != self.num_anchors:
            raise ValueError(f"anchor_labels has {len(self.labels)} names for {self.num_anchors} anchors")
        self.register_buffer("anchor_lat", lat)
        self.register_buffer("anchor_lon", lon)
        self.proj = nn.Linear(in_features, embed_dim)
        self.anchor_embedding = nn.Parameter(torch.randn(self.num_anchors, embed_dim) * embed_dim**-0.5)
        self.pair_image = nn.Linear(embed_dim, hidden)
        self.pair_anchor = nn.Linear(embed_dim, hidden, bias=False)
        self.pair_out = nn.Linear(hidden, 1)

    def _score(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        h = torch.relu(left + right)
        return (h @ self.pair_out.weight.squeeze(0)) + self.pair_out.bias

    def forward(self, features: torch.Tensor, anchor_index: Optional[torch.Tensor] = None) -> DistanceOutput:
        """features (B, F); anchor_index (B, n) long to score only those pairs (training with a
        :class:`losses.NearFarPairSampler`), or None for all M anchors."""
        image = self.proj(features)  # (B, D)
        left = self.pair_image(image)  # (B, H)
        right = self.pair_anchor(self.anchor_embedding)  # (M, H)
        if anchor_index is None:
            pair = right.unsqueeze(0)
        else:
            if anchor_index.dim() != 2 or anchor_index.shape[0] != features.shape[0]:
                raise ValueError(
                    f"anchor_index must have shape (B={features.shape[0]}, n), got {tuple(anchor_index.shape)}"
                )
            pair = right[anchor_index]  # (B, n, H)
        logits = self._score(left.unsqueeze(1), pair)
        self_logits = self._score(left, self.pair_anchor(image))
        return DistanceOutput(
            distance_km=self.clip_km * torch.sigmoid(logits),
            self_distance_km=self.clip_km * torch.sigmoid(self_logits),
            anchor_index=anchor_index,
        )

    def localise(
        self, output: DistanceOutput, method: Literal["multilateration", "nearest_anchor"] = "multilateration"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(lat, lon) in degrees, (B,) each, from an output over all anchors."""
        if output.anchor_index is not None:
            raise ValueError("localise needs distances to all anchors (forward without anchor_index)")
        if method == "nearest_anchor":
            return nearest_anchor(output.distance_km, self.anchor_lat, self.anchor_lon)
        if method == "multilateration":
            return multilaterate(output.distance_km, self.anchor_lat, self.anchor_lon, clip_km=self.clip_km)
        raise ValueError(f"method must be 'multilateration' or 'nearest_anchor', got {method!r}")


def nearest_anchor(
    distance_km: torch.Tensor, anchor_lat: torch.Tensor, anchor_lon: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Position of the anchor with the smallest predicted distance: (B, M) -> (B,), (B,) degrees."""
    best = distance_km.argmin(dim=-1)
    return anchor_lat[best], anchor_lon[best]


def _objective_terms(
    x: torch.Tensor, anchors_lat: torch.Tensor, anchors_lon: torch.Tensor, p: torch.Tensor,
    weight: torch.Tensor, clip_km: float, radius_km: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """At points x (B, 3): distances d (B, M) km, residuals min(d, clip) - p, their slopes in d
    (1 below the clip, 0 beyond), objective (B,)."""
    lat, lon = xyz_to_latlon(x)
    d = haversine_matrix(lat, lon, anchors_lat, anchors_lon, radius_km=radius_km)
    resid = torch.clamp(d, max=clip_km) - p
    slope = (d < clip_km).to(d.dtype)
    return d, resid, slope, (weight * resid * resid).sum(-1)


@torch.no_grad()
def multilaterate(
    distance_km: torch.Tensor,
    anchor_lat: torch.Tensor,
    anchor_lon: torch.Tensor,
    clip_km: float = DEFAULT_CLIP_KM,
    iterations: int = 10,
    starts: int = 4,
    noise_floor_km: float = 50.0,
    max_step_fraction: float = 0.25,
    radius_km: float = EARTH_RADIUS_KM,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted multilateration on the sphere from predicted clipped distances.

    Minimises ``f(x) = sum_m w_m (min(d(x, a_m), clip_km) - p_m)^2`` over points x on the
    sphere, the least-squares fit of the clipped model the head was trained on, with
    ``w_m = 1 / (noise_floor_km + p_m)^2`` (errors of predicted distances grow with the distance).
    Saturated anchors say only "at least clip_km away": they push x away when it comes closer
    and are otherwise silent.

    ``f`` has flat regions (a near anchor that x has left behind beyond the clip exerts no pull),
    so the search starts from the ``starts`` anchor positions with the lowest ``f`` (every anchor
    is scored, from the anchor-to-anchor distance matrix with matrix products), runs
    Levenberg-Marquardt steps in the tangent plane from each (float64, batched 3x3 solves; a step
    is kept only if it lowers ``f``; at most ``max_step_fraction * clip_km`` per step) and keeps
    the best end point. All distances come from ``geocell.haversine_matrix``.

    Args:
        distance_km: (B, M) predicted distances, km.
        anchor_lat, anchor_lon: (M,) degrees.
        clip_km: the clip the distances were trained with.
        iterations: Levenberg-Marquardt steps.
        starts: number of start anchors per image.
        noise_floor_km: additive part of the assumed error of a predicted distance.
        max_step_fraction: largest step, as a fraction of the clip.

    Returns:
        (lat, lon): (B,) degrees, dtype of ``distance_km``.
    """
    if distance_km.dim() != 2 or distance_km.shape[1] != anchor_lat.numel():
        raise ValueError(
            f"distance_km must have shape (B, {anchor_lat.numel()}), got {tuple(distance_km.shape)}"
        )
    batch, num_anchors = distance_km.shape
    p = distance_km.detach().double()
    a_lat, a_lon = anchor_lat.detach().double().to(p.device), anchor_lon.detach().double().to(p.device)
    anchors = latlon_to_xyz(a_lat, a_lon)  # (M, 3)
    weight = (noise_floor_km + p).pow(-2)
    # score every anchor as a start: f(a_j) = sum_m w_m (c_jm - p_m)^2 with c = min(anchor
    # distances, clip), expanded into matrix products (sum w p^2 is the same for every j)
    c = torch.clamp(haversine_matrix(a_lat, a_lon, a_lat, a_lon, radius_km=radius_km), max=clip_km)
    start_cost = weight @ (c * c).t() - 2.0 * (weight * p) @ c.t()
    s = max(1, min(int(starts), num_anchors))
    start = start_cost.topk(s, dim=-1, largest=False).indices  # (B, S)
    x = anchors[start.reshape(-1)]  # (B * S, 3): every start is a row of its own
    p, weight = p.repeat_interleave(s, dim=0), weight.repeat_interleave(s, dim=0)
    lam = torch.full_like(p[:, 0], 1e-3)
    max_step = max_step_fraction * clip_km / radius_km
    eye = torch.eye(3, dtype=p.dtype, device=p.device)
    d, resid, slope, cost = _objective_terms(x, a_lat, a_lon, p, weight, clip_km, radius_km)
    for _ in range(iterations):
        theta = d / radius_km
        sin_t = torch.sin(theta)
        ok = sin_t > 1e-9
        # unit tangent at x towards each anchor: (a - cos(theta) x) / sin(theta); moving x by a
        # small angle along it shortens the distance by radius_km per radian
        tangent = anchors.unsqueeze(0) - torch.cos(theta).unsqueeze(-1) * x.unsqueeze(1)
        scale = torch.where(ok, -radius_km * slope / torch.where(ok, sin_t, torch.ones_like(sin_t)), torch.zeros_like(sin_t))
        jac = tangent * scale.unsqueeze(-1)  # d(residual km) / d(step rad), (B*S, M, 3)
        wj = jac * weight.unsqueeze(-1)
        normal = torch.einsum("bmi,bmj->bij", wj, jac)
        grad = torch.einsum("bmi,bm->bi", wj, resid)
        trace = normal.diagonal(dim1=-2, dim2=-1).sum(-1) / 3.0 + 1e-3
        system = normal + (lam * trace)[:, None, None] * eye + x.unsqueeze(-1) * x.unsqueeze(-2)
        step = -torch.linalg.solve(system, grad.unsqueeze(-1)).squeeze(-1)
        step = step - (step * x).sum(-1, keepdim=True) * x
        length = step.norm(dim=-1, keepdim=True)
        step = step * torch.clamp(max_step / length.clamp_min(1e-15), max=1.0)
        x_new = x + step
        x_new = x_new / x_new.norm(dim=-1, keepdim=True)
        new = _objective_terms(x_new, a_lat, a_lon, p, weight, clip_km, radius_km)
        accept = new[3] < cost
        x = torch.where(accept[:, None], x_new, x)
        d, resid, slope = (torch.where(accept[:, None], n, o) for n, o in zip(new[:3], (d, resid, slope)))
        cost = torch.where(accept, new[3], cost)
        lam = torch.where(accept, lam * 0.3, lam * 10.0).clamp(1e-9, 1e9)
    best = cost.view(batch, s).argmin(dim=-1)
    x = x.view(batch, s, 3)[torch.arange(batch, device=x.device), best]
    lat, lon = xyz_to_latlon(x)
    return lat.to(distance_km.dtype), lon.to(distance_km.dtype)
