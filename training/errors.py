"""Exception classes of the data layer; each refines a geocell error and a builtin.

They derive from :class:`geocell.errors.GeocellError` (the CLI prints any of them as a one-line
error) and from the builtin they refine, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from geocell.errors import GeocellError, TableError

__all__ = [
    "ManifestError",
    "CorruptImageError",
    "MapImageError",
    "UnknownCountryNameError",
    "SplitError",
    "DatasetCacheError",
]


class ManifestError(TableError):
    """A manifest of samples cannot be used: unknown layout, missing image, bad value in a row."""


class CorruptImageError(GeocellError, ValueError):
    """An image file cannot be decoded (unreadable, truncated, not an image)."""


class MapImageError(GeocellError, ValueError):
    """A world map image is missing, undecodable or not a 2:1 equirectangular image."""


class UnknownCountryNameError(GeocellError, ValueError):
    """A folder name or code cannot be normalised to a Natural Earth ``adm0_a3`` code."""


class SplitError(GeocellError, ValueError):
    """A split cannot be made as asked (fractions, sizes or distances that cannot be met)."""


class DatasetCacheError(GeocellError, ValueError):
    """A cached data set folder is incomplete or was built with another definition."""
