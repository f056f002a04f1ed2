"""Predictions: one function (:meth:`Task.predict`) behind both ``evaluate`` (a whole split into
:class:`Predictions`) and ``predict`` (top-k lists for image files)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from geocell_engine.data.dataset import BadImageLog, GeoSplit, iterate_batches
from geocell_engine.engine.device import autocast
from geocell_engine.engine.tasks import Task
from geocell_engine.evaluation.predictions import Predictions

__all__ = ["predict_split", "predict_images", "format_predictions"]

_SATELLITE_NOTE = (
    "note: this model was trained on {name}, satellite image patches of {footprint} seen from above; "
    "ground-level photos are outside what it has seen, so treat its guesses for them as noise"
)


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def predict_split(model, task: Task, split: GeoSplit, *, image_size: int, batch_size: int = 64,
                  device: str = "cpu", precision: str = "fp32", name: str = "model",
                  on_bad_image: str = "fail", bad_log: Optional[BadImageLog] = None,
                  decode: Optional[Callable[[str], np.ndarray]] = None) -> Predictions:
    """Run the model over a split and collect everything the report needs.

    Args:
        model: a GeoModel (or its DDP wrapper) on ``device``.
        image_size: the size the model was trained at (a side, ``"WxH"`` or ``(H, W)``), px.
        on_bad_image, bad_log, decode: see :func:`geocell_engine.data.dataset.iterate_batches`
            (``decode``: :func:`geocell_engine.data.transforms.eval_decoder` of the run's config).

    Returns:
        :class:`Predictions` of the samples that could be read, in split order.
    """
    import torch

    model = _unwrap(model)
    was_training = model.training
    model.eval()
    countries = np.asarray(task.labels.countries)
    lat_out, lon_out, proba_out, kept_out, admin1_out = [], [], [], [], []
    collected: dict[str, list] = {}
    with torch.no_grad():
        for images, idx in iterate_batches(split, np.arange(len(split)), batch_size, image_size, on_bad_image, bad_log,
                                           decode=decode):
            x = images.to(device, non_blocking=True)
            with autocast(device, precision):
                outputs = model(x)
                pred = task.predict(model, x, k=5, outputs=outputs)
            lat_out.append(pred.lat.float().cpu().numpy())
            lon_out.append(pred.lon.float().cpu().numpy())
            proba = task.country_proba(outputs)
            proba_out.append(proba if proba is not None else np.full((len(idx), len(countries)), np.nan))
            for key, value in task.collect(outputs).items():
                collected.setdefault(key, []).append(value)
            if pred.admin1 is not None and pred.admin1.labels is not None:
                admin1_out.extend(labels[0] for labels in pred.admin1.labels)
            kept_out.append(idx)
    model.train(was_training)
    kept = np.concatenate(kept_out) if kept_out else np.zeros(0, dtype=np.int64)
    proba = np.concatenate(proba_out) if proba_out else np.zeros((0, len(countries)))
    has_proba = proba.size > 0 and bool(np.isfinite(proba).all())
    pred_lat = np.concatenate(lat_out).astype(np.float64) if lat_out else np.zeros(0)
    pred_lon = np.concatenate(lon_out).astype(np.float64) if lon_out else np.zeros(0)
    if has_proba:
        pred_country = countries[proba.argmax(axis=1)]
    else:  # latlon / distance only: the country of the guessed point
        from geocell.assign import assign_country

        pred_country = assign_country(pred_lat, pred_lon) if pred_lat.size else np.zeros(0, dtype=str)
    extra = task.finish({k: np.concatenate(v) for k, v in collected.items()}, split.lat[kept], split.lon[kept])
    return Predictions(
        name=name, true_lat=split.lat[kept], true_lon=split.lon[kept], pred_lat=pred_lat, pred_lon=pred_lon,
        true_country=split.country[kept], pred_country=np.asarray(pred_country).astype(str),
        country_vocab=countries if has_proba else None, country_proba=proba if has_proba else None,
        true_admin1=split.admin1[kept], pred_admin1=np.asarray(admin1_out, dtype=str) if admin1_out else None,
        ids=split.ids[kept], **extra,
    )


def predict_images(checkpoint: str | os.PathLike, paths: Sequence[str], k: int = 5,
                   device: Optional[str] = None, explain: Optional[str | os.PathLike] = None) -> dict[str, Any]:
    """Predictions for each image as plain data (what the table and ``--json`` print).

    Args:
        device: default: a GPU when there is one (:func:`choose_device`).
        explain: a folder for one Grad-CAM overlay PNG per image
            (:mod:`geocell_engine.evaluation.saliency`): the image and the map of its top
            country (a country head) or top cell (a cell head), ``STEM-gradcam.png``; each
            image's entry gets ``explain`` (file, what it explains, the layer).

    Raises:
        geocell_engine.errors.DataError: an image that cannot be read (named).
    """
    import torch

    from geocell_engine.data.transforms import eval_decoder
    from geocell_engine.engine.device import choose_device, choose_precision
    from geocell_engine.engine.model import load_model
    from geocell_engine.errors import DataError

    if k < 1:
        raise DataError(f"-k must be at least 1, got {k}")
    device = device or choose_device()
    loaded = load_model(checkpoint, device)
    config, task = loaded.config, loaded.task
    arrays, decode = [], eval_decoder(config)
    for path in paths:
        try:
            arrays.append(decode(path))
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{path}: cannot read image: {exc}") from exc
    x = torch.from_numpy(np.stack(arrays)).to(device)
    with torch.no_grad(), autocast(device, choose_precision(config.precision, device)):
        pred = task.predict(loaded.model, x, k=k)
    lat, lon = pred.lat.double().cpu().numpy(), pred.lon.double().cpu().numpy()
    dataset = dict(loaded.checkpoint.get("dataset") or {})
    out: dict[str, Any] = {"checkpoint": str(checkpoint), "trained_on": dataset, "task": config.task, "images": []}
    for i, path in enumerate(paths):
        item: dict[str, Any] = {"image": str(path), "lat": round(float(lat[i]), 5),
                                "lon": round(float(lon[i]), 5), "location_method": pred.location_method}
        for key in ("country", "admin1", "cell"):
            top = getattr(pred, key)
            if top is not None:
                labels = top.labels[i] if top.labels is not None else [str(j) for j in top.index[i].tolist()]
                item[key] = [{"label": str(lab), "prob": round(float(p), 4)}
                             for lab, p in zip(labels, top.prob[i].float().tolist())]
        out["images"].append(item)
    if explain is not None:
        _explain(loaded.model, x, arrays, paths, Path(explain), out["images"])
    if str(dataset.get("name", "")).startswith("bluemarble"):
        out["note"] = _SATELLITE_NOTE.format(name=dataset["name"], footprint="256 km x 256 km")
    return out


def _explain(model, x, arrays: Sequence[np.ndarray], paths: Sequence[str], folder: Path,
             items: list[dict[str, Any]]) -> None:
    """Write a Grad-CAM overlay per image into ``folder`` and note it in each item."""
    from geocell_engine.evaluation.saliency import explain_geomodel, save_overlay

    explanation = explain_geomodel(model, x)
    stems = [Path(p).stem for p in paths]
    for i, (path, item) in enumerate(zip(paths, items)):
        stem = stems[i] if stems.count(stems[i]) == 1 else f"{i:03d}-{stems[i]}"
        image = np.asarray(arrays[i]).transpose(1, 2, 0)  # (3, H, W) -> (H, W, 3)
        png = save_overlay(image, explanation.maps[i], folder / f"{stem}-gradcam.png")
        item["explain"] = {"png": str(png), "explains": f"{explanation.kind} {explanation.labels[i]}",
                           "layer": f"backbone.{explanation.layer}"}


def format_predictions(result: dict[str, Any], as_json: bool = False) -> str:
    """A readable table per image (or JSON)."""
    if as_json:
        return json.dumps(result, indent=2)
    ds = result.get("trained_on") or {}
    lines = [f"model: {result['checkpoint']} (task {result['task']}, trained on {ds.get('name', '?')} {ds.get('version', '')})"]
    if result.get("note"):
        lines.append(result["note"])
    for item in result["images"]:
        lines.append("")
        lines.append(f"{item['image']}: {item['lat']:.4f}, {item['lon']:.4f}  ({item['location_method']})")
        for key in ("country", "admin1", "cell"):
            if key in item:
                top = ", ".join(f"{e['label']} {e['prob']:.1%}" for e in item[key])
                lines.append(f"  {key:<8}{top}")
        if "explain" in item:
            lines.append(f"  grad-cam {item['explain']['png']} ({item['explain']['explains']})")
    return "\n".join(lines)
