"""Readers for users' data sets: manifests (OSV-5M, Im2GPS3k/YFCC4k, generic), an ImageFolder
tree with one folder per country, and a folder of photos with GPS in their EXIF.

Each returns a :class:`geocell_engine.data.samples.SampleTable`. Image paths in a manifest are relative to the
manifest's folder (or ``image_dir``). Problems are reported with the file and row named; nothing
is written by a reader.

Example:
    >>> import os, tempfile
    >>> from PIL import Image
    >>> root = tempfile.mkdtemp()
    >>> Image.new("RGB", (8, 8)).save(os.path.join(root, "a.jpg"))
    >>> _ = open(os.path.join(root, "m.csv"), "w").write("path,lat,lon\\na.jpg,48.85,2.35\\n")
    >>> t = read_manifest(os.path.join(root, "m.csv"))
    >>> t.layout, t.lat.tolist(), os.path.basename(t.paths[0])
    ('generic', [48.85], 'a.jpg')
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from geocell.errors import InputFileError, InvalidCoordinateError
from geocell.tables import LAT_NAMES, LON_NAMES, read_table
from geocell.validate import check_latlon
from geocell_engine.data.images import is_image_file
from geocell_engine.data.samples import SampleTable, StepReport
from geocell_engine.errors import ManifestError

__all__ = [
    "Layout",
    "detect_layout",
    "read_manifest",
    "read_image_folder",
    "read_exif_folder",
    "exif_gps",
    "warn_if_swapped",
    "PATH_NAMES",
]

Layout = Literal["osv5m", "im2gps", "geoclip", "generic"]
#: Column names recognised as the image path of a generic manifest (case-insensitive).
PATH_NAMES: tuple[str, ...] = ("path", "image", "image_path", "filepath", "file", "filename")
_OSV5M_LABELS = ("country", "region", "sub-region", "city")

_LAYOUT_HELP = (
    "expected one of: OSV-5M (id, latitude, longitude, country, region, ...), "
    "Im2GPS3k/YFCC4k (IMG_ID, LAT, LON), GeoCLIP (IMG_FILE, LAT, LON) or generic (path, lat, lon)"
)


def _lower_map(columns: Any) -> dict[str, str]:
    return {str(c).strip().lower(): c for c in columns}


def _first(by_lower: dict[str, str], names: tuple[str, ...]) -> str | None:
    for n in names:
        if n in by_lower:
            return by_lower[n]
    return None


def detect_layout(columns: Any) -> tuple[Layout, dict[str, str]]:
    """Recognise a manifest layout from its column names.

    Returns:
        (layout, {"key": column, "lat": column, "lon": column}) where ``key`` is the column that
        names the image (``id`` for OSV-5M, ``IMG_ID`` for Im2GPS, ``IMG_FILE`` for GeoCLIP,
        ``path`` for generic).

    Raises:
        ManifestError: no layout matches (the message lists the columns found), or two columns
            could be the latitude (or the longitude).
    """
    low = _lower_map(columns)
    for names, what in ((LAT_NAMES, "latitude"), (LON_NAMES, "longitude")):
        found = [low[n] for n in names if n in low]
        if len(found) > 1:  # taking the first would pick one silently
            raise ManifestError(f"{len(found)} {what} columns ({', '.join(map(str, found))}); keep one, or rename "
                                "the others")
    lat, lon = _first(low, LAT_NAMES), _first(low, LON_NAMES)
    if lat is not None and lon is not None:
        if "img_id" in low:
            return "im2gps", {"key": low["img_id"], "lat": lat, "lon": lon}
        if "img_file" in low:
            return "geoclip", {"key": low["img_file"], "lat": lat, "lon": lon}
        path = _first(low, PATH_NAMES)
        if path is not None:
            return "generic", {"key": path, "lat": lat, "lon": lon}
        if "id" in low and any(c in low for c in _OSV5M_LABELS):
            return "osv5m", {"key": low["id"], "lat": lat, "lon": lon}
    elif lat is None and lon is None and _first(low, PATH_NAMES) is not None and "adm0_a3" in low:
        # country labels only (e.g. a manifest written from an ImageFolder tree)
        return "generic", {"key": _first(low, PATH_NAMES), "lat": None, "lon": None}  # type: ignore[dict-item]
    raise ManifestError(f"unrecognised manifest columns {', '.join(map(str, columns))}; {_LAYOUT_HELP}")


def _index_by_name(root: Path, use_stem: bool) -> tuple[dict[str, str], set[str]]:
    """Map file stem (or name) -> path for every image under ``root``; also ambiguous keys."""
    index: dict[str, str] = {}
    ambiguous: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not is_image_file(name):
                continue
            key = os.path.splitext(name)[0] if use_stem else name
            if key in index:
                ambiguous.add(key)
            else:
                index[key] = os.path.join(dirpath, name)
    return index, ambiguous


def _parse_coordinates(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """Floats (NaN for empty or text) and a mask of cells that hold text that is not a number."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    text = (values.isna() & raw.notna()).to_numpy()
    return values.to_numpy(dtype=np.float64, na_value=np.nan), text


def read_manifest(
    path: str | os.PathLike,
    *,
    image_dir: str | os.PathLike | None = None,
    layout: Layout | Literal["auto"] = "auto",
    missing: Literal["error", "drop", "ignore"] = "error",
    validate: bool = True,
) -> SampleTable:
    """Read a CSV/Parquet manifest of images and coordinates.

    Layouts (detected from the columns unless ``layout`` is given):

    - ``osv5m``: ``id, latitude, longitude, country, region, ...``; the image is ``<id>.<ext>``
      anywhere under ``image_dir`` (OSV-5M unpacks into ``images/<split>/<nn>/``); its
      ``country`` (ISO alpha-2) becomes ``adm0_a3``.
    - ``im2gps``: ``IMG_ID, LAT, LON`` (Im2GPS3k, YFCC4k); the image is the file ``IMG_ID``
      directly in, or anywhere under, ``image_dir``.
    - ``geoclip``: ``IMG_FILE, LAT, LON`` (GeoCLIP's CSVs); the image is found as for ``im2gps``.
      GeoCLIP's loader skips rows whose image is missing without a word; here they follow
      ``missing`` (YFCC4k / yfcc25600 copies lack some images: ``missing="drop"`` keeps the
      present ones and the read report says how many were left out).
    - ``generic``: ``path, lat, lon``; ``path`` relative to ``image_dir`` (or absolute).

    Args:
        path: the manifest (``.csv``, ``.csv.gz``, ``.tsv``, ``.parquet``).
        image_dir: where image paths are resolved; default: the manifest's folder.
        missing: a row whose image does not exist raises (``"error"``), is dropped and
            reported (``"drop"``: a ``read`` step report whose ``dropped`` rows give the
            ``source_row``, the path looked for and the manifest's key), or is not checked
            (``"ignore"``, no file-system access).
        validate: raise on a bad coordinate (text, NaN, out of range, apparently swapped)
            naming the row and column; with False the values are kept (NaN for text) for
            :func:`geocell_engine.data.hygiene.clean_coordinates` to drop and report. With
            ``validate``, columns whose values are all in range but look swapped (the 2018
            Im2GPS3k CSV's header had LAT and LON exchanged) get a
            :class:`geocell.errors.SwappedCoordinatesWarning` naming them
            (:func:`geocell.plausibility.swapped_columns_check`: share of points on land read as
            given and read swapped).

    A generic manifest whose ``lat``/``lon`` columns are all empty, or that has ``path`` and
    ``adm0_a3`` but no coordinate columns (as written for an ImageFolder tree), gives a table
    with ``has_coordinates=False`` (country labels only).

    Raises:
        InputFileError, TableError: unreadable manifest.
        ManifestError: unrecognised layout, a missing image (with ``missing="error"``),
            an ambiguous file name.
        InvalidCoordinateError: a bad coordinate (with ``validate``).
    """
    path = Path(path)
    frame = read_table(path)
    source = str(path)
    if layout == "auto":
        layout, cols = detect_layout(frame.columns)
    else:
        found, cols = detect_layout(frame.columns)
        if found != layout and not (layout == "generic" and _first(_lower_map(frame.columns), PATH_NAMES)):
            raise ManifestError(f"{path}: columns {list(frame.columns)} do not fit layout {layout!r}; {_LAYOUT_HELP}")
    root = Path(image_dir) if image_dir is not None else path.parent
    root = root.resolve()
    if missing != "ignore" and not root.is_dir():
        raise InputFileError(f"{root}: image folder of {path} does not exist")
    csv = not path.name.lower().endswith((".parquet", ".pq", ".geoparquet"))

    def row_name(i: int) -> str:
        return f"{path}: row {i} (line {i + 2})" if csv else f"{path}: row {i}"

    if cols["lat"] is None:
        lat = lon = np.full(len(frame), np.nan)
        lat_text = lon_text = np.zeros(len(frame), dtype=bool)
    else:
        lat, lat_text = _parse_coordinates(frame, cols["lat"])
        lon, lon_text = _parse_coordinates(frame, cols["lon"])
    has_coordinates = not (np.isnan(lat).all() and np.isnan(lon).all() and not (lat_text.any() or lon_text.any()))
    if validate and has_coordinates:
        for col, text in ((cols["lat"], lat_text), (cols["lon"], lon_text)):
            if text.any():
                i = int(np.flatnonzero(text)[0])
                raise InvalidCoordinateError(
                    f"{row_name(i)}: column {col!r} holds {frame[col].iloc[i]!r}, which is not a number"
                    f" ({int(text.sum())} such value{'s' if text.sum() > 1 else ''} in all)"
                )
        lat, lon, _ = check_latlon(lat, lon, row_name=row_name,
                                   names=(f"column {cols['lat']!r} (latitude)", f"column {cols['lon']!r} (longitude)"))
        warn_if_swapped(lat, lon, str(cols["lat"]), str(cols["lon"]), source)

    keys = frame[cols["key"]]
    empty = keys.isna().to_numpy() | (keys.astype(str).str.strip() == "").to_numpy()
    if empty.any():
        i = int(np.flatnonzero(empty)[0])
        raise ManifestError(f"{row_name(i)}: column {cols['key']!r} is empty; every row must name its image")
    keys = keys.astype(str).str.strip().tolist()

    if layout == "generic":
        paths = [os.path.normpath(k if os.path.isabs(k) else os.path.join(root, k)) for k in keys]
    else:  # osv5m: <id>.jpg; im2gps / geoclip: the file named in the key column
        paths = [os.path.join(root, k + ".jpg" if layout == "osv5m" else k) for k in keys]

    exists = np.ones(len(paths), dtype=bool)
    if missing != "ignore":
        exists = np.fromiter((os.path.isfile(p) for p in paths), dtype=bool, count=len(paths))
        if layout != "generic" and not exists.all():
            index, ambiguous = _index_by_name(root, use_stem=layout == "osv5m")
            for i in np.flatnonzero(~exists):
                key = keys[i]
                if key in ambiguous:
                    raise ManifestError(
                        f"{row_name(int(i))}: image {key!r} matches several files under {root}; "
                        "pass image_dir to the folder that holds this split"
                    )
                if key in index:
                    paths[i] = index[key]
                    exists[i] = True

    n_missing = int((~exists).sum())
    if n_missing and missing == "error":
        i = int(np.flatnonzero(~exists)[0])
        raise ManifestError(
            f"{row_name(i)}: image {keys[i]!r} not found under {root}"
            f" ({n_missing} missing image{'s' if n_missing > 1 else ''} in all; "
            "pass missing='drop' to drop and report them)"
        )

    out = pd.DataFrame({"path": paths, "lat": lat, "lon": lon})
    if layout == "osv5m":
        country_col = _first(_lower_map(frame.columns), ("country",))
        if country_col is not None:
            from geocell_engine.data.countries import iso2_to_adm0_codes

            out["adm0_a3"] = iso2_to_adm0_codes(frame[country_col].fillna("").astype(str).to_numpy())
    keep_cols = [c for c in frame.columns if c not in (cols["lat"], cols["lon"]) and str(c) not in out.columns]
    if layout == "generic":
        keep_cols = [c for c in keep_cols if c != cols["key"]]
    for c in keep_cols:
        out[str(c)] = frame[c].to_numpy()
    out["source_row"] = np.arange(len(out), dtype=np.int64)

    table = SampleTable(out, source=source, layout=layout, has_coordinates=has_coordinates)
    if missing == "drop":
        gone = np.flatnonzero(~exists)
        dropped = StepReport.make_dropped(  # the path looked for, and the key as the manifest gives it
            gone, [paths[i] for i in gone], "missing_image", [f"image {keys[i]!r} not found under {root}" for i in gone]
        )
        report = StepReport("read", len(out), int(exists.sum()), dropped=dropped)
        table = table.subset(exists, report)
    return table


def warn_if_swapped(lat: np.ndarray, lon: np.ndarray, lat_column: str, lon_column: str, source: str) -> None:
    """Warn (:class:`geocell.errors.SwappedCoordinatesWarning`) when in-range coordinate columns look
    swapped; see :func:`geocell.plausibility.swapped_columns_check`."""
    import warnings

    from geocell.errors import SwappedCoordinatesWarning
    from geocell.plausibility import swapped_columns_check

    check = swapped_columns_check(lat, lon)
    if check.looks_swapped:
        warnings.warn(SwappedCoordinatesWarning(check.message(lat_column, lon_column, source)), stacklevel=3)


def read_image_folder(root: str | os.PathLike) -> SampleTable:
    """Read an ImageFolder tree: ``root/<country>/**/<image>``, one folder per country.

    Folder names may be country names (``France``, ``united_states``, ``Côte d'Ivoire``), ISO
    alpha-2 (``FR``) or alpha-3 / ``adm0_a3`` codes (``FRA``); they are normalised to
    ``adm0_a3``. The tree carries no coordinates, so ``lat``/``lon`` are NaN and
    ``has_coordinates`` is False: such a data set serves the country task only.

    Raises:
        InputFileError: ``root`` is not a folder.
        UnknownCountryNameError: a folder name is not a country (names the folder, suggests
            close names).
        ManifestError: no images at all.
    """
    from geocell_engine.data.countries import normalise_country

    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"{root}: no such folder")
    paths: list[str] = []
    codes: list[str] = []
    folders: list[str] = []
    stray: list[str] = []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            if is_image_file(entry.name):
                stray.append(entry.path)
            continue
        if not entry.is_dir():
            continue
        code = normalise_country(entry.name, where=f"{root}: folder {entry.name!r}")
        for dirpath, dirnames, filenames in os.walk(entry.path):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if is_image_file(name):
                    paths.append(os.path.abspath(os.path.join(dirpath, name)))
                    codes.append(code)
                    folders.append(entry.name)
    if not paths:
        raise ManifestError(f"{root}: no images found in country folders (expected {root}/<country>/<image>)")
    frame = pd.DataFrame({"path": paths, "lat": np.nan, "lon": np.nan, "adm0_a3": codes, "folder": folders})
    frame["source_row"] = np.arange(len(frame), dtype=np.int64)
    reports: tuple[StepReport, ...] = ()
    if stray:
        dropped = StepReport.make_dropped([-1] * len(stray), stray, "not_in_country_folder", str(root))
        reports = (StepReport("read", len(paths) + len(stray), len(paths), dropped=dropped),)
    return SampleTable(frame, source=str(root), layout="imagefolder", has_coordinates=False, reports=reports)


def _rational(value: Any) -> float:
    try:
        if isinstance(value, tuple) and len(value) == 2:  # (numerator, denominator)
            return float(value[0]) / float(value[1])
        return float(value)
    except (ZeroDivisionError, TypeError, ValueError) as exc:
        raise ValueError(f"bad rational {value!r}") from exc


def _dms(value: Any) -> float:
    if isinstance(value, (tuple, list)):
        parts = [_rational(v) for v in value]
        if not 1 <= len(parts) <= 3:
            raise ValueError(f"expected degrees, minutes, seconds, got {value!r}")
        parts += [0.0] * (3 - len(parts))
        return parts[0] + parts[1] / 60.0 + parts[2] / 3600.0
    return _rational(value)


def exif_gps(img: Any) -> tuple[float, float] | None:
    """(lat, lon) in degrees from a PIL image's EXIF GPS block, or None if it has none.

    Raises:
        ValueError: the GPS block is present but malformed (zero denominators, bad reference,
            out-of-range values).
    """
    gps = img.getexif().get_ifd(0x8825)
    if not gps or 2 not in gps or 4 not in gps:
        return None
    lat, lon = _dms(gps[2]), _dms(gps[4])
    lat_ref = str(gps.get(1, "N")).strip("\x00 ").upper() or "N"
    lon_ref = str(gps.get(3, "E")).strip("\x00 ").upper() or "E"
    if lat_ref not in ("N", "S") or lon_ref not in ("E", "W"):
        raise ValueError(f"bad GPS reference {lat_ref!r}/{lon_ref!r}")
    lat = -lat if lat_ref == "S" else lat
    lon = -lon if lon_ref == "W" else lon
    if not (np.isfinite(lat) and np.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"GPS position out of range: {lat!r}, {lon!r}")
    return lat, lon


def read_exif_folder(root: str | os.PathLike) -> SampleTable:
    """Build a manifest from a folder of photos (searched recursively) with GPS in their EXIF.

    Each sample gets ``lat``, ``lon`` from the GPS block, the EXIF ``orientation`` (1 if
    absent) and ``width``, ``height`` as displayed (after the orientation is applied, which is
    also how :func:`geocell_engine.data.images.open_rgb` decodes it). Photos without GPS, with malformed
    GPS, or that cannot be opened are dropped and reported.

    Raises:
        InputFileError: ``root`` is not a folder.
        ManifestError: no photo with GPS at all (the message gives the reasons).
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"{root}: no such folder")
    rows: list[dict[str, Any]] = []
    dropped_paths: list[str] = []
    reasons: list[str] = []
    details: list[str] = []
    n_seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not is_image_file(name):
                continue
            p = os.path.abspath(os.path.join(dirpath, name))
            n_seen += 1
            try:
                with Image.open(p) as img:
                    pos = exif_gps(img)
                    orientation = int(img.getexif().get(0x0112, 1) or 1)
                    w, h = img.size
            except (UnidentifiedImageError, OSError, SyntaxError) as exc:
                dropped_paths.append(p), reasons.append("unreadable"), details.append(str(exc))
                continue
            except ValueError as exc:
                dropped_paths.append(p), reasons.append("bad_gps"), details.append(str(exc))
                continue
            if pos is None:
                dropped_paths.append(p), reasons.append("no_gps"), details.append("")
                continue
            if orientation in (5, 6, 7, 8):
                w, h = h, w
            rows.append({"path": p, "lat": pos[0], "lon": pos[1], "orientation": orientation, "width": w, "height": h})
    if not rows:
        counts = pd.Series(reasons, dtype=object).value_counts().to_dict() if reasons else {}
        raise ManifestError(
            f"{root}: no photo with GPS coordinates in its EXIF among {n_seen} image"
            f"{'s' if n_seen != 1 else ''} ({', '.join(f'{v} {k}' for k, v in counts.items()) or 'no images'})"
        )
    frame = pd.DataFrame(rows)
    frame["source_row"] = np.arange(len(frame), dtype=np.int64)
    reports: tuple[StepReport, ...] = ()
    if dropped_paths:
        dropped = StepReport.make_dropped([-1] * len(dropped_paths), dropped_paths, reasons, details)
        reports = (StepReport("read", n_seen, len(rows), dropped=dropped),)
    return SampleTable(frame, source=str(root), layout="exif", has_coordinates=True, reports=reports)

