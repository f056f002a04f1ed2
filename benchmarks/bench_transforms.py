"""The fused random-resized-crop + rotation against timm's crop followed by torchvision's rotation.

Run: python benchmarks/bench_transforms.py [--repeat 400]

On a 400 x 225 RGB frame (a 1600 x 900 JPEG after ``draft`` to 1/4, what the photo loader hands
the transform), to 224 x 224 px with area scale (0.5, 1) and +-10 degrees, bilinear:
  * ``timm crop + torchvision rotate``: ``RandomResizedCropAndInterpolation`` then
    ``transforms.RandomRotation`` (two resamples);
  * ``fused``: :class:`geocell_engine.data.transforms.RandomResizedCropRotation` (one PIL affine
    resample of timm's crop box).
Each is timed ``--repeat`` times after a warm-up; the ratio is fused / two-step (lower is faster).
Writes benchmarks/results/transforms.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import environment, markdown_table, write_results  # noqa: E402


def _time(fn, frame, repeat: int) -> float:
    for _ in range(20):
        fn(frame)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn(frame)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> dict:
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images
    from timm.data.transforms import RandomResizedCropAndInterpolation
    from torchvision import transforms as T

    from geocell_engine.data.transforms import RandomResizedCropRotation

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=400)
    args = parser.parse_args(argv)
    random.seed(0)
    frame = Image.fromarray(np.asarray(load_sample_images().images[0])).resize((400, 225), Image.Resampling.BILINEAR)
    crop = RandomResizedCropAndInterpolation(224, scale=(0.5, 1.0), interpolation="bilinear")
    rotate = T.RandomRotation(10.0, interpolation=T.InterpolationMode.BILINEAR, fill=[124, 116, 104])
    fused = RandomResizedCropRotation((224, 224), scale=(0.5, 1.0), ratio=(0.75, 4 / 3), degrees=10.0,
                                      interpolation="bilinear", fill=(124, 116, 104))
    two_step = _time(lambda f: rotate(crop(f)), frame, args.repeat)
    one_step = _time(fused, frame, args.repeat)
    crop_only = _time(crop, frame, args.repeat)
    rows = [{"case": "timm crop + torchvision rotate", "ms": 1000 * two_step, "ratio": 1.0},
            {"case": "fused crop + rotation", "ms": 1000 * one_step, "ratio": one_step / two_step},
            {"case": "timm crop alone (no rotation)", "ms": 1000 * crop_only, "ratio": crop_only / two_step}]
    print(markdown_table(rows, ["case", "ms", "ratio"]))
    payload = {"environment": environment(("torch", "torchvision", "timm", "pillow")), "frame": "400x225",
               "out": "224x224", "repeat": args.repeat, "results": rows}
    print(f"wrote {write_results('transforms', payload)}")
    return payload


if __name__ == "__main__":
    main()
