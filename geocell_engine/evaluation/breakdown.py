"""Metrics per group of test samples — continent, hemisphere, country — each with its interval.

Groups are formed from the **true** location: the continent of the true country
(:func:`geocell.continent_of`, the shipped GeoNames table), the hemisphere of the true latitude,
the east/west half of the true longitude, or the true country. Each row holds the group's
:class:`~geocell_engine.evaluation.intervals.MetricIntervals`, made by the same bootstrap as the
whole table (over the clusters inside the group when clusters are given). A group with fewer
than 2 resampling units keeps its point estimates and gets no interval (NaN ends).

Example:
    >>> import numpy as np
    >>> from geocell_engine.evaluation.predictions import Predictions
    >>> lat = np.array([48.0, 47.0, 46.0, -20.0, -21.0, -22.0]); lon = np.array([2.0, 3.0, 4.0, -50.0, -51.0, -52.0])
    >>> c = np.array(["FRA"] * 3 + ["BRA"] * 3)
    >>> p = Predictions("m", lat, lon, lat + 1, lon, c, c)
    >>> [(r.group, r.n) for r in breakdown(p, by="continent", n_resamples=200)]
    [('Europe', 3), ('South America', 3)]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Optional, Sequence

import numpy as np

from geocell.constants import ACCURACY_THRESHOLDS_KM
from geocell_engine.errors import IntervalError
from geocell_engine.evaluation.intervals import (
    DEFAULT_RESAMPLES,
    BootstrapMethod,
    MetricIntervals,
    bootstrap_intervals,
    format_interval,
    unresampled_intervals,
)
from geocell_engine.evaluation.predictions import Predictions

__all__ = ["GroupBy", "BreakdownRow", "group_labels", "take_predictions", "breakdown", "format_breakdown_table"]

GroupBy = Literal["continent", "hemisphere", "east_west", "country"]
_GROUPINGS = ("continent", "hemisphere", "east_west", "country")
#: The label of samples whose group is unknown (no true country for a continent / country row).
UNKNOWN = "unknown"


@dataclass(frozen=True)
class BreakdownRow:
    """One group of a breakdown.

    Attributes:
        group: e.g. ``"Europe"``, ``"north"``, ``"FRA"`` (``"unknown"`` without a true country).
        n: samples; n_clusters: resampling units (clusters, or samples without clusters).
        metrics: the group's intervals (median / mean km, accuracies, GeoScore, country top-1).
    """

    group: str
    n: int
    n_clusters: int
    metrics: MetricIntervals

    def as_dict(self) -> dict[str, Any]:
        return {"group": self.group, "n": self.n, "n_clusters": self.n_clusters, **self.metrics.as_dict()}


def take_predictions(preds: Predictions, index: np.ndarray) -> Predictions:
    """The samples of ``preds`` at ``index`` (every per-sample field, rows of the 2-D ones)."""
    index = np.asarray(index)
    changes = {}
    for name in ("true_lat", "true_lon", "pred_lat", "pred_lon", "true_country", "pred_country", "country_proba",
                 "true_admin1", "pred_admin1", "true_cell", "pred_cell", "true_distance_km", "pred_distance_km", "ids"):
        value = getattr(preds, name)
        if value is not None:
            changes[name] = np.asarray(value)[index]
    return replace(preds, **changes)


def group_labels(preds: Predictions, by: GroupBy | Sequence[str]) -> np.ndarray:
    """``(N,)`` str group of each sample: ``by`` is a grouping name or an array of labels.

    - ``"continent"``: continent name of ``true_country`` (``"unknown"`` where it is ``""``).
    - ``"hemisphere"``: ``"north"`` (true latitude >= 0) or ``"south"``.
    - ``"east_west"``: ``"east"`` (true longitude in [0, 180)) or ``"west"``.
    - ``"country"``: ``true_country`` (``"unknown"`` where it is ``""``).

    Raises:
        IntervalError: an unknown grouping or labels of the wrong length;
        geocell.UnknownCountryCodeError: a true country missing from the continent table.
    """
    n = len(preds)
    if isinstance(by, str):
        if by not in _GROUPINGS:
            raise IntervalError(f"by must be one of {', '.join(_GROUPINGS)} or an array of labels, got {by!r}")
        true_c = np.asarray(preds.true_country, dtype=object).astype(str)
        if by == "continent":
            from geocell.continents import continent_of

            names = np.asarray(continent_of(true_c, names=True), dtype=object)
            return np.where(names == "", UNKNOWN, names).astype(str)
        if by == "country":
            return np.where(true_c == "", UNKNOWN, true_c).astype(str)
        if by == "hemisphere":
            return np.where(np.asarray(preds.true_lat, dtype=np.float64) >= 0, "north", "south")
        lon = (np.asarray(preds.true_lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
        return np.where(lon >= 0, "east", "west")
    labels = np.asarray(by, dtype=object).astype(str).reshape(-1)
    if labels.size != n:
        raise IntervalError(f"group labels have {labels.size} entries, expected {n} (one per sample)")
    return labels


def breakdown(
    preds: Predictions,
    by: GroupBy | Sequence[str] = "continent",
    clusters: Any | None = None,
    *,
    thresholds: Sequence[float] = ACCURACY_THRESHOLDS_KM,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    method: BootstrapMethod = "BCa",
) -> tuple[BreakdownRow, ...]:
    """Rows of metrics with intervals per group, most samples first (ties by name).

    Args:
        preds: N samples.
        by: ``"continent"``, ``"hemisphere"``, ``"east_west"``, ``"country"`` or ``(N,)`` labels
            (see :func:`group_labels`).
        clusters: ``(N,)`` cluster ids (held-out regions) for a cluster bootstrap within each
            group; None resamples samples.
        thresholds, level, n_resamples, seed, method: as in
            :func:`~geocell_engine.evaluation.intervals.bootstrap_intervals` (every group uses
            the same seed).

    Returns:
        tuple of :class:`BreakdownRow`; a group with fewer than 2 samples (or clusters) has NaN
        interval ends and ``method`` saying why.

    Raises:
        IntervalError: as :func:`group_labels` and ``bootstrap_intervals``.
    """
    labels = group_labels(preds, by)
    cl = None
    if clusters is not None:
        cl = np.asarray(clusters)
        if cl.ndim != 1 or cl.size != len(preds):
            raise IntervalError(f"clusters must be a 1-D array with one id per sample ({len(preds)}), got shape {cl.shape}")
    names, counts = np.unique(labels, return_counts=True)
    order = sorted(range(names.size), key=lambda i: (-counts[i], names[i]))
    rows = []
    for i in order:
        idx = np.flatnonzero(labels == names[i])
        part = take_predictions(preds, idx)
        part_cl = None if cl is None else cl[idx]
        units = idx.size if part_cl is None else np.unique(part_cl.astype(str) if part_cl.dtype.kind == "O" else part_cl).size
        if units < 2:
            word = "sample" if part_cl is None else "cluster"
            metrics = unresampled_intervals(part, units, f"no interval: 1 {word}", thresholds=thresholds, level=level)
        else:
            metrics = bootstrap_intervals(part, part_cl, thresholds=thresholds, level=level, n_resamples=n_resamples,
                                          seed=seed, method=method)
        rows.append(BreakdownRow(str(names[i]), int(idx.size), int(units), metrics))
    return tuple(rows)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def format_breakdown_table(rows: Sequence[BreakdownRow], title: str = "group",
                           thresholds: Sequence[float] = (750.0, 2500.0), top: Optional[int] = None) -> str:
    """Markdown table: group | n | clusters | median km | ≤t km % ... | country top-1 %, each
    metric ``"point (low–high)"``.

    Args:
        rows: from :func:`breakdown`.
        title: the first column's header (e.g. ``"continent"``).
        thresholds: accuracy columns, km (each must have been evaluated).
        top: show only the first ``top`` rows.
    """
    rows = list(rows)[:top] if top is not None else list(rows)
    for i, r in enumerate(rows):
        if not isinstance(r, BreakdownRow):
            raise IntervalError(f"rows[{i}] is a {type(r).__name__}, expected a BreakdownRow")
    units = "clusters" if rows and rows[0].metrics.method.startswith("cluster") else "samples"
    header = [title, "n", units, "median km", *[f"≤{float(t):g} km %" for t in thresholds], "GeoScore",
              "country top-1 %"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
    for r in rows:
        m = r.metrics
        acc = []
        for t in thresholds:
            iv = m.accuracy_within(t)
            if iv is None:
                raise IntervalError(f"accuracy within {t:g} km was not evaluated; evaluated: "
                                    f"{', '.join(f'{x:g}' for x in m.accuracy_at_km)}")
            acc.append(format_interval(iv, "pct"))
        lines.append("| " + " | ".join([_cell(r.group), f"{r.n:,}", f"{r.n_clusters:,}",
                                        format_interval(m.median_km, "km"), *acc,
                                        format_interval(m.geoscore, "score"),
                                        format_interval(m.country_top1, "pct")]) + " |")
    return "\n".join(lines) + "\n"
