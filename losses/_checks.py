"""Argument checks shared by the losses: every bad argument is a ValueError naming the value."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from geocell.errors import InvalidCoordinateError


def check_positive(value: Any, name: str) -> float:
    """A finite number > 0, as float."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number > 0, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def check_fraction(value: Any, name: str) -> float:
    """A number in [0, 1], as float."""
    v = float(value)
    if not (0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return v


def check_latlon_1d(lat: Any, lon: Any, what: str = "lat/lon") -> None:
    """Both 1-D with the same length, finite, latitude in [-90, 90].

    Raises:
        ValueError (geocell.errors.InvalidCoordinateError): naming the first bad entry.
    """
    if tuple(lat.shape) != tuple(lon.shape) or lat.ndim != 1:
        raise ValueError(
            f"{what}: lat and lon must be 1-D with equal shapes, got {tuple(lat.shape)} and {tuple(lon.shape)}"
        )
    if isinstance(lat, torch.Tensor):
        bad = ~((lat.abs() <= 90.0) & torch.isfinite(lon))
        if bool(bad.any()):
            i = int(bad.nonzero()[0, 0])
            raise InvalidCoordinateError(
                f"{what}: entry {i} is (lat={float(lat[i])!r}, lon={float(lon[i])!r}); expected finite "
                "coordinates with latitude in [-90, 90]"
            )
    else:
        bad = ~((np.abs(lat) <= 90.0) & np.isfinite(lon))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InvalidCoordinateError(
                f"{what}: entry {i} is (lat={float(lat[i])!r}, lon={float(lon[i])!r}); expected finite "
                "coordinates with latitude in [-90, 90]"
            )


def check_batch(pred: torch.Tensor, lat: torch.Tensor, what: str) -> None:
    """pred's first axis matches the batch of coordinates."""
    if pred.shape[0] != lat.shape[0]:
        raise ValueError(f"{what}: predictions have batch {pred.shape[0]} but targets have {lat.shape[0]}")
