"""Building a run's GeoModel from its config and task, and loading one from a checkpoint."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from geocell_engine.engine.config import TrainConfig
from geocell_engine.engine.tasks import Task
from geocell_engine.errors import ConfigError

__all__ = ["build_model", "require_weights", "LoadedModel", "load_model"]


def build_model(config: TrainConfig, task: Task, pretrained: Optional[bool] = None):
    """A ``heads.GeoModel`` with the run's backbone and the task's heads (``config.dropout`` and
    ``config.drop_path`` become timm's ``drop_rate`` / ``drop_path_rate``; ``config.freeze_stages`` of
    the backbone's first stages are frozen, see :meth:`heads.Backbone.freeze_stages`).

    Args:
        pretrained: overrides ``config.pretrained`` (False when weights come from a checkpoint).
    """
    from heads import Backbone, GeoModel

    use_pretrained: Any = config.pretrained if pretrained is None else pretrained
    if use_pretrained and config.weights:
        use_pretrained = config.weights
    rates = {k: v for k, v in (("drop_rate", config.dropout), ("drop_path_rate", config.drop_path)) if v > 0}
    backbone = Backbone(config.backbone, pretrained=use_pretrained, channels_last=config.channels_last, **rates)
    try:
        backbone.freeze_stages(config.freeze_stages)
    except ValueError as exc:
        raise ConfigError(f"--freeze-stages: {exc}; --freeze-stages 0 fine-tunes every layer") from None
    return GeoModel(backbone, task.build_heads(backbone.num_features))


def require_weights(config: TrainConfig) -> None:
    """Fail fast, before any data is read, when the run's pretrained weights are not on this machine.

    Raises:
        heads.weights.WeightsError: a ``--weights`` file that does not exist, or hub weights
            that are not in the local cache (one line naming them and how to pass a file).
    """
    from heads.weights import OFFLINE_WEIGHTS, WeightsError, hub_weights_file

    if not config.pretrained:
        return
    if config.weights:
        if not Path(config.weights).is_file():
            raise WeightsError(f"--weights {config.weights}: no such file")
    elif config.backbone not in OFFLINE_WEIGHTS:
        hub_weights_file(config.backbone)


@dataclass
class LoadedModel:
    """A checkpoint's model (eval mode, on ``device``), its task and config, and the raw dict."""

    model: Any
    task: Task
    config: TrainConfig
    checkpoint: dict
    device: str


def load_model(checkpoint: str | os.PathLike, device: str = "cpu") -> LoadedModel:
    """Rebuild a model from a checkpoint file alone; the task reads ``cells.parquet`` beside it
    when its hash matches (for cell accuracy).

    Raises:
        CheckpointError: unreadable, another format, or a state that does not fit the model.
    """
    from geocell_engine.engine.checkpoint import load_checkpoint
    from geocell_engine.engine.tasks import task_from_state
    from geocell_engine.errors import CheckpointError

    ckpt = load_checkpoint(checkpoint)
    try:
        config = TrainConfig.from_dict(ckpt["config"], source=str(checkpoint))
        task = task_from_state(config, ckpt["task"], run_dir=Path(checkpoint).resolve().parent)
    except KeyError as exc:
        raise CheckpointError(f"{checkpoint}: the checkpoint has no {exc} entry; it is damaged or not "
                              "from geocell train") from exc
    model = build_model(config, task, pretrained=False)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as exc:
        first = str(exc).strip().splitlines()[0][:300]
        raise CheckpointError(f"{checkpoint}: its weights do not fit a {config.backbone} model with the "
                              f"{task.describe()} heads ({first})") from exc
    model.to(device).eval()
    return LoadedModel(model, task, config, ckpt, device)
