"""The one validator of coordinate arrays, used by every geocell function that takes lat/lon.

:func:`check_latlon` is what callers use: numbers only, latitude in [-90, 90], longitude in
[-180, 180] or (by default) the 0..360 convention, which it normalises. :func:`check_coordinates`
is the same check without the normalisation and with a choice of longitude range (S2 takes any
finite longitude modulo 360, distance metrics do not care about the longitude's turn).

Both are vectorised: on valid input they cost a few array comparisons and no Python loop over
the values; only the error path looks at individual values, to name the first bad one (its index,
or the caller's name for it such as "row 12 (line 14)"), say what was expected and count the bad
values. Every error is an :class:`~geocell.errors.InvalidCoordinateError` (a ``ValueError``).

Example:
    >>> lat, lon, n_wrapped = check_latlon([10.0, -5.0], [350.0, 20.0])
    >>> lon.tolist(), n_wrapped
    ([-10.0, 20.0], 1)
    >>> check_latlon([0.0, 91.0], [0.0, 120.0])
    Traceback (most recent call last):
    ...
    geocell.errors.InvalidCoordinateError: index 1: latitude 91.0 is outside [-90, 90] (1 bad value in all)
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Optional

import numpy as np

from .errors import InvalidCoordinateError

__all__ = ["check_latlon", "check_coordinates", "LON_RANGE_0_360", "LON_RANGE_180"]

#: Longitudes accepted by default: [-180, 180] plus the 0..360 convention.
LON_RANGE_0_360: tuple[float, float] = (-180.0, 360.0)
#: Longitudes accepted when (180, 360] is not allowed.
LON_RANGE_180: tuple[float, float] = (-180.0, 180.0)
_LAT_RANGE = (-90.0, 90.0)

RowName = Callable[[int], str]


def _where(i: int, shape: tuple[int, ...], row_name: Optional[RowName]) -> str:
    """How a message names flat position ``i`` of an array of ``shape`` (with a trailing ': ')."""
    if row_name is not None:
        return f"{row_name(i)}: "
    if len(shape) == 0:
        return ""
    if len(shape) == 1:
        return f"index {i}: "
    return f"index {tuple(int(k) for k in np.unravel_index(i, shape))}: "


def _as_numbers(values: Any, name: str, row_name: Optional[RowName]) -> np.ndarray:
    """``values`` as a float64 array; InvalidCoordinateError naming the first value that is not a
    real number (text, None, booleans and numeric strings are refused, not converted)."""
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError, RuntimeError) as exc:  # ragged lists, tensors that need .cpu()
        raise InvalidCoordinateError(f"{name}: cannot be made into an array of numbers ({exc})") from exc
    if arr.dtype.kind in "iuf":
        return arr.astype(np.float64, copy=False)
    if arr.size == 0:
        return np.zeros(arr.shape, dtype=np.float64)
    if arr.dtype.kind == "O" or (arr.dtype.kind in "US" and not isinstance(values, np.ndarray)):
        flat = np.asarray(values, dtype=object).reshape(-1)  # the caller's objects, not numpy's
        ok = np.fromiter(
            (isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in flat),
            dtype=bool, count=len(flat),
        )
        if ok.all():
            return flat.astype(np.float64).reshape(arr.shape)
        i = int(np.flatnonzero(~ok)[0])
        raise InvalidCoordinateError(
            f"{_where(i, arr.shape, row_name)}{name} {flat[i]!r} is not a number"
            f" ({int((~ok).sum())} such value{'s' if (~ok).sum() > 1 else ''} in all)"
        )
    return _not_numbers(arr, name, 0, row_name)


def _not_numbers(arr: np.ndarray, name: str, i: int, row_name: Optional[RowName]) -> np.ndarray:
    first = arr.reshape(-1)[i]
    shown = first.item() if hasattr(first, "item") else first
    raise InvalidCoordinateError(
        f"{_where(i, arr.shape, row_name)}{name} {shown!r} is not a number (array of dtype {arr.dtype});"
        " expected degrees as int or float"
    )


def _check_range(
    values: np.ndarray,
    other: np.ndarray,
    name: str,
    bounds: Optional[tuple[float, float]],
    is_lat: bool,
    row_name: Optional[RowName],
) -> None:
    """InvalidCoordinateError for the first value outside ``bounds`` (NaN included), or, when
    ``bounds`` is None, the first value that is not finite."""
    if bounds is None:
        ok = np.isfinite(values)
    else:
        ok = values >= bounds[0]
        ok &= values <= bounds[1]  # NaN fails both comparisons
    if ok.all():
        return
    bad = np.flatnonzero(~ok.reshape(-1))
    i = int(bad[0])
    value = float(values.reshape(-1)[i])
    if np.isnan(value):
        what = "missing (NaN)"
    elif bounds is None:
        what = f"{value!r} is not finite"
    else:
        what = f"{value!r} is outside [{bounds[0]:g}, {bounds[1]:g}]"
    if bounds is None:
        expected = "; expected finite degrees (any value is taken modulo 360)"
    elif np.isnan(value):
        expected = f"; expected a number in [{bounds[0]:g}, {bounds[1]:g}]"
    else:
        expected = ""
    hint = ""
    if is_lat and abs(value) <= 180.0:  # a valid longitude, maybe given as the latitude
        try:
            partner = float(np.broadcast_to(other, values.shape).reshape(-1)[i])
        except ValueError:
            partner = np.nan
        if -90.0 <= partner <= 90.0:
            hint = " (latitude and longitude may be swapped)"
    raise InvalidCoordinateError(
        f"{_where(i, values.shape, row_name)}{name} {what}{expected}{hint}"
        f" ({bad.size} bad value{'s' if bad.size > 1 else ''} in all)"
    )


def check_coordinates(
    lat: Any,
    lon: Any,
    *,
    lon_range: Optional[tuple[float, float]] = LON_RANGE_0_360,
    row_name: Optional[RowName] = None,
    names: tuple[str, str] = ("latitude", "longitude"),
) -> tuple[np.ndarray, np.ndarray]:
    """Check coordinates and return them, unchanged, as broadcast float64 arrays.

    Args:
        lat, lon: degrees, broadcastable (scalars, lists, numpy arrays, pandas Series). Only
            real numbers are accepted: text (also numeric text such as ``"48.8"``), ``None`` and
            booleans are errors.
        lon_range: inclusive ``(low, high)`` bounds of the longitude in degrees, or None for
            any finite value (for code that takes longitudes modulo 360).
        row_name: turns a flat index into the name used in messages (the CLI passes one that
            says "row 12 (line 14)"); by default "index i" (1-D), "index (i, j)" (N-D) or
            nothing (scalars).
        names: how messages call the two arguments (e.g. ``("pred_lat", "pred_lon")``).

    Returns:
        (lat, lon): float64 arrays of the broadcast shape (0-d for scalars; read-only views
        where broadcasting repeated a value).

    Raises:
        InvalidCoordinateError: the first non-numeric, NaN, infinite or out-of-range value
            (latitude outside [-90, 90], longitude outside ``lon_range``), naming where it is,
            what it is and what was expected, with the number of bad values; or shapes that do
            not broadcast.

    Example:
        >>> lat, lon = check_coordinates(45.0, [720.0, -10.0], lon_range=None)
        >>> lat.tolist(), lon.tolist()
        ([45.0, 45.0], [720.0, -10.0])
    """
    lat_arr = _as_numbers(lat, names[0], row_name)
    lon_arr = _as_numbers(lon, names[1], row_name)
    try:
        np.broadcast_shapes(lat_arr.shape, lon_arr.shape)
    except ValueError:
        raise InvalidCoordinateError(
            f"{names[0]} and {names[1]} have incompatible shapes {lat_arr.shape} and {lon_arr.shape}"
        ) from None
    _check_range(lat_arr, lon_arr, names[0], _LAT_RANGE, True, row_name)
    _check_range(lon_arr, lat_arr, names[1], lon_range, False, row_name)
    if lat_arr.shape != lon_arr.shape:
        lat_arr, lon_arr = np.broadcast_arrays(lat_arr, lon_arr)
    return lat_arr, lon_arr


def check_latlon(
    lat: Any,
    lon: Any,
    *,
    wrap_lon: bool = True,
    row_name: Optional[RowName] = None,
    names: tuple[str, str] = ("latitude", "longitude"),
) -> tuple[np.ndarray, np.ndarray, int]:
    """Check coordinates and return them as float64 arrays with longitudes in [-180, 180].

    Args:
        lat, lon: degrees, broadcastable (scalars, lists, numpy arrays, pandas Series); only real
            numbers (see :func:`check_coordinates`).
        wrap_lon: accept longitudes in (180, 360] (the 0..360 convention) and subtract 360;
            if False they are an error.
        row_name: turns a flat index into the name used in messages (the CLI passes one that
            says "row 12 (line 14)"); by default "index i" / "index (i, j)".
        names: how messages call the two arguments.

    Returns:
        (lat, lon, n_wrapped): broadcast float64 arrays and the number of longitudes that were
        moved from (180, 360] to (-180, 0].

    Raises:
        InvalidCoordinateError: for the first non-numeric / NaN / infinite / out-of-range value,
            naming it (see :func:`check_coordinates`).
    """
    lat_arr, lon_arr = check_coordinates(
        lat, lon, lon_range=LON_RANGE_0_360 if wrap_lon else LON_RANGE_180, row_name=row_name, names=names
    )
    n_wrapped = 0
    if wrap_lon:
        wrapped = lon_arr > 180.0
        n_wrapped = int(np.count_nonzero(wrapped))
        if n_wrapped:
            lon_arr = np.where(wrapped, lon_arr - 360.0, lon_arr)
    return lat_arr, lon_arr, n_wrapped
