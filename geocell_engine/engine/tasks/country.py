"""``country``: classify the country (cross-entropy over the training split's countries)."""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from geocell_engine.engine.tasks.base import Task, register_task


@register_task("country")
class CountryTask(Task):
    """Country classification; needs only country labels. Its location guess is the anchor of
    the top country (the centre of that country's training points, or a point inside it)."""

    needs_coordinates = False
    score_name = "val country error"
    supports_mixup = True

    def build_heads(self, in_features: int) -> dict[str, Any]:
        from heads import create_head

        return {"country": create_head("country", in_features, countries=list(self.labels.countries))}

    def targets(self, split) -> dict[str, np.ndarray]:
        return {"country": self.labels.country_index(split.country)}

    def loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        import torch.nn.functional as F

        value = F.cross_entropy(outputs["country"].logits.float(), targets["country"], ignore_index=-1)
        return value, {"country": float(value.detach())}

    def mixed_loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any], mix: Any) -> tuple[Any, dict[str, float]]:
        """Multi-label BCE (``losses.MixupBCELoss``): every country in a mixed image is a positive."""
        import torch.nn.functional as F

        from losses import MixupBCELoss

        logits = outputs["country"].logits.float()
        labels = targets["country"]
        onehot = F.one_hot(labels.clamp(min=0), logits.shape[1]).float() * (labels >= 0).unsqueeze(1).float()
        value = MixupBCELoss()(logits, (mix.float() @ onehot).clamp_(0.0, 1.0))
        return value, {"country": float(value.detach())}

    def score(self, preds) -> float:
        """1 - country top-1 accuracy."""
        return 1.0 - float(np.mean(preds.pred_country == preds.true_country)) if len(preds) else 1.0

    def country_proba(self, outputs: Mapping[str, Any]) -> Optional[np.ndarray]:
        return outputs["country"].probs().float().cpu().numpy()
