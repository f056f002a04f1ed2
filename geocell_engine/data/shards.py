"""WebDataset shards: a data set past the size of a folder, streamed by the ``webdataset`` package.

``cli.py data shards DATA OUT --shard-size N`` (:func:`write_shards`) writes

- ``OUT/shard-000000.tar`` ...: per sample the image file's bytes as they are (no re-encoding)
  and a JSON record ``{id, lat, lon, country, admin1, split, index}`` (``index``: the sample's
  position in its split);
- ``OUT/samples.parquet``: those records for every sample (the engine needs every training
  coordinate before the first batch: cells, targets), with the shard and key of each;
- ``OUT/index.json`` (written last, atomically): the format, the source data set and its split
  rule, and per shard its file name, sample count per split and sha256.

``--data OUT/`` then trains from the shards (:class:`ShardSource`): training batches stream
through ``webdataset.WebDataset`` with shards split by node (DDP rank) and by loader worker, a
shuffle buffer, and, with several processes, ``resampled=True`` + ``with_epoch`` so that every
rank takes the same number of steps (shards are then drawn with replacement). Validation and test
stream their shards in order. Memory stays flat as the data set grows: only the metadata table
and a shuffle buffer of samples are held.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from geocell_engine.data.samples import sha256_file
from geocell_engine.errors import DataError

__all__ = ["write_shards", "ShardSource", "is_shard_folder", "read_shard_index", "SHARD_FORMAT", "INDEX_FILE",
           "SAMPLES_FILE", "SHUFFLE_BUFFER"]

SHARD_FORMAT = "geocell-shards-1"
INDEX_FILE = "index.json"
SAMPLES_FILE = "samples.parquet"
#: Samples held in the training shuffle buffer (per loader worker).
SHUFFLE_BUFFER = 1000


def is_shard_folder(path: str | os.PathLike) -> bool:
    """True for a folder written by :func:`write_shards` (it has ``index.json``)."""
    return (Path(path) / INDEX_FILE).is_file()


def write_shards(data: str, out: str | os.PathLike, shard_size: int, *, seed: int = 0,
                 split_file: Optional[str] = None, split_method: str = "spatial",
                 log: Callable[[str], None] = print) -> Path:
    """Write a data set (a manifest or a photo folder) as WebDataset tar shards.

    Args:
        data: what ``--data`` takes (a manifest, a folder of geotagged photos).
        out: the shard folder (created; must not hold shards already).
        shard_size: samples per shard (>= 1).
        seed, split_file, split_method: how the data are split (as for ``train``).

    Returns:
        The path of ``index.json``.

    Raises:
        DataError: bad ``shard_size``, ``out`` holds shards already, or a sample's image is missing
            (named); the partly written folder is removed.
    """
    import shutil

    import pandas as pd
    import webdataset as wds

    from geocell.tables import atomic_write
    from geocell_engine.data.dataset import load_splits

    if shard_size < 1:
        raise DataError(f"--shard-size must be at least 1, got {shard_size}")
    out = Path(out)
    if is_shard_folder(out) or any(out.glob("shard-*.tar")):
        raise DataError(f"{out} holds shards already; write to a new folder")
    splits, info = load_splits(data, seed=seed, split_file=split_file, on_bad_image="fail",
                               split_method=split_method)
    partial = out / f".partial-{os.getpid()}"
    partial.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    try:
        with wds.ShardWriter(str(partial / "shard-%06d.tar"), maxcount=shard_size, verbose=0) as sink:
            for name in ("train", "val", "test"):
                split = splits[name]
                for i in range(len(split)):
                    path = Path(str(split.paths[i]))
                    if not path.is_file():
                        raise DataError(f"{split.row_names[i] if split.row_names is not None else path}: image "
                                        f"{path} not found")
                    key = f"{len(rows):09d}"
                    record = {"id": str(split.ids[i]), "lat": float(split.lat[i]), "lon": float(split.lon[i]),
                              "country": str(split.country[i]), "admin1": str(split.admin1[i]), "split": name,
                              "index": i}
                    ext = path.suffix.lower().lstrip(".") or "img"
                    sink.write({"__key__": key, ext: path.read_bytes(), "json": record})
                    rows.append({**record, "key": key, "shard": len(rows) // shard_size})
        frame = pd.DataFrame(rows)
        shards = []
        for number in sorted(frame["shard"].unique()):
            file = partial / f"shard-{number:06d}.tar"
            counts = frame.loc[frame["shard"] == number, "split"].value_counts().to_dict()
            shards.append({"file": file.name, "samples": int(sum(counts.values())),
                           "splits": {k: int(v) for k, v in counts.items()}, "sha256": sha256_file(file)})
        frame["shard"] = [f"shard-{n:06d}.tar" for n in frame["shard"]]
        for entry in shards:
            os.replace(partial / entry["file"], out / entry["file"])
        atomic_write(out / SAMPLES_FILE, lambda p: frame.to_parquet(p, index=False))
        index = {"format": SHARD_FORMAT, "source": info.as_dict(), "split_rule": info.split_rule,
                 "samples": len(frame), "shard_size": shard_size, "shards": shards}
        text = json.dumps(index, indent=2, sort_keys=True)
        atomic_write(out / INDEX_FILE, lambda p: p.write_text(text + "\n"))
    except BaseException:
        for entry in out.glob("shard-*.tar"):
            entry.unlink()
        raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    log(f"wrote {len(frame):,} samples in {len(shards)} shards to {out} "
        f"({', '.join(f'{n} {int((frame.split == n).sum()):,}' for n in ('train', 'val', 'test'))})")
    return out / INDEX_FILE


def read_shard_index(folder: str | os.PathLike) -> dict[str, Any]:
    """``index.json`` of a shard folder, checked: the format, and every shard file present with
    the size it had (the sha256 is checked by :meth:`ShardSource.verify`).

    Raises:
        DataError: another format, or a shard file listed and missing (named).
    """
    folder = Path(folder)
    try:
        index = json.loads((folder / INDEX_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{folder / INDEX_FILE}: cannot read the shard index ({exc})") from exc
    if index.get("format") != SHARD_FORMAT:
        raise DataError(f"{folder / INDEX_FILE}: format {index.get('format')!r}; expected {SHARD_FORMAT!r}")
    for entry in index["shards"]:
        if not (folder / entry["file"]).is_file():
            raise DataError(f"{folder}: shard {entry['file']} is listed in {INDEX_FILE} but missing")
    return index


@dataclass(frozen=True)
class ShardSource:
    """Where a shard-backed split's images are: the shard folder, the split's name and the shard
    files holding its samples (in order)."""

    folder: str
    split: str
    shards: tuple[str, ...]

    @property
    def urls(self) -> list[str]:
        return [str(Path(self.folder) / name) for name in self.shards]

    def verify(self) -> None:
        """Check every shard's sha256 against the index.

        Raises:
            DataError: the first shard whose content changed (named).
        """
        index = read_shard_index(self.folder)
        want = {e["file"]: e["sha256"] for e in index["shards"]}
        for name in self.shards:
            got = sha256_file(Path(self.folder) / name)
            if got != want[name]:
                raise DataError(f"{Path(self.folder) / name}: sha256 {got[:12]}... differs from the index's "
                                f"{want[name][:12]}...; the shard changed after it was written")


def _image(sample: dict) -> tuple[str, bytes]:
    for ext in ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "img"):
        if ext in sample:
            return ext, sample[ext]
    raise KeyError("no image")


def decode_sample(sample: dict, decode: Callable[[Any], np.ndarray]) -> tuple[np.ndarray, int]:
    """``(pixels (3, H, W) uint8, index in split)`` of a raw shard sample.

    Raises:
        DataError: naming the shard and key, when the sample has no image or it cannot be decoded.
    """
    from geocell_engine.data.dataset import _BAD_IMAGE_ERRORS

    where = f"{sample.get('__url__', '?')}: sample {sample.get('__key__', '?')}"
    try:
        record = json.loads(sample["json"])
        _, data = _image(sample)
        return decode(io.BytesIO(data)), int(record["index"])
    except KeyError as exc:
        raise DataError(f"{where}: no {exc.args[0] if exc.args else 'entry'} in the sample") from exc
    except _BAD_IMAGE_ERRORS as exc:
        raise DataError(f"{where}: cannot decode its image ({exc})") from exc


def stream_split(source: ShardSource, decode: Callable[[Any], np.ndarray], wanted: Optional[np.ndarray] = None
                 ) -> Iterator[tuple[np.ndarray, int]]:
    """Every sample of a split, in shard order (one process, no shuffling): ``(pixels, index)``;
    only the indices in ``wanted`` when given."""
    import webdataset as wds

    keep = None if wanted is None else set(int(i) for i in wanted)
    # every shard, in order, in this process (no node or worker splitting: rank 0 validates alone)
    stream = wds.DataPipeline(wds.SimpleShardList(source.urls), wds.tarfile_to_samples())
    for sample in stream:
        record = json.loads(sample["json"])
        if record["split"] != source.split or (keep is not None and int(record["index"]) not in keep):
            continue
        yield decode_sample(sample, decode)


class TrainStream:
    """The training batches of a shard-backed split, as a ``webdataset`` pipeline.

    Shards are split by node (DDP rank) and by loader worker; samples pass a shuffle buffer of
    :data:`SHUFFLE_BUFFER`. With ``world_size > 1`` the shards are resampled (drawn with
    replacement, seeded per rank and epoch) and every rank's epoch is cut to ``batches`` batches
    (``with_epoch``), so that all ranks take the same number of steps.

    Args:
        source: the training split's shards.
        transform: PIL image -> ``(3, H, W)`` uint8. decode_side: as for the photo loader.
        batch_size, batches: per step, and steps per epoch (per rank).
        seed, world_size, num_workers: the run's.
    """

    def __init__(self, source: ShardSource, transform, decode_side: Optional[int], batch_size: int, batches: int,
                 seed: int, world_size: int, num_workers: int) -> None:
        self.source, self.transform, self.decode_side = source, transform, decode_side
        self.batch_size, self.batches = batch_size, batches
        self.seed, self.world_size, self.num_workers = seed, world_size, num_workers

    def loader(self, epoch: int, rank: int = 0):
        """The ``webdataset.WebLoader`` of one epoch: ``(uint8 (B, 3, H, W), indices (B,))`` batches,
        ``batches`` of them (the last pass over the shards is cut there, or resampled up to it)."""
        import webdataset as wds

        seed = (self.seed * 1000 + epoch) * 1009 + rank
        if self.world_size > 1:  # each rank its own seeded draws of shards: equal steps, with replacement
            stages = [wds.ResampledShards(self.source.urls, seed=seed, deterministic=True,
                                          worker_seed=lambda: wds.utils.pytorch_worker_info()[2])]
        else:
            stages = [wds.SimpleShardList(self.source.urls), wds.shuffle(len(self.source.urls), rng=_Rng(seed)),
                      wds.split_by_node, wds.split_by_worker]
        stages += [wds.tarfile_to_samples(), wds.select(_is_split(self.source.split)),
                   wds.shuffle(SHUFFLE_BUFFER, initial=min(SHUFFLE_BUFFER, 100), rng=_Rng(seed + 1)),
                   wds.map(_Decode(self.transform, self.decode_side)),
                   wds.batched(self.batch_size, collation_fn=_collate, partial=True)]
        pipeline = wds.DataPipeline(*stages)
        loader = wds.WebLoader(pipeline, batch_size=None, num_workers=self.num_workers)
        return loader.with_epoch(self.batches) if self.world_size > 1 else loader


def _Rng(seed: int):
    import random

    return random.Random(seed)


class _is_split:
    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, sample: dict) -> bool:
        return json.loads(sample["json"])["split"] == self.name


class _Decode:
    """A raw sample -> (pixels, index), with the photo transform (picklable for workers)."""

    def __init__(self, transform, decode_side: Optional[int]) -> None:
        self.transform, self.decode_side = transform, decode_side

    def __call__(self, sample: dict) -> tuple[np.ndarray, int]:
        from geocell_engine.data.images import open_rgb

        return decode_sample(sample, lambda f: self.transform(open_rgb(f, short_side=self.decode_side, exact=False)))


def _collate(items: Sequence[tuple[np.ndarray, int]]):
    import torch

    return torch.from_numpy(np.stack([p for p, _ in items])), np.asarray([i for _, i in items], dtype=np.int64)
