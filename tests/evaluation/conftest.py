"""Fixtures of the evaluation tests that need a trained model: one tiny country checkpoint
(timm's ``test_efficientnet``, random init, 32 px, 2 epochs) on the seeded tiny data set."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``(manifest, best.pt)`` of a tiny country run trained without its test report."""
    from geocell_engine.engine.config import TrainConfig
    from geocell_engine.engine.run import run_training
    from tests.tiny_data import make_tiny_dataset

    root = tmp_path_factory.mktemp("tiny-ckpt")
    manifest = make_tiny_dataset(root / "data")
    config = TrainConfig.from_dict({"data": str(manifest), "out_dir": str(root / "runs"), "run_name": "c",
                                    "task": "country", "backbone": "test_efficientnet", "pretrained": False,
                                    "image_size": 32, "epochs": 2, "batch_size": 16, "quiet": True,
                                    "precision": "fp32", "threads": 1})
    summary = run_training(config, log=lambda _: None, read_test=False)
    return manifest, summary.run_dir / "best.pt"
