"""A run cut at three points (one mid-epoch) and resumed ends with the same weights and metrics,
bitwise, as one shared uninterrupted run (one thread)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from geocell_engine.data.dataset import load_splits
from geocell_engine.engine.checkpoint import load_checkpoint
from geocell_engine.engine.config import TrainConfig
from geocell_engine.engine.fit import fit
from geocell_engine.engine.tasks import create_task
from tests.tiny_data import make_tiny_dataset

TIMING = ("epoch_seconds", "train_images_per_s")


class Cut(Exception):
    """Stands in for a kill: raised from the fit hook at a chosen event."""


def _config(manifest: Path, out: Path) -> TrainConfig:
    return TrainConfig(task="multi", multi_tasks=("region", "country"), data=str(manifest), out_dir=str(out),
                       backbone="test_efficientnet", pretrained=False, image_size=32, epochs=3, batch_size=16,
                       cell_min_samples=3, cell_max_samples=12, precision="fp32", threads=1, quiet=True,
                       checkpoint_every=2, patience=5, ema=True)


def _run(manifest: Path, run_dir: Path, cut_at=None) -> None:
    torch.set_num_threads(1)
    config = _config(manifest, run_dir.parent)
    splits, info = load_splits(config.data, seed=config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    task = create_task(config, splits["train"], run_dir=run_dir, log=lambda _: None)

    def hook(event: str, epoch: int, step: int) -> None:
        if (event, epoch, step) == cut_at:
            raise Cut(cut_at)

    fit(config, task, splits["train"], splits["val"], run_dir, {"dataset": info.as_dict()},
        log=lambda _: None, hook=hook)


def _history(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in TIMING} for row in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact")
    manifest = make_tiny_dataset(root / "data")
    _run(manifest, root / "reference")
    return manifest, root / "reference"


# 60 training images, batch 16: 4 optimizer steps per epoch; mid-epoch checkpoints every 2 steps
CUTS = {
    "mid-epoch": ("step", 2, 7),            # after the step-6 mid-epoch checkpoint: resumes in epoch 2
    "between-writes": ("epoch", 1, 4),      # after epoch 1's last.pt, before metrics.jsonl
    "start-of-epoch": ("step", 3, 9),       # first step of epoch 3: resumes from epoch 2's end
}


@pytest.mark.parametrize("name", list(CUTS))
def test_cut_and_resumed_run_equals_the_uninterrupted_one(reference, tmp_path, name):
    manifest, ref_dir = reference
    run_dir = tmp_path / name
    with pytest.raises(Cut):
        _run(manifest, run_dir, cut_at=CUTS[name])
    cut = load_checkpoint(run_dir / "last.pt")
    assert (cut["in_epoch"] is not None) == (name == "mid-epoch")
    _run(manifest, run_dir)
    ours, theirs = load_checkpoint(run_dir / "last.pt"), load_checkpoint(ref_dir / "last.pt")
    assert ours["step"] == theirs["step"] == 12
    for key in ("model", "ema"):
        for tensor_name, value in theirs[key].items():
            if isinstance(value, torch.Tensor):
                assert torch.equal(ours[key][tensor_name], value), f"{key}.{tensor_name} differs"
    assert torch.equal(load_checkpoint(run_dir / "best.pt")["model"]["heads.region.fc.weight"],
                       load_checkpoint(ref_dir / "best.pt")["model"]["heads.region.fc.weight"])
    assert _history(run_dir) == _history(ref_dir)
