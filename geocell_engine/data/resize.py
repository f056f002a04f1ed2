"""Pre-resize a data set once (shorter side N px) into a cache, so training decodes small JPEGs.

On 2 cores every DataLoader worker takes CPU from the model; decoding a 1600 x 900 JPEG and
shrinking it to 224 px costs about 14 ms with a full decode but about 4 ms with PIL ``draft()``
(the JPEG decoder skips the detail it would throw away), and a 256 px JPEG decodes in about 1 ms.
Doing it once pays back in the first epoch.

Each resized file is named by a hash of the source path, its size and modification time and the
target size, written atomically (temporary file + rename), and reused when it exists; EXIF
orientation is applied and every mode is converted to RGB (:func:`geocell_engine.data.images.open_rgb`).

Example:
    >>> import os, tempfile
    >>> from PIL import Image
    >>> from geocell_engine.data.samples import SampleTable
    >>> src = os.path.join(tempfile.mkdtemp(), "big.jpg")
    >>> Image.new("RGB", (1600, 900), (90, 120, 60)).save(src)
    >>> table = SampleTable.from_columns([src], [48.85], [2.35])
    >>> small, report = preresize(table, tempfile.mkdtemp(), short_side=128)
    >>> Image.open(small.paths[0]).size, report.n_out
    ((228, 128), 1)
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from geocell.errors import InputFileError
from geocell_engine.data.images import open_rgb
from geocell_engine.data.samples import SampleTable, StepReport
from geocell_engine.errors import CorruptImageError

__all__ = ["resized_name", "preresize", "preresize_manifest"]


def resized_name(path: str, short_side: int, quality: int) -> str:
    """Cache file name for a source image: ``<2 hex>/<hash>.jpg`` (changes when the file does)."""
    st = os.stat(path)
    key = f"{os.path.abspath(path)}|{st.st_size}|{st.st_mtime_ns}|{short_side}|{quality}"
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
    return f"{digest[:2]}/{digest}.jpg"


def _resize_one(src: str, images_dir: Path, short_side: int, quality: int) -> tuple[str, str, str]:
    """(cached path or "", error reason, detail)."""
    try:
        name = resized_name(src, short_side, quality)
    except OSError as exc:
        return "", "missing_image", str(exc)
    dst = images_dir / name
    if dst.is_file():
        return str(dst), "", ""
    try:
        img = open_rgb(src, short_side=short_side)
    except (CorruptImageError, InputFileError) as exc:
        text = str(exc.__cause__ or exc)
        return "", ("truncated" if "truncat" in text.lower() else "unreadable"), text
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        img.save(tmp, format="JPEG", quality=quality)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return str(dst), "", ""


def preresize(
    table: SampleTable,
    out_dir: str | os.PathLike,
    *,
    short_side: int = 256,
    quality: int = 90,
    workers: int | None = None,
) -> tuple[SampleTable, StepReport]:
    """Resize every image of ``table`` so its shorter side is ``short_side`` px, into ``out_dir``.

    Images already smaller are re-encoded at their size (never enlarged). Unreadable or
    truncated images are dropped and reported. The returned table points at the resized files
    and keeps the source path in ``original_path``.

    Args:
        out_dir: cache folder; resized images go to ``out_dir/images/``.
        short_side: target shorter side, px.
        quality: JPEG quality of the resized files.
        workers: threads (PIL decodes without the GIL); default ``min(2, cpu count)``.
    """
    if int(short_side) != short_side or short_side < 8:
        raise ValueError(f"short_side must be an integer >= 8, got {short_side!r}")
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality!r}")
    images_dir = Path(out_dir) / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    paths = table.paths

    def work(p: str) -> tuple[str, str, str]:
        return _resize_one(p, images_dir, int(short_side), int(quality))

    if workers <= 1 or len(paths) < 4:
        results = [work(p) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(work, paths, chunksize=8))
    new_paths = np.array([r[0] for r in results], dtype=object)
    ok = np.array([r[1] == "" for r in results], dtype=bool)
    bad = np.flatnonzero(~ok)
    dropped = StepReport.make_dropped(
        table.frame["source_row"].to_numpy()[bad],
        [paths[i] for i in bad],
        [results[i][1] for i in bad],
        [results[i][2] for i in bad],
    )
    report = StepReport("resize", len(table), int(ok.sum()), dropped=dropped, thresholds={"short_side": float(short_side)})
    frame = table.frame.copy()
    frame.insert(3, "original_path", frame["path"])
    frame["path"] = new_paths
    return table.with_frame(frame.loc[ok], report), report


def preresize_manifest(
    manifest: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    short_side: int = 256,
    quality: int = 90,
    image_dir: str | os.PathLike | None = None,
    workers: int | None = None,
) -> tuple[SampleTable, str]:
    """Read a manifest, pre-resize its images into ``out_dir`` and write ``out_dir/manifest.csv``.

    Returns:
        (the resized table, the sha256 of the written manifest).
    """
    from geocell_engine.data.readers import read_manifest
    from geocell_engine.data.samples import write_manifest

    table = read_manifest(manifest, image_dir=image_dir, missing="drop")
    resized, _ = preresize(table, out_dir, short_side=short_side, quality=quality, workers=workers)
    digest = write_manifest(resized, Path(out_dir) / "manifest.csv")
    return resized, digest
