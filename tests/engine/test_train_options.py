"""Training options take effect: ``--ema``, ``--accum-steps``, ``--cells s2``, a cells file,
``--loss-weights`` and ``--quick``, each checked in what the run leaves behind (checkpoints,
``metrics.jsonl``, ``cells.parquet``) rather than in what it prints.

Every run is the tiny CPU one of :mod:`tests.tiny_data` (60 training images, one epoch where one
is enough); ``--quick`` is only resolved (``--print-config``), never trained here.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from geocell_engine import cli
from tests.tiny_data import TINY, make_tiny_dataset

N_TRAIN = 60  # 6 places x 10 training images in the tiny manifest


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def train(manifest: Path, out: Path, *extra: str, epochs: int = 1) -> Path:
    """Train a tiny run named ``run`` under ``out``; returns its directory."""
    flags = list(TINY)
    flags[flags.index("--epochs") + 1] = str(epochs)
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(out), "--run-name", "run", *flags,
                     *extra]) == 0
    return out / "run"


def history(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_ema_weights_are_the_evaluated_and_best_ones(tiny, tmp_path):
    """With --ema, best.pt (what validation, the report and evaluate use) holds the EMA's
    weights, which are not the raw weights that last.pt keeps for resuming."""
    run = train(tiny, tmp_path, "--task", "country", "--ema", "--ema-decay", "0.9")
    last, best = load(run / "last.pt"), load(run / "best.pt")
    assert last["epoch"] == best["epoch"] == 1  # the same moment: best.pt was written with last.pt
    ema = last["ema"]
    assert ema is not None, "--ema: last.pt has no EMA state"
    ema_model = {k.removeprefix("module."): v for k, v in ema.items()}
    assert set(ema_model) == set(best["model"]) == set(last["model"])
    for key, value in best["model"].items():
        assert torch.equal(value, ema_model[key]), f"best.pt {key} is not the EMA's"
    float_keys = [k for k, v in last["model"].items() if v.is_floating_point()]
    differ = [k for k in float_keys if not torch.equal(best["model"][k], last["model"][k])]
    assert len(differ) > len(float_keys) // 2, "the EMA weights are (mostly) the raw weights"
    # the report's test predictions are the EMA model's, not the raw model's
    from geocell_engine.data.dataset import load_splits
    from geocell_engine.engine.model import load_model
    from geocell_engine.engine.predict import predict_split

    test = load_splits(str(tiny), seed=0)[0]["test"]
    reported = pd.read_csv(run / "predictions.csv")["pred_country_prob"].to_numpy()

    def country_prob(checkpoint: Path):
        loaded = load_model(checkpoint)
        preds = predict_split(loaded.model, loaded.task, test, image_size=loaded.config.image_size)
        assert [str(p) for p in preds.to_frame()["id"]] == pd.read_csv(run / "predictions.csv")["id"].tolist()
        return preds.to_frame()["pred_country_prob"].to_numpy()

    np.testing.assert_allclose(country_prob(run / "best.pt"), reported, rtol=1e-5)
    assert np.abs(country_prob(run / "last.pt") - reported).max() > 1e-4


def test_accum_steps_counts_optimizer_steps_and_steps_the_last_partial_accumulation(tiny, tmp_path):
    batch, accum, epochs = 20, 2, 2
    run = train(tiny, tmp_path, "--task", "country", "--batch-size", str(batch), "--accum-steps", str(accum),
                epochs=epochs)
    micro = math.ceil(N_TRAIN / batch)  # 3 micro-batches: 2 accumulated, then 1 alone
    per_epoch = math.ceil(micro / accum)
    assert per_epoch == 2 and micro % accum  # the case with a partial accumulation at the end
    assert [row["step"] for row in history(run)] == [per_epoch * e for e in range(1, epochs + 1)]
    last = load(run / "last.pt")
    assert last["step"] == per_epoch * epochs
    # AdamW's own count of the updates it applied, for every parameter
    counts = {float(state["step"]) for state in last["optimizer"]["state"].values()}
    assert counts == {float(per_epoch * epochs)}


def test_s2_cells(tiny, tmp_path):
    from geocell.cells import CellSet

    run = train(tiny, tmp_path, "--task", "region", "--cells", "s2", "--s2-tau-min", "3", "--s2-tau-max", "12")
    cells = CellSet.load(run / "cells.parquet")
    assert cells.kind == "s2" and len(cells) >= 2
    last = load(run / "last.pt")
    state = last["task"]["state"]["cells"]
    assert state["kind"] == "s2" and state["hash"] == cells.hash
    assert [str(i) for i in state["ids"]] == [str(i) for i in cells.ids]
    assert last["model"]["heads.region.fc.weight"].shape[0] == len(cells)  # one logit per S2 cell


def test_cells_file_is_used_as_given(tiny, tmp_path):
    """``--cells FILE`` trains on the cells of a file from ``cells build`` (here coarser than the
    semantic cells the TINY settings would build from the same points)."""
    from geocell.cells import CellSet
    from geocell_engine.data.dataset import load_splits
    from geocell_engine.engine.config import resolve_config
    from geocell_engine.engine.tasks import build_cells

    manifest = pd.read_csv(tiny)
    points = tmp_path / "points.csv"
    manifest[manifest.split == "train"][["lat", "lon"]].to_csv(points, index=False)
    cells_file = tmp_path / "mine.parquet"
    assert cli.main(["cells", "build", "--points", str(points), "--kind", "semantic", "--min-samples", "20",
                     "--max-samples", "40", "--out", str(cells_file)]) == 0
    given = CellSet.load(cells_file)
    # what the run would have built without the file
    splits, _ = load_splits(str(tiny), seed=0)
    default = build_cells(resolve_config({"cell_min_samples": "3", "cell_max_samples": "12"}), splits["train"],
                          log=lambda _: None)
    assert default.hash != given.hash and len(default) != len(given)

    run = train(tiny, tmp_path / "out", "--task", "region", "--cells", str(cells_file))
    assert CellSet.load(run / "cells.parquet").hash == given.hash
    last = load(run / "last.pt")
    assert last["task"]["state"]["cells"]["hash"] == given.hash
    assert last["model"]["heads.region.fc.weight"].shape[0] == len(given)


@pytest.mark.parametrize("weights, expected", [
    ("region=1,country=0", lambda region, country: region),
    ("region=1,country=1", lambda region, country: region + country),
])
def test_loss_weights_weigh_the_logged_training_loss(tiny, tmp_path, weights, expected):
    run = train(tiny, tmp_path, "--task", "multi", "--multi-tasks", "region,country", "--loss-weights", weights)
    (row,) = history(run)
    assert row["train_loss_region"] > 0 and row["train_loss_country"] > 0
    assert row["train_loss"] == pytest.approx(expected(row["train_loss_region"], row["train_loss_country"]), rel=1e-6)
    assert load(run / "last.pt")["config"]["loss_weights"] == {k: float(v) for k, v in
                                                              (p.split("=") for p in weights.split(","))}


def test_quick_resolves_to_the_quick_preset(tmp_path, capsys, monkeypatch):
    from geocell_engine.engine.config import QUICK_PRESET, TrainConfig

    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--quick", "--print-config"]) == 0
    text = capsys.readouterr().out
    printed = yaml.safe_load(text)
    defaults = TrainConfig().to_dict()
    assert set(printed) == set(defaults)
    assert {k: printed[k] for k in QUICK_PRESET} == QUICK_PRESET
    assert {k: v for k, v in printed.items() if k not in QUICK_PRESET} == \
        {k: v for k, v in defaults.items() if k not in QUICK_PRESET}
    assert any(defaults[k] != v for k, v in QUICK_PRESET.items())  # the preset changes something
    # a typed flag wins over the preset; the printed config reads back as the same config
    assert cli.main(["train", "--quick", "--epochs", "3", "--print-config"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == dict(printed, epochs=3)
    (tmp_path / "quick.yaml").write_text(text)
    assert cli.main(["train", "--config", str(tmp_path / "quick.yaml"), "--print-config"]) == 0
    assert capsys.readouterr().out == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quick.yaml"]  # printing trains nothing
