"""Calibrated prediction regions: sets of cells that hold the true location with a chosen
probability, by split conformal prediction over the model's cell probabilities.

A cell classifier gives probabilities ``p (K,)`` over K cells. Sort the cells by probability
(ties by index); the **score** of the true cell y is

- ``"mass"``: the probability mass of the cells ranked at or above y, ``sum_{j <= rank(y)} p_(j)``
  ("cumulative mass until the true cell"; deterministic);
- ``"aps"``: adaptive prediction sets (Romano, Sesia & Candès 2020): the mass ranked strictly
  above y plus ``U p_y`` with ``U ~ Uniform(0, 1)`` (randomised, so coverage is exact rather
  than at least the level).

:func:`calibrate` takes the ``ceil((n + 1) level)``-th smallest score of n calibration samples
(the validation split) as the threshold q; the region of a new image is every cell whose own
score would be ``<= q`` (a prefix of its cells by probability), and never empty (its top cell
always belongs; that can only raise coverage). When calibration and test samples are
exchangeable, the region holds the true cell with probability at least ``level`` (and at most
``level + 1 / (n + 1)`` for ``"aps"``), whatever the model: a badly calibrated model just gets
larger regions. bluemarble's validation and test splits come from different held-out regions,
so there coverage is a measurement, reported with its interval, not a guarantee.

Areas are geodesic, on the WGS84 ellipsoid (``pyproj.Geod.geometry_area_perimeter``) of each
cell's polygon (``CellSet.geometry``, lon/lat degrees); a region's area is the sum of its cells'
(cells do not overlap); its outline is the union of its cells as GeoJSON (shapely).

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(0, 2, (4000, 20))
    >>> p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    >>> y = np.array([rng.choice(20, p=row) for row in p])         # a calibrated model
    >>> cal = calibrate(p[:2000], y[:2000], level=0.9)
    >>> sets = prediction_sets(p[2000:], cal)
    >>> abs(float(sets.covers(y[2000:]).mean()) - 0.9) < 0.02, cal.n
    (True, 2000)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Sequence

import numpy as np

from geocell_engine.errors import ConformalError

__all__ = [
    "ConformalError",
    "Score",
    "ConformalCalibration",
    "PredictionSets",
    "PredictionRegion",
    "CurvePoint",
    "RegionReport",
    "conformal_scores",
    "calibrate",
    "prediction_sets",
    "cell_areas_km2",
    "region_outline",
    "prediction_region",
    "coverage_area_curve",
    "evaluate_regions",
    "format_region_report",
    "plot_coverage_area",
    "CURVE_LEVELS",
]

Score = Literal["mass", "aps"]
#: Levels of the coverage-vs-area curve.
CURVE_LEVELS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99)
_CHUNK = 4096


# ------------------------------------------------------------------------------ checks
def _probs(probs: Any, what: str = "probs") -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise ConformalError(f"{what} must be (N, K) cell probabilities, got shape {p.shape}")
    bad = ~np.isfinite(p) | (p < 0)
    if bad.any():
        i, j = map(int, np.argwhere(bad)[0])
        raise ConformalError(f"{what}[{i}, {j}] is {float(p[i, j])!r}; expected probabilities >= 0")
    sums = p.sum(axis=1)
    off = np.flatnonzero(np.abs(sums - 1.0) > 1e-3)
    if off.size:
        raise ConformalError(f"{what} row {off[0]} sums to {float(sums[off[0]]):.6g}, expected 1 "
                             f"({off.size} rows do not); pass softmax probabilities, not logits")
    return p


def _labels(true_cell: Any, n: int, k: int, what: str = "true_cell") -> np.ndarray:
    y = np.asarray(true_cell).reshape(-1)
    if y.size != n:
        raise ConformalError(f"{what} has {y.size} entries, expected {n} (one per row of probs)")
    if y.dtype.kind not in "iu":
        raise ConformalError(f"{what} must be integer cell indices, got dtype {y.dtype}")
    bad = np.flatnonzero((y < 0) | (y >= k))
    if bad.size:
        raise ConformalError(f"{what}[{bad[0]}] is {int(y[bad[0]])}; expected a cell index in [0, {k})")
    return y.astype(np.int64)


def _check_level(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0.0 < float(level) < 1.0):
        raise ConformalError(f"level must be strictly between 0 and 1 (e.g. 0.9), got {level!r}")
    return float(level)


def _check_score(score: str) -> None:
    if score not in ("mass", "aps"):
        raise ConformalError(f"score must be 'mass' or 'aps', got {score!r}")


# ------------------------------------------------------------------------------ scores and sets
def _sorted(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(order (N, K) cells by descending probability, ties by index; sorted probs; cumsum)."""
    order = np.argsort(-p, axis=1, kind="stable")
    ps = np.take_along_axis(p, order, axis=1)
    return order, ps, np.cumsum(ps, axis=1)


def conformal_scores(probs: Any, true_cell: Any, score: Score = "mass", *, seed: int = 0) -> np.ndarray:
    """Nonconformity score of each sample's true cell: ``(N,)`` in [0, 1] (see the module docstring).

    Args:
        probs: ``(N, K)`` cell probabilities (rows sum to 1).
        true_cell: ``(N,)`` int cell indices.
        score: ``"mass"`` or ``"aps"``; ``seed`` draws APS's uniforms.
    """
    _check_score(score)
    p = _probs(probs)
    y = _labels(true_cell, *p.shape)
    u = np.random.default_rng(seed).random(p.shape[0]) if score == "aps" else None
    out = np.empty(p.shape[0])
    for s in range(0, p.shape[0], _CHUNK):
        order, ps, cs = _sorted(p[s:s + _CHUNK])
        rank = np.argmax(order == y[s:s + _CHUNK, None], axis=1)
        rows = np.arange(rank.size)
        if score == "mass":
            out[s:s + _CHUNK] = cs[rows, rank]
        else:
            out[s:s + _CHUNK] = cs[rows, rank] - ps[rows, rank] * (1.0 - u[s:s + _CHUNK])
    return np.minimum(out, 1.0)


@dataclass(frozen=True)
class ConformalCalibration:
    """A calibrated threshold: regions at ``level`` hold the true cell with that probability.

    Attributes:
        level: target coverage, e.g. 0.9.
        score: ``"mass"`` or ``"aps"``.
        threshold: q, the ``ceil((n + 1) level)``-th smallest calibration score (``inf`` when
            that exceeds n: then every region is every cell).
        n: calibration samples.
        seed: APS's uniforms at calibration.
    """

    level: float
    score: str
    threshold: float
    n: int
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "score": self.score,
                "threshold": self.threshold if math.isfinite(self.threshold) else None, "n": self.n,
                "seed": self.seed}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ConformalCalibration":
        """Back from :meth:`as_dict` (e.g. stored in a checkpoint or ``report.json``)."""
        try:
            t = d["threshold"]
            return cls(level=_check_level(d["level"]), score=str(d["score"]),
                       threshold=math.inf if t is None else float(t), n=int(d["n"]), seed=int(d.get("seed", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConformalError(f"not a conformal calibration: {dict(d)!r} ({exc})") from exc


def calibrate(probs: Any, true_cell: Any, level: float = 0.9, score: Score = "mass", *, seed: int = 0
              ) -> ConformalCalibration:
    """Split conformal calibration on held-out samples (the validation split).

    Args:
        probs: ``(n, K)`` cell probabilities of the calibration samples.
        true_cell: ``(n,)`` their true cells.
        level: target coverage in (0, 1).
        score: ``"mass"`` (deterministic) or ``"aps"`` (randomised, exact coverage).
        seed: APS's uniforms.

    Raises:
        ConformalError: bad probabilities (named row), labels, level or score.
    """
    level = _check_level(level)
    s = conformal_scores(probs, true_cell, score, seed=seed)
    n = s.size
    if n == 0:
        raise ConformalError("no calibration samples")
    k = math.ceil((n + 1) * level)
    q = math.inf if k > n else float(np.sort(s)[k - 1])
    return ConformalCalibration(level=level, score=str(score), threshold=q, n=int(n), seed=int(seed))


@dataclass(frozen=True, eq=False)
class PredictionSets:
    """Regions of N samples over K cells.

    Attributes:
        mask: ``(N, K)`` bool, ``mask[i, j]``: cell j belongs to sample i's region.
        mass: ``(N,)`` the model's probability of each region (sum of its cells').
        calibration: the threshold used.
    """

    mask: np.ndarray
    mass: np.ndarray
    calibration: ConformalCalibration

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    @property
    def sizes(self) -> np.ndarray:
        """``(N,)`` cells per region."""
        return self.mask.sum(axis=1)

    def covers(self, true_cell: Any) -> np.ndarray:
        """``(N,)`` bool: the region holds the true cell."""
        y = _labels(true_cell, *self.mask.shape)
        return self.mask[np.arange(y.size), y]

    def cells(self, i: int, probs: Optional[Any] = None) -> np.ndarray:
        """The cell indices of region i (by descending probability when ``probs (K,)`` is given)."""
        idx = np.flatnonzero(self.mask[i])
        if probs is not None:
            idx = idx[np.argsort(-np.asarray(probs, dtype=np.float64)[idx], kind="stable")]
        return idx

    def areas_km2(self, cell_areas: Any) -> np.ndarray:
        """``(N,)`` km²: the sum of each region's cell areas (``cell_areas (K,)``, from
        :func:`cell_areas_km2`)."""
        a = np.asarray(cell_areas, dtype=np.float64).reshape(-1)
        if a.size != self.mask.shape[1]:
            raise ConformalError(f"{a.size} cell areas for {self.mask.shape[1]} cells")
        return self.mask.astype(np.float64) @ a


def prediction_sets(probs: Any, calibration: ConformalCalibration, *, seed: int = 1) -> PredictionSets:
    """The calibrated region of each sample: cells whose score is ``<= threshold``, top cell always.

    Args:
        probs: ``(N, K)`` cell probabilities.
        calibration: from :func:`calibrate`.
        seed: APS's uniforms for these samples (use another seed than calibration's).
    """
    if not isinstance(calibration, ConformalCalibration):
        raise ConformalError(f"calibration must be a ConformalCalibration, got {type(calibration).__name__}")
    p = _probs(probs)
    n, k = p.shape
    q = calibration.threshold
    u = np.random.default_rng(seed).random(n) if calibration.score == "aps" else None
    mask = np.zeros((n, k), dtype=bool)
    mass = np.empty(n)
    for s in range(0, n, _CHUNK):
        order, ps, cs = _sorted(p[s:s + _CHUNK])
        if calibration.score == "mass":
            score = cs
        else:
            score = cs - ps * (1.0 - u[s:s + _CHUNK, None])
        keep = score <= q + 1e-12  # the scores of one row rise along the sorted order
        keep[:, 0] = True
        rows = np.arange(order.shape[0])[:, None]
        mask[s + rows, order] = keep
        mass[s:s + _CHUNK] = (ps * keep).sum(axis=1)
    return PredictionSets(mask=mask, mass=mass, calibration=calibration)


# ------------------------------------------------------------------------------ geometry
def cell_areas_km2(cells: Any) -> np.ndarray:
    """``(K,)`` geodesic area of every cell, km², on the WGS84 ellipsoid.

    Args:
        cells: a :class:`geocell.CellSet` (or anything with a ``geometry`` array of shapely
            polygons in lon/lat degrees).

    Example:
        >>> import shapely
        >>> c = type("C", (), {"geometry": np.array([shapely.box(0, 0, 1, 1)], dtype=object)})
        >>> round(float(cell_areas_km2(c)[0]))        # one degree square at the equator
        12309
    """
    from pyproj import Geod

    geod = Geod(ellps="WGS84")
    geoms = np.asarray(getattr(cells, "geometry"), dtype=object)
    out = np.empty(geoms.size)
    for i, g in enumerate(geoms):
        if g is None or g.is_empty:
            raise ConformalError(f"cell {i} has no geometry")
        area, _ = geod.geometry_area_perimeter(g)
        out[i] = abs(area) / 1e6
    return out


def region_outline(cells: Any, members: Sequence[int], *, simplify_deg: float = 0.0) -> dict[str, Any]:
    """GeoJSON geometry (a dict) of the union of the given cells (shapely ``union_all``).

    Args:
        cells: a CellSet (``geometry`` in lon/lat degrees).
        members: cell indices.
        simplify_deg: optional ``shapely.simplify`` tolerance (degrees) to shrink the output.
    """
    import json

    import shapely

    geoms = np.asarray(cells.geometry, dtype=object)
    idx = np.asarray(members, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ConformalError("a region needs at least one cell")
    if idx.min() < 0 or idx.max() >= geoms.size:
        raise ConformalError(f"cell index {int(idx.max() if idx.max() >= geoms.size else idx.min())} outside "
                             f"[0, {geoms.size})")
    union = shapely.union_all(geoms[idx])
    if simplify_deg > 0:
        union = shapely.simplify(union, simplify_deg, preserve_topology=True)
    return json.loads(shapely.to_geojson(union))


@dataclass(frozen=True)
class PredictionRegion:
    """The calibrated region of one image (what ``predict`` returns).

    Attributes:
        cells: cell indices, most probable first; cell_ids: their ``CellSet.ids`` when known.
        probability: the model's mass on them; level: the calibrated coverage.
        area_km2: geodesic area, km².
        geojson: the outline (a GeoJSON geometry dict), or None when not asked for.
    """

    cells: tuple[int, ...]
    cell_ids: Optional[tuple[str, ...]]
    probability: float
    level: float
    area_km2: float
    geojson: Optional[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"cells": list(self.cells), "cell_ids": None if self.cell_ids is None else list(self.cell_ids),
                "probability": self.probability, "level": self.level, "area_km2": self.area_km2,
                "geojson": self.geojson}


def prediction_region(probs: Any, calibration: ConformalCalibration, cells: Any, *,
                      cell_areas: Optional[Any] = None, outline: bool = True, seed: int = 1) -> list[PredictionRegion]:
    """Regions of a few images, with cells, area and outline.

    Args:
        probs: ``(N, K)`` or ``(K,)`` cell probabilities.
        calibration: stored with the model (:meth:`ConformalCalibration.from_dict`).
        cells: the model's CellSet.
        cell_areas: ``(K,)`` km² (computed from ``cells`` when None; pass it for many calls).
        outline: build the GeoJSON outline.
    """
    p = np.atleast_2d(np.asarray(probs, dtype=np.float64))
    sets = prediction_sets(p, calibration, seed=seed)
    areas = cell_areas_km2(cells) if cell_areas is None else np.asarray(cell_areas, dtype=np.float64)
    region_area = sets.areas_km2(areas)
    ids = getattr(cells, "ids", None)
    out = []
    for i in range(len(sets)):
        members = sets.cells(i, p[i])
        out.append(PredictionRegion(
            cells=tuple(int(c) for c in members),
            cell_ids=None if ids is None else tuple(str(np.asarray(ids)[c]) for c in members),
            probability=float(sets.mass[i]), level=calibration.level, area_km2=float(region_area[i]),
            geojson=region_outline(cells, members) if outline else None))
    return out


# ------------------------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class CurvePoint:
    """One level of the coverage-vs-area curve (calibrated on one split, measured on another)."""

    level: float
    threshold: float
    coverage: float
    mean_area_km2: float
    median_area_km2: float
    mean_cells: float


def coverage_area_curve(cal_probs: Any, cal_true: Any, test_probs: Any, test_true: Any, cell_areas: Any, *,
                        levels: Sequence[float] = CURVE_LEVELS, score: Score = "mass", seed: int = 0
                        ) -> tuple[CurvePoint, ...]:
    """For each level: calibrate on (cal_probs, cal_true), then coverage and region area on test."""
    out = []
    for level in levels:
        cal = calibrate(cal_probs, cal_true, level, score, seed=seed)
        sets = prediction_sets(test_probs, cal, seed=seed + 1)
        area = sets.areas_km2(cell_areas)
        out.append(CurvePoint(level=float(level), threshold=cal.threshold, coverage=float(sets.covers(test_true).mean()),
                              mean_area_km2=float(area.mean()), median_area_km2=float(np.median(area)),
                              mean_cells=float(sets.sizes.mean())))
    return tuple(out)


@dataclass(frozen=True)
class RegionReport:
    """Calibrated regions evaluated on a test split.

    Attributes:
        calibration: the threshold (from the validation split).
        n: test samples.
        coverage: :class:`~geocell_engine.evaluation.intervals.Interval` of the share of test
            regions that hold the true cell (cluster bootstrap when clusters are given).
        mean_area_km2: Interval of the mean region area, km².
        median_area_km2: the median region area, km².
        mean_cells: cells per region, mean.
        curve: the coverage-vs-area curve.
    """

    calibration: ConformalCalibration
    n: int
    coverage: Any
    mean_area_km2: Any
    median_area_km2: float
    mean_cells: float
    curve: tuple[CurvePoint, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"calibration": self.calibration.as_dict(), "n": self.n, "coverage": self.coverage.as_dict(),
                "mean_area_km2": self.mean_area_km2.as_dict(), "median_area_km2": self.median_area_km2,
                "mean_cells": self.mean_cells, "curve": [vars(c) for c in self.curve]}


def evaluate_regions(cal_probs: Any, cal_true: Any, test_probs: Any, test_true: Any, cells_or_areas: Any, *,
                     level: float = 0.9, score: Score = "mass", clusters: Any | None = None,
                     levels: Sequence[float] = CURVE_LEVELS, n_resamples: int = 2000, seed: int = 0) -> RegionReport:
    """Calibrate on validation, measure on test: coverage with its interval, area, the curve.

    Args:
        cal_probs, cal_true: validation cell probabilities ``(n, K)`` and true cells ``(n,)``.
        test_probs, test_true: test ``(N, K)``, ``(N,)``.
        cells_or_areas: the CellSet, or ``(K,)`` cell areas in km².
        level: the calibrated level.
        clusters: ``(N,)`` held-out regions of the test samples, for a cluster bootstrap.
    """
    from geocell_engine.evaluation.intervals import bootstrap_mean

    areas = np.asarray(cells_or_areas, dtype=np.float64) if not hasattr(cells_or_areas, "geometry") \
        else cell_areas_km2(cells_or_areas)
    cal = calibrate(cal_probs, cal_true, level, score, seed=seed)
    sets = prediction_sets(test_probs, cal, seed=seed + 1)
    covered = sets.covers(test_true)
    area = sets.areas_km2(areas)
    kw = dict(n_resamples=n_resamples, seed=seed)
    return RegionReport(
        calibration=cal, n=len(sets),
        coverage=bootstrap_mean(covered, clusters, what="coverage", **kw),
        mean_area_km2=bootstrap_mean(area, clusters, what="region area", **kw),
        median_area_km2=float(np.median(area)), mean_cells=float(sets.sizes.mean()),
        curve=coverage_area_curve(cal_probs, cal_true, test_probs, test_true, areas, levels=levels, score=score,
                                  seed=seed))


def format_region_report(report: RegionReport) -> str:
    """Markdown: the calibrated level's coverage and area, then the curve table."""
    from geocell_engine.evaluation.intervals import format_interval

    c = report.calibration
    cov = format_interval(report.coverage, "pct")
    area = format_interval(report.mean_area_km2, "km")
    lines = [f"Regions calibrated on {c.n:,} validation samples at {100 * c.level:g}% ({c.score} score): "
             f"coverage on {report.n:,} test samples {cov}%, mean area {area} km² "
             f"(median {report.median_area_km2:,.0f} km², {report.mean_cells:.1f} cells).", "",
             "| level % | coverage % | mean area km² | median area km² | cells |", "| ---: | ---: | ---: | ---: | ---: |"]
    for p in report.curve:
        lines.append(f"| {100 * p.level:g} | {100 * p.coverage:.1f} | {p.mean_area_km2:,.0f} | "
                     f"{p.median_area_km2:,.0f} | {p.mean_cells:.1f} |")
    return "\n".join(lines) + "\n"


def plot_coverage_area(curve: Sequence[CurvePoint], path: Any) -> Any:
    """Coverage (y) against mean region area (x, log km²), one point per level, with the
    diagonal target levels marked; written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geocell.tables import atomic_write

    if not curve:
        raise ConformalError("an empty curve cannot be plotted")
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    x = [p.mean_area_km2 for p in curve]
    ax.plot(x, [100 * p.coverage for p in curve], "o-", label="measured coverage")
    ax.plot(x, [100 * p.level for p in curve], "k--", lw=0.8, label="level asked for")
    ax.set_xscale("log")
    ax.set_xlabel("mean region area (km²)")
    ax.set_ylabel("coverage (%)")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    try:
        return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    finally:
        plt.close(fig)
