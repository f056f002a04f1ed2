"""Every exception class of the engine package (data, engine, evaluation); each refines a geocell
error and a builtin.

They derive from :class:`geocell.errors.GeocellError` (the CLI prints any of them as a one-line
error) and from the builtin they refine, so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from geocell.errors import GeocellError, TableError

__all__ = [
    "RunInterrupted",
    "DataError",
    "ConfigError",
    "CheckpointError",
    "ReportError",
    "BaselineError",
    "PlotError",
    "ManifestError",
    "CorruptImageError",
    "MapImageError",
    "UnknownCountryNameError",
    "SplitError",
    "DatasetCacheError",
    "IntervalError",
    "LeakageError",
    "ConformalError",
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


class DataError(GeocellError, ValueError):
    """A data set cannot be used for training: no coordinates, unknown name, bad images."""


class ConfigError(GeocellError, ValueError):
    """A configuration value is unknown or out of range."""


class CheckpointError(GeocellError, ValueError):
    """A checkpoint is unreadable, truncated, or belongs to other cells / vocabularies."""


class ReportError(GeocellError, ValueError):
    """Predictions or results that cannot be evaluated or reported (mismatched shapes, types)."""


class BaselineError(GeocellError, ValueError):
    """A baseline cannot be computed from the inputs given (empty, mismatched, wrong type)."""


class PlotError(GeocellError, ValueError):
    """A plot cannot be drawn from the inputs given (empty history, mismatched arrays, ...)."""


class IntervalError(GeocellError, ValueError):
    """Intervals, paired comparisons or breakdowns that cannot be computed from the inputs given."""


class LeakageError(GeocellError, ValueError):
    """A train/test leakage check cannot run (unreadable images, bad threshold, no coordinates)."""


class ConformalError(GeocellError, ValueError):
    """Prediction regions cannot be calibrated or built (bad probabilities, level, cells)."""


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a command; the message says what was kept (the CLI prints it as one line
    and exits with code 130)."""
