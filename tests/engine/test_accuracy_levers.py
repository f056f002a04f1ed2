"""The accuracy issue's levers take effect: k-means cells (built, saved, assigned as they were
clustered, trained on), frozen backbone stages (no gradient, fixed batch norms, refused past the
model's depth, reloaded from a checkpoint), and the imagery-shift augmentation (each change
checked against torchvision's own function, seeded draws, refused with augmentation off); a run
with all three repeats bitwise."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geocell_engine import cli
from geocell_engine.errors import ConfigError
from tests.tiny_data import TINY, make_tiny_dataset


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


# ----------------------------------------------------------------------------- k-means cells
def _world_points(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[48.0, 2.0], [40.0, -100.0], [-25.0, 135.0], [35.0, 139.0], [-15.0, -50.0]])
    pick = rng.integers(0, len(centres), n)
    return centres[pick, 0] + rng.normal(0, 3, n), centres[pick, 1] + rng.normal(0, 3, n)


def test_kmeans_cells_assign_training_points_to_their_own_cluster(tmp_path):
    from geocell.cells import CellSet
    from geocell.kmeans_cells import build_kmeans

    lat, lon = _world_points()
    cells = build_kmeans(lat, lon, 20, seed=0)
    assert cells.kind == "kmeans" and len(cells) == 20 and int(cells.counts.sum()) == lat.size
    assigned = cells.assign(lat, lon)
    # every training point is in the cell of its nearest centroid, and the counts say so
    assert np.array_equal(np.bincount(assigned, minlength=20), cells.counts)
    again = build_kmeans(lat, lon, 20, seed=0)
    assert again.hash == cells.hash  # same points, same seed: the same cells
    saved = cells.save(tmp_path / "k.parquet")
    loaded = CellSet.load(saved)
    assert loaded.kind == "kmeans" and loaded.hash == cells.hash
    assert np.array_equal(loaded.assign(lat[:50], lon[:50]), assigned[:50])
    # the cells follow the data: each of the five clumps gets cells of its own
    assert len(np.unique(cells.country)) >= 5


def test_kmeans_refuses_more_cells_than_points():
    from geocell.errors import CellSetError
    from geocell.kmeans_cells import build_kmeans

    with pytest.raises(CellSetError, match="k <= 3"):
        build_kmeans([0.0, 1.0, 2.0], [0.0, 1.0, 2.0], 4)


# ----------------------------------------------------------------------- frozen backbone stages
def test_frozen_stages_get_no_gradient_and_keep_their_batch_norms():
    from timm.layers import FrozenBatchNormAct2d

    from heads import Backbone

    backbone = Backbone("test_efficientnet", pretrained=False)
    frozen = backbone.freeze_stages(2)  # the stem and the first block stage
    assert frozen > 0
    assert isinstance(backbone.model.bn1, FrozenBatchNormAct2d)
    backbone.train()
    backbone(torch.randn(2, 3, 32, 32)).sum().backward()
    assert backbone.model.conv_stem.weight.grad is None
    assert all(p.grad is None for p in backbone.model.blocks[0].parameters())
    assert all(p.grad is not None for p in backbone.model.blocks[1].parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="freeze_stages must be from 0 to"):
        Backbone("test_efficientnet", pretrained=False).freeze_stages(50)


# ----------------------------------------------------------------------------- imagery shift
def _rgb(n=4, side=8, seed=0):
    return torch.rand(n, 3, side, side, generator=torch.Generator().manual_seed(seed))


def test_colour_changes_match_torchvision():
    from torchvision.transforms.v2 import functional as TF

    from geocell_engine.data.imagery_shift import _blur, _colour_matrices

    x = _rgb()
    apply = lambda m: torch.einsum("ij,jhw->ihw", m[0], x[0]).clamp(0, 1)  # noqa: E731
    gray = _colour_matrices(torch.tensor([0.3]), torch.tensor([1.4]), torch.tensor([True]))
    assert torch.allclose(apply(gray), TF.rgb_to_grayscale(x[0], num_output_channels=3), atol=1e-3)
    half = _colour_matrices(torch.tensor([0.0]), torch.tensor([0.5]), torch.tensor([False]))
    assert torch.allclose(apply(half), TF.adjust_saturation(x[0], 0.5), atol=1e-3)
    same = _colour_matrices(torch.tensor([0.0]), torch.tensor([1.0]), torch.tensor([False]))
    assert torch.allclose(apply(same), x[0], atol=1e-5)
    # a third of a turn moves red towards green, as torchvision's adjust_hue does
    red = torch.tensor([0.8, 0.1, 0.1]).view(3, 1, 1)
    turned = torch.einsum("ij,jhw->ihw", _colour_matrices(torch.tensor([1 / 3]), torch.tensor([1.0]),
                                                           torch.tensor([False]))[0], red).flatten()
    assert int(turned.argmax()) == int(TF.adjust_hue(red, 1 / 3).flatten().argmax()) == 1
    assert torch.allclose(_blur(x, torch.full((4,), 1.0)), TF.gaussian_blur(x, [5, 5], [1.0, 1.0]), atol=1e-5)


def test_imagery_shift_is_seeded_and_off_by_default():
    from geocell_engine.data.imagery_shift import ShiftSettings, imagery_shift

    x = _rgb(8, 16)
    settings = ShiftSettings(hue=0.25, saturation=0.5, grayscale=0.5, blur=0.5, jpeg=0.5)
    a = imagery_shift(x, settings, torch.Generator().manual_seed(3))
    b = imagery_shift(x, settings, torch.Generator().manual_seed(3))
    c = imagery_shift(x, settings, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and float(a.min()) >= 0 and float(a.max()) <= 1
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    assert imagery_shift(x, ShiftSettings(), generator) is x
    assert torch.equal(generator.get_state(), state)  # nothing drawn: runs without the shift are unchanged


def test_kmeans_cells_without_kmeans_is_refused():
    from geocell_engine.engine.config import resolve_config

    with pytest.raises(ConfigError, match="kmeans_cells=50 .*cells is 'semantic'"):
        resolve_config({"kmeans_cells": "50"})
    assert resolve_config({"kmeans_cells": "50", "cells": "kmeans"}).kmeans_cells == 50


def test_shift_keys_need_augmentation():
    from geocell_engine.engine.config import resolve_config

    with pytest.raises(ConfigError, match="shift_grayscale .*augment is off"):
        resolve_config({"shift_grayscale": "0.3", "augment": False})
    assert resolve_config({"shift_grayscale": "0.3"}).shift_grayscale == 0.3


def test_one_run_with_every_lever_trains_evaluates_and_keeps_frozen_weights(tiny, tmp_path, capsys):
    """k-means cells, two frozen stages and the imagery shift in one tiny run: the cells are the
    k-means ones, the frozen stem has exactly its initial weights after training while a later
    stage has learnt, the log names the recipe, and the checkpoint evaluates; a freeze past the
    model's depth is refused before training."""
    from geocell.cells import CellSet
    from geocell_engine.engine.model import build_model, load_model

    assert cli.main(["train", "--data", str(tiny), "--out-dir", str(tmp_path), "--run-name", "run", *TINY,
                     "--cells", "kmeans", "--kmeans-cells", "5", "--freeze-stages", "2",
                     "--shift-grayscale", "0.5", "--shift-hue", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "imagery shift: hue 0.2, grayscale 0.5" in out and "backbone stages frozen: 2" in out
    run = tmp_path / "run"
    # the report records the machine: CPU, flags and the bare step rate measured at the start
    report = (run / "report.md").read_text()
    assert "CPU flags" in report and "bare step images/s at start" in report and "machine: " in out
    cells = CellSet.load(run / "cells.parquet")
    assert cells.kind == "kmeans" and len(cells) == 5
    ckpt = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    assert len(ckpt["task"]["state"]["cells"]["ids"]) == 5
    loaded = load_model(run / "best.pt")  # the frozen layout is rebuilt from the config
    torch.manual_seed(loaded.config.seed)  # as training does before building its model
    initial = build_model(loaded.config, loaded.task, pretrained=False).state_dict()
    trained = ckpt["model"]
    assert set(initial) == set(trained)
    assert torch.equal(initial["backbone.model.conv_stem.weight"], trained["backbone.model.conv_stem.weight"])
    learnt = [k for k in initial if k.startswith("backbone.model.blocks.2.") and k.endswith("weight")]
    assert learnt and any(not torch.equal(initial[k], trained[k]) for k in learnt)
    assert cli.main(["evaluate", str(run / "best.pt"), "--data", str(tiny)]) == 0
    # the same command again gives the same run: metrics and weights, bitwise (the random draws
    # of the shift and of k-means come from the run's seed)
    assert cli.main(["train", "--data", str(tiny), "--out-dir", str(tmp_path), "--run-name", "again", *TINY,
                     "--cells", "kmeans", "--kmeans-cells", "5", "--freeze-stages", "2",
                     "--shift-grayscale", "0.5", "--shift-hue", "0.2"]) == 0
    timing = ("epoch_seconds", "train_images_per_s")
    first, second = ([{k: v for k, v in json.loads(line).items() if k not in timing}
                      for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()] for name in ("run", "again"))
    assert first == second
    again = torch.load(tmp_path / "again" / "last.pt", map_location="cpu", weights_only=True)["model"]
    assert all(torch.equal(trained[k], again[k]) for k in trained)
    assert cli.main(["train", "--data", str(tiny), "--out-dir", str(tmp_path), "--run-name", "bad", *TINY,
                     "--freeze-stages", "50"]) != 0
    assert "freeze_stages must be from 0 to" in capsys.readouterr().err


def test_measuring_the_bare_step_leaves_the_random_state_alone(tiny):
    from geocell_engine.data.dataset import load_splits
    from geocell_engine.engine.config import TrainConfig
    from geocell_engine.engine.machine import bare_step_rate, machine_record
    from geocell_engine.engine.tasks import create_task

    config = TrainConfig(data=str(tiny), backbone="test_efficientnet", pretrained=False, image_size=32,
                         batch_size=8, cell_min_samples=3, cell_max_samples=12)
    splits, _ = load_splits(config.data)
    task = create_task(config, splits["train"], log=lambda _: None)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    rate = bare_step_rate(config, task, splits["train"], steps=2)
    assert rate > 0 and torch.equal(torch.get_rng_state(), state)
    record = machine_record(rate)
    assert record["bare step images/s at start"] == round(rate, 1) and record["CPU"]
