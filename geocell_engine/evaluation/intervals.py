"""95% bootstrap confidence intervals for the metrics of `Predictions`, and paired comparisons.

Every table geocell prints is computed on a few thousand test samples, so each figure carries
sampling error. This module puts an interval on the headline metrics — median and mean km,
accuracy within each distance threshold, mean GeoScore and country top-1 — and on the
difference of each between two predictors scored on the same samples.

Two resampling schemes:

- **sample bootstrap** (no ``clusters``): samples are resampled with replacement. This is
  :func:`scipy.stats.bootstrap` (BCa by default, vectorised, every metric computed on the same
  resamples).
- **cluster bootstrap** (``clusters`` given, e.g. the held-out regions of a spatial split, see
  :func:`geocell_engine.data.regions.bluemarble_clusters`): whole clusters are resampled with
  replacement, because samples of one region are not independent (neighbouring patches look
  alike and share a country). ``scipy.stats.bootstrap`` resamples observations along an axis of
  equal-length arrays; clusters have unequal sizes and the median of the pooled samples is not a
  function of per-cluster summaries, so scipy cannot do it. The cluster bootstrap here is our
  own, vectorised: each replicate is a ``(N,)`` vector of integer sample weights (the number of
  times the sample's cluster was drawn), metrics are weighted means and an exact weighted median
  (the median of the expanded sample, as ``np.median`` would give), and BCa uses the
  leave-one-cluster-out jackknife for its acceleration. With one sample per cluster it is the
  ordinary bootstrap, and its intervals agree with scipy's (tested).

Metrics follow :func:`geocell_engine.evaluation.report.evaluate`: great-circle km
(:func:`geocell.haversine`), accuracy counts ``d <= t``, GeoScore is ``5000 exp(-d / 1492.7)``
averaged unrounded, country top-1 is over samples whose true country is known (not ``""``).

A bootstrap interval collapses to a point when every resample gives the same value (e.g. 0 of
2,000 samples within 1 km): that says the data show no spread, not that the rate is exactly 0
(a rule-of-three bound would put it below ``3 / n``). Such intervals are marked
``"... (no spread)"`` in :attr:`Interval.method`.

Example:
    >>> import numpy as np
    >>> from geocell_engine.evaluation.predictions import Predictions
    >>> rng = np.random.default_rng(0)
    >>> n = 400
    >>> lat, lon = rng.uniform(-50, 60, n), rng.uniform(-180, 180, n)
    >>> p = Predictions("demo", lat, lon, lat + rng.normal(0, 3, n), lon, np.array(["FRA"] * n),
    ...                 np.where(rng.random(n) < 0.7, "FRA", "DEU"))
    >>> r = bootstrap_intervals(p, n_resamples=500, seed=0)
    >>> r.country_top1.low < r.country_top1.point < r.country_top1.high
    True
    >>> r.median_km.n, r.median_km.level
    (400, 0.95)
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Optional, Sequence

import numpy as np

from geocell.constants import ACCURACY_THRESHOLDS_KM, GEOSCORE_SCALE_KM
from geocell_engine.errors import IntervalError
from geocell_engine.evaluation.predictions import Predictions

__all__ = [
    "IntervalError",
    "Interval",
    "MetricIntervals",
    "PairedComparison",
    "BootstrapMethod",
    "bootstrap_intervals",
    "unresampled_intervals",
    "bootstrap_macro_f1",
    "bootstrap_mean",
    "paired_comparison",
    "metric_label",
    "format_interval",
    "interval_cells",
    "format_interval_table",
    "format_paired_table",
    "interval_note",
    "DEFAULT_RESAMPLES",
    "BCA_MAX_SAMPLES",
]

BootstrapMethod = Literal["BCa", "percentile"]

#: Bootstrap replicates by default: the 2.5% and 97.5% quantiles of 2,000 replicates move by
#: about 0.1 standard errors between seeds, well below the widths reported.
DEFAULT_RESAMPLES = 2000

#: Replicates computed per vectorised batch (bounds memory at about batch x N x 8 bytes per array).
_BATCH = 250
#: Memory bound of one batch of the sample bootstrap, bytes (large N gets smaller batches).
_BATCH_BYTES = 200_000_000
#: Above this many samples BCa's jackknife (N leave-one-out statistics of N - 1 samples each,
#: O(N^2)) is too slow: the sample bootstrap uses the percentile method instead, and says so.
BCA_MAX_SAMPLES = 10_000


# ------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Interval:
    """A point estimate with its confidence interval.

    Attributes:
        point: the metric on the data as given (what :func:`evaluate` reports).
        low, high: the interval's ends, same unit as ``point`` (km, a fraction in [0, 1], or
            GeoScore points).
        level: confidence level, e.g. 0.95.
        n: samples the metric is computed over.
        n_clusters: resampling units (clusters; equals ``n`` for the sample bootstrap).
        method: how the interval was made, e.g. ``"cluster bootstrap, BCa, 2000 resamples"``.
    """

    point: float
    low: float
    high: float
    level: float
    n: int
    n_clusters: int
    method: str

    @property
    def half_width(self) -> float:
        """Half the interval's width (same unit as ``point``)."""
        return (self.high - self.low) / 2.0

    def contains(self, value: float) -> bool:
        """True when ``low <= value <= high``."""
        return bool(self.low <= value <= self.high)

    def excludes_zero(self) -> bool:
        """For a difference: True when the interval lies entirely on one side of 0."""
        return bool(self.low > 0 or self.high < 0)

    def as_dict(self) -> dict[str, Any]:
        return {"point": self.point, "low": self.low, "high": self.high, "level": self.level, "n": self.n,
                "n_clusters": self.n_clusters, "method": self.method}


def metric_label(key: str) -> str:
    """A human label of a metric key: ``"median_km"`` -> ``"median km"``, ``"accuracy_25km"`` ->
    ``"≤25 km %"``, ``"country_top1"`` -> ``"country top-1 %"``."""
    if key.startswith("accuracy_") and key.endswith("km"):
        return f"≤{key[len('accuracy_'):-2]} km %"
    return {"median_km": "median km", "mean_km": "mean km", "geoscore": "GeoScore",
            "country_top1": "country top-1 %"}.get(key, key)


def _accuracy_key(t: float) -> str:
    return f"accuracy_{float(t):g}km"


@dataclass(frozen=True)
class MetricIntervals:
    """Intervals on the headline metrics of one set of predictions (:func:`bootstrap_intervals`).

    Attributes:
        name: the predictor's name.
        n: samples; n_country: samples with a known true country; n_clusters: resampling units.
        level, method, resamples, seed: how the intervals were made (``method`` is
            ``"sample bootstrap, BCa"`` or ``"cluster bootstrap, BCa"``, ...).
        median_km, mean_km: km.
        accuracy_at_km: threshold km -> interval on the fraction of errors ``<=`` it.
        geoscore: mean GeoScore (0-5000).
        country_top1: fraction of known-country samples whose ``pred_country`` is right, or
            None when no sample has a known country.
        clusters_name: what the clusters are, for notes under tables (e.g. ``"held-out regions"``).
    """

    name: str
    n: int
    n_country: int
    n_clusters: int
    level: float
    method: str
    resamples: int
    seed: int
    median_km: Interval
    mean_km: Interval
    accuracy_at_km: Mapping[float, Interval]
    geoscore: Interval
    country_top1: Optional[Interval]
    clusters_name: str = "clusters"

    def metrics(self) -> dict[str, Interval]:
        """Flat ``{key: Interval}`` in table order (keys as :func:`metric_label` takes them)."""
        out = {"median_km": self.median_km, "mean_km": self.mean_km}
        out.update({_accuracy_key(t): v for t, v in self.accuracy_at_km.items()})
        out["geoscore"] = self.geoscore
        if self.country_top1 is not None:
            out["country_top1"] = self.country_top1
        return out

    def accuracy_within(self, km: float) -> Optional[Interval]:
        """The interval for accuracy within ``km`` if that threshold was evaluated, else None."""
        for t, v in self.accuracy_at_km.items():
            if math.isclose(float(t), float(km)):
                return v
        return None

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n, "n_country": self.n_country, "n_clusters": self.n_clusters,
                "level": self.level, "method": self.method, "resamples": self.resamples, "seed": self.seed,
                "clusters_name": self.clusters_name, "metrics": {k: v.as_dict() for k, v in self.metrics().items()}}


@dataclass(frozen=True)
class PairedComparison:
    """Two predictors on their common samples: each metric of A, of B, and A - B with an interval.

    Attributes:
        name_a, name_b: the predictors.
        n_common: samples (ids) both scored; n_only_a, n_only_b: ids only one of them has.
        n_clusters: resampling units over the common samples.
        level, method, resamples, seed: how the intervals were made.
        a, b: metric key -> point value on the common samples.
        difference: metric key -> :class:`Interval` of ``a - b`` (km for distances: negative
            means A is closer; fractions for accuracies: positive means A is more accurate).
    """

    name_a: str
    name_b: str
    n_common: int
    n_only_a: int
    n_only_b: int
    n_clusters: int
    level: float
    method: str
    resamples: int
    seed: int
    a: Mapping[str, float]
    b: Mapping[str, float]
    difference: Mapping[str, Interval] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name_a": self.name_a, "name_b": self.name_b, "n_common": self.n_common,
                "n_only_a": self.n_only_a, "n_only_b": self.n_only_b, "n_clusters": self.n_clusters,
                "level": self.level, "method": self.method, "resamples": self.resamples, "seed": self.seed,
                "a": dict(self.a), "b": dict(self.b),
                "difference": {k: v.as_dict() for k, v in self.difference.items()}}


# ------------------------------------------------------------------------------ per-sample columns
@dataclass(frozen=True)
class _Columns:
    """Per-sample quantities of one predictor, ``(N,)`` each; metrics are functions of them."""

    error_km: np.ndarray  # great-circle km
    geoscore: np.ndarray  # 0-5000
    within: np.ndarray  # (T, N) float 0/1, d <= t
    hit: np.ndarray  # float 0/1: known country and pred == true
    known: np.ndarray  # float 0/1: true country known
    thresholds: tuple[float, ...]

    def keys(self) -> list[str]:
        keys = ["median_km", "mean_km", *[_accuracy_key(t) for t in self.thresholds], "geoscore"]
        return keys + (["country_top1"] if self.known.any() else [])

    def stack(self) -> list[np.ndarray]:
        """The arrays resampled together (paired), in a fixed order."""
        return [self.error_km, self.geoscore, *self.within, self.hit, self.known]

    def take(self, index: np.ndarray) -> "_Columns":
        return _Columns(self.error_km[index], self.geoscore[index], self.within[:, index], self.hit[index],
                        self.known[index], self.thresholds)


def _finite(preds: Predictions, key: str, n: int) -> np.ndarray:
    try:
        arr = np.asarray(getattr(preds, key), dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise IntervalError(f"{preds.name}: {key} is not numeric ({exc})") from exc
    if arr.size != n:
        raise IntervalError(f"{preds.name}: {key} has {arr.size} entries, expected {n}")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise IntervalError(f"{preds.name}: {key}[{bad[0]}] is {float(arr[bad[0]])!r}; expected finite degrees "
                            f"({bad.size} such values)")
    return arr


def _columns(preds: Predictions, thresholds: Sequence[float], profile: Any = None,
             country_hits: Optional[tuple[Any, Any]] = None) -> _Columns:
    """Per-sample columns; ``profile`` (a :mod:`geocell.profiles` name or profile) sets the
    distance, the ``<=`` / ``<`` rule and GeoScore rounding (None: geocell's conventions);
    ``country_hits`` = ``(known, hits)`` ``(N,)`` bools replaces ``pred_country == true_country``
    (a profile's own country level, e.g. osv5m's reverse-geocoded one)."""
    from geocell.geodesy import geoguessr_score, haversine

    if not isinstance(preds, Predictions):
        raise IntervalError(f"expected a Predictions, got {type(preds).__name__}")
    n = len(preds)
    coords = [_finite(preds, k, n) for k in ("true_lat", "true_lon", "pred_lat", "pred_lon")]
    if np.any(np.abs(coords[0]) > 90) or np.any(np.abs(coords[2]) > 90):
        which = "true_lat" if np.any(np.abs(coords[0]) > 90) else "pred_lat"
        i = int(np.flatnonzero(np.abs(coords[0 if which == "true_lat" else 2]) > 90)[0])
        raise IntervalError(f"{preds.name}: {which}[{i}] is outside [-90, 90] degrees")
    inclusive, scale_km, rounded = True, GEOSCORE_SCALE_KM, False
    if profile is None:
        d = np.asarray(haversine(*coords), dtype=np.float64).reshape(-1)
    else:
        from geocell.metrics import error_km
        from geocell.profiles import get_profile

        prof = get_profile(profile)
        d = error_km(*coords, radius_km=prof.radius_km, distance=prof.distance, ellps=prof.ellipsoid)
        inclusive, scale_km, rounded = prof.inclusive, prof.geoscore_scale_km, prof.round_geoscore
    ts = tuple(float(t) for t in thresholds)
    for t in ts:
        if not (math.isfinite(t) and t >= 0):
            raise IntervalError(f"thresholds must be finite km >= 0, got {t!r}")
    if country_hits is None:
        true_c = np.asarray(preds.true_country, dtype=object).astype(str).reshape(-1)
        pred_c = np.asarray(preds.pred_country, dtype=object).astype(str).reshape(-1)
        known = true_c != ""
        hit = known & (pred_c == true_c)
    else:
        known, hit = (np.asarray(a, dtype=bool).reshape(-1) for a in country_hits)
        if known.size != n or hit.size != n:
            raise IntervalError(f"{preds.name}: country_hits have {known.size} / {hit.size} entries, expected {n}")
        hit = hit & known
    score = np.asarray(geoguessr_score(d, scale_km=scale_km), dtype=np.float64).reshape(-1)
    return _Columns(
        error_km=d,
        geoscore=np.round(score) if rounded else score,
        within=np.stack([(d <= t) if inclusive else (d < t) for t in ts]).astype(np.float64) if ts
        else np.zeros((0, n)),
        hit=hit.astype(np.float64),
        known=known.astype(np.float64),
        thresholds=ts,
    )


# ------------------------------------------------------------------------------ statistics
def _plain_stat(arrays: Sequence[np.ndarray], n_thresholds: int, with_country: bool, axis: int = -1) -> np.ndarray:
    """Metrics of (resampled) columns, each ``(..., N)`` -> ``(M, ...)`` (scipy's statistic form)."""
    d, g = arrays[0], arrays[1]
    within = arrays[2:2 + n_thresholds]
    hit, known = arrays[2 + n_thresholds], arrays[3 + n_thresholds]
    out = [np.median(d, axis=axis), np.mean(d, axis=axis), *[np.mean(w, axis=axis) for w in within],
           np.mean(g, axis=axis)]
    if with_country:
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.sum(hit, axis=axis) / np.sum(known, axis=axis))
    return np.stack(out)


def _weighted_median(d_sorted: np.ndarray, w_sorted: np.ndarray) -> np.ndarray:
    """Exact median of the expanded samples: ``d_sorted (N,)`` ascending, integer weights
    ``w_sorted (R, N)`` in the same order -> ``(R,)``, equal to ``np.median(np.repeat(d, w))``."""
    cs = np.cumsum(w_sorted, axis=1)
    total = cs[:, -1]
    lo = np.floor((total - 1) / 2)
    hi = np.floor(total / 2)
    i_lo = (cs <= lo[:, None]).sum(axis=1)
    i_hi = (cs <= hi[:, None]).sum(axis=1)
    last = d_sorted.size - 1
    return 0.5 * (d_sorted[np.minimum(i_lo, last)] + d_sorted[np.minimum(i_hi, last)])


class _WeightedStat:
    """Metrics of weighted samples: weights ``(R, N)`` -> ``(M, R)`` (the cluster bootstrap)."""

    def __init__(self, cols: _Columns) -> None:
        self.order = np.argsort(cols.error_km, kind="stable")
        self.d_sorted = cols.error_km[self.order]
        self.means = np.stack([cols.error_km, *cols.within, cols.geoscore])  # (2 + T, N)
        self.hit, self.known = cols.hit, cols.known
        self.with_country = bool(cols.known.any())

    def __call__(self, w: np.ndarray) -> np.ndarray:
        total = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (w @ self.means.T) / total[:, None]  # (R, 2 + T)
            out = [_weighted_median(self.d_sorted, w[:, self.order]), *means.T]
            if self.with_country:
                out.append((w @ self.hit) / (w @ self.known))
        return np.stack(out)


class _PairedWeightedStat:
    """A - B of the metrics of two predictors on the same weighted samples."""

    def __init__(self, a: _Columns, b: _Columns) -> None:
        self.a, self.b = _WeightedStat(a), _WeightedStat(b)

    def __call__(self, w: np.ndarray) -> np.ndarray:
        return self.a(w) - self.b(w)


# ------------------------------------------------------------------------------ intervals from replicates
def _bca_levels(boot: np.ndarray, point: np.ndarray, jack: np.ndarray, alpha: float) -> np.ndarray:
    """BCa quantile levels per metric: ``boot (M, B)``, ``point (M,)``, jackknife ``jack (M, J)``
    -> ``(M, 2)`` levels in [0, 1] (NaN where BCa is undefined). Same formulas as scipy's."""
    from scipy.special import ndtr, ndtri

    b = boot.shape[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = ((boot < point[:, None]).sum(axis=1) + (boot <= point[:, None]).sum(axis=1)) / (2.0 * b)
        z0 = ndtri(frac)
        dev = jack.mean(axis=1, keepdims=True) - jack
        num = (dev**3).sum(axis=1)
        den = 6.0 * ((dev**2).sum(axis=1)) ** 1.5
        a = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
        out = []
        for z_alpha in (ndtri(alpha / 2.0), ndtri(1.0 - alpha / 2.0)):
            z = z0 + z_alpha
            out.append(ndtr(z0 + z / (1.0 - a * z)))
    return np.stack(out, axis=1)


def _finish(point: np.ndarray, boot: np.ndarray, levels: Optional[np.ndarray], level: float, n: int,
            n_clusters: int, label: str) -> list[Interval]:
    """Intervals from replicates ``boot (M, B)``: BCa at ``levels (M, 2)`` where defined, else
    percentile; a metric whose replicates do not vary gets ``[point, point]``."""
    alpha = 1.0 - level
    out = []
    for m in range(point.size):
        reps = boot[m][np.isfinite(boot[m])]
        p = float(point[m])
        if reps.size == 0:
            out.append(Interval(p, math.nan, math.nan, level, n, n_clusters, f"{label} (no finite replicate)"))
            continue
        if np.ptp(reps) == 0:
            out.append(Interval(p, p, p, level, n, n_clusters, f"{label} (no spread)"))
            continue
        kind = label
        if levels is not None and np.all(np.isfinite(levels[m])):
            q = levels[m]
        else:
            q = np.array([alpha / 2.0, 1.0 - alpha / 2.0])
            if levels is not None:
                kind = label.replace("BCa", "percentile") + " (BCa undefined)"
        low, high = np.quantile(reps, q)
        out.append(Interval(p, float(low), float(high), level, n, n_clusters, kind))
    return out


def _check_args(level: float, n_resamples: int, method: str) -> None:
    if not (isinstance(level, (float, int)) and 0.0 < float(level) < 1.0):
        raise IntervalError(f"level must be a number strictly between 0 and 1 (e.g. 0.95), got {level!r}")
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 100:
        raise IntervalError(f"n_resamples must be an integer >= 100, got {n_resamples!r}")
    if method not in ("BCa", "percentile"):
        raise IntervalError(f"method must be 'BCa' or 'percentile', got {method!r}")


def _cluster_codes(clusters: Any, n: int, what: str) -> tuple[np.ndarray, int]:
    arr = np.asarray(clusters)
    if arr.ndim != 1 or arr.size != n:
        raise IntervalError(f"clusters must be a 1-D array with one id per sample ({n}), got shape {arr.shape}")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise IntervalError(f"clusters[{i}] is {float(arr[i])!r}; every sample of {what} needs a cluster id")
    _, codes = np.unique(arr.astype(str) if arr.dtype.kind == "O" else arr, return_inverse=True)
    g = int(codes.max()) + 1 if codes.size else 0
    if g < 2:
        raise IntervalError(f"a cluster bootstrap needs at least 2 clusters; {what} has {g}")
    return codes.reshape(-1), g


def _cluster_bootstrap(stat: Callable[[np.ndarray], np.ndarray], codes: np.ndarray, g: int, n_resamples: int,
                       rng: np.random.Generator, method: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Replicates ``(M, B)`` of ``stat`` under cluster resampling, and the leave-one-cluster-out
    jackknife ``(M, G)`` for BCa (None for the percentile method)."""
    n = codes.size
    parts = []
    for start in range(0, n_resamples, _BATCH):
        b = min(_BATCH, n_resamples - start)
        counts = rng.multinomial(g, np.full(g, 1.0 / g), size=b).astype(np.float64)  # (b, G)
        parts.append(stat(counts[:, codes]))
    boot = np.concatenate(parts, axis=1)
    jack = None
    if method == "BCa":
        jack_parts = []
        for start in range(0, g, _BATCH):
            drop = np.arange(start, min(g, start + _BATCH))
            w = (codes[None, :] != drop[:, None]).astype(np.float64)  # (b, N)
            jack_parts.append(stat(w))
        jack = np.concatenate(jack_parts, axis=1)
    del n
    return boot, jack


def _sample_bootstrap(arrays: list[np.ndarray], statistic: Callable[..., np.ndarray], n_resamples: int,
                      rng: np.random.Generator, method: str, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scipy.stats.bootstrap over paired samples: (low (M,), high (M,), replicates (M, B))."""
    from scipy import stats

    n = arrays[0].size
    # each batch holds (batch, N) resamples of every array: keep that near 200 MB
    batch = int(max(1, min(_BATCH, _BATCH_BYTES // max(1, 8 * n * len(arrays)))))
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # a metric without spread (0 of N within 1 km) makes BCa undefined (scipy warns and
        # divides 0 by 0): _intervals then gives [point, point] or the percentile interval
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        res = stats.bootstrap(tuple(arrays), statistic, paired=True, vectorized=True, n_resamples=int(n_resamples),
                              batch=batch, confidence_level=level, method=method, rng=rng)
    boot = np.asarray(res.bootstrap_distribution, dtype=np.float64)
    return (np.atleast_1d(res.confidence_interval.low), np.atleast_1d(res.confidence_interval.high),
            boot.reshape(-1, boot.shape[-1]))


def _intervals(point: np.ndarray, stat_plain: Callable[..., np.ndarray], stat_weighted: Callable[[np.ndarray], np.ndarray],
               arrays: list[np.ndarray], clusters: Any, n: int, what: str, level: float, n_resamples: int,
               seed: int, method: str) -> tuple[list[Interval], int, str]:
    rng = np.random.default_rng(seed)
    if clusters is None:
        if n < 2:
            raise IntervalError(f"a bootstrap needs at least 2 samples; {what} has {n}")
        if method == "BCa" and n > BCA_MAX_SAMPLES:
            method = "percentile"  # type: ignore[assignment]  # BCa's O(N^2) jackknife; see BCA_MAX_SAMPLES
        label = f"sample bootstrap, {method}, {n_resamples} resamples"
        low, high, boot = _sample_bootstrap(arrays, stat_plain, n_resamples, rng, method, level)
        # scipy's interval where it is defined; where BCa is not (no spread, or a degenerate
        # jackknife), _finish gives [point, point] or the percentile interval of the same replicates
        fallback = _finish(point, boot, np.full((point.size, 2), np.nan) if method == "BCa" else None,
                           level, n, n, label)
        out = []
        for m, iv in enumerate(fallback):
            if np.isfinite(low[m]) and np.isfinite(high[m]) and not iv.method.endswith("(no spread)"):
                iv = Interval(iv.point, float(low[m]), float(high[m]), level, n, n, label)
            out.append(iv)
        return out, n, "sample bootstrap, " + method
    codes, g = _cluster_codes(clusters, n, what)
    label = f"cluster bootstrap, {method}, {n_resamples} resamples"
    boot, jack = _cluster_bootstrap(stat_weighted, codes, g, n_resamples, rng, method)
    levels = _bca_levels(boot, point, jack, 1.0 - level) if jack is not None else None
    return _finish(point, boot, levels, level, n, g, label), g, "cluster bootstrap, " + method


# ------------------------------------------------------------------------------ public API
def bootstrap_intervals(
    preds: Predictions,
    clusters: Any | None = None,
    *,
    thresholds: Sequence[float] = ACCURACY_THRESHOLDS_KM,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    method: BootstrapMethod = "BCa",
    profile: Any = None,
    country_hits: Optional[tuple[Any, Any]] = None,
    clusters_name: str = "clusters",
) -> MetricIntervals:
    """Bootstrap intervals on median / mean km, accuracy at each threshold, GeoScore, country top-1.

    Args:
        preds: N samples (the same fields :func:`~geocell_engine.evaluation.report.evaluate` reads).
        clusters: ``(N,)`` cluster ids (any hashable values: ints, strings), e.g. the held-out
            region of each sample; None resamples samples. With clusters, whole clusters are
            resampled (see the module docstring) and at least 2 are needed.
        thresholds: km; accuracy is the fraction of errors ``<=`` each.
        level: confidence level (0.95 gives 95% intervals).
        n_resamples: bootstrap replicates (>= 100).
        seed: seeds ``numpy.random.default_rng``; the same seed gives the same intervals.
        method: ``"BCa"`` (bias-corrected and accelerated, the default of
            :func:`scipy.stats.bootstrap`) or ``"percentile"``. The sample bootstrap of more
            than :data:`BCA_MAX_SAMPLES` samples uses the percentile method (BCa's jackknife is
            quadratic in N); ``method`` of the result says which was used.
        profile: a :mod:`geocell.profiles` name (or profile) whose distance, ``<=`` / ``<`` rule
            and GeoScore rounding the metrics follow, so that each point estimate equals
            ``evaluate(preds, profile=...)``; None: geocell's (the same numbers as
            ``"geocell"``).
        country_hits: ``(known, hits)``, ``(N,)`` bools: the country level to put an interval
            on instead of ``pred_country == true_country`` (e.g. a profile's
            :class:`~geocell.profiles.LevelAccuracy` ``known`` / ``hits``).
        clusters_name: what the clusters are (``"held-out regions"``), for the note under tables.

    Returns:
        :class:`MetricIntervals`; each point estimate equals what ``evaluate`` reports.

    Raises:
        IntervalError: not a Predictions, a NaN or out-of-range coordinate (named with its index),
            fewer than 2 samples / clusters, clusters of the wrong length, a bad level, method or
            resample count.
    """
    _check_args(level, n_resamples, method)
    cols = _columns(preds, thresholds, profile, country_hits)
    n = cols.error_km.size
    with_country = bool(cols.known.any())
    arrays = cols.stack()
    t = len(cols.thresholds)
    stat_plain = lambda *a, axis=-1: _plain_stat(a, t, with_country, axis=axis)  # noqa: E731
    point = stat_plain(*arrays)
    ivs, g, label = _intervals(point, stat_plain, _WeightedStat(cols), arrays, clusters, n, repr(preds.name),
                               level, n_resamples, seed, method)
    by_key = dict(zip(cols.keys(), ivs))
    country = by_key.get("country_top1")
    if country is not None:
        n_country = int(cols.known.sum())
        country = Interval(country.point, country.low, country.high, level, n_country, country.n_clusters,
                           country.method)
    return MetricIntervals(
        name=str(preds.name), n=n, n_country=int(cols.known.sum()), n_clusters=g, level=float(level),
        method=label, resamples=int(n_resamples), seed=int(seed),
        median_km=by_key["median_km"], mean_km=by_key["mean_km"],
        accuracy_at_km={tt: by_key[_accuracy_key(tt)] for tt in cols.thresholds},
        geoscore=by_key["geoscore"], country_top1=country, clusters_name=str(clusters_name),
    )


def bootstrap_mean(
    values: Any,
    clusters: Any | None = None,
    *,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    method: BootstrapMethod = "BCa",
    what: str = "values",
) -> Interval:
    """Interval on the mean of any per-sample quantity (a coverage indicator, a region's area),
    by the same sample / cluster bootstrap as :func:`bootstrap_intervals`.

    Args:
        values: ``(N,)`` finite numbers (bools count as 0 / 1).
        clusters: ``(N,)`` cluster ids, or None.
        what: how error messages name ``values``.

    Example:
        >>> iv = bootstrap_mean(np.r_[np.ones(90), np.zeros(10)], n_resamples=500)
        >>> iv.point, iv.low < 0.9 < iv.high
        (0.9, True)
    """
    _check_args(level, n_resamples, method)
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise IntervalError(f"{what}[{bad[0]}] is {float(x[bad[0]])!r}; expected finite numbers ({bad.size} such)")
    point = np.array([x.mean()]) if x.size else np.array([math.nan])
    stat_plain = lambda a, axis=-1: np.mean(a, axis=axis)[None]  # noqa: E731

    def stat_weighted(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return ((w @ x) / w.sum(axis=1))[None]

    ivs, _, _ = _intervals(point, stat_plain, stat_weighted, [x], clusters, x.size, what, level, n_resamples,
                           seed, method)
    return ivs[0]


def bootstrap_macro_f1(
    true: Any,
    pred: Any,
    clusters: Any | None = None,
    *,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    method: BootstrapMethod = "BCa",
) -> Interval:
    """Interval on the macro F1 of class labels, by the cluster bootstrap of
    :func:`bootstrap_intervals` (each sample its own cluster when ``clusters`` is None).

    The statistic is scikit-learn's ``f1_score(average="macro", zero_division=0)``: the unweighted
    mean, over the classes in the (resampled) truth or guesses, of ``2 TP / (2 TP + FP + FN)``.
    A resample weights every sample by how often its cluster was drawn, so the statistic is a
    function of the weights: per class ``TP = w . hit``, ``2 TP + FP + FN = w . true + w . guessed``.

    Args:
        true, pred: ``(N,)`` labels (e.g. country codes).
        clusters: ``(N,)`` cluster ids, or None.

    Example:
        >>> iv = bootstrap_macro_f1(list("aabbbc") * 20, list("abbbbc") * 20, n_resamples=500)
        >>> round(iv.point, 3), iv.low < iv.point < iv.high
        (0.841, True)
    """
    _check_args(level, n_resamples, method)
    t = np.asarray(true).astype(str).reshape(-1)
    p = np.asarray(pred).astype(str).reshape(-1)
    if t.size != p.size:
        raise IntervalError(f"true has {t.size} labels but pred has {p.size}")
    n = t.size
    if n < 2:
        raise IntervalError(f"a bootstrap needs at least 2 samples; the labels have {n}")
    _, codes = np.unique(np.concatenate([t, p]), return_inverse=True)
    eye = np.eye(int(codes.max()) + 1)
    is_true, is_guess = eye[codes[:n]], eye[codes[n:]]  # (N, C) one-hot each
    hit = is_true * is_guess

    def stat(w: np.ndarray) -> np.ndarray:  # (B, N) weights -> (1, B)
        both = w @ is_true + w @ is_guess  # 2 TP + FP + FN per class, (B, C)
        present = both > 0
        f1 = np.where(present, 2.0 * (w @ hit) / np.where(present, both, 1.0), 0.0)
        return (f1.sum(axis=1) / np.maximum(present.sum(axis=1), 1))[None]

    point = stat(np.ones((1, n)))[:, 0]
    if clusters is None:
        cluster_codes, g = np.arange(n), n
    else:
        cluster_codes, g = _cluster_codes(clusters, n, "the labels")
    if method == "BCa" and g > BCA_MAX_SAMPLES:
        method = "percentile"  # type: ignore[assignment]  # the jackknife is O(G x N); see BCA_MAX_SAMPLES
    kind = "sample" if clusters is None else "cluster"
    label = f"{kind} bootstrap, {method}, {n_resamples} resamples"
    boot, jack = _cluster_bootstrap(stat, cluster_codes, g, n_resamples, np.random.default_rng(seed), method)
    levels = _bca_levels(boot, point, jack, 1.0 - level) if jack is not None else None
    return _finish(point, boot, levels, level, n, g, label)[0]


def unresampled_intervals(preds: Predictions, n_clusters: int, reason: str, *,
                          thresholds: Sequence[float] = ACCURACY_THRESHOLDS_KM, level: float = 0.95,
                          profile: Any = None, country_hits: Optional[tuple[Any, Any]] = None) -> MetricIntervals:
    """The point estimates of :func:`bootstrap_intervals` with NaN interval ends, for a group too
    small to resample (one sample, or one cluster); ``reason`` goes into each ``method``."""
    cols = _columns(preds, thresholds, profile, country_hits)
    with_country = bool(cols.known.any())
    point = _plain_stat(cols.stack(), len(cols.thresholds), with_country)
    n = cols.error_km.size
    ivs = dict(zip(cols.keys(), (Interval(float(v), math.nan, math.nan, float(level), n, int(n_clusters), reason)
                                  for v in point)))
    country = ivs.get("country_top1")
    if country is not None:
        country = Interval(country.point, math.nan, math.nan, float(level), int(cols.known.sum()), int(n_clusters),
                           reason)
    return MetricIntervals(
        name=str(preds.name), n=n, n_country=int(cols.known.sum()), n_clusters=int(n_clusters), level=float(level),
        method=reason, resamples=0, seed=0, median_km=ivs["median_km"], mean_km=ivs["mean_km"],
        accuracy_at_km={t: ivs[_accuracy_key(t)] for t in cols.thresholds}, geoscore=ivs["geoscore"],
        country_top1=country)


def _ids(preds: Predictions, which: str) -> np.ndarray:
    if preds.ids is None:
        raise IntervalError(f"{which} ({preds.name!r}) has no ids; a paired comparison matches samples by id")
    ids = np.asarray(preds.ids, dtype=object).astype(str).reshape(-1)
    uniq, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        dup = uniq[counts > 1]
        raise IntervalError(f"{which} ({preds.name!r}) lists id {str(dup[0])!r} {int(counts[counts > 1][0])} times "
                            f"({dup.size} duplicated ids); ids must be unique")
    return ids


def paired_comparison(
    a: Predictions,
    b: Predictions,
    clusters: Any | None = None,
    *,
    thresholds: Sequence[float] = ACCURACY_THRESHOLDS_KM,
    level: float = 0.95,
    n_resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    method: BootstrapMethod = "BCa",
    coordinate_tolerance_deg: float = 1e-5,
) -> PairedComparison:
    """Compare two predictors on the samples both scored (matched by id): A - B with intervals.

    The same resample (of samples, or of clusters) is applied to both predictors, so the
    interval of the difference accounts for their correlation: it is much narrower than the
    two separate intervals suggest when both models fail on the same hard samples.

    Args:
        a, b: predictions with ``ids``; only ids present in both are compared (A's order).
        clusters: ``(N_a,)`` cluster ids aligned with ``a`` (e.g. held-out regions), or a
            mapping id -> cluster; None for the sample bootstrap.
        thresholds, level, n_resamples, seed, method: as in :func:`bootstrap_intervals`.
        coordinate_tolerance_deg: the true coordinates of a common id must agree this closely
            (a CSV round trip rounds them), else the files do not describe the same samples.

    Returns:
        :class:`PairedComparison`.

    Raises:
        IntervalError: missing or duplicated ids, fewer than 2 common ids, a common id whose
            truths differ between the files (named), bad clusters.

    Example:
        >>> import numpy as np
        >>> from geocell_engine.evaluation.predictions import Predictions
        >>> lat = np.linspace(-40, 40, 300); lon = np.zeros(300); c = np.array(["BRA"] * 300)
        >>> ids = np.arange(300).astype(str)
        >>> good = Predictions("good", lat, lon, lat + 1, lon, c, c, ids=ids)
        >>> bad = Predictions("bad", lat, lon, lat + 5, lon, c, c, ids=ids)
        >>> d = paired_comparison(good, bad, n_resamples=200).difference["median_km"]
        >>> round(d.point), d.excludes_zero()
        (-445, True)
    """
    _check_args(level, n_resamples, method)
    ids_a, ids_b = _ids(a, "A"), _ids(b, "B")
    common = np.isin(ids_a, ids_b)
    ia = np.flatnonzero(common)
    pos_b = {v: i for i, v in enumerate(ids_b.tolist())}
    ib = np.array([pos_b[v] for v in ids_a[ia].tolist()], dtype=np.int64)
    if ia.size < 2:
        raise IntervalError(f"{a.name!r} and {b.name!r} share {ia.size} ids; a paired comparison needs at least 2")
    cols_a = _columns(a, thresholds).take(ia)
    cols_b = _columns(b, thresholds).take(ib)
    for key in ("true_lat", "true_lon"):
        va = np.asarray(getattr(a, key), dtype=np.float64)[ia]
        vb = np.asarray(getattr(b, key), dtype=np.float64)[ib]
        diff = np.abs(va - vb)
        if key == "true_lon":
            diff = np.minimum(diff, 360.0 - diff)
        bad = np.flatnonzero(diff > coordinate_tolerance_deg)
        if bad.size:
            j = bad[0]
            raise IntervalError(f"id {str(ids_a[ia][j])!r}: {key} is {float(va[j])!r} in {a.name!r} but "
                                f"{float(vb[j])!r} in {b.name!r}; "
                                f"the two files do not describe the same samples ({bad.size} such ids)")
    ta = np.asarray(a.true_country, dtype=object).astype(str)[ia]
    tb = np.asarray(b.true_country, dtype=object).astype(str)[ib]
    if np.any(ta != tb):
        j = int(np.flatnonzero(ta != tb)[0])
        raise IntervalError(f"id {str(ids_a[ia][j])!r}: true_country is {str(ta[j])!r} in {a.name!r} but "
                            f"{str(tb[j])!r} in {b.name!r}")
    if clusters is not None:
        if isinstance(clusters, Mapping):
            missing = [v for v in ids_a[ia].tolist() if v not in clusters]
            if missing:
                raise IntervalError(f"clusters has no entry for id {str(missing[0])!r} ({len(missing)} common ids "
                                    "lack one)")
            clusters = np.asarray([clusters[v] for v in ids_a[ia].tolist()])
        else:
            clusters = np.asarray(clusters)
            if clusters.ndim != 1 or clusters.size != len(a):
                raise IntervalError(f"clusters must be aligned with A: {len(a)} ids expected, got shape {clusters.shape}")
            clusters = clusters[ia]
    n = ia.size
    t = len(cols_a.thresholds)
    with_country = bool(cols_a.known.any())
    arrays = cols_a.stack() + cols_b.stack()
    k = len(cols_a.stack())

    def stat_plain(*arr, axis=-1):
        return (_plain_stat(arr[:k], t, with_country, axis=axis)
                - _plain_stat(arr[k:], t, with_country, axis=axis))

    point_a = _plain_stat(cols_a.stack(), t, with_country)
    point_b = _plain_stat(cols_b.stack(), t, with_country)
    ivs, g, label = _intervals(point_a - point_b, stat_plain, _PairedWeightedStat(cols_a, cols_b), arrays,
                               clusters, n, f"the {n} common samples", level, n_resamples, seed, method)
    keys = cols_a.keys()
    return PairedComparison(
        name_a=str(a.name), name_b=str(b.name), n_common=int(n), n_only_a=int(len(a) - n),
        n_only_b=int(len(b) - n), n_clusters=g, level=float(level), method=label, resamples=int(n_resamples),
        seed=int(seed), a=dict(zip(keys, point_a.tolist())), b=dict(zip(keys, point_b.tolist())),
        difference=dict(zip(keys, ivs)),
    )


# ------------------------------------------------------------------------------ formatting
def _fmt_number(value: float, kind: str, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return ""
    sign = "+" if signed and value > 0 else ""
    if kind == "pct":
        return f"{sign}{100 * value:.1f}"
    if kind == "km":
        return f"{sign}{value:,.0f}" if abs(value) >= 100 else f"{sign}{value:.1f}"
    return f"{sign}{value:,.0f}"


def _kind(key: str) -> str:
    return "km" if key.endswith("_km") and not key.startswith("accuracy_") else (
        "pct" if key.startswith("accuracy_") or key == "country_top1" else "score")


def format_interval(interval: Optional[Interval], kind: Literal["km", "pct", "score"] = "km",
                    signed: bool = False) -> str:
    """``"2,235 (2,101–2,390)"``: the point and its interval, in the unit of ``kind``.

    ``"km"``: km, no decimals from 100 km up; ``"pct"``: a fraction shown as a percentage with
    one decimal; ``"score"``: GeoScore points. ``signed`` (for differences) prefixes positive
    values with ``+`` and writes the interval as ``(low to high)``, since its ends may be
    negative. None gives ``""``.

    Example:
        >>> format_interval(Interval(0.244, 0.21, 0.279, 0.95, 2000, 68, "x"), "pct")
        '24.4 (21.0–27.9)'
        >>> format_interval(Interval(-52.3, -105.0, -6.8, 0.95, 2000, 68, "x"), "km", signed=True)
        '-52.3 (-105 to -6.8)'
    """
    if interval is None:
        return ""
    point = _fmt_number(interval.point, kind, signed)
    if not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return point
    low, high = _fmt_number(interval.low, kind, signed), _fmt_number(interval.high, kind, signed)
    return f"{point} ({low} to {high})" if signed else f"{point} ({low}–{high})"


def interval_cells(result: MetricIntervals, thresholds: Sequence[float]) -> dict[str, str]:
    """The formatted cells of one row, keyed by column header: ``"median km"``, ``"mean km"``,
    ``"≤25 km %"`` for each of ``thresholds`` (blank when not evaluated), ``"GeoScore"``,
    ``"country top-1 %"``. What ``comparison_table`` can put in place of its point values."""
    cells = {"median km": format_interval(result.median_km, "km"), "mean km": format_interval(result.mean_km, "km")}
    for t in thresholds:
        cells[f"≤{float(t):g} km %"] = format_interval(result.accuracy_within(t), "pct")
    cells["GeoScore"] = format_interval(result.geoscore, "score")
    cells["country top-1 %"] = format_interval(result.country_top1, "pct")
    return cells


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _note(results: Sequence[Any], clusters_name: Optional[str] = None) -> str:
    """``"95% intervals in brackets: cluster bootstrap over 68 clusters (BCa); 2,000 resamples, seed 0."``"""
    resampled = [r for r in results if r.resamples > 0]
    parts = []
    for method, g in dict.fromkeys((r.method, r.n_clusters) for r in resampled):
        scheme, kind = (method.split(", ", 1) + [""])[:2]
        names = clusters_name or next((getattr(r, "clusters_name", "clusters") for r in resampled
                                       if (r.method, r.n_clusters) == (method, g)), "clusters")
        units = names if scheme.startswith("cluster") else "samples"
        parts.append(f"{scheme} over {g:,} {units}" + (f" ({kind})" if kind else ""))
    bare = list(dict.fromkeys(r.method for r in results if r.resamples == 0))
    if not resampled:
        return "No intervals: " + "; ".join(bare) + "."
    r = resampled[0]
    text = (f"{int(round(100 * r.level))}% intervals in brackets: {'; '.join(parts)}; "
            f"{r.resamples:,} resamples, seed {r.seed}.")
    if bare:
        text += " No interval where " + "; ".join(bare) + "."
    return text


def interval_note(results: Sequence[MetricIntervals], clusters_name: Optional[str] = None) -> str:
    """The line under a table with intervals: the level, the scheme and its resampling units
    (``clusters_name``, default each result's own :attr:`MetricIntervals.clusters_name`),
    the resamples and the seed; results without an interval (``resamples == 0``,
    :func:`unresampled_intervals`) are named with their reason.

    Example:
        >>> import numpy as np
        >>> from geocell_engine.evaluation.predictions import Predictions
        >>> lat = np.linspace(-40, 40, 50); p = Predictions("m", lat, lat * 0, lat + 1, lat * 0, lat.astype(str), lat.astype(str))
        >>> interval_note([bootstrap_intervals(p, np.arange(50) // 5, n_resamples=200)], "held-out regions")
        '95% intervals in brackets: cluster bootstrap over 10 held-out regions (BCa); 200 resamples, seed 0.'
    """
    results = list(results)
    if not results:
        return ""
    return _note(results, clusters_name)


def format_interval_table(results: Sequence[MetricIntervals], names: Optional[Sequence[str]] = None,
                          thresholds: Optional[Sequence[float]] = None, *, note: bool = True) -> str:
    """Markdown table of point estimates with their intervals, one row per predictor.

    Columns as ``comparison_table``'s (median km, mean km, % within each of ``thresholds``,
    GeoScore, country top-1 %), each cell ``"point (low–high)"``; a line under the table says
    how the intervals were made.

    Args:
        results: from :func:`bootstrap_intervals`, in row order.
        names: row labels (default: each result's name).
        thresholds: km columns (default: the report's ``TABLE_THRESHOLDS_KM``).
        note: append the line that names the method, level, resamples and seed.

    Example:
        >>> print(format_interval_table([], note=False).splitlines()[0])
        | predictor | median km | mean km | ≤25 km % | ≤200 km % | ≤750 km % | ≤2500 km % | GeoScore | country top-1 % |
    """
    if thresholds is None:
        from geocell_engine.evaluation.report import TABLE_THRESHOLDS_KM

        thresholds = TABLE_THRESHOLDS_KM
    results = list(results)
    for i, r in enumerate(results):
        if not isinstance(r, MetricIntervals):
            raise IntervalError(f"results[{i}] is a {type(r).__name__}, expected a MetricIntervals")
    names = [r.name for r in results] if names is None else [str(x) for x in names]
    if len(names) != len(results):
        raise IntervalError(f"{len(names)} names for {len(results)} results")
    header = ["predictor", "median km", "mean km", *[f"≤{float(t):g} km %" for t in thresholds], "GeoScore",
              "country top-1 %"]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |"]
    for name, r in zip(names, results):
        cells = interval_cells(r, thresholds)
        lines.append("| " + " | ".join([_cell(name), *[cells[h] for h in header[1:]]]) + " |")
    text = "\n".join(lines) + "\n"
    if note and results:
        text += "\n" + _note(results) + "\n"
    return text


def format_paired_table(comparison: PairedComparison) -> str:
    """Markdown table: metric | A | B | A − B with its interval; a line says how many ids matched
    and how the intervals were made.

    Example:
        >>> c = PairedComparison("m1", "m2", 10, 0, 2, 10, 0.95, "sample bootstrap, BCa", 1000, 0,
        ...                      {"median_km": 100.0}, {"median_km": 150.0},
        ...                      {"median_km": Interval(-50.0, -80.0, -20.0, 0.95, 10, 10, "x")})
        >>> print(format_paired_table(c).splitlines()[2])
        | median km | 100 | 150 | -50.0 (-80.0 to -20.0) |
    """
    if not isinstance(comparison, PairedComparison):
        raise IntervalError(f"expected a PairedComparison, got {type(comparison).__name__}")
    c = comparison
    lines = [f"| metric | {_cell(c.name_a)} | {_cell(c.name_b)} | difference (A − B) |",
             "| --- | ---: | ---: | ---: |"]
    for key, iv in c.difference.items():
        kind = _kind(key)
        lines.append(f"| {metric_label(key)} | {_fmt_number(c.a[key], kind)} | {_fmt_number(c.b[key], kind)} | "
                     f"{format_interval(iv, kind, signed=True)} |")
    units = "clusters" if c.method.startswith("cluster") else "samples"
    text = "\n".join(lines) + "\n\n"
    text += (f"{c.n_common:,} common ids ({c.n_only_a:,} only in A, {c.n_only_b:,} only in B); "
             f"{int(round(100 * c.level))}% intervals: {c.method.split(',')[0]} over {c.n_clusters:,} {units} "
             f"({c.method.split(', ')[-1]}, {c.resamples:,} resamples, seed {c.seed}). Differences in km: negative "
             f"means A is closer; in % points: positive means A is more accurate.\n")
    return text
