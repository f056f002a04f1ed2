"""Validation of coordinate arrays, shared by assignment, cells and the CLI.

Example:
    >>> lat, lon, n_wrapped = check_latlon([10.0, -5.0], [350.0, 20.0])
    >>> lon.tolist(), n_wrapped
    ([-10.0, 20.0], 1)
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .errors import InvalidCoordinateError

__all__ = ["check_latlon"]


def _default_row_name(i: int) -> str:
    return f"index {i}"


def check_latlon(
    lat: Any,
    lon: Any,
    *,
    wrap_lon: bool = True,
    row_name: Callable[[int], str] = _default_row_name,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Check coordinates and return them as float64 arrays with longitudes in [-180, 180].

    Args:
        lat, lon: degrees, broadcastable (scalars, lists, numpy arrays).
        wrap_lon: accept longitudes in (180, 360] (the 0..360 convention) and subtract 360;
            if False they are an error.
        row_name: turns a flat index into the name used in messages (the CLI passes one that
            says "row 12 (line 14)").

    Returns:
        (lat, lon, n_wrapped): broadcast float64 arrays and the number of longitudes that were
        moved from (180, 360] to (-180, 0].

    Raises:
        InvalidCoordinateError: for the first NaN / infinite / out-of-range value, naming it.
    """
    try:
        lat_arr = np.asarray(lat, dtype=np.float64)
        lon_arr = np.asarray(lon, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidCoordinateError(f"coordinates must be numbers: {exc}") from exc
    try:
        lat_arr, lon_arr = np.broadcast_arrays(lat_arr, lon_arr)
    except ValueError as exc:
        raise InvalidCoordinateError(
            f"lat and lon have incompatible shapes {lat_arr.shape} and {lon_arr.shape}"
        ) from exc
    flat_lat, flat_lon = lat_arr.reshape(-1), lon_arr.reshape(-1)
    for name, values, low, high in (
        ("latitude", flat_lat, -90.0, 90.0),
        ("longitude", flat_lon, -180.0, 360.0 if wrap_lon else 180.0),
    ):
        bad = np.flatnonzero(~((values >= low) & (values <= high)))  # also catches NaN
        if bad.size:
            i = int(bad[0])
            what = "missing (NaN)" if np.isnan(values[i]) else f"{float(values[i])!r}"
            hint = ""
            if name == "latitude" and np.isfinite(values[i]) and -90.0 <= flat_lon[i] <= 90.0:
                hint = " (latitude and longitude may be swapped)"
            raise InvalidCoordinateError(
                f"{row_name(i)}: {name} {what} is outside [{low:g}, {high:g}]{hint}"
                f" ({bad.size} bad value{'s' if bad.size > 1 else ''} in all)"
            )
    wrapped = flat_lon > 180.0
    n_wrapped = int(np.count_nonzero(wrapped))
    if n_wrapped:
        lon_arr = np.where(lon_arr > 180.0, lon_arr - 360.0, lon_arr)
    return lat_arr, lon_arr, n_wrapped
