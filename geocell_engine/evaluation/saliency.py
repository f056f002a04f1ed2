"""Grad-CAM saliency (``predict --explain``): where in the image the model looked for its answer.

Grad-CAM (Selvaraju et al., 2017) weighs the channels of the backbone's last convolutional
feature map ``A`` (B, C, h, w) by the spatial mean of the gradient of the explained score ``y``
(one logit per image) with respect to them, sums the weighted channels and keeps the positive
part: ``cam = relu(sum_c mean_hw(dy/dA_c) * A_c)``, upsampled to the input size and scaled to
0..1 per image. Two hooks do it (a forward hook keeps ``A``, a tensor hook its gradient); no
extra package is needed.

:func:`grad_cam` works on any module and layer; :func:`explain_geomodel` explains a GeoModel's top
country (a country head) or top cell (a cell head) on its last 4-D feature map;
:func:`save_overlay` writes the map over the image as a PNG.

Example:
    >>> import torch
    >>> net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
    ...                           torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    >>> cam = grad_cam(net, torch.rand(2, 3, 8, 8), lambda out: out[:, 1], layer=net[1])
    >>> tuple(cam.shape), bool((cam >= 0).all() and (cam <= 1).all())
    ((2, 8, 8), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from geocell_engine.errors import ReportError

__all__ = ["SaliencyError", "grad_cam", "last_feature_map_layer", "explain_geomodel", "Explanation",
           "save_overlay"]


class SaliencyError(ReportError):
    """A model without a convolutional feature map, or a head that cannot be explained."""


def last_feature_map_layer(module: Any, example: Any) -> tuple[str, Any]:
    """The last module (in execution order) of ``module`` whose output is a 4-D map (B, C, h, w)
    with h, w > 1: the feature map Grad-CAM explains.

    Args:
        module: e.g. a GeoModel's backbone.
        example: an input batch for one forward pass (no gradient).

    Returns:
        ``(name, submodule)``.

    Raises:
        SaliencyError: no submodule gives a spatial 4-D output (a transformer without one).
    """
    import torch

    seen: list[tuple[str, Any]] = []
    handles = []
    for name, sub in module.named_modules():
        if sub is module or any(True for _ in sub.children()):
            continue  # leaves only: a block's output is also its last leaf's

        def hook(mod, inputs, output, name=name):
            if isinstance(output, torch.Tensor) and output.dim() == 4 and min(output.shape[-2:]) > 1:
                seen.append((name, mod))
        handles.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            module(example)
    finally:
        for h in handles:
            h.remove()
    if not seen:
        raise SaliencyError(f"{type(module).__name__} has no convolutional feature map (no layer gives a "
                            "(B, C, h, w) output with h, w > 1), which Grad-CAM needs")
    return seen[-1]


def grad_cam(model: Any, images: Any, score: Callable[[Any], Any], layer: Any) -> Any:
    """Grad-CAM maps of ``score(model(images))`` on ``layer``'s output.

    Args:
        model: a module; its parameters are left as they were (no optimizer step; gradients of
            the parameters that this pass computes are cleared afterwards).
        images: (B, 3, H, W) input batch (uint8 or float, as ``model`` takes it).
        score: ``outputs -> (B,)`` the score explained per image (e.g. the top logit).
        layer: the submodule whose (B, C, h, w) output is explained.

    Returns:
        (B, H, W) float32 tensor in 0..1 on the CPU (each map divided by its maximum; all zero
        where no location raises the score).

    Raises:
        SaliencyError: ``layer`` gave no 4-D output, or ``score`` no (B,) tensor.
    """
    import torch
    import torch.nn.functional as F

    kept: dict[str, Any] = {}

    def forward_hook(mod, inputs, output):
        if not (isinstance(output, torch.Tensor) and output.dim() == 4):
            return
        kept["a"] = output
        if output.requires_grad:
            output.register_hook(lambda grad: kept.__setitem__("g", grad))

    was_training = model.training
    model.eval()
    handle = layer.register_forward_hook(forward_hook)
    try:
        with torch.enable_grad():
            x = images if images.dtype == torch.uint8 else images.detach().float().requires_grad_(True)
            out = model(x)
            y = score(out)
            if "a" not in kept:
                raise SaliencyError(f"the layer {type(layer).__name__} gave no (B, C, h, w) output")
            if not (isinstance(y, torch.Tensor) and y.dim() == 1 and y.shape[0] == images.shape[0]):
                raise SaliencyError(f"score must give one value per image ({images.shape[0]},), got "
                                    f"{getattr(y, 'shape', type(y).__name__)}")
            if not y.requires_grad:
                raise SaliencyError("the explained score does not depend on the feature map (no gradient)")
            y.sum().backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    a, g = kept["a"].detach().float(), kept.get("g")
    if g is None:
        raise SaliencyError("no gradient reached the feature map")
    weights = g.detach().float().mean(dim=(2, 3), keepdim=True)  # (B, C, 1, 1)
    cam = torch.relu((weights * a).sum(dim=1, keepdim=True))  # (B, 1, h, w)
    cam = F.interpolate(cam, size=tuple(images.shape[-2:]), mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).cpu()


@dataclass(frozen=True)
class Explanation:
    """Grad-CAM of one batch: ``maps`` (B, H, W) in 0..1, and what each map explains."""

    maps: np.ndarray
    head: str
    kind: str  # "country" or "cell"
    labels: list[str]
    layer: str


def explain_geomodel(model: Any, images: Any) -> Explanation:
    """Grad-CAM of a GeoModel's top answer per image: the top country of its country head, else
    the top cell of its cell head, on the backbone's last 4-D feature map.

    Args:
        model: a ``heads.GeoModel`` (eval mode is set for the pass and restored).
        images: uint8 (B, 3, H, W).

    Raises:
        SaliencyError: no country or cell head, or a backbone without a feature map.
    """
    import torch

    from heads.classification import CellHead, CountryHead

    name = next((n for n, h in model.heads.items() if isinstance(h, CountryHead)), None)
    kind = "country"
    if name is None:
        name, kind = next((n for n, h in model.heads.items() if isinstance(h, CellHead)), None), "cell"
    if name is None:
        raise SaliencyError(f"the model has no country or cell head to explain (heads: {list(model.heads)})")
    x = model.normalise(images)
    layer_name, layer = last_feature_map_layer(model.backbone, x[:1])
    with torch.no_grad():
        was = model.training
        model.eval()
        top = model(images)[name].logits.argmax(dim=1)
        model.train(was)

    def score(outputs):
        return outputs[name].logits.gather(1, top[:, None])[:, 0]

    maps = grad_cam(model, images.float().div(255.0) if images.dtype == torch.uint8 else images, score, layer)
    vocab = getattr(model.heads[name], "labels", None)
    labels = [str(vocab[i]) if vocab is not None else str(int(i)) for i in top.tolist()]
    return Explanation(maps.numpy().astype(np.float32), name, kind, labels, layer_name)


def save_overlay(image: np.ndarray, cam: np.ndarray, path: str | Path, alpha: float = 0.5) -> Path:
    """Write ``cam`` over ``image`` as a PNG (atomically): the map in matplotlib's ``jet`` colours
    blended with the image, with the image beside it for reference.

    Args:
        image: uint8 (H, W, 3) RGB.
        cam: (H, W) in 0..1.
        alpha: weight of the map in the blend.

    Raises:
        SaliencyError: shapes that do not match, a path that is not .png.
    """
    from matplotlib import colormaps
    from PIL import Image

    from geocell.tables import atomic_write

    path = Path(path)
    image = np.asarray(image)
    cam = np.asarray(cam, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3 or cam.shape != image.shape[:2]:
        raise SaliencyError(f"image (H, W, 3) and map (H, W) must match, got {image.shape} and {cam.shape}")
    if path.suffix.lower() != ".png":
        raise SaliencyError(f"{path}: overlays are written as PNG; expected a name ending in .png")
    heat = (colormaps["jet"](np.clip(cam, 0, 1))[..., :3] * 255).astype(np.float32)
    blend = ((1 - alpha) * image.astype(np.float32) + alpha * heat).clip(0, 255).astype(np.uint8)
    both = np.concatenate([image.astype(np.uint8), blend], axis=1)
    scale = max(1, 256 // max(image.shape[:2]))  # small inputs enlarged so that they can be seen
    picture = Image.fromarray(both)
    if scale > 1:
        picture = picture.resize((both.shape[1] * scale, both.shape[0] * scale), Image.NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: picture.save(tmp, format="PNG"))
