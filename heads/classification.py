"""Classifier heads: ``country`` (over ``adm0_a3`` codes) and ``cell`` (over a cell partition).

The cell head's country and admin-1 probabilities are *marginalised* from its cell probabilities
through the partition's row-stochastic hierarchy (``P(country) = P(cell) @ cell_to_country``), so
they are consistent with the cells by construction and sum to 1.

Example:
    >>> import numpy as np, scipy.sparse as sp, torch
    >>> to_country = sp.csr_matrix(np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]]))
    >>> head = CellHead(16, num_cells=3, cell_lat=[0.0, 10.0, 5.0], cell_lon=[0.0, 0.0, 1.0],
    ...                 cell_to_country=to_country, countries=("AAA", "BBB"))
    >>> out = head(torch.randn(4, 16))
    >>> out.logits.shape, out.country_probs.shape
    (torch.Size([4, 3]), torch.Size([4, 2]))
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Optional, Sequence

import numpy as np
import torch
from torch import nn

from .outputs import CellOutput, ClassifierOutput
from .registry import Head, register_head

__all__ = ["CountryHead", "CellHead", "HierarchyLayout"]

#: Storage of the hierarchy matrices. Measured (benchmarks/bench_model.py section 2, B=64,
#: marginalising to countries and admin-1 units, forward+backward): 1,000 cells -> 200 countries +
#: 3,000 admin-1: dense 10.5 ms, sparse COO 1.1 ms; 10,000 cells -> 230 + 4,596: dense 186 ms,
#: sparse 9.4 ms. Dense costs O(K * columns) per image, sparse O(non-zeros) (about one per cell);
#: for countries alone (200 columns) the two were on par. So sparse is the default.
HierarchyLayout = Literal["sparse", "dense"]

_ROW_SUM_TOLERANCE = 1e-4


def _labels(labels: Optional[Sequence[str]], n: int, what: str) -> Optional[tuple[str, ...]]:
    if labels is None:
        return None
    labels = tuple(str(v) for v in labels)
    if len(labels) != n:
        raise ValueError(f"{what} has {len(labels)} names but {n} classes")
    return labels


def _hierarchy_transposed(
    matrix: Any, num_cells: int, what: str, layout: HierarchyLayout
) -> torch.Tensor:
    """A (K, C) row-stochastic matrix (scipy.sparse, numpy, or torch dense / sparse) -> (C, K)
    float32 torch tensor (sparse COO or dense), checked."""
    if hasattr(matrix, "tocoo") and not isinstance(matrix, torch.Tensor):  # scipy.sparse
        coo = matrix.tocoo()
        shape = coo.shape
        rows, cols, vals = np.asarray(coo.row), np.asarray(coo.col), np.asarray(coo.data, dtype=np.float64)
    else:
        t = matrix if isinstance(matrix, torch.Tensor) else torch.as_tensor(np.array(matrix, dtype=np.float64))
        if t.dim() != 2:
            raise ValueError(f"{what} must be a 2-D (cells, classes) matrix, got shape {tuple(t.shape)}")
        shape = tuple(t.shape)
        t = t.detach().cpu().to_sparse_coo().coalesce()
        idx = t.indices().numpy()
        rows, cols, vals = idx[0], idx[1], t.values().double().numpy()
    if len(shape) != 2 or shape[0] != num_cells:
        raise ValueError(f"{what} must have shape ({num_cells}, classes), got {tuple(shape)}")
    if vals.size and (not np.all(np.isfinite(vals)) or vals.min() < 0):
        raise ValueError(f"{what} must hold finite non-negative weights")
    row_sums = np.bincount(rows, weights=vals, minlength=num_cells)
    bad = np.flatnonzero(np.abs(row_sums - 1.0) > _ROW_SUM_TOLERANCE)
    if bad.size:
        raise ValueError(
            f"{what} must be row-stochastic (each cell's row sums to 1): row {bad[0]} sums to "
            f"{row_sums[bad[0]]:.6g}"
        )
    indices = torch.as_tensor(np.stack([cols, rows]).astype(np.int64))
    out = torch.sparse_coo_tensor(
        indices, torch.as_tensor(vals, dtype=torch.float32), size=(shape[1], num_cells),
        check_invariants=True,
    ).coalesce()
    return out if layout == "sparse" else out.to_dense()


def _marginalise(probs: torch.Tensor, transposed: torch.Tensor) -> torch.Tensor:
    """probs (B, K) @ matrix (K, C) with the matrix stored transposed (C, K)."""
    if transposed.is_sparse:
        return torch.sparse.mm(transposed, probs.t()).t()
    return probs @ transposed.t()


@register_head("country")
class CountryHead(Head):
    """Country classifier: features (B, F) -> logits (B, C).

    Args:
        in_features: F.
        countries: the ``adm0_a3`` codes in class order, or just the number of classes.
        dropout: dropout probability before the linear layer.
    """

    def __init__(self, in_features: int, countries: Sequence[str] | int, dropout: float = 0.0) -> None:
        super().__init__(in_features)
        if isinstance(countries, int):
            num, labels = countries, None
        else:
            num, labels = len(countries), _labels(countries, len(countries), "countries")
        if num < 1:
            raise ValueError(f"a country head needs at least one class, got {num}")
        self.num_classes = num
        self.labels: Optional[tuple[str, ...]] = labels
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num)

    def forward(self, features: torch.Tensor) -> ClassifierOutput:
        return ClassifierOutput(self.fc(self.dropout(features)))


@register_head("cell")
class CellHead(Head):
    """Cell classifier with marginalised country / admin-1 probabilities.

    Args:
        in_features: F.
        num_cells: K.
        cell_lat, cell_lon: (K,) cell centroids, degrees (used by
            :meth:`heads.GeoModel.predict`; stored as buffers so a checkpoint carries them).
        cell_to_country: (K, C) row-stochastic matrix (scipy.sparse, numpy or torch, dense or
            sparse), e.g. from ``CellSet.hierarchy()``; None for no country output.
        cell_to_admin1: (K, A) likewise for admin-1 units.
        countries, admin1: names of the C / A columns (``adm0_a3`` / ``adm1_code``), optional.
        cell_ids: names of the K cells, optional.
        dropout: dropout probability before the linear layer.
        hierarchy_layout: ``"sparse"`` (default, measured faster) or ``"dense"`` buffers.

    Raises:
        ValueError: wrong shapes, a matrix that is not row-stochastic, NaN centroids.
    """

    def __init__(
        self,
        in_features: int,
        num_cells: int,
        cell_lat: Any,
        cell_lon: Any,
        cell_to_country: Any = None,
        cell_to_admin1: Any = None,
        countries: Optional[Sequence[str]] = None,
        admin1: Optional[Sequence[str]] = None,
        cell_ids: Optional[Sequence[Any]] = None,
        dropout: float = 0.0,
        hierarchy_layout: HierarchyLayout = "sparse",
    ) -> None:
        super().__init__(in_features)
        if not isinstance(num_cells, (int, np.integer)) or num_cells < 1:
            raise ValueError(f"num_cells must be a positive int, got {num_cells!r}")
        if hierarchy_layout not in ("sparse", "dense"):
            raise ValueError(f"hierarchy_layout must be 'sparse' or 'dense', got {hierarchy_layout!r}")
        num_cells = int(num_cells)
        # np.array copies: arrays read from Parquet or a checkpoint may be read-only
        lat = torch.as_tensor(np.array(cell_lat, dtype=np.float64), dtype=torch.float32).reshape(-1)
        lon = torch.as_tensor(np.array(cell_lon, dtype=np.float64), dtype=torch.float32).reshape(-1)
        if lat.numel() != num_cells or lon.numel() != num_cells:
            raise ValueError(
                f"cell_lat / cell_lon must have {num_cells} values, got {lat.numel()} / {lon.numel()}"
            )
        if not bool(((lat.abs() <= 90) & torch.isfinite(lon)).all()):
            raise ValueError("cell centroids must be finite with latitude in [-90, 90]")
        self.num_cells = num_cells
        self.num_classes = num_cells
        self.register_buffer("cell_lat", lat)
        self.register_buffer("cell_lon", lon)
        self.labels: Optional[tuple[str, ...]] = (
            None if cell_ids is None else _labels([str(c) for c in cell_ids], num_cells, "cell_ids")
        )
        self.countries: Optional[tuple[str, ...]] = None
        self.admin1: Optional[tuple[str, ...]] = None
        self.num_countries = self.num_admin1 = 0
        self.register_buffer("country_matrix_t", None, persistent=False)
        self.register_buffer("admin1_matrix_t", None, persistent=False)
        if cell_to_country is not None:
            m = _hierarchy_transposed(cell_to_country, num_cells, "cell_to_country", hierarchy_layout)
            self.country_matrix_t = m
            self.num_countries = m.shape[0]
            self.countries = _labels(countries, m.shape[0], "countries")
        elif countries is not None:
            raise ValueError("countries names were given without a cell_to_country matrix")
        if cell_to_admin1 is not None:
            m = _hierarchy_transposed(cell_to_admin1, num_cells, "cell_to_admin1", hierarchy_layout)
            self.admin1_matrix_t = m
            self.num_admin1 = m.shape[0]
            self.admin1 = _labels(admin1, m.shape[0], "admin1")
        elif admin1 is not None:
            raise ValueError("admin1 names were given without a cell_to_admin1 matrix")
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, num_cells)

    @classmethod
    def from_cellset(cls, cells: Any, in_features: int, **kwargs: Any) -> "CellHead":
        """Build from a ``geocell.CellSet``-like object (duck-typed).

        Reads ``centroid_lat``, ``centroid_lon`` (degrees), ``ids`` (optional) and
        ``hierarchy()``, which may return an object or mapping with ``cell_to_country`` /
        ``cell_to_admin1`` (or ``country`` / ``admin1``) entries, or a pair of matrices (the
        one with more columns is admin-1, since admin-1 units nest in countries). Column names
        are taken from ``countries`` / ``admin1`` attributes of the hierarchy or of ``cells``
        when present; explicit ``kwargs`` win.
        """
        lat = np.asarray(cells.centroid_lat, dtype=np.float64)
        lon = np.asarray(cells.centroid_lon, dtype=np.float64)
        to_country, to_admin1, names = _parse_hierarchy(cells.hierarchy() if hasattr(cells, "hierarchy") else None)
        # geocell.CellSet names the hierarchy's columns with country_vocab() / admin1_vocab()
        # (its ``admin1`` attribute is the per-cell majority unit, not the column names)
        for key, method in (("countries", "country_vocab"), ("admin1", "admin1_vocab")):
            if names.get(key) is None and callable(getattr(cells, method, None)):
                names[key] = list(getattr(cells, method)())
        for key, attr in (("countries", "countries"), ("admin1", "admin1_codes"), ("admin1", "admin1")):
            if names.get(key) is None and isinstance(getattr(cells, attr, None), (list, tuple, np.ndarray)):
                names[key] = list(getattr(cells, attr))
        args: dict[str, Any] = dict(
            num_cells=len(lat),
            cell_lat=lat,
            cell_lon=lon,
            cell_to_country=to_country,
            cell_to_admin1=to_admin1,
            countries=names.get("countries") if to_country is not None else None,
            admin1=names.get("admin1") if to_admin1 is not None else None,
            cell_ids=list(cells.ids) if getattr(cells, "ids", None) is not None else None,
        )
        args.update(kwargs)
        return cls(in_features, **args)

    def marginalise(self, cell_probs: torch.Tensor) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
        """(B, K) cell probabilities -> ((B, C) country, (B, A) admin-1) probabilities or None."""
        country = None if self.country_matrix_t is None else _marginalise(cell_probs, self.country_matrix_t)
        admin1 = None if self.admin1_matrix_t is None else _marginalise(cell_probs, self.admin1_matrix_t)
        return country, admin1

    def forward(self, features: torch.Tensor) -> CellOutput:
        logits = self.fc(self.dropout(features))
        if self.country_matrix_t is None and self.admin1_matrix_t is None:
            return CellOutput(logits)
        country, admin1 = self.marginalise(logits.softmax(dim=-1))
        return CellOutput(logits, country, admin1)


def _parse_hierarchy(h: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(cell_to_country, cell_to_admin1, {"countries": names, "admin1": names}) from the many
    shapes a hierarchy() result may take."""
    names: dict[str, Any] = {}
    if h is None:
        return None, None, names

    def get(obj: Any, *keys: str) -> Any:
        for key in keys:
            if isinstance(obj, Mapping) and key in obj:
                return obj[key]
            if not isinstance(obj, (Mapping, tuple, list)) and hasattr(obj, key):
                return getattr(obj, key)
        return None

    country = get(h, "cell_to_country", "country")
    admin1 = get(h, "cell_to_admin1", "admin1")
    if country is None and admin1 is None and isinstance(h, (tuple, list)) and len(h) == 2:
        a, b = h
        country, admin1 = (a, b) if a.shape[1] <= b.shape[1] else (b, a)
    names["countries"] = get(h, "countries", "country_codes")
    names["admin1"] = get(h, "admin1_codes", "admin1_names")
    return country, admin1, names
