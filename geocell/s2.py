"""S2 cell ids, vectorised with numpy.

A re-implementation of the S2 geometry library's cell-id algorithm on numpy arrays. Results are
bit-identical to ``s2sphere`` (``CellId.from_lat_lng(LatLng.from_degrees(lat, lon)).parent(level)``)
and one to two orders of magnitude faster, because every step is an array operation; the only
Python loops run over blocks of a few thousand points (so temporaries stay in cache) and over the
8 four-level chunks of the Hilbert curve.

The pipeline of :func:`s2_cell_ids`:

1. latitude / longitude (degrees) -> unit vector ``(x, y, z)``;
2. cube face = axis of the largest absolute component (+3 if negative), and the gnomonic
   face coordinates ``(u, v)`` in ``[-1, 1]``;
3. ``(u, v)`` -> ``(s, t)`` in ``[0, 1]`` with S2's quadratic projection (near-equal-area);
4. ``(s, t)`` -> integer leaf coordinates ``(i, j)`` in ``[0, 2**30)``;
5. ``(i, j)`` -> position along the face's Hilbert curve, 4 levels at a time through a
   1024-entry lookup table (built once, lazily);
6. ``id = face << 61 | position << 1 | 1`` (a leaf cell), then the parent at ``level`` keeps the
   top ``3 + 2 * level`` bits and moves the trailing marker bit up.

The inverse (:func:`s2_cell_center`, :func:`s2_cell_vertices`) walks the same table backwards.

All functions broadcast like numpy ufuncs; a scalar input gives a scalar output. Cell ids are
``np.uint64``. Latitude comes first, angles are in degrees.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .errors import S2Error
from .validate import check_coordinates

__all__ = [
    "MAX_LEVEL",
    "S2Error",
    "s2_cell_center",
    "s2_cell_id_to_token",
    "s2_cell_ids",
    "s2_cell_vertices",
    "s2_level",
    "s2_parent",
    "s2_token_to_cell_id",
]

#: Deepest S2 level (leaf cells, about 1 cm wide).
MAX_LEVEL: int = 30

_FACE_SHIFT = 2 * MAX_LEVEL + 1  # 61: the 3 face bits sit above 60 position bits and the marker
_MAX_SIZE = 1 << MAX_LEVEL  # leaf cells along one edge of a face
_NUM_FACES = 6
# Points per block of the vectorised loops: small enough that the temporaries stay in cache
# and are recycled by malloc (large numpy temporaries cost page faults on every call).
_BLOCK = 4096
_LOOKUP_BITS = 4  # levels handled per Hilbert lookup step
_CHUNK_MASK = (1 << _LOOKUP_BITS) - 1
_SWAP = 1  # orientation bit: i and j exchanged
_INVERT = 2  # orientation bit: traversal reversed
_LEVEL_MARKER_BITS = 0x1555555555555555  # a valid id's lowest set bit is at an even position

# The S2 Hilbert curve. Row = orientation of the parent cell, column = position (0..3) of the
# child along the curve, value = child quadrant as (i_bit << 1) | j_bit.
_HILBERT_QUADRANT = np.array([[0, 1, 3, 2], [0, 2, 3, 1], [3, 2, 0, 1], [3, 1, 0, 2]], np.int64)
# Orientation change when descending into the child at each curve position.
_HILBERT_TURN = np.array([_SWAP, 0, 0, _SWAP | _INVERT], np.int64)

# S2's "face XYZ to UV": u = a / p[face % 3] and v = b / p[face % 3], where a and b are the
# rows of (x, y, z, -x, -y, -z) below, per face:
# face 0: (y, z)   face 1: (-x, z)   face 2: (-x, -y)
# face 3: (z, y)   face 4: (z, -x)   face 5: (-y, -x)
_U_ROW = np.array([1, 3, 3, 2, 2, 4], np.int64)
_V_ROW = np.array([2, 2, 4, 1, 3, 3], np.int64)

# The inverse: for each face, which entry of (1, u, v, -1, -u, -v) is x, y and z.
# face 0: (1, u, v)    face 1: (-u, 1, v)    face 2: (-u, -v, 1)
# face 3: (-1, -v, -u) face 4: (v, -1, -u)   face 5: (v, u, -1)
_UV_TO_X = np.array([0, 4, 4, 3, 2, 2], np.int64)
_UV_TO_Y = np.array([1, 0, 5, 5, 3, 1], np.int64)
_UV_TO_Z = np.array([2, 2, 0, 4, 4, 3], np.int64)


# ----------------------------------------------------------------------------------------------
# Hilbert lookup tables
# ----------------------------------------------------------------------------------------------


@functools.cache
def _hilbert_tables() -> tuple[np.ndarray, np.ndarray]:
    """Lookup tables for 4 Hilbert levels at a time (1024 entries each, built once).

    Returns ``(ij_to_pos, pos_to_ij)``:

    * ``ij_to_pos[(i4 << 6) | (j4 << 2) | orientation] = (pos8 << 2) | new_orientation``
    * ``pos_to_ij[(pos8 << 2) | orientation] = (i4 << 6) | (j4 << 2) | new_orientation``

    where ``i4``, ``j4`` are 4-bit chunks of the leaf coordinates and ``pos8`` the matching
    8-bit chunk of the curve position.
    """
    n = 1 << (2 * _LOOKUP_BITS)
    pos = np.arange(n, dtype=np.int64)
    ij_to_pos = np.empty(4 * n, np.int64)
    pos_to_ij = np.empty(4 * n, np.int64)
    for start in range(4):
        orientation = np.full(n, start, np.int64)
        i = np.zeros(n, np.int64)
        j = np.zeros(n, np.int64)
        for depth in range(_LOOKUP_BITS):
            child = (pos >> (2 * (_LOOKUP_BITS - 1 - depth))) & 3
            quadrant = _HILBERT_QUADRANT[orientation, child]
            i = (i << 1) | (quadrant >> 1)
            j = (j << 1) | (quadrant & 1)
            orientation = orientation ^ _HILBERT_TURN[child]
        ij = (i << _LOOKUP_BITS) | j
        ij_to_pos[(ij << 2) | start] = (pos << 2) | orientation
        pos_to_ij[(pos << 2) | start] = (ij << 2) | orientation
    ij_to_pos.setflags(write=False)
    pos_to_ij.setflags(write=False)
    return ij_to_pos, pos_to_ij


# ----------------------------------------------------------------------------------------------
# validation helpers
# ----------------------------------------------------------------------------------------------


def _first_bad(mask: np.ndarray) -> tuple[int, ...] | int:
    """Index (int for 1-D, tuple otherwise) of the first True entry of ``mask``."""
    flat = int(np.flatnonzero(mask)[0])
    if mask.ndim == 1:
        return flat
    return tuple(int(k) for k in np.unravel_index(flat, mask.shape))


def _check_level(level: Any) -> np.ndarray:
    """Level(s) as an int64 array; S2Error unless every entry is an integer in 0..30."""
    arr = np.asarray(level)
    if arr.dtype == np.bool_ or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        raise S2Error(f"level must be an integer in 0..{MAX_LEVEL}, got {level!r:.80}")
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~(np.isfinite(arr) & (arr == np.round(arr)))
        if bad.any():
            where = _first_bad(np.atleast_1d(bad))
            raise S2Error(
                f"level must be an integer in 0..{MAX_LEVEL}, got {np.atleast_1d(arr)[where].item()!r}"
                + ("" if arr.ndim == 0 else f" at index {where}")
            )
    bad = (arr < 0) | (arr > MAX_LEVEL)
    if bad.any():
        where = _first_bad(np.atleast_1d(bad))
        raise S2Error(
            f"level must be an integer in 0..{MAX_LEVEL}, got {np.atleast_1d(arr)[where].item()!r}"
            + ("" if arr.ndim == 0 else f" at index {where}")
        )
    return arr.astype(np.int64)


def _as_uint64_bits(ids: Any) -> np.ndarray:
    """64-bit integers as a uint64 array (int64 values keep their bits, as Parquet stores ids)."""
    arr = np.asarray(ids)
    if arr.dtype == np.uint64:
        return arr
    if np.issubdtype(arr.dtype, np.signedinteger):
        return arr.astype(np.int64).view(np.uint64)
    if np.issubdtype(arr.dtype, np.unsignedinteger):
        return arr.astype(np.uint64)
    if arr.dtype.kind == "f" and not isinstance(ids, (np.ndarray, np.generic)):
        # numpy turns a list mixing ints >= 2**63 and smaller ones into float64: redo exactly
        arr = np.asarray(ids, dtype=object)
    if arr.dtype == object:
        values = arr.reshape(-1).tolist()
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            try:
                return np.array([int(v) % (1 << 64) for v in values], dtype=np.uint64).reshape(arr.shape)
            except OverflowError:
                pass
        raise S2Error(f"S2 cell ids must be 64-bit integers, got {ids!r:.80}")
    raise S2Error(f"S2 cell ids must be 64-bit integers, got dtype {arr.dtype}")


def _trailing_zero_bits(ids: np.ndarray) -> np.ndarray:
    """Number of trailing zero bits of each uint64 (-1 for 0), as int64."""
    lsb = ids & (~ids + np.uint64(1))
    # frexp is exact for powers of two: 2**k -> exponent k + 1 (and 0 -> 0)
    return np.frexp(lsb.astype(np.float64))[1].astype(np.int64) - 1


def _as_cell_ids(ids: Any) -> np.ndarray:
    """Cell ids as a uint64 array; S2Error naming the first invalid id."""
    arr = _as_uint64_bits(ids)
    lsb = arr & (~arr + np.uint64(1))
    bad = ((arr >> _FACE_SHIFT) >= _NUM_FACES) | ((lsb & np.uint64(_LEVEL_MARKER_BITS)) == 0)
    if bad.any():
        where = _first_bad(np.atleast_1d(bad))
        value = int(np.atleast_1d(arr)[where])
        raise S2Error(
            f"invalid S2 cell id {value} (0x{value:016x})"
            + ("" if arr.ndim == 0 else f" at index {where}")
            + ": expected face 0..5 and a level marker bit at an even position"
        )
    return arr


def _scalar_or_array(x: np.ndarray, scalar: bool) -> Any:
    return x[()] if scalar else x


# ----------------------------------------------------------------------------------------------
# projections shared by the forward and inverse paths
# ----------------------------------------------------------------------------------------------


def _st_to_uv(s: np.ndarray) -> np.ndarray:
    """S2's quadratic projection from cell space to face space: s in [0, 1] -> u in [-1, 1].

    The inverse, u -> s, is inlined in :func:`_latlon_to_face_ij`.
    """
    upper = s >= 0.5
    t = np.where(upper, s, 1.0 - s)
    magnitude = (1.0 / 3.0) * (4.0 * t * t - 1.0)
    return np.where(upper, magnitude, -magnitude)


def _face_uv_to_latlon(face: np.ndarray, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """1-D face and (u, v) -> (lat, lon) in degrees (S2's "face UV to XYZ", then to lat/lon).

    Components are picked from the rows (1, u, v, -1, -u, -v), so signed zeros come out as in
    S2 (they decide the longitude, +-180, of the face-2/5 centres at the poles).
    """
    n = face.size
    rows = np.empty((6, n))
    rows[0] = 1.0
    rows[1] = u
    rows[2] = v
    np.negative(rows[:3], out=rows[3:])
    flat = rows.reshape(-1)
    col = np.arange(n, dtype=np.int64)
    x = flat.take(_UV_TO_X.take(face) * n + col)
    y = flat.take(_UV_TO_Y.take(face) * n + col)
    z = flat.take(_UV_TO_Z.take(face) * n + col)
    lat = np.degrees(np.arctan2(z, np.sqrt(x * x + y * y)))
    lon = np.degrees(np.arctan2(y, x))
    return lat, lon


def _decode(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Valid cell ids (uint64) -> (face, i, j) as int64, (i, j) of a leaf cell inside the cell."""
    _, pos_to_ij = _hilbert_tables()
    face = (ids >> _FACE_SHIFT).astype(np.int64)
    i = np.zeros(ids.shape, np.int64)
    j = np.zeros(ids.shape, np.int64)
    state = face & _SWAP
    for k in range(7, -1, -1):
        # chunk 7 holds only 2 levels (4 position bits), the others 4 levels (8 bits)
        width = 2 * (MAX_LEVEL - 7 * _LOOKUP_BITS) if k == 7 else 2 * _LOOKUP_BITS
        chunk = ((ids >> (2 * _LOOKUP_BITS * k + 1)) & np.uint64((1 << width) - 1)).astype(np.int64)
        state = pos_to_ij.take(state + (chunk << 2))
        i |= (state >> (_LOOKUP_BITS + 2)) << (_LOOKUP_BITS * k)
        j |= ((state >> 2) & _CHUNK_MASK) << (_LOOKUP_BITS * k)
        state &= _SWAP | _INVERT
    return face, i, j


def _levels_of(ids: np.ndarray) -> np.ndarray:
    """Levels of valid cell ids: the marker bit sits 2 * (30 - level) bits up."""
    return MAX_LEVEL - _trailing_zero_bits(ids) // 2


def _latlon_to_face_ij(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D lat/lon (degrees, validated) -> face and leaf coordinates (i, j), all int64.

    Bit-exact with S2: the same floating-point operations in the same order. Selections use
    ``take`` on stacked arrays or multiplications by 0/1 rather than ``np.where`` (which is
    several times slower on unsorted masks); both are exact here.
    """
    n = lat.size
    phi = np.radians(lat)
    theta = np.radians(lon)
    cos_phi = np.cos(phi)
    # rows: x, y, z, -x, -y, -z of the unit vector
    signed_xyz = np.empty((6, n))
    x, y, z = signed_xyz[0], signed_xyz[1], signed_xyz[2]
    np.cos(theta, out=x)
    x *= cos_phi
    np.sin(theta, out=y)
    y *= cos_phi
    np.sin(phi, out=z)
    np.negative(signed_xyz[:3], out=signed_xyz[3:])

    # face axis = largest |component|, ties going to the later axis (as in S2)
    ax, ay, az = np.abs(x), np.abs(y), np.abs(z)
    x_gt_y = ax > ay
    x_wins = x_gt_y & (ax > az)
    y_wins = ay > az
    y_wins &= ~x_gt_y
    face = 2 - 2 * x_wins.astype(np.int64) - y_wins
    flat = signed_xyz.reshape(-1)
    col = np.arange(n, dtype=np.int64)
    denom = flat.take(face * n + col)
    face += 3 * (denom < 0)

    # (u, v) = signed numerator / axis component, numerators looked up per face
    uv = np.empty((2, n))
    np.divide(flat.take(_U_ROW.take(face) * n + col), denom, out=uv[0])
    np.divide(flat.take(_V_ROW.take(face) * n + col), denom, out=uv[1])

    # quadratic projection: s = 0.5 * sqrt(1 + 3u) for u >= 0, 1 - 0.5 * sqrt(1 - 3u) otherwise
    negative = (uv < 0).astype(np.float64)
    half_root = np.abs(uv)
    half_root *= 3.0
    half_root += 1.0
    np.sqrt(half_root, out=half_root)
    half_root *= 0.5
    st = 1.0 - half_root
    st *= negative  # (1 - h) where u < 0, else 0
    negative -= 1.0
    negative *= half_root  # -h where u >= 0, else 0
    st -= negative

    # leaf coordinates: floor(2**30 * s) clamped to the face (s is never negative)
    st *= _MAX_SIZE
    ij = st.astype(np.int64)
    np.minimum(ij, _MAX_SIZE - 1, out=ij)
    return face, ij[0], ij[1]


def _hilbert_pos(face: np.ndarray, i: np.ndarray, j: np.ndarray, level: int) -> np.ndarray:
    """Position (int64, 60 bits, 2 per level) of leaf (i, j) along the face's Hilbert curve.

    Only the top ``level`` levels are exact: 4-level chunks entirely below it are not computed.
    """
    ij_to_pos, _ = _hilbert_tables()
    lowest_chunk = (MAX_LEVEL - level) // _LOOKUP_BITS  # chunk k holds levels 27-4k .. 30-4k
    pos = np.zeros(face.shape, np.int64)
    state = face & _SWAP  # orientation of the face's top-level curve
    for k in range(7, lowest_chunk - 1, -1):
        shift = _LOOKUP_BITS * k
        i_chunk = (i >> shift) & _CHUNK_MASK
        i_chunk <<= _LOOKUP_BITS + 2
        j_chunk = (j >> shift) & _CHUNK_MASK
        j_chunk <<= 2
        state |= i_chunk
        state |= j_chunk
        state = ij_to_pos.take(state)
        pos |= (state >> 2) << (2 * shift)
        state &= _SWAP | _INVERT
    return pos


def _cell_ids_block(lat: np.ndarray, lon: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Cell ids of one block of validated 1-D points; ``level`` is a scalar or matches ``lat``."""
    outside = np.abs(lon) > 180.0
    if outside.any():
        lon = np.where(outside, np.remainder(lon + 180.0, 360.0) - 180.0, lon)
    # steps 1-4: unit vector, face, (u, v), (s, t), leaf (i, j)
    face, i, j = _latlon_to_face_ij(lat, lon)
    # step 5: Hilbert curve position, only as deep as needed
    pos = _hilbert_pos(face, i, j, int(level.max()))
    # step 6: leaf id, then keep face + 2 * level position bits and put the marker bit below
    ids = (pos << 1).view(np.uint64)
    ids |= face.astype(np.uint64) << np.uint64(_FACE_SHIFT)
    lsb = np.uint64(1) << (2 * (MAX_LEVEL - level)).astype(np.uint64)
    ids &= ~(lsb - np.uint64(1))
    ids |= lsb
    return ids


def _center_block(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) degrees of the centres of a 1-D block of valid ids."""
    face, i, j = _decode(ids)
    size = np.int64(1) << (MAX_LEVEL - _levels_of(ids))
    # centre in units of half a leaf cell: twice the low corner plus the cell size
    si = 2 * (i & -size) + size
    ti = 2 * (j & -size) + size
    scale = 0.5 / _MAX_SIZE
    return _face_uv_to_latlon(face, _st_to_uv(scale * si), _st_to_uv(scale * ti))


def _vertices_block(ids: np.ndarray) -> np.ndarray:
    """(n, 4, 2) corner lat/lon degrees of a 1-D block of valid ids, S2's vertex order."""
    face, i, j = _decode(ids)
    size = np.int64(1) << (MAX_LEVEL - _levels_of(ids))
    scale = 1.0 / _MAX_SIZE
    i_lo = i & -size
    j_lo = j & -size
    u_lo, u_hi = _st_to_uv(scale * i_lo), _st_to_uv(scale * (i_lo + size))
    v_lo, v_hi = _st_to_uv(scale * j_lo), _st_to_uv(scale * (j_lo + size))
    # vertex k = (u[(k >> 1) ^ (k & 1)], v[k >> 1]): (lo, lo), (hi, lo), (hi, hi), (lo, hi)
    u = np.stack([u_lo, u_hi, u_hi, u_lo], axis=-1).reshape(-1)
    v = np.stack([v_lo, v_lo, v_hi, v_hi], axis=-1).reshape(-1)
    lat, lon = _face_uv_to_latlon(np.repeat(face, 4), u, v)
    return np.stack([lat, lon], axis=-1).reshape(-1, 4, 2)


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------


def s2_cell_ids(lat: Any, lon: Any, level: Any = MAX_LEVEL) -> Any:
    """S2 cell ids of points at the given level.

    Identical to ``s2sphere.CellId.from_lat_lng(LatLng.from_degrees(lat, lon)).parent(level).id()``.

    Args:
        lat: latitudes, degrees in [-90, 90], any shape.
        lon: longitudes, degrees, broadcastable with ``lat``; taken modulo 360 (values within
            [-180, 180] are used as given, others are wrapped into [-180, 180)). As in S2,
            +180 and -180 may land in the two cells either side of the antimeridian, because
            ``sin(pi)`` is not exactly 0.
        level: S2 level(s) 0..30 (int or integer array broadcastable with the points); 30 =
            leaf cells (~1 cm), 10 ~ 10 km, 0 = the 6 cube faces.

    Returns:
        ``np.uint64`` array of the broadcast shape, or an ``np.uint64`` scalar for scalar input.

    Raises:
        InvalidCoordinateError: a non-numeric, NaN, infinite or out-of-range latitude, or a
            non-numeric or non-finite longitude (naming the first bad index and value; see
            :func:`geocell.validate.check_coordinates`).
        S2Error: a level that is not an integer in 0..30.

    Example:
        >>> hex(int(s2_cell_ids(48.8584, 2.2945, level=10)))
        '0x47e66f0000000000'
        >>> s2_cell_ids([0.0, 51.5], [0.0, -0.12], 5).shape
        (2,)
    """
    level_a = _check_level(level)
    lat_a, lon_a = check_coordinates(lat, lon, lon_range=None)
    scalar = lat_a.ndim == 0 and lon_a.ndim == 0 and level_a.ndim == 0
    if level_a.ndim == 0:
        lat_a, lon_a = np.broadcast_arrays(lat_a, lon_a)
        levels = level_a
    else:
        lat_a, lon_a, levels = np.broadcast_arrays(lat_a, lon_a, level_a)
        levels = levels.reshape(-1)
    shape = lat_a.shape
    lat_f = lat_a.reshape(-1)
    lon_f = lon_a.reshape(-1)
    ids = np.empty(lat_f.size, np.uint64)
    for start in range(0, lat_f.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        ids[block] = _cell_ids_block(lat_f[block], lon_f[block], levels if levels.ndim == 0 else levels[block])
    return _scalar_or_array(ids.reshape(shape), scalar)


def s2_level(ids: Any) -> Any:
    """Level (0..30) of each S2 cell id.

    Args:
        ids: cell ids, any shape (uint64, or int64 holding the same bits).

    Returns:
        ``np.int64`` array of the same shape (scalar for scalar input).

    Raises:
        S2Error: an invalid cell id (face > 5, no level marker bit, or 0).

    Example:
        >>> int(s2_level(0x47E66F0000000000))
        10
    """
    arr = _as_cell_ids(ids)
    return _scalar_or_array(_levels_of(arr), arr.ndim == 0)


def s2_parent(ids: Any, level: Any) -> Any:
    """Ancestor of each cell at ``level`` (which must not be deeper than the cell's own level).

    Args:
        ids: cell ids, any shape.
        level: target level(s) 0..30, broadcastable with ``ids``.

    Returns:
        ``np.uint64`` ids of the broadcast shape (scalar for scalar input).

    Raises:
        S2Error: invalid cell id, level outside 0..30, or a level deeper than the cell's.

    Example:
        >>> leaf = s2_cell_ids(48.8584, 2.2945)
        >>> bool(s2_parent(leaf, 10) == s2_cell_ids(48.8584, 2.2945, 10))
        True
    """
    arr = _as_cell_ids(ids)
    lev = _check_level(level)
    scalar = arr.ndim == 0 and lev.ndim == 0
    arr, lev = np.broadcast_arrays(arr, lev)
    too_deep = lev > _levels_of(arr)
    if too_deep.any():
        where = _first_bad(np.atleast_1d(too_deep))
        raise S2Error(
            f"cannot take the level-{int(np.atleast_1d(lev)[where])} parent of a level-"
            f"{int(np.atleast_1d(_levels_of(arr))[where])} cell"
            + ("" if arr.ndim == 0 else f" at index {where}")
            + ": the parent level must not exceed the cell's level"
        )
    lsb = np.uint64(1) << (2 * (MAX_LEVEL - lev)).astype(np.uint64)
    out = (arr & ~(lsb - np.uint64(1))) | lsb
    return _scalar_or_array(out, scalar)


def s2_cell_id_to_token(ids: Any) -> Any:
    """S2 tokens: the id in lower-case hex with trailing zeros removed; ``"X"`` for id 0.

    Args:
        ids: cell ids (uint64, or int64 holding the same bits), any shape. Not validated beyond
            being 64-bit integers, so any 64-bit value has a token.

    Returns:
        ``str`` array (dtype ``<U16``) of the same shape, or a ``str`` for scalar input.

    Example:
        >>> s2_cell_id_to_token(0x47E66F0000000000)
        '47e66f'
    """
    arr = _as_uint64_bits(ids)
    flat = arr.reshape(-1)
    n = flat.size
    # 16 hex digits, most significant first, as UCS4 code points
    big_endian = flat.astype(">u8").view(np.uint8).reshape(n, 8)
    nibbles = np.empty((n, 16), np.uint8)
    np.right_shift(big_endian, 4, out=nibbles[:, 0::2])
    np.bitwise_and(big_endian, 0xF, out=nibbles[:, 1::2])
    codes = _HEX_CODE_POINTS.take(nibbles)
    # numpy strings end at the first trailing NUL: blank out the trailing zero digits
    is_zero = flat == 0
    n_digits = 16 - _trailing_zero_bits(flat) // 4
    n_digits[is_zero] = 1
    codes[np.arange(16) >= n_digits[:, None]] = 0
    codes[is_zero, 0] = ord("X")
    tokens = codes.view("U16").reshape(arr.shape)
    return str(tokens[()]) if arr.ndim == 0 else tokens


_HEX_CODE_POINTS = np.frombuffer(b"0123456789abcdef", np.uint8).astype(np.uint32)
_HEX_CODE_POINTS.setflags(write=False)
# value of each ASCII code point as a hex digit, 255 if it is not one
_HEX_VALUE = np.full(128, 255, np.uint8)
_HEX_VALUE[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX_VALUE[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX_VALUE[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)
_HEX_VALUE.setflags(write=False)


def s2_token_to_cell_id(tokens: Any) -> Any:
    """Inverse of :func:`s2_cell_id_to_token`: hex tokens (1-16 digits, either case) -> ids.

    Missing trailing digits are zeros; ``"X"`` (or ``"x"``) is id 0. The resulting id is not
    checked for validity (use :func:`s2_level` for that).

    Args:
        tokens: ``str`` or array / sequence of ``str``, any shape.

    Returns:
        ``np.uint64`` array of the same shape (scalar for scalar input).

    Raises:
        S2Error: a token that is empty, longer than 16 characters or not hexadecimal.

    Example:
        >>> hex(int(s2_token_to_cell_id("47e66f")))
        '0x47e66f0000000000'
    """
    arr = np.asarray(tokens)
    if arr.dtype.kind == "S":
        arr = np.strings.decode(arr, "ascii", "replace")
    elif arr.dtype.kind != "U":
        if arr.dtype == object and all(isinstance(t, str) for t in arr.flat):
            arr = arr.astype("U") if arr.size else arr.astype("U1")
        else:
            raise S2Error(f"S2 tokens must be strings, got {tokens!r:.80}")
    if arr.size == 0:
        return np.zeros(arr.shape, np.uint64)

    def fail(bad: np.ndarray) -> None:
        where = _first_bad(np.atleast_1d(bad.reshape(arr.shape)))
        raise S2Error(
            f"invalid S2 token {str(np.atleast_1d(arr)[where])!r}"
            + ("" if arr.ndim == 0 else f" at index {where}")
            + ": expected 1 to 16 hexadecimal digits, or 'X'"
        )

    lengths = np.strings.str_len(arr).reshape(-1)
    bad_length = (lengths == 0) | (lengths > 16)
    if bad_length.any():
        fail(bad_length)
    codes = np.ascontiguousarray(arr.reshape(-1), dtype="U16").view(np.uint32).reshape(-1, 16)
    digits = _HEX_VALUE.take(np.minimum(codes, 127))
    digits[np.arange(16) >= lengths[:, None]] = 0  # missing trailing digits are zeros
    is_none = (lengths == 1) & ((codes[:, 0] == ord("X")) | (codes[:, 0] == ord("x")))
    digits[is_none, 0] = 0
    bad = (digits == 255).any(axis=1)
    if bad.any():
        fail(bad)
    big_endian = (digits[:, 0::2] << 4) | digits[:, 1::2]
    ids = big_endian.view(">u8").astype(np.uint64).reshape(arr.shape)
    return _scalar_or_array(ids, arr.ndim == 0)


def s2_cell_center(ids: Any) -> tuple[Any, Any]:
    """Centre of each cell as (lat, lon) in degrees.

    The centre is taken in (s, t) space (the midpoint of the cell's leaf-coordinate range), as
    S2 does; it matches ``s2sphere.CellId(id).to_lat_lng()`` to ~1e-14 degrees. Longitudes are in
    [-180, 180].

    Args:
        ids: valid cell ids, any shape.

    Returns:
        ``(lat, lon)``: two float64 arrays of the ids' shape (scalars for scalar input).

    Raises:
        S2Error: an invalid cell id.

    Example:
        >>> lat, lon = s2_cell_center(s2_cell_ids(48.8584, 2.2945, level=10))
        >>> round(float(lat), 2), round(float(lon), 2)
        (48.9, 2.33)
    """
    arr = _as_cell_ids(ids)
    flat = arr.reshape(-1)
    lat = np.empty(flat.shape)
    lon = np.empty(flat.shape)
    for start in range(0, flat.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        lat[block], lon[block] = _center_block(flat[block])
    return _scalar_or_array(lat.reshape(arr.shape), arr.ndim == 0), _scalar_or_array(
        lon.reshape(arr.shape), arr.ndim == 0
    )


def s2_cell_vertices(ids: Any) -> np.ndarray:
    """The 4 corners of each cell as (lat, lon) degrees, counter-clockwise.

    Corner order is S2's: in face coordinates (u_lo, v_lo), (u_hi, v_lo), (u_hi, v_hi),
    (u_lo, v_hi), matching ``s2sphere.Cell(CellId(id)).get_vertex(k)``, k = 0..3. Cell edges are
    geodesics (great-circle arcs), so a polygon built from these corners is exact for S2 only
    up to densification.

    Args:
        ids: valid cell ids, shape ``S``.

    Returns:
        float64 array of shape ``S + (4, 2)``; ``[..., k, 0]`` latitude, ``[..., k, 1]``
        longitude in [-180, 180].

    Raises:
        S2Error: an invalid cell id.

    Example:
        >>> s2_cell_vertices(s2_cell_ids(48.8584, 2.2945, level=10)).shape
        (4, 2)
    """
    arr = _as_cell_ids(ids)
    flat = arr.reshape(-1)
    out = np.empty((flat.size, 4, 2))
    for start in range(0, flat.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        out[block] = _vertices_block(flat[block])
    return out.reshape(arr.shape + (4, 2))
