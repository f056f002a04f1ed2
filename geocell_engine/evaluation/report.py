"""Evaluation of `Predictions` and the run report (JSON, Markdown and PNG plots).

:func:`evaluate` turns a :class:`~geocell_engine.evaluation.predictions.Predictions` into an :class:`EvalResult`
(km errors, accuracy at distance, GeoScore, country metrics, admin-1 / cell accuracy, the
distance task's metrics, a per-country table); :func:`comparison_table` puts several results
side by side as Markdown; :func:`write_report` writes ``report.json``, ``report.md`` and the plots
of a run directory, each file atomically.

Example:
    >>> import numpy as np
    >>> from geocell_engine.evaluation.predictions import Predictions
    >>> p = Predictions("demo", np.array([48.85, 40.71]), np.array([2.35, -74.0]),
    ...                 np.array([48.0, 40.0]), np.array([2.0, -74.0]),
    ...                 np.array(["FRA", "USA"]), np.array(["FRA", "CAN"]))
    >>> r = evaluate(p)
    >>> round(r.median_km, 1), r.country_top_k
    (88.5, {1: 0.5})
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from geocell.metrics import (
    ClassificationMetrics,
    DistanceMetrics,
    classification_metrics,
    per_group_table,
)
from geocell.profiles import LevelAccuracy, MetricProfile, get_profile, score_profile
from geocell.tables import atomic_write
from geocell_engine.errors import IntervalError, ReportError
from geocell_engine.evaluation.intervals import (
    DEFAULT_RESAMPLES,
    MetricIntervals,
    bootstrap_intervals,
    format_interval,
    interval_note,
    unresampled_intervals,
)
from geocell_engine.evaluation.predictions import Predictions

__all__ = [
    "ReportError",
    "CountryRow",
    "EvalResult",
    "RowCounts",
    "evaluate",
    "with_intervals",
    "comparison_table",
    "levels_table",
    "per_country_markdown",
    "best_worst_countries",
    "best_worst_markdown",
    "write_report",
    "WrittenReport",
    "set_report_section",
    "TABLE_THRESHOLDS_KM",
]

#: The km thresholds shown as columns of :func:`comparison_table`.
TABLE_THRESHOLDS_KM: tuple[float, ...] = (25.0, 200.0, 750.0, 2500.0)



class CountryRow(NamedTuple):
    """One row of the per-country table: samples whose true country is ``country``.

    ``n`` is the support (samples whose true country it is) and ``accuracy`` the share of them
    the model put in it (the recall). ``precision`` is the share of the model's answers
    ``country`` that were right, over every sample with a known true country; ``f1`` their
    harmonic mean. sklearn's ``precision_recall_fscore_support`` with ``zero_division=0`` gives
    the three (a country never predicted has precision 0), as in the macro F1. NaN when not
    computed.
    """

    country: str
    n: int
    accuracy: float
    median_km: float
    precision: float = float("nan")
    recall: float = float("nan")
    f1: float = float("nan")

    @property
    def support(self) -> int:
        """Samples whose true country is ``country`` (the same as ``n``)."""
        return self.n

    def as_dict(self) -> dict[str, Any]:
        """The fields and ``support``, as plain JSON types."""
        return {**self._asdict(), "support": self.n}


@dataclass(frozen=True)
class EvalResult:
    """Every metric of one set of predictions (see :func:`evaluate`).

    Attributes:
        name: who made the predictions.
        n: samples evaluated.
        distance: km statistics (:class:`geocell.metrics.DistanceMetrics`), or None when the
            samples have no true coordinates (an ImageFolder tree of country folders): the
            location metrics are skipped and the tables leave them empty.
        country: country metrics over the samples with a known true country, or None when there
            is none. ``top_k_accuracy`` has k = 1, 3, 5 with probabilities, only k = 1 without;
            ``mean_average_precision`` is None without probabilities.
        n_country: samples with a known true country (the denominator of ``country``).
        per_country: rows of (country, n, accuracy, median_km, precision, recall, f1), most
            samples first; one per true country (:class:`CountryRow`).
        predicted_only: ``(country, times predicted)`` for the countries the model answered
            that are no sample's true country (precision 0, no recall; they count as F1 0 in
            the macro F1), most often predicted first.
        admin1_accuracy: over samples with a known true admin-1 unit, or None.
        cell_accuracy: top-1 geocell accuracy, or None.
        distance_mae_km: distance task: mean absolute error of the predicted distances to the
            anchors, km, or None.
        nearest_anchor_accuracy: distance task: how often the anchor predicted nearest is the
            truly nearest one, or None.
        profile: the metric profile (:mod:`geocell.profiles`) the numbers follow.
        levels: admin accuracy per level with its denominator, as the profile decides it
            (geocell: the model's country / admin-1 answers; osv5m: reverse_geocoder levels;
            pigeon: guess inside the true country).
        intervals: 95% bootstrap intervals of the headline metrics (median / mean km, accuracy
            at each threshold, GeoScore, country top-1) under the same profile, from
            :func:`with_intervals`; None when not computed. Tables show them beside the points.
    """

    name: str
    n: int
    distance: Optional[DistanceMetrics]
    country: Optional[ClassificationMetrics]
    n_country: int
    per_country: tuple[CountryRow, ...] = field(default=())
    predicted_only: tuple[tuple[str, int], ...] = field(default=())
    admin1_accuracy: Optional[float] = None
    cell_accuracy: Optional[float] = None
    distance_mae_km: Optional[float] = None
    nearest_anchor_accuracy: Optional[float] = None
    profile: str = "geocell"
    levels: tuple[LevelAccuracy, ...] = field(default=())
    intervals: Optional[MetricIntervals] = field(default=None, compare=False)

    # -- shortcuts used by tables
    @property
    def located(self) -> bool:
        """Whether location metrics were scored (the samples had true coordinates)."""
        return self.distance is not None

    @property
    def median_km(self) -> Optional[float]:
        return self.distance.median_km if self.distance is not None else None

    @property
    def mean_km(self) -> Optional[float]:
        return self.distance.mean_km if self.distance is not None else None

    @property
    def mean_geoscore(self) -> Optional[float]:
        return self.distance.mean_geoscore if self.distance is not None else None

    @property
    def accuracy_at_km(self) -> Mapping[float, float]:
        return self.distance.accuracy_at_km if self.distance is not None else {}

    @property
    def country_top_k(self) -> dict[int, float]:
        return dict(self.country.top_k_accuracy) if self.country is not None else {}

    def level_accuracy(self, level: str) -> Optional[float]:
        """Accuracy at an admin level (``"country"``, ``"region"``, ...), or None if not scored."""
        found = next((lv for lv in self.levels if lv.level == level), None)
        return None if found is None else found.accuracy

    @property
    def country_top1(self) -> Optional[float]:
        """Country top-1 accuracy: the classifier's (geocell), else the profile's country level."""
        top = self.country_top_k.get(1)
        return top if top is not None else self.level_accuracy("country")

    @property
    def inclusive(self) -> bool:
        """Whether accuracy at t km counts d <= t (the profile's convention)."""
        return get_profile(self.profile).inclusive

    def accuracy_within(self, km: float) -> Optional[float]:
        """Fraction within ``km`` if that threshold was evaluated, else None."""
        for t, v in self.accuracy_at_km.items():
            if math.isclose(float(t), float(km)):
                return float(v)
        return None

    def per_country_frame(self):
        """The per-country table as a DataFrame (index country; columns n, accuracy, median_km,
        precision, recall, f1)."""
        import pandas as pd

        frame = pd.DataFrame(list(self.per_country), columns=list(CountryRow._fields))
        return frame.set_index("country")

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON types (dict keys as strings, floats, ints, None, lists)."""
        return _jsonable({
            "name": self.name,
            "n": self.n,
            "distance": None if self.distance is None else self.distance.as_dict(),
            "country": None if self.country is None else self.country.as_dict(),
            "n_country": self.n_country,
            "admin1_accuracy": self.admin1_accuracy,
            "cell_accuracy": self.cell_accuracy,
            "distance_mae_km": self.distance_mae_km,
            "nearest_anchor_accuracy": self.nearest_anchor_accuracy,
            "profile": self.profile,
            "levels": [lv.as_dict() for lv in self.levels],
            "per_country": [row.as_dict() for row in self.per_country],
            "predicted_only": [{"country": c, "predicted": k} for c, k in self.predicted_only],
            "intervals": None if self.intervals is None else self.intervals.as_dict(),
        })


@dataclass(frozen=True)
class RowCounts:
    """What happened to every row of the evaluated file: nothing is dropped silently.

    Attributes:
        source: the file (or data set name) the rows came from.
        in_file: data rows of the file.
        selected: rows of the split evaluated (all of them for a file without a split column).
        missing: selected rows left out because the image file does not exist (or, for
            ``score``, because the truth row has no prediction).
        unreadable: selected rows left out because the image could not be decoded.
        scored: rows in the metrics (``selected - missing - unreadable - sampled_out``).
        split: the split evaluated, or ``"all"``.
        missing_what: how :meth:`summary` calls the missing rows.
        sampled_out: rows left out on purpose by ``--max-samples``.
        other_countries: rows left out because their country is not one the model was trained
            on (a run restricted by ``min_per_country``).
    """

    source: str
    in_file: int
    selected: int
    missing: int
    unreadable: int
    scored: int
    split: str = "all"
    missing_what: str = "missing images"
    sampled_out: int = 0
    other_countries: int = 0

    def __post_init__(self) -> None:
        if self.selected - self.missing - self.unreadable - self.sampled_out - self.other_countries != self.scored:
            raise ReportError(f"row counts do not add up: {self.selected} selected - {self.missing} missing - "
                              f"{self.unreadable} unreadable - {self.sampled_out} sampled out - "
                              f"{self.other_countries} of other countries != {self.scored} scored")

    def summary(self) -> str:
        """One line, e.g. ``"rows: 3,000 in im2gps3k.csv, all rows; 3,000 scored, 0 missing images, 0 unreadable"``."""
        where = "all rows" if self.split == "all" else f"split {self.split}: {self.selected:,} rows"
        sampled = f", {self.sampled_out:,} left out by --max-samples" if self.sampled_out else ""
        others = f", {self.other_countries:,} of countries the model was not trained on" if self.other_countries else ""
        return (f"rows: {self.in_file:,} in {self.source}, {where}; {self.scored:,} scored, {self.missing:,} "
                f"{self.missing_what}, {self.unreadable:,} unreadable{sampled}{others}")

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "in_file": self.in_file, "split": self.split, "selected": self.selected,
                "missing": self.missing, "missing_what": self.missing_what, "unreadable": self.unreadable,
                "sampled_out": self.sampled_out, "other_countries": self.other_countries, "scored": self.scored}


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars / arrays, Paths, tuples and non-finite floats to JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "as_dict"):
        return _jsonable(value.as_dict())
    return str(value)


# ------------------------------------------------------------------------------ evaluate
def _labels(values: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(values)
    arr = (arr if arr.dtype.kind == "U" else np.asarray(values, dtype=object).astype(str)).reshape(-1)
    if arr.size != n:
        raise ReportError(f"Predictions.{name} has {arr.size} entries, expected {n}")
    return arr


def _distance_task(preds: Predictions, n: int) -> tuple[Optional[float], Optional[float]]:
    pred_d, true_d = preds.pred_distance_km, preds.true_distance_km
    if pred_d is None and true_d is None:
        return None, None
    if pred_d is None or true_d is None:
        missing = "pred_distance_km" if pred_d is None else "true_distance_km"
        raise ReportError(f"the distance task needs both pred_distance_km and true_distance_km; {missing} is None")
    pred_d, true_d = np.asarray(pred_d, dtype=np.float64), np.asarray(true_d, dtype=np.float64)
    if pred_d.ndim != 2 or pred_d.shape != true_d.shape or pred_d.shape[0] != n or pred_d.shape[1] == 0:
        raise ReportError(
            f"pred_distance_km {pred_d.shape} and true_distance_km {true_d.shape} must both be (N, M) with "
            f"N = {n} samples and M >= 1 anchors"
        )
    if not (np.all(np.isfinite(pred_d)) and np.all(np.isfinite(true_d))):
        raise ReportError("pred_distance_km / true_distance_km hold NaN or infinite values")
    mae = float(np.mean(np.abs(pred_d - true_d)))
    nearest = float(np.mean(np.argmin(pred_d, axis=1) == np.argmin(true_d, axis=1)))
    return mae, nearest


def _country_metrics(preds: Predictions, true: np.ndarray, pred: np.ndarray, known: np.ndarray):
    if not known.any():
        return None
    import warnings

    with warnings.catch_warnings():
        # predicting a country absent from the split is normal; sklearn warns about it every time
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return _country_metrics_inner(preds, true, pred, known)


def _country_metrics_inner(preds: Predictions, true: np.ndarray, pred: np.ndarray, known: np.ndarray):
    if preds.country_proba is not None:
        vocab = np.asarray(preds.country_vocab).astype(str)
        proba = np.asarray(preds.country_proba, dtype=np.float64)
        if not np.all(np.isfinite(proba)):
            raise ReportError("country_proba holds NaN or infinite values")
        return classification_metrics(true[known], proba[known], vocab, top_k=(1, 3, 5))
    # Only a top-1 guess: accuracy, balanced accuracy and F1 from the labels (as integer codes, so
    # that a million rows cost no (N, C) one-hot matrix and no string sorting inside sklearn).
    import pandas as pd
    from sklearn.metrics import balanced_accuracy_score, f1_score

    codes, _ = pd.factorize(np.concatenate([true[known], pred[known]]))  # hashing: no sort of N strings
    t, p = codes[:known.sum()], codes[known.sum():]
    return ClassificationMetrics(n=int(known.sum()), top_k_accuracy={1: float(np.mean(t == p))},
                                 balanced_accuracy=float(balanced_accuracy_score(t, p)),
                                 macro_f1=float(f1_score(t, p, average="macro", zero_division=0)),
                                 weighted_f1=float(f1_score(t, p, average="weighted", zero_division=0)),
                                 mean_average_precision=None)


def _per_country_rows(true: np.ndarray, pred: np.ndarray, error_km: np.ndarray
                      ) -> tuple[tuple[CountryRow, ...], tuple[tuple[str, int], ...]]:
    """Per true country: support, accuracy, median km, precision, recall and F1.

    Args:
        true, pred: ``(N,)`` true and predicted country codes of the samples with a known true
            country (``pred`` may be ``""`` or a code that is no sample's truth).
        error_km: ``(N,)`` km errors (NaN when the samples have no coordinates).

    Returns:
        The rows, most samples first (ties: higher accuracy first), and the countries predicted
        but never true with how often they were predicted.
    """
    import warnings

    import pandas as pd
    from sklearn.metrics import precision_recall_fscore_support

    table = per_group_table(true, pred == true, error_km)
    countries = [str(c) for c in table.index]
    codes, uniques = pd.factorize(np.concatenate([true, pred]))  # integer codes: no sort of N strings
    position = {str(u): i for i, u in enumerate(uniques)}
    t, p = codes[:true.size], codes[true.size:]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        prec, rec, f1, support = precision_recall_fscore_support(
            t, p, labels=[position[c] for c in countries], average=None, zero_division=0)
    rows = tuple(CountryRow(c, int(r.n), float(r.accuracy), float(r.median_km), float(pr), float(rc), float(f))
                 for (c, r), pr, rc, f in zip(table.iterrows(), prec, rec, f1))
    truth = set(countries)
    extra = pd.Series(pred[~np.isin(pred, list(truth)) & (pred != "")]).value_counts()
    predicted_only = tuple(sorted(((str(c), int(k)) for c, k in extra.items()), key=lambda ck: (-ck[1], ck[0])))
    return rows, predicted_only


def evaluate(preds: Predictions, thresholds: Optional[Sequence[float]] = None, *,
             profile: "str | MetricProfile" = "geocell",
             true_levels: Optional[Mapping[str, Any]] = None) -> EvalResult:
    """All metrics of one set of predictions, under a metric profile (:mod:`geocell.profiles`).

    - Distances: median / mean km, accuracy within each of ``thresholds`` km (default: the
      profile's; ``<=`` or ``<`` as the profile says), mean GeoScore (rounded per guess or not),
      over every sample, with the profile's distance (sphere radius or WGS84 geodesic).
    - ``profile="geocell"`` (default) keeps the model's own answers as the guess:
    - Country (over samples whose ``true_country`` is not ""): top-1/3/5 accuracy, balanced
      accuracy, macro / weighted F1 and mAP from ``country_proba`` when present; else top-1,
      balanced accuracy and F1 from ``pred_country`` (no top-3/5, no mAP).
    - Admin-1 accuracy (samples with a known ``true_admin1``) when both admin-1 arrays exist;
      cell accuracy when both cell arrays exist.
    - Per country: count, accuracy of ``pred_country`` and median km, most samples first.
    - Distance task (``pred_distance_km`` / ``true_distance_km``, ``(N, M)``): mean absolute
      error (km) and nearest-anchor accuracy (argmin predicted == argmin true).
    - Other profiles replace the country block by the profile's admin levels (``levels``):
      osv5m reverse-geocodes the guessed point (``true_levels``: OSV-5M's true area keys, level
      -> ``(N,)``, else the true point is reverse-geocoded too); pigeon counts a guess inside the
      true point's country; geoclip has none. Cell and distance-task metrics stay.

    Raises:
        ReportError: no samples, non-finite coordinates, mismatched array shapes.
        ProfileError: an unknown profile.
    """
    if not isinstance(preds, Predictions):
        raise ReportError(f"evaluate expects a Predictions, got {type(preds).__name__}")
    n = len(preds)
    if n == 0:
        raise ReportError(f"{preds.name}: no samples to evaluate")
    coords = [np.asarray(getattr(preds, k), dtype=np.float64).reshape(-1)
              for k in ("true_lat", "true_lon", "pred_lat", "pred_lon")]
    if coords[0].size == n and np.isnan(coords[0]).all() and np.isnan(coords[1]).all():
        return _evaluate_unlocated(preds, profile)
    for key, arr in zip(("true_lat", "true_lon", "pred_lat", "pred_lon"), coords):
        if arr.size != n:
            raise ReportError(f"Predictions.{key} has {arr.size} entries, expected {n}")
        bad = np.flatnonzero(~np.isfinite(arr))
        if bad.size:
            raise ReportError(f"{preds.name}: {key}[{bad[0]}] is {arr[bad[0]]!r}; expected finite degrees "
                              f"({bad.size} such values)")
    prof = get_profile(profile)
    thresholds = prof.thresholds_km if thresholds is None else tuple(float(t) for t in thresholds)
    own_answers = prof.admin == "natural_earth"  # geocell: the model's country / admin-1 answers are the guess
    scored = score_profile(replace(prof, levels=()) if own_answers else prof, *coords, thresholds=thresholds,
                           true_levels=true_levels)
    dist, error_km = scored.distance, scored.error_km

    true_c = _labels(preds.true_country, "true_country", n)
    pred_c = _labels(preds.pred_country, "pred_country", n)
    known = true_c != ""
    country, admin1_acc = None, None
    per_country: tuple[CountryRow, ...] = ()
    predicted_only: tuple[tuple[str, int], ...] = ()
    levels: tuple[LevelAccuracy, ...] = scored.levels
    if own_answers:
        country = _country_metrics(preds, true_c, pred_c, known)
        if known.any():
            per_country, predicted_only = _per_country_rows(true_c[known], pred_c[known], error_km[known])
        levels = (LevelAccuracy("country", "pred_country", int(known.sum()),
                                int(np.count_nonzero(known & (pred_c == true_c)))),)
        if preds.true_admin1 is not None and preds.pred_admin1 is not None:
            true_a = _labels(preds.true_admin1, "true_admin1", n)
            pred_a = _labels(preds.pred_admin1, "pred_admin1", n)
            known_a = true_a != ""
            levels += (LevelAccuracy("admin1", "pred_admin1", int(known_a.sum()),
                                     int(np.count_nonzero(known_a & (true_a == pred_a)))),)
            if known_a.any():
                admin1_acc = float(np.mean(true_a[known_a] == pred_a[known_a]))
    cell_acc = None
    if preds.true_cell is not None and preds.pred_cell is not None:
        true_cell = np.asarray(preds.true_cell).reshape(-1)
        pred_cell = np.asarray(preds.pred_cell).reshape(-1)
        if true_cell.size != n or pred_cell.size != n:
            raise ReportError(f"true_cell / pred_cell have {true_cell.size} / {pred_cell.size} entries, expected {n}")
        cell_acc = float(np.mean(true_cell == pred_cell))
    mae, nearest = _distance_task(preds, n)
    return EvalResult(
        name=str(preds.name),
        n=n,
        distance=dist,
        country=country,
        n_country=int(known.sum()) if own_answers else next((lv.n for lv in levels if lv.level == "country"), 0),
        per_country=per_country,
        predicted_only=predicted_only,
        admin1_accuracy=admin1_acc,
        cell_accuracy=cell_acc,
        distance_mae_km=mae,
        nearest_anchor_accuracy=nearest,
        profile=prof.name,
        levels=levels,
    )


def _evaluate_unlocated(preds: Predictions, profile: "str | MetricProfile") -> EvalResult:
    """:func:`evaluate` for samples without true coordinates (country labels only): the country
    metrics, no location metrics (``distance`` None). Only the geocell profile scores them: the
    others decide countries from the true point.

    Raises:
        ReportError: another profile.
    """
    prof = get_profile(profile)
    n = len(preds)
    if prof.admin != "natural_earth":
        raise ReportError(f"{preds.name}: the samples have no true coordinates, which the {prof.name} profile "
                          "needs; score them with the geocell profile (country metrics only)")
    true_c = _labels(preds.true_country, "true_country", n)
    pred_c = _labels(preds.pred_country, "pred_country", n)
    known = true_c != ""
    country = _country_metrics(preds, true_c, pred_c, known)
    per_country: tuple[CountryRow, ...] = ()
    predicted_only: tuple[tuple[str, int], ...] = ()
    if known.any():
        per_country, predicted_only = _per_country_rows(true_c[known], pred_c[known],
                                                        np.full(int(known.sum()), np.nan))
    levels = (LevelAccuracy("country", "pred_country", int(known.sum()), int(np.count_nonzero(known & (pred_c == true_c)))),)
    return EvalResult(name=str(preds.name), n=n, distance=None, country=country, n_country=int(known.sum()),
                      per_country=per_country, predicted_only=predicted_only, profile=prof.name,
                      levels=levels)


def with_intervals(result: EvalResult, preds: Predictions, clusters: Any = None, *,
                   clusters_name: str = "held-out regions", n_resamples: int = DEFAULT_RESAMPLES,
                   seed: int = 0, level: float = 0.95) -> EvalResult:
    """``result`` with 95% bootstrap intervals on its headline metrics, under its own profile.

    The intervals (:func:`~geocell_engine.evaluation.intervals.bootstrap_intervals`) cover
    median and mean km, accuracy at each threshold ``result`` was scored at, mean GeoScore and
    country top-1 (the model's own answer for the geocell profile, the profile's country level
    otherwise; none for a profile without one), with the profile's distance, ``<=`` / ``<`` rule
    and GeoScore rounding, so that each interval's point is the value ``result`` reports.

    Args:
        result: ``evaluate(preds, profile=...)``.
        preds: the same N predictions.
        clusters: ``(N,)`` resampling clusters (the held-out region of each sample) for a
            cluster bootstrap, or None to resample samples.
        clusters_name: what the clusters are, for the note under tables.
        n_resamples, seed, level: the bootstrap's replicates, seed and confidence level.

    Returns:
        A copy of ``result`` with ``intervals`` set. With fewer than 2 samples (or 2 clusters)
        there is nothing to resample: the intervals keep the points with NaN ends and say why.

    Raises:
        ReportError: ``preds`` does not match ``result`` (sample count), clusters of another length.

    Example:
        >>> import numpy as np
        >>> lat = np.linspace(-40, 40, 200); lon = np.zeros(200); c = np.array(["BRA"] * 200)
        >>> p = Predictions("m", lat, lon, lat + 1, lon, c, c)
        >>> r = with_intervals(evaluate(p), p, np.arange(200) // 10, n_resamples=200)
        >>> r.intervals.median_km.contains(r.median_km), r.intervals.n_clusters
        (True, 20)
    """
    import warnings

    if not isinstance(result, EvalResult):
        raise ReportError(f"with_intervals expects an EvalResult, got {type(result).__name__}")
    if not isinstance(preds, Predictions) or len(preds) != result.n:
        got = f"{len(preds)} samples" if isinstance(preds, Predictions) else type(preds).__name__
        raise ReportError(f"{result.name}: the predictions ({got}) are not the {result.n} samples of the result")
    if clusters is not None:
        clusters = np.asarray(clusters).reshape(-1)
        if clusters.size != result.n:
            raise ReportError(f"{result.name}: {clusters.size} cluster ids for {result.n} samples")
    if not result.located:  # no coordinates: the intervals are of location metrics
        return result
    thresholds = tuple(float(t) for t in result.distance.accuracy_at_km)
    own = get_profile(result.profile).admin == "natural_earth"
    country_hits = None
    if not own:
        lv = next((lv for lv in result.levels if lv.level == "country"), None)
        if lv is not None and lv.known is not None and lv.hits is not None:
            country_hits = (lv.known, lv.hits)
        else:  # no per-sample country level: no country interval
            country_hits = (np.zeros(result.n, dtype=bool), np.zeros(result.n, dtype=bool))
    kw = dict(thresholds=thresholds, level=level, profile=result.profile, country_hits=country_hits)
    units = 0 if clusters is None else np.unique(clusters.astype(str) if clusters.dtype.kind == "O" else clusters).size
    if result.n < 2 or (clusters is not None and units < 2):
        reason = (f"{result.n} sample: nothing to resample" if result.n < 2 else
                  f"{units} {clusters_name[:-1] if clusters_name.endswith('s') else clusters_name}: nothing to resample")
        ivs = unresampled_intervals(preds, units or result.n, reason, **kw)
    else:
        try:
            ivs = bootstrap_intervals(preds, clusters, n_resamples=n_resamples, seed=seed,
                                      clusters_name=clusters_name, **kw)
        except IntervalError as exc:
            raise ReportError(f"{result.name}: {exc}") from exc
    points = {"median_km": result.median_km, "mean_km": result.mean_km, "geoscore": result.mean_geoscore,
              **{f"accuracy_{t:g}km": result.accuracy_within(t) for t in thresholds}}
    if ivs.country_top1 is not None:
        points["country_top1"] = result.country_top1
    for key, iv in ivs.metrics().items():
        ref = points.get(key)
        if ref is not None and not math.isclose(iv.point, ref, rel_tol=1e-9, abs_tol=1e-9):
            warnings.warn(f"{result.name}: the interval of {key} is centred on {iv.point!r} but the table reports "
                          f"{ref!r}; the interval may not describe the reported value", RuntimeWarning, stacklevel=2)
    return replace(result, intervals=ivs)


# ------------------------------------------------------------------------------ tables
def _fmt_km(value: Optional[float]) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _fmt_pct(value: Optional[float]) -> str:
    return "" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _iv_cell(interval: Any, value: Optional[float], kind: str) -> str:
    """``"2,235 (2,101–2,390)"``: ``value`` (as reported) with the interval's ends; the bare value
    when there is no interval; ``""`` when there is no value."""
    if value is None or not math.isfinite(value):
        return ""
    if interval is None:
        return _fmt_km(value) if kind == "km" else (_fmt_pct(value) if kind == "pct" else f"{value:,.0f}")
    return format_interval(replace(interval, point=float(value)), kind)  # type: ignore[arg-type]


def comparison_table(results: Sequence[EvalResult], names: Optional[Sequence[str]] = None, *,
                     note: bool = True) -> str:
    """Markdown table, one row per result.

    Columns: median km, mean km, % within 25 / 200 / 750 / 2500 km, mean GeoScore, country
    top-1 and top-3 accuracy (%). A value that was not evaluated is left blank. The threshold
    columns say ``≤`` when every row counts ``d <= t``, ``<`` when every row counts ``d < t``
    (the osv5m and pigeon profiles), and neither (``25 km %``) for a mix. Country top-1 is the
    model's own country answer (geocell profile) or the profile's country level.

    A result with ``intervals`` (:func:`with_intervals`) shows each of median km, mean km, the
    threshold columns, GeoScore and country top-1 as ``"2,235 (2,101–2,390)"``: the point and
    its 95% interval; top-3 stays a point.

    Args:
        results: the results, in row order.
        names: row labels (default: each result's ``name``).
        note: when a row has intervals, add a line under the table saying how they were made
            (level, cluster or sample bootstrap over how many units, resamples, seed).

    Example:
        >>> print(comparison_table([]).splitlines()[0])
        | predictor | median km | mean km | ≤25 km % | ≤200 km % | ≤750 km % | ≤2500 km % | GeoScore | country top-1 % | country top-3 % |
    """
    results = list(results)
    for i, r in enumerate(results):
        if not isinstance(r, EvalResult):
            raise ReportError(f"results[{i}] is a {type(r).__name__}, expected an EvalResult")
    if names is None:
        names = [r.name for r in results]
    names = [str(x) for x in names]
    if len(names) != len(results):
        raise ReportError(f"{len(names)} names for {len(results)} results")
    rules = {r.inclusive for r in results}
    sign = "≤" if rules in ({True}, set()) else ("<" if rules == {False} else "")
    header = ["predictor", "median km", "mean km", *[f"{sign}{t:g} km %" for t in TABLE_THRESHOLDS_KM], "GeoScore",
              "country top-1 %", "country top-3 %"]
    align = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for name, r in zip(names, results):
        top = r.country_top_k
        iv = r.intervals
        if iv is None:
            row = [_cell(name), _fmt_km(r.median_km), _fmt_km(r.mean_km),
                   *[_fmt_pct(r.accuracy_within(t)) for t in TABLE_THRESHOLDS_KM],
                   "" if r.mean_geoscore is None else f"{r.mean_geoscore:,.0f}", _fmt_pct(r.country_top1),
                   _fmt_pct(top.get(3))]
        else:  # the reported point with the interval's ends
            within = [_iv_cell(iv.accuracy_within(t), r.accuracy_within(t), "pct") for t in TABLE_THRESHOLDS_KM]
            row = [_cell(name), _iv_cell(iv.median_km, r.median_km, "km"), _iv_cell(iv.mean_km, r.mean_km, "km"),
                   *within, _iv_cell(iv.geoscore, r.mean_geoscore, "score"),
                   _iv_cell(iv.country_top1, r.country_top1, "pct"), _fmt_pct(top.get(3))]
        lines.append("| " + " | ".join(row) + " |")
    text = "\n".join(lines) + "\n"
    with_iv = [r.intervals for r in results if r.intervals is not None]
    if note and with_iv:
        text += "\n" + interval_note(with_iv) + "\n"
    return text


def levels_table(results: Sequence[EvalResult], names: Optional[Sequence[str]] = None) -> str:
    """Markdown table of the admin levels of each result: correct / n (the level's denominator),
    accuracy % and how the hit was decided; ``""`` when no result has levels.

    Example:
        >>> print(levels_table([]), end="")
        <BLANKLINE>
    """
    results = list(results)
    names = [r.name for r in results] if names is None else [str(x) for x in names]
    if len(names) != len(results):
        raise ReportError(f"{len(names)} names for {len(results)} results")
    lines = []
    for name, r in zip(names, results):
        for lv in r.levels:
            lines.append(f"| {_cell(name)} | {_cell(lv.level)} | {lv.correct:,} / {lv.n:,} | {_fmt_pct(lv.accuracy)} "
                         f"| {_cell(lv.method)} |")
    if not lines:
        return "\n"
    return "\n".join(["| predictor | level | hits / rows | accuracy % | decided by |",
                      "| --- | --- | ---: | ---: | --- |", *lines]) + "\n"


def per_country_markdown(result: EvalResult, top: int = 20) -> str:
    """The ``top`` countries with the most samples as a Markdown table (count, accuracy %, median km,
    precision, recall and F1 in %)."""
    lines = ["| country | n | accuracy % | median km | precision % | recall % | F1 % |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in result.per_country[:top]:
        lines.append(f"| {_cell(row.country)} | {row.n} | {_fmt_pct(row.accuracy)} | {_fmt_km(row.median_km)} | "
                     f"{_fmt_pct(row.precision)} | {_fmt_pct(row.recall)} | {_fmt_pct(row.f1)} |")
    return "\n".join(lines) + "\n"


def best_worst_countries(result: EvalResult, k: int = 5) -> tuple[tuple[CountryRow, ...], tuple[CountryRow, ...]]:
    """The ``k`` countries with the highest F1 and the ``k`` with the lowest, among the true countries.

    Ties are broken by support (more samples first in both lists), then by code. With fewer than
    ``2 k`` countries the worst list holds only countries that are not in the best one.

    Returns:
        ``(best, worst)``: best first in ``best``, worst first in ``worst``.

    Example:
        >>> rows = (CountryRow("A", 3, 1.0, 0.0, 1.0, 1.0, 1.0), CountryRow("B", 2, 0.5, 0.0, 0.5, 0.5, 0.5))
        >>> r = EvalResult("m", 5, None, None, 5, per_country=rows)
        >>> [[c.country for c in side] for side in best_worst_countries(r, k=1)]
        [['A'], ['B']]
    """
    if k < 1:
        raise ReportError(f"best_worst_countries: k must be >= 1, got {k}")
    rows = [row for row in result.per_country if math.isfinite(row.f1)]
    best = tuple(sorted(rows, key=lambda r: (-r.f1, -r.n, r.country))[:k])
    chosen = {r.country for r in best}
    worst = tuple(r for r in sorted(rows, key=lambda r: (r.f1, -r.n, r.country)) if r.country not in chosen)[:k]
    return best, worst


def best_worst_markdown(result: EvalResult, k: int = 5) -> str:
    """Markdown tables of :func:`best_worst_countries` (precision, recall, F1 in %, support);
    ``""`` when the result has no per-country F1."""
    best, worst = best_worst_countries(result, k)
    if not best:
        return ""
    head = ["| country | precision % | recall % | F1 % | support |", "| --- | ---: | ---: | ---: | ---: |"]

    def table(rows: Sequence[CountryRow]) -> list[str]:
        return head + [f"| {_cell(r.country)} | {_fmt_pct(r.precision)} | {_fmt_pct(r.recall)} | {_fmt_pct(r.f1)} "
                       f"| {r.n} |" for r in rows]

    md = [f"Best {len(best)} by F1 (ties: more samples first):", "", *table(best), ""]
    if worst:
        md += [f"Worst {len(worst)} by F1:", "", *table(worst), ""]
    if result.predicted_only:
        shown = ", ".join(f"{c} ({k_}x)" for c, k_ in result.predicted_only[:10])
        more = f" and {len(result.predicted_only) - 10} more" if len(result.predicted_only) > 10 else ""
        md += [f"Predicted but no sample's true country (precision 0): {shown}{more}.", ""]
    return "\n".join(md)


def _flatten(extra: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in extra.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            items.extend(_flatten(value, name + "."))
        else:
            items.append((name, value))
    return items


def _fmt_value(value: Any) -> str:
    value = _jsonable(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return "" if value is None else str(value)


# ------------------------------------------------------------------------------ write_report
@dataclass(frozen=True)
class WrittenReport:
    """What :func:`write_report` wrote: the ``report.json`` content and the file paths."""

    payload: dict[str, Any]
    paths: dict[str, Path]


def _write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def set_report_section(report_md: str | Path, key: str, markdown: str) -> Path:
    """Add or replace one section of an existing ``report.md``, atomically.

    The section sits between ``<!-- section:KEY -->`` and ``<!-- /section:KEY -->`` markers at
    the end of the file, so writing the same ``key`` again replaces it (an ``embed`` run again
    on another split gets its own key) and the rest of the report is kept byte for byte.

    Args:
        report_md: the run's ``report.md``; it must exist.
        key: the section's name (letters, digits, ``-`` and ``_``).
        markdown: the section's text, heading included.

    Raises:
        ReportError: ``report_md`` is missing, ``key`` has other characters, or the file holds
            an opening marker of ``key`` without its closing one.
    """
    import re

    path = Path(report_md)
    if not re.fullmatch(r"[A-Za-z0-9_-]+", key):
        raise ReportError(f"report section key {key!r}: expected letters, digits, '-' or '_'")
    if not path.is_file():
        raise ReportError(f"{path}: no report to add the {key!r} section to")
    text = path.read_text(encoding="utf-8")
    start, end = f"<!-- section:{key} -->", f"<!-- /section:{key} -->"
    block = f"{start}\n{markdown.strip()}\n{end}\n"
    if start in text:
        head, _, rest = text.partition(start)
        if end not in rest:
            raise ReportError(f"{path}: {start} has no closing {end}; fix or remove it by hand")
        _, _, tail = rest.partition(end)
        text = head + block + tail.lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    return _write_text(path, text)


def write_report(
    run_dir: str | Path,
    results: Mapping[str, EvalResult],
    history: Optional[Sequence[Mapping[str, Any]]],
    model_preds: Optional[Predictions],
    extra: Optional[Mapping[str, Any]] = None,
    rows: Optional[RowCounts] = None,
    clusters: Any = None,
) -> "WrittenReport":
    """Write the final report of a run: plots, ``report.md``, then ``report.json``.

    Args:
        run_dir: the run directory (created if needed); plots go to ``run_dir/plots/``.
        results: row label -> result, in table order (the model, the baselines, the
            robustness check, ...).
        history: per-epoch metric dicts (training curves), or None / [] for no curves.
        model_preds: the model's predictions (confusion matrix, world map, and the per-country
            table, taken from the result of the same name in ``results`` or else evaluated);
            None = no prediction plots, and the per-country table of the first result.
        extra: shown as a key/value list in ``report.md`` and stored in ``report.json``
            (data set name / version / sha256, config summary, timings; nested dicts are
            flattened with dotted keys).
        rows: what happened to every row of the evaluated file (:class:`RowCounts`), shown in
            ``report.md`` and stored as ``report.json["rows"]``.
        clusters: ``(N,)`` resampling clusters of ``model_preds`` (held-out regions), or None.
            When the model's result carries intervals (:func:`with_intervals`), the per-country
            table and the breakdowns by continent and hemisphere (of the true location) get
            intervals by the same bootstrap (``report.json["breakdowns"]``).

    Returns:
        :class:`WrittenReport`: ``payload`` is what ``report.json`` holds; ``paths`` maps
        ``"json", "markdown", "training_curves", "confusion", "world_map",
        "per_country_accuracy"`` to the files written. Every file is written atomically;
        ``report.json`` comes last, so its presence means the report is complete.

    Raises:
        ReportError: no results, a value that is not an EvalResult, a malformed history.
    """
    from geocell_engine.evaluation import plots
    from geocell_engine.evaluation.breakdown import format_breakdown_table

    if not isinstance(results, Mapping) or not results:
        raise ReportError("results must be a non-empty dict of name -> EvalResult")
    for key, r in results.items():
        if not isinstance(r, EvalResult):
            raise ReportError(f"results[{key!r}] is a {type(r).__name__}, expected an EvalResult")
    if history is not None and (isinstance(history, (Mapping, str)) or not isinstance(history, Sequence)):
        raise ReportError(f"history must be a list of per-epoch dicts or None, got {type(history).__name__}")
    for i, row in enumerate(history or ()):
        if not isinstance(row, Mapping):
            raise ReportError(f"history[{i}] is a {type(row).__name__}, expected a dict of metrics")
    if model_preds is not None and not isinstance(model_preds, Predictions):
        raise ReportError(f"model_preds must be a Predictions or None, got {type(model_preds).__name__}")
    if rows is not None and not isinstance(rows, RowCounts):
        raise ReportError(f"rows must be a RowCounts or None, got {type(rows).__name__}")
    if extra is not None and not isinstance(extra, Mapping):
        raise ReportError(f"extra must be a dict or None, got {type(extra).__name__}")

    run_dir = Path(run_dir)
    plot_dir = run_dir / "plots"
    paths: dict[str, Path] = {}

    model_key, model_result = next(iter(results.items()))
    if model_preds is not None:
        found = [(k, r) for k, r in results.items() if model_preds.name in (k, r.name)]
        model_key, model_result = found[0] if found else (model_preds.name, evaluate(model_preds))

    if history:
        paths["training_curves"] = plots.plot_training_curves(history, plot_dir / "training_curves.png")
    if model_preds is not None:
        if np.any(np.asarray(model_preds.true_country).astype(str) != ""):
            paths["confusion"] = plots.plot_confusion(model_preds.true_country, model_preds.pred_country,
                                                      plot_dir / "confusion.png")
        if model_result.located:  # the map draws each guess against its true point
            paths["world_map"] = plots.plot_world_map(model_preds, plot_dir / "world_map.png")
    if model_result.per_country:
        paths["per_country_accuracy"] = plots.plot_per_country_accuracy(model_result,
                                                                        plot_dir / "per_country_accuracy.png")

    md = ["# Evaluation report", "", "## Results", "", comparison_table(list(results.values()), list(results))]
    profiles = list(dict.fromkeys(r.profile for r in results.values()))
    md += [f"Metrics follow {'the profile' if len(profiles) == 1 else 'the profiles'} (see geocell.profiles):", ""]
    md += [f"- {get_profile(name).describe()}" for name in profiles] + [""]
    md += [f"GeoScore is the mean of 5000 exp(-km / 1492.7). {model_result.n} samples.", ""]
    if not model_result.located:
        md += ["Location metrics skipped: the samples have no true coordinates (country folders), so only the "
               "country metrics are scored.", ""]
    if rows is not None:
        md += [rows.summary() + ".", ""]
    other = _other_metrics_markdown(results)
    if other:
        md += ["## Other metrics", "", other]
    levels = levels_table(list(results.values()), list(results))
    if levels.strip():
        md += ["## Admin levels", "", levels]
    groups = _breakdowns(model_result, model_preds, clusters)
    if model_result.per_country and "country" in groups:
        md += [f"## Per country: {model_key} (top 20 by samples)", "",
               format_breakdown_table(groups["country"], "country", top=20),
               _breakdown_note(model_result), ""]
    elif model_result.per_country:
        md += [f"## Per country: {model_key} (top 20 by samples)", "", per_country_markdown(model_result, 20)]
    best_worst = best_worst_markdown(model_result) if model_result.per_country else ""
    if best_worst:
        md += [f"## Per country: {model_key}, best and worst five by F1", "",
               f"Precision, recall and F1 of every country are in report.json "
               f"(results.{model_key}.per_country).", "", best_worst]
    for by in ("continent", "hemisphere"):
        if by in groups:
            md += [f"## {model_key} by {by} (of the true location)", "",
                   format_breakdown_table(groups[by], by), _breakdown_note(model_result), ""]
    if extra:
        md += ["## Run", ""] + [f"- **{_cell(k)}**: {_cell(_fmt_value(v))}" for k, v in _flatten(extra)] + [""]
    figures = [(k, p) for k, p in paths.items()]
    if figures:
        md += ["## Plots", ""] + [f"![{k}]({p.relative_to(run_dir).as_posix()})" for k, p in figures] + [""]
    paths["markdown"] = _write_text(run_dir / "report.md", "\n".join(md))

    payload = {
        "results": {k: r.as_dict() for k, r in results.items()},
        "model": model_key,
        "history": list(history or []),
        "extra": dict(extra or {}),
        "rows": None if rows is None else rows.as_dict(),
        "breakdowns": {by: [r.as_dict() for r in b] for by, b in groups.items()},
        "files": {k: p.relative_to(run_dir).as_posix() for k, p in paths.items()},
    }
    text = json.dumps(_jsonable(payload), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    paths["json"] = _write_text(run_dir / "report.json", text)
    return WrittenReport(json.loads(text), paths)


def _breakdowns(result: EvalResult, preds: Optional[Predictions], clusters: Any) -> dict[str, tuple]:
    """Per country (geocell profile only: the model's own answers), continent and hemisphere rows
    with intervals, made like ``result.intervals``; {} when it has none or there are no predictions."""
    from geocell_engine.evaluation.breakdown import breakdown

    iv = result.intervals
    if iv is None or preds is None or iv.resamples == 0 or len(preds) != result.n:
        return {}
    cl = None if clusters is None or iv.method.startswith("sample") else np.asarray(clusters).reshape(-1)
    if cl is not None and cl.size != len(preds):
        raise ReportError(f"{cl.size} cluster ids for {len(preds)} predictions")
    kw = dict(thresholds=tuple(iv.accuracy_at_km), level=iv.level, n_resamples=iv.resamples, seed=iv.seed)
    by = (["country"] if result.per_country else []) + ["continent", "hemisphere"]
    try:
        return {b: breakdown(preds, b, cl, **kw) for b in by}
    except IntervalError as exc:
        raise ReportError(f"breakdowns of {result.name}: {exc}") from exc


def _breakdown_note(result: EvalResult) -> str:
    iv = result.intervals
    scheme = iv.method.split(", ")[0] if iv is not None else ""
    units = iv.clusters_name if scheme.startswith("cluster") else "samples"
    return (f"{int(round(100 * iv.level))}% intervals in brackets: {scheme} over the {units} within each group; "
            "a group with one resampling unit has no interval.") if iv is not None else ""


def _other_metrics_markdown(results: Mapping[str, EvalResult]) -> str:
    """Balanced accuracy, F1, mAP, top-5, admin-1, cell and distance-task metrics per result."""
    columns = [
        ("country top-5 %", lambda r: _fmt_pct(r.country_top_k.get(5))),
        ("balanced acc %", lambda r: _fmt_pct(r.country.balanced_accuracy) if r.country else ""),
        ("macro F1", lambda r: f"{r.country.macro_f1:.3f}" if r.country else ""),
        ("weighted F1", lambda r: f"{r.country.weighted_f1:.3f}" if r.country else ""),
        ("mAP", lambda r: f"{r.country.mean_average_precision:.3f}"
         if r.country and r.country.mean_average_precision is not None else ""),
        ("admin-1 %", lambda r: _fmt_pct(r.admin1_accuracy)),
        ("region %", lambda r: _fmt_pct(r.level_accuracy("region"))),
        ("sub-region %", lambda r: _fmt_pct(r.level_accuracy("sub-region"))),
        ("city %", lambda r: _fmt_pct(r.level_accuracy("city"))),
        ("cell %", lambda r: _fmt_pct(r.cell_accuracy)),
        ("≤1 km %", lambda r: _fmt_pct(r.accuracy_within(1.0))),
        ("distance MAE km", lambda r: _fmt_km(r.distance_mae_km)),
        ("nearest anchor %", lambda r: _fmt_pct(r.nearest_anchor_accuracy)),
    ]
    cells = {name: [f(r) for r in results.values()] for name, f in columns}
    used = [name for name in cells if any(cells[name])]
    if not used:
        return ""
    lines = ["| predictor | " + " | ".join(used) + " |", "| --- |" + " ---: |" * len(used)]
    for i, key in enumerate(results):
        lines.append(f"| {_cell(key)} | " + " | ".join(cells[name][i] for name in used) + " |")
    return "\n".join(lines) + "\n"
