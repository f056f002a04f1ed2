"""Exception classes of geocell. Each message names the bad value and what was expected.

All derive from :class:`GeocellError`, so a caller (the CLI) can report any of them as a one-line
error; each also derives from the builtin it refines (``ValueError``, ``FileNotFoundError``) so
ordinary ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class GeocellError(Exception):
    """Base class of every error geocell raises on purpose."""


class InvalidCoordinateError(GeocellError, ValueError):
    """A latitude or longitude is NaN, infinite, not a number or out of range."""


class TableError(GeocellError, ValueError):
    """A table of points cannot be used: empty, a missing column, text in a numeric column."""


class InputFileError(GeocellError, FileNotFoundError):
    """An input file is missing or unreadable."""
