"""Checkpoints: plain containers loadable with ``torch.load(weights_only=True)``, written atomically.

A checkpoint is a dict of state dicts, plain Python types and tensors only:

``{"format": 1, "model": state_dict, "optimizer": ..., "scheduler": ..., "ema": ... | None,
"epoch": int, "step": int, "best_metric": float | None, "config": {...},
"cells": {"ids": [...], "centroid_lat": tensor, "centroid_lon": tensor, "hash": str} | None,
"vocab": {"country": [...], "admin1": [...]}, "dataset": {"name", "version", "sha256"},
"history": [...]}``

Loading for evaluation or as initialisation checks the cells and vocabularies against what the
caller expects and refuses a mismatch with a message naming both sides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from geocell.errors import InputFileError
from geocell.tables import atomic_write
from geocell_engine.errors import CheckpointError

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "check_compatible"]

CHECKPOINT_FORMAT = 1



def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write ``payload`` with ``torch.save`` to a temp file, then rename it over ``path``."""
    import torch

    return atomic_write(path, lambda tmp: torch.save({"format": CHECKPOINT_FORMAT, **payload}, tmp))


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` (no pickled code runs) onto the CPU."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such checkpoint")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a geocell checkpoint of format {CHECKPOINT_FORMAT}")
    return ckpt


def check_compatible(
    ckpt: Mapping[str, Any],
    *,
    cells_hash: str | None = None,
    vocab: Mapping[str, list[str]] | None = None,
    source: str = "checkpoint",
) -> None:
    """Refuse a checkpoint built for other cells or other label vocabularies.

    Raises:
        CheckpointError: naming what differs (hashes, vocabulary sizes, first differing label).
    """
    if cells_hash is not None:
        theirs = (ckpt.get("cells") or {}).get("hash")
        if theirs != cells_hash:
            raise CheckpointError(
                f"{source} was trained on cells {str(theirs)[:12]}, but these cells are {cells_hash[:12]}; "
                "use the same cells (pass the checkpoint's cells or rebuild them from the same data)"
            )
    for name, ours in (vocab or {}).items():
        theirs = list((ckpt.get("vocab") or {}).get(name, []))
        if theirs != list(ours):
            diff = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
            raise CheckpointError(
                f"{source} has a {name} vocabulary of {len(theirs)} labels, expected {len(ours)}; "
                f"they first differ at position {diff}"
            )
