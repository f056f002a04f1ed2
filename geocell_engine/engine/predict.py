"""``cli.py predict``: top-k countries and cells and a lat/lon guess for image files."""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np

__all__ = ["predict_images", "format_predictions"]

_SATELLITE_NOTE = (
    "note: this model was trained on {name}, satellite image patches of {footprint} seen from above; "
    "ground-level photos are outside what it has seen, so treat its guesses for them as noise"
)


def predict_images(checkpoint: str | os.PathLike, paths: Sequence[str], k: int = 5) -> dict[str, Any]:
    """Predictions for each image as plain data (what the table and ``--json`` print).

    Raises:
        geocell_engine.data.dataset.DataError: an image that cannot be read (named).
    """
    import torch

    from geocell_engine.data.dataset import DataError, load_image
    from geocell_engine.engine.fit import _normaliser
    from geocell_engine.engine.run import load_run_model

    model, objective, config, ckpt = load_run_model(checkpoint)
    arrays = []
    for path in paths:
        try:
            arrays.append(load_image(path, config.image_size))
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataError(f"{path}: cannot read image: {exc}") from exc
    mean, std = _normaliser(model, "cpu")
    x = (torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() - mean) / std
    pred = model.predict(x, k=k)
    lat, lon = pred.lat.double().numpy(), pred.lon.double().numpy()
    method = pred.location_method
    if not np.isfinite(lat).all() and pred.country is not None:  # a country-only model
        top = np.asarray([labels[0] for labels in pred.country.labels])
        lat, lon = objective.country_location(top)
        method = "country centre"
    dataset = dict(ckpt.get("dataset") or {})
    out: dict[str, Any] = {"checkpoint": str(checkpoint), "trained_on": dataset, "task": config.task, "images": []}
    for i, path in enumerate(paths):
        item: dict[str, Any] = {"image": str(path), "lat": round(float(lat[i]), 5),
                                "lon": round(float(lon[i]), 5), "location_method": method}
        for key in ("country", "admin1", "cell"):
            top = getattr(pred, key)
            if top is not None:
                labels = top.labels[i] if top.labels is not None else [str(j) for j in top.index[i].tolist()]
                item[key] = [{"label": str(lab), "prob": round(float(p), 4)} for lab, p in zip(labels, top.prob[i].tolist())]
        out["images"].append(item)
    if str(dataset.get("name", "")).startswith("bluemarble"):
        out["note"] = _SATELLITE_NOTE.format(name=dataset["name"], footprint="256 km x 256 km")
    return out


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
    return "\n".join(lines)
