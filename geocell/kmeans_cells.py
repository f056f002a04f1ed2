"""K-means geocells: the training points clustered on the unit sphere.

Cells follow the data rather than borders: dense regions get small cells, empty ones none.
The points are clustered as 3-D unit vectors with scikit-learn's ``KMeans`` (Euclidean
distance between unit vectors is monotone in great-circle distance, so the clusters are
spherical Voronoi cells of their centres). A point is assigned to the cell of its nearest
centroid (:meth:`geocell.CellSet.assign`), which is how the clusters were formed; the
polygons stored with the cells are the convex hulls of each cell's training points in
lon/lat, drawn on plots only.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lat, lon = rng.uniform(40, 50, 500), rng.uniform(0, 10, 500)
    >>> cells = build_kmeans(lat, lon, 8, point_admin1=None)
    >>> len(cells), int(cells.counts.sum())
    (8, 500)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .cells import CellSet, admin1_of_points, cellset_from_points
from .errors import CellSetError
from .geodesy import latlon_to_xyz
from .validate import check_latlon

__all__ = ["build_kmeans"]


def build_kmeans(lat: Any, lon: Any, k: int, *, point_admin1: Any = None, seed: int = 0, admin1: Any = None) -> CellSet:
    """Cluster training points into ``k`` cells.

    Args:
        lat, lon: ``(N,)`` degrees, the training points.
        k: number of cells (at most the number of distinct points).
        point_admin1: ``(N,)`` adm1_code of each point; None: looked up (nearest unit for points
            at sea).
        seed: ``KMeans(random_state=seed)``; the same points and seed give the same cells.
        admin1: the admin-1 table (:func:`geocell.boundaries.load_admin1`), to map codes to
            countries; None: the bundled one.

    Returns:
        A CellSet of kind "kmeans", cells ordered by id ``k000``, ``k001``, ... (by centroid
        longitude, then latitude); rarely fewer than ``k`` cells, when the final spherical
        k-means steps empty one.

    Raises:
        CellSetError: ``k < 1``, or more cells than distinct points.
    """
    import shapely
    from sklearn.cluster import KMeans

    from .boundaries import load_admin1

    lat, lon, _ = check_latlon(lat, lon)
    lat, lon = lat.reshape(-1), lon.reshape(-1)
    xyz = latlon_to_xyz(lat, lon)
    distinct = len(np.unique(np.round(xyz, 9), axis=0))
    if k < 1 or k > distinct:
        raise CellSetError(f"build_kmeans needs 1 <= k <= {distinct} (the distinct training points), got k={k}")
    if admin1 is None:
        admin1 = load_admin1()
    if point_admin1 is None:
        point_admin1 = admin1_of_points(lat, lon, admin1=admin1)
    labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(xyz)
    centres = np.stack([xyz[labels == c].mean(axis=0) for c in range(k)])
    order = np.lexsort((np.arcsin(np.clip(centres[:, 2] / np.linalg.norm(centres, axis=1), -1, 1)),
                        np.arctan2(centres[:, 1], centres[:, 0])))
    rank = np.empty(k, dtype=np.int64)
    rank[order] = np.arange(k)
    cell_of_point = rank[labels]
    # Spherical k-means steps until every point is in the cell of its nearest centroid (the
    # spherical mean of the cell's points, as stored): then training points and new points are
    # assigned the same way. A cell left empty by a step is dropped.
    for _ in range(100):
        total = np.stack([np.bincount(cell_of_point, weights=xyz[:, j], minlength=k) for j in range(3)], axis=1)
        nearest = np.argmax(xyz @ (total / np.linalg.norm(total, axis=1, keepdims=True)).T, axis=1)
        if np.array_equal(nearest, cell_of_point):
            break
        used = np.unique(nearest)
        cell_of_point = np.searchsorted(used, nearest)
        k = len(used)
    else:
        raise CellSetError("k-means cells did not settle in 100 steps; try another seed or k")
    geometry = np.array([shapely.MultiPoint(np.c_[lon[cell_of_point == c], lat[cell_of_point == c]]).convex_hull
                         for c in range(k)], dtype=object)
    codes = admin1["adm1_code"].astype(str).to_numpy()
    countries = admin1["adm0_a3"].astype(str).to_numpy()
    return cellset_from_points(
        lat, lon, cell_of_point,
        ids=np.array([f"k{c:03d}" for c in range(k)], dtype=object),
        geometry=geometry,
        point_admin1=np.asarray(point_admin1).astype(str),
        admin1_country=dict(zip(codes.tolist(), countries.tolist())),
        kind="kmeans",
        params={"k": int(k), "seed": int(seed), "n_points": int(lat.size)},
    )
