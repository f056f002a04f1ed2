"""The bad-input and fault matrix: every case ends with a specific exit code, a message that
names the culprit, and no partial or stale output left behind.

(Bad config values have their own matrix in ``tests/cli/test_train_flags.py``; bad coordinates,
tables and output paths in ``tests/cli`` and ``tests/geocell``.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from geocell_engine import cli
from tests.tiny_data import TINY, make_tiny_dataset

ROOT = Path(__file__).resolve().parents[2]
ONE_EPOCH = [a if a != "2" else "1" for a in TINY]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished region run on the tiny data set (shared, never modified: cases copy it)."""
    root = tmp_path_factory.mktemp("faults")
    manifest = make_tiny_dataset(root / "data")
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(root / "runs"), *ONE_EPOCH,
                     "--task", "region", "--run-name", "r"]) == 0
    return manifest, root / "runs" / "r"


def _copy_data(manifest: Path, dest: Path) -> Path:
    shutil.copytree(manifest.parent, dest)
    return dest / manifest.name


def _unfinished_copy(run: Path, dest: Path) -> Path:
    """The run as a kill after its last checkpoint leaves it (no report yet)."""
    shutil.copytree(run, dest)
    for name in ("report.json", "report.md", "predictions.csv"):
        (dest / name).unlink()
    return dest


def _one_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line]
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------------------- data
def test_missing_image_fails_naming_the_row_and_leaves_no_run(trained, tmp_path, capsys):
    manifest = _copy_data(trained[0], tmp_path / "data")
    (manifest.parent / "img" / "2_3.png").unlink()
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(tmp_path / "runs"), *ONE_EPOCH]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "2_3.png" in err and "line 33" in err and "--on-bad-image skip" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_no_usable_training_image_stops_before_training(trained, tmp_path, capsys):
    manifest = _copy_data(trained[0], tmp_path / "data")
    frame = pd.read_csv(manifest)
    for path in frame.loc[frame.split == "train", "path"]:
        (manifest.parent / path).unlink()
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(tmp_path / "runs"), *ONE_EPOCH,
                     "--on-bad-image", "skip"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "no usable training images" in err and "60 missing" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_every_training_image_unreadable_stops_in_epoch_one(trained, tmp_path, capsys):
    manifest = _copy_data(trained[0], tmp_path / "data")
    frame = pd.read_csv(manifest)
    for path in frame.loc[frame.split == "train", "path"]:
        (manifest.parent / path).write_bytes(b"not a png")
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(tmp_path / "runs"), *ONE_EPOCH,
                     "--on-bad-image", "skip"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "none of the 60 training images could be read" in err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_evaluate_counts_and_lists_a_bad_test_image(trained, tmp_path, capsys):
    manifest = _copy_data(trained[0], tmp_path / "data")
    (manifest.parent / "img" / "1_13.png").write_bytes(b"broken")
    ckpt = str(trained[1] / "best.pt")
    out = tmp_path / "eval"
    assert cli.main(["evaluate", ckpt, "--data", str(manifest), "--out-dir", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "1_13.png" in err and "--on-bad-image skip" in err
    assert not (out / "report.json").exists()
    assert cli.main(["evaluate", ckpt, "--data", str(manifest), "--out-dir", str(out), "--on-bad-image", "skip"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["results"]["model"]["n"] == 11 and report["extra"]["images left out"] == "test: 1 unreadable"
    assert pd.read_csv(out / "bad_images.csv").path.str.endswith("1_13.png").tolist() == [True]


# ---------------------------------------------------------------------------- resume
@pytest.mark.parametrize("flags, named", [
    (["--lr", "0.5"], "lr 0.002 -> 0.5"),
    (["--batch-size", "7"], "batch_size 16 -> 7"),
    (["--epochs", "4"], "--extend-epochs"),
])
def test_resume_with_changed_settings_is_refused_by_name(trained, tmp_path, capsys, flags, named):
    run = _unfinished_copy(trained[1], tmp_path / "runs" / "r")
    config_before = (run / "config.yaml").read_text()
    argv = ["train", "--data", str(trained[0]), "--out-dir", str(tmp_path / "runs"), *ONE_EPOCH, "--task", "region",
            "--run-name", "r"]
    assert cli.main(argv + flags) == 2
    err = _one_line(capsys.readouterr().err)
    assert named in err and "last.pt" in err
    assert (run / "config.yaml").read_text() == config_before  # nothing rewritten
    assert not (run / "report.json").exists()


def test_stale_cells_of_an_unfinished_run_are_rebuilt(trained, tmp_path, capsys):
    """A run killed before its first checkpoint left cells built with other settings."""
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    for name in ("cells.parquet", "cells.json", "config.yaml"):
        shutil.copy(trained[1] / name, run / name)
    argv = ["train", "--data", str(trained[0]), "--out-dir", str(tmp_path / "runs"), *ONE_EPOCH, "--task", "region",
            "--run-name", "r", "--cell-min-samples", "4", "--cell-max-samples", "10"]
    assert cli.main(argv) == 0
    assert "rebuilding" in capsys.readouterr().out
    settings = json.loads((run / "cells.json").read_text())["settings"]
    assert (settings["cell_min_samples"], settings["cell_max_samples"]) == (4, 10)
    assert "cell_min_samples: 4" in (run / "config.yaml").read_text()


# ---------------------------------------------------------------------------- init-from
def test_init_from_another_backbone_is_refused(trained, tmp_path, capsys):
    argv = ["train", "--data", str(trained[0]), "--out-dir", str(tmp_path / "runs"), *ONE_EPOCH, "--task", "country",
            "--backbone", "test_resnet", "--init-from", str(trained[1] / "best.pt")]
    assert cli.main(argv) == 2
    err = _one_line(capsys.readouterr().err)
    assert "backbone does not fit" in err and "test_efficientnet" in err
    assert not any((tmp_path / "runs").iterdir())


def test_init_heads_needs_the_same_vocabulary_and_cells(trained, tmp_path, capsys):
    frame = pd.read_csv(trained[0])
    two = tmp_path / "two.csv"  # France and the US only
    frame[frame.lon < 100].assign(path=lambda f: str(trained[0].parent) + "/" + f.path).to_csv(two, index=False)
    argv = ["train", "--data", str(two), "--out-dir", str(tmp_path / "runs"), *ONE_EPOCH, "--task", "region",
            "--init-from", str(trained[1] / "best.pt"), "--init-heads"]
    assert cli.main(argv) == 2
    err = _one_line(capsys.readouterr().err)
    assert "cells" in err or "vocabulary" in err
    assert not any((tmp_path / "runs").iterdir())


def test_init_from_copies_the_backbone_exactly(trained, tmp_path):
    from geocell_engine.data.dataset import load_splits
    from geocell_engine.engine.config import TrainConfig
    from geocell_engine.engine.fit import init_from_checkpoint
    from geocell_engine.engine.model import build_model
    from geocell_engine.engine.tasks import create_task

    config = TrainConfig(task="latlon", backbone="test_efficientnet", pretrained=False, data=str(trained[0]))
    splits, _ = load_splits(config.data)
    task = create_task(config, splits["train"], log=lambda _: None)
    model = build_model(config, task)
    copied = init_from_checkpoint(model, task, str(trained[1] / "best.pt"), log=lambda _: None)
    source = torch.load(trained[1] / "best.pt", weights_only=True)["model"]
    assert copied and all(k.startswith("backbone.") for k in copied)
    for key in copied:
        assert torch.equal(model.state_dict()[key], source[key]), key


# ---------------------------------------------------------------------------- artefacts
def _tamper_cells(path: Path, how: str) -> None:
    """Change a cells file's content but keep its stored hash (as an edit by hand would)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    column = "geometry" if how == "geometry" else "adm0_a3"
    values = table.column(column).to_pylist()
    values[0], values[1] = values[1], values[0]
    if values[0] == values[1]:
        values[0] = "XXX"
    table = table.set_column(table.schema.get_field_index(column), column, pa.array(values, table.schema.field(column).type))
    pq.write_table(table, path)


@pytest.mark.parametrize("how", ["geometry", "codes"])
def test_tampered_cells_file_is_refused(trained, tmp_path, capsys, how):
    run = tmp_path / "r"
    shutil.copytree(trained[1], run)
    _tamper_cells(run / "cells.parquet", how)
    assert cli.main(["evaluate", str(run / "best.pt"), "--data", str(trained[0]), "--out-dir", str(tmp_path / "e")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert "cells.parquet" in err and "hash" in err
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("damage, named", [
    (lambda c: c.pop("task"), "no 'task' entry"),
    (lambda c: c["config"].update(backbone="test_resnet"), "do not fit a test_resnet model"),
    (lambda c: c.update(format=7), "format"),
])
def test_damaged_checkpoint_gets_one_line(trained, tmp_path, capsys, damage, named):
    ckpt = torch.load(trained[1] / "best.pt", weights_only=True)
    damage(ckpt)
    path = tmp_path / "bad.pt"
    torch.save(ckpt, path)
    image = str(trained[0].parent / "img" / "0_0.png")
    assert cli.main(["predict", image, "--checkpoint", str(path)]) == 2
    assert named in _one_line(capsys.readouterr().err)


def test_predict_k_zero_is_refused(trained, capsys):
    image = str(trained[0].parent / "img" / "0_0.png")
    assert cli.main(["predict", image, "--checkpoint", str(trained[1] / "best.pt"), "-k", "0"]) == 2
    assert "-k must be at least 1" in _one_line(capsys.readouterr().err)


# ---------------------------------------------------------------------------- interruption
def test_ctrl_c_before_the_first_checkpoint_keeps_nothing(trained, tmp_path, capsys, monkeypatch):
    from geocell_engine.engine import fit as fit_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_module, "fit", interrupted)
    argv = ["train", "--data", str(trained[0]), "--out-dir", str(tmp_path / "runs"), *ONE_EPOCH, "--task", "region"]
    assert cli.main(argv) == 130
    assert _one_line(capsys.readouterr().err) == "interrupted before the first checkpoint; nothing was kept"
    assert not any((tmp_path / "runs").iterdir())


def test_ctrl_c_after_a_checkpoint_says_how_to_resume(trained, tmp_path, capsys, monkeypatch):
    from geocell_engine.engine import fit as fit_module

    real = fit_module.fit

    def cut(*args, **kwargs):
        def hook(event, epoch, step):
            if event == "epoch":
                raise KeyboardInterrupt
        return real(*args, **dict(kwargs, hook=hook))

    monkeypatch.setattr(fit_module, "fit", cut)
    argv = ["train", "--data", str(trained[0]), "--out-dir", str(tmp_path / "runs"), *TINY, "--task", "country",
            "--run-name", "c"]
    assert cli.main(argv) == 130
    err = _one_line(capsys.readouterr().err)
    assert err.startswith("interrupted; run the same command to resume") and err.endswith("c")
    assert (tmp_path / "runs" / "c" / "last.pt").is_file()
    monkeypatch.setattr(fit_module, "fit", real)
    assert cli.main(argv) == 0
    assert "after epoch 1" in capsys.readouterr().out


def test_sigint_ends_a_real_process_with_one_line_and_code_130(trained, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    argv = [sys.executable, str(ROOT / "cli.py"), "train", "--data", str(trained[0]), "--out-dir",
            str(tmp_path / "runs"), *[a if a != "2" else "50" for a in TINY], "--task", "country"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # wait until training has started
        if line.startswith("training "):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert _one_line(err).startswith("interrupted")
