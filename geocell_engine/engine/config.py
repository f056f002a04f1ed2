"""The training configuration: one frozen dataclass, YAML in and out, flags on top.

Resolution order (later wins): the dataclass defaults, ``--quick`` preset, a YAML ``--config``
file, then explicit command-line flags. The resolved config is written into the run directory
as ``config.yaml`` so a run can be repeated exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, Mapping

from geocell_engine.errors import ConfigError

__all__ = ["TrainConfig", "ConfigError", "QUICK_PRESET", "load_yaml_config", "resolve_config", "known_tasks"]



def known_tasks() -> tuple[str, ...]:
    """The registered task names (:func:`geocell_engine.engine.tasks.list_tasks`)."""
    from geocell_engine.engine.tasks import list_tasks

    return list_tasks()



@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Units: learning rates per step, tau in km."""

    task: str = "region"  # a registered task name (known_tasks())
    data: str = "bluemarble-v1"
    split_file: str | None = None  # an id,split file from `cli.py data split` for a manifest
    cells: str = "semantic"  # "semantic", "s2", or a CellSet .parquet path
    cell_min_samples: int = 40
    cell_max_samples: int = 400
    s2_tau_min: int = 20
    s2_tau_max: int = 400
    multi_tasks: tuple[str, ...] = ("region", "country", "latlon")
    loss_weights: Mapping[str, float] = field(default_factory=lambda: {"region": 1.0, "country": 0.5, "latlon": 0.5, "distance": 1.0})
    backbone: str = "tf_efficientnet_lite0"
    pretrained: bool = True
    weights: str | None = None  # a local state-dict file for the backbone
    image_size: int = 64
    epochs: int = 5
    batch_size: int = 64
    lr: float = 2e-3
    backbone_lr_mult: float = 0.2
    weight_decay: float = 0.02
    warmup_epochs: float = 0.5
    accum_steps: int = 1
    ema: bool = False
    ema_decay: float = 0.998
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    channels_last: bool = True
    tau_km: float = 75.0
    distance_clip_km: float = 1110.0
    label_smoothing: Literal["haversine", "none"] = "haversine"
    patience: int = 3
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    augment: bool = True
    on_bad_image: Literal["skip", "fail"] = "fail"
    seed: int = 0
    num_workers: int = 0
    threads: int | None = None
    out_dir: str = "runs"
    run_name: str | None = None
    init_from: str | None = None
    init_heads: bool = False  # with init_from: copy the heads too (vocabulary / cells must match)
    checkpoint_every: int = 0  # optimizer steps between mid-epoch checkpoints (0: at epoch ends only)
    resume: bool = True
    extend_epochs: bool = False  # allow a resume with more epochs (the schedule is rebuilt)
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.task not in known_tasks():
            raise ConfigError(f"task {self.task!r} is not one of {', '.join(known_tasks())}")
        if self.checkpoint_every < 0:
            raise ConfigError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        for name in ("epochs", "batch_size", "accum_steps", "image_size", "cell_min_samples", "cell_max_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr", "tau_km", "distance_clip_km"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        bad = [t for t in self.multi_tasks if t not in known_tasks() or t == "multi"]
        if bad:
            singles = [t for t in known_tasks() if t != "multi"]
            raise ConfigError(f"multi_tasks has unknown tasks {bad}; choose from {', '.join(singles)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, dicts, str, numbers, None): for YAML and checkpoints."""
        d = dataclasses.asdict(self)
        d["multi_tasks"] = list(self.multi_tasks)
        d["loss_weights"] = dict(self.loss_weights)
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown keys {unknown}; known keys: {', '.join(sorted(known))}")
        values = dict(values)
        if "multi_tasks" in values and isinstance(values["multi_tasks"], str):
            values["multi_tasks"] = tuple(t.strip() for t in values["multi_tasks"].split(",") if t.strip())
        elif "multi_tasks" in values:
            values["multi_tasks"] = tuple(values["multi_tasks"])
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from exc


#: The CI-sized preset: the same pipeline with fewer samples and steps (about 1-2 minutes).
QUICK_PRESET: dict[str, Any] = {
    "epochs": 2,
    "max_train_samples": 1500,
    "max_eval_samples": 400,
    "cell_min_samples": 15,
    "cell_max_samples": 120,
    "s2_tau_min": 10,
    "s2_tau_max": 120,
    "patience": 2,
}


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys."""
    import yaml

    from geocell.errors import InputFileError

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such config file")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    return values


def resolve_config(flags: Mapping[str, Any], config_file: str | Path | None = None, quick: bool = False) -> TrainConfig:
    """Defaults < quick preset < YAML file < flags that were given (``None`` means not given)."""
    values: dict[str, Any] = {}
    if quick:
        values.update(QUICK_PRESET)
    if config_file is not None:
        values.update(load_yaml_config(config_file))
    values.update({k: v for k, v in flags.items() if v is not None})
    return TrainConfig.from_dict(values, source=str(config_file or "flags"))
