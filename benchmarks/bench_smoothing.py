"""Haversine label smoothing targets, B=256 x K=10,000 cells, float32: ours against a naive
broadcast haversine, in one run.

Run: python benchmarks/bench_smoothing.py [--batch 256] [--cells 10000] [--rounds 9]

Cases (torch float32 on the CPU, all threads torch uses; numpy float32 as a second set):
  * ours: ``losses.haversine_smoothing_targets`` (``geocell.haversine_matrix``: unit vectors,
    chord by coordinate differences, asin; then in-place min / scale / exp);
  * baseline: the element-wise ``geocell.haversine`` broadcast to (B, K), then the same
    min / scale / exp (what a straightforward implementation does);
  * ``geocell.haversine_matrix`` alone (the part of ours that lives in geocell);
  * proposed: a prototype of an in-place variant of haversine_matrix's chord path (same formula,
    every step in one reused buffer: no fresh 10 MB tensors, which on Linux cost page faults on
    every call); offered for ``geocell.geodesy``, not used by the library.
Each case's error is measured against a float64 evaluation of the same targets.
Timing: rounds interleave the cases (other processes share these 2 cores); each round takes
``time_call``'s median of 5 calls; the table reports the median over rounds and the min, and
the CPU time of one thread (``time.thread_time``, torch limited to one thread), which other
processes disturb far less.
Writes benchmarks/results/smoothing.json.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import environment, markdown_table, time_call, write_results  # noqa: E402
from geocell import EARTH_RADIUS_KM, haversine, haversine_matrix, latlon_to_xyz  # noqa: E402
from losses import haversine_smoothing_targets  # noqa: E402
from losses.smoothing import _EXPONENT_FLOOR, _FLOOR_VALUE  # noqa: E402

TAU_KM = 75.0
TARGET_MS = 10.0


def random_points(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def naive_targets(lat, lon, cell_lat, cell_lon, tau_km=TAU_KM, floor=False):
    """Baseline: broadcast the element-wise haversine to (B, K), then PIGEON's formula
    (``floor=True``: with the same exponent floor as ours, to attribute the speed-up)."""
    d = haversine(lat[:, None], lon[:, None], cell_lat[None, :], cell_lon[None, :])
    if isinstance(d, np.ndarray):
        x = -(d - d.min(axis=1, keepdims=True)) / tau_km
        if floor:
            x = np.maximum(x, _EXPONENT_FLOOR)
        out = np.exp(x)
        if floor:
            out[out <= _FLOOR_VALUE] = 0.0
        return out
    x = -(d - d.amin(dim=1, keepdim=True)) / tau_km
    if floor:
        import torch

        return torch.nn.functional.threshold(x.clamp(min=_EXPONENT_FLOOR).exp(), _FLOOR_VALUE, 0.0)
    return x.exp()


def proposed_targets_torch(lat, lon, cell_lat, cell_lon, tau_km=TAU_KM, radius_km=EARTH_RADIUS_KM):
    """Prototype for geocell.geodesy: haversine_matrix's chord path with in-place steps, then the
    targets, all in the cdist output buffer. Same formula and precision (chord from coordinate
    differences, asin; the rare near-antipode entries recomputed from |a + b|)."""
    import torch

    a, b = latlon_to_xyz(lat, lon), latlon_to_xyz(cell_lat, cell_lon)
    h = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist")  # chord, (B, K)
    h.mul_(0.5).clamp_(0.0, 1.0)
    near_antipode = None
    if bool(h.amax() > 0.999):
        rows, cols = (h > 0.999).nonzero(as_tuple=True)
        anti = a[rows] + b[cols]
        near_antipode = (rows, cols, torch.clamp(anti.norm(dim=-1) * 0.5, 0.0, 1.0))
    h.asin_().mul_(2.0 * radius_km)  # distances, km
    if near_antipode is not None:
        rows, cols, half = near_antipode
        h[rows, cols] = math.pi * radius_km - 2.0 * radius_km * torch.asin(half)
    h.sub_(h.amin(dim=1, keepdim=True)).mul_(-1.0 / tau_km).clamp_(min=_EXPONENT_FLOOR).exp_()
    return torch.nn.functional.threshold_(h, _FLOOR_VALUE, 0.0)


def reference_targets(lat, lon, cell_lat, cell_lon):
    return haversine_smoothing_targets(*(np.asarray(v, dtype=np.float64) for v in (lat, lon, cell_lat, cell_lon)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--cells", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args(argv)
    import torch

    rng = np.random.default_rng(0)
    lat, lon = random_points(args.batch, rng)
    c_lat, c_lon = random_points(args.cells, rng)
    f32 = [v.astype(np.float32) for v in (lat, lon, c_lat, c_lon)]
    t32 = [torch.from_numpy(v) for v in f32]
    reference = reference_targets(lat, lon, c_lat, c_lon)

    cases = {
        "ours: haversine_smoothing_targets (torch f32)": lambda: haversine_smoothing_targets(*t32),
        "baseline: naive broadcast haversine + exp (torch f32)": lambda: naive_targets(*t32),
        "baseline + ours' exponent floor (torch f32)": lambda: naive_targets(*t32, floor=True),
        "geocell.haversine_matrix alone (torch f32)": lambda: haversine_matrix(*t32),
        "proposed: in-place chord path prototype (torch f32)": lambda: proposed_targets_torch(*t32),
        "ours: haversine_smoothing_targets (numpy f32)": lambda: haversine_smoothing_targets(*f32),
        "baseline: naive broadcast haversine + exp (numpy f32)": lambda: naive_targets(*f32),
    }
    errors = {}
    for name, fn in cases.items():
        if "alone" in name:
            continue
        out = fn()
        out = out.numpy() if isinstance(out, torch.Tensor) else out
        errors[name] = float(np.max(np.abs(out.astype(np.float64) - reference)))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            times[name].append(time_call(fn, repeat=5, warmup=1))

    # the same cases in CPU time of one thread (time.thread_time), which other processes on the
    # machine disturb far less than wall time
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu: dict[str, float] = {}
    try:
        for name, fn in cases.items():
            fn()
            samples = []
            for _ in range(7):
                t0 = time.thread_time()
                fn()
                samples.append(time.thread_time() - t0)
            cpu[name] = statistics.median(samples) * 1e3
    finally:
        torch.set_num_threads(threads)

    baseline_torch = statistics.median(times["baseline: naive broadcast haversine + exp (torch f32)"])
    baseline_numpy = statistics.median(times["baseline: naive broadcast haversine + exp (numpy f32)"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        base = baseline_numpy if "numpy" in name else baseline_torch
        rows.append(
            {
                "case": name,
                "median_ms": med * 1e3,
                "min_ms": min(ts) * 1e3,
                "speedup_vs_baseline": base / med,
                "one_thread_cpu_ms": cpu[name],
                "max_abs_target_error": errors.get(name, ""),
            }
        )
    ours_ms = rows[0]["median_ms"]
    payload = {
        "benchmark": "smoothing",
        "shape": [args.batch, args.cells],
        "tau_km": TAU_KM,
        "target_ms": TARGET_MS,
        "ours_median_ms": ours_ms,
        "meets_target": ours_ms <= TARGET_MS,
        "rows": rows,
        "rounds": args.rounds,
        "environment": environment(("numpy", "torch", "scipy")),
    }
    payload["load_average_1min"] = os.getloadavg()[0]
    print(f"haversine smoothing targets, B={args.batch} x K={args.cells}, tau={TAU_KM} km "
          f"(torch threads {torch.get_num_threads()}, load average {payload['load_average_1min']:.2f})")
    print(markdown_table(rows, ["case", "median_ms", "min_ms", "speedup_vs_baseline", "one_thread_cpu_ms", "max_abs_target_error"]))
    print(f"target <= {TARGET_MS} ms per batch: ours {ours_ms:.2f} ms -> {'met' if payload['meets_target'] else 'MISSED'}")
    path = write_results("smoothing", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
