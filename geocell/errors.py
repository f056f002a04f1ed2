"""Every exception class of geocell. Each message names the bad value and what was expected.

All derive from :class:`GeocellError`, so a caller (the CLI) can report any of them as a one-line
error; each also derives from the builtin it refines (``ValueError``, ``FileNotFoundError``) so
ordinary ``except ValueError`` code keeps working.

They all live here (this module imports nothing at run time), so ``geocell.<Name>`` is available right after
``import geocell``; the modules that raise them re-export the ones they document (e.g.
``geocell.cells.CellSetError is geocell.CellSetError``).

Hierarchy::

    GeocellError
    ├── InvalidCoordinateError     (ValueError)
    ├── TableError                 (ValueError)
    ├── InputFileError             (FileNotFoundError)
    ├── OutputFileError            (ValueError)
    ├── AssignError                (ValueError)
    ├── CellSetError               (ValueError)
    ├── S2Error                    (ValueError)
    ├── UnknownCountryCodeError    (ValueError)
    ├── ProfileError               (ValueError)
    └── BoundaryFileError          (ValueError)
        ├── BoundaryFileNotFoundError  (FileNotFoundError)
        └── MissingColumnsError

Warnings (not errors: the data can be used, but looks wrong)::

    SwappedCoordinatesWarning      (UserWarning)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "GeocellError",
    "InvalidCoordinateError",
    "TableError",
    "InputFileError",
    "OutputFileError",
    "AssignError",
    "CellSetError",
    "S2Error",
    "UnknownCountryCodeError",
    "BoundaryFileError",
    "BoundaryFileNotFoundError",
    "MissingColumnsError",
    "ProfileError",
    "SwappedCoordinatesWarning",
]


class GeocellError(Exception):
    """Base class of every error geocell raises on purpose."""


class InvalidCoordinateError(GeocellError, ValueError):
    """A latitude or longitude is NaN, infinite, not a number or out of range."""


class TableError(GeocellError, ValueError):
    """A table of points cannot be used: empty, a missing, duplicate or ambiguous column, text in
    a numeric column, an unknown file format."""


class InputFileError(GeocellError, FileNotFoundError):
    """An input file is missing or unreadable."""


class OutputFileError(GeocellError, ValueError):
    """An output path cannot be used: it is one of the inputs, a folder, or its suffix names a
    format the writer does not write. Raised before any work is done."""


class AssignError(GeocellError, ValueError):
    """Polygons or options that point assignment cannot use."""


class CellSetError(GeocellError, ValueError):
    """A CellSet cannot be built, loaded or used as asked."""


class S2Error(GeocellError, ValueError):
    """An S2 level, cell id or token is invalid (out of range, not an integer, not hexadecimal)."""


class UnknownCountryCodeError(GeocellError, ValueError):
    """A country code is not in geocell/data/country_codes.csv."""


class BoundaryFileError(GeocellError, ValueError):
    """A boundary file cannot be read or does not have the Natural Earth admin-1 schema."""


class BoundaryFileNotFoundError(BoundaryFileError, FileNotFoundError):
    """A boundary file does not exist."""


class MissingColumnsError(BoundaryFileError):
    """A boundary file lacks required columns; ``.missing`` lists them.

    Args:
        path: the file.
        missing: the required columns it lacks.
        present: the columns it has (the first 20 are named in the message).
        required: every required column (named in the message), if given.
    """

    def __init__(self, path: Path, missing: list[str], present: list[str], required: Sequence[str] = ()):
        self.path, self.missing = path, missing
        expected = f"; a Natural Earth admin-1 layer has {', '.join(required)}" if required else ""
        super().__init__(
            f"{path}: missing column(s) {', '.join(missing)}{expected} (found: {', '.join(present[:20])}"
            f"{', ...' if len(present) > 20 else ''})"
        )


class ProfileError(GeocellError, ValueError):
    """An unknown metric profile name, or inputs a profile cannot score (e.g. a level it lacks)."""


class SwappedCoordinatesWarning(UserWarning):
    """Every coordinate is in range, but the latitude and longitude columns look swapped: read
    the other way round, many more points fall on land (see
    :func:`geocell.plausibility.swapped_columns_check`)."""
