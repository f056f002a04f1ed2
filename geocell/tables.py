"""Reading and writing tables of points (CSV or Parquet) with clear errors and atomic writes.

Writes go through :func:`atomic_write`: the data goes to a hidden temporary file beside the
target, ``.<name>.<pid>@<host>.<random>.tmp``, which is renamed over the target only when
complete. A process killed mid-write (SIGKILL, power loss) cannot remove its temporary file, so
the next write of the same target removes the ones whose writer, named in the file name, is no
longer running on this host (see :func:`remove_stale_temp_files`).

Example:
    >>> import pandas as pd, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "pts.csv")
    >>> pd.DataFrame({"Latitude": [48.85], "lng": [2.35]}).to_csv(path, index=False)
    >>> points = read_points(path)
    >>> points.lat_column, points.lon_column, points.lat.tolist()
    ('Latitude', 'lng', [48.85])
"""

from __future__ import annotations

import glob
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import InputFileError, OutputFileError, TableError
from .validate import check_latlon

__all__ = [
    "table_format",
    "PointTable",
    "read_points",
    "read_table",
    "write_table",
    "atomic_write",
    "check_output_path",
    "remove_stale_temp_files",
    "LAT_NAMES",
    "LON_NAMES",
    "TABLE_SUFFIXES",
]

#: Column names recognised as latitude / longitude (case-insensitive), in order of preference.
LAT_NAMES: tuple[str, ...] = ("lat", "latitude")
LON_NAMES: tuple[str, ...] = ("lon", "lng", "longitude", "long")

_PARQUET_SUFFIXES = (".parquet", ".pq", ".geoparquet")
_CSV_SUFFIXES = (".csv", ".csv.gz", ".tsv")
#: File name endings :func:`read_table` and :func:`write_table` understand (case-insensitive).
TABLE_SUFFIXES: tuple[str, ...] = _CSV_SUFFIXES + _PARQUET_SUFFIXES


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


def _stored_columns(path: Path, kind: str) -> list[str] | None:
    """Column names as stored in the file, repeats kept (pandas renames a second CSV column
    ``lat`` to ``lat.1``, and pyarrow cannot read a Parquet file with a repeated name at all);
    None if the header cannot be read (:func:`read_table` then says why)."""
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return [str(c) for c in pq.read_schema(path).names]
        sep = "\t" if path.name.lower().endswith(".tsv") else ","
        header = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
        return [str(c) for c in header.iloc[0].tolist()]
    except Exception:  # noqa: BLE001 - the readers raise many types; read_table reports the problem
        return None


def _find_column(columns: Sequence[str], names: tuple[str, ...], what: str, path: Path) -> str:
    """The one column whose name (stripped, any case) is in ``names``; TableError if there is
    none, or several (a repeated name or two accepted spellings), naming them."""
    matches = [(k, c) for k, c in enumerate(columns) if str(c).strip().lower() in names]
    if len(matches) == 1:
        return matches[0][1]
    if not matches:
        raise TableError(
            f"{path}: no {what} column; expected one of {', '.join(names)} (any case); "
            f"found columns: {', '.join(map(str, columns))}"
        )
    listed = ", ".join(f"{c!r} (column {k + 1})" for k, c in matches)
    raise TableError(
        f"{path}: {len(matches)} {what} columns: {listed}; expected exactly one of {', '.join(names)} "
        f"(any case): rename or drop the others"
    )


def _numeric_column(frame: pd.DataFrame, column: str, path: Path, row_name: Callable[[int], str]) -> np.ndarray:
    raw = frame[column]
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise TableError(
            f"{path}: column {column!r} holds booleans (dtype {raw.dtype}); expected numbers in degrees"
        )
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
    ``lon``/``lng``/``longitude``/``long``. Exactly one of each must be present: a repeated
    name (``lat`` twice) or two spellings (``lat`` and ``Latitude``) are refused rather than
    guessed between, and so is a boolean column. The coordinate columns are found from the
    file's header before the rows are read. Error messages name the data row (0-based) and, for
    CSV, the line of the file (1-based, the header is line 1).

    Raises:
        InputFileError, TableError, InvalidCoordinateError: with the file, column and row named.
    """
    path = Path(path)
    kind = table_format(path)
    csv = kind == "csv"
    stored = _stored_columns(path, kind) if path.is_file() else None
    if stored is not None:
        _find_column(stored, LAT_NAMES, "latitude", path)
        _find_column(stored, LON_NAMES, "longitude", path)
    frame = read_table(path)

    def row_name(i: int) -> str:
        return f"row {i} (line {i + 2})" if csv else f"row {i}"

    lat_col = _find_column(list(frame.columns), LAT_NAMES, "latitude", path)
    lon_col = _find_column(list(frame.columns), LON_NAMES, "longitude", path)
    lat = _numeric_column(frame, lat_col, path, row_name)
    lon = _numeric_column(frame, lon_col, path, row_name)
    try:
        lat, lon, n_wrapped = check_latlon(lat, lon, row_name=row_name)
    except ValueError as exc:
        raise type(exc)(f"{path}: {exc}") from exc
    return PointTable(frame, lat, lon, lat_col, lon_col, n_wrapped)


def check_output_path(
    path: str | os.PathLike,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    suffixes: Sequence[str] = TABLE_SUFFIXES,
    what: str = "output",
) -> Path:
    """Refuse an output path before any work is done.

    Args:
        path: the file to be written.
        inputs: files the same command reads; writing over one of them is refused (compared
            after resolving symbolic links and ``..``; hard links to an existing file too).
        suffixes: accepted name endings, case-insensitive (by default the table formats).
        what: how messages call the path (e.g. "--out").

    Returns:
        ``path`` as a Path.

    Raises:
        OutputFileError: the path is an existing folder, one of ``inputs``, or does not end in
            one of ``suffixes``.

    Example:
        >>> check_output_path("labels.csv.gz", inputs=["points.csv"]).name
        'labels.csv.gz'
    """
    path = Path(path)
    if not path.name.lower().endswith(tuple(s.lower() for s in suffixes)):
        raise OutputFileError(
            f"{what} {path}: unknown output format; expected a name ending in {', '.join(suffixes)}"
        )
    if path.is_dir():
        raise OutputFileError(f"{what} {path} is a folder; expected a file name")
    for source in inputs:
        source = Path(source)
        same = path.resolve() == source.resolve()
        if not same and path.exists() and source.exists():
            same = os.path.samefile(path, source)
        if same:
            raise OutputFileError(
                f"{what} {path} is the input file {source}; writing it would replace the input: "
                "choose another output name"
            )
    return path


def _host_tag() -> str:
    """This machine's name as it appears in temporary file names (letters, digits and '-')."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:32] or "host"


def _pid_running(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (True when that cannot be told)."""
    if os.name != "posix":  # os.kill(pid, 0) would signal the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    except OSError:
        return True  # cannot tell: keep the file
    return True


def remove_stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that interrupted :func:`atomic_write` calls left for ``path``.

    A temporary file ``.<name>.<pid>@<host>.<random>.tmp`` is stale when ``<host>`` is this
    machine and process ``<pid>`` is not running: its write can never finish (the rename is
    the last step). Files of a live process (a concurrent write of the same target), of
    another host (a shared folder: its processes cannot be checked from here) and files not
    made by :func:`atomic_write` are left alone. Runs on every :func:`atomic_write`.

    Returns:
        The files removed.
    """
    path = Path(path)
    pattern = re.compile(r"\.(?P<name>.+)\.(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]+)\.[^./]+\.tmp")
    host = _host_tag()
    removed = []
    try:
        candidates = list(path.parent.glob(f".{glob.escape(path.name)}.*@*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        m = pattern.fullmatch(tmp.name)
        if m is None or m["name"] != path.name or m["host"] != host:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or _pid_running(pid):
            continue
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass  # another writer cleaned it first
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it into place.

    A failure or an interruption leaves ``path`` as it was (absent or the previous version), and
    removes the temporary file. A kill that gives no chance to remove it leaves
    ``.<name>.<pid>@<host>.<random>.tmp``, which the next write of ``path`` removes
    (:func:`remove_stale_temp_files`).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}@{_host_tag()}.", suffix=".tmp", dir=path.parent)
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
