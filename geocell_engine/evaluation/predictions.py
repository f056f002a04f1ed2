"""`Predictions`: what a model (or a baseline) says about an evaluation split, as numpy arrays.

This is the boundary between the engine (which runs models) and the report (which computes
metrics, tables and plots): anything that can fill a Predictions — a trained GeoModel, a
constant guess, a kNN baseline — is evaluated the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["Predictions"]


@dataclass(frozen=True)
class Predictions:
    """Per-sample truths and guesses for N samples.

    Attributes:
        name: who made the guesses ("model", "constant median", "kNN colour histograms", ...).
        true_lat, true_lon: ``(N,)`` degrees.
        pred_lat, pred_lon: ``(N,)`` degrees, the single location guess.
        true_country: ``(N,)`` str adm0_a3 ("" where unknown).
        country_vocab: ``(C,)`` str, the columns of ``country_proba``.
        country_proba: ``(N, C)`` float probabilities, or None (then only ``pred_country``).
        pred_country: ``(N,)`` str top-1 country.
        true_admin1, pred_admin1: ``(N,)`` str adm1_code, or None.
        true_cell, pred_cell: ``(N,)`` int cell indices, or None (region task).
        pred_distance_km, true_distance_km: ``(N, M)`` predicted / true clipped distances to M
            anchors (distance task), or None.
        ids: ``(N,)`` str sample ids (image paths or manifest ids), or None.
    """

    name: str
    true_lat: np.ndarray
    true_lon: np.ndarray
    pred_lat: np.ndarray
    pred_lon: np.ndarray
    true_country: np.ndarray
    pred_country: np.ndarray
    country_vocab: Optional[np.ndarray] = None
    country_proba: Optional[np.ndarray] = None
    true_admin1: Optional[np.ndarray] = None
    pred_admin1: Optional[np.ndarray] = None
    true_cell: Optional[np.ndarray] = None
    pred_cell: Optional[np.ndarray] = None
    true_distance_km: Optional[np.ndarray] = None
    pred_distance_km: Optional[np.ndarray] = None
    ids: Optional[np.ndarray] = None

    def __post_init__(self) -> None:
        n = len(self.true_lat)
        for field_name in ("true_lon", "pred_lat", "pred_lon", "true_country", "pred_country", "true_admin1",
                           "pred_admin1", "true_cell", "pred_cell", "ids"):
            value = getattr(self, field_name)
            if value is not None and len(value) != n:
                raise ValueError(f"Predictions.{field_name} has {len(value)} entries, expected {n}")
        if self.country_proba is not None:
            if self.country_vocab is None or self.country_proba.shape != (n, len(self.country_vocab)):
                raise ValueError("country_proba must be (N, C) with a country_vocab of C labels")

    def __len__(self) -> int:
        return len(self.true_lat)

    def to_frame(self):
        """One row per sample (what ``--dump predictions.csv`` writes): truths, guesses, km error."""
        import pandas as pd

        from geocell import haversine

        frame = pd.DataFrame({
            "id": self.ids if self.ids is not None else np.arange(len(self)),
            "true_lat": self.true_lat, "true_lon": self.true_lon,
            "pred_lat": self.pred_lat, "pred_lon": self.pred_lon,
            "error_km": haversine(self.true_lat, self.true_lon, self.pred_lat, self.pred_lon),
            "true_country": self.true_country, "pred_country": self.pred_country,
        })
        if self.country_proba is not None:
            frame["pred_country_prob"] = self.country_proba.max(axis=1)
        if self.true_admin1 is not None:
            frame["true_admin1"] = self.true_admin1
        if self.pred_admin1 is not None:
            frame["pred_admin1"] = self.pred_admin1
        if self.true_cell is not None:
            frame["true_cell"] = self.true_cell
        if self.pred_cell is not None:
            frame["pred_cell"] = self.pred_cell
        if self.pred_distance_km is not None and self.true_distance_km is not None:
            frame["distance_abs_error_km"] = np.abs(self.pred_distance_km - self.true_distance_km).mean(axis=1)
        return frame

    def dump(self, path: str | Path) -> Path:
        """Write :meth:`to_frame` as CSV or Parquet (by suffix), atomically."""
        from geocell.tables import write_table

        return write_table(self.to_frame(), path)
