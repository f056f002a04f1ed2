"""The task registry: a task defined only here trains, evaluates and predicts end to end; the
engine has no task-name dispatch; device choice; checkpoint format conversion; GeoModel
normalisation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from geocell_engine import cli
from geocell_engine.engine.tasks import Task, list_tasks, register_task
from tests.tiny_data import TINY, make_tiny_dataset

ROOT = Path(__file__).resolve().parents[2]


@register_task("test_xyz_mse")
class XyzMseTask(Task):
    """A task only this test file knows: a lat/lon head trained with squared error on unit vectors."""

    def build_heads(self, in_features):
        from heads import create_head

        return {"xyz": create_head("latlon", in_features)}

    def loss(self, outputs, targets):
        from geocell import latlon_to_xyz

        target = latlon_to_xyz(targets["lat"].double(), targets["lon"].double()).float()
        value = ((outputs["xyz"].xyz.float() - target) ** 2).sum(dim=-1).mean()
        return value, {"xyz": float(value.detach())}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def test_a_task_registered_in_a_test_file_runs_end_to_end(tiny, tmp_path, capsys):
    assert "test_xyz_mse" in list_tasks()
    assert cli.main(["train", "--data", str(tiny), "--out-dir", str(tmp_path), *TINY, "--task", "test_xyz_mse"]) == 0
    run = tmp_path / "test_xyz_mse-manifest"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(row["train_loss_xyz"]) for row in history)
    assert cli.main(["evaluate", str(run / "best.pt"), "--data", str(tiny), "--dump", str(tmp_path / "d.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "d.csv")) == 12
    capsys.readouterr()
    assert cli.main(["predict", str(tiny.parent / "img" / "0_0.png"), "--checkpoint", str(run / "best.pt"), "--json"]) == 0
    item = json.loads(capsys.readouterr().out)["images"][0]
    assert item["location_method"] == "latlon" and -90 <= item["lat"] <= 90


def test_country_model_learns_colours_well_above_chance(tiny, tmp_path):
    """Three countries that colour separates: after training, test top-1 is far above 1/3."""
    args = [a if a != "2" else "6" for a in TINY]  # 6 epochs
    (tmp_path / "c.yaml").write_text("patience: 6\n")
    assert cli.main(["train", "--data", str(tiny), "--out-dir", str(tmp_path), *args, "--task", "country",
                     "--lr", "5e-3", "--config", str(tmp_path / "c.yaml")]) == 0
    report = json.loads((tmp_path / "country-manifest" / "report.json").read_text())
    model = report["results"]["model"]
    assert model["n"] == 12
    # chance is 1/3; 8 or more of 12 right by chance has probability 0.5%
    assert model["country"]["top_k_accuracy"]["1"] >= 8 / 12, model["country"]


def test_no_task_name_dispatch_outside_the_task_classes():
    offenders = []
    for path in (ROOT / "geocell_engine").rglob("*.py"):
        if "tasks" in path.relative_to(ROOT / "geocell_engine").parts:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"\btask\s*(==|!=|in\s*\()|\"(region|country|latlon|distance)\"\s+in\s+config", line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, offenders


def test_device_choice(monkeypatch):
    from geocell_engine.engine.device import choose_device, choose_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_device() == "cpu"
    with pytest.raises(ValueError, match="no CUDA"):
        choose_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert choose_device() == "cuda:0"
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert choose_device() == "cuda:1" and choose_device("cuda:0") == "cuda:0"
    assert choose_device("cpu") == "cpu"
    assert choose_precision("auto", "cuda:1") == "bf16" and choose_precision("auto", "cpu") == "fp32"
    with pytest.raises(ValueError, match="auto, cpu"):
        choose_device("tpu")


def test_evaluate_and_predict_use_the_chosen_device(tiny, tmp_path, monkeypatch):
    """evaluate asks choose_device once and runs the model there (checked on the CPU by spying)."""
    from geocell_engine.engine import device as device_module
    from geocell_engine.engine import run as run_module

    assert cli.main(["train", "--data", str(tiny), "--out-dir", str(tmp_path), *TINY, "--task", "country",
                     "--epochs", "1"]) == 0
    calls = []
    real = device_module.choose_device
    monkeypatch.setattr(device_module, "choose_device", lambda requested="auto": calls.append(requested) or real("cpu"))
    summary = run_module.evaluate_checkpoint(tmp_path / "country-manifest" / "best.pt", str(tiny))
    assert calls == ["auto"] and summary.report["extra"]["device"] == "cpu"


def _as_format_1(ckpt: dict, cells_file: Path) -> dict:
    """What a checkpoint looked like before the task classes (with the version-1 cells hash)."""
    from geocell.cells import CellSet

    task = ckpt.pop("task")
    cells = dict(task["state"]["cells"], hash=CellSet.load(cells_file).hash_v1)
    return dict(ckpt, format=1, vocab={"country": task["labels"]["countries"]}, anchors=task["labels"]["anchors"],
                cells=cells)


def test_format_1_checkpoint_converts_and_unknown_format_is_refused(tiny, tmp_path, capsys):
    assert cli.main(["train", "--data", str(tiny), "--out-dir", str(tmp_path), *TINY, "--task", "region",
                     "--epochs", "1"]) == 0
    run = tmp_path / "region-manifest"
    ckpt = torch.load(run / "best.pt", weights_only=True)
    old = run / "old.pt"
    torch.save(_as_format_1(ckpt, run / "cells.parquet"), old)
    capsys.readouterr()
    assert cli.main(["predict", str(tiny.parent / "img" / "0_0.png"), "--checkpoint", str(old), "--json"]) == 0
    converted = json.loads(capsys.readouterr().out)["images"][0]
    assert cli.main(["predict", str(tiny.parent / "img" / "0_0.png"), "--checkpoint", str(run / "best.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"][0] == converted
    torch.save(dict(ckpt, format=99), tmp_path / "future.pt")
    assert cli.main(["predict", str(tiny.parent / "img" / "0_0.png"), "--checkpoint", str(tmp_path / "future.pt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "format" in err and "retrain" in err


def test_evaluate_scores_cells_with_the_runs_cells_file(tiny, tmp_path):
    assert cli.main(["train", "--data", str(tiny), "--out-dir", str(tmp_path), *TINY, "--task", "region",
                     "--epochs", "1"]) == 0
    from geocell_engine.engine.run import evaluate_checkpoint

    summary = evaluate_checkpoint(tmp_path / "region-manifest" / "best.pt", str(tiny))
    assert summary.report["results"]["model"].get("cell_accuracy") is not None


def test_geomodel_normalises_uint8_and_unit_floats_alike():
    from heads import GeoModel

    torch.manual_seed(0)
    model = GeoModel.build("test_efficientnet", {"latlon": {}}, pretrained=False).eval()
    images = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        a = model(images)["latlon"].xyz
        b = model(images.float() / 255.0)["latlon"].xyz
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(TypeError, match="uint8"):
        model(images.long())
    assert "mean" not in model.state_dict()  # derived from the backbone, not saved
