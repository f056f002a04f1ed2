"""Semantic geocells: cells that follow administrative borders (after PIGEON).

Algorithm of :func:`build_semantic`, per country:

1. Every training point gets its Natural Earth admin-1 unit (the nearest one for points just off
   the coast or at sea). Units holding points are the seeds.
2. Units without points join a neighbouring group (breadth-first through touching polygons;
   an island without points joins the nearest group), so a country's cells cover it without
   gaps.
3. While a group holds fewer than ``min_samples`` points, it merges with the smallest touching
   group of the same country (the nearest one if it touches none). A country with fewer than
   ``min_samples`` points in all becomes one cell below the minimum.
4. A group holding more than ``max_samples`` points is split in two at the median of its points
   along their principal axis (in a local plane: longitude scaled by the cosine of the mean
   latitude), and the polygon is cut along the same line, recursively, until every part holds
   at most ``max_samples``. Each half holds at least ``max_samples / 2 >= min_samples`` points,
   so the bounds hold by construction (``max_samples >= 2 * min_samples`` is required).

Why median bisection and not k-means or OPTICS: both leave cluster sizes unbounded, so they need
a repair pass that merges and re-splits, and OPTICS labels part of the points as noise. A
two-way median cut is a Voronoi cut between two centres placed symmetrically about the median
line, is deterministic with no seed, and keeps every cell within [min, max].

Cells never cross a country border: merging and splitting stay inside one country.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lat, lon = rng.normal(47, 2, 3000), rng.normal(2.5, 2, 3000)
    >>> cells = build_semantic(lat, lon, min_samples=50, max_samples=400)
    >>> bool(cells.counts.max() <= 400)
    True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .cells import CellSet, CellSetError, cellset_from_points
from .validate import check_latlon

__all__ = ["build_semantic"]

_WORLD = (-180.0, -90.0, 180.0, 90.0)


def _polygonal(geom):
    """Keep only the polygonal parts of a geometry (intersections may add lines or points)."""
    import shapely

    parts = [p for p in shapely.get_parts(geom) if p.geom_type in ("Polygon", "MultiPolygon") and not p.is_empty]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts) if len(parts) > 1 else parts[0]


class _Splitter:
    """Recursive median bisection of one group's points and polygon."""

    def __init__(self, lat: np.ndarray, lon: np.ndarray, max_samples: int):
        self.lat, self.lon, self.max_samples = lat, lon, max_samples

    def split(self, idx: np.ndarray, polygon, path: str, out: list) -> None:
        if idx.size <= self.max_samples:
            out.append((path, idx, polygon))
            return
        halves = self._bisect(idx, polygon)
        if halves is None:  # all points identical: cannot be split
            out.append((path, idx, polygon))
            return
        for side, (sub_idx, sub_poly) in enumerate(halves):
            self.split(sub_idx, sub_poly, f"{path}.{side}", out)

    def _bisect(self, idx: np.ndarray, polygon):
        import shapely
        import shapely.affinity

        from .geodesy import spherical_mean

        lat, lon = self.lat[idx], self.lon[idx]
        lat0, lon0 = spherical_mean(lat, lon)
        scale = max(math.cos(math.radians(lat0)), 0.05)
        x = ((lon - lon0 + 180.0) % 360.0 - 180.0) * scale
        y = lat
        xy = np.c_[x - x.mean(), y - y.mean()]
        cov = xy.T @ xy
        if not np.isfinite(cov).all() or np.abs(cov).max() < 1e-18:
            return None
        _, vecs = np.linalg.eigh(cov)
        d = vecs[:, -1]
        d = d if (d[0], d[1]) >= (0.0, 0.0) else -d  # a fixed sign: deterministic
        proj = np.c_[x, y] @ d
        order = np.argsort(proj, kind="stable")
        half = idx.size // 2
        lo_val, hi_val = proj[order[half - 1]], proj[order[half]]
        if hi_val <= lo_val:  # ties at the median: cut at the nearest distinct value
            distinct = np.flatnonzero(np.diff(proj[order]) > 0)
            if distinct.size == 0:
                return None
            cut = distinct[np.argmin(np.abs(distinct + 1 - half))] + 1
            lo_val, hi_val = proj[order[cut - 1]], proj[order[cut]]
        threshold = 0.5 * (lo_val + hi_val)
        below = proj <= threshold
        # the half-plane {p <= threshold} in the local plane, as a large polygon
        e = np.array([-d[1], d[0]])
        q = threshold * d
        big = 1e4
        half_plane = shapely.Polygon([q + big * e, q - big * e, q - big * e - big * d, q + big * e - big * d])
        # back to lon/lat: lon = x / scale + lon0, lat = y; repeat at +-360 for the antimeridian
        in_lonlat = shapely.affinity.affine_transform(half_plane, [1.0 / scale, 0.0, 0.0, 1.0, lon0, 0.0])
        world = shapely.box(*_WORLD)
        lower = shapely.union_all(
            [shapely.intersection(shapely.affinity.translate(in_lonlat, shift), world) for shift in (-360.0, 0.0, 360.0)]
        )
        piece_below = _polygonal(shapely.intersection(polygon, lower))
        piece_above = _polygonal(shapely.difference(polygon, lower))
        return (idx[below], piece_below), (idx[~below], piece_above)


def _touching_pairs(geoms: np.ndarray) -> list[set[int]]:
    """For each polygon, the indices of the polygons it touches or overlaps."""
    import shapely

    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    neighbours: list[set[int]] = [set() for _ in range(len(geoms))]
    for a, b in zip(left.tolist(), right.tolist()):
        if a != b:
            neighbours[a].add(b)
    return neighbours


def _group_country(
    units: list[int], counts: np.ndarray, neighbours: list[set[int]], centroid_xyz: np.ndarray, min_samples: int
) -> list[list[int]]:
    """Groups of admin-1 units (indices) for one country: empty units attached, small merged."""
    seeds = [u for u in units if counts[u] > 0]
    group_of = {u: i for i, u in enumerate(seeds)}
    members: dict[int, list[int]] = {i: [u] for i, u in enumerate(seeds)}
    unit_set = set(units)
    # 2. empty units join a touching group, breadth-first; unreachable ones the nearest group
    frontier = list(seeds)
    while frontier:
        nxt = []
        for u in frontier:
            for v in sorted(neighbours[u] & unit_set):
                if v not in group_of:
                    group_of[v] = group_of[u]
                    members[group_of[u]].append(v)
                    nxt.append(v)
        frontier = nxt
    for u in units:
        if u not in group_of:
            seed = seeds[int(np.argmax(centroid_xyz[seeds] @ centroid_xyz[u]))]
            group_of[u] = group_of[seed]
            members[group_of[seed]].append(u)
    # 3. merge groups below min_samples into the smallest touching (else nearest) group
    size = {g: int(counts[m].sum()) for g, m in members.items()}
    while len(members) > 1:
        small = [g for g in members if size[g] < min_samples]
        if not small:
            break
        g = min(small, key=lambda k: (size[k], k))
        touching = {group_of[v] for u in members[g] for v in neighbours[u] if v in unit_set} - {g}
        if touching:
            target = min(touching, key=lambda k: (size[k], k))
        else:
            mine = centroid_xyz[members[g]]
            others = [k for k in members if k != g]
            closeness = [float((mine @ centroid_xyz[members[k]].T).max()) for k in others]
            target = others[int(np.argmax(closeness))]
        for u in members[g]:
            group_of[u] = target
        members[target].extend(members.pop(g))
        size[target] += size.pop(g)
    return [sorted(m) for m in members.values()]


def build_semantic(
    lat: Any,
    lon: Any,
    *,
    min_samples: int = 50,
    max_samples: int = 1000,
    admin1=None,
    point_admin1: np.ndarray | None = None,
) -> CellSet:
    """Semantic geocells from admin-1 boundaries and training points (see the module docstring).

    Args:
        lat, lon: ``(N,)`` training points, degrees.
        min_samples: smallest number of points per cell (except a country with fewer in all).
        max_samples: largest number of points per cell; must be >= 2 * min_samples.
        admin1: a GeoDataFrame of admin-1 polygons with ``adm1_code`` and ``adm0_a3`` columns;
            the shipped Natural Earth layer when None.
        point_admin1: ``(N,)`` adm1_code of each point, if already known (else assigned with no
            distance limit, so points at sea join the nearest unit).

    Returns:
        A CellSet of kind "semantic"; deterministic (no randomness is involved).

    Raises:
        CellSetError: empty input, bad bounds (``min_samples < 1`` or
            ``max_samples < 2 * min_samples``).
    """
    import shapely

    lat, lon, _ = check_latlon(lat, lon)
    lat, lon = lat.reshape(-1), lon.reshape(-1)
    if lat.size == 0:
        raise CellSetError("build_semantic needs at least one point; got an empty input")
    if min_samples < 1 or max_samples < 2 * min_samples:
        raise CellSetError(
            f"need 1 <= min_samples and max_samples >= 2 * min_samples (so both halves of a split"
            f" keep the minimum); got min_samples={min_samples}, max_samples={max_samples}"
        )
    from .boundaries import load_admin1
    from .cells import admin1_of_points
    from .geodesy import latlon_to_xyz

    if admin1 is None:
        admin1 = load_admin1()
    codes = admin1["adm1_code"].astype(str).to_numpy()
    countries = admin1["adm0_a3"].astype(str).to_numpy()
    geoms = np.asarray(admin1.geometry.values, dtype=object)
    if point_admin1 is None:
        point_admin1 = admin1_of_points(lat, lon, admin1=admin1)
    point_admin1 = np.asarray(point_admin1).astype(str)
    code_index = {c: i for i, c in enumerate(codes)}
    unknown = sorted(set(np.unique(point_admin1).tolist()) - set(code_index))
    if unknown:
        raise CellSetError(f"admin-1 codes of the points not found in the boundaries: {unknown[:5]}")
    unit_of_point = np.array([code_index[c] for c in np.unique(point_admin1)])[np.unique(point_admin1, return_inverse=True)[1]]
    counts = np.bincount(unit_of_point, minlength=len(codes))
    neighbours = _touching_pairs(geoms)
    reps = shapely.point_on_surface(geoms)
    centroid_xyz = latlon_to_xyz(shapely.get_y(reps), shapely.get_x(reps))

    splitter = _Splitter(lat, lon, max_samples)
    order = np.argsort(unit_of_point, kind="stable")
    starts = np.searchsorted(unit_of_point[order], np.arange(len(codes) + 1))
    pieces: list[tuple[str, np.ndarray, Any, str]] = []
    for country in sorted(set(countries[counts > 0].tolist())):
        units = np.flatnonzero(countries == country).tolist()
        for group in _group_country(units, counts, neighbours, centroid_xyz, min_samples):
            idx = np.concatenate([order[starts[u]:starts[u + 1]] for u in group])
            idx.sort()
            polygon = shapely.coverage_union_all(geoms[group]) if len(group) > 1 else geoms[group[0]]
            name = min(codes[u] for u in group if counts[u] > 0)
            parts: list = []
            splitter.split(idx, polygon, name, parts)
            pieces.extend((path, sub_idx, poly, country) for path, sub_idx, poly in parts)

    cell_of_point = np.empty(lat.size, dtype=np.int64)
    for k, (_, idx, _, _) in enumerate(pieces):
        cell_of_point[idx] = k
    params = {"min_samples": int(min_samples), "max_samples": int(max_samples), "n_points": int(lat.size),
              "boundaries_features": int(len(codes))}
    return cellset_from_points(
        lat, lon, cell_of_point,
        ids=np.array([p[0] for p in pieces], dtype=object),
        geometry=np.array([p[2] for p in pieces], dtype=object),
        point_admin1=point_admin1,
        admin1_country=dict(zip(codes.tolist(), countries.tolist())),
        kind="semantic",
        params=params,
    )
