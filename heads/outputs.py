"""Typed outputs of the heads and of :meth:`heads.GeoModel.predict` (frozen dataclasses).

Tensors keep their autograd graph; nothing here copies data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import torch

__all__ = [
    "ClassifierOutput",
    "CellOutput",
    "LatLonOutput",
    "DistanceOutput",
    "HeadOutput",
    "TopK",
    "Prediction",
    "LocationMethod",
]

#: How :meth:`heads.GeoModel.predict` turns head outputs into one lat/lon guess.
#: ``best_cell``: centroid of the most probable cell; ``top_cells_mean``: probability-weighted
#: spherical mean of the top cells' centroids; ``latlon``: the lat/lon head's decoded vector;
#: ``multilateration`` / ``nearest_anchor``: from the distance head's predicted distances.
LocationMethod = Literal["best_cell", "top_cells_mean", "latlon", "multilateration", "nearest_anchor"]


@dataclass(frozen=True)
class ClassifierOutput:
    """Output of a plain classifier head (``country``).

    Attributes:
        logits: (B, C) unnormalised scores.
    """

    logits: torch.Tensor

    def probs(self) -> torch.Tensor:
        """(B, C) softmax probabilities."""
        return self.logits.softmax(dim=-1)


@dataclass(frozen=True)
class CellOutput:
    """Output of the ``cell`` head.

    Attributes:
        logits: (B, K) cell scores.
        country_probs: (B, C) country probabilities marginalised from the cell probabilities
            through the row-stochastic cell -> country matrix (rows sum to 1), or None.
        admin1_probs: (B, A) likewise for admin-1 units, or None.
    """

    logits: torch.Tensor
    country_probs: Optional[torch.Tensor] = None
    admin1_probs: Optional[torch.Tensor] = None

    def probs(self) -> torch.Tensor:
        """(B, K) softmax probabilities over cells."""
        return self.logits.softmax(dim=-1)


@dataclass(frozen=True)
class LatLonOutput:
    """Output of the ``latlon`` head.

    Attributes:
        xyz: (B, 3) unit vectors (x towards 0N 0E, z towards the north pole).
        lat, lon: (B,) the same points in degrees, lon in [-180, 180].
    """

    xyz: torch.Tensor
    lat: torch.Tensor
    lon: torch.Tensor


@dataclass(frozen=True)
class DistanceOutput:
    """Output of the ``distance`` head.

    Attributes:
        distance_km: (B, M) predicted clipped great-circle distances to every anchor, km, in
            [0, clip_km]; or (B, n) to the anchors named by ``anchor_index``.
        self_distance_km: (B,) the discriminator applied to the image paired with itself (the
            identity term: its target is 0 km).
        anchor_index: (B, n) long, the anchors of each row of ``distance_km``; None when
            ``distance_km`` covers all anchors in order.
    """

    distance_km: torch.Tensor
    self_distance_km: torch.Tensor
    anchor_index: Optional[torch.Tensor] = None


HeadOutput = ClassifierOutput | CellOutput | LatLonOutput | DistanceOutput


@dataclass(frozen=True)
class TopK:
    """The k most probable classes of each image.

    Attributes:
        index: (B, k) long class indices, most probable first.
        prob: (B, k) their probabilities.
        labels: per image, the k class names (None when the head has no vocabulary).
    """

    index: torch.Tensor
    prob: torch.Tensor
    labels: Optional[tuple[tuple[str, ...], ...]] = None


@dataclass(frozen=True)
class Prediction:
    """What :meth:`heads.GeoModel.predict` returns.

    Attributes:
        lat, lon: (B,) one location guess per image, degrees (NaN if no head can locate).
        location_method: how the guess was made, or None.
        country, admin1, cell: top-k classes (None where the model has no such output).
    """

    lat: torch.Tensor
    lon: torch.Tensor
    location_method: Optional[LocationMethod]
    country: Optional[TopK] = None
    admin1: Optional[TopK] = None
    cell: Optional[TopK] = None
