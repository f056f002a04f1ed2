"""Reproducible splits: random, spatially disjoint (every held-out point at least D km from every
training point), the split manifest with its sha256, and class-balanced sampling weights.

The spatially disjoint split holds out whole regions: seeds are drawn in a seeded order from the
points themselves (so held-out regions follow the data's density), every point within
``region_km`` of a test (validation) seed is a test (validation) candidate, at most
``per_region`` candidates are kept per region (so many regions, not one dense city, make up the
held-out sets), seeds are at least ``2 * region_km + buffer_km`` apart (so validation and test
are ``buffer_km`` apart too), and a point can train only if it is at least ``buffer_km`` from
every held-out candidate. Distances are taken between unit vectors with a k-d tree
(chord distance is monotone in great-circle distance); :func:`split_separation` verifies the
guarantee exactly.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> lat, lon = rng.uniform(-60, 70, 5000), rng.uniform(-180, 180, 5000)
    >>> s = spatial_split(lat, lon, sizes=(1000, 100, 100), buffer_km=300, region_km=200, per_region=20)
    >>> [int((s.split == k).sum()) for k in ("train", "val", "test")]
    [1000, 100, 100]
    >>> bool(split_separation(lat, lon, s.split)[("test", "train")] >= 300)
    True
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from geocell.constants import EARTH_RADIUS_KM
from geocell.geodesy import haversine, latlon_to_xyz
from geocell.tables import atomic_write
from geocell.validate import check_latlon
from geocell_engine.data.samples import sha256_file
from geocell_engine.errors import SplitError

__all__ = [
    "SPLIT_NAMES",
    "random_split",
    "SpatialSplit",
    "spatial_split",
    "split_separation",
    "write_split_manifest",
    "read_split_manifest",
    "balanced_weights",
    "split_manifest",
]

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")
#: Distances are kept this far (km) inside every bound, so rounding in the k-d tree's chord
#: arithmetic can never let a pair at exactly ``buffer_km - 1 mm`` through.
_SAFETY_KM = 1e-3


def _chord(distance_km: float) -> float:
    """Chord length between unit vectors at a great-circle distance (km)."""
    return 2.0 * math.sin(min(distance_km / EARTH_RADIUS_KM, math.pi) / 2.0)


def _sizes_from(n: int, sizes: Sequence[int] | None, fractions: Sequence[float] | None) -> tuple[int, int, int]:
    if (sizes is None) == (fractions is None):
        raise SplitError("give exactly one of sizes=(train, val, test) or fractions=(train, val, test)")
    if sizes is not None:
        if len(sizes) != 3 or any(int(s) != s or s < 0 for s in sizes):
            raise SplitError(f"sizes must be three non-negative integers (train, val, test), got {sizes!r}")
        out = tuple(int(s) for s in sizes)
    else:
        f = np.asarray(fractions, dtype=np.float64)
        if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f < 0) or not math.isclose(f.sum(), 1.0, abs_tol=1e-9):
            raise SplitError(f"fractions must be three non-negative numbers summing to 1 (train, val, test), got {fractions!r}")
        val, test = int(math.floor(f[1] * n)), int(math.floor(f[2] * n))
        out = (n - val - test, val, test)
    if sum(out) > n:
        raise SplitError(f"sizes {out} need {sum(out)} samples but there are only {n}")
    return out  # type: ignore[return-value]


def random_split(
    n: int,
    *,
    sizes: Sequence[int] | None = None,
    fractions: Sequence[float] | None = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> np.ndarray:
    """Seeded random split of ``n`` samples into ``"train"``, ``"val"``, ``"test"``.

    With ``sizes`` the counts are exact and the rest get ``""`` (unused); with ``fractions``
    validation and test get ``floor(f * n)`` and training the rest.

    Returns:
        ``(n,)`` array of split names (``<U5``).
    """
    if sizes is not None:
        fractions = None
    n_train, n_val, n_test = _sizes_from(n, sizes, fractions)
    order = np.random.default_rng(seed).permutation(n)
    out = np.full(n, "", dtype="<U5")
    out[order[:n_train]] = "train"
    out[order[n_train : n_train + n_val]] = "val"
    out[order[n_train + n_val : n_train + n_val + n_test]] = "test"
    return out


@dataclass(frozen=True, eq=False)
class SpatialSplit:
    """Result of :func:`spatial_split`.

    Attributes:
        split: ``(N,)`` ``"train"``, ``"val"``, ``"test"`` or ``""`` (not used: inside a buffer,
            over a region's cap, beyond the requested sizes, or dropped by the label rule).
        region: ``(N,)`` int, the held-out region of each point (-1 for none).
        seeds: ``(R,)`` indices of the region seeds; ``seed_split``: their split.
        dropped_unseen: ``{"val": n, "test": n}`` held-out region members dropped because their
            label has no training point.
        unseen_labels: the labels concerned, sorted.
    """

    split: np.ndarray
    region: np.ndarray
    seeds: np.ndarray
    seed_split: np.ndarray
    dropped_unseen: Mapping[str, int] = field(default_factory=dict)
    unseen_labels: tuple[str, ...] = ()


def spatial_split(
    lat: Any,
    lon: Any,
    *,
    sizes: Sequence[int] | None = None,
    fractions: Sequence[float] | None = None,
    buffer_km: float = 363.0,
    region_km: float = 150.0,
    per_region: int = 50,
    labels: Any | None = None,
    max_label_loss: float = 0.5,
    seed: int = 0,
) -> SpatialSplit:
    """Spatially disjoint train / validation / test split.

    Guarantees, for the returned split: every validation and test point is at least
    ``buffer_km`` (great-circle, :data:`geocell.constants.EARTH_RADIUS_KM`) from every training
    point, and every validation point at least ``buffer_km`` from every test point; with
    ``labels``, every validation/test label occurs in training (held-out points whose label has
    no training point are dropped and counted).

    Priority is the input order: training takes the first eligible points, each held-out set
    the first eligible candidates; shuffle beforehand for a random choice.

    Args:
        lat, lon: ``(N,)`` degrees.
        sizes: exact (train, val, test) counts.
        fractions: instead of ``sizes``: validation and test get ``floor(f * N)`` points and
            training every eligible point (the training fraction is then what the buffers
            leave, reported by the counts of the result).
        buffer_km: minimum held-out-to-training distance (also validation-to-test).
        region_km: radius of a held-out region around its seed.
        per_region: cap on the candidates one region contributes.
        labels: optional ``(N,)`` class labels (e.g. ``adm0_a3``) for the unseen-label rule.
        max_label_loss: with ``labels``, a region seed is skipped if its region plus buffer
            (the disc of ``region_km + buffer_km`` around it) would leave some label with
            less than ``1 - max_label_loss`` of its points available for training; so held-out
            regions never swallow a whole country (Belgium, Korea) and few points are dropped
            by the unseen-label rule. ``1.0`` turns this off.
        seed: seeds the order in which region seeds are tried.

    Raises:
        SplitError: the points cannot fill the requested sizes (the message says which).
    """
    lat_a, lon_a, _ = check_latlon(lat, lon)
    lat_a, lon_a = lat_a.reshape(-1), lon_a.reshape(-1)
    n = lat_a.size
    n_train, n_val, n_test = _sizes_from(n, sizes, fractions)
    train_all = sizes is None  # with fractions, training takes every eligible point
    if not (buffer_km >= 0 and region_km >= 0):
        raise SplitError(f"buffer_km and region_km must be >= 0, got {buffer_km!r}, {region_km!r}")
    if per_region < 1:
        raise SplitError(f"per_region must be >= 1, got {per_region!r}")
    lab = None if labels is None else np.asarray(labels).astype(str).reshape(-1)
    if lab is not None and lab.size != n:
        raise SplitError(f"labels has {lab.size} values for {n} points")

    from scipy.spatial import cKDTree

    xyz = latlon_to_xyz(lat_a, lon_a)
    tree = cKDTree(xyz)
    order = np.random.default_rng(seed).permutation(n)
    need = {"val": n_val, "test": n_test}
    region = np.full(n, -1, dtype=np.int64)
    seeds: list[int] = []
    seed_split: list[str] = []
    seed_xyz = np.empty((64, 3), dtype=np.float64)  # rows [:len(seeds)] are the seeds' unit vectors
    # candidates each split has so far, <= per_region per region: member discs never overlap (seeds
    # are > 2 * region_km apart), so this equals capped(which, everything) without recounting
    raw_count = {"val": 0, "test": 0}
    spacing_chord = _chord(2.0 * region_km + buffer_km + _SAFETY_KM)
    member_chord = _chord(region_km)
    reach_chord = _chord(region_km + buffer_km + _SAFETY_KM)
    pos = 0
    if lab is not None:
        if not 0.0 <= max_label_loss <= 1.0:
            raise SplitError(f"max_label_loss must be in [0, 1], got {max_label_loss!r}")
        label_names, label_id = np.unique(lab, return_inverse=True)
        label_total = np.bincount(label_id, minlength=label_names.size)
        label_left = label_total.astype(np.float64)
        label_floor = (1.0 - max_label_loss) * label_total
        reached = np.zeros(n, dtype=bool)  # within region + buffer of an accepted seed

    def add_region(which: str) -> None:
        nonlocal pos, seed_xyz
        while pos < n:
            c = int(order[pos])
            pos += 1
            if seeds:
                d = np.sqrt(((seed_xyz[: len(seeds)] - xyz[c]) ** 2).sum(axis=1))
                if np.any(d < spacing_chord):
                    continue
            if lab is not None and max_label_loss < 1.0:
                reach = np.asarray(tree.query_ball_point(xyz[c], reach_chord), dtype=np.int64)
                reach = reach[~reached[reach]]
                loss = np.bincount(label_id[reach], minlength=label_names.size)
                if np.any((loss > 0) & (label_left - loss < label_floor)):
                    continue
                reached[reach] = True
                label_left[:] -= loss
            members = np.asarray(tree.query_ball_point(xyz[c], member_chord), dtype=np.int64)
            region[members] = len(seeds)
            if len(seeds) == seed_xyz.shape[0]:
                seed_xyz = np.concatenate([seed_xyz, np.empty_like(seed_xyz)])
            seed_xyz[len(seeds)] = xyz[c]
            seeds.append(c)
            seed_split.append(which)
            raw_count[which] += min(members.size, per_region)
            return
        raise SplitError(
            f"ran out of points to seed held-out regions after {len(seeds)} regions; ask for "
            f"fewer validation/test points or a smaller buffer ({buffer_km:g} km) or region "
            f"({region_km:g} km)"
        )

    def capped(which: str, ok: np.ndarray) -> np.ndarray:
        """Indices (input order) of the eligible candidates of ``which``, <= per_region each."""
        ids = [r for r, s in enumerate(seed_split) if s == which]
        if not ids:
            return np.empty(0, dtype=np.int64)
        cand = np.flatnonzero(np.isin(region, ids) & ok)
        # keep the first `per_region` of each region, in input order
        reg = region[cand]
        sort = np.argsort(reg, kind="stable")
        reg_sorted = reg[sort]
        starts = np.searchsorted(reg_sorted, reg_sorted, side="left")
        rank = np.arange(reg_sorted.size) - starts
        return np.sort(cand[sort][rank < per_region])

    def evaluate() -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, int], tuple[str, ...]]:
        held = region >= 0
        train_ok = ~held
        if held.any() and buffer_km > 0:
            held_tree = cKDTree(xyz[held])
            dist, _ = held_tree.query(
                xyz[train_ok], k=1, distance_upper_bound=_chord(buffer_km + _SAFETY_KM)
            )
            idx = np.flatnonzero(train_ok)
            train_ok[idx[np.isfinite(dist)]] = False
        train_idx = np.flatnonzero(train_ok)
        if not train_all:
            train_idx = train_idx[:n_train]
        ok = np.ones(n, dtype=bool)
        dropped: dict[str, int] = {"val": 0, "test": 0}
        unseen: tuple[str, ...] = ()
        if lab is not None:
            seen = np.isin(lab, np.unique(lab[train_idx]))
            ok = seen
            for which in ("val", "test"):
                ids = [r for r, s in enumerate(seed_split) if s == which]
                dropped[which] = int((np.isin(region, ids) & ~seen).sum())
            unseen = tuple(sorted(set(lab[(region >= 0) & ~seen].tolist())))
        chosen = {which: capped(which, ok) for which in ("val", "test")}
        return train_idx, chosen, dropped, unseen

    # Grow regions on raw (uncapped by labels) counts first, then correct with full evaluations.
    while True:
        short = [w for w in ("test", "val") if raw_count[w] < need[w]]
        if not short:
            break
        for w in short:
            add_region(w)
    while True:
        train_idx, chosen, dropped, unseen = evaluate()
        short = [w for w in ("test", "val") if chosen[w].size < need[w]]
        if not short:
            break
        for w in short:
            add_region(w)
    if not train_all and train_idx.size < n_train:
        raise SplitError(
            f"only {train_idx.size} points are at least {buffer_km:g} km from every held-out point; "
            f"{n_train} training points were asked for: give more points or ask for fewer"
        )
    split = np.full(n, "", dtype="<U5")
    split[train_idx] = "train"
    split[chosen["val"][: need["val"]]] = "val"
    split[chosen["test"][: need["test"]]] = "test"
    return SpatialSplit(
        split=split,
        region=region,
        seeds=np.asarray(seeds, dtype=np.int64),
        seed_split=np.asarray(seed_split, dtype="<U5"),
        dropped_unseen=dropped,
        unseen_labels=unseen,
    )


def split_separation(
    lat: Any, lon: Any, split: Any, *, method: str = "tree", batch: int = 2048
) -> dict[tuple[str, str], float]:
    """Minimum great-circle distance (km) between the points of every pair of splits.

    ``method="brute"`` takes :func:`geocell.geodesy.haversine` over all pairs in batches
    (float64): slow but independent of any index. ``method="tree"`` (default) finds the 8
    nearest candidates by chord distance between unit vectors with a k-d tree (the chord is
    monotone in the great-circle distance, so the nearest point is among them) and takes the
    haversine distance to them: the same minimum, in milliseconds.

    Returns:
        ``{("test", "train"): km, ("val", "train"): km, ("test", "val"): km}`` (``inf`` when
        one side is empty).
    """
    lat_a, lon_a, _ = check_latlon(lat, lon)
    lat_a, lon_a = lat_a.reshape(-1), lon_a.reshape(-1)
    split = np.asarray(split).astype(str).reshape(-1)
    if method not in ("tree", "brute"):
        raise ValueError(f"method must be 'tree' or 'brute', got {method!r}")
    out: dict[tuple[str, str], float] = {}
    for a, b in (("test", "train"), ("val", "train"), ("test", "val")):
        ia, ib = np.flatnonzero(split == a), np.flatnonzero(split == b)
        best = math.inf
        if ia.size and ib.size:
            if method == "brute":
                for s in range(0, ia.size, batch):
                    sel = ia[s : s + batch]
                    d = haversine(lat_a[sel, None], lon_a[sel, None], lat_a[None, ib], lon_a[None, ib])
                    best = min(best, float(d.min()))
            else:
                from scipy.spatial import cKDTree

                k = min(8, ib.size)
                _, nn = cKDTree(latlon_to_xyz(lat_a[ib], lon_a[ib])).query(latlon_to_xyz(lat_a[ia], lon_a[ia]), k=k)
                nn = ib[np.asarray(nn).reshape(ia.size, k)]
                d = haversine(lat_a[ia, None], lon_a[ia, None], lat_a[nn], lon_a[nn])
                best = float(d.min())
        out[(a, b)] = best
    return out


def write_split_manifest(ids: Sequence[Any], split: Any, path: str | os.PathLike) -> str:
    """Write ``id,split`` lines (in the given order) atomically and return the file's sha256.

    The bytes depend only on the ids and split names (UTF-8, ``\\n`` line ends), so the hash
    identifies the split.
    """
    split = np.asarray(split).astype(str)
    ids = [str(i) for i in ids]
    if len(ids) != split.size:
        raise SplitError(f"{len(ids)} ids but {split.size} split names")
    bad = sorted(set(split.tolist()) - set(SPLIT_NAMES) - {""})
    if bad:
        raise SplitError(f"unknown split names {bad}; expected {', '.join(SPLIT_NAMES)} or ''")
    for i in ids:
        if "," in i or "\n" in i:
            raise SplitError(f"id {i!r} contains a comma or a line break")
    text = "id,split\n" + "".join(f"{i},{s}\n" for i, s in zip(ids, split.tolist()))
    path = Path(path)
    atomic_write(path, lambda tmp: tmp.write_bytes(text.encode("utf-8")))
    return sha256_file(path)


def read_split_manifest(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """Read ``id,split`` back: (ids, split names)."""
    from geocell.tables import read_table

    frame = read_table(path)
    if list(frame.columns) != ["id", "split"]:
        raise SplitError(f"{path}: expected the columns id,split, got {','.join(map(str, frame.columns))}")
    return frame["id"].astype(str).tolist(), frame["split"].fillna("").astype(str).to_numpy()


def balanced_weights(labels: Any, power: float = 1.0) -> np.ndarray:
    """Per-sample weights that balance classes: ``count(label) ** -power``, mean 1.

    ``power=1`` makes every class equally likely under weighted sampling (e.g. torch's
    ``WeightedRandomSampler``); ``0.5`` is a softer rebalancing; ``0`` gives uniform weights.

    Example:
        >>> balanced_weights(["FRA", "FRA", "FRA", "ITA"]).round(3).tolist()
        [0.667, 0.667, 0.667, 2.0]
    """
    lab = np.asarray(labels).astype(str).reshape(-1)
    if lab.size == 0:
        raise ValueError("balanced_weights needs at least one label")
    if not (power >= 0 and math.isfinite(power)):
        raise ValueError(f"power must be a finite number >= 0, got {power!r}")
    _, inverse, counts = np.unique(lab, return_inverse=True, return_counts=True)
    w = counts[inverse].astype(np.float64) ** -power
    return w / w.mean()


def split_manifest(
    manifest: str | os.PathLike,
    out: str | os.PathLike,
    *,
    method: str = "random",
    sizes: Sequence[int] | None = None,
    fractions: Sequence[float] | None = (0.8, 0.1, 0.1),
    buffer_km: float = 363.0,
    region_km: float = 150.0,
    per_region: int = 50,
    label_column: str | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, str]:
    """Split the samples of a manifest and write the ``id,split`` manifest (ids = image paths
    relative to the manifest's folder, as written in it).

    Args:
        method: ``"random"`` (:func:`random_split`) or ``"spatial"`` (:func:`spatial_split`;
            needs coordinates; with ``fractions`` training takes every eligible sample).
        label_column: for ``"spatial"``, a column (e.g. ``adm0_a3``) whose validation/test
            values must occur in training.

    Returns:
        (split names per manifest row, sha256 of the written split manifest).
    """
    from geocell.tables import read_table
    from geocell_engine.data.readers import detect_layout

    frame = read_table(manifest)
    layout, cols = detect_layout(frame.columns)
    ids = frame[cols["key"]].astype(str).tolist()
    if sizes is not None:
        fractions = None
    if method == "random":
        split = random_split(len(frame), sizes=sizes, fractions=fractions, seed=seed)
    elif method == "spatial":
        from geocell_engine.data.readers import read_manifest

        table = read_manifest(manifest, missing="ignore")
        labels = None
        if label_column is not None:
            if label_column not in table.frame.columns:
                raise SplitError(f"{manifest}: no column {label_column!r}; found {', '.join(map(str, table.frame.columns))}")
            labels = table.frame[label_column].fillna("").astype(str).to_numpy()
        split = spatial_split(
            table.lat, table.lon, sizes=sizes, fractions=fractions, buffer_km=buffer_km,
            region_km=region_km, per_region=per_region, labels=labels, seed=seed,
        ).split
    else:
        raise SplitError(f"method must be 'random' or 'spatial', got {method!r}")
    return split, write_split_manifest(ids, split, out)
