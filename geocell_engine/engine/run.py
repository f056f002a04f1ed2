"""The main job: ``cli.py train`` from data to report, and ``evaluate`` / ``predict`` on a run.

:func:`run_training` loads the data set, builds the cells from the training points, fits,
evaluates the best checkpoint on the test split beside three baselines (a constant guess at the
training points' geometric median, kNN on colour histograms, and the true-cell centroid), checks
robustness on the same test points rendered from another map (bluemarble), and writes the run
directory: ``config.yaml``, ``metrics.jsonl``, ``best.pt``, ``last.pt``, ``cells.parquet``,
``predictions.csv``, ``report.json``, ``report.md`` and the plots.
"""

from __future__ import annotations

import functools
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from geocell_engine.data.dataset import (
    GeoSplit,
    load_splits,
    require_usable,
    robustness_split,
    screen_split,
)
from geocell_engine.data.transforms import eval_decoder
from geocell_engine.engine.config import TrainConfig
from geocell_engine.errors import DataError, RunInterrupted

__all__ = ["run_training", "resolve_run_dir", "evaluate_checkpoint", "RunSummary"]


@dataclass
class RunSummary:
    """Where the run is and what it measured (the markdown table printed at the end)."""

    run_dir: Path
    table: str
    report: dict[str, Any]
    predictions: Any = None  # evaluate: the model's Predictions (what the table scored)


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


def _write_config(config: TrainConfig, run_dir: Path) -> None:
    from geocell.tables import atomic_write

    text = config.to_yaml()
    atomic_write(run_dir / "config.yaml", lambda p: p.write_text(text))


def _require_coordinates(config: TrainConfig, train: GeoSplit) -> None:
    """Refuse a task that learns locations on samples without coordinates (an ImageFolder tree).

    Raises:
        DataError: naming the data, the task and what would work.
    """
    from geocell_engine.engine.tasks import get_task_class

    if np.isfinite(train.lat).any():
        return
    cls = get_task_class(config.task)
    needs = cls.needs_coordinates if not cls.composite else any(
        get_task_class(t).needs_coordinates for t in config.multi_tasks)
    if needs:
        raise DataError(f"{config.data} has no coordinates (country folders give country labels only), and "
                        f"--task {config.task} learns locations; use --task country")


def _select_countries(config: TrainConfig, splits: dict[str, GeoSplit],
                      log: Callable[[str], None]) -> tuple[dict[str, GeoSplit], str]:
    """Every split restricted to the countries with at least ``config.min_per_country`` training
    samples (all of them when it is None), and a line saying what was kept and left out.

    Raises:
        DataError: no country has that many training samples (names the largest count).
    """
    n = config.min_per_country
    if n is None:
        return splits, "all"
    names, counts = np.unique(splits["train"].country[splits["train"].country != ""], return_counts=True)
    kept = names[counts >= n]
    if not kept.size:
        most = f"the most is {counts.max():,} ({names[counts.argmax()]})" if counts.size else "it has no country labels"
        raise DataError(f"min_per_country={n}: no country of {config.data} has that many training samples; {most}")
    chosen = {name: split.only_countries(kept) for name, split in splits.items()}
    left_out = ", ".join(f"{name} {len(splits[name]) - len(chosen[name]):,}" for name in splits)
    summary = f"{kept.size} countries with at least {n:,} training samples"
    log(f"countries: {summary} of {names.size}; samples of the others left out of every split ({left_out})")
    return chosen, summary


def _record_data(splits: dict[str, GeoSplit], info, run_dir: Path, log: Callable[[str], None]) -> None:
    """Say how the data were split and what a photo folder left out, and keep both in the run
    folder: ``split.csv`` (id, split) when the split was made here, ``left_out.csv`` (path,
    reason, detail) for photos without GPS."""
    import pandas as pd

    from geocell.tables import atomic_write

    if info.split_rule:
        log(f"split: {info.split_rule}")
    made_here = info.split_rule.startswith(("spatial", "random"))
    if made_here:
        frame = pd.concat([pd.DataFrame({"id": splits[n].ids, "split": n}) for n in ("train", "val", "test")])
        atomic_write(run_dir / "split.csv", lambda p: frame.to_csv(p, index=False))
    if info.left_out:
        reasons = pd.Series([r[1] for r in info.left_out]).value_counts()
        log(f"left out {len(info.left_out):,} photos ({', '.join(f'{v} {k}' for k, v in reasons.items())}), listed "
            f"in {run_dir / 'left_out.csv'}")
        frame = pd.DataFrame(list(info.left_out), columns=["path", "reason", "detail"])
        atomic_write(run_dir / "left_out.csv", lambda p: frame.to_csv(p, index=False))


def _images_of(split: GeoSplit, config: TrainConfig, account, limit: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, S, S, 3) images of up to ``limit`` samples (for the colour-histogram kNN); an
    unreadable one follows ``config.on_bad_image`` and is recorded in ``account``."""
    from geocell_engine.data.dataset import iterate_batches

    index = np.arange(min(len(split), limit))
    arrays, kept = [], []
    for images, idx in iterate_batches(split, index, 256, config.image_size, config.on_bad_image, account,
                                       decode=eval_decoder(config)):
        arrays.append(images.permute(0, 2, 3, 1).numpy())
        kept.append(idx)
    return np.concatenate(arrays), np.concatenate(kept)


def _baselines(config: TrainConfig, train: GeoSplit, test: GeoSplit, cells, account) -> dict[str, Any]:
    from geocell_engine.evaluation.baselines import (
        constant_baseline,
        knn_colour_baseline,
        true_cell_centroid,
    )

    out = {"constant (geometric median)": constant_baseline(
        train.lat, train.lon, train.country, test.lat, test.lon, test.country, test.admin1, train_admin1=train.admin1)}
    train_images, train_kept = _images_of(train, config, account)
    test_images, test_kept = _images_of(test, config, account)
    if test_kept.size != len(test):
        raise DataError(f"{len(test) - test_kept.size} test images could not be read after screening; "
                        "they changed on disk during the run")
    out["kNN colour histograms"] = knn_colour_baseline(
        train_images, train.lat[train_kept], train.lon[train_kept], train.country[train_kept],
        test_images, test.lat[test_kept], test.lon[test_kept], test.country[test_kept],
        train_admin1=train.admin1[train_kept], test_admin1=test.admin1[test_kept])
    if cells is not None:
        out["true-cell centroid"] = true_cell_centroid(cells, test.lat, test.lon, test.country, test.admin1)
    return out


def run_training(config: TrainConfig, log: Callable[[str], None] = print, read_test: bool = True,
                 on_epoch_end: Optional[Callable[[int, dict], None]] = None) -> Optional[RunSummary]:
    """Fit, evaluate, compare with baselines and write the report. Returns None on non-main ranks.

    Args:
        read_test: False stops after training: the test split is not scored (model choice in a study
            looks at validation only); the summary's report holds ``history`` and ``best_epoch``.
        on_epoch_end: ``on_epoch_end(epoch, history_row)`` after every epoch (see
            :func:`geocell_engine.engine.fit.fit`); what it raises ends the run (resumable).
    """
    import torch

    from geocell_engine.data.regions import dataset_clusters
    from geocell_engine.engine.device import (
        choose_precision,
        leave_distributed,
        setup_distributed,
    )
    from geocell_engine.engine.fit import fit
    from geocell_engine.engine.model import require_weights
    from geocell_engine.engine.predict import predict_split
    from geocell_engine.engine.tasks import create_task
    from geocell_engine.engine.tensorboard import require_logger
    from geocell_engine.evaluation.report import (
        comparison_table,
        evaluate,
        with_intervals,
        write_report,
    )

    require_weights(config)  # before the run folder exists: a missing file leaves nothing behind
    require_logger(config.logger)
    ctx = setup_distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = resolve_run_dir(config)
    created = not run_dir.exists()
    try:
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if (run_dir / "last.pt").is_file():  # a resume: refuse changed settings before writing anything
                from geocell_engine.engine.checkpoint import load_checkpoint
                from geocell_engine.engine.resume import check_resume_config

                last = run_dir / "last.pt"
                check_resume_config(load_checkpoint(last)["config"], config.to_dict(), source=str(last))
            _write_config(config, run_dir)
        log(f"run directory: {run_dir}")
        start = time.perf_counter()
        splits, info = load_splits(config.data, seed=config.seed, split_file=config.split_file,
                                   on_bad_image=config.on_bad_image, split_method=config.split_method)
        account = info.images
        if ctx.is_main:
            _record_data(splits, info, run_dir, log)
        splits, country_set = _select_countries(config, splits, log)
        # val and test are screened once, so that the model and every baseline see the same samples
        train = require_usable(splits["train"].cap_per_country(config.max_per_country, config.seed)
                               .subsample(config.max_train_samples, config.seed), account)
        decode = eval_decoder(config)
        val, test = (require_usable(screen_split(splits[name].subsample(config.max_eval_samples, config.seed + k),
                                                 config.image_size, config.on_bad_image, account, decode=decode),
                                    account)
                     for name, k in (("val", 1), ("test", 2)))
        log(f"data: {info.name} ({info.version}); train {len(train):,}, val {len(val):,}, test {len(test):,} "
            f"(loaded in {time.perf_counter() - start:.1f} s)")
        if len(account):
            log(f"images left out: {account.summary()}")
        _require_coordinates(config, train)
        # only the main rank writes the cells into the run folder; the others build the same ones
        task = create_task(config, train, run_dir=run_dir if ctx.is_main else None,
                           log=log if ctx.is_main else (lambda _: None))
        machine = _measure_machine(config, task, train, ctx, log)
        result = fit(config, task, train, val, run_dir, {"dataset": info.as_dict()}, ctx=ctx, log=log,
                     account=account, on_epoch_end=on_epoch_end)
    except BaseException as exc:
        started = (run_dir / "last.pt").is_file()
        if ctx.is_main and not started:
            _discard_unstarted(run_dir, created)
        if isinstance(exc, KeyboardInterrupt):
            raise RunInterrupted(f"interrupted; run the same command to resume {run_dir}" if started else
                                 "interrupted before the first checkpoint; nothing was kept") from None
        raise
    leave_distributed()  # training is over: no collective call follows, and rank 0 goes on alone
    if not ctx.is_main:
        return None
    if not read_test:
        from geocell_engine.engine.checkpoint import load_checkpoint

        best_epoch = int(load_checkpoint(result.best_path)["epoch"])
        return RunSummary(run_dir, "", {"history": result.history, "best_epoch": best_epoch,
                                        "stopped_early": result.stopped_early, "machine": machine})

    model, device = result.model, ctx.device
    precision = choose_precision(config.precision, device)
    predict = functools.partial(predict_split, model, task, image_size=config.image_size,
                                batch_size=max(64, config.batch_size), device=device, precision=precision,
                                on_bad_image=config.on_bad_image, decode=eval_decoder(config))
    preds = predict(test)
    preds.dump(run_dir / "predictions.csv")
    # every row is scored on the test samples with 95% intervals: a cluster bootstrap over the
    # held-out regions where the data set defines them (bluemarble), over samples otherwise
    clusters = dataset_clusters(config.data, test.ids)
    results = {"model": with_intervals(evaluate(preds), preds, clusters)}
    if not results["model"].located:
        log("location metrics skipped: the data have no coordinates (country folders); so are the baselines, "
            "which guess locations")
    for name, baseline in (_baselines(config, train, test, _find_cellset(task), account).items()
                           if results["model"].located else ()):
        results[name] = with_intervals(evaluate(baseline), baseline, clusters)
    robust = robustness_result(predict, config, countries=_trained_countries(config, task))
    if robust is not None:
        results[ROBUSTNESS_ROW] = robust
    extra_report = {
        "dataset": f"{info.name} ({info.version})", "dataset_sha256": dict(info.sha256),
        "task": task.describe(), "backbone": config.backbone, "cells": _cells_summary(task),
        "countries": country_set,
        "epochs run": result.epochs_run, "stopped early": result.stopped_early,
        "training images/s": round(result.images_per_second, 1), "wall time (s)": round(time.perf_counter() - start, 1),
        "train / val / test": f"{len(train)} / {len(val)} / {len(test)}", "device": device,
        "images left out": account.summary(), **machine,
    }
    if len(account):
        account.write(run_dir / "bad_images.csv")
    written = write_report(run_dir, results, result.history, preds, extra_report, clusters=clusters)
    return RunSummary(run_dir, comparison_table(list(results.values()), names=list(results)), written.payload)


def _measure_machine(config: TrainConfig, task, train: GeoSplit, ctx, log: Callable[[str], None]) -> dict[str, Any]:
    """The machine fields of the report (:func:`geocell_engine.engine.machine.machine_record`),
    with the bare step rate measured now on a CPU run's main process (None elsewhere)."""
    from geocell_engine.engine.machine import bare_step_rate, machine_record

    if not ctx.is_main:
        return {}
    rate = bare_step_rate(config, task, train) if ctx.device == "cpu" else None
    record = machine_record(rate)
    log(f"machine: {record['CPU']}, {record['CPU cores']} cores, flags {record['CPU flags']}"
        + (f"; bare training step {rate:,.0f} images/s" if rate is not None else ""))
    return record


#: The report row of the model on the robustness rendering of the test points.
ROBUSTNESS_ROW = "model on shaded-relief patches"


def _trained_countries(config: TrainConfig, task) -> Optional[tuple[str, ...]]:
    """The countries a run with ``min_per_country`` was restricted to (the task's classes), else None."""
    return tuple(task.labels.countries) if config.min_per_country is not None else None


def robustness_result(predict: Callable[..., Any], config: TrainConfig,
                      countries: Optional[Sequence[str]] = None):
    """The model on the data set's robustness rendering of its test points (bluemarble: the same
    points from ``shadedrelief.jpg``), scored with intervals; None when the data set has none.

    Args:
        predict: ``predict(split, name=...) -> Predictions`` with the model bound
            (:func:`geocell_engine.engine.predict.predict_split`).
        config: the run's ``data``, ``max_eval_samples`` and ``seed`` (the test subsample's).
        countries: score only the points of these countries (a run restricted by
            ``min_per_country``, as its test split was); None: all.
    """
    from geocell_engine.data.regions import dataset_clusters
    from geocell_engine.evaluation.report import evaluate, with_intervals

    robust = robustness_split(config.data)
    if robust is None:
        return None
    if countries is not None:
        robust = robust.only_countries(countries)
    robust = robust.subsample(config.max_eval_samples, config.seed + 2)
    preds = predict(robust, name="model (shadedrelief)")
    return with_intervals(evaluate(preds), preds, dataset_clusters(config.data, robust.ids))


#: Files a run writes before its first checkpoint: removed when it fails before one, so that a
#: re-run never picks them up.
_UNSTARTED_FILES = ("config.yaml", "cells.parquet", "cells.json", "metrics.jsonl", "bad_images.csv")


def _discard_unstarted(run_dir: Path, created: bool) -> None:
    """Remove what a run that failed before its first checkpoint wrote (the folder too, if this
    run created it and nothing else is in it)."""
    for name in _UNSTARTED_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for stale in run_dir.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
    if created and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def _find_cellset(task):
    """The CellSet of the task (or of its region part), or None."""
    if getattr(task, "cellset", None) is not None:
        return task.cellset
    for part in getattr(task, "parts", {}).values():
        if getattr(part, "cellset", None) is not None:
            return part.cellset
    return None


def _cells_summary(task) -> str:
    cells = _find_cellset(task)
    return f"{len(cells)} {cells.kind} cells, hash {cells.hash[:12]}" if cells is not None else "none"


def evaluate_checkpoint(checkpoint: str | os.PathLike, data: str, split: Optional[str] = None,
                        dump: Optional[str] = None, out_dir: Optional[str] = None,
                        max_samples: Optional[int] = None, device: Optional[str] = None,
                        on_bad_image: str = "fail", profiles: Sequence[str] = ("geocell",),
                        resamples: int = 2000, robustness: bool = False,
                        log: Callable[[str], None] = print) -> RunSummary:
    """Evaluate a checkpoint on a whole benchmark file or on one split; writes a report.

    A manifest without a split column is evaluated whole (``split`` must then be None); with
    one, ``split`` selects the rows (default ``"test"``); see
    :func:`geocell_engine.data.dataset.load_eval_split`. Each of ``profiles``
    (:data:`geocell.profiles.PROFILE_NAMES`) gives one row of the table. The numbers of rows in
    the file, scored, missing and unreadable are logged and stored in the report
    (``report.json["rows"]``). The run's ``cells.parquet`` beside the checkpoint (same hash)
    gives cell accuracy too. Missing or unreadable images stop the evaluation
    (``on_bad_image="fail"``) or are left out, counted and listed in ``bad_images.csv``
    (``"skip"``).

    Every row carries 95% intervals (``resamples`` bootstrap replicates, seed 0; 0 = none): a
    cluster bootstrap over the held-out regions of a bluemarble version, over samples for a
    manifest. ``robustness`` adds, to an evaluation of the test split, the row of the model on the
    data set's robustness rendering of its test points (:func:`robustness_result`; bluemarble's
    from another map), where the data set has one.
    """
    from geocell.profiles import get_profile
    from geocell_engine.data.dataset import load_eval_split
    from geocell_engine.data.regions import dataset_clusters
    from geocell_engine.engine.device import choose_device, choose_precision
    from geocell_engine.engine.model import load_model
    from geocell_engine.engine.predict import predict_split
    from geocell_engine.evaluation.report import (
        RowCounts,
        comparison_table,
        evaluate,
        levels_table,
        with_intervals,
        write_report,
    )

    chosen = [get_profile(p).name for p in profiles] or ["geocell"]  # unknown names fail before any work
    # the data first: a file that cannot be evaluated as asked is refused before the model is loaded
    # (no seed is needed: a file without a split column is evaluated whole, never split at random)
    data_set = load_eval_split(data, split, on_bad_image=on_bad_image)  # type: ignore[arg-type]
    account, name = data_set.info.images, data_set.split_name
    device = device or choose_device()
    loaded = load_model(checkpoint, device)
    config, task = loaded.config, loaded.task
    selected, countries = data_set.split, _trained_countries(config, task)
    if countries is not None:  # the model was trained and validated on a fixed set of countries
        selected = selected.only_countries(countries)
        log(f"countries: the model knows {len(countries)} (min_per_country={config.min_per_country}); "
            f"{len(data_set.split) - len(selected):,} rows of other countries left out")
    sampled = selected.subsample(max_samples, config.seed + 2)
    decode = eval_decoder(config)
    target = require_usable(screen_split(sampled, config.image_size, on_bad_image, account, decode=decode),  # type: ignore[arg-type]
                            account)
    predict = functools.partial(predict_split, loaded.model, task, image_size=config.image_size,
                                batch_size=max(64, config.batch_size), device=device,
                                precision=choose_precision(config.precision, device), decode=decode)
    started = time.perf_counter()
    preds = predict(target)
    # end-to-end: the split's images through the loader and the model, batch max(64, batch_size)
    inference_rate = len(preds) / max(time.perf_counter() - started, 1e-9)
    counts = account.counts(name)
    rows = RowCounts(source=str(data), in_file=data_set.in_file, selected=data_set.selected,
                     missing=counts["missing"], unreadable=counts["unreadable"], scored=len(preds), split=name,
                     sampled_out=len(selected) - len(sampled), other_countries=len(data_set.split) - len(selected))
    log(rows.summary())
    out = Path(out_dir) if out_dir else Path(checkpoint).resolve().parent / f"eval-{Path(str(data)).stem}-{name}"
    out.mkdir(parents=True, exist_ok=True)
    if dump:
        preds.dump(dump)
    results = {("model" if len(chosen) == 1 else f"model [{p}]"): evaluate(preds, profile=p) for p in chosen}
    clusters = None
    if resamples:
        # training points belong to no held-out region: the training split is resampled by sample
        clusters = dataset_clusters(data, preds.ids) if name in ("val", "test") else None
        results = {k: with_intervals(r, preds, clusters, n_resamples=resamples) for k, r in results.items()}
    if robustness and name == "test":
        robust = robustness_result(predict, config, countries=countries)
        if robust is not None:
            results[ROBUSTNESS_ROW] = robust
    written = write_report(out, results, None, preds,
                           {"checkpoint": str(checkpoint), "dataset": f"{data_set.info.name} ({data_set.info.version})",
                            "split": name, "profiles": ", ".join(chosen),
                            "trained on": loaded.checkpoint.get("dataset", {}).get("name"),
                            "cells": _cells_summary(task), "device": device,
                            "inference images/s": round(inference_rate, 1),
                            "images left out": account.summary()}, rows=rows, clusters=clusters)
    if len(account):
        account.write(out / "bad_images.csv")
    table = "\n".join(get_profile(p).describe() for p in chosen) + "\n\n" + comparison_table(
        list(results.values()), names=list(results))
    levels = levels_table(list(results.values()), names=list(results))
    if levels.strip():
        table += "\n" + levels
    return RunSummary(out, table, written.payload, predictions=preds)
