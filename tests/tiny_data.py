"""Seeded tiny data shared by the engine and CLI tests: PNG images whose colour depends on the
place (three countries, two places each), in a manifest with a split column, and the flags of a
tiny CPU run (timm's ``test_efficientnet``, random init, 32 px)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PLACES = [  # (lat, lon, rgb): Paris, Lyon, Chicago, Dallas, Sydney, Perth
    (48.85, 2.35, (200, 60, 60)), (45.76, 4.84, (190, 80, 60)),
    (41.88, -87.63, (60, 200, 60)), (32.78, -96.80, (80, 190, 60)),
    (-33.87, 151.21, (60, 60, 200)), (-31.95, 115.86, (60, 80, 190)),
]
TINY = ["--backbone", "test_efficientnet", "--no-pretrained", "--image-size", "32", "--epochs", "2",
        "--batch-size", "16", "--quiet", "--cell-min-samples", "3", "--cell-max-samples", "12",
        "--precision", "fp32", "--threads", "1", "--freeze-stages", "0"]


def make_tiny_dataset(root: Path, n_per_place: int = 14, seed: int = 0, size: tuple[int, int] = (32, 32),
                      suffix: str = "png") -> Path:
    """Write images and a manifest (path, lat, lon, split); returns the manifest path.

    Args:
        size: (width, height) of every image, px. suffix: "png" or "jpg" (photo-like files).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    rows = []
    (root / "img").mkdir(parents=True, exist_ok=True)
    width, height = size
    for p, (lat, lon, rgb) in enumerate(PLACES):
        for i in range(n_per_place):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
            name = f"img/{p}_{i}.{suffix}"
            Image.fromarray(pixels).save(root / name)
            split = "train" if i < n_per_place - 4 else ("val" if i < n_per_place - 2 else "test")
            rows.append({"path": name, "lat": lat + rng.normal(0, 0.2), "lon": lon + rng.normal(0, 0.2), "split": split})
    manifest = root / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def make_tiny_photo_folder(root: Path, n_per_place: int = 14, seed: int = 0, without_gps: int = 2) -> Path:
    """A folder of JPEG photos (in two sub-folders) with GPS in their EXIF, at the places of
    :data:`PLACES` and coloured by place, plus ``without_gps`` photos that have none."""
    from PIL import Image

    def dms(v: float) -> tuple[float, float, float]:
        v = abs(v)
        d = int(v)
        m = int((v - d) * 60)
        return float(d), float(m), round((v - d - m / 60) * 3600, 4)

    rng = np.random.default_rng(seed)
    for p, (lat, lon, rgb) in enumerate(PLACES):
        for i in range(n_per_place):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 20, (40, 64, 3)), 0, 255).astype(np.uint8)
            exif = Image.Exif()
            gps = exif.get_ifd(0x8825)
            la, lo = lat + rng.normal(0, 0.2), lon + rng.normal(0, 0.2)
            gps[1], gps[2] = ("N" if la >= 0 else "S"), dms(la)
            gps[3], gps[4] = ("E" if lo >= 0 else "W"), dms(lo)
            folder = root / ("trip-a" if p % 2 else "trip-b")
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(folder / f"{p}_{i}.jpg", exif=exif)
    for i in range(without_gps):
        Image.fromarray(np.full((40, 64, 3), 128, np.uint8)).save(root / f"no_gps_{i}.jpg")
    return root
