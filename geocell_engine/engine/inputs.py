"""Where a run's training batches come from, and what is done to them on the device.

Two paths:

- **In-memory patches** (bluemarble) with the satellite augmentation: batches are sliced from the
  ``(N, H, W, 3)`` array in the training process and jittered on the device
  (:func:`augment_batch`); no loader workers, nothing to decode (this path is the fastest there is
  for data already in memory).
- **Everything else** (image files, or photo augmentation of in-memory images): a torch
  ``DataLoader`` (:mod:`geocell_engine.data.loader`) whose workers decode and augment
  (:mod:`geocell_engine.data.transforms`) and hand over uint8 tensors.

On the device, :class:`BatchMixing` applies random erasing and MixUp / CutMix (timm's) to the
float batch. Every random draw is seeded from the run's seed and saved in checkpoints, so a
resumed run continues exactly, with any number of workers.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from geocell_engine.data.accounting import ImageAccount
from geocell_engine.data.dataset import GeoSplit, iterate_batches
from geocell_engine.engine.config import TrainConfig
from geocell_engine.errors import ConfigError, DataError

__all__ = ["TrainInput", "BatchMixing", "augment_batch", "augment_kind", "describe_recipe"]


def augment_batch(images, generator):
    """The satellite augmentation: brightness / contrast +-10% per image and a random shift of
    up to 1/16 of the side (reflect padding); the patches stay north-up.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        generator: a seeded ``torch.Generator`` (CPU).

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    import torch
    import torch.nn.functional as F

    b, _, h, w = images.shape
    bright = 1.0 + (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.2
    contrast = 1.0 + (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.2
    bright, contrast = bright.to(images.device), contrast.to(images.device)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = ((images - mean) * contrast + mean) * bright
    pad_h, pad_w = max(1, h // 16), max(1, w // 16)
    padded = F.pad(images, (pad_w, pad_w, pad_h, pad_h), mode="reflect")
    if pad_h == pad_w:  # one draw of two, as for square patches since the first version
        dx, dy = torch.randint(0, 2 * pad_w + 1, (2,), generator=generator).tolist()
    else:
        dx = int(torch.randint(0, 2 * pad_w + 1, (1,), generator=generator))
        dy = int(torch.randint(0, 2 * pad_h + 1, (1,), generator=generator))
    return padded[:, :, dy:dy + h, dx:dx + w].clamp(0, 1)


def augment_kind(config: TrainConfig, train: GeoSplit) -> str:
    """``"satellite"`` or ``"photo"``: the config's choice, ``"auto"`` resolved (satellite for
    in-memory patches, photo for image files)."""
    if config.augment_kind != "auto":
        return config.augment_kind
    return "satellite" if train.images is not None else "photo"


class TrainInput:
    """The training batches of one run: ``epoch(order, epoch, skip)`` yields ``(uint8 (B, 3, H, W)
    CPU tensor, sample indices (B,))`` over ``order`` from micro-batch ``skip`` on.

    Args:
        train: the training split.
        config: batch size, image size, augmentation, workers, ``on_bad_image``.
        device: the training device (pinned memory and the default worker count depend on it).
        mean: the model's normalisation mean (fill colour of rotations and letterboxes).
        account: where unreadable images are recorded (``on_bad_image="skip"``).
        rank, world_size: the DDP process (shards are split or resampled per rank).
    """

    def __init__(self, train: GeoSplit, config: TrainConfig, device: str, mean: tuple[float, ...],
                 account: ImageAccount, rank: int = 0, world_size: int = 1) -> None:
        from geocell_engine.data.loader import default_num_workers

        self.train, self.config, self.account = train, config, account
        self.kind = augment_kind(config, train)
        self.in_memory = train.images is not None and self.kind == "satellite"
        self.num_workers = (config.num_workers if config.num_workers is not None
                            else default_num_workers(device))
        self._loader = self._batches = self._stream = None
        self.rank, self.world_size = rank, world_size
        if train.shards is not None:
            self._make_stream(mean)
        elif not self.in_memory:
            self._make_loader(device, mean)

    def describe(self) -> str:
        """One line for the log: where batches come from and how they are augmented."""
        aug = f"{self.kind} augmentation" if self.config.augment else "no augmentation"
        if self._stream is not None:
            from geocell_engine.data.shards import SHUFFLE_BUFFER

            drawn = ("shards resampled per rank (with replacement), " if self.world_size > 1 else "")
            return (f"input: WebDataset shards streamed ({drawn}shuffle buffer {SHUFFLE_BUFFER}), "
                    f"{self.num_workers} loader worker{'s' if self.num_workers != 1 else ''}, {aug}")
        if self.in_memory:
            note = " (--num-workers is not used for in-memory patches)" if self.config.num_workers else ""
            return f"input: in-memory patches, {aug}{note}"
        n = self.num_workers
        where = f"{n} loader worker{'s' if n != 1 else ''}" if n else "decoded in the training process"
        return f"input: {'image files' if self.train.paths is not None else 'in-memory images'}, {where}, {aug}"

    def _transform(self, mean: tuple[float, ...]):
        """``(PIL image -> uint8 (3, H, W), the shorter side to decode at)`` of the training images:
        the photo augmentation, or the evaluation transform when there is none."""
        from geocell_engine.data.transforms import (
            PhotoTransformSettings,
            decode_side,
            photo_eval_transform,
            photo_train_transform,
        )

        settings = PhotoTransformSettings.from_config(self.config, mean=mean)
        augmented = self.config.augment and self.kind == "photo"
        transform = photo_train_transform(settings) if augmented else photo_eval_transform(settings)
        return transform, decode_side(settings, training=augmented)

    def _make_stream(self, mean: tuple[float, ...]) -> None:
        import math

        from geocell_engine.data.shards import TrainStream

        transform, side = self._transform(mean)
        per_rank = max(1, len(self.train) // self.world_size)
        self._position = {int(o): i for i, o in enumerate(self.train.source_index)}
        self._stream = TrainStream(self.train.shards, transform, side,
                                   self.config.batch_size, math.ceil(per_rank / self.config.batch_size),
                                   self.config.seed, self.world_size, self.num_workers)

    def _make_loader(self, device: str, mean: tuple[float, ...]) -> None:
        from geocell_engine.data.loader import EpochBatches, PhotoDataset, make_loader

        transform, side = self._transform(mean)
        source = self.train.paths if self.train.paths is not None else self.train.images
        dataset = PhotoDataset(source, self.train.row_names, self.train.name, transform, side, self.config.seed)
        self._batches = EpochBatches()
        self._loader = make_loader(dataset, self._batches, self.num_workers,
                                   pin_memory=str(device).startswith("cuda"))

    def epoch(self, order: np.ndarray, epoch: int, skip: int = 0) -> Iterator[tuple[Any, np.ndarray]]:
        """The batches of one epoch; bad images raise (``"fail"``) or are recorded (``"skip"``)."""
        bs = self.config.batch_size
        rest = order[skip * bs:]
        if self._stream is not None:  # shards: a stream, not an order (a resumed epoch is not exact)
            for i, (images, originals) in enumerate(self._stream.loader(epoch, self.rank)):
                if i < skip:
                    continue
                keep = np.asarray([j for j, o in enumerate(originals) if int(o) in self._position])
                if keep.size:
                    yield images[keep], np.asarray([self._position[int(o)] for o in originals[keep]])
            return
        if self.in_memory:
            yield from iterate_batches(self.train, rest, bs, self.config.image_size, self.config.on_bad_image,
                                       self.account)
            return
        from geocell_engine.data.dataset import _SKIP_HINT, _record_bad

        self._batches.set(rest, epoch, bs)  # type: ignore[union-attr]
        for batch in self._loader:  # type: ignore[union-attr]
            for record in batch.bad:
                if self.config.on_bad_image == "fail":
                    raise DataError(f"{record.message()}; {_SKIP_HINT}")
                _record_bad(self.account, record)
            if batch.images is not None:
                yield batch.images, batch.indices

    def close(self) -> None:
        """Stop the loader's worker processes (they are persistent)."""
        loader, self._loader = self._loader, None
        # torch has no public call that stops persistent workers before the loader is collected
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()


class BatchMixing:
    """What happens to a float training batch on the device: the satellite augmentation, the
    imagery-shift augmentation (:mod:`geocell_engine.data.imagery_shift`), timm random erasing,
    and timm MixUp / CutMix.

    Call :meth:`images` on ``(B, 3, H, W)`` float [0, 1] images; it returns them transformed and
    the ``(B, B)`` mixing matrix (None when the batch was not mixed; an odd-sized batch, the last
    of an epoch, is never mixed, as timm's Mixup needs pairs).

    Raises:
        ConfigError: MixUp / CutMix asked of a task without classes to mix.
    """

    def __init__(self, config: TrainConfig, kind: str, task: Any, mean, std, generator) -> None:
        from geocell_engine.data.imagery_shift import ShiftSettings

        self.satellite = config.augment and kind == "satellite"
        self.shift = ShiftSettings.from_config(config) if config.augment else ShiftSettings()
        self.generator = generator
        self.erasing = None
        if config.augment and kind == "photo" and config.random_erasing > 0:
            from geocell_engine.data.transforms import BatchErasing

            self.erasing = BatchErasing(config.random_erasing, mean, std)
        self.mixup = None
        if config.mixup_alpha > 0 or config.cutmix_alpha > 0:
            if not task.supports_mixup:
                raise ConfigError(f"--mixup-alpha / --cutmix-alpha need a task with classes to mix (region, "
                                  f"country, or multi of those); {task.describe()} has none")
            from timm.data import Mixup

            self.mixup = Mixup(mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha,
                               prob=config.mixup_prob, switch_prob=config.mixup_switch_prob, mode="batch",
                               label_smoothing=0.0, num_classes=2)

    def images(self, x) -> tuple[Any, Optional[Any]]:
        import torch

        if self.satellite:
            x = augment_batch(x, self.generator)
        if self.shift.active:
            from geocell_engine.data.imagery_shift import imagery_shift

            x = imagery_shift(x, self.shift, self.generator)
        if self.erasing is not None:
            x = self.erasing(x)
        if self.mixup is None or x.shape[0] % 2 or x.shape[0] < 2:
            return x, None
        self.mixup.num_classes = x.shape[0]  # targets arange(B): the mixed targets are the mixing matrix
        x, mix = self.mixup(x, torch.arange(x.shape[0], device=x.device))
        return x, mix

    def loss(self, task: Any, outputs, targets, mix) -> tuple[Any, dict[str, float]]:
        """The task's loss, or its mixed loss for a mixed batch."""
        return task.loss(outputs, targets) if mix is None else task.mixed_loss(outputs, targets, mix)


def describe_recipe(config: TrainConfig) -> Optional[str]:
    """The recipe keys that are on, for the log (None when none is)."""
    parts = []
    if config.mixup_alpha or config.cutmix_alpha:
        parts.append(f"MixUp {config.mixup_alpha:g} / CutMix {config.cutmix_alpha:g} as multi-label BCE")
    if config.balanced_sampling:
        parts.append(f"balanced sampling (power {config.balance_power:g})")
    if config.augment:
        from geocell_engine.data.imagery_shift import ShiftSettings

        shift = ShiftSettings.from_config(config)
        if shift.active:
            parts.append(shift.describe())
    if config.freeze_stages:
        parts.append(f"backbone stages frozen: {config.freeze_stages}")
    if config.dropout or config.drop_path:
        parts.append(f"dropout {config.dropout:g}, drop path {config.drop_path:g}")
    return ", ".join(parts) or None

