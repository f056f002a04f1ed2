"""PNG figures of a run and of a study: training curves, country confusion, world map of errors, per-country bars, study curves.

Every function draws on its own ``matplotlib.figure.Figure`` attached to an Agg canvas (no
pyplot, no change to the global backend, nothing imported before the first call), writes the
PNG atomically (temporary file + rename) and returns its path.

Example:
    >>> import tempfile, os
    >>> path = plot_training_curves([{"epoch": 1, "train_loss": 2.0}, {"epoch": 2, "train_loss": 1.5}],
    ...                             os.path.join(tempfile.mkdtemp(), "curves.png"))
    >>> path.name
    'curves.png'
"""

from __future__ import annotations

import functools
import math
import numbers
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from geocell.tables import atomic_write
from geocell_engine.errors import PlotError

__all__ = [
    "PlotError",
    "plot_training_curves",
    "plot_confusion",
    "plot_world_map",
    "plot_per_country_accuracy",
    "plot_study_curves",
]

_DPI = 110



def _figure(width: float, height: float):
    """A Figure drawn by the Agg canvas, independent of pyplot and of the global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise PlotError(f"{path}: plots are written as PNG; expected a name ending in .png")
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI))


# ------------------------------------------------------------------------------ training curves
_GROUPS = ("loss", "error (km)", "accuracy", "GeoScore", "learning rate", "time", "other")


def _group_of(key: str) -> str:
    tokens = key.lower().replace("-", "_").split("_")
    low = key.lower()
    if low == "lr" or tokens[0] == "lr" or "lr" in tokens or "learning_rate" in low:
        return "learning rate"
    if "loss" in tokens or low.endswith("loss"):
        return "loss"
    if "km" in tokens or low.endswith("_km"):
        return "error (km)"
    if "geoscore" in low:
        return "GeoScore"
    if any(t in ("acc", "accuracy", "f1", "map", "top1", "top3", "top5", "balanced", "precision", "recall")
           for t in tokens):
        return "accuracy"
    if any(t in ("time", "seconds", "s", "sec", "images", "ips", "throughput") for t in tokens):
        return "time"
    return "other"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Per-epoch metrics, one panel per kind: losses, km errors, accuracies, GeoScore, learning
    rate (log scale), timings, anything else numeric.

    Args:
        history: per-epoch dicts such as ``{"epoch": 1, "train_loss": 2.1, "val_loss": 2.3,
            "val_median_km": 812.0, "val_country_acc": 0.41, "lr": 3e-4}``. Every numeric key
            is plotted against ``epoch`` (or the row number when absent); a key missing from
            some rows leaves a gap. Non-numeric values are ignored.
        path: the PNG to write.

    Raises:
        PlotError: no rows, a row that is not a mapping, or no numeric key besides epoch.
    """
    if isinstance(history, Mapping) or not isinstance(history, Sequence):
        raise PlotError(f"history must be a list of per-epoch dicts, got {type(history).__name__}")
    if len(history) == 0:
        raise PlotError("history is empty; nothing to plot")
    for i, row in enumerate(history):
        if not isinstance(row, Mapping):
            raise PlotError(f"history[{i}] is a {type(row).__name__}, expected a dict of metrics")
    x = np.array([row["epoch"] if _is_number(row.get("epoch")) else i + 1 for i, row in enumerate(history)],
                 dtype=np.float64)
    keys: list[str] = []
    for row in history:
        for key, value in row.items():
            if key not in ("epoch", "step") and key not in keys and _is_number(value):
                keys.append(key)
    if not keys:
        raise PlotError(f"history has no numeric metric besides epoch (keys: {sorted(history[0])})")
    grouped: dict[str, list[str]] = {}
    for key in keys:
        grouped.setdefault(_group_of(key), []).append(key)
    panels = [g for g in _GROUPS if g in grouped]
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = _figure(4.6 * ncols, 3.3 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, group in zip(axes, panels):
        for key in grouped[group]:
            y = np.array([row[key] if _is_number(row.get(key)) else np.nan for row in history], dtype=np.float64)
            style = "--" if key.lower().startswith(("val", "valid")) else "-"
            ax.plot(x, y, style, marker="o", markersize=3, linewidth=1.3, label=key)
        if group == "learning rate":
            values = np.array([row.get(k) for row in history for k in grouped[group] if _is_number(row.get(k))],
                              dtype=np.float64)
            if values.size and np.all(values > 0):
                ax.set_yscale("log")
        ax.set_title(group)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.suptitle("Training curves")
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ confusion matrix
def plot_confusion(true_country: Any, pred_country: Any, path: str | Path, top: int = 20) -> Path:
    """Row-normalised country confusion matrix of the ``top`` most frequent true countries.

    Rows are true countries (most frequent first; "" = unknown is left out); columns are the
    same countries plus "other" (every prediction outside them), so each row sums to 1.

    Args:
        true_country, pred_country: ``(N,)`` labels (adm0_a3).
        path: the PNG to write.
        top: how many countries to show.
    """
    true = np.asarray(true_country).astype(str).reshape(-1)
    pred = np.asarray(pred_country).astype(str).reshape(-1)
    if true.shape != pred.shape:
        raise PlotError(f"true_country has {true.size} entries but pred_country has {pred.size}")
    if top < 1:
        raise PlotError(f"top must be >= 1, got {top}")
    known = true != ""
    if not known.any():
        raise PlotError("no sample has a known true country; nothing to plot")
    labels, counts = np.unique(true[known], return_counts=True)
    order = np.lexsort((labels, -counts))[:top]
    labels = labels[order]
    k = labels.size
    index = {lab: i for i, lab in enumerate(labels.tolist())}
    rows = np.array([index.get(t, -1) for t in true.tolist()])
    cols = np.array([index.get(p, k) for p in pred.tolist()])
    keep = rows >= 0
    matrix = np.zeros((k, k + 1), dtype=np.float64)
    np.add.at(matrix, (rows[keep], cols[keep]), 1.0)
    matrix /= matrix.sum(axis=1, keepdims=True)

    side = 2.0 + 0.42 * (k + 1)
    fig = _figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0, aspect="equal")
    ax.set_xticks(np.arange(k + 1), labels=[*labels.tolist(), "other"], rotation=90, fontsize=8)
    ax.set_yticks(np.arange(k), labels=labels.tolist(), fontsize=8)
    ax.set_xlabel("predicted country")
    ax.set_ylabel("true country")
    if k <= 30:
        for i, j in zip(*np.nonzero(matrix >= 0.005)):
            value = matrix[i, j]
            ax.text(j, i, f"{value:.2f}"[1:] if value < 1 else "1", ha="center", va="center", fontsize=6,
                    color="white" if value > 0.6 else "black")
    accuracy = float(np.mean(true[known] == pred[known]))
    ax.set_title(f"Country confusion, top {k} countries (row-normalised)\n"
                 f"{int(known.sum())} samples, accuracy {100 * accuracy:.1f}%", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ world map
@functools.lru_cache(maxsize=2)
def _country_outlines(tolerance_deg: float = 0.1) -> tuple[np.ndarray, ...]:
    """Exterior rings of the shipped admin-0 polygons, simplified, as ``(K_i, 2)`` lon/lat arrays."""
    import shapely

    from geocell.boundaries import load_admin0

    parts = shapely.get_parts(np.asarray(load_admin0().geometry.values))
    rings = shapely.simplify(shapely.get_exterior_ring(parts), tolerance_deg, preserve_topology=False)
    coords, idx = shapely.get_coordinates(rings, return_index=True)
    return tuple(np.split(coords, np.flatnonzero(np.diff(idx)) + 1)) if coords.size else ()


def _segments(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Straight lon/lat segments from points 1 to points 2; pairs more than 180 degrees of
    longitude apart go the short way round, as two segments leaving the map at each side.

    Returns (segments (S, 2, 2), index of the pair of each segment (S,)).
    """
    dlon = (lon2 - lon1 + 180.0) % 360.0 - 180.0
    wraps = np.abs(lon2 - lon1) > 180.0
    end_lon = lon1 + dlon  # may lie outside [-180, 180] for wrapping pairs
    first = np.stack([np.c_[lon1, lat1], np.c_[end_lon, lat2]], axis=1)
    second = np.stack([np.c_[lon2 - dlon, lat1], np.c_[lon2, lat2]], axis=1)[wraps]
    segs = np.concatenate([first, second])
    pair = np.concatenate([np.arange(lat1.size), np.flatnonzero(wraps)])
    return segs, pair


def plot_world_map(preds: Any, path: str | Path, max_lines: int = 500, seed: int = 0) -> Path:
    """World map of guesses: country outlines, true points, guesses, and lines coloured by error.

    Equirectangular (lon/lat degrees) axes; country outlines from
    :func:`geocell.boundaries.load_admin0` in light grey (loaded once per process); true points
    in black, guesses in red; a random subset of at most ``max_lines`` samples (fixed ``seed``)
    gets a thin line from truth to guess, coloured by error on a log km scale.

    Args:
        preds: a :class:`geocell_engine.evaluation.predictions.Predictions`.
        path: the PNG to write.
        max_lines: the most truth-to-guess lines drawn (0 = none).
    """
    from matplotlib.collections import LineCollection
    from matplotlib.colors import LogNorm

    from geocell.geodesy import haversine

    true_lat, true_lon = np.asarray(preds.true_lat, float), np.asarray(preds.true_lon, float)
    pred_lat, pred_lon = np.asarray(preds.pred_lat, float), np.asarray(preds.pred_lon, float)
    n = true_lat.size
    if n == 0:
        raise PlotError("no predictions to plot")
    error = np.asarray(haversine(true_lat, true_lon, pred_lat, pred_lon), dtype=np.float64)

    fig = _figure(12.0, 6.6)
    ax = fig.add_subplot()
    ax.add_collection(LineCollection(_country_outlines(), colors="0.78", linewidths=0.4, zorder=1))
    chosen = np.arange(n)
    if n > max_lines:
        chosen = np.sort(np.random.default_rng(seed).choice(n, size=max(0, max_lines), replace=False))
    positive = error[error > 0]
    vmin = max(1.0, float(positive.min())) if positive.size else 1.0
    vmax = max(float(error.max()), vmin * 10.0)
    norm = LogNorm(vmin=vmin, vmax=vmax)
    segs, pair = _segments(true_lat[chosen], true_lon[chosen], pred_lat[chosen], pred_lon[chosen])
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    cmap = ListedColormap(colormaps["plasma"](np.linspace(0.0, 0.85, 256)))  # no pale yellow on white
    lines = LineCollection(segs, cmap=cmap, norm=norm, linewidths=0.7, alpha=0.8, zorder=5)
    lines.set_array(np.clip(error[chosen][pair], vmin, None))
    ax.add_collection(lines)
    size = 6.0 if n <= 2000 else 2.0
    ax.scatter(true_lon, true_lat, s=size, c="black", linewidths=0, label="true", zorder=3)
    ax.scatter(pred_lon, pred_lat, s=size * 1.5, c="tab:red", marker="x", linewidths=0.8, label="guess", zorder=6)
    bar = fig.colorbar(lines, ax=ax, fraction=0.025, pad=0.02)
    bar.set_label("error (km)")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xticks(np.arange(-180, 181, 60))
    ax.set_yticks(np.arange(-90, 91, 30))
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.grid(True, alpha=0.2)
    ax.legend(loc="lower left", fontsize=8, markerscale=2)
    name = getattr(preds, "name", "") or "predictions"
    ax.set_title(f"{name}: {n} samples, median error {np.median(error):,.0f} km"
                 + (f" ({chosen.size} lines shown)" if chosen.size < n else ""))
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ per country
def _per_country_frame(table: Any):
    """Accept a per_group_table DataFrame, an EvalResult or a sequence of CountryRow-like rows."""
    import pandas as pd

    if hasattr(table, "per_country_frame"):
        return table.per_country_frame()
    if isinstance(table, pd.DataFrame):
        frame = table
    else:
        rows = list(table)
        frame = pd.DataFrame([r._asdict() if hasattr(r, "_asdict") else dict(vars(r)) if hasattr(r, "__dict__")
                              else dict(r) for r in rows])
        if "country" in frame.columns:
            frame = frame.set_index("country")
    missing = [c for c in ("n", "accuracy") if c not in frame.columns]
    if missing:
        raise PlotError(f"the per-country table needs columns n and accuracy; found {list(frame.columns)}")
    return frame


def plot_per_country_accuracy(per_country_table: Any, path: str | Path, top: int = 25) -> Path:
    """Horizontal bars of country accuracy for the ``top`` countries with the most samples.

    Args:
        per_country_table: :func:`geocell.metrics.per_group_table` output (index = country,
            columns ``n``, ``accuracy``, ``median_km``), an ``EvalResult``, or its
            ``per_country`` rows.
        path: the PNG to write.
        top: how many countries to show (most samples first, at the top).
    """
    frame = _per_country_frame(per_country_table)
    if len(frame) == 0:
        raise PlotError("the per-country table is empty; nothing to plot")
    frame = frame.sort_values("n", ascending=False, kind="stable").head(top)
    labels = [str(i) for i in frame.index]
    acc = frame["accuracy"].to_numpy(dtype=np.float64)
    count = frame["n"].to_numpy(dtype=np.int64)
    median = frame["median_km"].to_numpy(dtype=np.float64) if "median_km" in frame.columns else None
    fig = _figure(7.5, 1.2 + 0.28 * len(frame))
    ax = fig.add_subplot()
    y = np.arange(len(frame))
    ax.barh(y, acc, color="tab:blue", height=0.7)
    for i in range(len(frame)):
        note = f"n={count[i]}" + (f", {median[i]:,.0f} km" if median is not None and np.isfinite(median[i]) else "")
        ax.text(min(acc[i], 1.0) + 0.01, y[i], note, va="center", fontsize=7)
    ax.set_yticks(y, labels=labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.3)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("country accuracy (n = samples, km = median error)")
    ax.set_title(f"Per-country accuracy, {len(frame)} countries with the most samples", fontsize=10)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


# ------------------------------------------------------------------------------ study curves
#: The panels of :func:`plot_study_curves`: point key, its interval keys, axis label, scale.
_STUDY_PANELS = (("country_top1", "test country top-1 %", 100.0), ("macro_f1", "test macro F1", 1.0),
                 ("median_km", "test median error (km)", 1.0))


def plot_study_curves(points: Sequence[Mapping[str, Any]], path: str | Path, x_label: str) -> Path:
    """Test metrics against one config value, a line per series, with 95% interval bars.

    Args:
        points: one mapping per tested row: ``series`` (the line's label), ``x`` (a number), and
            for each metric ``country_top1`` (fraction), ``macro_f1``, ``median_km`` its value
            and optionally ``METRIC_low`` / ``METRIC_high`` (the interval; none: no bar). A
            metric missing from every point leaves its panel out.
        path: the PNG to write.
        x_label: the x axis (the config key varied).
    """
    if not points:
        raise PlotError("no tested rows to plot")
    bad = [p for p in points if not _is_number(p.get("x"))]
    if bad:
        raise PlotError(f"the x value of every point must be a number; {bad[0].get('series')!r} has {bad[0].get('x')!r}")
    panels = [p for p in _STUDY_PANELS if any(_is_number(q.get(p[0])) for q in points)]
    if not panels:
        raise PlotError("the points hold none of " + ", ".join(p[0] for p in _STUDY_PANELS))
    fig = _figure(4.2 * len(panels), 3.6)
    series = list(dict.fromkeys(str(p["series"]) for p in points))
    for k, (key, label, scale) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        for name in series:
            mine = sorted((p for p in points if str(p["series"]) == name and _is_number(p.get(key))),
                          key=lambda p: p["x"])
            if not mine:
                continue
            x = np.array([p["x"] for p in mine], dtype=np.float64)
            y = np.array([p[key] for p in mine], dtype=np.float64) * scale
            low = np.array([p.get(f"{key}_low", np.nan) for p in mine], dtype=np.float64) * scale
            high = np.array([p.get(f"{key}_high", np.nan) for p in mine], dtype=np.float64) * scale
            err = np.vstack([np.nan_to_num(y - low), np.nan_to_num(high - y)])
            ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=name)
        ax.set_xlabel(x_label)
        ax.set_ylabel(label)
        ax.set_xticks(sorted({float(p["x"]) for p in points}))
        ax.grid(True, alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    fig.suptitle("95% intervals (cluster bootstrap)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
