"""``distance``: a pairwise discriminator of clipped distances to fixed country anchors."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from geocell_engine.engine.tasks.base import Task, register_task


@register_task("distance")
class DistanceTask(Task):
    """Predict the great-circle km (clipped at ``config.distance_clip_km``) from the image to
    every country anchor; the location is found by multilateration."""

    def build_heads(self, in_features: int) -> dict[str, Any]:
        from heads import create_head

        a = self.labels.anchors
        return {"distance": create_head("distance", in_features, anchor_lat=a.lat, anchor_lon=a.lon,
                                        clip_km=self.config.distance_clip_km, anchor_labels=a.labels)}

    def _loss_module(self, device: Any):
        if not hasattr(self, "_clipped"):
            from losses import ClippedDistanceLoss

            a = self.labels.anchors
            self._clipped = ClippedDistanceLoss(a.lat, a.lon, clip_km=self.config.distance_clip_km)
        return self._clipped.to(device)

    def loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        out = outputs["distance"]
        value = self._loss_module(targets["lat"].device)(
            out.distance_km.float(), targets["lat"], targets["lon"], self_distance_km=out.self_distance_km.float())
        return value, {"distance": float(value.detach())}

    def collect(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        return {"pred_distance_km": outputs["distance"].distance_km.float().cpu().numpy()}

    def finish(self, collected: Mapping[str, np.ndarray], lat: np.ndarray, lon: np.ndarray) -> dict[str, Any]:
        from geocell import haversine_matrix

        a = self.labels.anchors
        true = np.minimum(haversine_matrix(lat, lon, a.lat, a.lon), self.config.distance_clip_km)
        return {"pred_distance_km": collected["pred_distance_km"], "true_distance_km": true}
