"""Evaluation and training splits as the engine sees them, and batches of image tensors.

A :class:`GeoSplit` is a set of samples with either in-memory images (bluemarble patches,
``(N, H, W, 3)`` uint8) or image paths (a user's manifest), plus coordinates and labels. Batches
are uint8 tensors ``(B, 3, S, S)``; normalisation and augmentation run on whole batches in the
training loop (vectorised, cheap on a CPU).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Literal, Mapping, Optional

import numpy as np

from geocell_engine.errors import DataError

__all__ = ["DatasetInfo", "GeoSplit", "DataError", "load_splits", "iterate_batches", "load_image", "BadImageLog"]



@dataclass(frozen=True)
class DatasetInfo:
    """Identity of a training data set, stored in checkpoints and reports."""

    name: str
    version: str
    sha256: Mapping[str, str]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": dict(self.sha256)}


@dataclass(frozen=True, eq=False)
class GeoSplit:
    """N samples of one split.

    Attributes:
        name: "train", "val", "test" (or "test-shadedrelief", ...).
        lat, lon: ``(N,)`` float64 degrees.
        country, admin1: ``(N,)`` str ``adm0_a3`` / ``adm1_code`` ("" where unknown).
        ids: ``(N,)`` str sample ids.
        images: ``(N, H, W, 3)`` uint8 (memory map or array), or None when ``paths`` is set.
        paths: ``(N,)`` image files, or None.
        row_names: ``(N,)`` how messages name each sample's source line, or None.
    """

    name: str
    lat: np.ndarray
    lon: np.ndarray
    country: np.ndarray
    admin1: np.ndarray
    ids: np.ndarray
    images: Optional[np.ndarray] = None
    paths: Optional[np.ndarray] = None
    row_names: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.lat.size)

    def take(self, index: np.ndarray) -> "GeoSplit":
        """The samples at ``index`` (sorted index keeps memory-map reads sequential)."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        images = None if self.images is None else np.asarray(self.images[index])
        return replace(self, lat=self.lat[index], lon=self.lon[index], country=self.country[index],
                       admin1=self.admin1[index], ids=self.ids[index], images=images,
                       paths=pick(self.paths), row_names=pick(self.row_names))

    def subsample(self, n: Optional[int], seed: int) -> "GeoSplit":
        """At most ``n`` samples, drawn without replacement with ``seed`` (all when None)."""
        if n is None or n >= len(self):
            return self
        index = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self.take(index)


def _bluemarble(split: str, imagery: str = "bmng") -> tuple[GeoSplit, DatasetInfo]:
    from geocell_engine.data.bluemarble import BLUEMARBLE_V1, load_bluemarble

    data = load_bluemarble(split, imagery=imagery)  # type: ignore[arg-type]
    info = DatasetInfo(BLUEMARBLE_V1.name, str(data.info.get("version", BLUEMARBLE_V1.name)), dict(data.sha256))
    name = split if imagery == "bmng" else f"{split}-{imagery}"
    return GeoSplit(name=name, lat=data.lat, lon=data.lon, country=data.adm0_a3.astype(str),
                    admin1=data.adm1_code.astype(str), ids=data.ids.astype(str), images=data.images), info


def _split_from_file(split_file: str, source_rows: np.ndarray, n_rows: int, path: Path) -> np.ndarray:
    """Split names for the kept rows of a manifest, from an ``id,split`` file written for it
    (rows in the manifest's order, as :func:`geocell_engine.data.splits.split_manifest` writes them)."""
    from geocell_engine.data.splits import read_split_manifest

    _, names = read_split_manifest(split_file)
    if len(names) != n_rows:
        raise DataError(f"{split_file}: {len(names)} rows, but {path} has {n_rows}; "
                        "write the split for this manifest with `cli.py data split`")
    return np.asarray(names)[source_rows]


def _manifest_splits(path: Path, seed: int, split_file: Optional[str] = None) -> tuple[dict[str, GeoSplit], DatasetInfo]:
    from geocell.assign import get_assigner
    from geocell_engine.data.readers import read_manifest
    from geocell_engine.data.samples import sha256_file

    table = read_manifest(path, missing="drop")
    if not table.has_coordinates:
        raise DataError(f"{path}: has no coordinates; the training tasks need lat/lon for every image")
    frame = table.frame
    lat, lon = table.lat, table.lon
    labels = get_assigner().assign(lat, lon)
    country = frame["adm0_a3"].fillna("").astype(str).to_numpy() if "adm0_a3" in frame else labels.country
    country = np.where(country == "", labels.country, country)
    admin1 = labels.admin1
    split_col = next((c for c in frame.columns if c.lower() == "split"), None)
    if split_file is not None:
        from geocell.tables import read_table

        n_rows = len(read_table(path))
        split = _split_from_file(split_file, frame["source_row"].to_numpy(), n_rows, path)
        bad = ~np.isin(split, ["train", "val", "test"])
        if bad.any():
            raise DataError(f"{split_file}: split {split[np.flatnonzero(bad)[0]]!r}; expected train, val or test")
    elif split_col is not None:
        split = frame[split_col].astype(str).str.lower().to_numpy()
        bad = ~np.isin(split, ["train", "val", "test"])
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"{table.row_name(i)}: split {split[i]!r}; expected train, val or test")
    else:  # a seeded 80 / 10 / 10 random split; use geocell_engine.data.splits for a spatial one
        u = np.random.default_rng(seed).random(len(frame))
        split = np.where(u < 0.8, "train", np.where(u < 0.9, "val", "test"))
    rows = np.array([table.row_name(i) for i in range(len(frame))], dtype=object)
    ids = frame["id"].astype(str).to_numpy() if "id" in frame else np.asarray(table.paths, dtype=str)
    out = {}
    for name in ("train", "val", "test"):
        sel = np.flatnonzero(split == name)
        out[name] = GeoSplit(name=name, lat=lat[sel], lon=lon[sel], country=np.asarray(country)[sel].astype(str),
                             admin1=np.asarray(admin1)[sel].astype(str), ids=ids[sel],
                             paths=np.asarray(table.paths, dtype=object)[sel], row_names=rows[sel])
        if len(out[name]) == 0:
            raise DataError(f"{path}: the {name} split is empty; give a 'split' column with train/val/test rows")
    sha = {"manifest": sha256_file(path)}
    if split_file is not None:
        sha["split"] = sha256_file(split_file)
    info = DatasetInfo(name=path.name, version="manifest", sha256=sha)
    return out, info


def load_splits(data: str, seed: int = 0, split_file: Optional[str] = None) -> tuple[dict[str, GeoSplit], DatasetInfo]:
    """Train / val / test splits of a data set: ``"bluemarble-v1"`` or a manifest path.

    A manifest's split comes from ``split_file`` (an ``id,split`` file written by
    ``cli.py data split``), else from its ``split`` column (train / val / test), else from a
    seeded 80/10/10 random split.

    Raises:
        DataError: unknown data set name, a manifest without coordinates or with an empty split.
    """
    if data == "bluemarble-v1":
        splits, info = {}, None
        for name in ("train", "val", "test"):
            splits[name], info = _bluemarble(name)
        return splits, info  # type: ignore[return-value]
    path = Path(data)
    if path.suffix.lower() in (".csv", ".parquet", ".tsv", ".gz", ".pq"):
        if not path.is_file():
            from geocell.errors import InputFileError

            raise InputFileError(f"{path}: no such manifest")
        return _manifest_splits(path, seed, split_file)
    raise DataError(f"unknown data set {data!r}; expected 'bluemarble-v1' or a manifest file (.csv / .parquet)")


def robustness_split(data: str) -> Optional[GeoSplit]:
    """The test split rendered from another map (bluemarble only), for a robustness check."""
    if data != "bluemarble-v1":
        return None
    return _bluemarble("test", imagery="shadedrelief")[0]


@dataclass
class BadImageLog:
    """Images that could not be read, by source line (kept when ``on_bad_image="skip"``)."""

    rows: list[str]

    def __len__(self) -> int:
        return len(self.rows)


def load_image(path: str, size: int) -> np.ndarray:
    """An image file -> ``(size, size, 3)`` uint8: decoded by :func:`geocell_engine.data.images.open_rgb`
    (EXIF orientation, RGB, JPEG ``draft``, shorter side shrunk to ``size``), enlarged if it was
    smaller, then centre-cropped.

    Raises:
        geocell.errors.InputFileError, geocell_engine.errors.CorruptImageError: missing or bad file.
    """
    from PIL import Image

    from geocell_engine.data.images import open_rgb

    img = open_rgb(path, short_side=size)
    if min(img.size) < size:  # open_rgb never enlarges
        scale = size / min(img.size)
        img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _resize_array(images: np.ndarray, size: int):
    import torch
    import torch.nn.functional as F

    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if batch.shape[-1] != size or batch.shape[-2] != size:
        batch = F.interpolate(batch.float(), size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return batch


def iterate_batches(
    split: GeoSplit,
    index: np.ndarray,
    batch_size: int,
    image_size: int,
    on_bad_image: Literal["skip", "fail"] = "fail",
    bad_log: Optional[BadImageLog] = None,
) -> Iterator[tuple[Any, np.ndarray]]:
    """Yield ``(images uint8 (B, 3, S, S) tensor, sample indices (B,))`` over ``index`` in order.

    Images from paths are decoded here; an unreadable one raises :class:`DataError` naming its
    manifest line (``on_bad_image="fail"``) or is left out of its batch and logged (``"skip"``).
    """
    import torch

    for start in range(0, len(index), batch_size):
        idx = np.asarray(index[start:start + batch_size])
        if split.images is not None:
            order = np.argsort(idx, kind="stable")
            images = np.empty((idx.size,) + split.images.shape[1:], dtype=np.uint8)
            images[order] = split.images[idx[order]]  # sorted reads from the memory map
            yield _resize_array(images, image_size), idx
            continue
        arrays, kept = [], []
        for i in idx:
            try:
                arrays.append(load_image(split.paths[i], image_size))
                kept.append(i)
            except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for bad files
                where = split.row_names[i] if split.row_names is not None else split.paths[i]
                message = f"{where}: cannot read image {split.paths[i]}: {exc}"
                if on_bad_image == "fail":
                    raise DataError(message + " (pass --on-bad-image skip to leave such images out)") from exc
                if bad_log is not None:
                    bad_log.rows.append(message)
        if kept:
            yield torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous(), np.asarray(kept)
