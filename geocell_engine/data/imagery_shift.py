"""Augmentation aimed at imagery shift: the same place rendered by another map or sensor.

A model trained on Blue Marble patches learns Blue Marble's colours; on the same points
rendered from another map (``shadedrelief.jpg``) it falls to the constant baseline. These
per-image random changes take away colour and sharpness cues so that layout and texture must
carry the prediction: a hue rotation, a saturation factor, grayscale, a Gaussian blur and JPEG
re-compression, each drawn per image from the run's seeded generator and applied with
torchvision's tensor functions (``torchvision.transforms.v2.functional``).

Example:
    >>> import torch
    >>> settings = ShiftSettings(hue=0.5, grayscale=1.0)
    >>> out = imagery_shift(torch.rand(4, 3, 16, 16), settings, torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(out[:, 0], out[:, 1], atol=1e-6))  # grayscale: equal channels
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ShiftSettings", "imagery_shift", "SHIFT_KEYS"]

#: The config keys of the imagery-shift augmentation (``shift_<name>`` in :class:`TrainConfig`).
SHIFT_KEYS = ("shift_hue", "shift_saturation", "shift_grayscale", "shift_blur", "shift_jpeg")

#: Gaussian blur: sigma drawn uniformly from this range (px), kernel 5 px.
BLUR_SIGMA_PX = (0.3, 1.5)
#: JPEG re-compression: quality drawn uniformly from this range.
JPEG_QUALITY = (20, 80)


@dataclass(frozen=True)
class ShiftSettings:
    """How strong each change is (all off at 0).

    Attributes:
        hue: largest hue rotation, as a fraction of the colour circle (0 to 0.5; torchvision
            ``adjust_hue``), drawn uniformly in ``[-hue, hue]``.
        saturation: saturation factor drawn uniformly in ``[1 - saturation, 1 + saturation]``.
        grayscale: probability of turning an image to grayscale (3 equal channels).
        blur: probability of a Gaussian blur (sigma in :data:`BLUR_SIGMA_PX`).
        jpeg: probability of JPEG re-compression (quality in :data:`JPEG_QUALITY`).
    """

    hue: float = 0.0
    saturation: float = 0.0
    grayscale: float = 0.0
    blur: float = 0.0
    jpeg: float = 0.0

    @classmethod
    def from_config(cls, config: Any) -> "ShiftSettings":
        return cls(config.shift_hue, config.shift_saturation, config.shift_grayscale, config.shift_blur,
                   config.shift_jpeg)

    @property
    def active(self) -> bool:
        return any((self.hue, self.saturation, self.grayscale, self.blur, self.jpeg))

    def describe(self) -> str:
        parts = [f"{name} {value:g}" for name, value in (("hue", self.hue), ("saturation", self.saturation),
                 ("grayscale", self.grayscale), ("blur", self.blur), ("jpeg", self.jpeg)) if value]
        return "imagery shift: " + ", ".join(parts)


def _colour_matrices(hue_turns: Any, saturation: Any, gray: Any) -> Any:
    """``(B, 3, 3)`` RGB -> RGB matrices: a hue rotation by ``hue_turns`` of the circle about
    the gray axis (in YIQ space, the linear form of a hue shift), then a saturation factor (1:
    unchanged, 0: gray), where ``gray`` (bool) sets the factor to 0. Luma weights are
    torchvision's (0.299, 0.587, 0.114), so an image turned gray equals ``rgb_to_grayscale``."""
    import math

    import torch

    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    from_yiq = torch.linalg.inv(to_yiq)
    angle = hue_turns * 2 * math.pi
    factor = torch.where(gray, torch.zeros_like(saturation), saturation)
    b = angle.shape[0]
    middle = torch.zeros(b, 3, 3)
    middle[:, 0, 0] = 1.0
    middle[:, 1, 1] = middle[:, 2, 2] = torch.cos(angle) * factor
    middle[:, 1, 2] = torch.sin(angle) * factor  # this sign turns red towards green, as adjust_hue does
    middle[:, 2, 1] = -torch.sin(angle) * factor
    return from_yiq @ middle @ to_yiq


def _blur(images: Any, sigma: Any) -> Any:
    """A 5 x 5 Gaussian blur with one sigma per image (px), reflect padding; one grouped conv."""
    import torch
    import torch.nn.functional as F

    b, c, h, w = images.shape
    offsets = torch.arange(5, dtype=torch.float32) - 2
    kernel_1d = torch.exp(-(offsets[None, :] ** 2) / (2 * sigma[:, None] ** 2))
    kernel_1d = kernel_1d / kernel_1d.sum(1, keepdim=True)
    kernel = (kernel_1d[:, :, None] * kernel_1d[:, None, :]).repeat_interleave(c, dim=0)[:, None]
    padded = F.pad(images.reshape(1, b * c, h, w), (2, 2, 2, 2), mode="reflect")
    return F.conv2d(padded, kernel.to(images), groups=b * c).reshape(b, c, h, w)


def imagery_shift(images: Any, settings: ShiftSettings, generator: Any) -> Any:
    """Apply the imagery-shift changes to a batch, each image drawn on its own.

    Hue, saturation and grayscale are one ``3 x 3`` colour matrix per image
    (:func:`_colour_matrices`); the blur is one grouped convolution; JPEG goes image by image
    through torchvision's encoder. The draws come from ``generator`` in a fixed order (five
    uniforms per image, then the blur sigmas and JPEG qualities), so a seeded run repeats
    exactly.

    Args:
        images: ``(B, 3, H, W)`` float in [0, 1], any device.
        settings: the strengths; nothing is drawn or changed when none is on.
        generator: a seeded CPU ``torch.Generator``.

    Returns:
        ``(B, 3, H, W)`` float in [0, 1], on the device of ``images``.
    """
    import torch
    from torchvision.transforms.v2 import functional as TF

    if not settings.active:
        return images
    b = images.shape[0]
    u = torch.rand(b, 5, generator=generator)
    sigma = BLUR_SIGMA_PX[0] + torch.rand(b, generator=generator) * (BLUR_SIGMA_PX[1] - BLUR_SIGMA_PX[0])
    quality = torch.randint(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1, (b,), generator=generator)
    out = images
    if settings.hue or settings.saturation or settings.grayscale:
        matrices = _colour_matrices((2 * u[:, 0] - 1) * settings.hue, 1 + (2 * u[:, 1] - 1) * settings.saturation,
                                    u[:, 2] < settings.grayscale).to(images)
        out = torch.einsum("bij,bjhw->bihw", matrices, out).clamp(0, 1)
    blurred = u[:, 3] < settings.blur
    if blurred.any():
        rows = blurred.nonzero()[:, 0].to(images.device)
        out = out.clone()
        out[rows] = _blur(out[rows], sigma[blurred])
    if (u[:, 4] < settings.jpeg).any():
        out = out.clone()
        for i in (u[:, 4] < settings.jpeg).nonzero()[:, 0].tolist():
            encoded = TF.jpeg((out[i].clamp(0, 1) * 255).round().to(torch.uint8).cpu(), int(quality[i]))
            out[i] = encoded.to(images.device, images.dtype) / 255.0
    return out.clamp(0, 1)
