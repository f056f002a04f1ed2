"""``GeoModel``: one backbone, any set of heads.

Example:
    >>> import torch
    >>> from heads import Backbone, GeoModel, create_head
    >>> backbone = Backbone("test_efficientnet", pretrained=False)
    >>> model = GeoModel(backbone, {
    ...     "country": create_head("country", backbone.num_features, countries=("FRA", "DEU", "ITA")),
    ...     "latlon": create_head("latlon", backbone.num_features),
    ... })
    >>> out = model(torch.randn(2, 3, 32, 32))
    >>> sorted(out), out["country"].logits.shape
    (['country', 'latlon'], torch.Size([2, 3]))
    >>> pred = model.predict(torch.randn(2, 3, 32, 32), k=2)
    >>> pred.country.labels[0][0] in ("FRA", "DEU", "ITA"), pred.location_method
    (True, 'latlon')
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Sequence

import torch
from torch import nn

from geocell.geodesy import haversine, spherical_mean

from .backbone import Backbone, BackboneConfig
from .classification import CellHead, CountryHead
from .distance import DistanceHead
from .latlon import LatLonHead
from .outputs import HeadOutput, LocationMethod, Prediction, TopK
from .registry import Head, create_head

__all__ = [
    "GeoModel",
    "DEFAULT_CELL_LOCATION",
    "DEFAULT_LOCATION_K",
    "DEFAULT_LOCATION_RADIUS_KM",
    "top_cells_mean",
]

#: The default way to turn cell probabilities into a location. Measured in
#: ``benchmarks/bench_model.py`` (section 3, "location from cells"): 1,000 cells, 4,000 test points,
#: simulated cell probabilities that decay with distance from the true point (temperature 100 /
#: 300 / 1,000 km, logit noise 0.5 / 1.5, with and without a 40% second mode at another place:
#: 12 settings). The probability-weighted spherical mean of the top 10 cells within 2,500 km of
#: the best cell had a lower median error and a higher mean GeoGuessr score than the best cell's
#: centroid in 12 of 12 settings (mean over settings: score 3,485 vs 3,287, median 345 vs 466 km).
DEFAULT_CELL_LOCATION: LocationMethod = "top_cells_mean"

#: Number of top cells considered by ``top_cells_mean`` (measured with the above: 5, 10 and 20
#: differ by less than 1% in mean score).
DEFAULT_LOCATION_K = 10

#: Only top cells within this distance of the best cell are averaged. Measured with the above:
#: an unrestricted mean lands between the modes of a two-mode prediction (mean score 2,754, below
#: the best cell's 3,287); the mean score over the 12 settings rises with the radius from 1,000 km
#: (3,420) to 2,500 km (3,502, also the best when the second mode is more than 3,000 km away) and
#: then flattens (3,500 km: 3,507 overall, lower for distant second modes).
DEFAULT_LOCATION_RADIUS_KM = 2500.0


def top_cells_mean(
    probs: torch.Tensor,
    cell_lat: torch.Tensor,
    cell_lon: torch.Tensor,
    k: int = DEFAULT_LOCATION_K,
    max_km: Optional[float] = DEFAULT_LOCATION_RADIUS_KM,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probability-weighted spherical mean of the ``k`` most probable cells' centroids.

    Args:
        probs: (B, K) cell probabilities.
        cell_lat, cell_lon: (K,) centroids, degrees.
        k: cells considered (1 gives the best cell's centroid).
        max_km: only cells within this great-circle distance of the best cell take part, so a
            prediction with two distant modes is not averaged into the sea between them; None
            averages all k.

    Returns:
        (lat, lon): (B,) degrees. A row whose top cells cancel out (e.g. antipodal pairs with
        equal weight) falls back to its best cell.

    Example:
        >>> p = torch.tensor([[0.5, 0.3, 0.2]])
        >>> lat, lon = top_cells_mean(p, torch.tensor([0.0, 0.0, 40.0]), torch.tensor([0.0, 2.0, 100.0]), k=3)
        >>> round(float(lat), 3), round(float(lon), 3)   # the third cell is 11,000 km away: left out
        (0.0, 0.75)
    """
    k = max(1, min(int(k), probs.shape[-1]))
    top = probs.topk(k, dim=-1)
    lat, lon = cell_lat[top.indices], cell_lon[top.indices]
    if k == 1:
        return lat[:, 0], lon[:, 0]
    weights = top.values
    if max_km is not None:
        near = haversine(lat[:, :1], lon[:, :1], lat, lon) <= max_km
        weights = weights * near
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-30)
    try:
        return spherical_mean(lat, lon, weights=weights, axis=-1)
    except ValueError:
        rows = []
        for i in range(lat.shape[0]):
            try:
                rows.append(spherical_mean(lat[i], lon[i], weights=weights[i]))
            except ValueError:
                rows.append((lat[i, 0], lon[i, 0]))
        return (torch.stack([torch.as_tensor(r[0]) for r in rows]).to(lat),
                torch.stack([torch.as_tensor(r[1]) for r in rows]).to(lon))


def _topk(probs: torch.Tensor, k: int, labels: Optional[Sequence[str]]) -> TopK:
    k = max(1, min(int(k), probs.shape[-1]))
    top = probs.topk(k, dim=-1)
    names = None
    if labels is not None:
        names = tuple(tuple(labels[j] for j in row) for row in top.indices.tolist())
    return TopK(top.indices, top.values, names)


class GeoModel(nn.Module):
    """One backbone shared by any set of heads.

    The model owns its input normalisation: :meth:`forward` takes uint8 images (0-255) or
    floating images scaled to [0, 1], and normalises them with the backbone's mean and std
    (:attr:`Backbone.preprocessing`), so callers never normalise by hand.

    Args:
        backbone: a :class:`Backbone` (or any module mapping images (B, 3, H, W) to (B, F) with a
            ``num_features`` attribute).
        heads: ``{name: head}``; each head's ``in_features`` must equal the backbone's width.
        mean, std: per-channel normalisation of [0, 1] RGB; default: the backbone's
            ``preprocessing``, else ImageNet's.

    Raises:
        ValueError: no heads, or a head whose input width does not fit the backbone.
    """

    def __init__(self, backbone: nn.Module, heads: Mapping[str, Head],
                 mean: Optional[Sequence[float]] = None, std: Optional[Sequence[float]] = None) -> None:
        super().__init__()
        if not heads:
            raise ValueError("a GeoModel needs at least one head")
        width = getattr(backbone, "num_features", None)
        for name, head in heads.items():
            if width is not None and getattr(head, "in_features", width) != width:
                raise ValueError(
                    f"head {name!r} expects {head.in_features} features but the backbone gives {width}"
                )
        self.backbone = backbone
        self.heads = nn.ModuleDict(dict(heads))
        if mean is None or std is None:
            prep = getattr(backbone, "preprocessing", None)
            if prep is not None:
                mean, std = prep.mean, prep.std
            else:
                from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

                mean, std = IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
        # derived from the backbone, not learnt: left out of state_dict (persistent=False)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) in 0-255, or float in [0, 1] -> float32 normalised for the backbone.

        Raises:
            TypeError: images of another dtype (int64, bool, ...).
        """
        if images.dtype == torch.uint8:
            x = images.float().div_(255.0)
        elif images.is_floating_point():
            x = images.float()
        else:
            raise TypeError(f"images must be uint8 (0-255) or floating (0-1), got {images.dtype}")
        return (x - self.mean) / self.std

    @classmethod
    def build(
        cls,
        backbone: Backbone | BackboneConfig | str,
        heads: Mapping[str, Mapping[str, Any]],
        **backbone_kwargs: Any,
    ) -> "GeoModel":
        """Build from names: ``heads`` maps a head name to the keyword arguments of
        :func:`heads.create_head` (a ``"type"`` entry picks another registered head than the
        name, so two heads of one type can coexist); a backbone name is built with
        ``Backbone(name, **backbone_kwargs)``.

        Example:
            >>> m = GeoModel.build("test_efficientnet", {"country": {"countries": 3}}, pretrained=False)
            >>> type(m.heads["country"]).__name__
            'CountryHead'
        """
        if isinstance(backbone, str):
            backbone = Backbone(backbone, **backbone_kwargs)
        elif isinstance(backbone, BackboneConfig):
            backbone = Backbone.from_config(backbone)
        built = {}
        for name, spec in heads.items():
            spec = dict(spec)
            kind = spec.pop("type", name)
            built[name] = create_head(kind, backbone.num_features, **spec)
        return cls(backbone, built)

    def forward(
        self, images: torch.Tensor, head_kwargs: Optional[Mapping[str, Mapping[str, Any]]] = None
    ) -> dict[str, HeadOutput]:
        """images (B, 3, H, W), uint8 0-255 or float 0-1 (see :meth:`normalise`) -> ``{head name:
        head output}``; ``head_kwargs`` passes extra arguments to named heads (e.g.
        ``{"distance": {"anchor_index": idx}}``)."""
        features = self.backbone(self.normalise(images))
        head_kwargs = head_kwargs or {}
        unknown = set(head_kwargs) - set(self.heads)
        if unknown:
            raise ValueError(f"head_kwargs names unknown heads {sorted(unknown)}; heads: {list(self.heads)}")
        return {name: head(features, **head_kwargs.get(name, {})) for name, head in self.heads.items()}

    def _first(self, kind: type) -> Optional[str]:
        return next((name for name, head in self.heads.items() if isinstance(head, kind)), None)

    @torch.no_grad()
    def predict(
        self,
        images: torch.Tensor,
        k: int = 5,
        location: Optional[LocationMethod] = None,
        location_k: int = DEFAULT_LOCATION_K,
        location_radius_km: Optional[float] = DEFAULT_LOCATION_RADIUS_KM,
        outputs: Optional[Mapping[str, HeadOutput]] = None,
    ) -> Prediction:
        """Top-k countries / admin-1 / cells and one lat/lon guess per image (eval mode).

        Countries come from a ``country`` head if there is one, else from the cell head's
        marginalised probabilities. The location method defaults to
        :data:`DEFAULT_CELL_LOCATION` when there is a cell head, else the lat/lon head, else
        multilateration from the distance head.

        Args:
            images: (B, 3, H, W).
            k: how many classes to return.
            location: see :data:`heads.outputs.LocationMethod`; None picks the default.
            location_k, location_radius_km: ``k`` and ``max_km`` of :func:`top_cells_mean`.
            outputs: this model's ``forward(images)`` in eval mode, if the caller already has it
                (saves a second forward pass).

        Raises:
            ValueError: the requested location method needs a head the model lacks.
        """
        if outputs is None:
            was_training = self.training
            self.eval()
            try:
                outputs = self(images)
            finally:
                self.train(was_training)
        cell_name, country_name = self._first(CellHead), self._first(CountryHead)
        latlon_name, distance_name = self._first(LatLonHead), self._first(DistanceHead)

        country = admin1 = cell = None
        if cell_name is not None:
            head: Any = self.heads[cell_name]
            out = outputs[cell_name]
            cell_probs = out.probs()
            cell = _topk(cell_probs, k, head.labels)
            if out.country_probs is not None:
                country = _topk(out.country_probs, k, head.countries)
            if out.admin1_probs is not None:
                admin1 = _topk(out.admin1_probs, k, head.admin1)
        if country_name is not None:
            country = _topk(outputs[country_name].probs(), k, self.heads[country_name].labels)

        if location is None:
            location = (
                DEFAULT_CELL_LOCATION if cell_name else
                "latlon" if latlon_name else
                "multilateration" if distance_name else None
            )
        batch = images.shape[0]
        lat = lon = torch.full((batch,), float("nan"), device=images.device)
        if location in ("best_cell", "top_cells_mean"):
            if cell_name is None:
                raise ValueError(f"location={location!r} needs a cell head")
            head = self.heads[cell_name]
            kk = 1 if location == "best_cell" else location_k
            lat, lon = top_cells_mean(cell_probs, head.cell_lat, head.cell_lon, kk, location_radius_km)
        elif location == "latlon":
            if latlon_name is None:
                raise ValueError("location='latlon' needs a latlon head")
            lat, lon = outputs[latlon_name].lat, outputs[latlon_name].lon
        elif location in ("multilateration", "nearest_anchor"):
            if distance_name is None:
                raise ValueError(f"location={location!r} needs a distance head")
            lat, lon = self.heads[distance_name].localise(outputs[distance_name], method=location)
        elif location is not None:
            raise ValueError(
                f"location must be one of best_cell, top_cells_mean, latlon, multilateration, "
                f"nearest_anchor; got {location!r}"
            )
        return Prediction(lat=lat, lon=lon, location_method=location, country=country, admin1=admin1, cell=cell)
