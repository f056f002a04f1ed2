"""Grad-CAM: on a toy CNN trained to find a planted bright square, the map of the "square" class
peaks inside the square; ``predict --explain`` writes one overlay PNG per image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from geocell_engine import cli
from geocell_engine.evaluation.saliency import (
    SaliencyError,
    grad_cam,
    last_feature_map_layer,
    save_overlay,
)

SIDE, PATCH = 32, 6


def _planted(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    """``n`` noisy grey images, half with a bright PATCH x PATCH square at a random place (label 1).

    Returns images (n, 3, SIDE, SIDE) in 0..1, labels (n,), and the squares' top-left corners
    (row, col) (-1 where there is none)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.2, 0.5, (n, 3, SIDE, SIDE)).astype(np.float32)
    y = np.arange(n) % 2
    corners = np.full((n, 2), -1)
    for i in np.flatnonzero(y):
        r, c = rng.integers(0, SIDE - PATCH, 2)
        x[i, :, r:r + PATCH, c:c + PATCH] = 0.95
        corners[i] = r, c
    return torch.from_numpy(x), torch.from_numpy(y), corners


def _toy_net() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 2))


def test_grad_cam_peaks_on_the_planted_patch():
    torch.set_num_threads(1)
    net = _toy_net()
    x, y, _ = _planted(256, seed=0)
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    for step in range(60):
        idx = torch.arange(step * 32, step * 32 + 32) % len(x)
        loss = torch.nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    test_x, test_y, corners = _planted(40, seed=1)
    with torch.no_grad():
        accuracy = float((net(test_x).argmax(1) == test_y).float().mean())
    assert accuracy >= 0.9  # it learnt the square
    name, layer = last_feature_map_layer(net, test_x[:1])
    assert name == "3"  # the last ReLU: the last (B, C, h, w) map before pooling
    with_patch = test_y == 1
    cam = grad_cam(net, test_x[with_patch], lambda out: out[:, 1], layer)
    assert cam.shape == (int(with_patch.sum()), SIDE, SIDE) and float(cam.min()) >= 0 and float(cam.max()) <= 1
    hits = 0
    for m, (r, c) in zip(cam.numpy(), corners[with_patch.numpy()]):
        pr, pc = np.unravel_index(np.argmax(m), m.shape)
        hits += (r - 1 <= pr <= r + PATCH) and (c - 1 <= pc <= c + PATCH)  # inside (one pixel of slack)
    assert hits >= 0.8 * with_patch.sum()
    assert all(p.grad is None for p in net.parameters())  # the explanation leaves no gradients behind


def test_a_model_without_a_feature_map_is_refused():
    mlp = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 2))
    with pytest.raises(SaliencyError, match="no convolutional feature map"):
        last_feature_map_layer(mlp, torch.rand(1, 3, 4, 4))
    with pytest.raises(SaliencyError, match="must match"):
        save_overlay(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4)), "x.png")


def test_predict_explain_writes_an_overlay_per_image(tiny_checkpoint, tmp_path, capsys):
    manifest, checkpoint = tiny_checkpoint
    images = sorted((manifest.parent / "img").glob("*.png"))[:2]
    out = tmp_path / "cams"
    assert cli.main(["predict", *map(str, images), "--checkpoint", str(checkpoint), "--explain", str(out),
                     "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for path, item in zip(images, result["images"]):
        png = out / f"{path.stem}-gradcam.png"
        assert item["explain"]["png"] == str(png)
        assert item["explain"]["explains"] == f"country {item['country'][0]['label']}"  # the top country
        with Image.open(png) as im:
            assert im.format == "PNG" and im.size[0] == 2 * im.size[1]  # the image and its overlay side by side
