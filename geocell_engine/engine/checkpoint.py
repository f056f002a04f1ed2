"""Checkpoints: plain containers loadable with ``torch.load(weights_only=True)``, written atomically.

A checkpoint (format 2) is a dict of state dicts, plain Python types and tensors only:

``{"format": 2, "model": state_dict, "optimizer": ..., "scheduler": ..., "ema": ... | None,
"epoch": int, "step": int, "best_metric": float, "since_best": int, "config": {...},
"task": {"name": str, "labels": {"countries": [...], "anchors": {"lat", "lon", "labels"}},
"state": {...task-specific, e.g. "cells"}}, "dataset": {"name", "version", "sha256"},
"history": [...]}``

Format 1 (before the task classes) kept ``vocab``, ``cells`` and ``anchors`` at the top level;
:func:`load_checkpoint` converts it on loading (:func:`convert_format_1`).

Loading for evaluation or as initialisation checks the cells and vocabularies against what the
caller expects and refuses a mismatch with a message naming both sides.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from geocell.errors import InputFileError
from geocell.tables import atomic_write
from geocell_engine.errors import CheckpointError

__all__ = ["CHECKPOINT_FORMAT", "CheckpointError", "save_checkpoint", "load_checkpoint", "check_compatible",
           "convert_format_1"]

CHECKPOINT_FORMAT = 2



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
    if isinstance(ckpt, dict) and ckpt.get("format") == 1:
        return convert_format_1(ckpt, source=str(path))
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: not a geocell checkpoint of format {CHECKPOINT_FORMAT} (found {found!r}); "
                              "retrain with 'geocell train' to get one")
    return ckpt


def convert_format_1(ckpt: Mapping[str, Any], source: str = "checkpoint") -> dict[str, Any]:
    """A format-1 checkpoint (vocab / cells / anchors at the top level) in format 2.

    Raises:
        CheckpointError: a format-1 checkpoint without its config or vocabulary.
    """
    try:
        task = str(ckpt["config"]["task"])
        countries = list(ckpt["vocab"]["country"])
        anchors = ckpt["anchors"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"{source}: a format-1 checkpoint without {exc}; it cannot be converted, "
                              "retrain with 'geocell train'") from exc
    from geocell_engine.engine.config import TrainConfig
    from geocell_engine.engine.tasks import get_task_class

    config = TrainConfig.from_dict(ckpt["config"], source=source)
    state = get_task_class(task).state_from_format_1(config, ckpt)
    out = {k: v for k, v in ckpt.items() if k not in ("vocab", "cells", "anchors")}
    out.update(format=CHECKPOINT_FORMAT, task={"name": task, "labels": {"countries": countries, "anchors": anchors},
                                                 "state": state})
    return out


def check_compatible(
    ckpt: Mapping[str, Any],
    *,
    cells_hash: str | None = None,
    countries: Sequence[str] | None = None,
    source: str = "checkpoint",
) -> None:
    """Refuse a checkpoint built for other cells or another country vocabulary.

    Raises:
        CheckpointError: naming what differs (hashes, vocabulary sizes, first differing label).
    """
    if cells_hash is not None:
        theirs = _cells_hash(ckpt.get("task", {}).get("state") or {})
        if theirs != cells_hash:
            raise CheckpointError(
                f"{source} was trained on cells {str(theirs)[:12]}, but these cells are {cells_hash[:12]}; "
                "use the same cells (pass the checkpoint's cells or rebuild them from the same data)"
            )
    if countries is not None:
        theirs = list(((ckpt.get("task") or {}).get("labels") or {}).get("countries", []))
        ours = list(countries)
        if theirs != ours:
            diff = next((i for i, (a, b) in enumerate(zip(theirs, ours)) if a != b), min(len(theirs), len(ours)))
            raise CheckpointError(
                f"{source} has a country vocabulary of {len(theirs)} labels, expected {len(ours)}; "
                f"they first differ at position {diff}"
            )


def _cells_hash(state: Mapping[str, Any]):
    """The cells hash in a task state (nested for the multi task), or None."""
    if isinstance(state.get("cells"), Mapping):
        return state["cells"].get("hash")
    for value in state.values():
        if isinstance(value, Mapping):
            found = _cells_hash(value)
            if found is not None:
                return found
    return None
