"""Data hygiene: each step is a function ``step(table, ...) -> (table, StepReport)`` that drops
(or converts) samples and says what it dropped and why; :func:`clean_manifest` chains them and
writes the cleaned manifest and a JSON report atomically.

Steps:

- :func:`clean_coordinates`: missing / non-numeric coordinates, out-of-range values, latitude
  and longitude that look swapped (reported as such, never silently swapped), the (0, 0)
  placeholder; longitudes in (180, 360] are normalised and counted.
- :func:`drop_duplicate_coordinates`: later samples at the same position (to ``decimals``).
- :func:`drop_duplicate_images`: later samples whose image is an exact or near duplicate of an
  earlier one's, by the perceptual hashes of :mod:`geocell_engine.data.leakage` (the leakage
  check's hashing; opt-in step ``duplicate_images``, since it decodes every image).
- :func:`inspect_images` + :func:`clean_images`: unreadable or truncated files are dropped;
  greyscale / CMYK / palette / alpha / 16-bit images are counted as converted (decoders convert
  them to RGB) or dropped with ``convert=False``; near-black, low-variance (flat) and blurry
  images are dropped against thresholds measured on a greyscale copy whose shorter side is
  ``analysis_side`` px (so the blur measure, the variance of the 4-neighbour Laplacian, does not
  depend on the resolution).

Example:
    >>> from geocell_engine.data.samples import SampleTable
    >>> t = SampleTable.from_columns(["a", "b", "c"], [0.0, 120.0, 45.0], [0.0, 10.0, 7.0])
    >>> kept, report = clean_coordinates(t)
    >>> len(kept), report.counts()
    (1, {'placeholder_0_0': 1, 'swapped_latlon': 1})
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from geocell_engine.data.samples import (
    SampleTable,
    StepReport,
    _empty_dropped,
    write_manifest,
)
from geocell_engine.errors import CorruptImageError

__all__ = [
    "QualityThresholds",
    "clean_coordinates",
    "drop_duplicate_coordinates",
    "drop_duplicate_images",
    "inspect_images",
    "clean_images",
    "clean_manifest",
    "laplacian_variance",
    "STEPS",
    "ALL_STEPS",
]

Step = Literal["coordinates", "duplicates", "images", "duplicate_images"]
#: Steps of :func:`clean_manifest`, in their default order.
STEPS: tuple[Step, ...] = ("coordinates", "duplicates", "images")
#: Every step :func:`clean_manifest` knows (``duplicate_images`` is opt-in: it hashes every image).
ALL_STEPS: tuple[Step, ...] = STEPS + ("duplicate_images",)


@dataclass(frozen=True)
class QualityThresholds:
    """Image quality thresholds (8-bit grey levels, measured at ``analysis_side`` px).

    Attributes:
        dark_mean: below this mean grey level an image is near-black.
        min_std: below this standard deviation an image is flat (lens cap, blank frame).
        min_laplacian_var: below this variance of the Laplacian an image is blurry.
        analysis_side: shorter side of the greyscale copy the measures are taken on.
    """

    dark_mean: float = 16.0
    min_std: float = 6.0
    min_laplacian_var: float = 20.0
    analysis_side: int = 256

    def as_dict(self) -> dict[str, float]:
        return {
            "dark_mean": self.dark_mean,
            "min_std": self.min_std,
            "min_laplacian_var": self.min_laplacian_var,
            "analysis_side": float(self.analysis_side),
        }


def _rows(table: SampleTable, mask: np.ndarray) -> tuple[np.ndarray, list[str]]:
    sel = np.flatnonzero(mask)
    return table.frame["source_row"].to_numpy()[sel], [table.frame["path"].iloc[i] for i in sel]


def clean_coordinates(table: SampleTable, *, drop_placeholder: bool = True) -> tuple[SampleTable, StepReport]:
    """Drop samples whose coordinates are missing, out of range, swapped-looking or (0, 0).

    Reasons: ``missing_coordinates`` (NaN / empty / text), ``swapped_latlon`` (latitude outside
    [-90, 90] while the longitude is a valid latitude: the pair is valid swapped, but it is
    reported, not fixed), ``out_of_range``, ``placeholder_0_0``. Longitudes in (180, 360] are
    normalised to (-180, 0] and counted under ``converted["lon_0_360"]``. A table without
    coordinates (ImageFolder) passes unchanged.
    """
    n = len(table)
    if not table.has_coordinates:
        return table, StepReport("coordinates", n, n)
    lat, lon = table.lat, table.lon
    missing = ~np.isfinite(lat) | ~np.isfinite(lon)
    with np.errstate(invalid="ignore"):
        lat_ok = (lat >= -90) & (lat <= 90)
        lon_ok = (lon >= -180) & (lon <= 360)
        swapped = ~missing & ~lat_ok & (np.abs(lon) <= 90) & (np.abs(lat) <= 180)
        out_of_range = ~missing & ~swapped & ~(lat_ok & lon_ok)
        placeholder = ~missing & (lat == 0) & (lon == 0) if drop_placeholder else np.zeros(n, dtype=bool)
    reasons = [
        ("missing_coordinates", missing),
        ("swapped_latlon", swapped),
        ("out_of_range", out_of_range),
        ("placeholder_0_0", placeholder),
    ]
    frames = []
    for reason, mask in reasons:
        if mask.any():
            rows, paths = _rows(table, mask)
            details = [f"lat={a!r}, lon={b!r}" for a, b in zip(lat[mask].tolist(), lon[mask].tolist())]
            frames.append(StepReport.make_dropped(rows, paths, reason, details))
    bad = missing | swapped | out_of_range | placeholder
    frame = table.frame.loc[~bad].copy()
    wrap = frame["lon"].to_numpy() > 180
    if wrap.any():
        frame.loc[wrap, "lon"] = frame.loc[wrap, "lon"] - 360.0
    dropped = pd.concat(frames, ignore_index=True) if frames else _empty_dropped()
    report = StepReport(
        "coordinates", n, int((~bad).sum()), dropped=dropped, converted={"lon_0_360": int(wrap.sum())} if wrap.any() else {}
    )
    return table.with_frame(frame, report), report


def drop_duplicate_coordinates(table: SampleTable, *, decimals: int = 5) -> tuple[SampleTable, StepReport]:
    """Keep the first sample at each position; later ones are dropped as ``duplicate_coordinates``.

    Positions are compared after rounding to ``decimals`` (5: about 1 m). Samples without
    coordinates are left alone.
    """
    n = len(table)
    if not table.has_coordinates or n == 0:
        return table, StepReport("duplicates", n, n, thresholds={"decimals": decimals})
    lat = np.round(table.lat, decimals) + 0.0
    lon = np.round(table.lon, decimals) + 0.0
    key = pd.DataFrame({"lat": lat, "lon": lon})
    dup = key.duplicated(keep="first").to_numpy() & np.isfinite(lat) & np.isfinite(lon)
    first = key.groupby(["lat", "lon"], sort=False).ngroup().to_numpy()
    first_row = pd.Series(np.arange(n)).groupby(first).transform("min").to_numpy()
    rows, paths = _rows(table, dup)
    src = table.frame["source_row"].to_numpy()
    details = [f"same position as row {src[j]}" for j in first_row[dup]]
    report = StepReport(
        "duplicates", n, int((~dup).sum()), dropped=StepReport.make_dropped(rows, paths, "duplicate_coordinates", details),
        thresholds={"decimals": decimals},
    )
    return table.subset(~dup, report), report


def drop_duplicate_images(
    table: SampleTable,
    *,
    threshold: int | None = None,
    crop_fraction: float | None = None,
    workers: int | None = None,
) -> tuple[SampleTable, StepReport]:
    """Keep the first sample of each group of duplicate images; later ones are dropped as
    ``duplicate_image``.

    Images are compared with the leakage check's perceptual hashes
    (:func:`geocell_engine.data.leakage.hash_images`: phash and dhash of the image and of 9
    crops): an exact copy or a re-encoded, resized or slightly cropped one is a duplicate. A
    sample is dropped when it duplicates an earlier one (in table order); the detail names that
    row and the distances. Unreadable images are left for :func:`clean_images` to report.

    Args:
        threshold, crop_fraction: as in :func:`geocell_engine.data.leakage.find_duplicate_images`
            (default: its defaults).
    """
    from geocell_engine.data.leakage import (
        DEFAULT_CROP_FRACTION,
        DEFAULT_HAMMING_THRESHOLD,
        LeakageError,
        _hash_one,
        _self_pairs,
    )

    threshold = DEFAULT_HAMMING_THRESHOLD if threshold is None else threshold
    crop_fraction = DEFAULT_CROP_FRACTION if crop_fraction is None else crop_fraction
    n = len(table)
    settings = {"threshold_bits": float(threshold), "crop_fraction": float(crop_fraction)}
    if n < 2:
        return table, StepReport("duplicate_images", n, n, thresholds=settings)
    paths = table.paths
    readable = np.array([os.path.isfile(p) for p in paths], dtype=bool)
    idx = np.flatnonzero(readable)

    def one(i: int):
        try:
            return _hash_one(paths[i], float(crop_fraction), paths[i])
        except LeakageError:
            return None

    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = list(pool.map(one, idx.tolist()))
    ok = [int(i) for i, r in zip(idx, results) if r is not None]
    views = [r[0] for r in results if r is not None]
    digests = [r[1] for r in results if r is not None]
    dup = np.zeros(n, dtype=bool)
    details: dict[int, str] = {}
    src = table.frame["source_row"].to_numpy()
    if len(ok) >= 2:
        from geocell_engine.data.leakage import ImageHashes

        hashes = ImageHashes(np.stack(views), np.array(digests, dtype=object), np.array([paths[i] for i in ok], dtype=object),
                             float(crop_fraction))
        pairs = _self_pairs(hashes, int(threshold))
        ok_arr = np.asarray(ok)
        for first, later, dp, dd in zip(pairs["i"], pairs["j"], pairs["phash_distance"], pairs["dhash_distance"]):
            a, b = int(ok_arr[first]), int(ok_arr[later])
            if dup[b] or dup[a]:
                continue  # keep the first of a group; a dropped sample does not drop others
            dup[b] = True
            kind = "exact copy" if digests[first] == digests[later] else f"phash {dp} / dhash {dd} bits"
            details[b] = f"duplicate image of row {src[a]} ({kind})"
    rows, dropped_paths = _rows(table, dup)
    report = StepReport(
        "duplicate_images", n, int((~dup).sum()),
        dropped=StepReport.make_dropped(rows, dropped_paths, "duplicate_image", [details[i] for i in np.flatnonzero(dup)]),
        thresholds=settings,
    )
    return table.subset(~dup, report), report


def laplacian_variance(grey: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of a 2-D grey image (float), the blur measure."""
    g = np.asarray(grey, dtype=np.float32)
    if g.ndim != 2 or min(g.shape) < 3:
        return 0.0
    lap = 4.0 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


_CONVERSIONS = {
    "L": "greyscale",
    "LA": "greyscale",
    "1": "greyscale",
    "I": "16bit",
    "I;16": "16bit",
    "I;16B": "16bit",
    "I;16L": "16bit",
    "F": "16bit",
    "P": "palette",
    "PA": "palette",
    "CMYK": "cmyk",
    "RGBA": "alpha",
    "YCbCr": "ycbcr",
}


def _inspect_one(path: str, analysis_side: int) -> dict[str, Any]:
    from PIL import Image, UnidentifiedImageError

    from geocell_engine.data.images import open_rgb

    rec: dict[str, Any] = {"error": "", "detail": "", "mode": "", "width": 0, "height": 0,
                           "mean": np.nan, "std": np.nan, "laplacian_var": np.nan}
    if not os.path.isfile(path):
        rec.update(error="missing_image", detail="no such file")
        return rec
    try:
        with Image.open(path) as img:
            rec["mode"] = img.mode
            rec["width"], rec["height"] = img.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        rec.update(error="unreadable", detail=str(exc))
        return rec
    try:
        img = open_rgb(path, short_side=analysis_side)
    except CorruptImageError as exc:
        text = str(exc.__cause__ or exc)
        rec.update(error="truncated" if "truncat" in text.lower() else "unreadable", detail=text)
        return rec
    grey = np.asarray(img.convert("L"), dtype=np.float32)
    rec["mean"] = float(grey.mean())
    rec["std"] = float(grey.std())
    rec["laplacian_var"] = laplacian_variance(grey)
    return rec


def inspect_images(
    paths: Sequence[str], *, analysis_side: int = 256, workers: int | None = None
) -> pd.DataFrame:
    """Decode every image once and measure it.

    Returns:
        One row per path: ``error`` (``""``, ``"missing_image"``, ``"unreadable"``,
        ``"truncated"``), ``detail``, ``mode`` (PIL mode as stored), ``width``, ``height``, and
        ``mean``, ``std``, ``laplacian_var`` of the greyscale copy (NaN on error).
    """
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if workers <= 1 or len(paths) < 8:
        recs = [_inspect_one(p, analysis_side) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            recs = list(pool.map(lambda p: _inspect_one(p, analysis_side), paths, chunksize=16))
    return pd.DataFrame(recs, columns=["error", "detail", "mode", "width", "height", "mean", "std", "laplacian_var"])


def clean_images(
    table: SampleTable,
    *,
    thresholds: QualityThresholds = QualityThresholds(),
    convert: bool = True,
    stats: pd.DataFrame | None = None,
    workers: int | None = None,
) -> tuple[SampleTable, StepReport]:
    """Drop unreadable, truncated, near-black, flat and blurry images; count conversions.

    Reasons: ``missing_image``, ``unreadable``, ``truncated``, ``near_black``
    (mean < ``dark_mean``), ``low_variance`` (std < ``min_std``), ``blurry`` (Laplacian
    variance < ``min_laplacian_var``), and with ``convert=False`` the mode names
    (``cmyk``, ``greyscale``, ``palette``, ``alpha``, ``16bit``). One reason per image, in this
    order. The kept table gains ``width``, ``height`` and ``mode`` columns.

    Args:
        stats: the output of :func:`inspect_images` for ``table.paths`` (computed if None).
    """
    n = len(table)
    if stats is None:
        stats = inspect_images(table.paths, analysis_side=thresholds.analysis_side, workers=workers)
    if len(stats) != n:
        raise ValueError(f"stats has {len(stats)} rows for {n} samples")
    error = stats["error"].to_numpy(dtype=object)
    reason = np.where(error != "", error, "").astype(object)
    detail = stats["detail"].astype(str).to_numpy(dtype=object).copy()
    ok = reason == ""
    with np.errstate(invalid="ignore"):
        for name, mask, fmt in (
            ("near_black", stats["mean"].to_numpy() < thresholds.dark_mean, "mean {:.1f} < {:g}"),
            ("low_variance", stats["std"].to_numpy() < thresholds.min_std, "std {:.2f} < {:g}"),
            ("blurry", stats["laplacian_var"].to_numpy() < thresholds.min_laplacian_var, "Laplacian variance {:.1f} < {:g}"),
        ):
            hit = ok & mask
            col = {"near_black": "mean", "low_variance": "std", "blurry": "laplacian_var"}[name]
            limit = {"near_black": thresholds.dark_mean, "low_variance": thresholds.min_std, "blurry": thresholds.min_laplacian_var}[name]
            for i in np.flatnonzero(hit):
                detail[i] = fmt.format(stats[col].iloc[i], limit)
            reason[hit] = name
            ok &= ~hit
    modes = stats["mode"].to_numpy(dtype=object)
    kinds = np.array([_CONVERSIONS.get(m, "") for m in modes], dtype=object)
    converted: dict[str, int] = {}
    needs = ok & (kinds != "")
    if convert:
        for k in sorted(set(kinds[needs].tolist())):
            converted[k] = int((kinds[needs] == k).sum())
    else:
        reason[needs] = kinds[needs]
        for i in np.flatnonzero(needs):
            detail[i] = f"mode {modes[i]}"
        ok &= ~needs
    rows, paths = _rows(table, ~ok)
    dropped = StepReport.make_dropped(rows, paths, reason[~ok].tolist(), detail[~ok].tolist())
    report = StepReport("images", n, int(ok.sum()), dropped=dropped, converted=converted, thresholds=thresholds.as_dict())
    frame = table.frame.copy()
    frame["width"] = stats["width"].to_numpy()
    frame["height"] = stats["height"].to_numpy()
    frame["mode"] = modes
    return table.with_frame(frame.loc[ok], report), report


def clean_manifest(
    source: str | os.PathLike | SampleTable,
    out: str | os.PathLike,
    *,
    steps: Iterable[Step] = STEPS,
    image_dir: str | os.PathLike | None = None,
    thresholds: QualityThresholds = QualityThresholds(),
    convert: bool = True,
    duplicate_decimals: int = 5,
    drop_placeholder: bool = True,
    workers: int | None = None,
) -> tuple[SampleTable, str]:
    """Read a manifest (or take a table), run the hygiene steps, write the cleaned manifest.

    Missing images are dropped and reported while reading (not an error here). The output
    (CSV or Parquet by suffix, paths relative to its folder, 6-decimal coordinates) and
    ``<out>.report.json`` (every step's counts, thresholds and first dropped rows) are written
    atomically: on any error neither is left behind or half-written.

    Returns:
        (cleaned table with its step reports in ``.reports``, sha256 of the written manifest).

    Raises:
        ValueError: an unknown step name; the reader's errors for an unusable manifest.
    """
    from geocell_engine.data.readers import read_manifest

    steps = tuple(steps)
    unknown = [s for s in steps if s not in ALL_STEPS]
    if unknown:
        raise ValueError(f"unknown hygiene step(s) {unknown}; expected some of {', '.join(ALL_STEPS)}")
    if isinstance(source, SampleTable):
        table = source
    else:
        table = read_manifest(source, image_dir=image_dir, missing="drop", validate=False)
    for step in steps:
        if step == "coordinates":
            table, _ = clean_coordinates(table, drop_placeholder=drop_placeholder)
        elif step == "duplicates":
            table, _ = drop_duplicate_coordinates(table, decimals=duplicate_decimals)
        elif step == "duplicate_images":
            table, _ = drop_duplicate_images(table, workers=workers)
        else:
            table, _ = clean_images(table, thresholds=thresholds, convert=convert, workers=workers)
    digest = write_manifest(table, Path(out))
    return table, digest
