"""Ablation studies: train each variant of a spec under one budget, choose on validation, test the
finalists once each, and compare every finalist with the default on the same test samples.

A spec is a YAML file::

    name: tau                      # the study folder: OUT_DIR/tau/
    base: {epochs: 2, max_train_samples: 1500}   # config keys every row shares (the budget)
    variants:                      # name -> the keys it changes; "default" is added (base alone)
      tau-65: {tau_km: 65}
      tau-150: {tau_km: 150}
    finalists: 2                   # best variants by validation score tested beside the default
    seeds: [0]                     # one row per variant and seed
    finalist_seeds: [1, 2]         # the default and the finalists trained again with these seeds
    also_test: [tau-150]           # rows tested whatever their validation score (e.g. robustness levers)
    plot: {x: tau_km, series: [backbone]}   # optional: study.png, test metrics against x per series

:func:`run_study` trains the rows in order (each is an ordinary resumable run folder,
``OUT_DIR/NAME/ROW-sSEED``), records each finished row in ``study.json`` (written atomically), and
skips recorded rows when the same command runs again, so a killed study continues where it
stopped. Model choice reads the validation split only (the task's own score at the best epoch,
mean over ``seeds``); the default and the finalists are then trained with ``finalist_seeds``
too, the test split is evaluated once per finalist and seed (with the robustness rendering of
the test points where the data set has one, bluemarble's shaded relief), and each finalist is
compared with the default by :func:`geocell_engine.evaluation.intervals.paired_comparison` (95%
cluster bootstrap over held-out regions where the data define them, on the first seed); the
table shows the test median of every seed beside it, the seed-to-seed spread. Every tested
row also gets its macro F1 over countries (with its interval, same bootstrap) and its inference
images/s (the test split through :func:`~geocell_engine.engine.run.evaluate_checkpoint`).
With ``plot``, ``study.png`` draws the tested rows' country top-1, macro F1 and median km against
the config key ``x``, one line per combination of the ``series`` keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from geocell_engine.engine.config import TrainConfig, load_yaml_config
from geocell_engine.errors import ConfigError

__all__ = ["StudySpec", "load_study", "run_study", "DEFAULT_ROW"]

DEFAULT_ROW = "default"
_SPEC_KEYS = {"name", "base", "variants", "finalists", "seeds", "finalist_seeds", "also_test", "plot"}


@dataclass(frozen=True)
class StudySpec:
    """A parsed study spec; every row's config is checked when it is made.

    Attributes:
        name: the study's folder name. base: config keys shared by every row.
        variants: row name -> config keys, ``"default"`` first (``base`` alone).
        finalists: variants tested beside the default. seeds: one training per row and seed.
        finalist_seeds: more seeds for the default and the finalists only.
        also_test: rows tested (and trained with ``finalist_seeds``) as finalists are, whatever
            their validation score: levers judged on something validation does not measure, such
            as robustness to another rendering.
        plot: ``{"x": KEY, "series": [KEY, ...]}`` (config keys) for ``study.png``, or None.
        source: the spec file.
    """

    name: str
    base: Mapping[str, Any]
    variants: Mapping[str, Mapping[str, Any]]
    finalists: int = 2
    seeds: tuple[int, ...] = (0,)
    finalist_seeds: tuple[int, ...] = ()
    also_test: tuple[str, ...] = ()
    plot: Mapping[str, Any] | None = None
    source: str = ""
    configs: Mapping[str, TrainConfig] = field(default_factory=dict, compare=False, repr=False)

    def config(self, row: str, seed: int, out_dir: Path) -> TrainConfig:
        """The TrainConfig of one row and seed, its run folder inside the study folder."""
        values = {**self.base, **self.variants[row], "seed": seed, "out_dir": str(out_dir),
                  "run_name": f"{row}-s{seed}", "quiet": True, "resume": True}
        return TrainConfig.from_dict(values, source=f"{self.source}: row {row}")


def load_study(path: str | Path) -> StudySpec:
    """Read and check a study spec (unknown keys, bad config values of any row: refused by name).

    Raises:
        ConfigError: naming the file, the row and the key.
    """
    raw = load_yaml_config(path)
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown study keys {unknown}; expected {sorted(_SPEC_KEYS)}")
    name = str(raw.get("name") or Path(path).stem)
    base = dict(raw.get("base") or {})
    variants = raw.get("variants") or {}
    if not isinstance(variants, Mapping) or not variants:
        raise ConfigError(f"{path}: 'variants' must map row names to config keys, got {variants!r}")
    if DEFAULT_ROW in variants:
        raise ConfigError(f"{path}: '{DEFAULT_ROW}' is the row of the base config alone; name the variant otherwise")
    rows = {DEFAULT_ROW: {}, **{str(k): dict(v or {}) for k, v in variants.items()}}
    finalists = raw.get("finalists", 2)
    seeds = raw.get("seeds", [0])
    if not isinstance(finalists, int) or isinstance(finalists, bool) or finalists < 0:
        raise ConfigError(f"{path}: finalists must be an integer >= 0, got {finalists!r}")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"{path}: seeds must be a non-empty list of integers >= 0, got {seeds!r}")
    finalist_seeds = raw.get("finalist_seeds", [])
    if (not isinstance(finalist_seeds, list) or not all(isinstance(s, int) and s >= 0 for s in finalist_seeds)
            or set(finalist_seeds) & set(seeds)):
        raise ConfigError(f"{path}: finalist_seeds must be a list of integers >= 0 not in seeds {seeds}, "
                          f"got {finalist_seeds!r}")
    for key in ("seed", "out_dir", "run_name", "resume"):
        if key in base or any(key in v for v in rows.values()):
            raise ConfigError(f"{path}: {key!r} is set by the study for each row; leave it out")
    also_test = raw.get("also_test", [])
    if not isinstance(also_test, list) or any(r not in variants for r in also_test):
        raise ConfigError(f"{path}: also_test must list variant names (from {sorted(variants)}), got {also_test!r}")
    plot = _check_plot(raw.get("plot"), path)
    spec = StudySpec(name, base, rows, finalists, tuple(seeds), tuple(finalist_seeds), tuple(also_test), plot,
                     str(path))
    for row in rows:  # every row's values are checked before anything trains
        config = spec.config(row, seeds[0], Path("."))
        if plot is not None and not isinstance(getattr(config, plot["x"]), (int, float)):
            raise ConfigError(f"{path}: row {row}: the plot's x key {plot['x']} is {getattr(config, plot['x'])!r}; "
                              "every row needs a number there")
    return spec


def _check_plot(plot: Any, path: str | Path) -> Mapping[str, Any] | None:
    """The spec's ``plot`` with ``series`` as a list, checked: ``x`` and every series key a config key."""
    if plot is None:
        return None
    known = set(TrainConfig.__dataclass_fields__)
    if not isinstance(plot, Mapping) or set(plot) - {"x", "series"} or "x" not in plot:
        raise ConfigError(f"{path}: plot must be {{x: KEY, series: [KEY, ...]}}, got {plot!r}")
    series = plot.get("series") or []
    series = [series] if isinstance(series, str) else list(series)
    bad = [k for k in [plot["x"], *series] if k not in known]
    if bad:
        raise ConfigError(f"{path}: plot keys {bad} are not config keys")
    return {"x": str(plot["x"]), "series": [str(k) for k in series]}


def _state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {"rows": {}, "tests": {}}


def _save(path: Path, state: Mapping[str, Any]) -> None:
    from geocell.tables import atomic_write

    text = json.dumps(state, indent=2, sort_keys=True)
    atomic_write(path, lambda p: p.write_text(text + "\n"))


def _val_score(row: Mapping[str, Any]) -> float:
    """The validation score a row is chosen by: the task's own at the best epoch (lower is better)."""
    value = row.get("val_score")
    return float("inf") if value is None else float(value)


def run_study(spec: StudySpec, out_dir: str | Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train every row, test the finalists, and return (and write to ``study.json`` and
    ``study.md``) the table: one line per row with its validation score, and for the default
    and the finalists the test metrics with intervals and the paired difference to the default.

    Returns:
        The study state: ``rows`` (row-seed -> validation results), ``finalists``, ``table``.
    """
    from geocell_engine.data.regions import dataset_clusters
    from geocell_engine.engine.run import ROBUSTNESS_ROW, evaluate_checkpoint, run_training
    from geocell_engine.evaluation.intervals import bootstrap_macro_f1

    folder = Path(out_dir) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / "study.json"
    state = _state(state_path)

    def train(row: str, seed: int) -> None:
        key = f"{row}-s{seed}"
        if key in state["rows"]:
            log(f"{key}: done (in {state_path})")
            return
        config = spec.config(row, seed, folder)
        log(f"{key}: training")
        summary = run_training(config, log=lambda _: None, read_test=False)
        history = summary.report["history"]
        best = next(r for r in history if r["epoch"] == summary.report["best_epoch"])
        state["rows"][key] = {"row": row, "seed": seed, "run_dir": str(summary.run_dir),
                              "best_epoch": summary.report["best_epoch"], "task": config.task,
                              "val_score": best.get("val_score"), "val_median_km": best.get("val_median_km"),
                              "val_country_acc": best.get("val_country_acc"), "epochs_run": len(history),
                              "train_seconds": round(sum(r.get("epoch_seconds", 0.0) for r in history), 3),
                              "bare_step_images_per_s": summary.report["machine"].get("bare step images/s at start")}
        _save(state_path, state)

    for row in spec.variants:
        for seed in spec.seeds:
            train(row, seed)
    scores = {row: float(np.mean([_val_score(state["rows"][f"{row}-s{s}"]) for s in spec.seeds]))
              for row in spec.variants}
    ranked = sorted((r for r in spec.variants if r != DEFAULT_ROW), key=lambda r: scores[r])
    finalists = [DEFAULT_ROW] + ranked[:spec.finalists]
    finalists += [r for r in spec.also_test if r not in finalists]
    state["finalists"] = finalists
    seeds = spec.seeds + spec.finalist_seeds
    for row in finalists:
        for seed in spec.finalist_seeds:
            train(row, seed)
    preds: dict[str, Any] = {}
    for row in finalists:
        for seed in seeds:
            key = f"{row}-s{seed}"
            run_dir = Path(state["rows"][key]["run_dir"])
            config = spec.config(row, seed, folder)
            summary = evaluate_checkpoint(run_dir / "best.pt", config.data, split="test", out_dir=str(run_dir / "test"),
                                          robustness=True, log=lambda _: None)
            preds[key] = summary.predictions
            results = summary.report["results"]
            model = results["model"]
            robust = results.get(ROBUSTNESS_ROW) or {}
            ours = summary.predictions
            known = ours.true_country != ""
            macro_f1 = bootstrap_macro_f1(ours.true_country[known], ours.pred_country[known],
                                          dataset_clusters(config.data, ours.ids[known]))
            state["tests"][key] = {"macro_f1": macro_f1.point, "macro_f1_interval": macro_f1.as_dict(),
                                   "inference_images_per_s": summary.report["extra"].get("inference images/s"),
                                   "median_km": model["distance"]["median_km"] if model.get("distance") else None,
                                   "country_top1": (model.get("country") or {}).get("top_k_accuracy", {}).get("1"),
                                   "intervals": model.get("intervals"),
                                   "robustness_median_km": (robust.get("distance") or {}).get("median_km"),
                                   "robustness_intervals": robust.get("intervals")}
    state["table"] = _table(spec, state, scores, finalists, preds)
    if spec.plot is not None:
        state["plot"] = str(_plot(spec, state, finalists, folder / "study.png"))
    _save(state_path, state)
    from geocell.tables import atomic_write

    atomic_write(folder / "study.md", lambda p: p.write_text(state["table"] + "\n"))
    log(state["table"])
    return state


def _table(spec: StudySpec, state: Mapping[str, Any], scores: Mapping[str, float], finalists: list[str],
           preds: Mapping[str, Any]) -> str:
    from geocell_engine.data.regions import dataset_clusters
    from geocell_engine.evaluation.intervals import format_interval, paired_comparison

    lines = ["| row | what it changes | validation score | training min | test median km | Δ median km vs default "
             "| test median km by seed | test country top-1 % | Δ top-1 points vs default | test macro F1 "
             "| inference images/s | shaded-relief median km |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    seeds = spec.seeds + spec.finalist_seeds
    seed = spec.seeds[0]
    default_preds = preds.get(f"{DEFAULT_ROW}-s{seed}")
    data = spec.config(DEFAULT_ROW, seed, Path(".")).data
    for row in spec.variants:
        changes = ", ".join(f"{k}={v}" for k, v in spec.variants[row].items()) or "(base)"
        from geocell_engine.engine.tasks import get_task_class

        score_name = get_task_class(spec.config(row, seed, Path(".")).task).score_name
        shown = f"{scores[row]:,.4g} ({score_name})" if np.isfinite(scores[row]) else "n/a"
        minutes = np.mean([state["rows"][f"{row}-s{s}"].get("train_seconds", np.nan) for s in spec.seeds]) / 60
        cells = [row, changes, shown, f"{minutes:.1f}" if np.isfinite(minutes) else ""]
        if row in finalists:
            test = state["tests"][f"{row}-s{seed}"]
            iv = (test.get("intervals") or {}).get("metrics") or {}
            cells.append(_with_interval(test.get("median_km"), (iv.get("median_km") or {}), "km"))
            if row == DEFAULT_ROW or default_preds is None:
                diff_km = diff_top = ""
            else:
                ours = preds[f"{row}-s{seed}"]
                comparison = paired_comparison(ours, default_preds, dataset_clusters(data, ours.ids))
                diff_km = format_interval(comparison.difference["median_km"], "km", signed=True) \
                    if "median_km" in comparison.difference else ""
                top = comparison.difference.get("country_top1")
                diff_top = format_interval(top, "pct", signed=True) if top is not None else ""
            cells.append(diff_km)
            by_seed = [state["tests"].get(f"{row}-s{s}", {}).get("median_km") for s in seeds]
            cells.append(" / ".join(f"{m:,.0f}" if m is not None else "n/a" for m in by_seed))
            top1 = test.get("country_top1")
            cells.append(_with_interval(top1, iv.get("country_top1") or {}, "pct"))
            cells.append(diff_top)
            f1 = test.get("macro_f1")
            cells.append(_with_interval(f1, test.get("macro_f1_interval") or {}, "f1") if f1 is not None else "")
            rate = test.get("inference_images_per_s")
            cells.append(f"{rate:,.0f}" if rate is not None else "")
            robust_iv = ((test.get("robustness_intervals") or {}).get("metrics") or {}).get("median_km") or {}
            cells.append(_with_interval(test.get("robustness_median_km"), robust_iv, "km"))
        else:
            cells += ["(not a finalist)", "", "", "", "", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"Validation score: the task's own at its best epoch (lower is better), mean over seeds {list(spec.seeds)}; "
            f"finalists: the default and the best {spec.finalists} by it"
            + (f", and {', '.join(spec.also_test)} (tested whatever its score)" if spec.also_test else "")
            + ". Training minutes: the epochs' sum, mean over "
            f"those seeds. Test figures of seed {seed}, 95% intervals; by seed: seeds {list(seeds)}; "
            "Δ: finalist minus default on the same test samples (paired bootstrap; negative km and positive "
            "points are better). Macro F1: over the countries in the test truth or guesses. Inference: the test "
            "split end to end (data to predictions) on this machine.")
    return "\n".join(lines) + "\n\n" + note


def _with_interval(value: Any, interval: Mapping[str, Any], kind: str) -> str:
    if value is None:
        return ""
    shown = {"km": f"{value:,.0f}", "f1": f"{value:.3f}"}.get(kind, f"{100 * value:.1f}")
    low, high = interval.get("low"), interval.get("high")
    if low is None or high is None:
        return shown
    if kind == "km":
        return f"{shown} ({low:,.0f}–{high:,.0f})"
    if kind == "f1":
        return f"{shown} ({low:.3f}–{high:.3f})"
    return f"{shown} ({100 * low:.1f}–{100 * high:.1f})"


def _plot(spec: StudySpec, state: Mapping[str, Any], tested: list[str], path: Path) -> Path:
    """``study.png``: the tested rows' test metrics (first seed, with intervals) against the
    config key ``spec.plot["x"]``, a line per combination of the ``series`` keys; every figure
    comes from ``state["tests"]`` (what ``study.json`` holds)."""
    from geocell_engine.evaluation.plots import plot_study_curves

    seed = spec.seeds[0]
    points = []
    for row in tested:
        config = spec.config(row, seed, Path("."))
        test = state["tests"][f"{row}-s{seed}"]
        metrics = (test.get("intervals") or {}).get("metrics") or {}
        point = {"x": getattr(config, spec.plot["x"]),
                 "series": ", ".join(f"{k}={getattr(config, k)}" for k in spec.plot["series"]) or spec.name,
                 "country_top1": test.get("country_top1"), "median_km": test.get("median_km"),
                 "macro_f1": test.get("macro_f1")}
        for key, interval in (("country_top1", metrics.get("country_top1")), ("median_km", metrics.get("median_km")),
                              ("macro_f1", test.get("macro_f1_interval"))):
            if interval:
                point[f"{key}_low"], point[f"{key}_high"] = interval.get("low"), interval.get("high")
        points.append(point)
    return plot_study_curves(points, path, x_label=spec.plot["x"])
