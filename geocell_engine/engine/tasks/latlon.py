"""``latlon``: regress the position as a unit vector, trained on great-circle km."""

from __future__ import annotations

from typing import Any, Mapping

from geocell_engine.engine.tasks.base import Task, register_task


@register_task("latlon")
class LatLonTask(Task):
    """Unit-vector regression with the geodesic loss. The loss is in km divided by 1,000, so
    that km errors and nats weigh alike in a multi-task sum."""

    def build_heads(self, in_features: int) -> dict[str, Any]:
        from heads import create_head

        return {"latlon": create_head("latlon", in_features)}

    def loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        from losses import GeodesicLoss

        if not hasattr(self, "_geodesic"):
            self._geodesic = GeodesicLoss()
        value = self._geodesic(outputs["latlon"].xyz.float(), targets["lat"], targets["lon"]) / 1000.0
        return value, {"latlon": float(value.detach())}
