"""MixUp / CutMix as multi-label binary cross-entropy, with timm's own ``Mixup`` and
``BinaryCrossEntropy`` (nothing rewritten).

A mixed image shows two places, so its target carries both classes = 1 instead of a
``lam / (1 - lam)`` split; each class is an independent sigmoid. timm's ``Mixup`` mixes the images
and produces the soft target ``lam * y_a + (1 - lam) * y_b``; ``BinaryCrossEntropy`` with
``target_threshold`` binarises it (every class above the threshold becomes 1).

How a user turns it on (any classifier head: ``country`` or ``cell``)::

    from losses import MixupBCELoss, create_mixup

    mixup = create_mixup(num_classes=head.num_classes)   # timm.data.Mixup, label_smoothing=0
    criterion = MixupBCELoss()                           # timm.loss.BinaryCrossEntropy inside
    for images, labels in loader:                        # labels: (B,) class indices, B even
        images, targets = mixup(images, labels)          # targets: (B, C) soft
        loss = criterion(model(images)["country"].logits, targets)
    # evaluation: criterion(logits, labels) also takes plain (B,) indices

Example:
    >>> import torch
    >>> mixup = create_mixup(num_classes=4, seed=0)
    >>> images, targets = mixup(torch.randn(2, 3, 8, 8), torch.tensor([0, 3]))
    >>> loss = MixupBCELoss()(torch.zeros(2, 4), targets)
    >>> round(float(loss), 4)   # sigmoid(0) = 0.5 against 0/1 targets: log 2 per class
    0.6931
"""

from __future__ import annotations

import random
from typing import Any, Literal, Optional

import torch
from torch import nn

from ._checks import check_fraction

__all__ = ["MixupBCELoss", "create_mixup"]


def create_mixup(
    num_classes: int,
    mixup_alpha: float = 0.8,
    cutmix_alpha: float = 1.0,
    prob: float = 1.0,
    switch_prob: float = 0.5,
    mode: Literal["batch", "pair", "elem"] = "batch",
    label_smoothing: float = 0.0,
    seed: Optional[int] = None,
) -> Any:
    """A ``timm.data.Mixup`` for index labels (B,) -> soft targets (B, num_classes).

    Args:
        num_classes: C.
        mixup_alpha, cutmix_alpha: Beta parameters (0 turns one off; both 0 is an error).
        prob: probability of mixing a batch; switch_prob: of CutMix instead of MixUp.
        mode: per ``"batch"``, ``"pair"`` or ``"elem"``.
        label_smoothing: timm's smoothing (0 by default so that targets stay 0 / lam / 1).
        seed: seeds Python's and numpy's random generators, which timm's Mixup draws from.

    Raises:
        ValueError: bad arguments.
    """
    from timm.data import Mixup

    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if mixup_alpha < 0 or cutmix_alpha < 0 or (mixup_alpha == 0 and cutmix_alpha == 0):
        raise ValueError(f"need mixup_alpha > 0 or cutmix_alpha > 0, got {mixup_alpha} and {cutmix_alpha}")
    check_fraction(prob, "prob")
    check_fraction(switch_prob, "switch_prob")
    if mode not in ("batch", "pair", "elem"):
        raise ValueError(f"mode must be 'batch', 'pair' or 'elem', got {mode!r}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if seed is not None:
        import numpy as np

        random.seed(seed)
        np.random.seed(seed)
    return Mixup(
        mixup_alpha=mixup_alpha,
        cutmix_alpha=cutmix_alpha,
        prob=prob,
        switch_prob=switch_prob,
        mode=mode,
        label_smoothing=label_smoothing,
        num_classes=num_classes,
    )


class MixupBCELoss(nn.Module):
    """Multi-label BCE on (mixed) targets: ``timm.loss.BinaryCrossEntropy`` with a threshold.

    Args:
        target_threshold: classes whose soft target exceeds it become 1, the rest 0. The default
            0.0 makes every class present in a mixed image a positive (both classes = 1). timm's
            recipes use 0.2 (a class must cover a fifth of the image); with label-smoothed
            targets a threshold of 0 would make every class positive, which is refused.
        pos_weight: optional weight of positives (scalar or (C,)).
        reduction: ``"mean"`` over batch and classes, or ``"sum"``.

    Shapes: ``forward(logits (B, C), target (B, C) soft in [0, 1] or (B,) long indices)`` ->
    scalar (nats per class).

    Raises:
        ValueError: mismatched shapes, targets outside [0, 1] or NaN, smoothed targets with
        threshold 0.
    """

    def __init__(
        self,
        target_threshold: float = 0.0,
        pos_weight: Optional[float | torch.Tensor] = None,
        reduction: Literal["mean", "sum"] = "mean",
    ) -> None:
        super().__init__()
        from timm.loss import BinaryCrossEntropy

        if not 0.0 <= target_threshold < 1.0:
            raise ValueError(f"target_threshold must be in [0, 1), got {target_threshold}")
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.target_threshold = float(target_threshold)
        self.bce = BinaryCrossEntropy(
            smoothing=0.0, target_threshold=self.target_threshold, pos_weight=pos_weight, reduction=reduction
        )

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.dim() != 2:
            raise ValueError(f"logits must have shape (B, C), got {tuple(logits.shape)}")
        if target.dim() == 1:
            if target.shape[0] != logits.shape[0]:
                raise ValueError(f"target has batch {target.shape[0]}, logits {logits.shape[0]}")
            if target.is_floating_point() or bool(((target < 0) | (target >= logits.shape[1])).any()):
                raise ValueError(f"index targets must be integers in [0, {logits.shape[1]})")
            return self.bce(logits, target)
        if tuple(target.shape) != tuple(logits.shape):
            raise ValueError(f"target shape {tuple(target.shape)} differs from logits {tuple(logits.shape)}")
        if not bool(((target >= 0) & (target <= 1)).all()):
            raise ValueError("soft targets must lie in [0, 1] (and not be NaN)")
        if self.target_threshold == 0.0 and bool((target.amin(dim=1) > 0).any()):
            raise ValueError(
                "targets look label-smoothed (no zero in a row): with target_threshold=0 every class"
                " would become positive; build the Mixup with label_smoothing=0 or raise the threshold"
            )
        return self.bce(logits, target.to(logits.dtype))
