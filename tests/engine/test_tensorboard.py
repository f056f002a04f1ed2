"""``--logger tensorboard``: event files beside metrics.jsonl hold the same numbers, a resume writes
every epoch once (stale events of a killed run purged), and a missing package is a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geocell_engine import cli
from tests.tiny_data import TINY, make_tiny_dataset

pytest.importorskip("tensorboard")  # CI installs it (the tensorboard extra); skipped only outside CI


def _train(manifest: Path, out: Path, *extra: str) -> int:
    return cli.main(["train", "--data", str(manifest), "--out-dir", str(out), *TINY, "--task", "country",
                     "--run-name", "r", "--logger", "tensorboard", *extra])


def _fit(manifest: Path, out: Path, **values) -> Path:
    """A tiny run trained without its test-split report (what `train` does before it)."""
    from geocell_engine.engine.config import TrainConfig
    from geocell_engine.engine.run import run_training

    config = TrainConfig.from_dict({"data": str(manifest), "out_dir": str(out), "run_name": "r", "task": "country",
                                    "backbone": "test_efficientnet", "pretrained": False, "image_size": 32,
                                    "batch_size": 16, "quiet": True, "precision": "fp32", "threads": 1,
                                    "logger": "tensorboard", **values})
    return run_training(config, log=lambda _: None, read_test=False).run_dir


def _events(run: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] as TensorBoard reads the run's event files (purges applied)."""
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(run / "tensorboard"), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def _expected(run: Path) -> dict[str, list[tuple[int, float]]]:
    from geocell_engine.engine.tensorboard import scalars_of

    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    out: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in scalars_of(row).items():
            out.setdefault(key, []).append((row["epoch"], value))
    return out


def _assert_same(events, expected) -> None:
    assert set(events) == set(expected)
    for tag, points in expected.items():
        assert [s for s, _ in events[tag]] == [s for s, _ in points], tag
        assert [v for _, v in events[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag


def test_event_files_match_metrics_and_a_resume_writes_each_epoch_once(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    manifest = make_tiny_dataset(tmp_path / "data")
    run = _fit(manifest, tmp_path, epochs=1)
    expected = _expected(run)
    assert {"train_loss", "val_score", "val_country_acc", "val_median_km", "lr"} <= set(expected)
    _assert_same(_events(run), expected)
    # a run killed after writing epoch 2's events but before its checkpoint: stale values at step 2
    stale = SummaryWriter(str(run / "tensorboard"))
    stale.add_scalar("train_loss", 999.0, global_step=2)
    stale.add_scalar("val_score", 999.0, global_step=2)
    stale.close()
    assert _fit(manifest, tmp_path, epochs=2, extend_epochs=True) == run  # resumed after epoch 1
    expected = _expected(run)
    assert [s for s, _ in expected["train_loss"]] == [1, 2]
    events = _events(run)
    _assert_same(events, expected)  # steps 1 and 2 once each, with metrics.jsonl's values
    assert 999.0 not in [v for _, v in events["train_loss"]]


def test_missing_tensorboard_is_a_clear_error(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert _train(tmp_path / "missing.csv", tmp_path) == 2
    err = capsys.readouterr().err
    assert "--logger tensorboard needs the tensorboard package" in err and "pip install" in err
    assert not (tmp_path / "r").exists()
