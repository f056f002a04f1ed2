"""Tasks: which heads a run trains, their targets, their losses, and the checkpoint's label data.

``region`` (cell classification with haversine label smoothing), ``country``, ``latlon``,
``distance`` (against country-centre anchors), and ``multi`` (several of them on one backbone,
with a weight per loss). Everything a checkpoint needs to rebuild the heads without the data
(cells as tensors, vocabularies, anchors) comes from :meth:`Objective.label_state`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

import numpy as np

from geocell_engine.engine.config import TrainConfig

__all__ = ["Objective", "Anchors", "country_anchors"]


@dataclass(frozen=True)
class Anchors:
    """Fixed positions of the distance head: ``(M,)`` lat/lon degrees and their names."""

    lat: np.ndarray
    lon: np.ndarray
    labels: tuple[str, ...]


def country_anchors(lat: np.ndarray, lon: np.ndarray, country: np.ndarray) -> Anchors:
    """One anchor per training country: the spherical mean of its training points."""
    from geocell import spherical_mean

    names = tuple(sorted(set(country.tolist()) - {""}))
    a_lat, a_lon = [], []
    for name in names:
        sel = country == name
        try:
            la, lo = spherical_mean(lat[sel], lon[sel])
        except ValueError:  # points that cancel out: take the first one
            la, lo = float(lat[sel][0]), float(lon[sel][0])
        a_lat.append(la)
        a_lon.append(lo)
    return Anchors(np.asarray(a_lat), np.asarray(a_lon), names)


def _sparse_to_state(matrix) -> dict[str, Any]:
    import torch

    coo = matrix.tocoo()
    return {"row": torch.as_tensor(coo.row, dtype=torch.long), "col": torch.as_tensor(coo.col, dtype=torch.long),
            "value": torch.as_tensor(coo.data, dtype=torch.float64), "shape": list(coo.shape)}


def _sparse_from_state(state: Mapping[str, Any]):
    from scipy import sparse

    return sparse.csr_matrix((state["value"].numpy(), (state["row"].numpy(), state["col"].numpy())),
                             shape=tuple(state["shape"]))


class Objective:
    """Heads, targets and the weighted loss of a run.

    Args:
        config: the run's configuration (task, tau, clip, loss weights).
        countries: the country vocabulary (sorted ``adm0_a3`` of the training split).
        cells: the CellSet of the region task, or the cell state of a checkpoint (dict).
        anchors: one anchor per training country (the distance task's anchors, and the
            location guess of a country-only model).
    """

    def __init__(self, config: TrainConfig, countries: tuple[str, ...], cells: Any = None,
                 anchors: Optional[Anchors] = None) -> None:
        self.config = config
        self.tasks = config.heads
        self.countries = tuple(countries)
        self.country_index = {c: i for i, c in enumerate(self.countries)}
        self.cells = cells
        self.anchors = anchors
        if "region" in self.tasks and cells is None:
            raise ValueError("the region task needs cells")
        if anchors is None:
            raise ValueError("the objective needs the country anchors (country_anchors of the training split)")
        self._losses: dict[str, Any] = {}
        self._cell_state: Optional[dict[str, Any]] = None  # built once from the CellSet

    # ------------------------------------------------------------------ cells as plain data
    def cell_state(self) -> Optional[dict[str, Any]]:
        """The cells as tensors and lists (checkpoint-safe), or None without a region task."""
        import torch

        if self.cells is None:
            return None
        if isinstance(self.cells, Mapping):
            return dict(self.cells)
        if self._cell_state is not None:
            return self._cell_state
        to_admin1, to_country = self.cells.hierarchy()
        self._cell_state = {
            "ids": [str(i) for i in self.cells.ids],
            "centroid_lat": torch.as_tensor(self.cells.centroid_lat, dtype=torch.float64),
            "centroid_lon": torch.as_tensor(self.cells.centroid_lon, dtype=torch.float64),
            "country": [str(c) for c in self.cells.country],
            "hash": self.cells.hash,
            "kind": self.cells.kind,
            "countries": list(self.cells.country_vocab()),
            "admin1": list(self.cells.admin1_vocab()),
            "to_country": _sparse_to_state(to_country),
            "to_admin1": _sparse_to_state(to_admin1),
        }
        return self._cell_state

    def label_state(self) -> dict[str, Any]:
        """Vocabularies, cells and anchors for the checkpoint."""
        import torch

        anchors = None
        if self.anchors is not None:
            anchors = {"lat": torch.as_tensor(self.anchors.lat, dtype=torch.float64),
                       "lon": torch.as_tensor(self.anchors.lon, dtype=torch.float64),
                       "labels": list(self.anchors.labels)}
        return {"vocab": {"country": list(self.countries)}, "cells": self.cell_state(), "anchors": anchors}

    @classmethod
    def from_checkpoint(cls, config: TrainConfig, ckpt: Mapping[str, Any]) -> "Objective":
        anchors = None
        if ckpt.get("anchors"):
            a = ckpt["anchors"]
            anchors = Anchors(a["lat"].numpy(), a["lon"].numpy(), tuple(a["labels"]))
        return cls(config, tuple(ckpt["vocab"]["country"]), cells=ckpt.get("cells"), anchors=anchors)

    def country_location(self, country: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Location guesses for predicted countries: the centre of each country's training points
        (NaN for a country without an anchor)."""
        index = {c: i for i, c in enumerate(self.anchors.labels)}
        rows = np.array([index.get(c, -1) for c in np.asarray(country).tolist()], dtype=np.int64)
        lat = np.where(rows >= 0, self.anchors.lat[rows], np.nan)
        lon = np.where(rows >= 0, self.anchors.lon[rows], np.nan)
        return lat, lon

    @property
    def cell_lat(self) -> np.ndarray:
        state = self.cell_state()
        return np.asarray(state["centroid_lat"], dtype=np.float64)

    @property
    def cell_lon(self) -> np.ndarray:
        state = self.cell_state()
        return np.asarray(state["centroid_lon"], dtype=np.float64)

    # ------------------------------------------------------------------ heads
    def build_heads(self, in_features: int) -> dict[str, Any]:
        """``{task: head}`` for every task of the run."""
        from heads import CellHead, CountryHead, DistanceHead, LatLonHead

        heads: dict[str, Any] = {}
        for task in self.tasks:
            if task == "region":
                state = self.cell_state()
                heads[task] = CellHead(
                    in_features, len(state["ids"]), state["centroid_lat"].numpy(), state["centroid_lon"].numpy(),
                    cell_to_country=_sparse_from_state(state["to_country"]),
                    cell_to_admin1=_sparse_from_state(state["to_admin1"]),
                    countries=state["countries"], admin1=state["admin1"], cell_ids=state["ids"],
                )
            elif task == "country":
                heads[task] = CountryHead(in_features, list(self.countries))
            elif task == "latlon":
                heads[task] = LatLonHead(in_features)
            elif task == "distance":
                heads[task] = DistanceHead(in_features, self.anchors.lat, self.anchors.lon,
                                           clip_km=self.config.distance_clip_km, anchor_labels=self.anchors.labels)
        return heads

    # ------------------------------------------------------------------ targets and loss
    def country_targets(self, country: np.ndarray) -> np.ndarray:
        """``(N,)`` int64 indices into the vocabulary, -1 for countries not in it."""
        return np.array([self.country_index.get(c, -1) for c in country.tolist()], dtype=np.int64)

    def _loss_modules(self, device: Any) -> dict[str, Any]:
        if not self._losses:
            import torch.nn as nn

            from losses import ClippedDistanceLoss, GeodesicLoss, HaversineSmoothingLoss

            for task in self.tasks:
                if task == "region":
                    self._losses[task] = HaversineSmoothingLoss(self.cell_lat, self.cell_lon, tau_km=self.config.tau_km)
                elif task == "country":
                    self._losses[task] = nn.CrossEntropyLoss(ignore_index=-1)
                elif task == "latlon":
                    self._losses[task] = GeodesicLoss()
                elif task == "distance":
                    self._losses[task] = ClippedDistanceLoss(self.anchors.lat, self.anchors.lon,
                                                             clip_km=self.config.distance_clip_km)
            for module in self._losses.values():
                module.to(device)
        return self._losses

    def loss(self, outputs: Mapping[str, Any], lat, lon, country_idx) -> tuple[Any, dict[str, float]]:
        """Weighted sum of the task losses for a batch, and each part as a float.

        ``lat``, ``lon``: (B,) float32 degrees; ``country_idx``: (B,) long (-1 = unknown).
        The geodesic loss is divided by 1,000 so that km errors and nats weigh alike.
        """
        modules = self._loss_modules(lat.device)
        weights = self.config.loss_weights if len(self.tasks) > 1 else {t: 1.0 for t in self.tasks}
        total, parts = 0.0, {}
        for task in self.tasks:
            out = outputs[task]
            if task == "region":
                value = modules[task](out.logits.float(), lat, lon)
            elif task == "country":
                value = modules[task](out.logits.float(), country_idx)
            elif task == "latlon":
                value = modules[task](out.xyz.float(), lat, lon) / 1000.0
            else:
                value = modules[task](out.distance_km.float(), lat, lon,
                                      self_distance_km=out.self_distance_km.float())
            parts[task] = float(value.detach())
            total = total + float(weights.get(task, 1.0)) * value
        return total, parts
