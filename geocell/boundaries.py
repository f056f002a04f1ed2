"""Natural Earth admin-0 (country) and admin-1 (state / province) polygons, shipped offline.

The package ships one file, ``geocell/data/admin1.parquet``: the 4,596 units of Natural Earth's
10m admin-1 layer, simplified together with ``shapely.coverage_simplify`` (0.01 deg by default;
shared borders stay shared), built by ``scripts/build_boundaries.py``, which records its
provenance in the Parquet metadata (see :func:`boundaries_info`). Admin-0 is the dissolve of
admin-1 on ``adm0_a3``, computed when first loaded (about 0.3 s), so the layers nest exactly.
Loads are cached per process (keyed by path, modification time and size); each call returns a
fresh copy, so callers may modify what they get.

Countries are keyed by Natural Earth's ``adm0_a3``, never by ``iso_a2`` (12 units have none).
``geocell/data/country_codes.csv`` relates the two; :func:`iso2_to_adm0` makes GeoNames /
ISO 3166-1 codes comparable with ``adm0_a3`` labels (GeoNames' GF, GP, MQ, RE, YT map to FRA:
Natural Earth files the French overseas departments as admin-1 units of France).

Example:
    >>> from geocell.boundaries import load_admin1, load_admin0, iso2_to_adm0
    >>> admin1 = load_admin1()
    >>> admin1.loc[admin1.adm1_code == "FRA-5333", "name"].item()
    'Paris'
    >>> iso2_to_adm0(["FR", "GF", "US"]).tolist()
    ['FRA', 'FRA', 'USA']
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from .errors import (
    BoundaryFileError,
    BoundaryFileNotFoundError,
    MissingColumnsError,
    UnknownCountryCodeError,
)

__all__ = [
    "BoundaryFileError",
    "BoundaryFileNotFoundError",
    "MissingColumnsError",
    "UnknownCountryCodeError",
    "BoundariesInfo",
    "load_admin1",
    "load_admin0",
    "boundaries_info",
    "country_codes",
    "iso2_to_adm0",
    "adm0_to_iso2",
    "same_country",
    "default_admin1_path",
    "polygonal_parts",
]

#: Columns every admin-1 file must have (Natural Earth names, matched case-insensitively).
REQUIRED_COLUMNS: tuple[str, ...] = ("adm1_code", "adm0_a3", "admin", "name", "iso_a2")
#: Columns the build keeps, in order (all text): unit code and names, ISO 3166-2, the GeoNames
#: admin-1 code ("FR.75"), country code and name, Natural Earth's iso_a2, map-unit code and name.
ADMIN1_COLUMNS: tuple[str, ...] = (
    "adm1_code", "name", "name_en", "type_en", "iso_3166_2", "gn_a1_code",
    "adm0_a3", "admin", "iso_a2", "gu_a3", "geonunit",
)
#: Columns of country_codes.csv.
CODES_COLUMNS: tuple[str, ...] = ("iso_a2", "adm0_a3", "name", "to_adm0", "to_iso2", "source", "note")
#: Parquet key-value metadata key written by scripts/build_boundaries.py.
METADATA_KEY = b"geocell.boundaries"
#: Version of the metadata layout.
FORMAT_VERSION = 1

_POLYGONAL = (3, 6)  # shapely type ids of Polygon and MultiPolygon
_ADMIN1_FILE = "admin1.parquet"
_CODES_FILE = "country_codes.csv"


@dataclass(frozen=True)
class BoundariesInfo:
    """Provenance of a boundary file, as recorded by scripts/build_boundaries.py.

    Attributes:
        path: the file.
        natural_earth_version: Natural Earth release (``"5.x"`` when the source did not say).
        natural_earth_layer: ``"ne_10m_admin_1_states_provinces"``.
        source_file, source_sha256: name and SHA-256 of the file the build read.
        tolerance_deg: ``coverage_simplify`` tolerance, degrees (0 = not simplified).
        feature_count: admin-1 units; country_count: distinct ``adm0_a3``.
        vertex_count: coordinates stored.
        invalid_in_source: source polygons repaired with ``make_valid`` before simplifying.
        fixed_after_simplify: simplified polygons that were invalid or empty and were repaired.
        coverage_valid: the polygons form a valid coverage (no gaps/overlaps along borders).
        built_with: library versions used by the build.
    """

    path: Path
    natural_earth_version: str
    natural_earth_layer: str
    source_file: str
    source_sha256: str
    tolerance_deg: float
    feature_count: int
    country_count: int
    vertex_count: int
    invalid_in_source: int
    fixed_after_simplify: int
    coverage_valid: bool
    built_with: str


# ----------------------------------------------------------------------------------- paths
def default_admin1_path() -> Path:
    """Path of the shipped admin-1 GeoParquet (``geocell/data/admin1.parquet``)."""
    return Path(str(files("geocell").joinpath("data", _ADMIN1_FILE)))


def _resolve(path: str | os.PathLike | None) -> tuple[str, int, int]:
    """(absolute path, mtime_ns, size): the cache key of a file; raises if it is missing."""
    p = default_admin1_path() if path is None else Path(path).expanduser()
    try:
        st = p.stat()
    except FileNotFoundError:
        hint = " (the shipped file: rebuild it with scripts/build_boundaries.py)" if path is None else ""
        raise BoundaryFileNotFoundError(f"{p}: no such boundary file{hint}") from None
    if not p.is_file():
        raise BoundaryFileError(f"{p}: not a file")
    return str(p.resolve()), st.st_mtime_ns, st.st_size


# ----------------------------------------------------------------------------------- loading
def _read_any(path: Path):
    import geopandas as gpd

    try:
        if path.suffix.lower() in (".parquet", ".geoparquet", ".pq"):
            return gpd.read_parquet(path)
        return gpd.read_file(path)
    except Exception as exc:  # the readers raise many unrelated types
        raise BoundaryFileError(f"{path}: cannot read as a vector file ({type(exc).__name__}: {exc})") from exc


@functools.lru_cache(maxsize=4)
def _admin1_cached(path: str, mtime_ns: int, size: int):
    import geopandas as gpd
    import shapely

    p = Path(path)
    gdf = _read_any(p)
    if gdf.geometry.name != "geometry":
        gdf = gdf.rename_geometry("geometry")
    gdf = gdf.rename(columns={c: c.lower() for c in gdf.columns if c != "geometry"})
    missing = [c for c in REQUIRED_COLUMNS if c not in gdf.columns]
    if missing:
        raise MissingColumnsError(p, missing, [c for c in gdf.columns if c != "geometry"], REQUIRED_COLUMNS)
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    elif not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs(4326)
    geoms = np.asarray(gdf.geometry.array)
    bad_type = ~np.isin(shapely.get_type_id(geoms), _POLYGONAL) & ~shapely.is_missing(geoms)
    if bad_type.any():
        i = int(np.flatnonzero(bad_type)[0])
        raise BoundaryFileError(
            f"{p}: row {i} ({gdf['adm1_code'].iloc[i]}) is a {geoms[i].geom_type}; "
            "expected Polygon or MultiPolygon"
        )
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    if invalid.any():  # the full-resolution Natural Earth layer has one (BRA-1294)
        geoms = geoms.copy()
        geoms[invalid] = polygonal_parts(shapely.make_valid(geoms[invalid], method="structure"))
        gdf["geometry"] = gpd.GeoSeries(geoms, index=gdf.index, crs=4326)
    for c in REQUIRED_COLUMNS:
        gdf[c] = gdf[c].fillna("").astype(str)
    return gdf.reset_index(drop=True)


def polygonal_parts(geoms: np.ndarray) -> np.ndarray:
    """Each geometry reduced to its Polygon parts (``make_valid`` may add lines or points);
    an empty Polygon where nothing polygonal is left. ``(K,)`` object array in, same out."""
    import shapely

    out = np.array(geoms, dtype=object)
    for i in np.flatnonzero(~np.isin(shapely.get_type_id(out), _POLYGONAL)):  # rare: a few rows
        parts = shapely.get_parts(out[i])
        parts = parts[np.isin(shapely.get_type_id(parts), _POLYGONAL)]
        out[i] = shapely.union_all(parts) if len(parts) else shapely.Polygon()
    return out


def load_admin1(path: str | os.PathLike | None = None):
    """Admin-1 polygons as a GeoDataFrame in EPSG:4326 (lon/lat degrees), one row per unit.

    Args:
        path: ``None`` for the shipped simplified layer, or any file geopandas reads with the
            Natural Earth admin-1 schema (e.g. the full-resolution ``.shp`` / ``.zip`` / GeoJSON);
            column names are matched case-insensitively and lower-cased. Invalid polygons are
            repaired with ``make_valid``; another CRS is reprojected to EPSG:4326 and a file
            without one is taken to be EPSG:4326.

    Returns:
        GeoDataFrame with at least ``adm1_code, adm0_a3, admin, name, iso_a2, geometry``
        (the shipped file also has ``name_en, type_en, iso_3166_2, gn_a1_code, gu_a3,
        geonunit``), text columns as ``str`` with ``""`` for missing values.

    Raises:
        BoundaryFileNotFoundError: the file does not exist.
        MissingColumnsError: required columns are missing (named in the message).
        BoundaryFileError: the file cannot be read or holds non-polygon geometries.

    Example:
        >>> admin1 = load_admin1()
        >>> len(admin1), admin1.crs.to_epsg()
        (4596, 4326)
    """
    return _admin1_cached(*_resolve(path)).copy()


def _dissolve_groups(geoms: np.ndarray, keys: np.ndarray, coverage: bool) -> tuple[np.ndarray, np.ndarray]:
    """Union ``geoms`` per distinct key: (sorted keys, merged geometries)."""
    import shapely

    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    ends = np.r_[starts[1:], len(order)]
    union = shapely.coverage_union_all if coverage else shapely.union_all
    merged = np.array([union(geoms[order[s:e]]) for s, e in zip(starts, ends)], dtype=object)
    return sorted_keys[starts], merged


@functools.lru_cache(maxsize=4)
def _admin0_cached(path: str, mtime_ns: int, size: int):
    import geopandas as gpd
    import shapely

    admin1 = _admin1_cached(path, mtime_ns, size)
    geoms = np.asarray(admin1.geometry.array)
    info = _read_info(Path(path))
    # coverage_union is ~10x faster than union_all but needs a valid coverage (shared borders,
    # no overlaps); the build records that for the shipped file, other files are checked.
    coverage = info.coverage_valid if info is not None else bool(shapely.coverage_is_valid(geoms))
    keys, merged = _dissolve_groups(geoms, admin1["adm0_a3"].to_numpy(dtype=str), coverage)
    # country names from the code table (where PSX is "Palestine", not "Gaza Strip"), else the
    # most common ``admin`` value of the units (codes the table does not know)
    table = _codes_cached()[0]
    names = dict(zip(table.loc[table.to_iso2, "adm0_a3"], table.loc[table.to_iso2, "name"]))
    common = admin1.groupby("adm0_a3")["admin"].agg(lambda s: s.value_counts().index[0])
    admin = np.array([names.get(k, common[k]) for k in keys], dtype=object)
    iso = adm0_to_iso2(keys, strict=False)
    frame = {"adm0_a3": keys, "admin": admin, "iso_a2": iso}
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(merged, crs=4326))


def load_admin0(path: str | os.PathLike | None = None):
    """Country polygons: admin-1 dissolved on ``adm0_a3``, so both layers nest exactly.

    Args:
        path: the admin-1 file to dissolve (see :func:`load_admin1`); ``None`` = shipped file.

    Returns:
        GeoDataFrame in EPSG:4326, one row per ``adm0_a3`` sorted by it, with columns
        ``adm0_a3``, ``admin`` (country name), ``iso_a2`` (from :func:`adm0_to_iso2`; ``""``
        where there is no single ISO code) and ``geometry``.

    Example:
        >>> admin0 = load_admin0()
        >>> admin0.loc[admin0.adm0_a3 == "FRA", ["admin", "iso_a2"]].values.tolist()
        [['France', 'FR']]
    """
    return _admin0_cached(*_resolve(path)).copy()


# ----------------------------------------------------------------------------------- metadata
def _read_info(path: Path) -> BoundariesInfo | None:
    import pyarrow.parquet as pq

    if path.suffix.lower() not in (".parquet", ".geoparquet", ".pq"):
        return None
    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception as exc:
        raise BoundaryFileError(f"{path}: cannot read the Parquet schema ({exc})") from exc
    if METADATA_KEY not in meta:
        return None
    try:
        raw = json.loads(meta[METADATA_KEY])
        return BoundariesInfo(
            path=path,
            natural_earth_version=str(raw["natural_earth_version"]),
            natural_earth_layer=str(raw["natural_earth_layer"]),
            source_file=str(raw["source_file"]),
            source_sha256=str(raw["source_sha256"]),
            tolerance_deg=float(raw["tolerance_deg"]),
            feature_count=int(raw["feature_count"]),
            country_count=int(raw["country_count"]),
            vertex_count=int(raw["vertex_count"]),
            invalid_in_source=int(raw["invalid_in_source"]),
            fixed_after_simplify=int(raw["fixed_after_simplify"]),
            coverage_valid=bool(raw["coverage_valid"]),
            built_with=str(raw["built_with"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BoundaryFileError(f"{path}: malformed {METADATA_KEY.decode()} metadata ({exc!r})") from exc


def boundaries_info(path: str | os.PathLike | None = None) -> BoundariesInfo:
    """The build metadata of a boundary GeoParquet (the shipped one by default).

    Raises:
        BoundaryFileError: the file was not written by scripts/build_boundaries.py.

    Example:
        >>> info = boundaries_info()
        >>> info.feature_count, info.tolerance_deg
        (4596, 0.01)
    """
    resolved, _, _ = _resolve(path)
    info = _read_info(Path(resolved))
    if info is None:
        raise BoundaryFileError(
            f"{resolved}: no {METADATA_KEY.decode()} metadata; only GeoParquet files written by "
            "scripts/build_boundaries.py carry it"
        )
    return info


# ----------------------------------------------------------------------------------- codes
@functools.lru_cache(maxsize=1)
def _codes_cached():
    import pandas as pd

    path = Path(str(files("geocell").joinpath("data", _CODES_FILE)))
    if not path.is_file():
        raise BoundaryFileNotFoundError(f"{path}: no such file (rebuild with scripts/build_boundaries.py)")
    # keep_default_na=False: "NA" is Namibia, "" means "no ISO code"
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("to_adm0", "to_iso2"):
        table[col] = table[col].map({"True": True, "False": False})
    to_adm0 = dict(zip(table.loc[table.to_adm0, "iso_a2"], table.loc[table.to_adm0, "adm0_a3"]))
    to_iso2 = dict(zip(table.loc[table.to_iso2, "adm0_a3"], table.loc[table.to_iso2, "iso_a2"]))
    pairs = frozenset(zip(table["iso_a2"], table["adm0_a3"]))
    return table, to_adm0, to_iso2, pairs


def country_codes():
    """The ``adm0_a3`` <-> ISO 3166-1 alpha-2 table (``geocell/data/country_codes.csv``).

    A relation, one row per (iso_a2, adm0_a3) pair that denotes the same territory, with
    columns ``iso_a2, adm0_a3, name, to_adm0, to_iso2, source, note``. ``to_iso2`` marks the one
    row per ``adm0_a3`` that :func:`adm0_to_iso2` uses, ``to_adm0`` the one row per ``iso_a2``
    that :func:`iso2_to_adm0` uses. ``source`` is ``natural_earth`` (Natural Earth's own
    ``iso_a2``), ``decision`` (Natural Earth has ``-1``; ``note`` says what we chose and why) or
    ``territory`` (an ISO/GeoNames code of a territory Natural Earth files under another
    ``adm0_a3``, e.g. GF -> FRA).

    Example:
        >>> t = country_codes()
        >>> t.loc[t.iso_a2 == "GF", ["adm0_a3", "to_adm0", "to_iso2"]].values.tolist()
        [['FRA', True, False]]
    """
    return _codes_cached()[0].copy()


def _map_codes(codes: Any, mapping: dict[str, str], strict: bool, what: str, width: int):
    scalar = np.ndim(codes) == 0
    arr = np.asarray(codes)
    if arr.dtype.kind != "U":
        arr = arr.astype(str)  # None / numbers become their text and fail the lookup
    flat = arr.reshape(-1)
    uniq, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.reshape(-1)
    found = np.array([u in mapping or u == "" for u in uniq], dtype=bool)
    if strict and not found.all():
        bad = [str(u) for u in uniq[~found]]
        first = int(np.flatnonzero(np.isin(inverse, np.flatnonzero(~found)))[0])
        raise UnknownCountryCodeError(
            f"index {first}: unknown {what} code {str(flat[first])!r}"
            f" ({len(bad)} unknown value{'s' if len(bad) > 1 else ''}: {', '.join(map(repr, bad[:5]))}"
            f"{', ...' if len(bad) > 5 else ''}); see geocell.boundaries.country_codes()"
        )
    out_uniq = np.array([mapping.get(u, "") for u in uniq], dtype=f"<U{width}")
    out = out_uniq[inverse].reshape(arr.shape)
    return str(out) if scalar else out


def iso2_to_adm0(codes: Any, *, strict: bool = True):
    """ISO 3166-1 alpha-2 / GeoNames country codes -> Natural Earth ``adm0_a3``.

    Args:
        codes: a str or array-like of str, any shape (upper case, e.g. ``"FR"``).
        strict: raise for unknown codes; if False they map to ``""``. ``""`` maps to ``""``.

    Returns:
        ``<U3`` array of the input's shape (a str for a str input).

    Raises:
        UnknownCountryCodeError: (strict) naming the first unknown code and its index.

    Example:
        >>> iso2_to_adm0(["GF", "NA", "XK"]).tolist()
        ['FRA', 'NAM', 'KOS']
    """
    return _map_codes(codes, _codes_cached()[1], strict, "ISO 3166-1 alpha-2", 3)


def adm0_to_iso2(codes: Any, *, strict: bool = True):
    """Natural Earth ``adm0_a3`` -> ISO 3166-1 alpha-2 country codes.

    Args:
        codes: a str or array-like of str, any shape.
        strict: raise for unknown codes; if False they map to ``""``. ``""`` maps to ``""``.

    Returns:
        ``<U2`` array of the input's shape (a str for a str input); ``""`` for the units with
        no single ISO code (KAS, PGA, IOA: see :func:`country_codes`).

    Raises:
        UnknownCountryCodeError: (strict) naming the first unknown code and its index.

    Example:
        >>> adm0_to_iso2(["FRA", "SOL", "IOA"]).tolist()
        ['FR', 'SO', '']
    """
    return _map_codes(codes, _codes_cached()[2], strict, "adm0_a3", 2)


def same_country(iso_a2: Any, adm0_a3: Any):
    """True where an ISO/GeoNames code and an ``adm0_a3`` denote the same territory.

    Uses every row of :func:`country_codes`, so it is symmetric in the two conventions:
    ``("GF", "FRA")`` and ``("SO", "SOL")`` are both True, although iso2_to_adm0("SO") is
    "SOM". Broadcasts like numpy; ``""`` never matches.

    Example:
        >>> same_country(["GF", "SO", "FR"], ["FRA", "SOL", "DEU"]).tolist()
        [True, True, False]
    """
    pairs = _codes_cached()[3]
    a, b = np.broadcast_arrays(np.asarray(iso_a2, dtype=object), np.asarray(adm0_a3, dtype=object))
    keys = np.char.add(np.char.add(a.astype(str), "|"), b.astype(str))
    valid = np.array(sorted(f"{i}|{c}" for i, c in pairs if i and c))
    out = np.isin(keys, valid)
    return bool(out) if out.ndim == 0 else out
