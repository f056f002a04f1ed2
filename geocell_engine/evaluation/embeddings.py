"""Embedding maps of a trained model (``cli.py embed``): per-image embeddings and country maps.

:func:`embed_checkpoint` runs a checkpoint's backbone over a split and writes, into one folder:

- ``embeddings.parquet``: one row per image, ``id, lat, lon, country, e0 .. e{F-1}`` (the pooled
  backbone features, float32; :func:`geocell_engine.evaluation.features.extract_features`);
- ``tsne.png``: t-SNE (scikit-learn) of the per-country mean embeddings, each country a labelled
  point coloured by its continent (:func:`geocell.continents.continent_of`);
- ``umap.png``: the same with UMAP, when the optional ``umap-learn`` is installed;
- ``confusion_map.png``: countries placed by how alike their confusions are: the rows of the
  confusion matrix (true country x predicted country) compared by cosine similarity, laid out in
  2-D by metric MDS on the distance ``1 - cos`` (two countries the model mixes up with the same
  others land close together);
- ``embed.json`` (what was made, the coordinates of every map) and ``embed.md`` (the maps linked).

Every file is written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from geocell_engine.errors import ReportError

__all__ = ["EmbeddingError", "country_means", "confusion_similarity", "tsne_layout", "umap_layout",
           "confusion_layout", "embed_checkpoint"]


class EmbeddingError(ReportError):
    """Embeddings that cannot be mapped (too few countries, mismatched arrays)."""


def country_means(features: np.ndarray, country: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-country mean of ``(N, F)`` features over the samples with a known country (``country
    != ""``).

    Returns:
        ``(countries (C,), means (C, F) float64, counts (C,))``, countries sorted.

    Raises:
        EmbeddingError: arrays of different lengths.
    """
    features = np.asarray(features, dtype=np.float64)
    country = np.asarray(country).astype(str)
    if features.ndim != 2 or features.shape[0] != country.size:
        raise EmbeddingError(f"features {features.shape} and {country.size} countries do not match; expected (N, F)")
    known = country != ""
    names, inverse, counts = np.unique(country[known], return_inverse=True, return_counts=True)
    sums = np.zeros((names.size, features.shape[1]))
    np.add.at(sums, inverse, features[known])
    return names, sums / counts[:, None], counts


def confusion_similarity(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity of the confusion-matrix rows of the true countries.

    Row ``c`` counts the predictions for the samples whose true country is ``c`` over every label
    (true or predicted); two countries are alike when their samples are confused with the same
    countries in the same proportions.

    Args:
        true, pred: ``(N,)`` country codes (``""`` true countries are left out).

    Returns:
        ``(countries (C,), similarity (C, C))`` with values in 0..1 and a unit diagonal.

    Example:
        >>> c, s = confusion_similarity(np.array(["A", "A", "B", "B"]), np.array(["A", "B", "A", "B"]))
        >>> c.tolist(), s.round(3).tolist()
        (['A', 'B'], [[1.0, 1.0], [1.0, 1.0]])
    """
    true = np.asarray(true).astype(str)
    pred = np.asarray(pred).astype(str)
    if true.shape != pred.shape:
        raise EmbeddingError(f"true {true.shape} and predicted {pred.shape} countries do not match")
    known = true != ""
    true, pred = true[known], pred[known]
    rows = np.unique(true)
    labels = np.unique(np.concatenate([true, pred]))
    matrix = np.zeros((rows.size, labels.size))
    np.add.at(matrix, (np.searchsorted(rows, true), np.searchsorted(labels, pred)), 1.0)
    unit = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
    return rows, np.clip(unit @ unit.T, 0.0, 1.0)


def tsne_layout(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE (scikit-learn, PCA initialisation) of ``(C, F)`` points; perplexity
    ``min(30, (C - 1) / 3)`` (at least 1), as t-SNE needs it below C.

    Raises:
        EmbeddingError: fewer than 3 points.
    """
    from sklearn.manifold import TSNE

    n = len(points)
    if n < 3:
        raise EmbeddingError(f"t-SNE needs at least 3 countries, got {n}")
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed,
                learning_rate="auto").fit_transform(np.asarray(points, dtype=np.float64))


def umap_layout(points: np.ndarray, seed: int = 0) -> Optional[np.ndarray]:
    """2-D UMAP of ``(C, F)`` points (``n_neighbors = min(15, C - 1)``), or None when the optional
    ``umap-learn`` package is not installed.

    Raises:
        EmbeddingError: fewer than 3 points.
    """
    try:
        import umap
    except ImportError:
        return None
    n = len(points)
    if n < 3:
        raise EmbeddingError(f"UMAP needs at least 3 countries, got {n}")
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), random_state=seed, init="random")
    return np.asarray(reducer.fit_transform(np.asarray(points, dtype=np.float64)))


def confusion_layout(similarity: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D metric MDS (scikit-learn) of the distances ``1 - similarity``, ``(C, C)`` -> ``(C, 2)``
    (all at the origin when every distance is 0: the countries' confusions are all alike).

    Raises:
        EmbeddingError: fewer than 2 countries, or a matrix that is not square.
    """
    from sklearn.manifold import MDS

    similarity = np.asarray(similarity, dtype=np.float64)
    if similarity.ndim != 2 or similarity.shape[0] != similarity.shape[1] or len(similarity) < 2:
        raise EmbeddingError(f"the similarity matrix must be (C, C) with C >= 2, got {similarity.shape}")
    distance = 1.0 - similarity
    distance = (distance + distance.T) / 2
    np.fill_diagonal(distance, 0.0)
    if not (distance > 1e-12).any():  # every country confused in the same way: one point
        return np.zeros((len(distance), 2))
    kwargs: dict[str, Any] = {"n_components": 2, "random_state": seed, "n_init": 4}
    import inspect

    params = inspect.signature(MDS).parameters
    # scikit-learn >= 1.8 calls the input "metric" (the old boolean became "metric_mds")
    kwargs["metric" if "metric_mds" in params else "dissimilarity"] = "precomputed"
    if "init" in params:  # and warns unless the initialisation is named
        kwargs["init"] = "random"
    return MDS(**kwargs).fit_transform(distance)


def _plot_map(xy: np.ndarray, countries: np.ndarray, path: Path, title: str) -> Path:
    """Countries as labelled points coloured by continent."""
    from geocell.continents import continent_of
    from geocell_engine.evaluation.plots import _figure, _save

    continents = np.asarray(continent_of(countries, strict=False, names=True)).astype(str)
    continents = np.where(continents == "", "unknown", continents)
    fig = _figure(8, 6)
    ax = fig.add_subplot(1, 1, 1)
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    for i, name in enumerate(sorted(set(continents))):
        sel = continents == name
        ax.scatter(xy[sel, 0], xy[sel, 1], s=40, color=cmap(i % 10), label=name)
    for (x, y), c in zip(xy, countries):
        ax.annotate(str(c), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def embed_checkpoint(checkpoint: str | os.PathLike, data: str, out_dir: str | os.PathLike, *,
                     split: Optional[str] = "test", max_samples: Optional[int] = None,
                     device: str = "cpu", batch_size: int = 64,
                     log: Callable[[str], None] = print) -> dict[str, Any]:
    """Embeddings and country maps of a checkpoint on a split (see the module docstring).

    Args:
        checkpoint: a ``best.pt`` / ``last.pt`` of ``cli.py train``.
        data: a data set name or manifest (as ``evaluate`` takes it).
        split: train, val or test (None: a manifest without a split column, whole).
        max_samples: embed at most this many samples (a seeded subsample).

    Returns:
        The ``embed.json`` content.

    Raises:
        EmbeddingError: fewer than 2 countries with samples (no map can be drawn).
        DataError, CheckpointError: as ``evaluate``.
    """
    import pandas as pd

    from geocell.tables import atomic_write
    from geocell_engine.data.dataset import (
        load_eval_split,
        require_usable,
        screen_split,
    )
    from geocell_engine.data.transforms import eval_decoder, image_hw
    from geocell_engine.engine.device import choose_precision
    from geocell_engine.engine.model import load_model
    from geocell_engine.engine.predict import predict_split
    from geocell_engine.evaluation.features import extract_features

    data_set = load_eval_split(data, split)
    loaded = load_model(checkpoint, device)
    config = loaded.config
    hw = image_hw(config.image_size)
    if hw[0] != hw[1]:
        raise EmbeddingError(f"embed takes square inputs; the model was trained at {config.image_size}")
    decode = eval_decoder(config)
    target = data_set.split.subsample(max_samples, config.seed + 2)
    target = require_usable(screen_split(target, config.image_size, "fail", data_set.info.images, decode=decode),
                            data_set.info.images)
    features = extract_features(loaded.model, target, image_size=hw[0], batch_size=batch_size, device=device)
    preds = predict_split(loaded.model, loaded.task, target, image_size=config.image_size, batch_size=batch_size,
                          device=device, precision=choose_precision(config.precision, device), decode=decode)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"id": target.ids.astype(str), "lat": target.lat, "lon": target.lon,
                          "country": target.country.astype(str)})
    frame = pd.concat([frame, pd.DataFrame(features, columns=[f"e{i}" for i in range(features.shape[1])])], axis=1)
    files = {"embeddings": "embeddings.parquet"}
    atomic_write(out / files["embeddings"], lambda p: frame.to_parquet(p, index=False))
    log(f"embedded {len(frame):,} images of {data_set.split_name} ({features.shape[1]} dimensions) -> "
        f"{out / files['embeddings']}")

    countries, means, counts = country_means(features, target.country)
    if countries.size < 2:
        raise EmbeddingError(f"{countries.size} country with samples in {data_set.split_name}: a map needs at least 2")
    maps: dict[str, Any] = {}
    notes: list[str] = []
    if countries.size >= 3:
        xy = tsne_layout(means)
        files["tsne"] = _plot_map(xy, countries, out / "tsne.png",
                                  f"t-SNE of per-country mean embeddings ({countries.size} countries)").name
        maps["tsne"] = xy
        xy_u = umap_layout(means)
        if xy_u is not None:
            files["umap"] = _plot_map(xy_u, countries, out / "umap.png",
                                      f"UMAP of per-country mean embeddings ({countries.size} countries)").name
            maps["umap"] = xy_u
        else:
            notes.append("no UMAP map: umap-learn is not installed (pip install -e \".[umap]\")")
    else:
        notes.append(f"no t-SNE / UMAP map: {countries.size} countries (they need at least 3)")
    rows, similarity = confusion_similarity(preds.true_country, preds.pred_country)
    xy_c = confusion_layout(similarity) if rows.size >= 2 else None
    if xy_c is not None and not xy_c.any():
        notes.append("every country's samples are confused in the same proportions: the confusion map is one point")
    if xy_c is not None:
        files["confusion_map"] = _plot_map(xy_c, rows, out / "confusion_map.png",
                                           "countries placed by confusion similarity (MDS of 1 - cosine)").name
        maps["confusion"] = xy_c
    payload = {
        "checkpoint": str(checkpoint), "data": str(data), "split": data_set.split_name, "n": int(len(frame)),
        "dimensions": int(features.shape[1]), "files": files, "notes": notes,
        "countries": [{"country": str(c), "n": int(k), **{f"{m}_xy": [float(v) for v in maps[m][i]]
                                                          for m in ("tsne", "umap") if m in maps}}
                      for i, (c, k) in enumerate(zip(countries, counts))],
        "confusion": {"countries": [str(c) for c in rows], "similarity": similarity.round(6).tolist(),
                      "xy": None if xy_c is None else xy_c.round(6).tolist()},
    }
    text = json.dumps(payload, indent=2) + "\n"
    md = [f"# Embeddings of {checkpoint}", "", f"{len(frame):,} images of {data} ({data_set.split_name}), "
          f"{features.shape[1]} dimensions: [embeddings.parquet](embeddings.parquet).", ""]
    md += [f"![{k}]({v})" for k, v in files.items() if v.endswith(".png")] + [""] + [f"- {n}" for n in notes]
    atomic_write(out / "embed.md", lambda p: p.write_text("\n".join(md) + "\n"))
    atomic_write(out / "embed.json", lambda p: p.write_text(text))
    for note in notes:
        log(note)
    report_md = Path(checkpoint).parent / "report.md"
    if report_md.is_file():
        _link_from_report(report_md, out, data_set.split_name, files, len(frame), notes)
        log(f"linked the maps from {report_md}")
    return json.loads(text)


def _link_from_report(report_md: Path, out: Path, split_name: str, files: dict[str, str], n: int,
                      notes: list[str]) -> None:
    """The run report's ``embed-<split>`` section: links to the maps, relative to the report."""
    from geocell_engine.evaluation.report import set_report_section

    where = Path(os.path.relpath(out.resolve(), report_md.parent.resolve())).as_posix()
    lines = [f"## Embedding maps ({split_name})", "",
             f"{n:,} images; [embed.md]({where}/embed.md), [embeddings.parquet]({where}/{files['embeddings']}).", ""]
    lines += [f"![{k}]({where}/{v})" for k, v in files.items() if v.endswith(".png")]
    lines += [""] + [f"- {note}" for note in notes]
    set_report_section(report_md, f"embed-{split_name}", "\n".join(lines))
