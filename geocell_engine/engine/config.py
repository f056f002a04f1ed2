"""The training configuration: one frozen dataclass, YAML in and out, flags on top.

:class:`TrainConfig` is the one source of every training setting: each field carries its help
text, its ``--help`` group and its bounds in the field's metadata (see :func:`option`), the
``train`` command line is generated from those fields (:func:`config_options`), and every value
is type- and range-checked here, whichever way it arrives (flag text, YAML, a checkpoint, or
Python code), with an error that names the key, the value, where it came from and what is
expected.

Resolution order (later wins): the dataclass defaults, ``--quick`` preset, a YAML ``--config``
file, then the command-line flags that were typed. The resolved config is written into the run
directory as ``config.yaml`` so a run can be repeated exactly.

Example:
    >>> config = resolve_config({"epochs": "3"}, quick=True)
    >>> config.epochs, config.max_train_samples
    (3, 1500)
    >>> resolve_config({"epochs": "2.5"})
    Traceback (most recent call last):
    ...
    geocell_engine.errors.ConfigError: --epochs: epochs must be an integer >= 1, got 2.5 (a float)
"""

from __future__ import annotations

import collections.abc
import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Union

from geocell.constants import DISTANCE_CLIP_KM, LABEL_SMOOTHING_TAU_KM
from geocell_engine.data.imagery_shift import SHIFT_KEYS
from geocell_engine.data.transforms import image_hw
from geocell_engine.errors import ConfigError

__all__ = [
    "TrainConfig",
    "ConfigError",
    "DEFAULT_TAU_KM",
    "QUICK_PRESET",
    "GROUPS",
    "known_tasks",
    "head_tasks",
    "option",
    "ConfigOption",
    "config_options",
    "flag_name",
    "format_value",
    "load_yaml_config",
    "resolve_config",
    "image_hw",
]

#: ``--help`` groups of the train flags, in the order they are shown.
GROUPS: tuple[str, ...] = ("data", "model", "optimisation", "run")

#: The region task's default label-smoothing temperature, km: chosen on validation by the accuracy
#: study (configs/studies/accuracy.yaml; PIGEON's 75 km, ``geocell.constants.LABEL_SMOOTHING_TAU_KM``,
#: stays the library default).
DEFAULT_TAU_KM = 150.0

#: Seeds go to torch and numpy; 2**32 - 1 is the largest seed every numpy generator accepts.
_MAX_SEED = 2**32 - 1


def known_tasks() -> tuple[str, ...]:
    """The task names ``task`` accepts: the task registry's
    (:func:`geocell_engine.engine.tasks.list_tasks`; a task registered later is accepted too)."""
    from geocell_engine.engine.tasks import list_tasks

    return list_tasks()


def head_tasks() -> tuple[str, ...]:
    """The tasks that are one head each: what ``multi_tasks`` and ``loss_weights`` may name."""
    from geocell_engine.engine.tasks import get_task_class

    return tuple(t for t in known_tasks() if not get_task_class(t).composite)


def option(default: Any, group: str, help: str, *, choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None,
           ge: float | None = None, gt: float | None = None, le: float | None = None, lt: float | None = None,
           metavar: str | None = None, size: bool = False) -> Any:
    """A :class:`TrainConfig` field with its documentation and bounds in ``field.metadata``.

    Args:
        default: the default value (a dict is copied for each instance).
        group: one of :data:`GROUPS` (the ``--help`` section of its flag).
        help: one line for ``--help``; the default is appended there automatically.
        choices: the allowed strings, or a function returning them (read at validation time).
        ge, gt, le, lt: inclusive / exclusive bounds of a number (of each weight of a mapping).
        metavar: the placeholder ``--help`` shows for the flag's value.
        size: an image size: an int side or ``"WIDTHxHEIGHT"`` text (annotate ``int | str``).
    """
    if group not in GROUPS:
        raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
    metadata = {"group": group, "help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt,
                "metavar": metavar, "size": size}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run. Units: learning rates per step, distances in km.

    Every value is checked when the config is made (types, bounds, choices, and the few rules
    between fields); ints given for float fields become floats and lists become tuples.
    """

    # -- data
    data: str = option("bluemarble-v1", "data", "'bluemarble-v1' or 'bluemarble-v2' (real NASA Blue Marble patches, built into the "
                       "cache on first use), a manifest CSV/Parquet with image paths and lat/lon, or a folder of "
                       "photos with GPS in their EXIF", metavar="NAME|FILE|DIR")
    split_file: str | None = option(None, "data", "an id,split file from 'cli.py data split' for a --data manifest",
                                    metavar="FILE")
    split_method: Literal["spatial", "random"] = option(
        "spatial", "data", "how a manifest without a split column, or a photo folder, is split: spatial (held-out "
        "regions 363 km from training, the buffers left unused) or random 80/10/10")
    cells: str = option("semantic", "data", "geocells of the region task: 'semantic' (admin-1 borders), 's2', "
                        "'kmeans' (training points clustered on the sphere), or a CellSet .parquet file",
                        metavar="KIND|FILE")
    cell_min_samples: int = option(40, "data", "semantic cells: fewest training samples per cell", ge=1)
    cell_max_samples: int = option(400, "data", "semantic cells: most training samples per cell; "
                                   "at least 2 x cell_min_samples", ge=1)
    kmeans_cells: int = option(200, "data", "k-means cells: how many", ge=1)
    s2_tau_min: int = option(20, "data", "S2 cells: cells with fewer training samples are dropped", ge=1)
    s2_tau_max: int = option(400, "data", "S2 cells: cells with more training samples are split; "
                             "at least s2_tau_min", ge=1)
    image_size: int | str = option(64, "data", "model input in pixels: a side (64, 224) or WIDTHxHEIGHT (320x180)",
                                   size=True, metavar="N|WxH")
    max_train_samples: int | None = option(None, "data", "train on at most this many samples; none: all", ge=1)
    min_per_country: int | None = option(None, "data", "keep only the countries with at least this many training "
                                         "samples, in every split (a fixed set of classes, e.g. for a data-size "
                                         "study); none: all countries", ge=1, metavar="N")
    max_per_country: int | None = option(None, "data", "train on at most this many samples of each country (drawn "
                                         "with the seed, nested: a smaller cap keeps a subset); none: all", ge=1,
                                         metavar="N")
    max_eval_samples: int | None = option(None, "data", "validate and test on at most this many samples each; "
                                          "none: all", ge=1)
    augment: bool = option(True, "data", "augment training images (see --augment-kind)")
    augment_kind: Literal["auto", "satellite", "photo"] = option(
        "auto", "data", "satellite: brightness / contrast +-10% and small shifts, north-up (bluemarble); photo: "
        "timm's random resized crop, rotation, colour jitter, RandAugment, erasing; auto: satellite for in-memory "
        "patches, photo for image files")
    crop_scale: float = option(0.5, "data", "photo: smallest area fraction of a random resized crop (timm "
                               "scale=(X, 1))", gt=0.0, le=1.0)
    random_crop: int | None = option(None, "data", "photo: instead of a random resized crop, a random crop of "
                                     "this many px (shorter side, original pixels) resized to --image-size", ge=1)
    frame_fit: Literal["crop", "letterbox"] = option("crop", "data", "photo: a frame of another shape than the "
                                                     "input is cropped to it, or letterboxed (padded)")
    crop_pct: float = option(1.0, "data", "photo evaluation: resize to image-size / crop-pct, then centre crop "
                             "(timm crop_pct; 1: the whole shorter side)", gt=0.0, le=1.0)
    hflip: float = option(0.0, "data", "photo: horizontal flip probability (off: a flip swaps the side of the "
                          "road cars drive on, a country cue)", ge=0.0, le=1.0)
    rotate_deg: float = option(10.0, "data", "photo: random rotation up to +-this many degrees", ge=0.0, le=180.0)
    color_jitter: float = option(0.2, "data", "photo: brightness / contrast / saturation jitter (timm)", ge=0.0)
    rand_augment: str = option("none", "data", "photo: timm RandAugment spec, e.g. rand-m6-n2; none: off",
                               metavar="SPEC")
    random_erasing: float = option(0.0, "data", "photo: probability of timm random erasing (per-pixel noise)",
                                   ge=0.0, le=1.0)
    shift_hue: float = option(0.0, "data", "imagery shift (any data, on the device): hue rotation up to +-this "
                              "fraction of the colour circle", ge=0.0, le=0.5)
    shift_saturation: float = option(0.0, "data", "imagery shift: saturation factor in [1-X, 1+X]", ge=0.0, le=1.0)
    shift_grayscale: float = option(0.0, "data", "imagery shift: probability of grayscale", ge=0.0, le=1.0)
    shift_blur: float = option(0.0, "data", "imagery shift: probability of a Gaussian blur (sigma 0.3-1.5 px)",
                               ge=0.0, le=1.0)
    shift_jpeg: float = option(0.0, "data", "imagery shift: probability of JPEG re-compression (quality 20-80)",
                               ge=0.0, le=1.0)
    interpolation: Literal["bilinear", "bicubic"] = option("bilinear", "data", "photo: resize filter")
    balanced_sampling: bool = option(False, "data", "draw training samples with replacement, weighted "
                                     "count(country) ** -balance_power (torch WeightedRandomSampler)")
    balance_power: float = option(1.0, "data", "with --balanced-sampling: 1 makes every country equally likely, "
                                  "0.5 is softer", ge=0.0)
    on_bad_image: Literal["skip", "fail"] = option("fail", "data", "unreadable images: leave them out and count "
                                                   "them (skip), or stop (fail)")
    num_workers: int | None = option(None, "data", "data loader worker processes decoding image files; none: "
                                     "measured default (0 on a CPU, see benchmarks/bench_loader.py)", ge=0)
    # -- model: task, backbone, heads and their losses
    task: str = option("region", "model", "what to predict, a registered task: region (geocells), country, "
                       "latlon, distance, or multi (several heads on one backbone, see --multi-tasks)",
                       choices=known_tasks)
    multi_tasks: tuple[str, ...] = option(("region", "country", "latlon"), "model",
                                          "comma-separated heads of --task multi", choices=head_tasks,
                                          metavar="TASK,TASK")
    loss_weights: Mapping[str, float] = option({"region": 1.0, "country": 0.5, "latlon": 0.5, "distance": 1.0},
                                               "model", "weight of each head's loss with several heads "
                                               "(a head left out weighs 1)", choices=head_tasks, ge=0.0,
                                               metavar="TASK=W,TASK=W")
    backbone: str = option("tf_efficientnet_lite0", "model", "any timm model name", metavar="NAME")
    pretrained: bool = option(True, "model", "start the backbone from ImageNet weights (offline for "
                              "EfficientNet-Lite0/2, or --weights); --no-pretrained: random weights")
    weights: str | None = option(None, "model", "a local weights file for the pretrained backbone (a timm "
                                 "state dict, .pth / .bin / .safetensors)", metavar="FILE")
    dropout: float = option(0.0, "model", "dropout before the heads (timm drop_rate)", ge=0.0, lt=1.0)
    drop_path: float = option(0.0, "model", "stochastic depth (timm drop_path_rate)", ge=0.0, lt=1.0)
    freeze_stages: int = option(4, "model", "freeze the backbone's first stages from the input: 1 the stem, "
                                "1 + N the stem and N block stages (timm group_matcher; faster steps: the default "
                                "4 made bluemarble training about 1.2x faster); 0: fine-tune every layer", ge=0)
    init_from: str | None = option(None, "model", "another run's checkpoint to start from (task-aware "
                                   "pretraining); copies the backbone", metavar="CHECKPOINT")
    init_heads: bool = option(False, "model", "with --init-from: copy the heads too (the country vocabulary "
                              "and cells must match)")
    tau_km: float = option(DEFAULT_TAU_KM, "model", "region task: temperature of the haversine label smoothing, km "
                           f"(PIGEON: {LABEL_SMOOTHING_TAU_KM:g}; {DEFAULT_TAU_KM:g}: chosen by the accuracy study)", gt=0.0)
    label_smoothing: Literal["haversine", "none"] = option("haversine", "model", "region task: soft targets "
                                                           "from haversine distances (PIGEON), or none (the "
                                                           "index of the cell holding the point)")
    distance_clip_km: float = option(DISTANCE_CLIP_KM, "model", "distance task: distances are clipped at this, km",
                                     gt=0.0)
    # -- optimisation
    epochs: int = option(2, "optimisation", "training epochs (2: the default run fits 12 minutes on a 2-core "
                         "CPU; photos want more)", ge=1)
    batch_size: int = option(64, "optimisation", "images per step (per process)", ge=1)
    lr: float = option(2e-3, "optimisation", "head learning rate (AdamW; the backbone gets lr x backbone_lr_mult)",
                       gt=0.0)
    backbone_lr_mult: float = option(0.2, "optimisation", "backbone learning rate as a multiple of lr (0: frozen)",
                                     ge=0.0)
    weight_decay: float = option(0.02, "optimisation", "AdamW weight decay", ge=0.0)
    warmup_epochs: float = option(0.5, "optimisation", "linear warm-up before the cosine schedule, epochs", ge=0.0)
    accum_steps: int = option(1, "optimisation", "gradient accumulation steps", ge=1)
    ema: bool = option(False, "optimisation", "keep an exponential moving average of the weights and "
                       "evaluate it")
    ema_decay: float = option(0.998, "optimisation", "EMA decay per step", gt=0.0, lt=1.0)
    patience: int = option(3, "optimisation", "stop after this many epochs without a better validation score",
                           ge=1)
    mixup_alpha: float = option(0.0, "optimisation", "MixUp Beta alpha (timm Mixup); with --cutmix-alpha the "
                                "classifier losses become multi-label BCE; 0: off", ge=0.0)
    cutmix_alpha: float = option(0.0, "optimisation", "CutMix Beta alpha (timm Mixup); 0: off", ge=0.0)
    mixup_prob: float = option(1.0, "optimisation", "probability of mixing a batch", ge=0.0, le=1.0)
    mixup_switch_prob: float = option(0.5, "optimisation", "probability of CutMix instead of MixUp when both "
                                      "are on", ge=0.0, le=1.0)
    # -- run
    precision: Literal["auto", "bf16", "fp32"] = option("auto", "run", "autocast dtype; auto: bf16 on GPUs that "
                                                        "support it, else fp32")
    channels_last: bool = option(True, "run", "channels-last memory format (faster for most CNNs on CPU)")
    threads: int | None = option(None, "run", "torch CPU threads; none: torch's default", ge=1)
    seed: int = option(0, "run", "seed of sampling, initialisation and augmentation", ge=0, le=_MAX_SEED)
    out_dir: str = option("runs", "run", "parent folder of run directories", metavar="DIR")
    run_name: str | None = option(None, "run", "run directory name; none: TASK-DATA", metavar="NAME")
    checkpoint_every: int = option(0, "run", "also write last.pt every this many optimizer steps inside an "
                                   "epoch (for long epochs); 0: at epoch ends only", ge=0)
    resume: bool = option(True, "run", "resume an unfinished run directory of the same name (the settings "
                          "must be the same); --no-resume: start a new one")
    extend_epochs: bool = option(False, "run", "allow a resume with a larger --epochs (the schedule is "
                                 "rebuilt and the change recorded in changes.jsonl)")
    quiet: bool = option(False, "run", "no progress bars")
    logger: Literal["none", "tensorboard"] = option(
        "none", "run", "also write each epoch's metrics as TensorBoard event files in RUN/tensorboard/ "
        "(needs the tensorboard extra)")

    def __post_init__(self) -> None:
        given = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in validate_values(given, "TrainConfig").items():
            object.__setattr__(self, name, value)  # normalised (float, tuple, dict) in place

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, dicts, str, numbers, None): for YAML and checkpoints."""
        d = dataclasses.asdict(self)
        d["multi_tasks"] = list(self.multi_tasks)
        d["loss_weights"] = dict(self.loss_weights)
        return d

    def to_yaml(self) -> str:
        """The config as YAML, keys in field order (``load_yaml_config`` reads it back)."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "config") -> "TrainConfig":
        """A config from a mapping of keys (a YAML file, a checkpoint's ``config``).

        ``source`` names where the values came from in every error message.

        Raises:
            ConfigError: an unknown key, or a value of the wrong type or out of range.
        """
        return cls(**validate_values(values, source))


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
_QUICK_SOURCE = "the --quick preset"


# ------------------------------------------------------------------------------ field types
@dataclass(frozen=True)
class _Kind:
    """What a field's annotation allows: ``base`` is bool, int, float, str, tuple or dict."""

    base: type | str  # bool, int, float, str, tuple, dict, or "size"
    optional: bool
    choices: tuple[str, ...] | Callable[[], tuple[str, ...]] | None


def _kind_of(annotation: Any, choices: Any) -> _Kind:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    optional = False
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        optional = len(rest) < len(args)
        if len(rest) != 1:
            raise TypeError(f"unsupported config annotation {annotation!r}")
        annotation = rest[0]
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return _Kind(str, optional, tuple(args))
    if origin is tuple:
        return _Kind(tuple, optional, choices)
    if origin in (dict, collections.abc.Mapping):
        return _Kind(dict, optional, choices)
    if annotation in (bool, int, float, str):
        return _Kind(annotation, optional, choices)
    raise TypeError(f"unsupported config annotation {annotation!r}")


_KINDS: dict[str, _Kind] = {}


def _kinds() -> dict[str, _Kind]:
    """Each field's :class:`_Kind` (annotations are strings here: resolved once, on first use)."""
    if not _KINDS:
        hints = typing.get_type_hints(TrainConfig)
        _KINDS.update({f.name: _Kind("size", False, None) if f.metadata.get("size")
                       else _kind_of(hints[f.name], f.metadata.get("choices")) for f in fields(TrainConfig)})
    return _KINDS


def _fields() -> dict[str, dataclasses.Field]:
    return {f.name: f for f in fields(TrainConfig)}


def _choices(kind: _Kind) -> tuple[str, ...] | None:
    return kind.choices() if callable(kind.choices) else kind.choices


def flag_name(name: str) -> str:
    """The command-line flag of a config key: ``batch_size`` -> ``--batch-size``."""
    return "--" + name.replace("_", "-")


def _describe(value: Any) -> str:
    """A bad value as the message shows it: its repr, plus its type when the repr hides it."""
    kinds = {bool: "a boolean", int: "an integer", float: "a float", str: "a string", list: "a list",
             tuple: "a list", dict: "a mapping", type(None): "null"}
    kind = kinds.get(type(value), f"a {type(value).__name__}")
    return f"{value!r} ({kind})"


def _number_text(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


def _bounds_text(meta: Mapping[str, Any]) -> str:
    """The bounds of a field in words: ``>= 1``, ``> 0``, ``from 0 to 4294967295``, ``in (0, 1)``."""
    ge, gt, le, lt = (meta.get(k) for k in ("ge", "gt", "le", "lt"))
    if ge is not None and le is not None:
        return f"from {_number_text(ge)} to {_number_text(le)}"
    if gt is not None and lt is not None:
        return f"in ({_number_text(gt)}, {_number_text(lt)})"
    parts = [f"{op} {_number_text(bound)}" for op, bound in ((">=", ge), (">", gt), ("<=", le), ("<", lt))
             if bound is not None]
    return " and ".join(parts)


def _expected(name: str) -> str:
    """What a key accepts, in words (the end of every error message about it)."""
    kind, meta = _kinds()[name], _fields()[name].metadata
    bounds = _bounds_text(meta)
    choices = _choices(kind)
    if kind.base is bool:
        text = "true or false (a YAML boolean, not a string)"
    elif kind.base is int:
        text = "an integer" + (f" {bounds}" if bounds else "")
    elif kind.base is float:
        text = "a number" + (f" {bounds}" if bounds else "")
    elif kind.base == "size":
        text = "a side in px (an integer >= 1, e.g. 224) or WIDTHxHEIGHT (e.g. 320x180)"
    elif kind.base is str:
        text = f"one of {', '.join(choices)}" if choices else "a non-empty string"
    elif kind.base is tuple:
        text = f"a non-empty list of distinct tasks from {', '.join(choices)} (on the command line: comma-separated)"
    else:
        text = (f"a mapping of task to weight {bounds} with tasks from {', '.join(choices)} "
                "(on the command line: task=weight,task=weight)")
    return text + (" or null" if kind.optional else "")


def _in_bounds(x: float, meta: Mapping[str, Any]) -> bool:
    return ((meta.get("ge") is None or x >= meta["ge"]) and (meta.get("gt") is None or x > meta["gt"])
            and (meta.get("le") is None or x <= meta["le"]) and (meta.get("lt") is None or x < meta["lt"]))


class _Bad(Exception):
    """Internal: a value of the wrong type (``range_only``: right type, out of bounds)."""

    def __init__(self, range_only: bool = False) -> None:
        self.range_only = range_only


def _number(value: Any, integer: bool, meta: Mapping[str, Any]) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Bad()
    if integer and not isinstance(value, int):
        raise _Bad()  # 3.0 is refused too: an integer field takes integers only
    if not integer:
        value = float(value)
        if not math.isfinite(value):
            raise _Bad()
    if not _in_bounds(value, meta):
        raise _Bad(range_only=True)
    return value


_SIZE_TEXT = re.compile(r"\s*([0-9]+)\s*[xX]\s*([0-9]+)\s*")


def _image_size(value: Any) -> int | str:
    """An image size normalised: a square is its side (int), another shape ``"WxH"`` text."""
    if isinstance(value, str):
        text = value.strip()
        if _INT_TEXT.fullmatch(text):
            value = int(text)
        else:
            match = _SIZE_TEXT.fullmatch(text)
            if match is None:
                raise _Bad()
            w, h = int(match.group(1)), int(match.group(2))
            if w < 1 or h < 1:
                raise _Bad()
            return w if w == h else f"{w}x{h}"
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Bad()
    return value


def _check_value(name: str, value: Any) -> Any:
    """The value normalised for field ``name``; raises :class:`_Bad` if it does not fit."""
    kind, meta = _kinds()[name], _fields()[name].metadata
    if value is None:
        if kind.optional:
            return None
        raise _Bad()
    if kind.base is bool:
        if not isinstance(value, bool):
            raise _Bad()
        return value
    if kind.base in (int, float):
        return _number(value, kind.base is int, meta)
    if kind.base == "size":
        return _image_size(value)
    choices = _choices(kind)
    if kind.base is str:
        if not isinstance(value, str) or not value or (choices and value not in choices):
            raise _Bad()
        return value
    if kind.base is tuple:
        if isinstance(value, str):
            value = [t.strip() for t in value.split(",") if t.strip()]
        if (not isinstance(value, (list, tuple)) or not value or len(set(value)) < len(value)
                or any(not isinstance(t, str) or t not in choices for t in value)):
            raise _Bad()
        return tuple(value)
    if not isinstance(value, Mapping) or any(not isinstance(k, str) or k not in choices for k in value):
        raise _Bad()
    return {k: _number(w, False, meta) for k, w in value.items()}


def validate_values(values: Mapping[str, Any], source: str | Mapping[str, str]) -> dict[str, Any]:
    """Check and normalise config values; ``source`` names their origin (or one per key).

    Returns the values with ints in float fields as floats and lists of tasks as tuples. The
    rules between fields (cell bounds) are checked for the keys that are given, with defaults
    for the rest.

    Raises:
        ConfigError: naming the source, the key, the value and what is expected.
    """
    def where(key: str) -> str:
        return source if isinstance(source, str) else source.get(key, "the defaults")

    def origin(key: str) -> str:
        return where(key) if key in out else "the defaults"

    known = _fields()
    unknown = sorted(set(values) - set(known))
    if unknown:
        origins = sorted({where(k) for k in unknown})
        raise ConfigError(f"{', '.join(origins)}: unknown keys {unknown}; known keys: {', '.join(sorted(known))}")
    out: dict[str, Any] = {}
    for name, value in values.items():
        try:
            out[name] = _check_value(name, value)
        except _Bad as bad:
            if bad.range_only and _kinds()[name].base in (int, float):
                bounds = _bounds_text(known[name].metadata)
                raise ConfigError(f"{where(name)}: {name} must be {bounds}, got {value!r}") from None
            shown = repr(value) if isinstance(value, str) and _kinds()[name].base is str else _describe(value)
            raise ConfigError(f"{where(name)}: {name} must be {_expected(name)}, got {shown}") from None

    def get(key: str) -> Any:
        return out[key] if key in out else known[key].default

    def pair_error(low: str, high: str, rule: str) -> ConfigError:
        return ConfigError(f"{high} must be {rule}, got {low}={get(low)!r} (from {origin(low)}) and "
                           f"{high}={get(high)!r} (from {origin(high)})")

    if get("cells") == "semantic" and get("cell_max_samples") < 2 * get("cell_min_samples"):
        raise pair_error("cell_min_samples", "cell_max_samples", "at least 2 x cell_min_samples for semantic cells")
    if get("cells") == "s2" and get("s2_tau_max") < get("s2_tau_min"):
        raise pair_error("s2_tau_min", "s2_tau_max", "at least s2_tau_min for S2 cells")
    if get("cells") != "kmeans" and get("kmeans_cells") != known["kmeans_cells"].default:
        raise ConfigError(f"kmeans_cells={get('kmeans_cells')!r} (from {origin('kmeans_cells')}) sets the number of "
                          f"k-means cells, but cells is {get('cells')!r} (from {origin('cells')}); "
                          "add --cells kmeans or leave kmeans_cells out")
    shift_on = [k for k in SHIFT_KEYS if get(k)]
    if shift_on and not get("augment"):
        raise ConfigError(f"{', '.join(shift_on)} (from {origin(shift_on[0])}) augment training images, but "
                          f"augment is off (from {origin('augment')}); turn augment on or the shift keys off")
    if "rand_augment" in out and out["rand_augment"] != "none":
        _check_rand_augment(out["rand_augment"], where("rand_augment"))
    return out


#: One part of a timm RandAugment spec after ``rand``: magnitude, ops, std, max, increasing, prob, weights.
_RAND_PART = re.compile(r"(m|mstd|mmax|p)[0-9]*\.?[0-9]+|(n|w|inc)[0-9]+")


def _check_rand_augment(spec: str, source: str) -> None:
    """Refuse a RandAugment spec timm cannot build, naming it (timm's format: rand-m9-n2-mstd0.5)."""
    problem = None
    parts = spec.split("-")
    unknown = [part for part in parts[1:] if not _RAND_PART.fullmatch(part)]
    if parts[0] != "rand":
        problem = "it must start with 'rand-' (timm's format, e.g. rand-m6-n2)"
    elif unknown:
        problem = (f"unknown part {unknown[0]!r} (timm would ignore it silently); parts are m<magnitude>, "
                   "n<ops>, mstd<std>, mmax<max>, inc<0|1>, p<prob>, w<weights>")
    else:
        try:
            from timm.data.auto_augment import rand_augment_transform

            rand_augment_transform(spec, {})
        except (AssertionError, ValueError, KeyError, IndexError) as exc:
            problem = f"timm cannot read it ({type(exc).__name__}: {exc})" if str(exc) else "timm cannot read it"
    if problem:
        raise ConfigError(f"{source}: rand_augment {spec!r}: {problem}; 'none' turns it off")


# ------------------------------------------------------------------------------- flag text
_NULL_TEXT = ("none", "null")
_INT_TEXT = re.compile(r"[-+]?[0-9]+")


def _float_text(text: str) -> float | str:
    """``text`` as a float, or unchanged if it is none (so that the check shows it)."""
    try:
        return float(text)
    except ValueError:
        return text


def parse_flag_text(name: str, text: str, source: str | None = None) -> Any:
    """Convert a flag's text to the type of field ``name`` (the value is checked later).

    ``none`` / ``null`` give None for fields that accept it; ``multi_tasks`` is comma-separated,
    ``loss_weights`` is ``task=weight,task=weight``. Text that is no number for a number field
    stays text, so that the check names it.

    Raises:
        ConfigError: ``loss_weights`` text that is not ``task=weight`` pairs.
    """
    kind = _kinds()[name]
    stripped = text.strip()
    if kind.optional and stripped.lower() in _NULL_TEXT:
        return None
    if kind.base is int:  # '2.5' becomes 2.5, which the check refuses as "an integer"
        return int(stripped) if _INT_TEXT.fullmatch(stripped) else _float_text(stripped)
    if kind.base is float:
        return _float_text(stripped)
    if kind.base is dict:
        weights: dict[str, Any] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, sep, weight = item.partition("=")
            if not sep:
                raise ConfigError(f"{source or flag_name(name)}: {name} must be {_expected(name)}, got {text!r}")
            weights[key.strip()] = _float_text(weight.strip())
        return weights
    return text


# ----------------------------------------------------------------------- the command line
@dataclass(frozen=True)
class ConfigOption:
    """How one config key appears on the command line (the CLI turns these into flags).

    ``default_text`` is the dataclass default as it would be typed (a boolean's is its flag,
    ``--ema`` or ``--no-ema``); ``help`` ends with ``(default: ...)``.
    """

    name: str
    flag: str
    group: str
    help: str
    default_text: str
    metavar: str | None
    is_bool: bool


def format_value(value: Any) -> str:
    """A config value written as a flag's text: ``none``, ``a,b``, ``task=w,task=w``, numbers."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    if isinstance(value, Mapping):
        return ",".join(f"{k}={format_value(v)}" for k, v in value.items())
    return str(value)


def config_options() -> list[ConfigOption]:
    """One :class:`ConfigOption` per :class:`TrainConfig` field, in field order."""
    options = []
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        kind, meta = _kinds()[f.name], f.metadata
        default = getattr(defaults, f.name)
        if kind.base is bool:
            default_text = flag_name(f.name) if default else "--no-" + f.name.replace("_", "-")
        else:
            default_text = format_value(default)
        choices = _choices(kind)
        metavar = meta.get("metavar")
        if metavar is None and kind.base is str and choices:
            metavar = "{" + ",".join(choices) + "}"
        elif metavar is None:
            metavar = {int: "N", float: "KM" if f.name.endswith("_km") else "X"}.get(kind.base, f.name.upper())
        options.append(ConfigOption(f.name, flag_name(f.name), meta["group"], f"{meta['help']} (default: {default_text})",
                                    default_text, None if kind.base is bool else metavar, kind.base is bool))
    return options


# ------------------------------------------------------------------------------------ YAML
@functools.lru_cache(maxsize=None)
def _yaml12_loader():
    """A PyYAML SafeLoader whose floats follow YAML 1.2.

    PyYAML implements YAML 1.1, whose float pattern needs a dot and a signed exponent, so
    ``lr: 1e-3`` would be read as the *string* "1e-3" (and then refused as not a number). YAML
    1.2 (core schema) reads ``1e-3``, ``1E5``, ``.5``, ``1.``, ``.inf`` and ``.nan`` as floats; the
    1.1 sexagesimal floats (``1:30.0``) are not floats any more. Integers stay integers (``5``
    matches the int pattern, not this one). Everything else is PyYAML's safe loader.
    """
    import yaml

    class Yaml12FloatLoader(yaml.SafeLoader):
        pass

    float_tag = "tag:yaml.org,2002:float"
    Yaml12FloatLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != float_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    Yaml12FloatLoader.add_implicit_resolver(
        float_tag,
        re.compile(r"""^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?
                    |[-+]?[0-9]+[eE][-+]?[0-9]+
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."),
    )
    return Yaml12FloatLoader


def load_yaml_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of config keys (floats as in YAML 1.2: ``1e-3`` is a number).

    The values are not checked here; :func:`resolve_config` / :meth:`TrainConfig.from_dict` do.

    Raises:
        InputFileError: no such file.
        ConfigError: not YAML, or not a mapping.
    """
    import yaml

    from geocell.errors import InputFileError

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such config file")
    try:
        values = yaml.load(path.read_text(), Loader=_yaml12_loader()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(values).__name__}")
    return values


def resolve_config(flags: Mapping[str, Any], config_file: str | Path | None = None, quick: bool = False) -> TrainConfig:
    """Defaults < quick preset < YAML file < flags.

    Args:
        flags: only the flags that were typed, by config key. A string for a non-string field is
            flag text (``"3"``, ``"none"``, ``"region,country"``, ``"region=1,country=0.5"``);
            None is a real value (null).
        config_file: a YAML file of config keys, or None.
        quick: apply :data:`QUICK_PRESET` under the file and the flags.

    Raises:
        ConfigError: naming the key, the value, its source (``--epochs``, the YAML path or the
            --quick preset) and what is expected.
    """
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    def layer(items: Mapping[str, Any], source: Callable[[str], str]) -> None:
        values.update(items)
        sources.update({k: source(k) for k in items})

    if quick:
        layer(QUICK_PRESET, lambda k: _QUICK_SOURCE)
    if config_file is not None:
        layer(load_yaml_config(config_file), lambda k: str(config_file))
    kinds = _kinds()
    typed = {k: parse_flag_text(k, v) if isinstance(v, str) and k in kinds and kinds[k].base is not str else v
             for k, v in flags.items()}
    layer(typed, flag_name)
    return TrainConfig(**validate_values(values, sources))
