"""Adaptive S2 partitions (PlaNet / GeoEstimation style), one CellSet per ``tau_max``.

Starting from every S2 cell at ``min_level`` that holds training points, a cell holding more
than ``tau_max`` points is replaced by its children, down to ``max_level``; cells that end with
fewer than ``tau_min`` points are dropped (their points go to the nearest kept centroid when
assigned). Several ``tau_max`` values give several granularities at once, coarse to fine; each
finer cell lies inside one coarser cell (``CellSet.parent``), because a smaller ``tau_max``
only splits further.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lat, lon = rng.uniform(-60, 70, 5000), rng.uniform(-180, 180, 5000)
    >>> coarse, fine = build_s2(lat, lon, tau_min=10, tau_max=[200, 50])
    >>> len(coarse), len(fine)   # the 92 level-2 cells; those above 50 points are split
    (92, 214)
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .cells import CellSet, CellSetError, cellset_from_points
from .validate import check_latlon

__all__ = ["build_s2", "s2_cell_polygons"]


def _split_antimeridian(ring_lat: np.ndarray, ring_lon: np.ndarray):
    """A lon/lat polygon for a ring that may cross the antimeridian (split into two parts)."""
    import shapely

    if ring_lon.max() - ring_lon.min() <= 180.0:
        return shapely.Polygon(np.c_[ring_lon, ring_lat])
    shifted = np.where(ring_lon < 0, ring_lon + 360.0, ring_lon)
    poly = shapely.Polygon(np.c_[shifted, ring_lat])
    east = shapely.intersection(poly, shapely.box(-180.0, -90.0, 180.0, 90.0))
    west = shapely.affinity.translate(shapely.intersection(poly, shapely.box(180.0, -90.0, 540.0, 90.0)), -360.0)
    return shapely.union(east, west)


def s2_cell_polygons(cell_ids: np.ndarray, *, points_per_edge: int = 8) -> np.ndarray:
    """Lon/lat polygons of S2 cells, ``(K,)`` shapely geometries (EPSG:4326).

    Edges are densified linearly in lon/lat between the exact corners (S2 edges are great-circle
    arcs, so large cells are approximate); cells crossing the antimeridian are split in two;
    a cell containing a pole is closed along the pole. These polygons are for display and
    export: :meth:`CellSet.assign` uses S2 ids, not polygons.
    """
    import shapely
    import shapely.affinity  # noqa: F401  (used by _split_antimeridian)

    from .s2 import s2_cell_center, s2_cell_vertices

    corners = np.asarray(s2_cell_vertices(cell_ids)).reshape(-1, 4, 2)
    center_lat, _ = s2_cell_center(cell_ids)
    center_lat = np.atleast_1d(center_lat)
    t = np.linspace(0.0, 1.0, points_per_edge, endpoint=False)
    polygons = []
    for k, (quad, c_lat) in enumerate(zip(corners, center_lat)):
        lat, lon = quad[:, 0], quad[:, 1]
        if abs(c_lat) > np.abs(lat).max():  # the cell contains a pole
            edge = float(lat.min()) if c_lat > 0 else float(lat.max())
            pole = 90.0 if c_lat > 0 else -90.0
            polygons.append(shapely.box(-180.0, min(edge, pole), 180.0, max(edge, pole)))
            continue
        nxt = np.roll(np.arange(4), -1)
        dlon = (lon[nxt] - lon + 180.0) % 360.0 - 180.0  # shortest way round
        ring_lat = (lat[:, None] + t[None, :] * (lat[nxt] - lat)[:, None]).ravel()
        ring_lon = (lon[:, None] + t[None, :] * dlon[:, None]).ravel()
        ring_lon = (ring_lon + 180.0) % 360.0 - 180.0
        polygons.append(_split_antimeridian(ring_lat, ring_lon))
    return np.asarray(polygons, dtype=object)


def _adaptive_cells(leaf: np.ndarray, tau_min: int, tau_max: int, min_level: int, max_level: int):
    """Return (cell ids (K,), cell index per point (N,), -1 for dropped points)."""
    from .s2 import s2_parent

    n = leaf.shape[0]
    cell_of_point = np.full(n, -1, dtype=np.int64)
    kept_ids: list[np.ndarray] = []
    active = np.arange(n)
    next_index = 0
    for level in range(min_level, max_level + 1):
        if active.size == 0:
            break
        ids = np.asarray(s2_parent(leaf[active], level), dtype=np.uint64).reshape(-1)
        uniq, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
        split = (counts > tau_max) & (level < max_level)
        keep = ~split & (counts >= tau_min)
        new_index = np.full(len(uniq), -1, dtype=np.int64)
        new_index[keep] = next_index + np.arange(int(keep.sum()))
        next_index += int(keep.sum())
        kept_ids.append(uniq[keep])
        finished = ~split[inverse]
        cell_of_point[active[finished]] = new_index[inverse[finished]]
        active = active[~finished]
    ids = np.concatenate(kept_ids) if kept_ids else np.zeros(0, dtype=np.uint64)
    return ids, cell_of_point


def build_s2(
    lat: Any,
    lon: Any,
    *,
    tau_min: int = 50,
    tau_max: int | Sequence[int] = (5000, 2000, 1000),
    min_level: int = 2,
    max_level: int = 13,
    point_admin1: np.ndarray | None = None,
    admin1_country: Mapping[str, str] | None = None,
) -> list[CellSet]:
    """Adaptive S2 partitions of training points, one per ``tau_max`` (coarse to fine).

    Args:
        lat, lon: ``(N,)`` training points, degrees.
        tau_min: cells with fewer points are dropped (GeoEstimation: 50).
        tau_max: a cell with more points is split; one partition per value
            (GeoEstimation: 5000, 2000, 1000).
        min_level, max_level: S2 levels to start from and to stop at (0..30).
        point_admin1: ``(N,)`` adm1_code of each point; computed with
            :func:`geocell.assign_admin1` (no distance limit) when None.
        admin1_country: adm1_code -> adm0_a3 for those codes; from the shipped boundaries when
            None.

    Returns:
        CellSets sorted coarse to fine (largest ``tau_max`` first); each but the first has
        ``parent`` indices into the previous one. Ids are S2 tokens.

    Raises:
        CellSetError: empty input, ``tau_min > tau_max``, bad levels, or no cell reaching
            ``tau_min``.
    """
    lat, lon, _ = check_latlon(lat, lon)
    lat, lon = lat.reshape(-1), lon.reshape(-1)
    taus = sorted({int(t) for t in np.atleast_1d(tau_max)}, reverse=True)
    if lat.size == 0:
        raise CellSetError("build_s2 needs at least one point; got an empty input")
    if not 0 <= min_level <= max_level <= 30:
        raise CellSetError(f"need 0 <= min_level <= max_level <= 30, got min_level={min_level}, max_level={max_level}")
    if tau_min < 1 or any(t < tau_min for t in taus):
        raise CellSetError(f"need 1 <= tau_min <= every tau_max, got tau_min={tau_min}, tau_max={taus}")
    from .s2 import s2_cell_id_to_token, s2_cell_ids

    if point_admin1 is None:
        from .cells import admin1_of_points

        point_admin1 = admin1_of_points(lat, lon)
    if admin1_country is None:
        from .boundaries import load_admin1

        table = load_admin1()
        admin1_country = dict(zip(table["adm1_code"].astype(str), table["adm0_a3"].astype(str)))
    leaf = np.asarray(s2_cell_ids(lat, lon, max_level), dtype=np.uint64).reshape(-1)
    out: list[CellSet] = []
    for tau in taus:
        ids, cell_of_point = _adaptive_cells(leaf, tau_min, tau, min_level, max_level)
        if len(ids) == 0:
            raise CellSetError(
                f"no S2 cell holds tau_min={tau_min} points ({lat.size} points in all); lower tau_min"
            )
        kept = cell_of_point >= 0
        params = {"tau_min": int(tau_min), "tau_max": tau, "min_level": int(min_level), "max_level": int(max_level),
                  "n_points": int(lat.size)}
        cells = cellset_from_points(
            lat[kept], lon[kept], cell_of_point[kept],
            ids=np.asarray(s2_cell_id_to_token(ids)).reshape(-1),
            geometry=s2_cell_polygons(ids),
            point_admin1=np.asarray(point_admin1)[kept],
            admin1_country=admin1_country,
            kind="s2",
            params=params,
            parent=None if not out else np.asarray(out[-1].assign(*_cell_centers(ids)), dtype=np.int64),
        )
        out.append(cells)
    return out


def _cell_centers(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the new cells, which lie inside exactly one cell of the coarser partition."""
    from .s2 import s2_cell_center

    lat, lon = s2_cell_center(ids)
    return np.atleast_1d(lat), np.atleast_1d(lon)
