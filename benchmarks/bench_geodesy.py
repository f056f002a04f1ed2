"""Haversine throughput: geocell against plain numpy and scikit-learn, in one run.

Run: python benchmarks/bench_geodesy.py [--pairs 1000000] [--repeat 7]

Measures
  * element-wise pairs/s: geocell.haversine (numpy float64/float32, torch float64/float32)
    against the same formula written inline in plain numpy (the baseline);
  * all-pairs matrices: geocell.haversine_matrix against sklearn's haversine_distances and a
    naive broadcast of the element-wise formula, with the float32 error against float64;
  * the label-smoothing shape (256 x 10,000, float32, torch).
Writes benchmarks/results/geodesy.json.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import environment, markdown_table, time_call, write_results  # noqa: E402
from geocell import EARTH_RADIUS_KM, haversine, haversine_matrix  # noqa: E402


def plain_numpy_haversine(lat1, lon1, lat2, lon2):
    """The textbook formula, inline numpy: the baseline."""
    lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def random_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    import torch
    from sklearn.metrics.pairwise import haversine_distances

    rng = np.random.default_rng(0)
    n = args.pairs
    lat1, lon1 = random_points(n, rng)
    lat2, lon2 = random_points(n, rng)
    rows = []

    def add(name, baseline_name, seconds, baseline_seconds, count, **extra):
        rows.append(
            {
                "case": name,
                "baseline": baseline_name,
                "items_per_s": count / seconds,
                "baseline_items_per_s": count / baseline_seconds,
                "time_ratio_vs_baseline": seconds / baseline_seconds,
                **extra,
            }
        )

    for dtype in (np.float64, np.float32):
        args32 = [x.astype(dtype) for x in (lat1, lon1, lat2, lon2)]
        t_base = time_call(lambda: plain_numpy_haversine(*args32), args.repeat)
        t_ours = time_call(lambda: haversine(*args32), args.repeat)
        add(f"haversine numpy {np.dtype(dtype).name}", "plain numpy, same dtype", t_ours, t_base, n)
        targs = [torch.from_numpy(x) for x in args32]
        t_torch = time_call(lambda: haversine(*targs), args.repeat)
        add(f"haversine torch {np.dtype(dtype).name}", "plain numpy, same dtype", t_torch, t_base, n)

    # all pairs of 1000 x 1000 points: ours, sklearn, naive broadcast (float64)
    m = int(math.sqrt(n))
    la, lo = lat1[:m], lon1[:m]
    lb, lob = lat2[:m], lon2[:m]
    rad_a, rad_b = np.radians(np.c_[la, lo]), np.radians(np.c_[lb, lob])
    t_sk = time_call(lambda: haversine_distances(rad_a, rad_b) * EARTH_RADIUS_KM, args.repeat)
    t_mat = time_call(lambda: haversine_matrix(la, lo, lb, lob), args.repeat)
    t_naive = time_call(lambda: plain_numpy_haversine(la[:, None], lo[:, None], lb[None], lob[None]), args.repeat)
    add(f"haversine_matrix numpy float64 {m}x{m}", "sklearn haversine_distances", t_mat, t_sk, m * m)
    add(f"naive broadcast numpy float64 {m}x{m}", "sklearn haversine_distances", t_naive, t_sk, m * m)

    # label-smoothing shape: 256 images x 10,000 cells, float32 torch
    la, lo = random_points(256, rng)
    lb, lob = random_points(10_000, rng)
    reference = plain_numpy_haversine(la[:, None], lo[:, None], lb[None], lob[None])
    t32 = [torch.from_numpy(x.astype(np.float32)) for x in (la, lo, lb, lob)]
    naive = lambda: haversine(t32[0][:, None], t32[1][:, None], t32[2][None], t32[3][None])  # noqa: E731
    fast = lambda: haversine_matrix(*t32)  # noqa: E731
    t_naive = time_call(naive, args.repeat)
    t_fast = time_call(fast, args.repeat)
    err_fast = float(np.abs(fast().numpy() - reference).max())
    err_naive = float(np.abs(naive().numpy() - reference).max())
    add("haversine_matrix torch float32 256x10000", "naive broadcast torch float32", t_fast, t_naive, 256 * 10_000,
        ms_per_batch=t_fast * 1e3, max_abs_error_km=err_fast, baseline_max_abs_error_km=err_naive)

    print(markdown_table(rows, ["case", "items_per_s", "baseline", "baseline_items_per_s", "time_ratio_vs_baseline"]))
    print(f"\nlabel-smoothing matrix: {t_fast * 1e3:.2f} ms per batch (naive {t_naive * 1e3:.2f} ms); "
          f"float32 max error {err_fast * 1000:.1f} m (naive {err_naive * 1000:.1f} m)")
    payload = {"environment": environment(("numpy", "torch", "scikit-learn", "geocell")), "results": rows}
    path = write_results("geodesy", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
