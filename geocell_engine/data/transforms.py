"""Photo transforms built from timm's parts: a file path in, a uint8 ``(3, H, W)`` array out.

Training (:func:`photo_train_transform`): a random resized crop (the box of timm's
``RandomResizedCropAndInterpolation``, area ``scale=(crop_scale, 1)``, aspect ratios around the
input's own) with a small rotation in the same resample (:class:`RandomResizedCropRotation`), or
a random crop of ``random_crop`` original pixels, or a letterbox with a random scale (timm
``ResizeKeepRatio`` + ``CenterCropOrPad``); then an optional horizontal flip, timm RandAugment
and a colour jitter (torchvision's). Random erasing (timm ``RandomErasing``) runs on
the normalised batch in the training loop, as timm does when its loader prefetches, so the
workers hand over plain uint8 pixels.

Evaluation (:func:`photo_eval_transform`): resize to ``image size / crop_pct`` keeping the aspect,
then a centre crop (``frame_fit="crop"``), or fit the whole frame and pad (``"letterbox"``).

Horizontal flip is off by default for photos: a mirrored street scene drives on the other side of
the road, which is a country cue.

JPEGs are decoded at reduced size first (:func:`geocell_engine.data.images.open_rgb` with PIL's
``draft``) to the smallest size the transform needs, which is what makes a 1600 x 900 frame cheap.

Example:
    >>> t = PhotoTransformSettings(height=90, width=160)
    >>> eval_t = photo_eval_transform(t)
    >>> from PIL import Image
    >>> eval_t(Image.new("RGB", (1600, 900), (10, 20, 30))).shape
    (3, 90, 160)
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["image_hw", "EvalDecoder", "eval_decoder", "PhotoTransformSettings", "RandomResizedCropRotation", "photo_train_transform", "photo_eval_transform", "decode_side",
           "BatchErasing", "seeded"]


def image_hw(image_size: Any) -> tuple[int, int]:
    """``(height, width)`` px of an image size: a side (``64``), ``"WxH"`` text (a config's
    ``image_size``), or an ``(height, width)`` pair.

    Example:
        >>> image_hw("320x180"), image_hw(64), image_hw((80, 130))
        ((180, 320), (64, 64), (80, 130))
    """
    if isinstance(image_size, str):
        w, h = (int(v) for v in image_size.lower().split("x"))
        return h, w
    if isinstance(image_size, (tuple, list)):
        return int(image_size[0]), int(image_size[1])
    return int(image_size), int(image_size)


@dataclass(frozen=True)
class PhotoTransformSettings:
    """What the photo transforms do (from a :class:`~geocell_engine.engine.config.TrainConfig`
    with :meth:`from_config`); plain data, so it pickles into loader workers.

    Attributes:
        height, width: model input, px.
        crop_scale: smallest area fraction of the random resized crop.
        random_crop: a random crop of this many original px (shorter side) instead, or None.
        frame_fit: ``"crop"`` or ``"letterbox"``.
        crop_pct: evaluation crop fraction (timm's).
        hflip: flip probability. rotate_deg: +- degrees. color_jitter: timm's strength.
        rand_augment: a timm RandAugment spec or ``"none"``.
        interpolation: ``"bilinear"`` or ``"bicubic"``.
        mean: per-channel mean of [0, 1] RGB (the fill of letterbox borders and RandAugment).
    """

    height: int
    width: int
    crop_scale: float = 0.5
    random_crop: Optional[int] = None
    frame_fit: str = "crop"
    crop_pct: float = 1.0
    hflip: float = 0.0
    rotate_deg: float = 10.0
    color_jitter: float = 0.2
    rand_augment: str = "none"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)

    @classmethod
    def from_config(cls, config: Any, mean: Optional[tuple[float, ...]] = None) -> "PhotoTransformSettings":
        """The settings of a TrainConfig (``mean``: the model's normalisation mean, for fills)."""
        h, w = image_hw(config.image_size)
        extra = {} if mean is None else {"mean": tuple(float(m) for m in mean)}
        return cls(h, w, config.crop_scale, config.random_crop, config.frame_fit, config.crop_pct, config.hflip,
                   config.rotate_deg, config.color_jitter, config.rand_augment, config.interpolation, **extra)

    @property
    def fill(self) -> tuple[int, int, int]:
        """The mean colour as 0-255 ints."""
        return tuple(int(round(255 * m)) for m in self.mean)  # type: ignore[return-value]


def decode_side(settings: PhotoTransformSettings, training: bool) -> Optional[int]:
    """The shorter side (px) to decode a file at before the transform, or None for full size.

    A random crop of original pixels needs them all; otherwise the transform's output never needs
    more than its longer side (evaluation: divided by ``crop_pct``).
    """
    if training and settings.random_crop is not None:
        return None
    longer = max(settings.height, settings.width)
    return longer if training else math.ceil(longer / settings.crop_pct)


def _to_uint8_chw(img) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))


class RandomResizedCropRotation:
    """A random resized crop (the box drawn by timm's ``RandomResizedCropAndInterpolation.get_params``)
    rotated by a random angle in ``[-degrees, degrees]``, resampled once with a PIL affine transform.

    The same result as timm's crop followed by torchvision's ``RandomRotation`` up to one resampling,
    in 0.70x the time for a 400 x 225 frame to 224 px (``benchmarks/bench_transforms.py``: 1.16 ms
    against 1.65 ms; the crop alone takes 0.66 ms). Corners a rotation uncovers show the frame around the crop where
    there is one (not ``fill``, as a rotation after the crop would), and ``fill`` beyond it. No antialiasing: the frame
    is decoded near the output size first (:func:`decode_side`), so the crop is rarely shrunk.

    Args:
        size: ``(height, width)`` out. scale, ratio: timm's area fraction and aspect-ratio ranges.
        degrees: the largest rotation. interpolation: ``"bilinear"`` or ``"bicubic"``.
        fill: RGB 0-255 of uncovered corners.
    """

    def __init__(self, size: tuple[int, int], scale: tuple[float, float], ratio: tuple[float, float],
                 degrees: float, interpolation: str, fill: tuple[int, int, int]) -> None:
        self.size, self.scale, self.ratio = size, scale, ratio
        self.degrees, self.interpolation, self.fill = float(degrees), interpolation, tuple(fill)

    def __call__(self, img):
        from timm.data.transforms import RandomResizedCropAndInterpolation

        box = RandomResizedCropAndInterpolation.get_params(img, self.scale, self.ratio)
        angle = random.uniform(-self.degrees, self.degrees) if self.degrees > 0 else 0.0
        return self.apply(img, box, angle)

    def apply(self, img, box: tuple[int, int, int, int], angle: float):
        """Crop ``box = (top, left, height, width)`` (input px), rotated by ``angle`` degrees
        counter-clockwise (torchvision's sense), resized to :attr:`size`."""
        from PIL import Image

        top, left, h, w = box
        theta = math.radians(angle)  # output -> input map, y pointing down: this sign is torchvision's
        c, s = math.cos(theta), math.sin(theta)
        out_h, out_w = self.size
        sx, sy = w / out_w, h / out_h  # input px per output px
        cx, cy = left + w / 2, top + h / 2
        # output (u, v) -> input: the crop's centre + rotation x scale x (u, v) from the output centre
        coeffs = (sx * c, -sy * s, cx - sx * c * out_w / 2 + sy * s * out_h / 2,
                  sx * s, sy * c, cy - sx * s * out_w / 2 - sy * c * out_h / 2)
        resample = Image.Resampling.BICUBIC if self.interpolation == "bicubic" else Image.Resampling.BILINEAR
        return img.transform((out_w, out_h), Image.Transform.AFFINE, coeffs, resample, fillcolor=self.fill)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(size={self.size}, scale={self.scale}, degrees={self.degrees}, "
                f"interpolation={self.interpolation})")


def photo_train_transform(settings: PhotoTransformSettings) -> Callable[[Any], np.ndarray]:
    """PIL RGB image -> ``(3, H, W)`` uint8, augmented (Python's ``random`` and torch's RNG)."""
    from timm.data.auto_augment import rand_augment_transform
    from timm.data.transforms import CenterCropOrPad, ResizeKeepRatio, str_to_interp_mode
    from torchvision import transforms as T

    s = settings
    size = (s.height, s.width)
    aspect = s.width / s.height
    steps: list[Any] = []
    if s.frame_fit == "letterbox":
        steps += [ResizeKeepRatio(size, longest=1.0, interpolation=s.interpolation, random_scale_prob=0.5,
                                  random_scale_range=(0.85, 1.05)),
                  CenterCropOrPad(size, fill=s.fill)]
    elif s.random_crop is not None:
        short = s.random_crop
        crop = (short, round(short * aspect)) if aspect >= 1 else (round(short / aspect), short)
        steps += [T.RandomCrop(crop, pad_if_needed=True, fill=s.fill),
                  T.Resize(size, interpolation=str_to_interp_mode(s.interpolation), antialias=True)]
    else:  # timm's crop box and the rotation in one resample (0.70x the time of two: bench_transforms.py)
        steps.append(RandomResizedCropRotation(size, scale=(s.crop_scale, 1.0), ratio=(0.75 * aspect, aspect / 0.75),
                                               degrees=s.rotate_deg, interpolation=s.interpolation, fill=s.fill))
    if s.hflip > 0:
        steps.append(T.RandomHorizontalFlip(s.hflip))
    if s.rotate_deg > 0 and (s.frame_fit == "letterbox" or s.random_crop is not None):
        steps.append(T.RandomRotation(s.rotate_deg, interpolation=T.InterpolationMode.BILINEAR, fill=list(s.fill)))
    if s.rand_augment != "none":
        steps.append(rand_augment_transform(s.rand_augment, {"translate_const": int(min(size) * 0.45),
                                                             "img_mean": s.fill}))
    if s.color_jitter > 0:
        steps.append(T.ColorJitter(s.color_jitter, s.color_jitter, s.color_jitter))
    steps.append(_to_uint8_chw)
    return T.Compose(steps)


def photo_eval_transform(settings: PhotoTransformSettings) -> Callable[[Any], np.ndarray]:
    """PIL RGB image -> ``(3, H, W)`` uint8: resize to ``size / crop_pct`` (aspect kept) and
    centre-crop, or letterbox (``frame_fit="letterbox"``). Deterministic."""
    from timm.data.transforms import CenterCropOrPad, ResizeKeepRatio
    from torchvision import transforms as T

    s = settings
    size = (s.height, s.width)
    scaled = (math.floor(s.height / s.crop_pct), math.floor(s.width / s.crop_pct))
    longest = 1.0 if s.frame_fit == "letterbox" else 0.0
    return T.Compose([ResizeKeepRatio(scaled, longest=longest, interpolation=s.interpolation),
                      CenterCropOrPad(size, fill=s.fill), _to_uint8_chw])


class EvalDecoder:
    """An image file -> ``(3, H, W)`` uint8 as evaluation sees it: decoded at reduced size
    (:func:`decode_side`) and put through :func:`photo_eval_transform`. Picklable.

    Raises (when called): geocell.errors.InputFileError, CorruptImageError.
    """

    def __init__(self, settings: PhotoTransformSettings) -> None:
        self.settings = settings
        self._transform = photo_eval_transform(settings)

    def __call__(self, path: str) -> np.ndarray:
        from geocell_engine.data.images import open_rgb

        return self._transform(open_rgb(path, short_side=decode_side(self.settings, training=False)))

    def __getstate__(self) -> dict:
        return {"settings": self.settings}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["settings"])


def eval_decoder(config: Any) -> EvalDecoder:
    """The file decoder of a run's evaluation (its image size, crop_pct, frame_fit, interpolation)."""
    return EvalDecoder(PhotoTransformSettings.from_config(config))


def seeded(seed: int, epoch: int, index: int) -> int:
    """The seed of one sample's augmentation in one epoch (independent of worker and process)."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class BatchErasing:
    """timm ``RandomErasing`` (per-pixel normal noise) on a batch in [0, 1], in the normalised space
    it was written for: ``x -> normalise -> erase -> denormalise``.

    Args:
        probability: per image. mean, std: ``(1, 3, 1, 1)`` tensors of the model's normalisation.

    Its random draws use Python's ``random`` module (timm's), seeded and checkpointed with the run.
    """

    def __init__(self, probability: float, mean, std) -> None:
        from timm.data.random_erasing import RandomErasing

        self.erase = RandomErasing(probability, mode="pixel", device="cpu")
        self.mean, self.std = mean, std

    def __call__(self, images):
        """images: ``(B, 3, H, W)`` float in [0, 1] -> the same, some boxes replaced by noise."""
        mean, std = self.mean.to(images.device), self.std.to(images.device)
        self.erase.device = images.device
        x = (images - mean) / std
        x = self.erase(x)
        return x * std + mean
