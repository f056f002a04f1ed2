"""`CellSet`: one container for every partition of the Earth into geocells.

A CellSet holds, for K cells: string ids, the centroid of each cell (the spherical mean of the
training points in it, not the polygon's centroid), a polygon, the number of training samples,
the majority country (``adm0_a3``) and admin-1 (``adm1_code``), how the training points of each
cell spread over admin-1 units (for :meth:`CellSet.hierarchy`), and the kind and parameters that
built it. It saves to and loads from GeoParquet, and has a content hash that identifies it in
checkpoints.

Builders live in :mod:`geocell.semantic` (:func:`build_semantic`), :mod:`geocell.s2cells`
(:func:`build_s2`) and :mod:`geocell.kmeans_cells` (:func:`build_kmeans`).

Example:
    >>> import numpy as np
    >>> from geocell import build_s2
    >>> rng = np.random.default_rng(0)
    >>> lat, lon = rng.uniform(40, 50, 2000), rng.uniform(0, 10, 2000)
    >>> cells = build_s2(lat, lon, tau_min=50, tau_max=[1000])[0]
    >>> int(cells.assign(45.0, 5.0)) in range(len(cells))
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np

from .errors import CellSetError
from .geodesy import latlon_to_xyz
from .validate import check_latlon

__all__ = ["CellSet", "CellSetError", "CellKind", "CELLSET_SUFFIXES"]

CellKind = Literal["semantic", "s2", "kmeans"]

#: Format version written into saved files; bump when the on-disk layout changes.
FORMAT_VERSION = 1
#: Version of :attr:`CellSet.hash`: 1 covered ids, centroids, counts and parameters; 2 adds the
#: geometry, the codes and the hierarchy.
HASH_VERSION = 2
#: Names :meth:`CellSet.save` writes (GeoParquet, whatever the name says, so the name must say so).
CELLSET_SUFFIXES: tuple[str, ...] = (".parquet", ".geoparquet")


def _str_array(values: Any) -> np.ndarray:
    return np.asarray(values, dtype=object).astype(str)


@dataclass(frozen=True, eq=False)
class CellSet:
    """A partition of the Earth into K cells (see the module docstring).

    Attributes:
        ids: ``(K,)`` str, unique cell ids (S2 tokens for S2 cells).
        centroid_lat, centroid_lon: ``(K,)`` float64 degrees; spherical mean of the cell's points.
        counts: ``(K,)`` int64 training samples per cell.
        country: ``(K,)`` str, majority ``adm0_a3`` of the cell's points ("" if none on land).
        admin1: ``(K,)`` str, majority ``adm1_code`` of the cell's points ("" if none on land).
        geometry: ``(K,)`` shapely (multi)polygons in lon/lat degrees (EPSG:4326).
        member_admin1: ``(K,)`` tuples of admin-1 codes holding the cell's points.
        member_counts: ``(K,)`` tuples of point counts, parallel to ``member_admin1``.
        admin1_country: mapping adm1_code -> adm0_a3 for every code in ``member_admin1``.
        kind: "semantic", "s2" or "kmeans".
        params: the build parameters (plain JSON types).
        parent: ``(K,)`` int64 index into a coarser CellSet (S2 hierarchy), or None.
    """

    ids: np.ndarray
    centroid_lat: np.ndarray
    centroid_lon: np.ndarray
    counts: np.ndarray
    country: np.ndarray
    admin1: np.ndarray
    geometry: np.ndarray
    member_admin1: tuple[tuple[str, ...], ...]
    member_counts: tuple[tuple[int, ...], ...]
    admin1_country: Mapping[str, str]
    kind: CellKind
    params: Mapping[str, Any]
    parent: np.ndarray | None = None
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        k = len(self.ids)
        for name in ("centroid_lat", "centroid_lon", "counts", "country", "admin1", "geometry"):
            if len(getattr(self, name)) != k:
                raise CellSetError(f"CellSet.{name} has {len(getattr(self, name))} entries, expected {k} (one per cell)")
        if len(self.member_admin1) != k or len(self.member_counts) != k:
            raise CellSetError("member_admin1 / member_counts must have one entry per cell")
        if len(set(self.ids.tolist())) != k:
            raise CellSetError("cell ids are not unique")
        if self.kind not in ("semantic", "s2", "kmeans"):
            raise CellSetError(f"unknown cell kind {self.kind!r}; expected 'semantic', 's2' or 'kmeans'")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"CellSet(kind={self.kind!r}, cells={len(self)}, samples={int(self.counts.sum())}, hash={self.hash[:12]})"

    def _hash_v1(self) -> "hashlib._Hash":
        """The hash of files of hash version 1: ids, centroids, counts and build parameters."""
        h = hashlib.sha256()
        h.update(json.dumps({"kind": self.kind, "params": dict(self.params)}, sort_keys=True).encode())
        h.update("\n".join(self.ids.tolist()).encode())
        h.update(np.round(self.centroid_lat, 6).astype("<f8").tobytes())
        h.update(np.round(self.centroid_lon, 6).astype("<f8").tobytes())
        h.update(self.counts.astype("<i8").tobytes())
        return h

    @property
    def hash_v1(self) -> str:
        """The version-1 hash (without geometry and labels), for files and checkpoints written
        before :attr:`hash` covered them."""
        return self._hash_v1().hexdigest()

    @property
    def hash(self) -> str:
        """sha256 over everything that changes a prediction: ids, centroids (rounded to 1e-6
        degrees), counts, build parameters, the per-cell country and admin-1 codes, the
        admin-1 memberships and counts (the hierarchy), the admin-1 -> country table, the S2
        parent links and the geometry (``shapely.normalize``-d coordinates rounded to 1e-6
        degrees, so it does not depend on how GEOS orders rings and parts)."""
        if "hash" not in self._cache:
            import shapely

            h = self._hash_v1()
            h.update(b"v2")
            for column in (self.country, self.admin1):
                h.update("\n".join(np.asarray(column).astype(str).tolist()).encode())
            h.update(json.dumps([list(m) for m in self.member_admin1]).encode())
            h.update(json.dumps([list(map(int, m)) for m in self.member_counts]).encode())
            h.update(json.dumps(dict(sorted(self.admin1_country.items()))).encode())
            if self.parent is not None:
                h.update(np.asarray(self.parent, dtype="<i8").tobytes())
            geoms = shapely.normalize(np.asarray(self.geometry, dtype=object))
            coords, index = shapely.get_coordinates(geoms, return_index=True)
            h.update(np.round(coords, 6).astype("<f8").tobytes())
            h.update(np.bincount(index, minlength=len(self)).astype("<i8").tobytes())
            self._cache["hash"] = h.hexdigest()
        return self._cache["hash"]

    def centroids_xyz(self) -> np.ndarray:
        """``(K, 3)`` unit vectors of the centroids."""
        return latlon_to_xyz(self.centroid_lat, self.centroid_lon)

    # ------------------------------------------------------------------ assignment
    def _centroid_tree(self):
        if "tree" not in self._cache:
            from scipy.spatial import cKDTree

            self._cache["tree"] = cKDTree(self.centroids_xyz())
        return self._cache["tree"]

    def nearest_centroid(self, lat: Any, lon: Any) -> np.ndarray:
        """Index of the nearest centroid (great-circle) for each point, ``(N,)`` int64."""
        lat, lon, _ = check_latlon(lat, lon)
        _, idx = self._centroid_tree().query(latlon_to_xyz(lat.reshape(-1), lon.reshape(-1)))
        return np.asarray(idx, dtype=np.int64).reshape(lat.shape)

    def assign(self, lat: Any, lon: Any) -> Any:
        """Cell index for each point; every point gets one.

        S2 cells: by S2 cell id at each cell's level. Semantic cells: by the polygon containing
        the point. K-means cells: by the nearest centroid. A point outside every polygon, or in a
        dropped S2 cell, goes to the nearest centroid. Scalar in -> int out; otherwise an int64 array with the broadcast shape.
        """
        scalar = np.ndim(lat) == 0 and np.ndim(lon) == 0
        lat, lon, _ = check_latlon(lat, lon)
        shape = lat.shape
        lat, lon = lat.reshape(-1), lon.reshape(-1)
        if self.kind == "s2":
            idx = self._assign_s2(lat, lon)
        elif self.kind == "kmeans":
            idx = self.nearest_centroid(lat, lon)
        else:
            idx = self._assign_polygons(lat, lon)
        missing = idx < 0
        if missing.any():
            idx[missing] = self.nearest_centroid(lat[missing], lon[missing])
        idx = idx.reshape(shape)
        return int(idx) if scalar else idx

    def _assign_s2(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        from .s2 import s2_cell_ids, s2_level, s2_parent, s2_token_to_cell_id

        if "s2" not in self._cache:
            cell_ids = np.asarray(s2_token_to_cell_id(self.ids), dtype=np.uint64)
            levels = np.asarray(s2_level(cell_ids))
            by_level = {}
            for level in np.unique(levels):
                rows = np.flatnonzero(levels == level)
                order = np.argsort(cell_ids[rows])
                by_level[int(level)] = (cell_ids[rows][order], rows[order])
            self._cache["s2"] = by_level
        by_level = self._cache["s2"]
        idx = np.full(lat.shape, -1, dtype=np.int64)
        if lat.size == 0:
            return idx
        leaf = np.asarray(s2_cell_ids(lat, lon, max(by_level)), dtype=np.uint64).reshape(-1)
        for level, (sorted_ids, rows) in by_level.items():
            ids = np.asarray(s2_parent(leaf, level), dtype=np.uint64).reshape(-1)
            pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
            hit = (sorted_ids[pos] == ids) & (idx < 0)
            idx[hit] = rows[pos[hit]]
        return idx

    def _assign_polygons(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        from .assign import PolygonIndex

        if "polygons" not in self._cache:
            self._cache["polygons"] = PolygonIndex(self.geometry)
        return self._cache["polygons"].locate(lat, lon)

    # ------------------------------------------------------------------ views
    def admin1_vocab(self) -> tuple[str, ...]:
        """Sorted admin-1 codes that hold training points of any cell."""
        return tuple(sorted({c for members in self.member_admin1 for c in members}))

    def country_vocab(self) -> tuple[str, ...]:
        """Sorted countries (adm0_a3) that hold training points of any cell."""
        return tuple(sorted({self.admin1_country[c] for c in self.admin1_vocab()}))

    def hierarchy(self) -> tuple[Any, Any]:
        """Row-stochastic sparse matrices (cell -> admin-1, cell -> country).

        Row k gives the share of cell k's training points in each admin-1 unit / country, so
        ``p_country = p_cell @ cell_to_country`` marginalises cell probabilities consistently even
        for cells that straddle a border. Columns follow :meth:`admin1_vocab` and
        :meth:`country_vocab`. A cell with no point on land gets weight 1 on the country and
        admin-1 nearest to its centroid when the builder recorded one, which it always does.

        Returns:
            (cell_to_admin1 ``(K, A)``, cell_to_country ``(K, C)``) as ``scipy.sparse.csr_matrix``.
        """
        from scipy import sparse

        a_vocab, c_vocab = self.admin1_vocab(), self.country_vocab()
        a_index = {c: i for i, c in enumerate(a_vocab)}
        c_index = {c: i for i, c in enumerate(c_vocab)}
        rows, a_cols, values = [], [], []
        for k, (codes, counts) in enumerate(zip(self.member_admin1, self.member_counts)):
            if not codes:
                raise CellSetError(f"cell {self.ids[k]} has no admin-1 membership; the hierarchy needs one")
            total = float(sum(counts))
            for code, count in zip(codes, counts):
                rows.append(k)
                a_cols.append(a_index[code])
                values.append(count / total)
        k, a = len(self), len(a_vocab)
        to_admin1 = sparse.csr_matrix((values, (rows, a_cols)), shape=(k, a))
        admin1_to_country = sparse.csr_matrix(
            (np.ones(a), (np.arange(a), [c_index[self.admin1_country[c]] for c in a_vocab])), shape=(a, len(c_vocab))
        )
        to_country = (to_admin1 @ admin1_to_country).tocsr()
        return to_admin1, to_country

    def summary(self) -> dict[str, Any]:
        """Cells, min / median / max samples per cell, and cells per country (descending)."""
        countries, per_country = np.unique(self.country, return_counts=True)
        order = np.argsort(-per_country, kind="stable")
        return {
            "kind": self.kind,
            "cells": len(self),
            "samples": int(self.counts.sum()),
            "samples_per_cell_min": int(self.counts.min()) if len(self) else 0,
            "samples_per_cell_median": float(np.median(self.counts)) if len(self) else 0.0,
            "samples_per_cell_max": int(self.counts.max()) if len(self) else 0,
            "countries": len(countries),
            "cells_per_country": {str(countries[i]): int(per_country[i]) for i in order},
            "params": dict(self.params),
            "hash": self.hash,
        }

    def to_geodataframe(self):
        """The cells as a GeoDataFrame (one row per cell, EPSG:4326)."""
        import geopandas as gpd

        return gpd.GeoDataFrame(
            {
                "cell_id": self.ids,
                "centroid_lat": self.centroid_lat,
                "centroid_lon": self.centroid_lon,
                "count": self.counts,
                "adm0_a3": self.country,
                "adm1_code": self.admin1,
                "member_admin1": [list(m) for m in self.member_admin1],
                "member_counts": [list(m) for m in self.member_counts],
                "parent": self.parent if self.parent is not None else np.full(len(self), -1, dtype=np.int64),
            },
            geometry=list(self.geometry),
            crs="EPSG:4326",
        )

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | Path) -> Path:
        """Write the cells as GeoParquet (atomically); metadata keeps kind, params and hash.

        Raises:
            OutputFileError: ``path`` does not end in ``.parquet`` or ``.geoparquet`` (checked
                before anything is written), or is a folder.
        """
        import pyarrow.parquet as pq

        from .tables import atomic_write, check_output_path

        check_output_path(path, suffixes=CELLSET_SUFFIXES, what="CellSet file")

        frame = self.to_geodataframe()
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "params": dict(self.params),
            "admin1_country": dict(sorted(self.admin1_country.items())),
            "hash": self.hash,
            "hash_version": HASH_VERSION,
        }

        def write(tmp: Path) -> None:
            frame.to_parquet(tmp, index=False, compression="zstd")
            table = pq.read_table(tmp)
            metadata = dict(table.schema.metadata or {})
            metadata[b"geocell.cellset"] = json.dumps(meta).encode()
            pq.write_table(table.replace_schema_metadata(metadata), tmp, compression="zstd")

        return atomic_write(path, write)

    @classmethod
    def load(cls, path: str | Path) -> "CellSet":
        """Read a file written by :meth:`save`; checks the stored hash against the content."""
        import geopandas as gpd
        import pyarrow.parquet as pq

        from .errors import InputFileError

        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"{path}: no such cell file")
        try:
            raw = pq.read_schema(path).metadata or {}
            meta = json.loads(raw[b"geocell.cellset"])
        except KeyError as exc:
            raise CellSetError(f"{path}: not a geocell CellSet file (no geocell.cellset metadata)") from exc
        except Exception as exc:  # pyarrow raises several types for non-parquet files
            raise CellSetError(f"{path}: cannot be read as a CellSet GeoParquet file: {exc}") from exc
        if meta.get("format_version") != FORMAT_VERSION:
            raise CellSetError(f"{path}: format version {meta.get('format_version')}, expected {FORMAT_VERSION}")
        frame = gpd.read_parquet(path)
        parent = frame["parent"].to_numpy(dtype=np.int64)
        cells = cls(
            ids=_str_array(frame["cell_id"]),
            centroid_lat=frame["centroid_lat"].to_numpy(dtype=np.float64),
            centroid_lon=frame["centroid_lon"].to_numpy(dtype=np.float64),
            counts=frame["count"].to_numpy(dtype=np.int64),
            country=_str_array(frame["adm0_a3"]),
            admin1=_str_array(frame["adm1_code"]),
            geometry=np.asarray(frame.geometry.values, dtype=object),
            member_admin1=tuple(tuple(str(c) for c in m) for m in frame["member_admin1"]),
            member_counts=tuple(tuple(int(c) for c in m) for m in frame["member_counts"]),
            admin1_country=meta["admin1_country"],
            kind=meta["kind"],
            params=meta["params"],
            parent=None if (parent < 0).all() else parent,
        )
        content = cells.hash if meta.get("hash_version", 1) == HASH_VERSION else cells.hash_v1
        if content != meta["hash"]:
            raise CellSetError(f"{path}: content hash {content[:12]} does not match the stored {meta['hash'][:12]} "
                               "(the file was changed after it was written)")
        return cells


def cellset_from_points(
    lat: np.ndarray,
    lon: np.ndarray,
    cell_of_point: np.ndarray,
    *,
    ids: np.ndarray,
    geometry: np.ndarray,
    point_admin1: np.ndarray,
    admin1_country: Mapping[str, str],
    kind: CellKind,
    params: Mapping[str, Any],
    parent: np.ndarray | None = None,
) -> CellSet:
    """Assemble a CellSet from a point -> cell mapping (used by the builders).

    Computes per cell, without a per-point loop: the spherical-mean centroid, the sample count,
    the admin-1 units the points fall in with their counts, and the majority admin-1 / country.

    Args:
        lat, lon: ``(N,)`` degrees, the training points.
        cell_of_point: ``(N,)`` int cell index of each point, in ``[0, K)``; every cell needs at
            least one point.
        ids, geometry: ``(K,)`` cell ids and polygons.
        point_admin1: ``(N,)`` adm1_code of each point (the nearest unit for points at sea; no
            empty codes).
        admin1_country: adm1_code -> adm0_a3 for every code in ``point_admin1``.
    """
    k = len(ids)
    counts = np.bincount(cell_of_point, minlength=k).astype(np.int64)
    if (counts == 0).any():
        raise CellSetError(f"cell {ids[np.flatnonzero(counts == 0)[0]]} holds no training point")
    xyz = latlon_to_xyz(lat, lon)
    total = np.stack([np.bincount(cell_of_point, weights=xyz[:, j], minlength=k) for j in range(3)], axis=1)
    from .geodesy import xyz_to_latlon

    centroid_lat, centroid_lon = xyz_to_latlon(total)
    codes, code_of_point = np.unique(point_admin1.astype(str), return_inverse=True)
    if len(codes) and codes[0] == "":
        raise CellSetError("every training point needs an admin-1 code for the hierarchy (got an empty code)")
    pair, pair_counts = np.unique(cell_of_point.astype(np.int64) * len(codes) + code_of_point, return_counts=True)
    pair_cell, pair_code = pair // len(codes), pair % len(codes)
    starts = np.searchsorted(pair_cell, np.arange(k + 1))
    member_admin1, member_counts, majority_admin1, majority_country = [], [], [], []
    for c in range(k):  # one Python step per cell (K << N), not per point
        sl = slice(starts[c], starts[c + 1])
        cell_codes, cell_counts = codes[pair_code[sl]].tolist(), pair_counts[sl].tolist()
        member_admin1.append(tuple(cell_codes))
        member_counts.append(tuple(int(x) for x in cell_counts))
        majority_admin1.append(cell_codes[int(np.argmax(cell_counts))])
        per_country: dict[str, int] = {}
        for code, count in zip(cell_codes, cell_counts):
            per_country[admin1_country[code]] = per_country.get(admin1_country[code], 0) + count
        majority_country.append(max(sorted(per_country), key=per_country.__getitem__))
    admin1 = np.asarray(majority_admin1, dtype=str) if k else np.zeros(0, dtype=str)
    country = np.asarray(majority_country, dtype=str) if k else np.zeros(0, dtype=str)
    used = {code: admin1_country[code] for code in codes.tolist()}
    return CellSet(
        ids=_str_array(ids),
        centroid_lat=np.asarray(centroid_lat, dtype=np.float64),
        centroid_lon=np.asarray(centroid_lon, dtype=np.float64),
        counts=counts,
        country=country,
        admin1=admin1,
        geometry=np.asarray(geometry, dtype=object),
        member_admin1=tuple(member_admin1),
        member_counts=tuple(member_counts),
        admin1_country=used,
        kind=kind,
        params=dict(params),
        parent=parent,
    )


def admin1_of_points(lat: np.ndarray, lon: np.ndarray, *, admin1=None) -> np.ndarray:
    """adm1_code of every point with no distance limit, for cell membership.

    Points on land get their unit; points off the coast or far at sea get the nearest unit
    (great-circle km, :func:`geocell.assign.assign_admin1` with the largest search radius).
    Never returns an empty code.

    Args:
        lat, lon: ``(N,)`` degrees.
        admin1: admin-1 GeoDataFrame (the shipped layer when None).
    """
    from .assign import MAX_SEARCH_KM, assign_admin1

    codes = np.asarray(assign_admin1(lat, lon, max_distance_km=MAX_SEARCH_KM, boundaries=admin1)).astype(str)
    if (codes == "").any():  # cannot happen with a non-empty layer; guard the invariant anyway
        raise CellSetError("some points found no admin-1 unit at any distance; is the boundary layer empty?")
    return codes
