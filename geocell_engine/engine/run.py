"""The main job: ``cli.py train`` from data to report, and ``evaluate`` / ``predict`` on a run.

:func:`run_training` loads the data set, builds the cells from the training points, fits,
evaluates the best checkpoint on the test split beside three baselines (a constant guess at the
training points' geometric median, kNN on colour histograms, and the nearest-cell bound), checks
robustness on the same test points rendered from another map (bluemarble), and writes the run
directory: ``config.yaml``, ``metrics.jsonl``, ``best.pt``, ``last.pt``, ``cells.parquet``,
``predictions.csv``, ``report.json``, ``report.md`` and the plots.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from geocell_engine.data.dataset import (
    GeoSplit,
    load_splits,
    robustness_split,
)
from geocell_engine.engine.config import TrainConfig
from geocell_engine.engine.tasks import Objective, country_anchors

__all__ = ["run_training", "resolve_run_dir", "load_run_model", "evaluate_checkpoint", "RunSummary"]


@dataclass
class RunSummary:
    """Where the run is and what it measured (the markdown table printed at the end)."""

    run_dir: Path
    table: str
    report: dict[str, Any]


def resolve_run_dir(config: TrainConfig) -> Path:
    """``out_dir/run_name``; the default name is ``<task>-<data>``. An unfinished run of that
    name is resumed (when ``resume``); a finished one gets the next free ``-2``, ``-3``, ..."""
    data_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(config.data).stem if os.sep in config.data or "." in config.data else config.data)
    base = Path(config.out_dir) / (config.run_name or f"{config.task}-{data_name}")
    candidate, n = base, 1
    while True:
        finished = (candidate / "report.json").is_file()
        started = (candidate / "last.pt").is_file()
        if not candidate.exists() or (started and not finished and config.resume) or (
                not started and not finished):
            return candidate
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")


def _build_cells(config: TrainConfig, train: GeoSplit, run_dir: Path, log: Callable[[str], None]):
    from geocell.cells import CellSet, admin1_of_points

    saved = run_dir / "cells.parquet"
    if saved.is_file():
        return CellSet.load(saved)
    start = time.perf_counter()
    point_admin1 = np.where(train.admin1 != "", train.admin1, admin1_of_points(train.lat, train.lon))
    if config.cells == "semantic":
        from geocell.semantic import build_semantic

        cells = build_semantic(train.lat, train.lon, min_samples=config.cell_min_samples,
                               max_samples=config.cell_max_samples, point_admin1=point_admin1)
    elif config.cells == "s2":
        from geocell.s2cells import build_s2

        cells = build_s2(train.lat, train.lon, tau_min=config.s2_tau_min, tau_max=[config.s2_tau_max],
                         point_admin1=point_admin1)[-1]
    else:
        cells = CellSet.load(config.cells)
    cells.save(saved)
    s = cells.summary()
    log(f"cells: {s['cells']} {s['kind']} cells, {s['samples_per_cell_min']}-{s['samples_per_cell_max']} "
        f"training samples each (median {s['samples_per_cell_median']:.0f}), built in {time.perf_counter() - start:.1f} s")
    return cells


def _write_config(config: TrainConfig, run_dir: Path) -> None:
    import yaml

    from geocell.tables import atomic_write

    text = yaml.safe_dump(config.to_dict(), sort_keys=True)
    atomic_write(run_dir / "config.yaml", lambda p: p.write_text(text))


def _images_of(split: GeoSplit, config: TrainConfig, limit: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, S, S, 3) images of up to ``limit`` samples (for the colour-histogram kNN)."""
    from geocell_engine.data.dataset import iterate_batches

    index = np.arange(min(len(split), limit))
    arrays, kept = [], []
    for images, idx in iterate_batches(split, index, 256, config.image_size, "skip"):
        arrays.append(images.permute(0, 2, 3, 1).numpy())
        kept.append(idx)
    return np.concatenate(arrays), np.concatenate(kept)


def _baselines(config: TrainConfig, train: GeoSplit, test: GeoSplit, cells) -> dict[str, Any]:
    from geocell_engine.evaluation.baselines import (
        constant_baseline,
        knn_colour_baseline,
        nearest_cell_bound,
    )

    out = {"constant (geometric median)": constant_baseline(
        train.lat, train.lon, train.country, test.lat, test.lon, test.country, test.admin1, train_admin1=train.admin1)}
    train_images, train_kept = _images_of(train, config)
    test_images, test_kept = _images_of(test, config)
    out["kNN colour histograms"] = knn_colour_baseline(
        train_images, train.lat[train_kept], train.lon[train_kept], train.country[train_kept],
        test_images, test.lat[test_kept], test.lon[test_kept], test.country[test_kept],
        train_admin1=train.admin1[train_kept], test_admin1=test.admin1[test_kept])
    if cells is not None:
        out["nearest-cell bound"] = nearest_cell_bound(cells, test.lat, test.lon, test.country, test.admin1)
    return out


def run_training(config: TrainConfig, log: Callable[[str], None] = print) -> Optional[RunSummary]:
    """Fit, evaluate, compare with baselines and write the report. Returns None on non-main ranks."""
    import torch

    from geocell_engine.engine.checkpoint import load_checkpoint
    from geocell_engine.engine.fit import (
        build_model,
        choose_precision,
        fit,
        predict_split,
        setup_distributed,
    )
    from geocell_engine.evaluation.report import (
        comparison_table,
        evaluate,
        write_report,
    )

    ctx = setup_distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = resolve_run_dir(config)
    if ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_config(config, run_dir)
    log(f"run directory: {run_dir}")
    start = time.perf_counter()
    splits, info = load_splits(config.data, seed=config.seed, split_file=config.split_file)
    train = splits["train"].subsample(config.max_train_samples, config.seed)
    val = splits["val"].subsample(config.max_eval_samples, config.seed + 1)
    test = splits["test"].subsample(config.max_eval_samples, config.seed + 2)
    log(f"data: {info.name} ({info.version}); train {len(train):,}, val {len(val):,}, test {len(test):,} "
        f"(loaded in {time.perf_counter() - start:.1f} s)")
    countries = tuple(sorted(set(train.country.tolist()) - {""}))
    cells = _build_cells(config, train, run_dir, log) if "region" in config.heads else None
    anchors = country_anchors(train.lat, train.lon, train.country)
    objective = Objective(config, countries, cells=cells, anchors=anchors)
    extra = {"dataset": info.as_dict()}
    result = fit(config, objective, train, val, run_dir, extra, ctx=ctx, log=log)
    if not ctx.is_main:
        return None

    model = build_model(config, objective, pretrained=False)
    model.load_state_dict(load_checkpoint(result.best_path)["model"])
    precision = choose_precision(config, "cpu")
    preds = predict_split(model, objective, test, config, precision=precision)
    preds.dump(run_dir / "predictions.csv")
    results = {"model": evaluate(preds)}
    for name, baseline in _baselines(config, train, test, cells).items():
        results[name] = evaluate(baseline)
    robust = robustness_split(config.data)
    if robust is not None:
        robust = robust.subsample(config.max_eval_samples, config.seed + 2)
        results["model on shaded-relief patches"] = evaluate(
            predict_split(model, objective, robust, config, name="model (shadedrelief)", precision=precision))
    extra_report = {
        "dataset": f"{info.name} ({info.version})", "dataset_sha256": dict(info.sha256),
        "task": config.task, "heads": ", ".join(config.heads), "backbone": config.backbone,
        "cells": (f"{len(cells)} {cells.kind} cells, hash {cells.hash[:12]}" if cells is not None else "none"),
        "epochs run": result.epochs_run, "stopped early": result.stopped_early,
        "training images/s": round(result.images_per_second, 1), "wall time (s)": round(time.perf_counter() - start, 1),
        "train / val / test": f"{len(train)} / {len(val)} / {len(test)}",
    }
    write_report(run_dir, results, result.history, preds, extra_report)
    table = comparison_table(list(results.values()), names=list(results))
    import json

    report = json.loads((run_dir / "report.json").read_text())
    return RunSummary(run_dir, table, report)


def load_run_model(checkpoint: str | os.PathLike):
    """(model in eval mode, objective, config, checkpoint dict) from a checkpoint file alone."""
    from geocell_engine.engine.checkpoint import load_checkpoint
    from geocell_engine.engine.fit import build_model

    ckpt = load_checkpoint(checkpoint)
    config = TrainConfig.from_dict(ckpt["config"], source=str(checkpoint))
    objective = Objective.from_checkpoint(config, ckpt)
    model = build_model(config, objective, pretrained=False)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, objective, config, ckpt


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str, split: str = "test",
                        dump: Optional[str] = None, out_dir: Optional[str] = None,
                        max_samples: Optional[int] = None) -> RunSummary:
    """Evaluate a checkpoint on a data set's split (or a whole manifest); writes a report."""
    from geocell_engine.engine.checkpoint import check_compatible
    from geocell_engine.engine.fit import choose_precision, predict_split
    from geocell_engine.evaluation.report import (
        comparison_table,
        evaluate,
        write_report,
    )

    model, objective, config, ckpt = load_run_model(checkpoint)
    splits, info = load_splits(data, seed=config.seed)
    if split not in splits:
        from geocell_engine.data.dataset import DataError

        raise DataError(f"unknown split {split!r}; expected train, val or test")
    target = splits[split].subsample(max_samples, config.seed + 2)
    if isinstance(objective.cells, dict):
        check_compatible(ckpt, cells_hash=objective.cells["hash"], source=str(checkpoint))
    preds = predict_split(model, objective, target, config, precision=choose_precision(config, "cpu"))
    out = Path(out_dir) if out_dir else Path(checkpoint).resolve().parent / f"eval-{Path(str(data)).stem}-{split}"
    out.mkdir(parents=True, exist_ok=True)
    if dump:
        preds.dump(dump)
    results = {"model": evaluate(preds)}
    write_report(out, results, None, preds, {"checkpoint": str(checkpoint), "dataset": f"{info.name} ({info.version})",
                                             "split": split, "trained on": ckpt.get("dataset", {}).get("name")})
    import json

    return RunSummary(out, comparison_table(list(results.values()), names=list(results)),
                      json.loads((out / "report.json").read_text()))
