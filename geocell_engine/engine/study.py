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

:func:`run_study` trains the rows in order (each is an ordinary resumable run folder,
``OUT_DIR/NAME/ROW-sSEED``), records each finished row in ``study.json`` (written atomically), and
skips recorded rows when the same command runs again, so a killed study continues where it
stopped. Model choice reads the validation split only (the task's own score at the best epoch,
mean over seeds); the test split is evaluated once per finalist seed, and each finalist is
compared with the default by :func:`geocell_engine.evaluation.intervals.paired_comparison` (95%
cluster bootstrap over held-out regions where the data define them).
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
_SPEC_KEYS = {"name", "base", "variants", "finalists", "seeds"}


@dataclass(frozen=True)
class StudySpec:
    """A parsed study spec; every row's config is checked when it is made.

    Attributes:
        name: the study's folder name. base: config keys shared by every row.
        variants: row name -> config keys, ``"default"`` first (``base`` alone).
        finalists: variants tested beside the default. seeds: one training per row and seed.
        source: the spec file.
    """

    name: str
    base: Mapping[str, Any]
    variants: Mapping[str, Mapping[str, Any]]
    finalists: int = 2
    seeds: tuple[int, ...] = (0,)
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
    for key in ("seed", "out_dir", "run_name", "resume"):
        if key in base or any(key in v for v in rows.values()):
            raise ConfigError(f"{path}: {key!r} is set by the study for each row; leave it out")
    spec = StudySpec(name, base, rows, finalists, tuple(seeds), str(path))
    for row in rows:  # every row's values are checked before anything trains
        spec.config(row, seeds[0], Path("."))
    return spec


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
    from geocell_engine.engine.run import evaluate_checkpoint, run_training

    folder = Path(out_dir) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    state_path = folder / "study.json"
    state = _state(state_path)
    for row in spec.variants:
        for seed in spec.seeds:
            key = f"{row}-s{seed}"
            if key in state["rows"]:
                log(f"{key}: done (in {state_path})")
                continue
            config = spec.config(row, seed, folder)
            log(f"{key}: training")
            summary = run_training(config, log=lambda _: None, read_test=False)
            best = next(r for r in summary.report["history"] if r["epoch"] == summary.report["best_epoch"])
            state["rows"][key] = {"row": row, "seed": seed, "run_dir": str(summary.run_dir),
                                  "best_epoch": summary.report["best_epoch"], "task": config.task,
                                  "val_score": best.get("val_score"), "val_median_km": best.get("val_median_km"),
                                  "val_country_acc": best.get("val_country_acc"),
                                  "epochs_run": len(summary.report["history"])}
            _save(state_path, state)
    scores = {row: float(np.mean([_val_score(state["rows"][f"{row}-s{s}"]) for s in spec.seeds]))
              for row in spec.variants}
    ranked = sorted((r for r in spec.variants if r != DEFAULT_ROW), key=lambda r: scores[r])
    finalists = [DEFAULT_ROW] + ranked[:spec.finalists]
    state["finalists"] = finalists
    preds: dict[str, Any] = {}
    for row in finalists:
        for seed in spec.seeds:
            key = f"{row}-s{seed}"
            run_dir = Path(state["rows"][key]["run_dir"])
            config = spec.config(row, seed, folder)
            summary = evaluate_checkpoint(run_dir / "best.pt", config.data, split="test", out_dir=str(run_dir / "test"),
                                          log=lambda _: None)
            preds[key] = summary.predictions
            model = summary.report["results"]["model"]
            state["tests"][key] = {"median_km": model["distance"]["median_km"] if model.get("distance") else None,
                                   "country_top1": (model.get("country") or {}).get("top_k_accuracy", {}).get("1"),
                                   "intervals": model.get("intervals")}
    state["table"] = _table(spec, state, scores, finalists, preds)
    _save(state_path, state)
    from geocell.tables import atomic_write

    atomic_write(folder / "study.md", lambda p: p.write_text(state["table"] + "\n"))
    log(state["table"])
    return state


def _table(spec: StudySpec, state: Mapping[str, Any], scores: Mapping[str, float], finalists: list[str],
           preds: Mapping[str, Any]) -> str:
    from geocell_engine.data.regions import dataset_clusters
    from geocell_engine.evaluation.intervals import format_interval, paired_comparison

    lines = ["| row | what it changes | validation score | test median km | Δ median km vs default | test country top-1 % "
             "| Δ top-1 points vs default |", "|---|---|---:|---:|---:|---:|---:|"]
    seed = spec.seeds[0]
    default_preds = preds.get(f"{DEFAULT_ROW}-s{seed}")
    data = spec.config(DEFAULT_ROW, seed, Path(".")).data
    for row in spec.variants:
        changes = ", ".join(f"{k}={v}" for k, v in spec.variants[row].items()) or "(base)"
        from geocell_engine.engine.tasks import get_task_class

        score_name = get_task_class(spec.config(row, seed, Path(".")).task).score_name
        shown = f"{scores[row]:,.4g} ({score_name})" if np.isfinite(scores[row]) else "n/a"
        cells = [row, changes, shown]
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
            top1 = test.get("country_top1")
            cells.append(_with_interval(top1, iv.get("country_top1") or {}, "pct"))
            cells.append(diff_top)
        else:
            cells += ["(not a finalist)", "", "", ""]
        lines.append("| " + " | ".join(cells) + " |")
    note = (f"Validation score: the task's own at its best epoch (lower is better), mean over seeds {list(spec.seeds)}; "
            f"finalists: the default and the best {spec.finalists} by it. Test figures of seed {seed}, 95% intervals; "
            "Δ: finalist minus default on the same test samples (paired bootstrap; negative km and positive "
            "points are better).")
    return "\n".join(lines) + "\n\n" + note


def _with_interval(value: Any, interval: Mapping[str, Any], kind: str) -> str:
    if value is None:
        return ""
    shown = f"{value:,.0f}" if kind == "km" else f"{100 * value:.1f}"
    low, high = interval.get("low"), interval.get("high")
    if low is None or high is None:
        return shown
    if kind == "km":
        return f"{shown} ({low:,.0f}–{high:,.0f})"
    return f"{shown} ({100 * low:.1f}–{100 * high:.1f})"
