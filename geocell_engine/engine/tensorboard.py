"""TensorBoard event files of a run (``--logger tensorboard``): one scalar per history key per epoch.

The training history (``metrics.jsonl``) stays the record; the event files in
``RUN/tensorboard/`` repeat its numbers for TensorBoard (``tensorboard --logdir runs``), written
with ``torch.utils.tensorboard.SummaryWriter`` after every epoch. A resumed run opens a new event
file with ``purge_step`` at the last epoch the checkpoint holds and writes that epoch again: the
events a killed run wrote at or after it are hidden from TensorBoard, so every epoch appears
once with the value of ``metrics.jsonl``, whether the kill came before or after its events.

The ``tensorboard`` package is an optional extra (``pip install -e ".[tensorboard]"``).

Example:
    >>> from geocell_engine.engine.tensorboard import scalars_of
    >>> scalars_of({"epoch": 2, "train_loss": 1.5, "val_median_km": None, "lr": 0.001})
    {'train_loss': 1.5, 'lr': 0.001}
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from geocell_engine.errors import ConfigError

__all__ = ["TENSORBOARD_DIR", "require_logger", "scalars_of", "EpochLogger"]

#: The folder of the event files inside a run directory.
TENSORBOARD_DIR = "tensorboard"

_MISSING = ("--logger tensorboard needs the tensorboard package, which is not installed; install it with "
            "pip install tensorboard (or pip install -e \".[tensorboard]\"), or use --logger none")


def require_logger(logger: str) -> None:
    """Refuse a logger whose package is missing, before anything is written.

    Raises:
        ConfigError: ``"tensorboard"`` without the ``tensorboard`` package; an unknown logger.
    """
    if logger == "none":
        return
    if logger != "tensorboard":
        raise ConfigError(f"logger must be one of none, tensorboard, got {logger!r}")
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        raise ConfigError(_MISSING)


def scalars_of(row: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one history row that become scalars: every finite int or float except
    ``epoch`` (the step); None (no coordinates), booleans and text are left out."""
    return {k: float(v) for k, v in row.items()
            if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


class EpochLogger:
    """Writes each epoch's history row as scalars (tag = history key, step = epoch).

    Args:
        run_dir: the run directory; events go to ``run_dir/tensorboard/``.
        history: the rows a resumed run already has (``[]`` for a new run). The last one is
            written again after a purge of its step and everything after it.

    Raises:
        ConfigError: the tensorboard package is missing.
    """

    def __init__(self, run_dir: str | Path, history: Sequence[Mapping[str, Any]] = ()) -> None:
        require_logger("tensorboard")
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # torch's own check of the tensorboard version
            raise ConfigError(f"{_MISSING} ({exc})") from exc

        self.log_dir = Path(run_dir) / TENSORBOARD_DIR
        last = history[-1] if history else None
        purge = int(last["epoch"]) if last is not None else None
        self._writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge)
        if last is not None:
            self.log_epoch(last)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """Write the scalars of one history row at step ``row["epoch"]`` and flush them to disk."""
        epoch = int(row["epoch"])
        for key, value in scalars_of(row).items():
            self._writer.add_scalar(key, value, global_step=epoch)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def open_logger(logger: str, run_dir: Path, history: Sequence[Mapping[str, Any]]) -> Optional[EpochLogger]:
    """The epoch logger of ``config.logger`` (None for ``"none"``)."""
    return None if logger == "none" else EpochLogger(run_dir, history)
