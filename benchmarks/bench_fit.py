"""Training throughput: the engine's fit loop against the bare step on the same batches.

Run: python benchmarks/bench_fit.py [--images 2560] [--batch-size 64]

Measures, in one run, on bluemarble-v1 training patches (64 px, EfficientNet-Lite0, region
task with semantic cells):
  * bare step: forward + loss + backward + AdamW step on batches already normalised in memory;
  * fit: training.engine.fit for one epoch over the same images (memory-map reads, resizing,
    augmentation, normalisation, scheduler, progress), its own images/s;
  * the bare step in fp32 vs bf16 autocast, channels_last on vs off (the precision choice).
Target: the input pipeline costs at most 10% (fit >= 0.9 x bare). Peak RSS is printed too.
Writes benchmarks/results/fit.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import environment, markdown_table, peak_rss_mb, write_results  # noqa: E402


def bare_images_per_s(config, objective, batches, precision: str, channels_last: bool, repeat: int = 2) -> float:
    import torch

    from training.engine import build_model

    model = build_model(replace(config, channels_last=channels_last), objective)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    best = 0.0
    for _ in range(repeat):
        start, n = time.perf_counter(), 0
        for x, lat, lon, country in batches:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                outputs = model(x.contiguous(memory_format=fmt))
            loss, _ = objective.loss(outputs, lat, lon, country)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            n += x.shape[0]
        best = max(best, n / (time.perf_counter() - start))
    return best


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2560)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args(argv)
    import torch

    from training.config import TrainConfig
    from training.data import load_splits
    from training.engine import _normaliser, build_model, fit
    from training.run import _build_cells
    from training.tasks import Objective, country_anchors

    torch.manual_seed(0)
    splits, info = load_splits("bluemarble-v1")
    train = splits["train"].subsample(args.images, 0)
    val = splits["val"].subsample(64, 1)
    work = Path(tempfile.mkdtemp(prefix="bench_fit_"))
    config = TrainConfig(epochs=1, batch_size=args.batch_size, quiet=True, precision="fp32", augment=True,
                         out_dir=str(work), cell_min_samples=10, cell_max_samples=100)
    cells = _build_cells(config, train, work, lambda _: None)
    objective = Objective(config, tuple(sorted(set(train.country.tolist()))), cells=cells,
                          anchors=country_anchors(train.lat, train.lon, train.country))
    mean, std = _normaliser(build_model(config, objective, pretrained=False), "cpu")
    images = torch.from_numpy(np.asarray(train.images)).permute(0, 3, 1, 2).float()
    targets = torch.as_tensor(objective.country_targets(train.country))
    batches = [((images[i:i + args.batch_size] - mean) / std,
                torch.as_tensor(train.lat[i:i + args.batch_size], dtype=torch.float32),
                torch.as_tensor(train.lon[i:i + args.batch_size], dtype=torch.float32),
                targets[i:i + args.batch_size]) for i in range(0, len(train), args.batch_size)]
    rows = []
    variants = {}
    for precision in ("fp32", "bf16"):
        for channels_last in (True, False):
            ips = bare_images_per_s(config, objective, batches, precision, channels_last)
            variants[(precision, channels_last)] = ips
            rows.append({"case": f"bare step {precision}, channels_last={channels_last}", "images_per_s": ips})
    baseline = variants[("fp32", True)]
    result = fit(config, objective, train, val, work, {"dataset": info.as_dict()}, log=lambda _: None)
    fit_ips = result.history[-1]["train_images_per_s"]
    rows.append({"case": "fit (engine, fp32, channels_last, augment)", "images_per_s": fit_ips})
    for row in rows:
        row["ratio_vs_bare_fp32_channels_last"] = row["images_per_s"] / baseline
    print(markdown_table(rows, ["case", "images_per_s", "ratio_vs_bare_fp32_channels_last"]))
    overhead = 1.0 - fit_ips / baseline
    print(f"\ninput pipeline + loop overhead: {overhead:.1%} (target <= 10%); peak RSS {peak_rss_mb():,.0f} MB")
    payload = {"environment": environment(("torch", "timm", "numpy")), "images": len(train),
               "batch_size": args.batch_size, "results": rows, "pipeline_overhead": overhead,
               "peak_rss_mb": peak_rss_mb()}
    print(f"wrote {write_results('fit', payload)}")
    return payload


if __name__ == "__main__":
    main()
