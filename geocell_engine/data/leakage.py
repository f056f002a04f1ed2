"""Train/test leakage: test images that are exact or near duplicates of training images, and test
points within a given distance of training points.

Benchmark contamination (the same photo, re-encoded, resized or cropped, in the training data and
in the benchmark — known between MP-16 and YFCC4k) makes a model look better than it is. Two
checks:

- **images** (:func:`hash_images`, :func:`find_duplicate_images`): perceptual hashes from
  `imagehash <https://pypi.org/project/ImageHash/>`_ — ``phash`` (DCT) and ``dhash`` (gradient),
  64 bits each. A global hash is robust to re-encoding and resizing but not to cropping, so each
  image is also hashed at 9 crops keeping ``crop_fraction`` of each side (a 3 x 3 grid of
  offsets). Two images are near duplicates when, for the best pairing of one's full view with a
  view of the other (either way round), **both** Hamming distances are ``<= threshold``.
  Pixel-identical images (or byte-identical files) are ``"exact"``.
- **points** (:func:`nearby_points`): for every test point, the nearest training point by
  great-circle distance (scikit-learn ``BallTree`` with the haversine metric), flagged when it is
  ``<= max_km``; the minimum over the test set is what ``evaluate`` states as the train-test
  separation.

The default threshold (12 of 64 bits) and crop fraction (0.9) were chosen with
``benchmarks/bench_leakage.py`` (results in ``benchmarks/results/leakage.json``): over 123
non-overlapping 192 px Blue Marble crops, every copy re-encoded as JPEG quality 40, resized to
50-100 %, or cropped to 90-100 % of each side at a random offset was found; of copies with all
three at once 122 of 123; of copies cropped to 80-90 % of each side 90 of 123; and none of the
7,503 distinct pairs was within the threshold (the closest was 18 bits). On bluemarble-v1 (64 px
patches, test 363 km or more from training) 6 of the 40 million test-training pairs are within
it, all at exactly 12 bits and all false matches: coastline patches of similar shape (Sinaloa
against northern Peru). Rotations and flips are not covered; a larger ``threshold`` (more false matches) or a smaller ``crop_fraction`` reaches
further.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> train = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    >>> test = np.concatenate([train[1:2], rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)])
    >>> pairs = find_duplicate_images(hash_images(train), hash_images(test))
    >>> pairs[["test_index", "train_index", "kind"]].values.tolist()
    [[0, 1, 'exact']]
"""

from __future__ import annotations

import hashlib
import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from geocell_engine.errors import LeakageError

__all__ = [
    "LeakageError",
    "DEFAULT_HAMMING_THRESHOLD",
    "DEFAULT_CROP_FRACTION",
    "ImageHashes",
    "hash_images",
    "hamming",
    "find_duplicate_images",
    "nearby_points",
    "LeakageReport",
    "check_leakage",
]

#: Largest Hamming distance (of 64 bits, for both phash and dhash) between near duplicates.
DEFAULT_HAMMING_THRESHOLD = 12
#: Fraction of each side kept by the 9 crop views hashed besides the full image.
DEFAULT_CROP_FRACTION = 0.9
_GRID = (0.0, 0.5, 1.0)


@dataclass(frozen=True, eq=False)
class ImageHashes:
    """Perceptual hashes of N images.

    Attributes:
        views: ``(N, V, 2)`` uint64: ``[..., 0]`` phash, ``[..., 1]`` dhash of each view; view 0
            is the full image, views 1.. the crops (V = 1 without crops).
        digest: ``(N,)`` str sha256 of each file's bytes (paths) or of the pixels (arrays), for
            exact duplicates.
        names: ``(N,)`` str how messages name each image (its path, or ``"image <i>"``).
        crop_fraction: the crops' kept fraction (1.0 = no crops).
    """

    views: np.ndarray
    digest: np.ndarray
    names: np.ndarray
    crop_fraction: float

    def __len__(self) -> int:
        return int(self.views.shape[0])


def _bits(h) -> int:
    """An imagehash.ImageHash (8 x 8 bool, row-major) -> a Python int of its 64 bits."""
    return int(np.packbits(np.asarray(h.hash, dtype=bool).reshape(-1)).view(">u8")[0])


def _views(img, crop_fraction: float) -> list:
    if crop_fraction >= 1.0:
        return [img]
    w, h = img.size
    cw, ch = max(1, round(w * crop_fraction)), max(1, round(h * crop_fraction))
    out = [img]
    for gx, gy in itertools.product(_GRID, _GRID):
        x0, y0 = round((w - cw) * gx), round((h - ch) * gy)
        out.append(img.crop((x0, y0, x0 + cw, y0 + ch)))
    return out


def _hash_one(source: Any, crop_fraction: float, name: str) -> tuple[np.ndarray, str]:
    import imagehash
    from PIL import Image

    if isinstance(source, np.ndarray):
        img = Image.fromarray(np.ascontiguousarray(source))
        digest = hashlib.sha256(np.ascontiguousarray(source).tobytes() + str(source.shape).encode()).hexdigest()
    else:
        from geocell_engine.data.images import open_rgb

        path = Path(source)
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise LeakageError(f"{name}: cannot read image file ({exc.strerror or exc})") from exc
        try:
            img = open_rgb(path)
        except Exception as exc:  # CorruptImageError, InputFileError: name the file either way
            raise LeakageError(f"{name}: cannot decode image ({exc})") from exc
    img = img.convert("RGB")
    views = _views(img, crop_fraction)
    out = np.array([[_bits(imagehash.phash(v)), _bits(imagehash.dhash(v))] for v in views], dtype=np.uint64)
    return out, digest


def hash_images(
    images: Any,
    *,
    crop_fraction: float = DEFAULT_CROP_FRACTION,
    workers: Optional[int] = None,
    names: Optional[Sequence[str]] = None,
) -> ImageHashes:
    """phash and dhash (64 bits each) of every image, at full size and 9 crops.

    Args:
        images: image file paths ``(N,)``, or uint8 RGB pixels ``(N, H, W, 3)`` (e.g. a
            bluemarble memory map, read image by image).
        crop_fraction: in (0, 1]: each crop keeps this fraction of each side, on a 3 x 3 grid of
            offsets (corners, edge centres, centre); 1.0 hashes the full image only.
        workers: threads (PIL and scipy release the GIL for part of the work); default 2.
        names: how messages name the images (default: the paths, or ``"image <i>"``).

    Returns:
        :class:`ImageHashes`.

    Raises:
        LeakageError: a file that cannot be read or decoded (named), a bad ``crop_fraction``,
            pixels that are not uint8 ``(N, H, W, 3)``.
    """
    if not (isinstance(crop_fraction, (int, float)) and 0.0 < crop_fraction <= 1.0):
        raise LeakageError(f"crop_fraction must be in (0, 1] (the kept fraction of each side), got {crop_fraction!r}")
    if isinstance(images, np.ndarray) and images.dtype != object:
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise LeakageError(f"images must be uint8 RGB of shape (N, H, W, 3), got {images.dtype} {images.shape}")
        sources: Sequence[Any] = images
        default_names = [f"image {i}" for i in range(images.shape[0])]
    else:
        sources = [str(p) for p in images]
        default_names = list(sources)
    n = len(sources)
    names = default_names if names is None else [str(x) for x in names]
    if len(names) != n:
        raise LeakageError(f"{len(names)} names for {n} images")
    workers = 2 if workers is None else max(1, int(workers))

    def work(i: int):
        src = sources[i]
        return _hash_one(np.asarray(src) if isinstance(sources, np.ndarray) else src, float(crop_fraction), names[i])

    if workers == 1 or n < 16:
        results = [work(i) for i in range(n)]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(work, range(n), chunksize=32))
    v = 1 if crop_fraction >= 1.0 else 1 + len(_GRID) ** 2
    views = np.stack([r[0] for r in results]) if results else np.zeros((0, v, 2), dtype=np.uint64)
    return ImageHashes(views=views, digest=np.array([r[1] for r in results], dtype=object),
                       names=np.array(names, dtype=object), crop_fraction=float(crop_fraction))


def hamming(a: Any, b: Any) -> np.ndarray:
    """Pairwise Hamming distances of 64-bit hashes: ``a (N,)`` and ``b (M,)`` uint64 -> ``(N, M)``
    uint8 (``numpy.bitwise_count`` of the XOR).

    Example:
        >>> hamming(np.array([0b1011], np.uint64), np.array([0, 0b1000], np.uint64)).tolist()
        [[3, 2]]
    """
    a = np.asarray(a, dtype=np.uint64).reshape(-1)
    b = np.asarray(b, dtype=np.uint64).reshape(-1)
    return np.bitwise_count(a[:, None] ^ b[None, :])


def _one_way(full: np.ndarray, views: np.ndarray, threshold: int, chunk: int):
    """Pairs (i, j) where full view i (``full (Na, 2)``) is within ``threshold`` of some view of
    image j (``views (Nb, V, 2)``) in both hashes: (i, j, phash d, dhash d), best view per pair."""
    nb, v, _ = views.shape
    flat = views.reshape(nb * v, 2)
    owner = np.repeat(np.arange(nb), v)
    out_i, out_j, out_p, out_d = [], [], [], []
    for start in range(0, full.shape[0], chunk):
        a = full[start:start + chunk]
        dp = hamming(a[:, 0], flat[:, 0])
        ci, cj = np.nonzero(dp <= threshold)
        if ci.size == 0:
            continue
        dd = np.bitwise_count(a[ci, 1] ^ flat[cj, 1])
        keep = dd <= threshold
        out_i.append(ci[keep] + start)
        out_j.append(owner[cj[keep]])
        out_p.append(dp[ci[keep], cj[keep]].astype(np.int64))
        out_d.append(dd[keep].astype(np.int64))
    if not out_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, empty
    return tuple(np.concatenate(x) for x in (out_i, out_j, out_p, out_d))


def _best_pairs(i, j, p, d):
    """One row per (i, j): the pairing with the smallest max(phash, dhash), then phash."""
    import pandas as pd

    frame = pd.DataFrame({"i": i, "j": j, "phash_distance": p, "dhash_distance": d})
    frame["distance"] = np.maximum(frame.phash_distance, frame.dhash_distance)
    frame = frame.sort_values(["i", "j", "distance", "phash_distance"], kind="stable")
    return frame.drop_duplicates(["i", "j"], keep="first").reset_index(drop=True)


def find_duplicate_images(
    train: ImageHashes,
    test: ImageHashes,
    *,
    threshold: int = DEFAULT_HAMMING_THRESHOLD,
    chunk: int = 64,
):
    """Test images that are exact or near duplicates of training images.

    A pair is reported when the full view of one image and some view (full or crop) of the
    other are within ``threshold`` bits in both phash and dhash — test full vs training views
    (the test image is a crop of a training image) and training full vs test views (the other way
    round). Exact: equal ``digest`` (same file bytes, or the same pixels).

    Args:
        train, test: from :func:`hash_images` (the same ``crop_fraction``).
        threshold: Hamming bits (0-64).
        chunk: test images compared per vectorised block (memory ~ chunk x N_train x V x 8 bytes).

    Returns:
        DataFrame, one row per (test, training) pair, sorted by test index then distance:
        ``test_index, train_index, test_name, train_name, kind ("exact" / "near"),
        phash_distance, dhash_distance, distance`` (= max of the two).

    Raises:
        LeakageError: a threshold outside 0-64, different crop fractions.
    """
    import pandas as pd

    if not (isinstance(threshold, (int, np.integer)) and 0 <= threshold <= 64):
        raise LeakageError(f"threshold must be an integer number of bits in [0, 64], got {threshold!r}")
    if train.crop_fraction != test.crop_fraction:
        raise LeakageError(f"hashes made with different crop fractions ({train.crop_fraction} vs {test.crop_fraction})")
    columns = ["test_index", "train_index", "test_name", "train_name", "kind", "phash_distance", "dhash_distance",
               "distance"]
    parts = []
    if len(train) and len(test):
        a = _one_way(test.views[:, 0], train.views, int(threshold), chunk)
        b = _one_way(train.views[:, 0], test.views, int(threshold), chunk)
        i = np.concatenate([a[0], b[1]])
        j = np.concatenate([a[1], b[0]])
        p = np.concatenate([a[2], b[2]])
        d = np.concatenate([a[3], b[3]])
        best = _best_pairs(i, j, p, d)
        # exact duplicates by digest (a pixel-identical pair is within any threshold anyway)
        by_digest: dict[str, list[int]] = {}
        for k, dig in enumerate(train.digest.tolist()):
            by_digest.setdefault(dig, []).append(k)
        exact = [(ti, tj) for ti, dig in enumerate(test.digest.tolist()) for tj in by_digest.get(dig, ())]
        if exact:
            ex = pd.DataFrame(exact, columns=["i", "j"])
            ex["phash_distance"] = 0
            ex["dhash_distance"] = 0
            ex["distance"] = 0
            best = pd.concat([ex, best]).drop_duplicates(["i", "j"], keep="first")
        exact_set = set(exact)
        if len(best):
            frame = pd.DataFrame({
                "test_index": best["i"].to_numpy(np.int64), "train_index": best["j"].to_numpy(np.int64),
                "test_name": test.names[best["i"].to_numpy()], "train_name": train.names[best["j"].to_numpy()],
                "kind": ["exact" if (x, y) in exact_set else "near" for x, y in zip(best["i"], best["j"])],
                "phash_distance": best["phash_distance"].to_numpy(np.int64),
                "dhash_distance": best["dhash_distance"].to_numpy(np.int64),
                "distance": best["distance"].to_numpy(np.int64),
            })
            parts.append(frame)
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c.endswith(("index", "distance")) else "object")
                             for c in columns})
    out = parts[0].sort_values(["test_index", "distance", "train_index"], kind="stable").reset_index(drop=True)
    return out[columns]


def nearby_points(
    train_lat: Any, train_lon: Any, test_lat: Any, test_lon: Any, *, max_km: float = 1.0,
):
    """The nearest training point of every test point, flagged when within ``max_km``.

    Args:
        train_lat, train_lon: ``(N_train,)`` degrees; test_lat, test_lon: ``(N,)`` degrees.
        max_km: great-circle km (:data:`geocell.constants.EARTH_RADIUS_KM`).

    Returns:
        DataFrame with one row per test point: ``test_index, train_index`` (the nearest),
        ``distance_km``, ``within`` (bool, ``distance_km <= max_km``).

    Raises:
        InvalidCoordinateError: a bad coordinate (named); LeakageError: no training points, a
            bad ``max_km``.

    Example:
        >>> t = nearby_points([0.0, 10.0], [0.0, 0.0], [0.005, 5.0], [0.0, 0.0], max_km=1.0)
        >>> t.train_index.tolist(), t.distance_km.round(3).tolist(), t.within.tolist()
        ([0, 0], [0.556, 555.975], [True, False])
    """
    import pandas as pd
    from sklearn.neighbors import BallTree

    from geocell.constants import EARTH_RADIUS_KM
    from geocell.geodesy import haversine
    from geocell.validate import check_latlon

    if not (isinstance(max_km, (int, float)) and np.isfinite(max_km) and max_km >= 0):
        raise LeakageError(f"max_km must be a finite distance >= 0 km, got {max_km!r}")
    tr_lat, tr_lon, _ = check_latlon(train_lat, train_lon)
    te_lat, te_lon, _ = check_latlon(test_lat, test_lon)
    tr_lat, tr_lon, te_lat, te_lon = (np.asarray(x, dtype=np.float64).reshape(-1) for x in (tr_lat, tr_lon, te_lat, te_lon))
    if tr_lat.size == 0:
        raise LeakageError("no training points to compare with")
    tree = BallTree(np.deg2rad(np.column_stack([tr_lat, tr_lon])), metric="haversine")
    if te_lat.size == 0:
        return pd.DataFrame({"test_index": np.zeros(0, np.int64), "train_index": np.zeros(0, np.int64),
                             "distance_km": np.zeros(0), "within": np.zeros(0, bool)})
    _, idx = tree.query(np.deg2rad(np.column_stack([te_lat, te_lon])), k=1)
    idx = idx[:, 0]
    # the tree's angle, recomputed with geocell's haversine (one formula everywhere)
    dist = np.asarray(haversine(te_lat, te_lon, tr_lat[idx], tr_lon[idx], radius_km=EARTH_RADIUS_KM))
    return pd.DataFrame({"test_index": np.arange(te_lat.size), "train_index": idx.astype(np.int64),
                         "distance_km": dist, "within": dist <= max_km})


@dataclass(frozen=True, eq=False)
class LeakageReport:
    """What :func:`check_leakage` found.

    Attributes:
        n_train, n_test: images / points compared.
        duplicates: :func:`find_duplicate_images` rows (empty when images were not compared).
        nearby: :func:`nearby_points` rows of the test points within ``max_km`` (all columns).
        min_distance_km: the smallest test-to-training distance, or None without coordinates.
        threshold, crop_fraction, max_km: the settings.
        images_checked: whether images were compared (False: coordinates only).
    """

    n_train: int
    n_test: int
    duplicates: Any
    nearby: Any
    min_distance_km: Optional[float]
    threshold: int
    crop_fraction: float
    max_km: float
    images_checked: bool = True

    @property
    def n_duplicate_test_images(self) -> int:
        """Test images with at least one exact or near duplicate in training."""
        return int(self.duplicates["test_index"].nunique()) if len(self.duplicates) else 0

    def summary(self) -> str:
        """A few lines for the terminal."""
        lines = [f"compared {self.n_test:,} test with {self.n_train:,} training samples"]
        if self.images_checked:
            exact = int((self.duplicates["kind"] == "exact").sum()) if len(self.duplicates) else 0
            lines.append(f"images: {self.n_duplicate_test_images:,} test image(s) with a duplicate in training "
                         f"({exact:,} exact pair(s), {len(self.duplicates) - exact:,} near pair(s); phash and dhash "
                         f"within {self.threshold} bits, crops keeping {self.crop_fraction:g} of each side)")
        if self.min_distance_km is not None:
            lines.append(f"points: {len(self.nearby):,} test point(s) within {self.max_km:g} km of a training point; "
                         f"the nearest pair is {self.min_distance_km:,.3f} km apart")
        return "\n".join(lines)


def check_leakage(
    train_images: Any,
    test_images: Any,
    *,
    train_latlon: Optional[tuple[Any, Any]] = None,
    test_latlon: Optional[tuple[Any, Any]] = None,
    threshold: int = DEFAULT_HAMMING_THRESHOLD,
    crop_fraction: float = DEFAULT_CROP_FRACTION,
    max_km: float = 1.0,
    workers: Optional[int] = None,
    train_names: Optional[Sequence[str]] = None,
    test_names: Optional[Sequence[str]] = None,
) -> LeakageReport:
    """Both checks: duplicate images (:func:`find_duplicate_images`) and nearby points
    (:func:`nearby_points`, when both coordinate pairs are given).

    Args:
        train_images, test_images: paths or uint8 pixels, as :func:`hash_images` takes; None
            skips the image check.
        train_latlon, test_latlon: ``(lat, lon)`` arrays, or None to skip the point check.
    """
    import pandas as pd

    dup = pd.DataFrame()
    n_train = n_test = 0
    if train_images is not None and test_images is not None:
        a = hash_images(train_images, crop_fraction=crop_fraction, workers=workers, names=train_names)
        b = hash_images(test_images, crop_fraction=crop_fraction, workers=workers, names=test_names)
        dup = find_duplicate_images(a, b, threshold=threshold)
        n_train, n_test = len(a), len(b)
    nearby, min_km = pd.DataFrame(), None
    if train_latlon is not None and test_latlon is not None:
        near = nearby_points(*train_latlon, *test_latlon, max_km=max_km)
        nearby = near[near.within].reset_index(drop=True)
        min_km = float(near.distance_km.min()) if len(near) else None
        n_train = n_train or int(np.size(train_latlon[0]))
        n_test = n_test or len(near)
    return LeakageReport(n_train=n_train, n_test=n_test, duplicates=dup, nearby=nearby, min_distance_km=min_km,
                         threshold=int(threshold), crop_fraction=float(crop_fraction), max_km=float(max_km),
                         images_checked=train_images is not None and test_images is not None)


def _self_pairs(hashes: ImageHashes, threshold: int, chunk: int = 64):
    """Near-duplicate pairs (i < j) within one set: for the hygiene step."""
    a = _one_way(hashes.views[:, 0], hashes.views, threshold, chunk)
    i = np.minimum(a[0], a[1])
    j = np.maximum(a[0], a[1])
    keep = i != j
    best = _best_pairs(i[keep], j[keep], a[2][keep], a[3][keep])
    return best


def resolve_images(spec: str) -> tuple[Any, Optional[tuple[np.ndarray, np.ndarray]], list[str]]:
    """A CLI argument -> (images, (lat, lon) or None, names): ``bluemarble-v1:<split>`` (its
    in-memory patches) or a manifest file (its image paths and coordinates)."""
    if spec.startswith("bluemarble-v1"):
        from geocell_engine.data.bluemarble import load_bluemarble

        split = spec.partition(":")[2] or "test"
        if split not in ("train", "val", "test"):
            raise LeakageError(f"{spec!r}: expected bluemarble-v1:train, bluemarble-v1:val or bluemarble-v1:test")
        data = load_bluemarble(split)  # type: ignore[arg-type]
        return data.images, (data.lat, data.lon), [f"{spec} id {i}" for i in data.ids.tolist()]
    from geocell_engine.data.readers import read_manifest

    path = Path(spec)
    if not path.is_file():
        from geocell.errors import InputFileError

        raise InputFileError(f"{path}: no such manifest")
    table = read_manifest(path, missing="error")
    latlon = (table.lat, table.lon) if table.has_coordinates else None
    return table.paths, latlon, list(table.paths)
