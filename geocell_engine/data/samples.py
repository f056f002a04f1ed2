"""The table of samples every reader returns and every hygiene step takes, and step reports.

A :class:`SampleTable` wraps a DataFrame whose first columns are ``path`` (absolute image path),
``lat`` and ``lon`` (float64 degrees, NaN where the source has no coordinates), then the label
columns the source carries (``adm0_a3``, ...), then the other source columns; ``source_row`` is
the 0-based data row of the source file, so messages can name it. A :class:`StepReport` says what a
step dropped (or converted) and why, with the thresholds it used.

Example:
    >>> import pandas as pd
    >>> t = SampleTable.from_columns(["/a.jpg", "/b.jpg"], [1.0, 2.0], [3.0, 4.0], source="demo")
    >>> len(t), t.lat.tolist()
    (2, [1.0, 2.0])
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from geocell.tables import atomic_write

__all__ = [
    "SampleTable",
    "StepReport",
    "CORE_COLUMNS",
    "LABEL_COLUMNS",
    "write_manifest",
    "sha256_file",
    "format_reports",
    "source_row_name",
]

#: Columns every SampleTable starts with.
CORE_COLUMNS: tuple[str, ...] = ("path", "lat", "lon")
#: Label columns, in this order after the core columns when present.
LABEL_COLUMNS: tuple[str, ...] = ("adm0_a3", "adm1_code")
#: Decimals of coordinates written to manifests (1e-6 deg is about 0.1 m): stable bytes, stable hashes.
COORD_DECIMALS = 6

_DROPPED_COLUMNS = ("source_row", "path", "reason", "detail")


def _empty_dropped() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="int64" if c == "source_row" else "object") for c in _DROPPED_COLUMNS})


@dataclass(frozen=True, eq=False)
class StepReport:
    """What one reading or hygiene step did.

    Attributes:
        step: the step's name (``"coordinates"``, ``"duplicates"``, ``"images"``, ...).
        n_in, n_out: rows before and after.
        dropped: one row per dropped sample: ``source_row``, ``path``, ``reason`` (a short
            keyword such as ``"swapped_latlon"``), ``detail`` (the value that caused it).
        converted: reason -> number of samples kept after a conversion (e.g. ``"cmyk"``).
        thresholds: the numbers the step compared against, for the record.
    """

    step: str
    n_in: int
    n_out: int
    dropped: pd.DataFrame = field(default_factory=_empty_dropped)
    converted: Mapping[str, int] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Dropped samples per reason, largest first."""
        if len(self.dropped) == 0:
            return {}
        vc = self.dropped["reason"].value_counts(sort=False)
        return {str(k): int(v) for k, v in sorted(vc.items(), key=lambda kv: (-kv[1], kv[0]))}

    def summary(self) -> str:
        """One line: ``step: n_in -> n_out (dropped ...; converted ...; thresholds ...)``."""
        parts = []
        counts = self.counts()
        if counts:
            parts.append("dropped " + ", ".join(f"{n} {r}" for r, n in counts.items()))
        if self.converted:
            parts.append("converted " + ", ".join(f"{n} {r}" for r, n in self.converted.items() if n))
        if self.thresholds:
            parts.append("thresholds " + ", ".join(f"{k}={v:g}" for k, v in self.thresholds.items()))
        tail = f" ({'; '.join(parts)})" if parts else ""
        return f"{self.step}: {self.n_in} -> {self.n_out}{tail}"

    def to_dict(self, max_examples: int = 20) -> dict[str, Any]:
        """JSON-ready form: counts, conversions, thresholds and the first dropped rows."""
        examples = self.dropped.head(max_examples)
        return {
            "step": self.step,
            "n_in": self.n_in,
            "n_out": self.n_out,
            "dropped": self.counts(),
            "converted": {k: int(v) for k, v in self.converted.items()},
            "thresholds": {k: float(v) for k, v in self.thresholds.items()},
            "examples": [
                {"source_row": int(r.source_row), "path": str(r.path), "reason": str(r.reason), "detail": str(r.detail)}
                for r in examples.itertuples(index=False)
            ],
        }

    @staticmethod
    def make_dropped(
        source_rows: Iterable[int], paths: Iterable[Any], reasons: Iterable[str] | str, details: Iterable[Any] | str = ""
    ) -> pd.DataFrame:
        rows = np.asarray(list(source_rows), dtype=np.int64)
        n = rows.size
        reasons = [reasons] * n if isinstance(reasons, str) else list(reasons)
        details = [details] * n if isinstance(details, str) else [str(d) for d in details]
        return pd.DataFrame(
            {"source_row": rows, "path": [str(p) for p in paths], "reason": reasons, "detail": details}
        )


def source_row_name(source: str | os.PathLike, row: int) -> str:
    """How messages name 0-based data row ``row`` of ``source``: ``"m.csv: row 3 (line 5)"`` for a
    CSV/TSV (line 1 is the header), ``"m.parquet: row 3"`` otherwise."""
    source = str(source)
    csv = source.lower().endswith((".csv", ".csv.gz", ".tsv"))
    return f"{source}: row {row} (line {row + 2})" if csv else f"{source}: row {row}"


def format_reports(reports: Sequence[StepReport]) -> str:
    """Step summaries, one per line."""
    return "\n".join(r.summary() for r in reports)


@dataclass(frozen=True, eq=False)
class SampleTable:
    """Samples (image path, coordinates, labels) from a user's data set.

    Attributes:
        frame: ``path`` (absolute), ``lat``, ``lon`` (float64, NaN when absent), label columns,
            other source columns, and ``source_row`` (0-based data row of the source).
        source: the manifest file or folder it was read from.
        layout: ``"osv5m"``, ``"im2gps"``, ``"generic"``, ``"imagefolder"`` or ``"exif"``.
        has_coordinates: False for an ImageFolder tree (country labels only).
        reports: what reading dropped (e.g. missing images, photos without GPS).
    """

    frame: pd.DataFrame
    source: str = ""
    layout: str = "generic"
    has_coordinates: bool = True
    reports: tuple[StepReport, ...] = ()

    def __post_init__(self) -> None:
        missing = [c for c in CORE_COLUMNS + ("source_row",) if c not in self.frame.columns]
        if missing:
            raise ValueError(f"a SampleTable frame needs the columns {missing}")

    @classmethod
    def from_columns(
        cls,
        path: Sequence[str],
        lat: Any,
        lon: Any,
        *,
        source: str = "",
        layout: str = "generic",
        **columns: Any,
    ) -> "SampleTable":
        frame = pd.DataFrame({"path": [str(p) for p in path]})
        frame["lat"] = np.asarray(lat, dtype=np.float64)
        frame["lon"] = np.asarray(lon, dtype=np.float64)
        for name, values in columns.items():
            frame[name] = list(values)
        frame["source_row"] = np.arange(len(frame), dtype=np.int64)
        return cls(frame, source=source, layout=layout)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def paths(self) -> list[str]:
        return self.frame["path"].tolist()

    @property
    def lat(self) -> np.ndarray:
        return self.frame["lat"].to_numpy(dtype=np.float64)

    @property
    def lon(self) -> np.ndarray:
        return self.frame["lon"].to_numpy(dtype=np.float64)

    def row_name(self, i: int) -> str:
        """How messages name data row ``i`` of the source."""
        return source_row_name(self.source, int(self.frame["source_row"].iloc[i]))

    def subset(self, keep: Any, report: StepReport | None = None) -> "SampleTable":
        """The rows selected by a boolean mask or integer index, with ``report`` appended."""
        keep = np.asarray(keep)
        if keep.dtype == bool:
            frame = self.frame.loc[keep]
        else:
            frame = self.frame.iloc[keep]
        reports = self.reports + ((report,) if report is not None else ())
        return replace(self, frame=frame.reset_index(drop=True), reports=reports)

    def with_frame(self, frame: pd.DataFrame, report: StepReport | None = None) -> "SampleTable":
        reports = self.reports + ((report,) if report is not None else ())
        return replace(self, frame=frame.reset_index(drop=True), reports=reports)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _relative_paths(paths: Iterable[str], base: Path) -> list[str]:
    out = []
    base_s = os.path.abspath(base)
    for p in paths:
        try:
            rel = os.path.relpath(p, base_s)
        except ValueError:  # another drive on Windows
            rel = p
        out.append(Path(rel).as_posix())
    return out


def write_manifest(table: SampleTable, path: str | os.PathLike, *, report: bool = True) -> str:
    """Write a sample table as a generic ``path, lat, lon, ...`` manifest, atomically.

    Image paths are written relative to the manifest's folder (readable back by
    :func:`geocell_engine.data.readers.read_manifest`), coordinates with 6 fixed decimals (CSV), so the
    same samples always give the same bytes. With ``report``, the step reports go to
    ``<manifest>.report.json`` beside it.

    Returns:
        The sha256 of the written manifest.
    """
    from geocell.tables import table_format, write_table

    path = Path(path)
    frame = table.frame.drop(columns=["source_row"]).copy()
    frame["path"] = _relative_paths(frame["path"], path.parent.resolve())
    if table_format(path) == "csv":
        for c in ("lat", "lon"):
            frame[c] = [("" if not np.isfinite(v) else f"{v:.{COORD_DECIMALS}f}") for v in frame[c].to_numpy(np.float64)]
    write_table(frame, path)
    digest = sha256_file(path)
    if report:
        payload = {
            "manifest": path.name,
            "sha256": digest,
            "rows": len(frame),
            "source": table.source,
            "layout": table.layout,
            "steps": [r.to_dict() for r in table.reports],
        }
        text = json.dumps(payload, indent=2) + "\n"
        atomic_write(path.with_name(path.name + ".report.json"), lambda tmp: tmp.write_text(text))
    return digest
