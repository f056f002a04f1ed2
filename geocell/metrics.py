"""Evaluation metrics of image geolocation: km errors, accuracy at distance, GeoScore, countries.

The distance metrics follow the papers' table (median km, accuracy at 1 / 25 / 200 / 750 /
2500 km, mean GeoGuessr score); the classification metrics reuse scikit-learn.

Example:
    >>> m = distance_metrics([48.85, 40.71], [2.35, -74.0], [48.0, 40.0], [2.0, -74.0])
    >>> round(m.median_km, 1), m.accuracy_at_km[200.0]
    (88.5, 1.0)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np

from .constants import ACCURACY_THRESHOLDS_KM, EARTH_RADIUS_KM, GEOSCORE_SCALE_KM
from .geodesy import accuracy_at, geodesic, geoguessr_score, haversine
from .validate import check_coordinates

__all__ = ["DistanceMetrics", "ClassificationMetrics", "distance_metrics", "error_km", "summarise_errors",
           "classification_metrics", "per_group_table", "DistanceMethod"]

#: How a distance is measured: on a sphere (haversine, with a radius) or on the WGS84 ellipsoid.
DistanceMethod = Literal["haversine", "geodesic"]


@dataclass(frozen=True)
class DistanceMetrics:
    """Summary of great-circle errors (km) of N guesses."""

    n: int
    median_km: float
    mean_km: float
    accuracy_at_km: Mapping[float, float]
    mean_geoscore: float

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["accuracy_at_km"] = {str(k): v for k, v in self.accuracy_at_km.items()}
        return d


def distance_metrics(
    true_lat: Any,
    true_lon: Any,
    pred_lat: Any,
    pred_lon: Any,
    *,
    thresholds: Iterable[float] = ACCURACY_THRESHOLDS_KM,
    radius_km: float = EARTH_RADIUS_KM,
    geoscore_scale_km: float = GEOSCORE_SCALE_KM,
    inclusive: bool = True,
    distance: DistanceMethod = "haversine",
    ellps: str = "WGS84",
    round_geoscore: bool = False,
) -> DistanceMetrics:
    """Median / mean km error, accuracy at each threshold and mean GeoScore.

    Args:
        true_lat, true_lon, pred_lat, pred_lon: ``(N,)`` degrees (broadcastable); latitudes in
            [-90, 90], longitudes any finite value.
        thresholds: km; ``inclusive`` counts ``d <= t`` (else ``d < t``).
        radius_km, geoscore_scale_km: to reproduce projects with other constants.
        distance: ``"haversine"`` (a sphere of ``radius_km``) or ``"geodesic"`` (the ``ellps``
            ellipsoid through pyproj; ``radius_km`` is then unused).
        round_geoscore: round each guess's score to an integer before averaging (PIGEON).

    Raises:
        InvalidCoordinateError: a non-numeric, NaN or out-of-range coordinate, naming the argument
            and index (e.g. "index 3: pred_lat nan").

    Example:
        >>> m = distance_metrics([0.0], [0.0], [0.0], [1.0], distance="geodesic", thresholds=(111.0,))
        >>> round(m.median_km, 3), m.accuracy_at_km[111.0]
        (111.319, 0.0)
    """
    d = error_km(true_lat, true_lon, pred_lat, pred_lon, radius_km=radius_km, distance=distance, ellps=ellps)
    return summarise_errors(d, thresholds=thresholds, geoscore_scale_km=geoscore_scale_km, inclusive=inclusive,
                            round_geoscore=round_geoscore)


def error_km(
    true_lat: Any,
    true_lon: Any,
    pred_lat: Any,
    pred_lon: Any,
    *,
    radius_km: float = EARTH_RADIUS_KM,
    distance: DistanceMethod = "haversine",
    ellps: str = "WGS84",
) -> np.ndarray:
    """``(N,)`` float64 km between each guess and its truth, validated (see :func:`distance_metrics`).

    Example:
        >>> error_km([0.0], [0.0], [0.0], [90.0], radius_km=6371.0).round(1).tolist()
        [10007.5]
    """
    true_lat, true_lon = check_coordinates(true_lat, true_lon, lon_range=None, names=("true_lat", "true_lon"))
    pred_lat, pred_lon = check_coordinates(pred_lat, pred_lon, lon_range=None, names=("pred_lat", "pred_lon"))
    if distance == "haversine":
        d = haversine(true_lat, true_lon, pred_lat, pred_lon, radius_km=radius_km)
    elif distance == "geodesic":
        d = geodesic(true_lat, true_lon, pred_lat, pred_lon, ellps=ellps)
    else:
        raise ValueError(f"distance {distance!r}; expected 'haversine' or 'geodesic'")
    return np.asarray(d, dtype=np.float64).reshape(-1)


def summarise_errors(
    distance_km: Any,
    *,
    thresholds: Iterable[float] = ACCURACY_THRESHOLDS_KM,
    geoscore_scale_km: float = GEOSCORE_SCALE_KM,
    inclusive: bool = True,
    round_geoscore: bool = False,
) -> DistanceMetrics:
    """:class:`DistanceMetrics` of ``(N,)`` km errors (finite, >= 0); options as :func:`distance_metrics`.

    Example:
        >>> m = summarise_errors([0.0, 1492.7], thresholds=(1.0,), inclusive=False, round_geoscore=True)
        >>> m.mean_geoscore, m.accuracy_at_km[1.0]
        (3419.5, 0.5)
    """
    d = np.asarray(distance_km, dtype=np.float64).reshape(-1)
    scores = np.asarray(geoguessr_score(d, scale_km=geoscore_scale_km), dtype=np.float64)
    if round_geoscore:
        scores = np.round(scores)  # numpy rounds half to even, as PIGEON's np.round does
    return DistanceMetrics(
        n=int(d.size),
        median_km=float(np.median(d)),
        mean_km=float(np.mean(d)),
        accuracy_at_km=dict(accuracy_at(d, thresholds=thresholds, inclusive=inclusive)),
        mean_geoscore=float(np.mean(scores)),
    )


@dataclass(frozen=True)
class ClassificationMetrics:
    """Accuracy-type metrics of a classifier (e.g. the country task)."""

    n: int
    top_k_accuracy: Mapping[int, float]
    balanced_accuracy: float
    macro_f1: float
    weighted_f1: float
    mean_average_precision: float | None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["top_k_accuracy"] = {str(k): v for k, v in self.top_k_accuracy.items()}
        return d


def classification_metrics(
    y_true: Sequence[Any],
    proba: np.ndarray,
    labels: Sequence[Any],
    *,
    top_k: Iterable[int] = (1, 3, 5),
) -> ClassificationMetrics:
    """Top-k accuracy, balanced accuracy, macro / weighted F1 and mAP from class probabilities.

    Args:
        y_true: ``(N,)`` true labels; a label missing from ``labels`` counts as wrong.
        proba: ``(N, C)`` scores or probabilities, columns ordered as ``labels``.
        labels: ``(C,)`` the class labels.
        top_k: the k of top-k accuracy (values above C are clipped to C).

    mAP is the mean over classes present in ``y_true`` of sklearn's average precision.
    """
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, f1_score

    proba = np.asarray(proba, dtype=np.float64)
    labels = np.asarray(labels)
    y_true = np.asarray(y_true)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(labels)):
        raise ValueError(f"proba must have shape (N, C) = ({len(y_true)}, {len(labels)}), got {proba.shape}")
    index = {lab: i for i, lab in enumerate(labels.tolist())}
    true_idx = np.array([index.get(lab, -1) for lab in y_true.tolist()], dtype=np.int64)
    ranking = np.argsort(-proba, axis=1, kind="stable")
    topk = {}
    for k in top_k:
        kk = min(int(k), len(labels))
        topk[int(k)] = float(np.mean((ranking[:, :kk] == true_idx[:, None]).any(axis=1)))
    pred = labels[ranking[:, 0]]
    mean_ap = None
    present = np.unique(true_idx[true_idx >= 0])
    if present.size:
        onehot = true_idx[:, None] == present[None, :]
        mean_ap = float(average_precision_score(onehot, proba[:, present], average="macro"))
    return ClassificationMetrics(
        n=int(len(y_true)),
        top_k_accuracy=topk,
        balanced_accuracy=float(balanced_accuracy_score(y_true.astype(str), pred.astype(str))),
        macro_f1=float(f1_score(y_true.astype(str), pred.astype(str), average="macro", zero_division=0)),
        weighted_f1=float(f1_score(y_true.astype(str), pred.astype(str), average="weighted", zero_division=0)),
        mean_average_precision=mean_ap,
    )


def per_group_table(groups: Sequence[Any], correct: Any, distance_km: Any):
    """Per-group (e.g. per-country) count, accuracy and median km error, as a DataFrame.

    Sorted by count, descending; ``correct`` is a boolean ``(N,)`` array.
    """
    import pandas as pd

    frame = pd.DataFrame({"group": np.asarray(groups).astype(str), "correct": np.asarray(correct, dtype=bool),
                          "distance_km": np.asarray(distance_km, dtype=np.float64)})
    table = frame.groupby("group").agg(n=("correct", "size"), accuracy=("correct", "mean"),
                                       median_km=("distance_km", "median"))
    return table.sort_values(["n", "accuracy"], ascending=[False, False])
