"""Training batches from image files through a torch ``DataLoader`` with worker processes.

Workers decode and augment (:mod:`geocell_engine.data.transforms`) and hand uint8 tensors to the
training process; ``pin_memory`` on CUDA, persistent workers and prefetching are torch's. The
sample order is not the loader's: :func:`epoch_order` draws it from the seed and the epoch, and
:class:`EpochBatches` feeds it to the loader batch by batch, so batches arrive in that order
whatever the number of workers. Each sample's augmentation is seeded from ``(seed, epoch, index)``
(:func:`geocell_engine.data.transforms.seeded`), so the pixels do not depend on which worker
decoded them either, and a resumed epoch sees the same images as an uninterrupted one.

An image that cannot be decoded is not raised inside a worker: it comes back as a
:class:`~geocell_engine.data.accounting.BadImage` beside its batch, and the training process
raises or records it (``on_bad_image``).

Example:
    >>> epoch_order(5, seed=0, epoch=1).tolist() == epoch_order(5, seed=0, epoch=1).tolist()
    True
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np

from geocell_engine.data.accounting import BadImage

__all__ = ["PhotoDataset", "EpochBatches", "PhotoBatch", "collate_photos", "epoch_order", "make_loader",
           "default_num_workers", "CPU_NUM_WORKERS"]

#: Worker processes on a CPU-only machine. Measured with ``benchmarks/bench_loader.py`` on 2
#: cores: a worker takes a core from the model's step, and decoding in the training process was
#: the fastest ``fit`` (see benchmarks/results/loader.json).
CPU_NUM_WORKERS = 0


def default_num_workers(device: str, cpu_count: Optional[int] = None) -> int:
    """``num_workers`` when the config leaves it unset: :data:`CPU_NUM_WORKERS` on a CPU; on a GPU
    every core but one, at most 8 (one core decodes about 180 photos/s at 224 px, see the README).
    """
    cores = cpu_count if cpu_count is not None else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                                     else (os.cpu_count() or 1))
    if not str(device).startswith("cuda"):
        return CPU_NUM_WORKERS
    return max(0, min(8, cores - 1))


def epoch_order(n: int, seed: int, epoch: int, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """``(n,)`` sample indices of one epoch: a seeded permutation, or, with per-sample ``weights``,
    ``n`` draws with replacement through torch's ``WeightedRandomSampler`` (class-balanced
    sampling). Deterministic given ``seed`` and ``epoch``; the caller slices it per DDP rank."""
    if weights is None:
        return np.random.default_rng(seed * 1000 + epoch).permutation(n)
    import torch
    from torch.utils.data import WeightedRandomSampler

    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples=n, replacement=True,
                                    generator=generator)
    return np.fromiter(iter(sampler), dtype=np.int64, count=n)


class PhotoDataset:
    """Map-style dataset over image files (or in-memory images); a key is ``(sample index, epoch)``.

    Args:
        paths: ``(N,)`` image files, or an ``(N, H, W, 3)`` uint8 array of images already in memory
            (bluemarble patches with the photo augmentation).
        row_names: how messages name each sample (or None: the path).
        split_name: the split bad images are recorded under.
        transform: PIL image -> ``(3, H, W)`` uint8 array (picklable).
        decode_side: the shorter side to decode at (None: full size).
        seed: the run's seed; each sample's draws are seeded from ``(seed, epoch, index)``.
    """

    def __init__(self, paths: Sequence[str], row_names: Optional[Sequence[str]], split_name: str, transform,
                 decode_side: Optional[int], seed: int) -> None:
        in_memory = isinstance(paths, np.ndarray) and paths.ndim == 4
        self.images = paths if in_memory else None
        self.paths = None if in_memory else np.asarray(paths, dtype=object)
        self.row_names = None if row_names is None else np.asarray(row_names, dtype=object)
        self.split_name = split_name
        self.transform = transform
        self.decode_side = decode_side
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.images if self.images is not None else self.paths)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Optional[np.ndarray], int, Optional[BadImage]]:
        """``(pixels (3, H, W) uint8 or None, index, None or the BadImage)``."""
        import torch

        from geocell_engine.data.dataset import _BAD_IMAGE_ERRORS
        from geocell_engine.data.images import open_rgb
        from geocell_engine.data.transforms import seeded

        index, epoch = int(key[0]), int(key[1])
        if self.images is not None:
            from PIL import Image

            img = Image.fromarray(np.asarray(self.images[index]))
        else:
            try:
                img = open_rgb(str(self.paths[index]), short_side=self.decode_side, exact=False)  # the transform resizes
            except _BAD_IMAGE_ERRORS as exc:
                return None, index, self._bad(index, exc)
        state = random.getstate(), np.random.get_state()
        try:  # the sample's own draws; the process's generators are left as they were
            with torch.random.fork_rng(devices=[]):
                s = seeded(self.seed, epoch, index)
                random.seed(s)
                np.random.seed(s)
                torch.default_generator.manual_seed(s)  # the CPU generator only: 0.5 ms less than manual_seed
                return self.transform(img), index, None
        finally:
            random.setstate(state[0])
            np.random.set_state(state[1])

    def _bad(self, index: int, exc: BaseException) -> BadImage:
        from geocell_engine.data.dataset import bad_image_record

        return bad_image_record(self.split_name, self.paths, self.row_names, index, exc)


@dataclass
class PhotoBatch:
    """One collated batch: ``images`` ``(B, 3, H, W)`` uint8 tensor of the readable samples (None
    when none was), their ``indices`` ``(B,)``, and the ``bad`` images left out (in batch order)."""

    images: Any
    indices: np.ndarray
    bad: list

    def pin_memory(self) -> "PhotoBatch":  # DataLoader(pin_memory=True) calls this on custom batches
        if self.images is not None:
            self.images = self.images.pin_memory()
        return self


def collate_photos(items: list) -> PhotoBatch:
    """DataLoader ``collate_fn``: stack the decoded samples, keep the bad ones aside."""
    import torch

    good = [(pixels, i) for pixels, i, bad in items if bad is None]
    bad = [b for _, _, b in items if b is not None]
    images = torch.from_numpy(np.stack([p for p, _ in good])) if good else None
    return PhotoBatch(images, np.asarray([i for _, i in good], dtype=np.int64), bad)


class EpochBatches:
    """A DataLoader ``batch_sampler`` whose batches are set before each pass (:meth:`set`): the
    loader keeps its persistent workers while the order changes every epoch."""

    def __init__(self) -> None:
        self._batches: list[list[tuple[int, int]]] = []

    def set(self, order: np.ndarray, epoch: int, batch_size: int) -> None:
        """Batches of ``batch_size`` keys ``(index, epoch)`` over ``order``, in order."""
        keys = [(int(i), int(epoch)) for i in order]
        self._batches = [keys[s:s + batch_size] for s in range(0, len(keys), batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        return iter(list(self._batches))

    def __len__(self) -> int:
        return len(self._batches)


def make_loader(dataset: PhotoDataset, batches: EpochBatches, num_workers: int, pin_memory: bool,
                prefetch_factor: int = 2):
    """The ``torch.utils.data.DataLoader`` over ``dataset`` in the order of ``batches``.

    Workers are persistent (started once per run) and each keeps ``prefetch_factor`` batches ready.
    """
    import torch
    from torch.utils.data import DataLoader

    extra: dict[str, Any] = {}
    if num_workers > 0:
        extra = {"persistent_workers": True, "prefetch_factor": prefetch_factor}
    # the loader draws a base seed for its workers at every pass; from its own generator, it leaves
    # the training process's RNG (dropout, init) alone, so 0 and N workers train the same model
    # (the samples are seeded by the dataset, not by that base seed)
    return DataLoader(dataset, batch_sampler=batches, num_workers=num_workers, collate_fn=collate_photos,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(0), **extra)
