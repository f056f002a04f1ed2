"""Photo input pipeline: the loader alone with 0, 1 and 2 workers, and ``fit`` against the bare step.

Run: python benchmarks/bench_loader.py [--images 512] [--fit-images 384] [--batch-size 32] [--repeat 1]

Data: 64 JPEG frames of 1600 x 900 px built from real photographs (:func:`make_frames`), written
once to a temp folder.

Cases, each in a fresh process (its own peak RSS, workers included), alternated ``--repeat`` times:
  * ``loader-N``: the training DataLoader alone (geocell_engine.data.loader) with N workers:
    decode with PIL ``draft`` + the default photo transforms to 224 px (random resized crop with a
    +-10 degree rotation, colour jitter 0.2), uint8 batches out; images/s after the first batch
    (worker start-up excluded). Target: >= 150 images/s per worker, 2 workers faster than 1.
    ``loader-0-randaugment`` adds RandAugment rand-m6-n2 (the seed000 recipe).
  * ``bare``: EfficientNet-Lite0 (offline ImageNet weights) with the region head at 224 px, forward
    + loss + backward + AdamW step on batches decoded beforehand, every step timed (the first, where
    oneDNN picks its kernels, too: fit's epoch time includes it). The speed a perfect input
    pipeline would reach.
  * ``fit-N``: geocell_engine.engine.fit.fit for one epoch over the JPEG manifest with N loader
    workers (validation excluded; the epoch time includes waiting for data). Target: the best
    ``fit-N`` >= 0.9 x bare.
Writes benchmarks/results/loader.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import environment, markdown_table, write_results  # noqa: E402

N_FILES = 64
WORKERS = (0, 1, 2)


def make_frames(folder: Path, n: int = N_FILES) -> Path:
    """``n`` 1600 x 900 JPEG frames (quality 90) at places around the world, and a manifest of them
    (kept if present). Each frame is a mosaic of 400 x 300 crops at native resolution of the two
    real photographs scikit-learn ships (``load_sample_images``), so it has a photo's detail and a
    photo's file size (about 450 KB, what a 1600 x 900 street-level screenshot weighs at quality 90)."""
    import pandas as pd
    from PIL import Image
    from sklearn.datasets import load_sample_images

    manifest = folder / "frames.csv"
    if manifest.is_file():
        return manifest
    folder.mkdir(parents=True, exist_ok=True)
    photos = load_sample_images().images  # two (427, 640, 3) uint8 photographs
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        frame = np.zeros((900, 1600, 3), np.uint8)
        for y in range(0, 900, 300):
            for x in range(0, 1600, 400):
                photo = photos[rng.integers(len(photos))]
                top, left = rng.integers(0, photo.shape[0] - 300), rng.integers(0, photo.shape[1] - 400)
                tile = photo[top:top + 300, left:left + 400]
                frame[y:y + 300, x:x + 400] = tile[:, ::-1] if rng.random() < 0.5 else tile
        path = folder / f"frame{i:03d}.jpg"
        Image.fromarray(frame).save(path, quality=90)
        split = "val" if i % 16 == 0 else "train"
        rows.append({"path": path.name, "lat": float(rng.uniform(-50, 60)), "lon": float(rng.uniform(-120, 140)),
                     "split": split})
    rows.append({**rows[-1], "split": "test"})
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def _settings(rand_augment: str = "none"):
    """The default photo transforms at 224 px (``rand_augment``: the seed000 recipe's addition)."""
    from geocell_engine.data.transforms import PhotoTransformSettings

    return PhotoTransformSettings(224, 224, rand_augment=rand_augment)


def _peak_rss_mb() -> dict[str, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"peak_rss_mb": own, "peak_rss_worker_mb": children}


def run_loader(folder: Path, workers: int, n_images: int, batch_size: int, rand_augment: str = "none") -> dict:
    from geocell_engine.data.loader import EpochBatches, PhotoDataset, make_loader
    from geocell_engine.data.transforms import decode_side, photo_train_transform

    settings = _settings(rand_augment)
    paths = sorted(str(p) for p in folder.glob("frame*.jpg"))
    data = PhotoDataset(paths, None, "train", photo_train_transform(settings), decode_side(settings, True), seed=0)
    batches = EpochBatches()
    batches.set(np.arange(n_images) % len(paths), epoch=1, batch_size=batch_size)
    loader = make_loader(data, batches, workers, pin_memory=False)
    seen, start = 0, None
    for i, batch in enumerate(loader):
        if i == 0:
            start = time.perf_counter()  # worker start-up and the first batch left out
            continue
        seen += len(batch.indices)
    seconds = time.perf_counter() - start
    return {"images_per_s": seen / seconds, **_peak_rss_mb()}


def _config(folder: Path, workers: int, batch_size: int):
    from geocell_engine.engine.config import TrainConfig

    return TrainConfig(data=str(folder / "frames.csv"), image_size=224, epochs=1, batch_size=batch_size, quiet=True,
                       out_dir=str(Path(tempfile.mkdtemp(prefix="bench_loader_"))), cell_min_samples=2,
                       cell_max_samples=8, num_workers=workers)  # the default photo transforms


def _train_split(config, n_images: int):
    from geocell_engine.data.dataset import load_splits

    splits, info = load_splits(config.data)
    train = splits["train"]
    index = np.arange(n_images) % len(train)  # the 60 frames repeated: decoding is the work
    return splits, info, train.take(index)


def run_bare(folder: Path, n_images: int, batch_size: int) -> dict:
    import torch

    from geocell_engine.data.dataset import iterate_batches
    from geocell_engine.data.transforms import eval_decoder
    from geocell_engine.engine.model import build_model
    from geocell_engine.engine.tasks import create_task

    config = _config(folder, 0, batch_size)
    _, _, train = _train_split(config, n_images)
    task = create_task(config, train, run_dir=None, log=lambda _: None)
    model = build_model(config, task)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    targets = {k: torch.as_tensor(v) for k, v in task.targets(train).items()}
    batches = list(iterate_batches(train, np.arange(len(train)), batch_size, 224, decode=eval_decoder(config)))
    seconds, n = 0.0, 0
    for images, idx in batches:
        start = time.perf_counter()
        x = images.float().div_(255.0)
        loss, _ = task.loss(model(x), {k: v[torch.as_tensor(idx)] for k, v in targets.items()})
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds += time.perf_counter() - start  # every step, the first too (as fit's epoch time has it)
        n += len(idx)
    return {"images_per_s": n / seconds, **_peak_rss_mb()}


def run_fit(folder: Path, workers: int, n_images: int, batch_size: int) -> dict:
    from geocell_engine.engine.fit import fit
    from geocell_engine.engine.tasks import create_task

    config = _config(folder, workers, batch_size)
    splits, info, train = _train_split(config, n_images)
    run_dir = Path(config.out_dir) / "run"
    run_dir.mkdir(parents=True)
    task = create_task(config, train, run_dir=run_dir, log=lambda _: None)
    result = fit(config, task, train, splits["val"], run_dir, {"dataset": info.as_dict()}, log=lambda _: None)
    return {"images_per_s": result.history[-1]["train_images_per_s"], **_peak_rss_mb()}


def run_case(case: str, folder: Path, args) -> dict:
    kind, _, n = case.partition("-")
    if case == "loader-0-randaugment":
        out = run_loader(folder, 0, args.images, args.batch_size, rand_augment="rand-m6-n2")
    elif kind == "loader":
        out = run_loader(folder, int(n), args.images, args.batch_size)
    elif kind == "bare":
        out = run_bare(folder, args.fit_images, args.batch_size)
    else:
        out = run_fit(folder, int(n), args.fit_images, args.batch_size)
    return {"case": case, **out}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=512, help="images through the loader alone")
    parser.add_argument("--fit-images", type=int, default=384, help="training images of the bare and fit cases")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--folder", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--case", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, Path(args.folder), args)))
        return {}
    folder = Path(args.folder or tempfile.mkdtemp(prefix="bench_loader_frames_"))
    make_frames(folder)
    cases = [f"loader-{w}" for w in WORKERS] + ["loader-0-randaugment", "bare"] + [f"fit-{w}" for w in WORKERS]
    runs: dict[str, list] = {c: [] for c in cases}
    for r in range(args.repeat):
        for case in cases[r % len(cases):] + cases[:r % len(cases)]:  # rotated, as in bench_fit.py
            out = subprocess.run([sys.executable, __file__, "--case", case, "--folder", str(folder), "--images",
                                  str(args.images), "--fit-images", str(args.fit_images), "--batch-size",
                                  str(args.batch_size)], capture_output=True, text=True, check=True)
            runs[case].append(json.loads(out.stdout.strip().splitlines()[-1]))
    bare = statistics.median(r["images_per_s"] for r in runs["bare"])
    rows = []
    for case, rs in runs.items():
        ips = statistics.median(r["images_per_s"] for r in rs)
        row = {"case": case, "images_per_s": ips, "all_runs": [round(r["images_per_s"], 1) for r in rs],
               "peak_rss_mb": max(r["peak_rss_mb"] for r in rs),
               "peak_rss_worker_mb": max(r["peak_rss_worker_mb"] for r in rs)}
        if case in ("loader-1", "loader-2"):
            row["per_worker"] = ips / int(case.split("-")[1])
        if case.startswith(("fit", "bare")):
            row["ratio_vs_bare"] = ips / bare
        rows.append(row)
    print(markdown_table(rows, ["case", "images_per_s", "all_runs", "per_worker", "ratio_vs_bare", "peak_rss_mb",
                                "peak_rss_worker_mb"]))
    by = {r["case"]: r for r in rows}
    per_core = by["loader-0"]["images_per_s"]
    best_fit = max((r for r in rows if r["case"].startswith("fit")), key=lambda r: r["images_per_s"])
    checks = {
        "per_worker_at_least_150": all(by[f"loader-{w}"]["images_per_s"] / w >= 150 for w in WORKERS if w),
        "two_workers_faster_than_one": by["loader-2"]["images_per_s"] > by["loader-1"]["images_per_s"],
        "best_fit_at_least_0.9x_bare": best_fit["ratio_vs_bare"] >= 0.9,
    }
    print(f"\none core decodes + augments {per_core:.0f} photos/s at 224 px; best fit: {best_fit['case']} "
          f"at {best_fit['ratio_vs_bare']:.2f}x the bare step")
    for name, ok in checks.items():
        print(f"  {name}: {'met' if ok else 'NOT met'}")
    payload = {"environment": environment(("torch", "timm", "torchvision", "pillow", "numpy")),
               "frames": "1600x900 JPEG, quality 90", "images": args.images, "fit_images": args.fit_images,
               "batch_size": args.batch_size, "results": rows, "decode_per_core_images_per_s": per_core,
               "best_fit": best_fit["case"], "checks": checks}
    print(f"wrote {write_results('loader', payload)}")
    return payload


if __name__ == "__main__":
    main()
