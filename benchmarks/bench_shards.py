"""Streaming from WebDataset shards: peak memory of one epoch does not grow with the data set.

Run: python benchmarks/bench_shards.py [--sizes 10000 50000] [--shard-size 2000] [--workers 1]

For each size N: N small JPEGs (64 x 40 px, seeded noise) at seeded places are written as a
manifest and then as shards (``cli.py data shards``: :func:`geocell_engine.data.shards.write_shards`);
then, in a fresh process, the shard folder is loaded as a data set (``load_splits``: the metadata
table of every sample) and one training epoch is streamed through the training pipeline
(:class:`geocell_engine.data.shards.TrainStream`: shuffle buffer, decode, the photo transforms to
32 px, batches of 64) without a model. Reported per N: samples streamed, images/s, and the peak RSS
of the process and of its loader workers. Target: the peak RSS at the largest N within 10% of the
smallest. Writes benchmarks/results/shards.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import environment, markdown_table, write_results  # noqa: E402


def make_data(folder: Path, n: int, shard_size: int) -> Path:
    """A manifest of ``n`` small JPEGs and its shards; returns the shard folder."""
    import pandas as pd
    from PIL import Image

    from geocell_engine.data.shards import write_shards

    images = folder / "img"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    patterns = [rng.integers(0, 255, (40, 64, 3), dtype=np.uint8) for _ in range(64)]
    rows = []
    for i in range(n):
        path = images / f"{i:07d}.jpg"
        Image.fromarray(patterns[i % 64]).save(path, quality=85)
        split = "val" if i % 50 == 0 else ("test" if i % 50 == 1 else "train")
        rows.append({"path": str(path), "lat": float(rng.uniform(-50, 60)), "lon": float(rng.uniform(-120, 140)),
                     "split": split})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    write_shards(str(manifest), folder / "shards", shard_size, log=lambda _: None)
    return folder / "shards"


def stream_epoch(shards: Path, workers: int) -> dict:
    from geocell_engine.data.dataset import load_splits
    from geocell_engine.data.shards import TrainStream
    from geocell_engine.data.transforms import (
        PhotoTransformSettings,
        decode_side,
        photo_train_transform,
    )

    splits, _ = load_splits(str(shards))
    train = splits["train"]
    settings = PhotoTransformSettings(32, 32)
    stream = TrainStream(train.shards, photo_train_transform(settings), decode_side(settings, True), 64,
                         batches=0, seed=0, world_size=1, num_workers=workers)
    start, seen = time.perf_counter(), 0
    for images, _ in stream.loader(epoch=1):
        seen += int(images.shape[0])
    seconds = time.perf_counter() - start
    return {"samples": seen, "train_split": len(train), "images_per_s": seen / seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_rss_workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000])
    parser.add_argument("--shard-size", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--stream", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.stream:
        print(json.dumps(stream_epoch(Path(args.stream), args.workers)))
        return {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_shards_") as tmp:
        for n in args.sizes:
            start = time.perf_counter()
            shards = make_data(Path(tmp) / str(n), n, args.shard_size)
            written = time.perf_counter() - start
            out = subprocess.run([sys.executable, __file__, "--stream", str(shards), "--workers", str(args.workers)],
                                 capture_output=True, text=True, check=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"n": n, "write_s": written, **result})
    print(markdown_table(rows, ["n", "samples", "images_per_s", "peak_rss_mb", "peak_rss_workers_mb", "write_s"]))
    base, top = rows[0], rows[-1]
    growth = top["peak_rss_mb"] / base["peak_rss_mb"] - 1
    worker_growth = top["peak_rss_workers_mb"] / max(base["peak_rss_workers_mb"], 1e-9) - 1
    ok = abs(growth) < 0.10 and abs(worker_growth) < 0.10
    print(f"\npeak RSS from {base['n']:,} to {top['n']:,} samples: process {growth:+.1%}, workers {worker_growth:+.1%} "
          f"(target within 10%: {'met' if ok else 'NOT met'})")
    payload = {"environment": environment(("torch", "webdataset", "numpy", "pillow")), "shard_size": args.shard_size,
               "workers": args.workers, "results": rows, "rss_growth": growth, "worker_rss_growth": worker_growth,
               "target_met": ok}
    print(f"wrote {write_results('shards', payload)}")
    return payload


if __name__ == "__main__":
    main()
