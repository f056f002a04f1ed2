"""Photo training: loader workers, photo augmentation and the recipe keys, end to end.

The runs use JPEG frames of another shape than the model input (96 x 54 px into 48 x 32), the
seeds' recipe keys (RandAugment, erasing, MixUp / CutMix as BCE, balanced sampling, dropout), and
loader workers; they check that the number of workers does not change a run, that a run cut
mid-epoch and resumed with workers equals the uninterrupted one bitwise, that Ctrl-C leaves no
worker behind, and that train -> evaluate -> predict works on such files.
"""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch

from geocell_engine import cli
from geocell_engine.data.dataset import load_splits
from geocell_engine.engine.checkpoint import load_checkpoint
from geocell_engine.engine.config import TrainConfig
from geocell_engine.engine.fit import fit
from geocell_engine.engine.tasks import create_task
from geocell_engine.errors import ConfigError
from tests.tiny_data import TINY, make_tiny_dataset

TIMING = ("epoch_seconds", "train_images_per_s")
RECIPE = dict(image_size="48x32", rand_augment="rand-m6-n2", random_erasing=0.5, mixup_alpha=0.2, cutmix_alpha=1.0,
              balanced_sampling=True, dropout=0.1, crop_scale=0.6, color_jitter=0.3)


class Cut(Exception):
    """Stands in for a kill: raised from the fit hook at a chosen event."""


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("photos"), size=(96, 54), suffix="jpg")


def _config(manifest: Path, out: Path, **extra) -> TrainConfig:
    values = dict(task="multi", multi_tasks=("region", "country"), data=str(manifest), out_dir=str(out),
                  backbone="test_efficientnet", pretrained=False, epochs=2, batch_size=16, cell_min_samples=3,
                  cell_max_samples=12, precision="fp32", threads=1, quiet=True, checkpoint_every=2, patience=5,
                  **RECIPE)
    values.update(extra)
    return TrainConfig(**values)


def _run(manifest: Path, run_dir: Path, cut_at=None, **extra) -> list[str]:
    torch.set_num_threads(1)
    config = _config(manifest, run_dir.parent, **extra)
    splits, info = load_splits(config.data, seed=config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    task = create_task(config, splits["train"], run_dir=run_dir, log=lambda _: None)
    lines: list[str] = []

    def hook(event: str, epoch: int, step: int) -> None:
        if (event, epoch, step) == cut_at:
            raise Cut(cut_at)

    fit(config, task, splits["train"], splits["val"], run_dir, {"dataset": info.as_dict()}, log=lines.append,
        hook=hook)
    return lines


def _history(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


def _same_weights(a: Path, b: Path) -> None:
    ours, theirs = load_checkpoint(a / "last.pt"), load_checkpoint(b / "last.pt")
    assert ours["step"] == theirs["step"]
    for name, value in theirs["model"].items():
        assert torch.equal(ours["model"][name], value), name


@pytest.fixture(scope="module")
def reference(photos, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("ref") / "run"
    lines = _run(photos, run_dir, num_workers=0)
    return run_dir, lines


def test_the_recipe_run_says_what_it_does(reference):
    _, lines = reference
    said = "\n".join(lines)
    assert "input: image files, decoded in the training process, photo augmentation" in said
    assert "MixUp 0.2 / CutMix 1 as multi-label BCE" in said and "balanced sampling (power 1)" in said


def test_two_workers_train_exactly_as_none(photos, reference, tmp_path):
    ref_dir, _ = reference
    lines = _run(photos, tmp_path / "run", num_workers=2)
    assert any("2 loader workers" in line for line in lines)
    _same_weights(tmp_path / "run", ref_dir)
    assert _history(tmp_path / "run") == _history(ref_dir)


def test_a_run_cut_mid_epoch_resumes_exactly_with_workers(photos, reference, tmp_path):
    ref_dir, _ = reference
    run_dir = tmp_path / "run"
    with pytest.raises(Cut):
        _run(photos, run_dir, cut_at=("step", 2, 7), num_workers=2)  # after epoch 2's first checkpoint
    assert load_checkpoint(run_dir / "last.pt")["in_epoch"] is not None
    assert multiprocessing.active_children() == []  # the workers were stopped
    _run(photos, run_dir, num_workers=1)  # the worker count may change on resume: it changes nothing
    _same_weights(run_dir, ref_dir)
    assert _history(run_dir) == _history(ref_dir)


def test_ctrl_c_with_workers_stops_them(photos, tmp_path, monkeypatch):
    import geocell_engine.engine.fit as fit_module

    calls = {"n": 0}
    real = fit_module.train_one_epoch

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        raise KeyboardInterrupt

    monkeypatch.setattr(fit_module, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _run(photos, tmp_path / "run", num_workers=2)
    assert calls["n"] == 1 and real is not interrupted
    assert multiprocessing.active_children() == []


def test_mixup_on_a_task_without_classes_is_refused(photos, tmp_path):
    with pytest.raises(ConfigError, match="--mixup-alpha / --cutmix-alpha need a task with classes"):
        _run(photos, tmp_path / "run", task="latlon", num_workers=0)


def test_photo_files_train_evaluate_and_predict_with_two_workers(photos, tmp_path, capsys):
    flags = [a if a != "32" else "48x32" for a in TINY]
    assert cli.main(["train", "--data", str(photos), "--out-dir", str(tmp_path), "--task", "region",
                     "--num-workers", "2", "--rand-augment", "rand-m6-n2", "--mixup-alpha", "0.2",
                     "--cutmix-alpha", "1.0", "--random-erasing", "0.25", "--crop-pct", "0.9", *flags]) == 0
    run = tmp_path / "region-manifest"
    report = json.loads((run / "report.json").read_text())
    assert report["results"]["model"]["n"] == 12
    rows = __import__("pandas").read_csv(run / "predictions.csv")
    assert cli.main(["evaluate", str(run / "best.pt"), "--data", str(photos), "--split", "test"]) == 0
    evaluated = json.loads((run / "eval-manifest-test" / "report.json").read_text())
    assert evaluated["results"]["model"]["distance"]["median_km"] == pytest.approx(
        report["results"]["model"]["distance"]["median_km"], rel=1e-6)  # the same decoding as in training
    capsys.readouterr()
    first = rows.iloc[0]
    assert cli.main(["predict", first.id, "--checkpoint", str(run / "best.pt"), "--json"]) == 0
    item = json.loads(capsys.readouterr().out)["images"][0]
    assert item["lat"] == pytest.approx(first.pred_lat, abs=1e-3) and item["lon"] == pytest.approx(first.pred_lon, abs=1e-3)
    config = (run / "config.yaml").read_text()
    assert "image_size: 48x32" in config and "num_workers: 2" in config
    # validation during training decodes as evaluate does (crop_pct 0.9 here)
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    best = load_checkpoint(run / "best.pt")
    dump = tmp_path / "val.csv"
    assert cli.main(["evaluate", str(run / "best.pt"), "--data", str(photos), "--split", "val", "--dump", str(dump)]) == 0
    val_rows = __import__("pandas").read_csv(dump)
    row = next(r for r in history if r["epoch"] == best["epoch"])
    assert row["val_median_km"] == pytest.approx(float(np.median(val_rows.error_km)), rel=1e-6)


def test_unreadable_training_photo_with_workers_is_recorded_not_lost(tmp_path):
    manifest = make_tiny_dataset(tmp_path / "data", size=(64, 40), suffix="jpg")
    (tmp_path / "data" / "img" / "0_0.jpg").write_bytes(b"\xff\xd8 truncated")
    flags = [a if a != "2" else "1" for a in TINY]  # one epoch
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(tmp_path), "--task", "country",
                     "--num-workers", "2", "--on-bad-image", "skip", *flags]) == 0
    bad = (tmp_path / "country-manifest" / "bad_images.csv").read_text()
    assert "0_0.jpg" in bad and "unreadable" in bad
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(tmp_path), "--task", "country",
                     "--num-workers", "2", "--run-name", "failing", *flags]) != 0


def test_missing_hub_weights_fail_in_one_line_naming_them(photos, tmp_path, capsys):
    code = cli.main(["train", "--data", str(photos), "--out-dir", str(tmp_path), "--backbone",
                     "convnext_small.dinov3_lvd1689m", "--epochs", "1", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "convnext_small.dinov3_lvd1689m" in err[0] and "--weights FILE" in err[0]
    assert not (tmp_path / "region-manifest").exists()  # refused before anything was written


def test_weights_file_loads_any_timm_model_from_safetensors(tmp_path):
    import timm
    from safetensors.torch import save_file

    from heads import Backbone

    source = timm.create_model("test_efficientnet", pretrained=False)
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    backbone = Backbone("test_efficientnet", pretrained=str(path))
    ours = backbone.model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in source.state_dict().items() if k in ours)
    assert np.isclose(float(next(iter(ours.values())).float().sum()),
                      float(next(iter(source.state_dict().values())).float().sum()))
