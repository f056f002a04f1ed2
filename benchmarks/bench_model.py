"""GeoModel speed and the measured choices of heads/, in one run.

Run: python benchmarks/bench_model.py [--rounds 7] [--quick]

Sections
  1. speed: forward+backward images/s of GeoModel with all four heads (tf_efficientnet_lite0,
     64 px, batch 64, 1,000 cells with a sparse cell -> 200 countries / 3,000 admin-1 hierarchy,
     200 countries, 250 anchors) against the bare backbone on the same batches (baseline);
     once with a trivial scalar per head output, once with the real losses (haversine smoothing
     over the 1,000 cells, cross-entropy, geodesic, clipped distance with all pairs balanced).
     Rounds interleave the cases (other processes share these 2 cores); the table gives the
     median over rounds and the best round. Because the difference of two noisy wall times is
     noisier still, the heads are also timed alone (forward+backward on fixed backbone features)
     and, once more, in CPU time of a single thread, against the bare backbone likewise.
  2. hierarchy layout: marginalising (B=64) cell probabilities to countries and admin-1 units,
     forward+backward, dense against sparse COO buffers, at 1,000 and 10,000 cells.
  3. location from cells: the default of GeoModel.predict. Synthetic check: 1,000 cell centroids
     and 4,000 test points drawn around 60 random hubs (800 km spread); a simulated model gives
     each cell the logit log((1 - m) exp(-(d(x, g) - d_min) / T) + m exp(-(d(x', g) - d'_min) / T))
     + sigma * N(0, 1), i.e. probabilities decaying with distance from the true point x at
     temperature T, with logit noise sigma and, with weight m, a second mode at another random
     point x'. Compared: best cell centroid; probability-weighted spherical mean of the top k
     cells (all of them, and only those within a radius of the best cell: 2,500 km is the
     default; other k and radii for comparison); median km error and mean GeoGuessr score per
     setting, and the mean over settings.
  4. distance localisation: weighted multilateration against the nearest anchor, from predicted
     distances simulated as min(d, clip) * exp(rel * N(0, 1)) + add * N(0, 1), clipped to
     [0, clip], for 250 anchors around the same kind of hubs; and the time per batch of 64.
Writes benchmarks/results/model.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    environment,
    markdown_table,
    peak_rss_mb,
    time_call,
    write_results,
)
from geocell import destination, geoguessr_score, haversine, haversine_matrix  # noqa: E402

HEADS_BUDGET = 0.05


def random_points(n, rng):
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def clustered_points(n, hubs, rng, spread_km=800.0):
    h = rng.integers(0, len(hubs[0]), n)
    lat, lon = destination(hubs[0][h], hubs[1][h], rng.uniform(0, 360, n), np.abs(rng.normal(0, spread_km, n)))
    return np.asarray(lat), np.asarray(lon)


def random_hierarchy(num_cells, num_cols, rng):
    """Row-stochastic (cells, cols) scipy matrix; one cell in ten straddles two columns."""
    import scipy.sparse as sp

    rows = np.arange(num_cells)
    cols = rng.integers(0, num_cols, num_cells)
    extra = rng.choice(num_cells, num_cells // 10, replace=False)
    r = np.r_[rows, extra]
    c = np.r_[cols, (cols[extra] + 1) % num_cols]
    m = sp.csr_matrix((np.ones(len(r)), (r, c)), shape=(num_cells, num_cols))
    return sp.diags(1.0 / np.asarray(m.sum(axis=1)).ravel()) @ m


def interleaved(cases, rounds, repeat):
    """{name: [round medians]} with the cases interleaved in every round."""
    times = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            times[name].append(time_call(fn, repeat=repeat, warmup=1))
    return times


# --- 1. speed ---------------------------------------------------------------------------------


def bench_speed(args, rng):
    import torch

    from heads import Backbone, GeoModel, create_head
    from losses import ClippedDistanceLoss, GeodesicLoss, HaversineSmoothingLoss

    num_cells, num_countries, num_admin1, num_anchors = 1000, 200, 3000, 250
    cell_lat, cell_lon = random_points(num_cells, rng)
    anchor_lat, anchor_lon = random_points(num_anchors, rng)
    torch.manual_seed(0)
    backbone = Backbone("tf_efficientnet_lite0")  # offline ImageNet weights, channels_last
    f = backbone.num_features
    model = GeoModel(
        backbone,
        {
            "country": create_head("country", f, countries=num_countries),
            "cell": create_head(
                "cell", f, num_cells=num_cells, cell_lat=cell_lat, cell_lon=cell_lon,
                cell_to_country=random_hierarchy(num_cells, num_countries, rng),
                cell_to_admin1=random_hierarchy(num_cells, num_admin1, rng),
            ),
            "latlon": create_head("latlon", f),
            "distance": create_head("distance", f, anchor_lat=anchor_lat, anchor_lon=anchor_lon),
        },
    ).train()
    batches = [torch.randn(args.batch, 3, args.size, args.size) for _ in range(3)]
    lat, lon = (torch.tensor(v, dtype=torch.float32) for v in random_points(args.batch, rng))
    country = torch.randint(0, num_countries, (args.batch,))
    smoothing = HaversineSmoothingLoss(cell_lat, cell_lon)
    geodesic = GeodesicLoss()
    distance = ClippedDistanceLoss.from_head(model.heads["distance"])
    state = {"i": 0}

    def next_batch():
        state["i"] = (state["i"] + 1) % len(batches)
        return batches[state["i"]]

    def bare():
        model.zero_grad(set_to_none=True)
        model.backbone(next_batch()).mean().backward()

    def heads_trivial():
        model.zero_grad(set_to_none=True)
        out = model(next_batch())
        total = (
            out["country"].logits.mean() + out["cell"].logits.mean() + out["cell"].country_probs.mean()
            + out["cell"].admin1_probs.mean() + out["latlon"].xyz.mean()
            + out["distance"].distance_km.mean() + out["distance"].self_distance_km.mean()
        )
        total.backward()

    def heads_losses():
        model.zero_grad(set_to_none=True)
        out = model(next_batch())
        total = (
            torch.nn.functional.cross_entropy(out["country"].logits, country)
            + smoothing(out["cell"].logits, lat, lon)
            + geodesic(out["latlon"], lat, lon) / 1000.0
            + distance(out["distance"], lat, lon)
        )
        total.backward()

    cases = {
        "bare backbone (baseline)": bare,
        "GeoModel, all heads": heads_trivial,
        "GeoModel, all heads + losses": heads_losses,
    }
    times = interleaved(cases, args.rounds, repeat=2)
    base = statistics.median(times["bare backbone (baseline)"])
    base_best = min(times["bare backbone (baseline)"])
    rows = []
    for name, ts in times.items():
        med, best = statistics.median(ts), min(ts)
        rows.append(
            {
                "case": name,
                "images_per_s": args.batch / med,
                "best_round_images_per_s": args.batch / best,
                "ms_per_batch": med * 1e3,
                "overhead_vs_bare": med / base - 1.0,
                "overhead_best_rounds": best / base_best - 1.0,
            }
        )
    # heads alone on fixed features: the part that is ours, without backbone noise
    with torch.no_grad():
        feats = model.backbone(batches[0])
    feats.requires_grad_(True)

    def heads_only():
        model.zero_grad(set_to_none=True)
        out = {name: head(feats) for name, head in model.heads.items()}
        (out["country"].logits.mean() + out["cell"].logits.mean() + out["cell"].country_probs.mean()
         + out["cell"].admin1_probs.mean() + out["latlon"].xyz.mean() + out["distance"].distance_km.mean()
         + out["distance"].self_distance_km.mean()).backward()

    heads_ms = statistics.median([time_call(heads_only, repeat=5) for _ in range(5)]) * 1e3

    # the same ratio in CPU time of one thread (time.thread_time), which other processes on the
    # machine disturb far less than wall time
    def cpu_ms(fn, repeat):
        fn()
        samples = []
        for _ in range(repeat):
            t0 = time.thread_time()
            fn()
            samples.append(time.thread_time() - t0)
        return statistics.median(samples) * 1e3

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        bare_cpu = cpu_ms(bare, 3)
        heads_cpu = cpu_ms(heads_only, 9)
    finally:
        torch.set_num_threads(threads)
    bare_ms = statistics.median(times["bare backbone (baseline)"]) * 1e3
    return {
        "config": {
            "backbone": "tf_efficientnet_lite0", "image_px": args.size, "batch": args.batch,
            "cells": num_cells, "countries": num_countries, "admin1": num_admin1, "anchors": num_anchors,
            "channels_last": True, "mode": "train", "torch_threads": torch.get_num_threads(),
        },
        "rows": rows,
        "heads_alone_fwd_bwd_ms": heads_ms,
        "heads_alone_fraction_of_bare": heads_ms / bare_ms,
        "one_thread_cpu_ms": {"bare backbone": bare_cpu, "heads alone": heads_cpu},
        "one_thread_heads_fraction_of_bare": heads_cpu / bare_cpu,
        "budget": HEADS_BUDGET,
    }


# --- 2. hierarchy layout ----------------------------------------------------------------------


def bench_hierarchy(args, rng):
    import torch

    from heads import CellHead

    rows = []
    for num_cells, num_countries, num_admin1 in ((1000, 200, 3000), (10000, 230, 4596)):
        lat, lon = random_points(num_cells, rng)
        to_country = random_hierarchy(num_cells, num_countries, rng)
        to_admin1 = random_hierarchy(num_cells, num_admin1, rng)
        heads = {
            layout: CellHead(64, num_cells, lat, lon, to_country, to_admin1, hierarchy_layout=layout)
            for layout in ("dense", "sparse")
        }
        logits = torch.randn(64, num_cells, requires_grad=True)

        def run(head):
            def fn():
                country, admin1 = head.marginalise(logits.softmax(-1))
                (country.sum() + admin1.sum()).backward()
            return fn

        times = interleaved({k: run(h) for k, h in heads.items()}, max(3, args.rounds // 2), repeat=5)
        dense, sparse = statistics.median(times["dense"]), statistics.median(times["sparse"])
        rows.append(
            {
                "cells": num_cells, "countries": num_countries, "admin1": num_admin1,
                "dense_ms": dense * 1e3, "sparse_ms": sparse * 1e3, "dense_over_sparse": dense / sparse,
            }
        )
    return {"rows": rows}


# --- 3. location from cells -------------------------------------------------------------------


def bench_location(args, rng):
    import torch

    from heads import DEFAULT_LOCATION_K, DEFAULT_LOCATION_RADIUS_KM, top_cells_mean

    hubs = random_points(60, rng)
    hubs = (np.clip(hubs[0], -65, 65), hubs[1])
    n_points = 1000 if args.quick else 4000
    g_lat, g_lon = clustered_points(1000, hubs, rng)
    x_lat, x_lon = clustered_points(n_points, hubs, rng)
    o_lat, o_lon = clustered_points(n_points, hubs, rng)
    d = haversine_matrix(x_lat, x_lon, g_lat, g_lon)
    d_other = haversine_matrix(o_lat, o_lon, g_lat, g_lon)
    gl, gn = torch.tensor(g_lat), torch.tensor(g_lon)
    methods = {
        "best_cell": dict(k=1, max_km=None),
        "top_cells_mean k=5, all": dict(k=5, max_km=None),
        "top_cells_mean k=10, all": dict(k=10, max_km=None),
        f"top_cells_mean k={DEFAULT_LOCATION_K}, within {DEFAULT_LOCATION_RADIUS_KM:.0f} km (default)": dict(
            k=DEFAULT_LOCATION_K, max_km=DEFAULT_LOCATION_RADIUS_KM
        ),
        f"k=5, within {DEFAULT_LOCATION_RADIUS_KM:.0f} km": dict(k=5, max_km=DEFAULT_LOCATION_RADIUS_KM),
        f"k=20, within {DEFAULT_LOCATION_RADIUS_KM:.0f} km": dict(k=20, max_km=DEFAULT_LOCATION_RADIUS_KM),
        "k=10, within 1000 km": dict(k=10, max_km=1000.0),
        "k=10, within 1500 km": dict(k=10, max_km=1500.0),
        "k=10, within 3500 km": dict(k=10, max_km=3500.0),
    }
    rows = []
    for temperature in (100.0, 300.0, 1000.0):
        for sigma in (0.5, 1.5):
            for second in (0.0, 0.4):
                near = np.exp(-(d - d.min(1, keepdims=True)) / temperature)
                other = np.exp(-(d_other - d_other.min(1, keepdims=True)) / temperature)
                logits = np.log((1 - second) * near + second * other + 1e-30) + sigma * rng.standard_normal(d.shape)
                probs = torch.softmax(torch.tensor(logits), dim=-1)
                row = {"T_km": temperature, "sigma": sigma, "second_mode": second}
                for name, kw in methods.items():
                    lat, lon = top_cells_mean(probs, gl, gn, **kw)
                    err = haversine(lat.numpy(), lon.numpy(), x_lat, x_lon)
                    row[f"{name}: median km"] = float(np.median(err))
                    row[f"{name}: score"] = float(np.mean(geoguessr_score(err)))
                rows.append(row)
    default = next(n for n in methods if "default" in n)
    wins = sum(r[f"{default}: median km"] < r["best_cell: median km"] and r[f"{default}: score"] > r["best_cell: score"] for r in rows)
    summary = [
        {"method": m, "mean score": float(np.mean([r[f"{m}: score"] for r in rows])),
         "mean of median km": float(np.mean([r[f"{m}: median km"] for r in rows]))}
        for m in methods
    ]
    return {"methods": list(methods), "rows": rows, "summary": summary,
            "default_beats_best_cell_in": f"{wins}/{len(rows)} settings"}


# --- 4. distance localisation -----------------------------------------------------------------


def bench_distance_localisation(args, rng):
    import torch

    from heads import multilaterate, nearest_anchor

    clip = 1110.0
    hubs = random_points(60, rng)
    hubs = (np.clip(hubs[0], -65, 65), hubs[1])
    a_lat, a_lon = clustered_points(250, hubs, rng)
    n_points = 500 if args.quick else 2000
    x_lat, x_lon = clustered_points(n_points, hubs, rng)
    d = haversine_matrix(x_lat, x_lon, a_lat, a_lon)
    al, ao = torch.tensor(a_lat), torch.tensor(a_lon)
    rows = []
    for rel, add in ((0.0, 0.0), (0.05, 20.0), (0.15, 20.0), (0.15, 100.0), (0.3, 100.0)):
        noisy = np.clip(np.minimum(d, clip) * np.exp(rel * rng.standard_normal(d.shape)) + add * rng.standard_normal(d.shape), 0, clip)
        p = torch.tensor(noisy)
        row = {"relative_noise": rel, "additive_noise_km": add}
        for name, fn in (("nearest_anchor", lambda: nearest_anchor(p, al, ao)),
                         ("multilateration", lambda: multilaterate(p, al, ao, clip_km=clip))):
            lat, lon = fn()
            err = haversine(lat.numpy(), lon.numpy(), x_lat, x_lon)
            row[f"{name}: median km"] = float(np.median(err))
            row[f"{name}: score"] = float(np.mean(geoguessr_score(err)))
        rows.append(row)
    p64 = torch.tensor(np.minimum(d[:64], clip), dtype=torch.float32)
    ms = statistics.median([time_call(lambda: multilaterate(p64, al, ao, clip_km=clip), repeat=3) for _ in range(3)]) * 1e3
    return {"rows": rows, "multilateration_ms_per_64": ms}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="smaller synthetic checks (for a smoke run)")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args(argv)
    import torch

    rng = np.random.default_rng(0)
    start = time.perf_counter()
    load = [os.getloadavg()[0]]
    payload = {"benchmark": "model"}
    if not args.skip_speed:
        payload["speed"] = bench_speed(args, rng)
        load.append(os.getloadavg()[0])
    payload["hierarchy_layout"] = bench_hierarchy(args, rng)
    payload["location_from_cells"] = bench_location(args, rng)
    payload["distance_localisation"] = bench_distance_localisation(args, rng)
    load.append(os.getloadavg()[0])
    payload["load_average_1min"] = load
    payload["seconds"] = time.perf_counter() - start
    payload["peak_rss_mb"] = peak_rss_mb()
    payload["environment"] = environment(("numpy", "torch", "timm", "scipy"))

    print(f"torch threads {torch.get_num_threads()}, load average during the run {load}")
    if "speed" in payload:
        sp_ = payload["speed"]
        print(f"\n1. forward+backward, {sp_['config']}")
        print(markdown_table(sp_["rows"], ["case", "images_per_s", "best_round_images_per_s", "ms_per_batch",
                                           "overhead_vs_bare", "overhead_best_rounds"]))
        print(f"heads alone on fixed features, forward+backward: {sp_['heads_alone_fwd_bwd_ms']:.2f} ms per batch"
              f" = {sp_['heads_alone_fraction_of_bare']:.1%} of the bare backbone's median"
              f" (budget: heads <= {HEADS_BUDGET:.0%})")
        cpu = sp_["one_thread_cpu_ms"]
        print(f"one thread, CPU time: bare backbone {cpu['bare backbone']:.0f} ms, heads alone"
              f" {cpu['heads alone']:.1f} ms = {sp_['one_thread_heads_fraction_of_bare']:.1%}")
    print("\n2. hierarchy marginalisation, B=64, forward+backward")
    print(markdown_table(payload["hierarchy_layout"]["rows"],
                         ["cells", "countries", "admin1", "dense_ms", "sparse_ms", "dense_over_sparse"]))
    loc = payload["location_from_cells"]
    print("\n3. location from cell probabilities (median km / mean GeoGuessr score)")
    cols = ["T_km", "sigma", "second_mode"]
    table = [{**{c: r[c] for c in cols}, **{m: f"{r[f'{m}: median km']:.0f} / {r[f'{m}: score']:.0f}" for m in loc["methods"]}} for r in loc["rows"]]
    print(markdown_table(table, cols + loc["methods"]))
    print(markdown_table(loc["summary"], ["method", "mean score", "mean of median km"]))
    print(f"default beats best_cell (median and score) in {loc['default_beats_best_cell_in']}")
    dist = payload["distance_localisation"]
    print("\n4. localisation from predicted distances (median km / mean GeoGuessr score)")
    table = [{"relative_noise": r["relative_noise"], "additive_noise_km": r["additive_noise_km"],
              **{m: f"{r[f'{m}: median km']:.0f} / {r[f'{m}: score']:.0f}" for m in ("nearest_anchor", "multilateration")}}
             for r in dist["rows"]]
    print(markdown_table(table, ["relative_noise", "additive_noise_km", "nearest_anchor", "multilateration"]))
    print(f"multilateration: {dist['multilateration_ms_per_64']:.1f} ms per batch of 64 (250 anchors)")
    path = write_results("model", payload)
    print(f"\nwrote {path} ({payload['seconds']:.0f} s, peak RSS {payload['peak_rss_mb']:.0f} MB)")
    return payload


if __name__ == "__main__":
    main()
