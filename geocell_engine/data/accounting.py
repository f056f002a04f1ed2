"""Which images of a data set could not be used, per split, and why: the record behind every
"left out" in a run.

An :class:`ImageAccount` collects :class:`BadImage` records: a manifest row whose image file
does not exist (``"missing"``, found when the splits are loaded) or whose file cannot be decoded
(``"unreadable"``, found when a split is screened or a batch is decoded). Nothing is left out of
a run without a record here; the run writes the full list (:meth:`ImageAccount.write`) and
states the counts (:meth:`ImageAccount.summary`, :meth:`ImageAccount.as_dict`).

Example:
    >>> account = ImageAccount()
    >>> _ = account.add("val", "m.csv: row 3 (line 5)", "/data/a.jpg", "missing", "no such file")
    >>> _ = account.add("val", "m.csv: row 4 (line 6)", "/data/b.jpg", "unreadable", "truncated")
    >>> account.summary()
    'val: 1 missing, 1 unreadable'
    >>> account.counts("val")
    {'missing': 1, 'unreadable': 1}
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

__all__ = ["BadImage", "ImageAccount", "Problem", "SPLIT_NAMES"]

#: What is wrong with an image: its file does not exist, or it cannot be decoded.
Problem = Literal["missing", "unreadable"]
_PROBLEMS: tuple[Problem, ...] = ("missing", "unreadable")
#: Splits always listed by :meth:`ImageAccount.as_dict` (others follow in the order first seen).
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")
#: Columns of the file :meth:`ImageAccount.write` writes.
_COLUMNS = ("split", "problem", "row", "path", "detail")


@dataclass(frozen=True)
class BadImage:
    """One image left out.

    Attributes:
        split: the split it belonged to ("train", "val", "test", ...).
        row: how messages name its manifest row, e.g. ``"m.csv: row 3 (line 5)"``.
        path: the image file (as looked for when missing).
        problem: ``"missing"`` or ``"unreadable"``.
        detail: the reason as the reader or decoder gave it.
    """

    split: str
    row: str
    path: str
    problem: Problem
    detail: str = ""

    def message(self) -> str:
        """One line naming the row, the file and the reason."""
        what = "not found" if self.problem == "missing" else "cannot be read"
        return f"{self.row}: image {self.path} {what}" + (f" ({self.detail})" if self.detail else "")

    def as_dict(self) -> dict[str, str]:
        return {"row": self.row, "path": self.path, "problem": self.problem, "detail": self.detail}


class ImageAccount:
    """The missing and unreadable images of a data set, per split, in the order found.

    Adding the same (split, row, path) twice keeps the first record, so decoding a split once per
    epoch never counts an image twice. This is the one mutable object the data layer hands out:
    :func:`~geocell_engine.data.dataset.load_splits` fills in the missing files,
    :func:`~geocell_engine.data.dataset.screen_split` and
    :func:`~geocell_engine.data.dataset.iterate_batches` add the unreadable ones.
    """

    def __init__(self, records: tuple[BadImage, ...] | list[BadImage] = ()) -> None:
        self._records: dict[tuple[str, str, str], BadImage] = {}
        for record in records:
            self._records.setdefault((record.split, record.row, record.path), record)

    def add(self, split: str, row: str, path: str | os.PathLike, problem: Problem, detail: str = "") -> BadImage:
        """Record an image left out of ``split``; returns the record (the earlier one if known)."""
        if problem not in _PROBLEMS:
            raise ValueError(f"problem {problem!r}; expected one of {', '.join(_PROBLEMS)}")
        record = BadImage(str(split), str(row), str(path), problem, str(detail))
        return self._records.setdefault((record.split, record.row, record.path), record)

    def records(self, split: Optional[str] = None, problem: Optional[Problem] = None) -> list[BadImage]:
        """The records, in the order found, optionally of one split and / or one problem."""
        return [r for r in self._records.values()
                if (split is None or r.split == split) and (problem is None or r.problem == problem)]

    def __len__(self) -> int:
        return len(self._records)

    def splits(self) -> list[str]:
        """Split names with at least one record: train, val, test first, then others as found."""
        seen = list(dict.fromkeys(r.split for r in self._records.values()))
        return [s for s in SPLIT_NAMES if s in seen] + [s for s in seen if s not in SPLIT_NAMES]

    def counts(self, split: Optional[str] = None) -> dict[str, int]:
        """``{"missing": n, "unreadable": m}`` for one split, or over all splits."""
        records = self.records(split)
        return {p: sum(r.problem == p for r in records) for p in _PROBLEMS}

    def as_dict(self, max_rows: int = 5) -> dict[str, Any]:
        """JSON-ready: totals, and per split (train / val / test always, others when recorded)
        the counts and the first ``max_rows`` records."""
        names = list(SPLIT_NAMES) + [s for s in self.splits() if s not in SPLIT_NAMES]
        return {
            **self.counts(),
            "splits": {name: {**self.counts(name), "first": [r.as_dict() for r in self.records(name)[:max_rows]]}
                       for name in names},
        }

    def summary(self) -> str:
        """One line, e.g. ``"val: 2 missing, 1 unreadable; test: 1 missing"`` (splits with none
        left out are not named)."""
        if not self._records:
            return "no missing or unreadable images"
        parts = []
        for name in self.splits():
            counts = self.counts(name)
            parts.append(f"{name}: " + ", ".join(f"{n} {p}" for p, n in counts.items() if n))
        return "; ".join(parts)

    def to_csv(self) -> str:
        """Every record as CSV text with the header ``split,problem,row,path,detail``."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_COLUMNS)
        for r in self._records.values():
            writer.writerow([r.split, r.problem, r.row, r.path, r.detail])
        return buffer.getvalue()

    def write(self, path: str | os.PathLike) -> Path:
        """Write every record as CSV (:meth:`to_csv`, a header only when there are none), atomically."""
        from geocell.tables import atomic_write

        text = self.to_csv()
        return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))

    def __repr__(self) -> str:
        return f"ImageAccount({self.summary()})"
