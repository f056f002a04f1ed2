"""Reading and writing tables of points (CSV or Parquet) with clear errors and atomic writes.

Example:
    >>> import pandas as pd, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "pts.csv")
    >>> pd.DataFrame({"Latitude": [48.85], "lng": [2.35]}).to_csv(path, index=False)
    >>> points = read_points(path)
    >>> points.lat_column, points.lon_column, points.lat.tolist()
    ('Latitude', 'lng', [48.85])
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .errors import InputFileError, TableError
from .validate import check_latlon

__all__ = ["table_format", "PointTable", "read_points", "read_table", "write_table", "atomic_write", "LAT_NAMES", "LON_NAMES"]

#: Column names recognised as latitude / longitude (case-insensitive), in order of preference.
LAT_NAMES: tuple[str, ...] = ("lat", "latitude")
LON_NAMES: tuple[str, ...] = ("lon", "lng", "longitude", "long")

_PARQUET_SUFFIXES = (".parquet", ".pq", ".geoparquet")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")


def table_format(path: Path) -> str:
    """'csv' or 'parquet' from a file name; TableError for anything else."""
    name = path.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    raise TableError(
        f"{path}: unknown table format; expected a name ending in one of "
        f"{', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)}"
    )


def read_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a CSV (comma or tab separated) or Parquet file; every column is kept as read.

    Raises:
        InputFileError: the file does not exist or cannot be read.
        TableError: unknown format, empty file, or a file with a header but no rows.
    """
    path = Path(path)
    kind = table_format(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            sep = "\t" if path.name.lower().endswith(".tsv") else ","
            frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError as exc:
        raise TableError(f"{path}: the file is empty; expected a header line and rows") from exc
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise TableError(f"{path}: cannot be read as {kind}: {exc}") from exc
    if len(frame) == 0:
        raise TableError(f"{path}: the table has columns {list(frame.columns)} but no rows")
    return frame


def _find_column(frame: pd.DataFrame, names: tuple[str, ...], what: str, path: Path) -> str:
    by_lower = {str(c).strip().lower(): c for c in frame.columns}
    for name in names:
        if name in by_lower:
            return by_lower[name]
    raise TableError(
        f"{path}: no {what} column; expected one of {', '.join(names)} (any case); "
        f"found columns: {', '.join(map(str, frame.columns))}"
    )


def _numeric_column(frame: pd.DataFrame, column: str, path: Path, row_name: Callable[[int], str]) -> np.ndarray:
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce")
    text = values.isna() & raw.notna()
    if text.any():
        i = int(np.flatnonzero(text.to_numpy())[0])
        raise TableError(
            f"{path}: {row_name(i)}: column {column!r} holds {raw.iloc[i]!r}, which is not a number"
            f" ({int(text.sum())} such value{'s' if text.sum() > 1 else ''} in all)"
        )
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


@dataclass(frozen=True)
class PointTable:
    """A table of points with validated coordinates.

    Attributes:
        frame: the table as read (all columns).
        lat, lon: ``(N,)`` float64 degrees; longitudes normalised to [-180, 180].
        lat_column, lon_column: the columns the coordinates came from.
        n_wrapped_lon: how many longitudes were given in (180, 360] and normalised.
    """

    frame: pd.DataFrame
    lat: np.ndarray
    lon: np.ndarray
    lat_column: str
    lon_column: str
    n_wrapped_lon: int


def read_points(path: str | os.PathLike) -> PointTable:
    """Read a CSV/Parquet table and validate its coordinate columns.

    Columns are detected case-insensitively: latitude from ``lat``/``latitude``, longitude from
    ``lon``/``lng``/``longitude``/``long``. Error messages name the data row (0-based) and, for
    CSV, the line of the file (1-based, the header is line 1).

    Raises:
        InputFileError, TableError, InvalidCoordinateError: with the file, column and row named.
    """
    path = Path(path)
    frame = read_table(path)
    csv = table_format(path) == "csv"

    def row_name(i: int) -> str:
        return f"row {i} (line {i + 2})" if csv else f"row {i}"

    lat_col = _find_column(frame, LAT_NAMES, "latitude", path)
    lon_col = _find_column(frame, LON_NAMES, "longitude", path)
    lat = _numeric_column(frame, lat_col, path, row_name)
    lon = _numeric_column(frame, lon_col, path, row_name)
    try:
        lat, lon, n_wrapped = check_latlon(lat, lon, row_name=row_name)
    except ValueError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    return PointTable(frame, lat, lon, lat_col, lon_col, n_wrapped)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    A failure or an interruption leaves ``path`` as it was (absent or the previous version).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the file normal permissions
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a DataFrame as CSV (``,``; ``.tsv``: tab; ``.gz``: gzip) or Parquet, atomically.

    The same frame always gives the same bytes: ``\\n`` line ends and a zero gzip timestamp, so
    a manifest's sha256 identifies its content.
    """
    path = Path(path)
    kind = table_format(path)
    name = path.name.lower()

    def write(tmp: Path) -> None:
        if kind == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(
                tmp,
                index=False,
                sep="\t" if name.endswith(".tsv") else ",",
                lineterminator="\n",
                compression={"method": "gzip", "mtime": 0} if name.endswith(".gz") else None,
            )

    return atomic_write(path, write)
