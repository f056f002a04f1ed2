"""Reference predictors that any trained model must be compared with, each giving a `Predictions`.

- :func:`constant_baseline`: one guess for every test sample, the training points' geometric
  median on the sphere, and the most frequent training country.
- :func:`knn_colour_baseline`: k nearest training images by colour histogram (scikit-learn);
  location = spherical geometric median of the neighbours, country = neighbour vote shares.
- :func:`knn_feature_baseline`: the same kNN over any image features, e.g. frozen ImageNet
  features of the model's backbone (:func:`geocell_engine.evaluation.features.frozen_knn_baseline`):
  what pretraining alone gives, so the gap to the model is what fine-tuning gives.
- :func:`true_cell_centroid`: each test point guessed at the centroid of its own cell. A
  reference (a perfect top-1 cell classifier that guesses centroids), not a bound: see its
  docstring. (``nearest_cell_bound`` is its old name.)

Also :func:`spherical_geometric_median` (the point minimising the sum of great-circle distances)
and :func:`colour_histogram_features`.

Example:
    >>> import numpy as np
    >>> from geocell import haversine, spherical_mean
    >>> lat, lon = [48.85, 48.87, 48.84, 48.86, 35.68], [2.35, 2.34, 2.37, 2.36, 139.69]
    >>> round(haversine(48.86, 2.35, *spherical_geometric_median(lat, lon)))  # km from Paris
    1
    >>> round(haversine(48.86, 2.35, *spherical_mean(lat, lon)))  # Tokyo drags the mean away
    1542
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from geocell.geodesy import latlon_to_xyz, xyz_to_latlon
from geocell.validate import check_latlon
from geocell_engine.errors import BaselineError
from geocell_engine.evaluation.predictions import Predictions

__all__ = [
    "BaselineError",
    "spherical_geometric_median",
    "constant_baseline",
    "colour_histogram_features",
    "knn_colour_baseline",
    "knn_feature_baseline",
    "true_cell_centroid",
    "nearest_cell_bound",
]



# ------------------------------------------------------------------------------ geometric median
#: Angular distance (radians) under which a data point counts as coinciding with the estimate
#: (about 6 mm on the Earth).
_COINCIDE_RAD = 1e-9


def _angles(x: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Angles between unit vectors ``x (B, 3)`` and ``p (B, M, 3)``, with tangent directions.

    Returns (theta (B, M) radians, unit tangent vectors at x pointing to p (B, M, 3), sin theta).
    ``atan2(|x x p|, x . p)`` keeps short and near-antipodal angles accurate.
    """
    cos = np.einsum("bmk,bk->bm", p, x)
    tangent = p - cos[..., None] * x[:, None, :]
    sin = np.linalg.norm(tangent, axis=-1)
    theta = np.arctan2(sin, cos)
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = np.where(sin[..., None] > 1e-15, tangent / sin[..., None], 0.0)
    return theta, unit, sin


def _objective(x: np.ndarray, p: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted sum of angles from each ``x (B, 3)`` to its points ``p (B, M, 3)``: ``(B,)``.

    Angles from chords, ``2 asin(|p - x| / 2)``: accurate at short distances (a dot product
    + acos would lose them).
    """
    chord = np.linalg.norm(p - x[:, None, :], axis=-1)
    return np.einsum("bm,bm->b", w, np.arcsin(np.minimum(chord * 0.5, 1.0))) * 2.0


def _exp_map(x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Move from unit vectors ``x (B, 3)`` along tangent vectors ``v (B, 3)`` (great circles)."""
    step = np.linalg.norm(v, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        direction = np.where(step > 0, v / step, 0.0)
    out = np.cos(step) * x + np.sin(step) * direction
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def _start_points(p: np.ndarray, w: np.ndarray, max_candidates: int = 64) -> np.ndarray:
    """Best starting point per row among the (weighted) mean direction and some data points."""
    b, m, _ = p.shape
    cols = np.unique(np.linspace(0, m - 1, min(m, max_candidates)).round().astype(np.int64))
    candidates = [p[:, c, :] for c in cols]
    mean = np.einsum("bm,bmk->bk", w, p)
    norm = np.linalg.norm(mean, axis=-1, keepdims=True)
    if np.all(norm > 1e-9 * w.sum(axis=-1, keepdims=True)):
        candidates.append(mean / norm)
    cand = np.stack(candidates, axis=1)  # (B, C, 3)
    cos = np.clip(np.einsum("bck,bmk->bcm", cand, p), -1.0, 1.0)
    score = np.einsum("bcm,bm->bc", np.arccos(cos), w)
    best = np.argmin(score, axis=1)
    return cand[np.arange(b), best]


def _weiszfeld(p: np.ndarray, w: np.ndarray, tol_rad: float, max_iter: int) -> np.ndarray:
    """Riemannian Weiszfeld iteration with the Vardi-Zhang rule at data points, per row.

    Args:
        p: ``(B, M, 3)`` unit vectors; w: ``(B, M)`` non-negative weights (each row sums > 0).

    The step is the weighted mean, in the tangent plane at the estimate x, of the log-map
    vectors of the points, with weights w_i / d_i (Fletcher, Venkatasubramanian & Joshi 2009).
    When x coincides with data points of total weight eta, the step is shortened by the factor
    ``max(0, 1 - eta / |R|)`` (R = the pull of the other points), and x is optimal when
    ``|R| <= eta`` (Vardi & Zhang 2000). A step that increases the objective is halved.
    """
    x = _start_points(p, w)
    f = _objective(x, p, w)
    active = np.ones(len(x), dtype=bool)
    for _ in range(max_iter):
        rows = np.flatnonzero(active)
        if rows.size == 0:
            break
        xa, pa, wa = x[rows], p[rows], w[rows]
        theta, unit, sin = _angles(xa, pa)
        at = theta < _COINCIDE_RAD
        usable = ~at & (sin > 1e-12)  # an exactly antipodal point pulls in no defined direction
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = np.where(usable, wa / np.where(usable, theta, 1.0), 0.0)
        pull = np.einsum("bm,bmk->bk", np.where(usable, wa, 0.0), unit)  # R: minus the gradient
        denom = inv.sum(axis=-1)
        eta = np.where(at, wa, 0.0).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(denom[:, None] > 0, pull / denom[:, None], 0.0)
            r = np.linalg.norm(pull, axis=-1)
            factor = np.where(eta > 0, np.clip(1.0 - eta / np.where(r > 0, r, 1.0), 0.0, 1.0), 1.0)
        step = step * factor[:, None]
        new = _exp_map(xa, step)
        f_old = f[rows]
        f_new = _objective(new, pa, wa)
        worse = ~(f_new < f_old) & np.any(step != 0, axis=-1)
        halvings = 0
        while worse.any() and halvings < 20:
            step[worse] *= 0.5
            new[worse] = _exp_map(xa[worse], step[worse])
            f_new[worse] = _objective(new[worse], pa[worse], wa[worse])
            worse = ~(f_new < f_old)
            halvings += 1
        worse |= ~(f_new < f_old)
        new[worse], f_new[worse] = xa[worse], f_old[worse]  # no descent left: converged
        x[rows], f[rows] = new, f_new
        moved = np.linalg.norm(step, axis=-1)
        active[rows] = ~worse & (moved > tol_rad) & (f_old - f_new > 1e-15 * f_old)
    return x


def spherical_geometric_median(
    lat: Any,
    lon: Any,
    weights: Any | None = None,
    axis: int = -1,
    tol_deg: float = 1e-8,
    max_iter: int = 1000,
) -> tuple[Any, Any]:
    """The point of the sphere minimising the (weighted) sum of great-circle distances.

    Unlike :func:`geocell.spherical_mean` (which minimises the sum of squared chords), the
    geometric median is robust: a few far points barely move it. Computed with the Riemannian
    Weiszfeld iteration in unit vectors, started from the best of the mean direction and up to
    64 of the data points (the objective is not convex over the whole sphere, so this avoids
    poor local minima), with the Vardi-Zhang rule when the estimate lands on a data point.

    Args:
        lat, lon: degrees; reduced along ``axis`` (``(M,)`` -> a point, ``(B, M)`` -> B points,
            computed together).
        weights: optional non-negative weights broadcastable to ``lat`` (not all zero per set).
        axis: the axis holding the points of one set.
        tol_deg: stop when the step is below this angle (degrees).
        max_iter: iteration limit.

    Returns:
        (lat, lon) in degrees with ``axis`` removed; Python floats for a single set.

    Raises:
        BaselineError: an empty set, bad weights; InvalidCoordinateError: bad coordinates.

    Example:
        >>> [round(v, 6) for v in spherical_geometric_median([0.0, 0.0, 0.0], [-1.0, 0.0, 1.0])]
        [0.0, 0.0]
    """
    lat, lon, _ = check_latlon(lat, lon)
    if lat.ndim == 0:
        return float(lat), float(lon)
    lat, lon = np.moveaxis(lat, axis, -1), np.moveaxis(lon, axis, -1)
    if lat.shape[-1] == 0:
        raise BaselineError("spherical_geometric_median needs at least one point; got an empty set")
    batch_shape = lat.shape[:-1]
    m = lat.shape[-1]
    if weights is None:
        w = np.ones(lat.shape, dtype=np.float64)
    else:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == np.ndim(lat):
            w = np.moveaxis(w, axis, -1)
        try:
            w = np.broadcast_to(w, lat.shape)
        except ValueError as exc:
            raise BaselineError(f"weights of shape {np.shape(weights)} do not match points of shape {lat.shape}") from exc
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise BaselineError("weights must be finite and non-negative")
    w = w.reshape(-1, m)
    if np.any(w.sum(axis=-1) <= 0):
        raise BaselineError("every set of points needs a positive total weight; got all-zero weights")
    w = w / w.max(axis=-1, keepdims=True)
    p = latlon_to_xyz(lat.reshape(-1, m), lon.reshape(-1, m))
    x = _weiszfeld(p, w, tol_rad=np.deg2rad(tol_deg), max_iter=max_iter)
    out_lat, out_lon = xyz_to_latlon(x)
    out_lat, out_lon = out_lat.reshape(batch_shape), out_lon.reshape(batch_shape)
    if out_lat.ndim == 0:
        return float(out_lat), float(out_lon)
    return out_lat, out_lon


# ------------------------------------------------------------------------------ helpers
def _str_labels(values: Any, name: str, n: int) -> np.ndarray:
    arr = np.asarray(values, dtype=object).astype(str).reshape(-1) if values is not None else None
    if arr is None or arr.shape[0] != n:
        got = "None" if arr is None else str(arr.shape[0])
        raise BaselineError(f"{name} has {got} entries, expected {n} (one per point)")
    return arr


def _points(lat: Any, lon: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    lat, lon, _ = check_latlon(lat, lon)
    if lat.ndim != 1:
        raise BaselineError(f"{name} lat/lon must be 1-D arrays, got shape {lat.shape}")
    if lat.size == 0:
        raise BaselineError(f"{name} has no points")
    return lat, lon


def _optional_labels(values: Any, name: str, n: int) -> Optional[np.ndarray]:
    return None if values is None else _str_labels(values, name, n)


def _most_frequent(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """(sorted vocabulary, frequencies, the most frequent label; ties -> first in sort order)."""
    vocab, counts = np.unique(labels, return_counts=True)
    return vocab, counts / counts.sum(), str(vocab[np.argmax(counts)])


# ------------------------------------------------------------------------------ baselines
def constant_baseline(
    train_lat: Any,
    train_lon: Any,
    train_country: Any,
    test_lat: Any,
    test_lon: Any,
    test_country: Any,
    test_admin1: Any | None = None,
    *,
    train_admin1: Any | None = None,
    name: str = "constant (geometric median)",
) -> Predictions:
    """Guess the same place for every test sample: the training points' geometric median.

    Args:
        train_lat, train_lon: ``(N_train,)`` degrees; train_country: ``(N_train,)`` adm0_a3.
        test_lat, test_lon: ``(N,)`` degrees; test_country: ``(N,)`` adm0_a3 ("" = unknown).
        test_admin1: ``(N,)`` adm1_code truths, or None.
        train_admin1: ``(N_train,)`` adm1_code; with ``test_admin1``, the admin-1 guess is the
            most frequent training unit (else no admin-1 guess is made).
        name: the name the report shows.

    Returns:
        Predictions with the median as location, the most frequent training country as
        ``pred_country`` and the training class frequencies as ``country_proba`` (so top-k
        accuracy means "the k most frequent countries").

    Example:
        >>> p = constant_baseline([0.0, 0.0, 10.0], [0.0, 1.0, 0.0], ["A", "A", "B"],
        ...                       [5.0], [5.0], ["B"])
        >>> p.pred_country.tolist(), p.country_proba.round(3).tolist()
        (['A'], [[0.667, 0.333]])
    """
    train_lat, train_lon = _points(train_lat, train_lon, "training")
    test_lat, test_lon = _points(test_lat, test_lon, "test")
    train_country = _str_labels(train_country, "train_country", train_lat.size)
    test_country = _str_labels(test_country, "test_country", test_lat.size)
    test_admin1 = _optional_labels(test_admin1, "test_admin1", test_lat.size)
    train_admin1 = _optional_labels(train_admin1, "train_admin1", train_lat.size)
    n = test_lat.size
    med_lat, med_lon = spherical_geometric_median(train_lat, train_lon)
    vocab, freq, top = _most_frequent(train_country)
    pred_admin1 = None
    if test_admin1 is not None and train_admin1 is not None:
        pred_admin1 = np.full(n, _most_frequent(train_admin1)[2], dtype=object).astype(str)
    return Predictions(
        name=name,
        true_lat=test_lat, true_lon=test_lon,
        pred_lat=np.full(n, med_lat), pred_lon=np.full(n, med_lon),
        true_country=test_country,
        pred_country=np.full(n, top, dtype=object).astype(str),
        country_vocab=vocab,
        country_proba=np.broadcast_to(freq, (n, vocab.size)).copy(),
        true_admin1=test_admin1,
        pred_admin1=pred_admin1,
    )


def colour_histogram_features(
    images: Any,
    bins: int = 16,
    joint_bins: int = 4,
    batch_size: int = 512,
) -> np.ndarray:
    """Colour histograms of RGB images: per-channel histograms and a joint RGB histogram.

    Args:
        images: ``(N, H, W, 3)`` uint8 RGB (a memory map is read in batches).
        bins: bins per channel of the per-channel histograms (a power of two <= 256), 0 = none.
        joint_bins: bins per channel of the joint ``joint_bins**3`` histogram (a power of two
            <= 256), 0 = none.
        batch_size: images counted per ``np.bincount`` call (bounds the memory used).

    Returns:
        ``(N, 3 * bins + joint_bins**3)`` float64; each block is L1-normalised and the blocks
        are scaled so that every row sums to 1.

    Example:
        >>> img = np.zeros((1, 2, 2, 3), np.uint8); img[..., 0] = 255      # pure red
        >>> f = colour_histogram_features(img, bins=2, joint_bins=2)
        >>> f.round(2).tolist()
        [[0.0, 0.17, 0.17, 0.0, 0.17, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.0, 0.0]]
    """
    images = images if isinstance(images, np.ndarray) else np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise BaselineError(f"images must have shape (N, H, W, 3), got {images.shape}")
    if images.dtype != np.uint8:
        raise BaselineError(f"images must be uint8 RGB, got dtype {images.dtype}")
    for label, value in (("bins", bins), ("joint_bins", joint_bins)):
        if value < 0 or value > 256 or (value and value & (value - 1)):
            raise BaselineError(f"{label} must be 0 or a power of two up to 256, got {value}")
    if bins == 0 and joint_bins == 0:
        raise BaselineError("bins and joint_bins cannot both be 0")
    n = images.shape[0]
    blocks = (bins > 0) + (joint_bins > 0)
    width = 3 * bins + joint_bins**3
    out = np.empty((n, width), dtype=np.float64)
    pixels = images.shape[1] * images.shape[2]
    if pixels == 0:
        raise BaselineError(f"images have no pixels (shape {images.shape})")
    for start in range(0, n, batch_size):
        chunk = np.asarray(images[start:start + batch_size])
        b = chunk.shape[0]
        row = np.arange(b, dtype=np.int64)[:, None, None]
        parts = []
        if bins:
            shift = 8 - int(np.log2(bins))
            q = (chunk >> shift).astype(np.int64).reshape(b, pixels, 3)
            idx = row * (3 * bins) + np.arange(3, dtype=np.int64) * bins + q
            parts.append(np.bincount(idx.ravel(), minlength=b * 3 * bins).reshape(b, 3 * bins) / (3 * pixels))
        if joint_bins:
            shift = 8 - int(np.log2(joint_bins))
            q = (chunk >> shift).astype(np.int64).reshape(b, pixels, 3)
            code = (q[..., 0] * joint_bins + q[..., 1]) * joint_bins + q[..., 2]
            idx = row[..., 0] * joint_bins**3 + code
            parts.append(np.bincount(idx.ravel(), minlength=b * joint_bins**3).reshape(b, -1) / pixels)
        out[start:start + b] = np.concatenate(parts, axis=1) / blocks
    return out


def knn_colour_baseline(
    train_images: Any,
    train_lat: Any,
    train_lon: Any,
    train_country: Any,
    test_images: Any,
    test_lat: Any,
    test_lon: Any,
    test_country: Any,
    k: int = 10,
    *,
    train_admin1: Any | None = None,
    test_admin1: Any | None = None,
    name: str | None = None,
) -> Predictions:
    """k nearest training images by colour histogram (scikit-learn ``NearestNeighbors``).

    Features are :func:`colour_histogram_features`; neighbours are found with the Hellinger
    distance (Euclidean distance between square-rooted histograms). The location guess is the
    **spherical geometric median** of the k neighbours' locations (robust when a few
    neighbours are on another continent; with k = 1 it is the neighbour's location); the
    country probabilities are the neighbours' vote shares over the training countries, and the
    top-1 country breaks ties in favour of the nearer neighbour.

    Args:
        train_images, test_images: ``(N_train, H, W, 3)`` / ``(N, H, W, 3)`` uint8 RGB.
        train_lat, train_lon, train_country: ``(N_train,)`` degrees and adm0_a3.
        test_lat, test_lon, test_country: ``(N,)`` truths.
        k: neighbours (1 <= k <= N_train).
        train_admin1, test_admin1: optional adm1_code labels; with both, the admin-1 guess is
            the neighbours' majority unit.
        name: the name the report shows (default ``"kNN colour histograms (k=...)"``).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> imgs = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
        >>> p = knn_colour_baseline(imgs, [0, 10, 20, 30], [0, 0, 0, 0], list("ABCD"),
        ...                         imgs[:2], [0, 10], [0, 0], ["A", "B"], k=1)
        >>> p.pred_lat.round(6).tolist(), p.pred_country.tolist()
        ([0.0, 10.0], ['A', 'B'])
    """
    train_lat, train_lon = _points(train_lat, train_lon, "training")
    test_lat, test_lon = _points(test_lat, test_lon, "test")
    n_train, n = train_lat.size, test_lat.size
    train_country = _str_labels(train_country, "train_country", n_train)
    test_country = _str_labels(test_country, "test_country", n)
    train_admin1 = _optional_labels(train_admin1, "train_admin1", n_train)
    test_admin1 = _optional_labels(test_admin1, "test_admin1", n)
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n_train:
        raise BaselineError(f"k must be an integer in [1, {n_train}] (the training set size), got {k!r}")
    for label, imgs, expected in (("train_images", train_images, n_train), ("test_images", test_images, n)):
        if len(imgs) != expected:
            raise BaselineError(f"{label} has {len(imgs)} images, expected {expected} (one per point)")
    train_x = np.sqrt(colour_histogram_features(train_images))
    test_x = np.sqrt(colour_histogram_features(test_images))
    return _knn(train_x, train_lat, train_lon, train_country, test_x, test_lat, test_lon, test_country, int(k),
                train_admin1, test_admin1, name or f"kNN colour histograms (k={int(k)})")


def _knn(train_x: np.ndarray, train_lat: np.ndarray, train_lon: np.ndarray, train_country: np.ndarray,
         test_x: np.ndarray, test_lat: np.ndarray, test_lon: np.ndarray, test_country: np.ndarray, k: int,
         train_admin1: Optional[np.ndarray], test_admin1: Optional[np.ndarray], name: str) -> Predictions:
    """Euclidean k nearest neighbours of ``test_x (N, F)`` among ``train_x (N_train, F)``: the
    neighbours' spherical geometric median, their country vote shares and admin-1 majority."""
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=int(k)).fit(train_x)
    _, idx = nn.kneighbors(test_x)  # (N, k), nearest first

    pred_lat, pred_lon = spherical_geometric_median(train_lat[idx], train_lon[idx], axis=-1)
    pred_lat, pred_lon = np.atleast_1d(pred_lat), np.atleast_1d(pred_lon)

    vocab, codes = np.unique(train_country, return_inverse=True)
    proba, pred_country = _votes(codes[idx], vocab.size)
    pred_admin1 = None
    if train_admin1 is not None and test_admin1 is not None:
        a_vocab, a_codes = np.unique(train_admin1, return_inverse=True)
        _, a_pred = _votes(a_codes[idx], a_vocab.size)
        pred_admin1 = a_vocab[a_pred]
    return Predictions(
        name=name,
        true_lat=test_lat, true_lon=test_lon,
        pred_lat=pred_lat, pred_lon=pred_lon,
        true_country=test_country,
        pred_country=vocab[pred_country],
        country_vocab=vocab,
        country_proba=proba,
        true_admin1=test_admin1,
        pred_admin1=pred_admin1,
    )


def knn_feature_baseline(
    train_features: Any,
    train_lat: Any,
    train_lon: Any,
    train_country: Any,
    test_features: Any,
    test_lat: Any,
    test_lon: Any,
    test_country: Any,
    k: int = 10,
    *,
    train_admin1: Any | None = None,
    test_admin1: Any | None = None,
    name: str | None = None,
) -> Predictions:
    """k nearest training samples by cosine similarity of feature vectors (scikit-learn).

    Features are L2-normalised, so Euclidean neighbours are cosine neighbours. Location, country
    and admin-1 guesses are made as in :func:`knn_colour_baseline` (geometric median of the
    neighbours, vote shares, ties to the nearer neighbour).

    Args:
        train_features: ``(N_train, F)`` e.g. frozen backbone features
            (:func:`geocell_engine.evaluation.features.extract_features`).
        test_features: ``(N, F)``, the same extractor.
        train_lat, train_lon, train_country, test_lat, test_lon, test_country, k, train_admin1,
            test_admin1: as in :func:`knn_colour_baseline`.
        name: the name the report shows (default ``"kNN features (k=...)"``).

    Raises:
        BaselineError: shapes that do not match, non-finite or all-zero feature rows, a bad k.

    Example:
        >>> f = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
        >>> p = knn_feature_baseline(f[:2], [10.0, -30.0], [0.0, 100.0], ["A", "B"], f[2:], [9.0], [1.0], ["A"], k=1)
        >>> p.pred_lat.tolist(), p.pred_country.tolist()
        ([10.0], ['A'])
    """
    train_lat, train_lon = _points(train_lat, train_lon, "training")
    test_lat, test_lon = _points(test_lat, test_lon, "test")
    n_train, n = train_lat.size, test_lat.size
    train_country = _str_labels(train_country, "train_country", n_train)
    test_country = _str_labels(test_country, "test_country", n)
    train_admin1 = _optional_labels(train_admin1, "train_admin1", n_train)
    test_admin1 = _optional_labels(test_admin1, "test_admin1", n)
    if not isinstance(k, (int, np.integer)) or not 1 <= k <= n_train:
        raise BaselineError(f"k must be an integer in [1, {n_train}] (the training set size), got {k!r}")
    feats = []
    for label, x, expected in (("train_features", train_features, n_train), ("test_features", test_features, n)):
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != expected:
            raise BaselineError(f"{label} must be ({expected}, F), got shape {x.shape}")
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        bad = np.flatnonzero(~np.isfinite(norm[:, 0]) | (norm[:, 0] == 0))
        if bad.size:
            raise BaselineError(f"{label}[{bad[0]}] is all zeros or not finite; cosine similarity needs a direction "
                                f"({bad.size} such rows)")
        feats.append(x / norm)
    if feats[0].shape[1] != feats[1].shape[1]:
        raise BaselineError(f"train_features have {feats[0].shape[1]} columns, test_features {feats[1].shape[1]}")
    return _knn(feats[0], train_lat, train_lon, train_country, feats[1], test_lat, test_lon, test_country, int(k),
                train_admin1, test_admin1, name or f"kNN features (k={int(k)})")


def _votes(codes: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Vote shares ``(N, C)`` of neighbour labels ``codes (N, k)`` (nearest first) and the
    winner per row, ties going to the label of the nearest neighbour among the tied."""
    n, k = codes.shape
    rows = np.repeat(np.arange(n), k)
    counts = np.zeros((n, n_classes), dtype=np.int64)
    np.add.at(counts, (rows, codes.ravel()), 1)
    nearest_rank = np.zeros((n, n_classes), dtype=np.int64)
    for j in range(k - 1, -1, -1):  # the last write (j = 0) is the nearest occurrence
        nearest_rank[np.arange(n), codes[:, j]] = k - j
    winner = np.argmax(counts * (k + 1) + nearest_rank, axis=1)
    return counts / k, winner


def true_cell_centroid(
    cells: Any,
    test_lat: Any,
    test_lon: Any,
    test_country: Any,
    test_admin1: Any | None = None,
    *,
    name: str = "true-cell centroid",
) -> Predictions:
    """Each test point guessed at the centroid of its own cell (``cells.assign``).

    What it is: the score of a perfect top-1 cell classifier that guesses the centroid of the
    cell it picks; it measures how coarse the cells are. ``pred_country`` is the cell's majority
    country and ``pred_admin1`` its majority admin-1 unit. ``true_cell == pred_cell``.

    What it is not: a bound. The model's default location is the probability-weighted mean of up
    to 10 top cells' centroids within 2,500 km of the best one
    (:func:`heads.model.top_cells_mean`), and such a mean can land nearer the truth than the
    true cell's centroid (a point near a cell border is better guessed between the two
    centroids). A bound for that rule would minimise over every weighting of every such set of
    centroids: close to 0 km wherever the truth lies among cell centroids, so it would say
    nothing; we report this reference under its own name instead. (Over guesses that are one
    cell's centroid, the real bound is the nearest centroid of any cell, which need not be the
    true cell's.)

    Args:
        cells: a :class:`geocell.cells.CellSet`.
        test_lat, test_lon: ``(N,)`` degrees; test_country: ``(N,)`` adm0_a3.
        test_admin1: ``(N,)`` adm1_code truths, or None.
    """
    test_lat, test_lon = _points(test_lat, test_lon, "test")
    n = test_lat.size
    test_country = _str_labels(test_country, "test_country", n)
    test_admin1 = _optional_labels(test_admin1, "test_admin1", n)
    cell = np.asarray(cells.assign(test_lat, test_lon), dtype=np.int64).reshape(-1)
    return Predictions(
        name=name,
        true_lat=test_lat, true_lon=test_lon,
        pred_lat=np.asarray(cells.centroid_lat, dtype=np.float64)[cell],
        pred_lon=np.asarray(cells.centroid_lon, dtype=np.float64)[cell],
        true_country=test_country,
        pred_country=np.asarray(cells.country).astype(str)[cell],
        true_admin1=test_admin1,
        pred_admin1=None if test_admin1 is None else np.asarray(cells.admin1).astype(str)[cell],
        true_cell=cell,
        pred_cell=cell.copy(),
    )


def nearest_cell_bound(cells: Any, test_lat: Any, test_lon: Any, test_country: Any, test_admin1: Any | None = None,
                       *, name: str = "true-cell centroid") -> Predictions:
    """The old name of :func:`true_cell_centroid` (it is not a bound; see there)."""
    return true_cell_centroid(cells, test_lat, test_lon, test_country, test_admin1, name=name)
