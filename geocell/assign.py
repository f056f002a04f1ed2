"""Points -> country (``adm0_a3``) and admin-1 unit (``adm1_code``), vectorised.

A point inside a polygon gets that unit and distance 0. A point outside every polygon (just off
a simplified coastline, or at sea) goes to the nearest unit if it is within
``max_distance_km`` (great-circle km, 25 km by default), else to ``""``. The country is always
the country of the admin-1 unit, so the two answers are consistent by construction (and one
pass gives both: :meth:`Assigner.assign`).

How (:class:`PolygonIndex`): a grid of 0.1-degree cells is built once per polygon set (about
1 s for the shipped 4,596 admin-1 units; 26 MB). A cell that no polygon border crosses lies
inside exactly one polygon or none, found for all cells at once by a scan-line fill at the cell
centres, so most points are resolved by one table lookup; only points in the ~4% of cells that
a border crosses are tested with ``shapely.intersects_xy`` against the polygons whose borders
cross that cell (one call per polygon with many such points, one element-wise call for the
rest; never a Python loop over points). The fallback first drops points whose cell is farther
than ``max_distance_km`` from every land cell (a dilated grid mask). For the others, a k-d tree
of border vertices (unit vectors; borders cut into segments of <= 0.05 deg, so <= 5.6 km)
gives the nearest vertex; an endpoint of the segment holding the nearest border point must lie
within that distance + half a segment, so the segments at the vertices in that ball are the
only candidates, whatever the search radius, across the antimeridian and near the poles. For
each, the closest point is found in a local equirectangular frame at the point's latitude and
its great-circle distance measured with :func:`geocell.geodesy.haversine`: distances are true
km to a border point, within ~1e-5 (relative) of the exact nearest distance; nothing is
compared in degrees. The fallback structures are built on first use (~0.5 s).

Conventions: latitude first; degrees; longitudes in (180, 360] are accepted and mean
``lon - 360``; a point exactly on a border belongs to the unit that comes first in file order
(also for nearest-unit ties); codes are numpy fixed-width unicode arrays (``<U3`` for
countries, ``<Un`` for admin-1 codes, n = the longest code, 9 for the shipped file) with the
input's broadcast shape; a scalar input gives a ``str`` (and a ``float`` distance).

Example:
    >>> from geocell.assign import assign_country, assign_admin1
    >>> assign_country([48.8566, 40.7128], [2.3522, -74.0060]).tolist()
    ['FRA', 'USA']
    >>> assign_admin1(48.8566, 2.3522)
    'FRA-5333'
    >>> code, km = assign_country(0.0, -30.0, return_distance=True)   # mid-Atlantic
    >>> code, km
    ('', nan)
"""

from __future__ import annotations

import functools
import math
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from .constants import ASSIGN_MAX_DISTANCE_KM, EARTH_RADIUS_KM
from .errors import AssignError, InvalidCoordinateError
from .geodesy import haversine, latlon_to_xyz
from .validate import check_latlon

__all__ = [
    "Assigner",
    "Assignment",
    "PolygonIndex",
    "InvalidCoordinateError",
    "AssignError",
    "assign_country",
    "assign_admin1",
    "get_assigner",
    "DEFAULT_GRID_DEG",
    "MAX_SEARCH_KM",
]

#: Cell size of the lookup grid, degrees (3600 x 1800 cells).
DEFAULT_GRID_DEG: float = 0.1
#: Largest useful ``max_distance_km``: half the Earth's circumference (larger values, including
#: ``math.inf``, are accepted and mean this), so every point gets the nearest unit.
MAX_SEARCH_KM: float = math.pi * EARTH_RADIUS_KM
_VERTEX_SPACING_DEG = 0.05  # border segments are cut to at most this many degrees ...
_NEIGHBOURS = 16  # vertices fetched per fallback point before a ball query is needed
_MIN_BATCH = 16  # candidate points from which a polygon gets its own intersects_xy call
_CHUNK = 16_384  # fallback points handled per vectorised step (bounds peak memory)
_KM_PER_DEG = EARTH_RADIUS_KM * math.pi / 180.0
#: ... so none is longer than this (km along the lon/lat-straight segment; 1 deg <= 111.2 km)
_SEGMENT_KM = _VERTEX_SPACING_DEG * _KM_PER_DEG * 1.0001
_POLYGON_TYPES = (3, 6)  # shapely type ids of Polygon and MultiPolygon


# ----------------------------------------------------------------------------------- helpers
def _sorted_unique(a: np.ndarray) -> np.ndarray:
    """np.unique for a 1-D int array via sort (np.unique is ~20x slower here for int64)."""
    s = np.sort(a)
    keep = np.empty(len(s), dtype=bool)
    keep[:1] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + c)`` for each (s, c), without a Python loop."""
    counts = counts.astype(np.int64, copy=False)
    total = int(counts.sum())
    shift = np.repeat(starts.astype(np.int64) - np.cumsum(counts) + counts, counts)
    return np.arange(total, dtype=np.int64) + shift


def _group_bounds(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) of the runs of equal values in a sorted 1-D array."""
    if len(sorted_keys) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    return starts, np.r_[starts[1:], len(sorted_keys)]


def _wrap180(dlon: np.ndarray) -> np.ndarray:
    """Longitude differences wrapped into [-180, 180)."""
    return (dlon + 180.0) % 360.0 - 180.0


def _check(lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray, tuple[int, ...], bool]:
    """Validated flat float64 (lat, lon) with lon in [-180, 180], the broadcast shape, scalar?"""
    scalar = np.ndim(lat) == 0 and np.ndim(lon) == 0
    lat_a, lon_a, _ = check_latlon(lat, lon)
    return lat_a.reshape(-1), lon_a.reshape(-1), lat_a.shape, scalar


def _check_max_distance(max_distance_km: float) -> float:
    try:
        value = float(max_distance_km)
    except (TypeError, ValueError):
        raise AssignError(f"max_distance_km must be a number of km, got {max_distance_km!r}") from None
    if not value >= 0.0:  # also rejects NaN
        raise AssignError(f"max_distance_km must be a distance >= 0 km, got {max_distance_km!r}")
    return min(value, MAX_SEARCH_KM)


# ----------------------------------------------------------------------------------- index
class PolygonIndex:
    """Point-in-polygon lookup and nearest-polygon search (km) for a fixed set of polygons.

    Args:
        geometries: ``(K,)`` shapely Polygons / MultiPolygons in lon/lat degrees (a GeoSeries,
            a GeometryArray, a list or an object array); ``None`` / empty entries never match.
            Polygons should not overlap (Natural Earth units, semantic cells); where they do,
            the lowest index wins.
        grid_deg: lookup-grid cell size, degrees; 180 must be a multiple of it.

    Coordinates must lie within lon [-180, 180], lat [-90, 90] (polygons split at the
    antimeridian, as Natural Earth's are). Building takes about 1 s for the 4,596 shipped
    admin-1 units; memory is an int32 grid (26 MB at 0.1 deg) plus candidate lists for the
    cells that borders cross. The fallback structures are built on the first :meth:`nearest`.

    Example:
        >>> import shapely
        >>> idx = PolygonIndex([shapely.box(0, 0, 10, 10), shapely.box(10, 0, 20, 10)])
        >>> idx.locate([5.0, 5.0, 50.0], [5.0, 15.0, 5.0]).tolist()
        [0, 1, -1]
    """

    def __init__(self, geometries: Any, *, grid_deg: float = DEFAULT_GRID_DEG):
        import shapely

        geoms = np.asarray(getattr(geometries, "array", geometries), dtype=object)
        if geoms.ndim != 1:
            raise AssignError(f"geometries must be 1-D, got shape {geoms.shape}")
        missing = shapely.is_missing(geoms)
        types = shapely.get_type_id(geoms)
        bad = ~missing & ~np.isin(types, _POLYGON_TYPES)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AssignError(f"geometries[{i}] is a {geoms[i].geom_type}; expected Polygon or MultiPolygon")
        try:
            nrow = int(round(180.0 / float(grid_deg)))
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            nrow = 0
        if not (0.005 <= float(grid_deg or 0) <= 10.0) or abs(nrow * float(grid_deg) - 180.0) > 1e-9:
            raise AssignError(f"grid_deg must divide 180 evenly and lie in [0.005, 10], got {grid_deg!r}")
        if len(geoms) and not missing.all():
            xmin, ymin, xmax, ymax = shapely.total_bounds(geoms)
            if xmin < -180.0 - 1e-9 or xmax > 180.0 + 1e-9 or ymin < -90.0 - 1e-9 or ymax > 90.0 + 1e-9:
                raise AssignError(
                    f"polygons must lie within lon [-180, 180], lat [-90, 90] (split them at the "
                    f"antimeridian); their bounds are ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})"
                )
        self.geometries = geoms.copy()
        self.geometries.flags.writeable = False
        self.grid_deg = float(grid_deg)
        self._ncol, self._nrow = 2 * nrow, nrow
        self._prepared = np.zeros(len(geoms), dtype=bool)
        self._lock = threading.Lock()
        self._vertices: tuple | None = None
        self._near: dict[float, np.ndarray] = {}
        self._build()

    def __len__(self) -> int:
        return len(self.geometries)

    # ------------------------------------------------------------------------- grid build
    def _cells(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        g = self.grid_deg
        col = np.clip(np.floor((lon + 180.0) / g).astype(np.int64), 0, self._ncol - 1)
        row = np.clip(np.floor((lat + 90.0) / g).astype(np.int64), 0, self._nrow - 1)
        return row * self._ncol + col

    def _rings(self):
        """Ring geometries and the polygon index of each ring."""
        import shapely

        geoms = np.where(shapely.is_missing(self.geometries), shapely.Polygon(), self.geometries)
        parts, part_poly = shapely.get_parts(geoms, return_index=True)
        rings, ring_part = shapely.get_rings(parts, return_index=True)
        return rings, part_poly[ring_part]

    def _build(self) -> None:
        import shapely

        g, ncol, nrow, n = self.grid_deg, self._ncol, self._nrow, len(self.geometries)
        ncell = ncol * nrow
        rings, ring_poly = self._rings()
        # 1. cells a border passes through: segmentize to <= g/2 so consecutive vertices are in
        #    the same or adjacent cells; a diagonal step may also cross the two other cells.
        xy, ridx = shapely.get_coordinates(shapely.segmentize(rings, g * 0.5), return_index=True)
        flat = self._cells(xy[:, 1], xy[:, 0])
        poly = ring_poly[ridx]
        row, col = flat // ncol, flat % ncol
        same_ring = ridx[1:] == ridx[:-1]
        diag = same_ring & (row[1:] != row[:-1]) & (col[1:] != col[:-1])
        pair_keys = [
            flat * n + poly,
            (row[:-1][diag] * ncol + col[1:][diag]) * n + poly[:-1][diag],
            (row[1:][diag] * ncol + col[:-1][diag]) * n + poly[:-1][diag],
        ]
        # 2. scan-line fill at cell centres: which polygon holds each centre (even-odd rule).
        xy0, r0 = shapely.get_coordinates(rings, return_index=True)
        label, cover = self._scanline(xy0, r0, ring_poly)
        # 3. centres covered by several polygons (overlaps): test those cells exactly too
        ambiguous = np.flatnonzero((cover != 0) & (cover != 1))
        if len(ambiguous):
            tree = shapely.STRtree(self.geometries)
            r, c = ambiguous // ncol, ambiguous % ncol
            boxes = shapely.box(-180 + c * g, -90 + r * g, -180 + (c + 1) * g, -90 + (r + 1) * g)
            qi, qp = tree.query(boxes)
            pair_keys.append(ambiguous[qi] * n + qp)
        keys = _sorted_unique(np.concatenate(pair_keys)) if n else np.zeros(0, np.int64)
        cell_of_pair, self._cand_poly = keys // max(n, 1), keys % max(n, 1)
        starts, _ = _group_bounds(cell_of_pair)
        border_cells = cell_of_pair[starts]
        self._cand_ptr = np.r_[starts, len(keys)].astype(np.int64)
        grid = np.where(cover == 1, label, -1).astype(np.int32)
        grid[border_cells] = -2 - np.arange(len(border_cells), dtype=np.int32)
        self._grid = grid
        self.n_border_cells = len(border_cells)
        assert ncell == grid.size

    def _scanline(self, xy: np.ndarray, ridx: np.ndarray, ring_poly: np.ndarray):
        """(label, cover) per cell: the polygon holding the cell centre (valid where cover == 1)
        and how many polygons hold it."""
        g, ncol, nrow = self.grid_deg, self._ncol, self._nrow
        ncell = ncol * nrow
        seg = np.flatnonzero(ridx[1:] == ridx[:-1])
        x0, y0, x1, y1 = xy[seg, 0], xy[seg, 1], xy[seg + 1, 0], xy[seg + 1, 1]
        spoly = ring_poly[ridx[seg]]
        ymin, ymax = np.minimum(y0, y1), np.maximum(y0, y1)
        # rows whose centre y_c satisfies ymin <= y_c < ymax (half-open: each ring crosses a
        # row line an even number of times); a generous range, then the exact test
        rlo = np.clip(np.floor((ymin + 90.0) / g - 0.5).astype(np.int64), 0, nrow)
        rhi = np.clip(np.floor((ymax + 90.0) / g - 0.5).astype(np.int64) + 2, 0, nrow)
        count = np.maximum(rhi - rlo, 0)
        s = np.repeat(np.arange(len(seg)), count)
        r = _ranges(rlo, count)
        yc = -90.0 + (r + 0.5) * g
        hit = (yc >= ymin[s]) & (yc < ymax[s])
        s, r, yc = s[hit], r[hit], yc[hit]
        xc = x0[s] + (yc - y0[s]) * (x1[s] - x0[s]) / (y1[s] - y0[s])
        p = spoly[s]
        order = np.lexsort((xc, r, p))
        xc, r, p = xc[order], r[order], p[order]
        if len(xc) % 2 or np.any(p[0::2] != p[1::2]) or np.any(r[0::2] != r[1::2]):
            raise AssignError("a polygon ring is not closed or is degenerate (odd scan-line crossings)")
        # [x_in, x_out) intervals -> first and one-past-last column whose centre is inside
        c_in = np.clip(np.ceil((xc[0::2] + 180.0) / g - 0.5).astype(np.int64), 0, ncol)
        c_out = np.clip(np.ceil((xc[1::2] + 180.0) / g - 0.5).astype(np.int64), 0, ncol)
        row, pid = r[0::2], p[0::2]
        keep = c_out > c_in
        a, b, pid = row[keep] * ncol + c_in[keep], row[keep] * ncol + c_out[keep], pid[keep]
        cover = np.cumsum(np.bincount(a, minlength=ncell + 1) - np.bincount(b, minlength=ncell + 1))[:ncell]
        weights = pid.astype(np.float64)  # exact: polygon indices < 2**53
        label = np.cumsum(
            np.bincount(a, weights, minlength=ncell + 1) - np.bincount(b, weights, minlength=ncell + 1)
        )[:ncell]
        return np.rint(label).astype(np.int64), cover

    # ------------------------------------------------------------------------- lookup
    def _prepare(self, idx: np.ndarray) -> None:
        import shapely

        todo = idx[~self._prepared[idx]]
        if len(todo):
            with self._lock:
                shapely.prepare(self.geometries[todo])
                self._prepared[todo] = True

    def _locate(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """``(N,)`` int64 polygon index (-1: none) for validated flat arrays."""
        import shapely

        v = self._grid[self._cells(lat, lon)]
        out = v.astype(np.int64)
        out[v < 0] = -1
        pts = np.flatnonzero(v <= -2)
        if len(pts) == 0:
            return out
        k = (-2 - v[pts]).astype(np.int64)
        counts = self._cand_ptr[k + 1] - self._cand_ptr[k]
        pair_pt = np.repeat(pts, counts)
        pair_poly = self._cand_poly[_ranges(self._cand_ptr[k], counts)]
        # stable sort by polygon; int16 keys get numpy's radix sort (8x faster than int64)
        keys = pair_poly.astype(np.int16) if len(self.geometries) < 2**15 else pair_poly
        order = np.argsort(keys, kind="stable")
        pair_pt, pair_poly = pair_pt[order], pair_poly[order]
        starts, ends = _group_bounds(pair_poly)
        self._prepare(pair_poly[starts])
        # polygons with many candidate points: one intersects_xy call each; the rest in one
        # element-wise call (a call costs ~10 us, a pair ~1 us)
        big = (ends - starts) >= _MIN_BATCH
        best = np.full(len(out), np.iinfo(np.int64).max, dtype=np.int64)
        for s, e in zip(starts[big].tolist(), ends[big].tolist()):
            p = int(pair_poly[s])
            cand = pair_pt[s:e]
            inside = cand[shapely.intersects_xy(self.geometries[p], lon[cand], lat[cand])]
            np.minimum.at(best, inside, p)
        small = np.ones(len(pair_pt), dtype=bool)
        small[_ranges(starts[big], ends[big] - starts[big])] = False
        sp, spoly = pair_pt[small], pair_poly[small]
        hit = shapely.intersects_xy(self.geometries[spoly], lon[sp], lat[sp])
        np.minimum.at(best, sp[hit], spoly[hit])  # the lowest index wins where polygons overlap
        found = best[pts] != np.iinfo(np.int64).max
        out[pts[found]] = best[pts[found]]
        return out

    def locate(self, lat: Any, lon: Any) -> np.ndarray:
        """Index of the polygon containing each point (its border included), -1 for none.

        Args:
            lat, lon: degrees, broadcastable; longitudes in (180, 360] mean ``lon - 360``.

        Returns:
            int64 array with the broadcast shape.

        Raises:
            InvalidCoordinateError: NaN, out of range or non-numeric input, naming the first.
        """
        lat_f, lon_f, shape, _ = _check(lat, lon)
        return self._locate(lat_f, lon_f).reshape(shape)

    # ------------------------------------------------------------------------- nearest
    def _near_mask(self, max_km: float) -> np.ndarray:
        """Bool grid: cells that may hold a point within ``max_km`` of some polygon."""
        from scipy.ndimage import maximum_filter1d

        with self._lock:
            if max_km in self._near:
                return self._near[max_km]
        g, ncol, nrow = self.grid_deg, self._ncol, self._nrow
        land = (self._grid != -1).reshape(nrow, ncol).view(np.uint8)
        reach_deg = max_km / _KM_PER_DEG  # |dlat| <= reach_deg for any pair within max_km
        k_lat = int(math.floor(reach_deg / g)) + 1
        mask = maximum_filter1d(land, size=2 * k_lat + 1, axis=0, mode="constant", cval=0)
        # |dlon| <= 2 asin(sin(d / 2R) / cos(phi_max)), phi_max = the most poleward latitude
        # either point can have (haversine with both cosines replaced by cos(phi_max))
        edge = np.abs(-90.0 + np.arange(nrow + 1) * g)
        phi_max = np.minimum(np.maximum(edge[:-1], edge[1:]) + reach_deg, 90.0)
        ratio = math.sin(max_km / (2.0 * EARTH_RADIUS_KM)) / np.maximum(np.cos(np.radians(phi_max)), 1e-300)
        dlon = np.where(ratio >= 1.0, 360.0, 2.0 * np.degrees(np.arcsin(np.minimum(ratio, 1.0))))
        k_lon = np.minimum(np.floor(dlon / g).astype(np.int64) + 1, ncol)
        out = np.empty_like(mask)
        for k in np.unique(k_lon).tolist():  # one pass per distinct width (a few hundred rows each)
            rows = np.flatnonzero(k_lon == k)
            if 2 * k + 1 >= ncol:
                out[rows] = mask[rows].max(axis=1, keepdims=True)
            else:
                out[rows] = maximum_filter1d(mask[rows], size=2 * k + 1, axis=1, mode="wrap")
        result = out.reshape(-1).astype(bool)
        with self._lock:
            if len(self._near) >= 4:
                self._near.pop(next(iter(self._near)))
            self._near[max_km] = result
        return result

    def _border_vertices(self):
        """Border vertices every <= ``_VERTEX_SPACING_DEG`` (lat, lon, polygon, whether the
        previous / next vertex is on the same ring) and a k-d tree of their unit vectors."""
        import shapely
        from scipy.spatial import cKDTree

        with self._lock:
            if self._vertices is not None:
                return self._vertices
        rings, ring_poly = self._rings()
        xy, ridx = shapely.get_coordinates(shapely.segmentize(rings, _VERTEX_SPACING_DEG), return_index=True)
        same = ridx[1:] == ridx[:-1]
        lat, lon = np.ascontiguousarray(xy[:, 1]), np.ascontiguousarray(xy[:, 0])
        tree = cKDTree(latlon_to_xyz(lat, lon), leafsize=16, balanced_tree=False, compact_nodes=False)
        vertices = (tree, lat, lon, ring_poly[ridx].astype(np.int32), np.r_[False, same], np.r_[same, False])
        with self._lock:
            self._vertices = vertices
        return vertices

    def _nearest(self, lat: np.ndarray, lon: np.ndarray, max_km: float) -> tuple[np.ndarray, np.ndarray]:
        """For validated flat arrays of points outside every polygon: (index, km), -1 / NaN
        where no polygon is within ``max_km``."""
        idx = np.full(len(lat), -1, dtype=np.int64)
        dist = np.full(len(lat), np.nan)
        if len(lat) == 0 or max_km <= 0.0 or len(self.geometries) == 0:
            return idx, dist
        near = np.flatnonzero(self._near_mask(max_km)[self._cells(lat, lon)])
        for start in range(0, len(near), _CHUNK):  # chunks bound the memory of the pair arrays
            rows = near[start:start + _CHUNK]
            idx[rows], dist[rows] = self._nearest_chunk(lat[rows], lon[rows], max_km)
        return idx, dist

    def _nearest_chunk(self, plat: np.ndarray, plon: np.ndarray, max_km: float) -> tuple[np.ndarray, np.ndarray]:
        """The work of :meth:`_nearest` for points near some border.

        Every border segment is at most ``_SEGMENT_KM`` long, so an endpoint of the segment
        holding the nearest border point lies within (distance to the nearest vertex +
        ``_SEGMENT_KM / 2``): the segments at the vertices in that ball are the candidates.
        """
        n = len(plat)
        idx = np.full(n, -1, dtype=np.int64)
        dist = np.full(n, np.nan)
        tree, vlat, vlon, vpoly, has_prev, has_next = self._border_vertices()
        if tree.n == 0:
            return idx, dist
        k = min(_NEIGHBOURS, tree.n)
        xyz = latlon_to_xyz(plat, plon)
        chord, vert = tree.query(xyz, k=k)
        chord, vert = chord.reshape(n, k), vert.reshape(n, k)
        nearest_vertex_km = 2.0 * EARTH_RADIUS_KM * np.arcsin(np.minimum(chord[:, 0] / 2.0, 1.0))
        reach_km = np.minimum(nearest_vertex_km + _SEGMENT_KM / 2.0, math.pi * EARTH_RADIUS_KM)
        reach_chord = 2.0 * np.sin(reach_km / (2.0 * EARTH_RADIUS_KM)) + 1e-12
        possible = nearest_vertex_km - _SEGMENT_KM / 2.0 <= max_km  # else nothing within max_km
        in_ball = (chord <= reach_chord[:, None]) & possible[:, None]
        pt = np.repeat(np.arange(n), k)[in_ball.reshape(-1)]
        v = vert.reshape(-1)[in_ball.reshape(-1)]
        full = np.flatnonzero(in_ball[:, -1])  # the ball may hold more than k vertices
        if len(full):
            balls = tree.query_ball_point(xyz[full], reach_chord[full])
            sizes = np.fromiter(map(len, balls), dtype=np.int64, count=len(balls))
            pt = np.r_[pt, np.repeat(full, sizes)]
            v = np.r_[v, np.fromiter((j for ball in balls for j in ball), dtype=np.int64, count=int(sizes.sum()))]
        # the segments (v, v + 1) and (v - 1, v) of each candidate vertex
        nxt, prv = has_next[v], has_prev[v]
        pt = np.r_[pt[nxt], pt[prv]]
        a = np.r_[v[nxt], v[prv] - 1]
        if len(a) == 0:
            return idx, dist
        p_lat, p_lon = plat[pt], plon[pt]
        # closest point of each segment in a local equirectangular frame (km) at the point,
        # then its great-circle distance
        scale = np.cos(np.radians(p_lat)) * _KM_PER_DEG
        dxa, dxb = _wrap180(vlon[a] - p_lon), _wrap180(vlon[a + 1] - p_lon)
        dya, dyb = vlat[a] - p_lat, vlat[a + 1] - p_lat
        xa, ya = dxa * scale, dya * _KM_PER_DEG
        ex, ey = (dxb - dxa) * scale, (dyb - dya) * _KM_PER_DEG
        length2 = ex * ex + ey * ey
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.clip(-(xa * ex + ya * ey) / length2, 0.0, 1.0)
        t[length2 == 0.0] = 0.0
        km = haversine(p_lat, p_lon, p_lat + dya + t * (dyb - dya), p_lon + dxa + t * (dxb - dxa))
        best = np.full(n, np.inf)
        np.minimum.at(best, pt, km)
        # the lowest polygon index among the (near-)ties, e.g. two units whose shared border
        # meets the coast at the nearest vertex
        tie = np.flatnonzero(km <= best[pt] + 1e-9)
        winner = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(winner, pt[tie], vpoly[a[tie]])
        ok = np.flatnonzero(best <= max_km)
        idx[ok] = winner[ok]
        dist[ok] = best[ok]
        return idx, dist

    def nearest(self, lat: Any, lon: Any, *, max_distance_km: float = ASSIGN_MAX_DISTANCE_KM):
        """The containing polygon, else the nearest one within ``max_distance_km``.

        Args:
            lat, lon: degrees, broadcastable.
            max_distance_km: search radius, great-circle km, >= 0 (``math.inf``: any distance).

        Returns:
            (index, distance_km): int64 (-1: none within reach) and float64 km (0 inside,
            NaN where the index is -1), both with the broadcast shape.
        """
        max_km = _check_max_distance(max_distance_km)
        lat_f, lon_f, shape, _ = _check(lat, lon)
        idx, dist = self._assign(lat_f, lon_f, max_km)
        return idx.reshape(shape), dist.reshape(shape)

    def _assign(self, lat: np.ndarray, lon: np.ndarray, max_km: float):
        idx = self._locate(lat, lon)
        dist = np.where(idx >= 0, 0.0, np.nan)
        out = np.flatnonzero(idx < 0)
        if len(out):
            idx[out], dist[out] = self._nearest(lat[out], lon[out], max_km)
        return idx, dist


# ----------------------------------------------------------------------------------- assigner
@dataclass(frozen=True)
class Assignment:
    """Result of :meth:`Assigner.assign`; arrays share the input's broadcast shape.

    Attributes:
        country: ``<U3`` adm0_a3 codes (``""``: nothing within reach).
        admin1: ``<Un`` adm1_code codes (``""`` likewise).
        distance_km: float64 great-circle km to the unit (0 inside it, NaN for ``""``).
        index: int64 row of the admin-1 table (-1 for ``""``).
    """

    country: Any
    admin1: Any
    distance_km: Any
    index: Any


class Assigner:
    """Reusable point -> admin-1 / country assigner (builds its index once, ~1.5 s).

    Args:
        admin1: GeoDataFrame with ``adm1_code``, ``adm0_a3`` and polygon geometry in EPSG:4326
            (see :func:`geocell.boundaries.load_admin1`); ``None`` for the shipped layer.
        grid_deg: lookup-grid cell size in degrees (see :class:`PolygonIndex`).

    Example:
        >>> a = Assigner()
        >>> r = a.assign([48.8566, -33.8688], [2.3522, 151.2093])
        >>> r.country.tolist(), r.admin1.tolist()
        (['FRA', 'AUS'], ['FRA-5333', 'AUS-2654'])
    """

    def __init__(self, admin1: Any = None, *, grid_deg: float = DEFAULT_GRID_DEG):
        from .boundaries import load_admin1

        if admin1 is None:
            admin1 = load_admin1()
        missing = [c for c in ("adm1_code", "adm0_a3") if c not in admin1.columns]
        if missing:
            raise AssignError(f"the admin-1 table lacks column(s) {', '.join(missing)}")
        crs = getattr(admin1, "crs", None)
        if crs is not None and not crs.equals("EPSG:4326"):
            raise AssignError(f"polygons must be in EPSG:4326 (lon/lat degrees), got {crs.to_string()}")
        adm1 = admin1["adm1_code"].fillna("").astype(str).to_numpy()
        adm0 = admin1["adm0_a3"].fillna("").astype(str).to_numpy()
        width1 = max(1, max((len(c) for c in adm1), default=1))
        width0 = max(3, max((len(c) for c in adm0), default=3))
        # codes with a trailing "" entry, so that index -1 gives ""
        self.adm1_codes = np.append(adm1, "").astype(f"<U{width1}")
        self.adm0_codes = np.append(adm0, "").astype(f"<U{width0}")
        self.index = PolygonIndex(admin1.geometry, grid_deg=grid_deg)

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None, *, grid_deg: float = DEFAULT_GRID_DEG) -> "Assigner":
        """An Assigner for an admin-1 file (see :func:`geocell.boundaries.load_admin1`)."""
        from .boundaries import load_admin1

        return cls(load_admin1(path), grid_deg=grid_deg)

    def assign(self, lat: Any, lon: Any, *, max_distance_km: float = ASSIGN_MAX_DISTANCE_KM) -> Assignment:
        """Country, admin-1 and distance for each point in one pass.

        Args:
            lat, lon: degrees, broadcastable scalars / lists / arrays; longitudes in (180, 360]
                mean ``lon - 360``.
            max_distance_km: points outside every unit go to the nearest one within this
                great-circle distance (km); 0 disables the fallback, ``math.inf`` assigns every
                point to the nearest unit.

        Returns:
            :class:`Assignment` (str / float fields for scalar input).

        Raises:
            InvalidCoordinateError: NaN, infinite, out-of-range (|lat| > 90, lon outside
                [-180, 360]) or non-numeric values; the message names the first bad index.
            AssignError: max_distance_km negative or NaN.
        """
        max_km = _check_max_distance(max_distance_km)
        lat_f, lon_f, shape, scalar = _check(lat, lon)
        idx, dist = self.index._assign(lat_f, lon_f, max_km)
        country, admin1 = self.adm0_codes[idx].reshape(shape), self.adm1_codes[idx].reshape(shape)
        dist, idx = dist.reshape(shape), idx.reshape(shape)
        if scalar:
            return Assignment(str(country), str(admin1), float(dist), int(idx))
        return Assignment(country, admin1, dist, idx)

    def country(self, lat: Any, lon: Any, *, max_distance_km: float = ASSIGN_MAX_DISTANCE_KM,
                return_distance: bool = False):
        """adm0_a3 codes (and km if ``return_distance``); see :meth:`assign`."""
        r = self.assign(lat, lon, max_distance_km=max_distance_km)
        return (r.country, r.distance_km) if return_distance else r.country

    def admin1(self, lat: Any, lon: Any, *, max_distance_km: float = ASSIGN_MAX_DISTANCE_KM,
               return_distance: bool = False):
        """adm1_code codes (and km if ``return_distance``); see :meth:`assign`."""
        r = self.assign(lat, lon, max_distance_km=max_distance_km)
        return (r.admin1, r.distance_km) if return_distance else r.admin1


@functools.lru_cache(maxsize=4)
def _assigner_cached(path: str, mtime_ns: int, size: int, grid_deg: float) -> Assigner:
    from .boundaries import load_admin1

    return Assigner(load_admin1(path), grid_deg=grid_deg)


def get_assigner(path: str | os.PathLike | None = None, *, grid_deg: float = DEFAULT_GRID_DEG) -> Assigner:
    """The process-wide Assigner for a boundary file (the shipped one by default).

    Built on first use (about 2 s with loading) and cached by path, modification time, size
    and grid size, so repeated calls (the CLI, cells, metrics) share one index.
    """
    from .boundaries import _resolve

    return _assigner_cached(*_resolve(path), float(grid_deg))


def _assigner_for(boundaries: Any) -> Assigner:
    if boundaries is None:
        return get_assigner()
    if isinstance(boundaries, Assigner):
        return boundaries
    if isinstance(boundaries, (str, os.PathLike)):
        return get_assigner(boundaries)
    if hasattr(boundaries, "geometry") and hasattr(boundaries, "columns"):
        return Assigner(boundaries)  # not cached: pass an Assigner to reuse the index
    raise AssignError(
        f"boundaries must be None, an Assigner, a path or a GeoDataFrame, got {type(boundaries).__name__}"
    )


def assign_country(lat: Any, lon: Any, *, max_distance_km: float = ASSIGN_MAX_DISTANCE_KM,
                   return_distance: bool = False, boundaries: Any = None):
    """Natural Earth country code (``adm0_a3``) of each point.

    Args:
        lat, lon: degrees, broadcastable (scalars, lists, numpy arrays); longitudes in
            (180, 360] are accepted and mean ``lon - 360``.
        max_distance_km: a point outside every unit goes to the nearest one within this many
            great-circle km (default 25, ``ASSIGN_MAX_DISTANCE_KM``), else gets ``""``.
        return_distance: also return the distance in km (0 inside, NaN for ``""``).
        boundaries: ``None`` (shipped layer, cached index), an :class:`Assigner` (reuse an
            index), a path to an admin-1 file (cached), or an admin-1 GeoDataFrame (indexed on
            every call: slow).

    Returns:
        ``<U3`` array with the broadcast shape (a ``str`` for scalars), or ``(codes, km)``.
        The country is the country of :func:`assign_admin1`'s unit.

    Raises:
        InvalidCoordinateError: NaN / infinite / out-of-range / non-numeric input (names the
            first bad index and value).

    Example:
        >>> assign_country([48.8566, -33.8688, 64.8378], [2.3522, 151.2093, -147.7164]).tolist()
        ['FRA', 'AUS', 'USA']
    """
    return _assigner_for(boundaries).country(lat, lon, max_distance_km=max_distance_km, return_distance=return_distance)


def assign_admin1(lat: Any, lon: Any, *, max_distance_km: float = ASSIGN_MAX_DISTANCE_KM,
                  return_distance: bool = False, boundaries: Any = None):
    """Natural Earth admin-1 code (``adm1_code``) of each point; arguments as
    :func:`assign_country`.

    Returns:
        ``<Un>`` array (n = the longest code, 9 for the shipped file) with the broadcast shape
        (a ``str`` for scalars), or ``(codes, km)``.

    Example:
        >>> assign_admin1([48.8566, 40.7128], [2.3522, -74.0060]).tolist()
        ['FRA-5333', 'USA-3559']
    """
    return _assigner_for(boundaries).admin1(lat, lon, max_distance_km=max_distance_km, return_distance=return_distance)
