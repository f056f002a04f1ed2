"""``region``: classify into geocells, with haversine label smoothing (PIGEON).

The cells are built from the training points once per run and saved as ``cells.parquet`` in
the run folder; the checkpoint carries them as plain tensors (:class:`CellState`), so a model
loads without the data. Evaluation scores cell accuracy when the run's ``cells.parquet`` (with
the same hash) is beside the checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from geocell_engine.engine.tasks.base import Labels, Task, register_task


def _sparse_to_state(matrix) -> dict[str, Any]:
    import torch

    coo = matrix.tocoo()
    return {"row": torch.as_tensor(coo.row, dtype=torch.long), "col": torch.as_tensor(coo.col, dtype=torch.long),
            "value": torch.as_tensor(coo.data, dtype=torch.float64), "shape": list(coo.shape)}


def _sparse_from_state(state: Mapping[str, Any]):
    from scipy import sparse

    return sparse.csr_matrix((np.asarray(state["value"]), (np.asarray(state["row"]), np.asarray(state["col"]))),
                             shape=tuple(state["shape"]))


@dataclass(frozen=True)
class CellState:
    """The cells as a classifier needs them, without geometry (what a checkpoint stores).

    Attributes:
        ids: ``(K,)`` cell ids. centroid_lat, centroid_lon: ``(K,)`` degrees.
        hash: :attr:`geocell.CellSet.hash`. kind: "semantic" or "s2".
        countries, admin1: the columns of the hierarchy matrices.
        to_country, to_admin1: ``(K, C)`` / ``(K, A)`` row-stochastic scipy sparse matrices.
    """

    ids: tuple[str, ...]
    centroid_lat: np.ndarray
    centroid_lon: np.ndarray
    hash: str
    kind: str
    countries: tuple[str, ...]
    admin1: tuple[str, ...]
    to_country: Any
    to_admin1: Any

    @classmethod
    def from_cellset(cls, cells: Any) -> "CellState":
        to_admin1, to_country = cells.hierarchy()
        return cls(tuple(str(i) for i in cells.ids), np.asarray(cells.centroid_lat, dtype=np.float64),
                   np.asarray(cells.centroid_lon, dtype=np.float64), cells.hash, cells.kind,
                   tuple(cells.country_vocab()), tuple(cells.admin1_vocab()), to_country, to_admin1)

    def to_state(self) -> dict[str, Any]:
        import torch

        return {"ids": list(self.ids), "centroid_lat": torch.tensor(self.centroid_lat, dtype=torch.float64),
                "centroid_lon": torch.tensor(self.centroid_lon, dtype=torch.float64), "hash": self.hash,
                "kind": self.kind, "countries": list(self.countries), "admin1": list(self.admin1),
                "to_country": _sparse_to_state(self.to_country), "to_admin1": _sparse_to_state(self.to_admin1)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "CellState":
        return cls(tuple(str(i) for i in state["ids"]), np.asarray(state["centroid_lat"], dtype=np.float64),
                   np.asarray(state["centroid_lon"], dtype=np.float64), str(state["hash"]), str(state["kind"]),
                   tuple(state["countries"]), tuple(state["admin1"]),
                   _sparse_from_state(state["to_country"]), _sparse_from_state(state["to_admin1"]))


#: The config keys the cells are built from.
CELL_KEYS = ("cells", "cell_min_samples", "cell_max_samples", "s2_tau_min", "s2_tau_max")
#: ... and for k-means cells also these (left out otherwise, so older run folders keep their fingerprint).
KMEANS_KEYS = ("kmeans_cells", "seed")


def cell_settings(config) -> dict[str, Any]:
    """The config values the run's cells are built from (:data:`CELL_KEYS`, and
    :data:`KMEANS_KEYS` for k-means cells)."""
    keys = CELL_KEYS + (KMEANS_KEYS if config.cells == "kmeans" else ())
    return {k: getattr(config, k) for k in keys}


#: The cell kinds built from the training points (any other ``config.cells`` is a file).
BUILT_CELLS = ("semantic", "s2", "kmeans")


def cells_fingerprint(config, train) -> str:
    """sha256 of everything the cells are built from: the training points (lat, lon, admin-1),
    the cell settings, and the bytes of a cells file given as ``config.cells``."""
    import hashlib
    import json

    h = hashlib.sha256()
    h.update(json.dumps(cell_settings(config), sort_keys=True).encode())
    h.update(np.ascontiguousarray(train.lat, dtype="<f8").tobytes())
    h.update(np.ascontiguousarray(train.lon, dtype="<f8").tobytes())
    h.update("\n".join(np.asarray(train.admin1).astype(str).tolist()).encode())
    if config.cells not in BUILT_CELLS:
        h.update(Path(config.cells).read_bytes())
    return h.hexdigest()


def build_cells(config, train, log: Callable[[str], None] = print):
    """The run's CellSet from its training points: ``config.cells`` is "semantic", "s2", "kmeans"
    (``config.kmeans_cells`` of them, seeded by ``config.seed``) or a file."""
    from geocell.cells import CellSet, admin1_of_points

    start = time.perf_counter()
    if config.cells not in BUILT_CELLS:
        cells = CellSet.load(config.cells)
    else:
        point_admin1 = np.where(train.admin1 != "", train.admin1, admin1_of_points(train.lat, train.lon))
        if config.cells == "kmeans":
            from geocell.kmeans_cells import build_kmeans

            cells = build_kmeans(train.lat, train.lon, config.kmeans_cells, point_admin1=point_admin1, seed=config.seed)
        elif config.cells == "semantic":
            from geocell.semantic import build_semantic

            cells = build_semantic(train.lat, train.lon, min_samples=config.cell_min_samples,
                                   max_samples=config.cell_max_samples, point_admin1=point_admin1)
        else:
            from geocell.s2cells import build_s2

            cells = build_s2(train.lat, train.lon, tau_min=config.s2_tau_min, tau_max=[config.s2_tau_max],
                             point_admin1=point_admin1)[-1]
    s = cells.summary()
    log(f"cells: {s['cells']} {s['kind']} cells, {s['samples_per_cell_min']}-{s['samples_per_cell_max']} "
        f"training samples each (median {s['samples_per_cell_median']:.0f}), built in {time.perf_counter() - start:.1f} s")
    return cells


@register_task("region")
class RegionTask(Task):
    """Geocell classification. ``config.label_smoothing`` "haversine" trains on PIGEON's soft
    targets ``exp(-(d(cell, point) - d(nearest cell, point)) / tau_km)``; "none" on the index of
    the cell that holds the point (plain cross-entropy).

    Args:
        cells: the cells as plain tensors. cellset: the full CellSet when it is at hand (at
            training time, or loaded from the run folder), used to find the true cell of a point.
    """

    supports_mixup = True
    CELLS_FILE = "cells.parquet"
    FINGERPRINT_FILE = "cells.json"

    def __init__(self, config, labels: Labels, cells: CellState, cellset: Any = None) -> None:
        super().__init__(config, labels)
        self.cells = cells
        self.cellset = cellset
        self._smoothing = None

    @classmethod
    def build(cls, config, labels, train, run_dir: Optional[Path] = None, log=print) -> "RegionTask":
        """Build the cells, or reuse the run folder's ``cells.parquet`` when its recorded
        fingerprint (:func:`cells_fingerprint`) equals this run's; other cells are rebuilt."""
        import json

        from geocell.cells import CellSet
        from geocell.tables import atomic_write

        fingerprint = cells_fingerprint(config, train)
        cellset = None
        if run_dir is not None:
            saved, record = Path(run_dir) / cls.CELLS_FILE, Path(run_dir) / cls.FINGERPRINT_FILE
            if saved.is_file() and record.is_file():
                recorded = json.loads(record.read_text())
                if recorded.get("fingerprint") == fingerprint:
                    cellset = CellSet.load(saved)
                    if cellset.hash != recorded.get("hash"):
                        cellset = None  # the file changed after it was recorded
            if cellset is None and saved.is_file():
                log(f"rebuilding {saved}: it was built from other training points or cell settings")
        if cellset is None:
            cellset = build_cells(config, train, log)
            if run_dir is not None:
                cellset.save(saved)
                text = json.dumps({"fingerprint": fingerprint, "hash": cellset.hash,
                                   "settings": cell_settings(config)}, indent=2, sort_keys=True)
                atomic_write(record, lambda p: p.write_text(text + "\n"))
        return cls(config, labels, CellState.from_cellset(cellset), cellset)

    @classmethod
    def from_state(cls, config, labels, state, run_dir: Optional[Path] = None) -> "RegionTask":
        cells = CellState.from_state(state["cells"])
        cellset = None
        saved = None if run_dir is None else Path(run_dir) / cls.CELLS_FILE
        if saved is not None and saved.is_file():
            from geocell.cells import CellSet
            from geocell_engine.errors import CheckpointError

            cellset = CellSet.load(saved)
            theirs = cellset.hash_v1 if state["cells"].get("hash_version", 2) == 1 else cellset.hash
            if theirs != cells.hash:
                raise CheckpointError(f"{saved} has cells {theirs[:12]}, but the checkpoint beside it was "
                                      f"trained on cells {cells.hash[:12]}; move the checkpoint to its own run "
                                      "folder or put that run's cells.parquet beside it")
        return cls(config, labels, cells, cellset)

    def state(self) -> dict[str, Any]:
        return {"cells": self.cells.to_state()}

    @classmethod
    def state_from_format_1(cls, config, ckpt) -> dict[str, Any]:
        """Format-1 checkpoints carry the version-1 cells hash (:attr:`geocell.CellSet.hash_v1`)."""
        return {"cells": dict(ckpt["cells"], hash_version=1)}

    @property
    def cells_hash(self) -> Optional[str]:
        return self.cells.hash

    def build_heads(self, in_features: int) -> dict[str, Any]:
        from heads import create_head

        c = self.cells
        return {"region": create_head("cell", in_features, num_cells=len(c.ids), cell_lat=c.centroid_lat,
                                      cell_lon=c.centroid_lon, cell_to_country=c.to_country,
                                      cell_to_admin1=c.to_admin1, countries=list(c.countries),
                                      admin1=list(c.admin1), cell_ids=list(c.ids))}

    def targets(self, split) -> dict[str, np.ndarray]:
        out = super().targets(split)
        if self.config.label_smoothing == "none":
            if self.cellset is None:
                raise ValueError("label_smoothing 'none' needs the CellSet to find each point's cell")
            out["cell"] = np.asarray(self.cellset.assign(split.lat, split.lon), dtype=np.int64)
        return out

    def _smoothing_loss(self, device):
        if self._smoothing is None:
            from losses import HaversineSmoothingLoss

            self._smoothing = HaversineSmoothingLoss(self.cells.centroid_lat, self.cells.centroid_lon,
                                                     tau_km=self.config.tau_km)
        return self._smoothing.to(device)

    def loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        logits = outputs["region"].logits.float()
        if self.config.label_smoothing == "none":
            import torch.nn.functional as F

            value = F.cross_entropy(logits, targets["cell"], ignore_index=-1)
        else:
            value = self._smoothing_loss(logits.device)(logits, targets["lat"], targets["lon"])
        return value, {"region": float(value.detach())}

    def mixed_loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any], mix: Any) -> tuple[Any, dict[str, float]]:
        """BCE against the mixed soft targets: ``mix @ targets`` of the haversine-smoothed cell
        targets (or of one-hot cells with ``label_smoothing="none"``), timm's ``BinaryCrossEntropy``."""
        import torch.nn.functional as F
        from timm.loss import BinaryCrossEntropy

        logits = outputs["region"].logits.float()
        if self.config.label_smoothing == "none":
            cell = targets["cell"]
            soft = F.one_hot(cell.clamp(min=0), logits.shape[1]).float() * (cell >= 0).unsqueeze(1).float()
        else:
            smoothing = self._smoothing_loss(logits.device)
            soft = smoothing.targets(targets["lat"].float(), targets["lon"].float()).float()
        value = BinaryCrossEntropy(smoothing=0.0)(logits, (mix.float() @ soft).clamp_(0.0, 1.0))
        return value, {"region": float(value.detach())}

    def country_proba(self, outputs: Mapping[str, Any]) -> Optional[np.ndarray]:
        """The cells' marginal country probabilities, on the run's country vocabulary."""
        country_probs = outputs["region"].country_probs
        if country_probs is None:
            return None
        probs = country_probs.float().cpu().numpy()
        out = np.zeros((probs.shape[0], len(self.labels.countries)), dtype=np.float64)
        index = {c: i for i, c in enumerate(self.labels.countries)}
        for j, c in enumerate(self.cells.countries):
            if c in index:
                out[:, index[c]] += probs[:, j]
        return out

    def collect(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {"pred_cell": outputs["region"].logits.argmax(dim=1).cpu().numpy()}

    def finish(self, collected: Mapping[str, np.ndarray], lat: np.ndarray, lon: np.ndarray) -> dict[str, Any]:
        true = None
        if self.cellset is not None and lat.size:
            true = np.asarray(self.cellset.assign(lat, lon), dtype=np.int64)
        return {"pred_cell": collected["pred_cell"], "true_cell": true}

    def describe(self) -> str:
        return f"region ({len(self.cells.ids)} {self.cells.kind} cells)"
