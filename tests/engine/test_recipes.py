"""Every recipe in configs/ parses, names its weights when they are missing, and trains a few steps
with a tiny stand-in backbone (the seed002 chain: country -> latlon and distance from its best.pt)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geocell_engine import cli
from geocell_engine.data.transforms import image_hw
from geocell_engine.engine.config import load_yaml_config, resolve_config
from tests.tiny_data import make_tiny_dataset

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RECIPES = sorted(CONFIGS.glob("*.yaml"))
# the chain's first step runs first: the others start from its best.pt
ORDER = sorted(RECIPES, key=lambda p: (not p.name.startswith("seed002-convnext-b-country"), p.name))


def test_the_recipes_are_there():
    assert {p.name for p in RECIPES} == {
        "seed000-convnext-s.yaml", "seed002-convnext-b-country.yaml", "seed002-convnext-b-latlon.yaml",
        "seed002-convnext-b-distance.yaml", "seed003-effnet-b1-country.yaml", "seed003-effnet-b1-region.yaml",
        "seed004-resnet101.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_each_recipe_parses_and_says_where_it_comes_from(path):
    config = resolve_config({}, config_file=path)
    assert path.read_text().startswith("# Seed 00")  # commented with its source
    assert config.backbone != "tf_efficientnet_lite0"


def test_the_seed000_recipe_sets_what_the_card_used():
    c = resolve_config({}, config_file=CONFIGS / "seed000-convnext-s.yaml")
    assert (c.backbone, c.image_size, c.rand_augment, c.mixup_alpha, c.cutmix_alpha) == (
        "convnext_small.dinov3_lvd1689m", 384, "rand-m6-n2", 0.1, 1.0)
    assert c.balanced_sampling and (c.lr, c.weight_decay, c.epochs, c.warmup_epochs) == (5e-5, 0.01, 50, 5.0)
    assert (c.dropout, c.crop_pct, c.hflip) == (0.1, 0.95, 0.0)


@pytest.mark.parametrize("path", [p for p in RECIPES if resolve_config({}, config_file=p).pretrained],
                         ids=lambda p: p.stem)
def test_a_recipe_whose_weights_are_missing_fails_in_one_line(path, tmp_path, capsys):
    code = cli.main(["train", "--config", str(path), "--data", str(tmp_path / "nothing.csv"), "--out-dir",
                     str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    backbone = load_yaml_config(path)["backbone"]
    assert code == 2 and len(err) == 1, err
    assert backbone in err[0] and "--weights FILE" in err[0]
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("recipes"), n_per_place=8, size=(80, 45), suffix="jpg")


def _small_size(image_size) -> str:
    h, w = image_hw(image_size)
    return "32" if h == w else f"{round(32 * w / h)}x32"


def test_every_recipe_trains_a_few_steps_with_a_tiny_backbone(photos, tmp_path):
    out = tmp_path / "runs"
    for path in ORDER:
        config = resolve_config({}, config_file=path)
        flags = ["--backbone", "test_efficientnet", "--no-pretrained", "--image-size", _small_size(config.image_size),
                 "--epochs", "1", "--batch-size", "8", "--quiet", "--precision", "fp32", "--threads", "1",
                 "--cell-min-samples", "2", "--cell-max-samples", "8", "--run-name", path.stem]
        if config.random_crop:
            flags += ["--random-crop", "40"]
        if config.init_from:
            flags += ["--init-from", str(out / "seed002-convnext-b-country" / "best.pt")]
        code = cli.main(["train", "--config", str(path), "--data", str(photos), "--out-dir", str(out), *flags])
        assert code == 0, path.name
        history = [json.loads(line) for line in (out / path.stem / "metrics.jsonl").read_text().splitlines()]
        assert history[0]["step"] == 3  # 24 training images, batch 8
        saved = resolve_config({}, config_file=out / path.stem / "config.yaml")
        assert saved.task == config.task and saved.mixup_alpha == config.mixup_alpha
