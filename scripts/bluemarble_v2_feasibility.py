"""Feasibility estimate for bluemarble-v2: how many independent held-out regions fit, and what 95%
interval (cluster bootstrap over regions) they give for test country top-1 and median km.

Run:  python scripts/bluemarble_v2_feasibility.py                       # capacity + kNN designs
      python scripts/bluemarble_v2_feasibility.py --skip-capacity --skip-designs \\
          --predictions runs/region-bluemarble-v2/predictions.csv --data bluemarble-v2

Three parts (each can be skipped), printed as markdown tables and written to ``--json``:

1. **Capacity** (points only, no images). The pool of bluemarble-v2's definition (300,000 points;
   ``--pool``) is seeded greedily with held-out regions by the rule of
   :func:`geocell_engine.data.splits.spatial_split` (seeds in a seeded random order, at least
   ``2 * region_km + buffer_km`` apart, a seed skipped if its region plus buffer would leave a
   country with less than ``1 - max_label_loss`` of its pool points for training) until no seed
   is left. Reported per footprint / buffer / region radius: the number of regions, the countries
   they fall in, the pool points still eligible for training (>= buffer from every held-out
   point), and the countries among those (training keeps every country when it equals the
   pool's). The buffer of a footprint F is ceil(F sqrt(2)): two north-up F x F squares whose
   centres are that far apart cannot overlap.
2. **Designs** (images). Each design is a real split of a pool (``bluemarble_points`` of a spec),
   whose training and test patches are rendered and scored with the repository's kNN
   colour-histogram baseline (cheap; no training). For each: test regions and countries, kNN's
   country top-1 and median km with their cluster-bootstrap intervals, the variance components
   over regions, and the number of test regions the goal needs at that per-region behaviour
   (half-widths scale as 1 / sqrt(regions)).
3. **Predictions** (``--predictions``): the same intervals for a real model's ``predictions.csv``
   (from ``train`` or ``evaluate --dump``) on a bluemarble version; region ids come from the
   version's definition (v1's manifests do not record them; ``bluemarble_points`` recomputes them).

Interval arithmetic (written out here; the engine's report will use the shared
``geocell_engine.evaluation.intervals`` module once merged): B resamples (``--boot``, default
2000, seed 0) of the R test regions with replacement; each resample's country top-1 is the hit
rate over all patches of the drawn regions (a region drawn twice counts twice) and its median km
the weighted median of their errors; the 95% interval is the 2.5th-97.5th percentile and the
half-width is half its length (for the median also relative to the point estimate). Goal
(issue 17): half-width <= 3 points for top-1 and <= 10% for the median.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from geocell.constants import EARTH_RADIUS_KM  # noqa: E402
from geocell.geodesy import haversine, latlon_to_xyz  # noqa: E402
from geocell_engine.data import bluemarble as bm  # noqa: E402

GOAL_TOP1_POINTS = 3.0
GOAL_MEDIAN_REL = 0.10
Z95 = 1.959964


# --------------------------------------------------------------------------- interval arithmetic
def cluster_bootstrap(hit: np.ndarray, err_km: np.ndarray, region: np.ndarray, *, boot: int = 2000,
                      seed: int = 0) -> dict[str, float]:
    """Percentile cluster bootstrap over regions of country top-1 and median km.

    Args:
        hit: ``(N,)`` 1.0 where the top-1 country is right, else 0.0.
        err_km: ``(N,)`` great-circle errors, km.
        region: ``(N,)`` region id of each patch (the resampled unit).
        boot: number of resamples; seed: their RNG seed.

    Returns:
        ``regions``, ``n``, ``top1`` (fraction), ``top1_lo``/``top1_hi``, ``top1_hw_points``
        (half-width in percentage points), ``median_km``, ``median_lo``/``median_hi`` (km),
        ``median_hw_rel`` (half-width / median).
    """
    hit = np.asarray(hit, dtype=np.float64)
    err_km = np.asarray(err_km, dtype=np.float64)
    _, inv = np.unique(np.asarray(region), return_inverse=True)
    n_regions = int(inv.max()) + 1
    rng = np.random.default_rng(seed)
    counts = np.bincount(inv, minlength=n_regions).astype(np.float64)
    hits = np.bincount(inv, weights=hit, minlength=n_regions)
    order = np.argsort(err_km, kind="stable")
    sorted_err, sorted_region = err_km[order], inv[order]
    top1 = np.empty(boot)
    median = np.empty(boot)
    for start in range(0, boot, 250):  # (250, N) weights at a time bounds the memory
        b = min(250, boot - start)
        mult = np.stack([np.bincount(rng.integers(0, n_regions, n_regions), minlength=n_regions) for _ in range(b)])
        mult = mult.astype(np.float64)
        top1[start:start + b] = (mult @ hits) / (mult @ counts)
        w = np.cumsum(mult[:, sorted_region], axis=1)
        median[start:start + b] = sorted_err[np.argmax(w >= w[:, -1:] / 2.0, axis=1)]
    t_lo, t_hi = np.percentile(top1, [2.5, 97.5])
    m_lo, m_hi = np.percentile(median, [2.5, 97.5])
    med = float(np.median(err_km))
    return {
        "regions": n_regions, "n": int(hit.size), "top1": float(hit.mean()), "top1_lo": float(t_lo),
        "top1_hi": float(t_hi), "top1_hw_points": float(50.0 * (t_hi - t_lo)), "median_km": med,
        "median_lo": float(m_lo), "median_hi": float(m_hi), "median_hw_rel": float((m_hi - m_lo) / 2.0 / med),
    }


def variance_components(y: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """One-way ANOVA (method of moments) of a 0/1 outcome over regions.

    Returns ``between`` (variance of the regions' true means), ``within`` (within a region) and
    ``icc`` = between / (between + within). The variance of a cluster mean over R regions of m
    patches is about (between + within / m) / R, so once ``within / m`` is small against
    ``between`` more patches per region do not narrow the interval: only more regions do.
    """
    _, inv = np.unique(np.asarray(region), return_inverse=True)
    r = int(inv.max()) + 1
    n = np.bincount(inv, minlength=r).astype(np.float64)
    total = n.sum()
    means = np.bincount(inv, weights=y, minlength=r) / n
    msw = float(((y - means[inv]) ** 2).sum() / max(total - r, 1))
    msb = float((n * (means - y.mean()) ** 2).sum() / max(r - 1, 1))
    n0 = (total - (n**2).sum() / total) / max(r - 1, 1)
    between = max((msb - msw) / n0, 0.0)
    return {"between": between, "within": msw, "icc": between / (between + msw) if between + msw > 0 else 0.0}


def regions_needed(result: dict[str, float]) -> dict[str, int]:
    """Test regions for the goal at the measured per-region behaviour (half-width ~ 1/sqrt(R))."""
    r = result["regions"]
    return {
        "top1": math.ceil(r * (result["top1_hw_points"] / GOAL_TOP1_POINTS) ** 2),
        "median": math.ceil(r * (result["median_hw_rel"] / GOAL_MEDIAN_REL) ** 2),
    }


def summarise(hit: np.ndarray, err_km: np.ndarray, region: np.ndarray, boot: int) -> dict[str, Any]:
    """Bootstrap intervals, variance components (top-1 hits; errors below the median) and regions needed."""
    res: dict[str, Any] = cluster_bootstrap(hit, err_km, region, boot=boot)
    res["components_top1"] = variance_components(hit, region)
    res["components_below_median"] = variance_components((err_km <= np.median(err_km)).astype(np.float64), region)
    res["regions_needed"] = regions_needed(res)
    res["goal_met"] = {"top1": res["top1_hw_points"] <= GOAL_TOP1_POINTS, "median": res["median_hw_rel"] <= GOAL_MEDIAN_REL}
    return res


# --------------------------------------------------------------------------- 1. capacity
def _chord(km: float) -> float:
    return 2.0 * math.sin(min(km / EARTH_RADIUS_KM, math.pi) / 2.0)


def capacity(pool: bm.BlueMarblePool, *, buffer_km: float, region_km: float, max_label_loss: float,
             seed: int = 0) -> dict[str, Any]:
    """Greedy exhaustion of held-out regions by spatial_split's seeding rule (see the module doc)."""
    from scipy.spatial import cKDTree

    lat, lon = pool.lat, pool.lon
    names, lid = np.unique(pool.adm0_a3, return_inverse=True)
    total = np.bincount(lid, minlength=names.size)
    left = total.astype(np.float64)
    floor = (1.0 - max_label_loss) * total
    xyz = latlon_to_xyz(lat, lon)
    tree = cKDTree(xyz)
    n = lat.size
    order = np.random.default_rng(seed).permutation(n)
    spacing, reach_c, member_c = _chord(2 * region_km + buffer_km + 1e-3), _chord(region_km + buffer_km + 1e-3), _chord(region_km)
    reached = np.zeros(n, dtype=bool)
    seeds: list[int] = []
    seed_tree, recent = None, []
    for c in order.tolist():
        if recent and np.any(np.sqrt(((np.asarray(recent) - xyz[c]) ** 2).sum(axis=1)) < spacing):
            continue
        if seed_tree is not None and seed_tree.query_ball_point(xyz[c], spacing, return_length=True):
            continue
        if max_label_loss < 1.0:
            if not reached[c] and left[lid[c]] - 1 < floor[lid[c]]:
                continue  # its own country is at its floor already
            reach = np.asarray(tree.query_ball_point(xyz[c], reach_c), dtype=np.int64)
            reach = reach[~reached[reach]]
            loss = np.bincount(lid[reach], minlength=names.size)
            if np.any((loss > 0) & (left - loss < floor)):
                continue
            reached[reach] = True
            left -= loss
        seeds.append(c)
        recent.append(xyz[c])
        if len(recent) >= 128:
            seed_tree, recent = cKDTree(xyz[seeds]), []
    held = np.zeros(n, dtype=bool)
    members = tree.query_ball_point(xyz[seeds], member_c)
    sizes = np.array([len(m) for m in members])
    for m in members:
        held[m] = True
    dist, _ = cKDTree(xyz[held]).query(xyz[~held], distance_upper_bound=_chord(buffer_km + 1e-3))
    eligible = np.flatnonzero(~held)[~np.isfinite(dist)]
    return {
        "regions": len(seeds),
        "countries_with_region": int(np.unique(pool.adm0_a3[held]).size),
        "members_median": float(np.median(sizes)),
        "regions_with_10_members": int((sizes >= 10).sum()),
        "train_eligible_points": int(eligible.size),
        "train_eligible_share": float(eligible.size / n),
        "countries_in_pool": int(names.size),
        "countries_train_eligible": int(np.unique(pool.adm0_a3[eligible]).size),
    }


CAPACITY_OPTIONS: Sequence[tuple[float, float, float, float]] = (
    # footprint km, buffer km, region radius km, max_label_loss
    (256, 363, 150, 0.9), (256, 363, 75, 0.9), (256, 363, 30, 0.9), (256, 363, 75, 0.5),
    (128, 182, 75, 0.9), (128, 182, 40, 0.9), (128, 182, 30, 0.9), (128, 182, 15, 0.9), (128, 182, 30, 0.5),
)


# --------------------------------------------------------------------------- 2. designs
def _designs() -> list[tuple[str, bm.BlueMarbleSpec]]:
    v1, v2 = bm.BLUEMARBLE_V1, bm.BLUEMARBLE_V2
    return [
        ("v1 (256 km / 363 km, r 150 km, <= 50 per region)", v1),
        ("256 km / 363 km, r 75 km, <= 20 per region", replace(
            v1, name="design-256-r75", pool_size=300_000, region_km=75.0, per_region=20, sizes=(20_000, 1_000, 2_000))),
        ("128 km / 182 km, r 40 km, <= 10 per region", replace(
            v2, name="design-128-r40", region_km=40.0, region_column=False)),
        ("v2 (128 km / 182 km, r 30 km, <= 10 per region)", v2),
    ]


def run_design(label: str, spec: bm.BlueMarbleSpec, boot: int, pools: dict) -> dict[str, Any]:
    """Split, render train + test, score kNN colour histograms, bootstrap over test regions."""
    from geocell_engine.data.render import load_map, render_patches
    from geocell_engine.evaluation.baselines import knn_colour_baseline

    start = time.perf_counter()
    key = (spec.pool_size, spec.seed, spec.draw_block, spec.min_population, spec.population_power, spec.jitter_km)
    if key not in pools:
        pools[key] = bm.bluemarble_pool(spec)
    pts = bm.bluemarble_points(spec, pools[key])
    world = load_map("bmng")
    tr, te = pts.split == "train", pts.split == "test"
    train_img = render_patches(world, pts.lat[tr], pts.lon[tr], footprint_km=spec.footprint_km, size=spec.patch_px)
    test_img = render_patches(world, pts.lat[te], pts.lon[te], footprint_km=spec.footprint_km, size=spec.patch_px)
    pred = knn_colour_baseline(train_img, pts.lat[tr], pts.lon[tr], pts.adm0_a3[tr],
                               test_img, pts.lat[te], pts.lon[te], pts.adm0_a3[te])
    hit = (pred.pred_country == pts.adm0_a3[te]).astype(np.float64)
    err = haversine(pts.lat[te], pts.lon[te], pred.pred_lat, pred.pred_lon)
    out = summarise(hit, err, pts.region[te], boot)
    out.update(design=label, spec=spec.to_dict(), test_countries=int(np.unique(pts.adm0_a3[te]).size),
               val_regions=int(np.unique(pts.region[pts.split == "val"]).size), seconds=time.perf_counter() - start)
    return out


# --------------------------------------------------------------------------- 3. predictions
def run_predictions(path: Path, data: str, boot: int) -> dict[str, Any]:
    import pandas as pd

    spec = bm.bluemarble_spec(data)
    pts = bm.bluemarble_points(spec)
    region_of = dict(zip(pts.ids.tolist(), pts.region.tolist()))
    frame = pd.read_csv(path, keep_default_na=False)
    ids = frame["id"].astype(np.int64).tolist()
    missing = [i for i in ids if i not in region_of]
    if missing:
        raise SystemExit(f"{path}: ids {missing[:5]} are not points of {data}; pass the --data the run used")
    region = np.array([region_of[i] for i in ids])
    if (region < 0).any():
        raise SystemExit(f"{path}: some rows are training points of {data}; expected a val or test split")
    hit = (frame["true_country"].astype(str) == frame["pred_country"].astype(str)).to_numpy(np.float64)
    err = frame["error_km"].to_numpy(np.float64)
    out = summarise(hit, err, region, boot)
    out.update(predictions=str(path), data=data, countries=int(frame["true_country"].nunique()))
    return out


# --------------------------------------------------------------------------- output
def _fmt_design(r: dict[str, Any]) -> str:
    c = r["components_top1"]
    return (f"| {r.get('design', r.get('predictions'))} | {r['regions']} | {r.get('test_countries', r.get('countries'))} | {r['n']} "
            f"| {100 * r['top1']:.1f} ± {r['top1_hw_points']:.1f} | {r['median_km']:,.0f} ± {100 * r['median_hw_rel']:.0f}% "
            f"| {c['icc']:.2f} | {r['regions_needed']['top1']} | {r['regions_needed']['median']} |")


DESIGN_HEADER = ("| design | test regions | test countries | test patches | country top-1 % ± half-width | median km ± half-width "
                 "| ICC (top-1) | regions for ±3 pts | regions for ±10% |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=bm.BLUEMARBLE_V2.pool_size, help="pool size for the capacity part")
    parser.add_argument("--boot", type=int, default=2000)
    parser.add_argument("--skip-capacity", action="store_true")
    parser.add_argument("--skip-designs", action="store_true")
    parser.add_argument("--predictions", type=Path, action="append", default=[],
                        help="a predictions.csv of a val/test split (repeatable)")
    parser.add_argument("--data", default="bluemarble-v2", help="the bluemarble version of --predictions")
    parser.add_argument("--json", type=Path, default=Path(__file__).resolve().parent.parent / "docs" / "bluemarble_feasibility.json")
    args = parser.parse_args(argv)
    payload: dict[str, Any] = {"goal": {"top1_points": GOAL_TOP1_POINTS, "median_rel": GOAL_MEDIAN_REL}, "boot": args.boot}
    if args.json.is_file():  # keep the parts this run skips
        payload = {**json.loads(args.json.read_text()), **payload}
    pools: dict = {}
    if not args.skip_capacity:
        spec = replace(bm.BLUEMARBLE_V2, pool_size=args.pool)
        start = time.perf_counter()
        pool = bm.bluemarble_pool(spec)
        pools[(spec.pool_size, spec.seed, spec.draw_block, spec.min_population, spec.population_power, spec.jitter_km)] = pool
        rows = []
        print(f"capacity on a pool of {args.pool:,} points ({time.perf_counter() - start:.1f} s to draw)\n")
        print("| footprint km | buffer km | region radius km | max label loss | regions | countries with a region "
              "| members per region (median) | regions with >= 10 | train-eligible pool points | countries eligible / in pool |")
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for footprint, buffer, radius, loss in CAPACITY_OPTIONS:
            t0 = time.perf_counter()
            row = {"footprint_km": footprint, "buffer_km": buffer, "region_km": radius, "max_label_loss": loss,
                   **capacity(pool, buffer_km=buffer, region_km=radius, max_label_loss=loss)}
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            print(f"| {footprint:g} | {buffer:g} | {radius:g} | {loss:g} | {row['regions']} | {row['countries_with_region']} "
                  f"| {row['members_median']:g} | {row['regions_with_10_members']} "
                  f"| {row['train_eligible_points']:,} ({100 * row['train_eligible_share']:.0f}%) "
                  f"| {row['countries_train_eligible']} / {row['countries_in_pool']} |", flush=True)
        payload["capacity"] = {"pool": args.pool, "rows": rows}
    if not args.skip_designs:
        print("\nkNN colour histograms on real splits (cluster bootstrap over test regions)\n")
        print(DESIGN_HEADER)
        results = []
        for label, spec in _designs():
            r = run_design(label, spec, args.boot, pools)
            results.append(r)
            print(_fmt_design(r), flush=True)
        payload["designs"] = results
    if args.predictions:
        print(f"\nmodel predictions on {args.data} (cluster bootstrap over regions)\n")
        print(DESIGN_HEADER.replace("| design |", "| predictions |"))
        results = []
        for path in args.predictions:
            r = run_predictions(path, args.data, args.boot)
            results.append(r)
            print(_fmt_design(r), flush=True)
        payload["predictions"] = results
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"\nwrote {args.json}")
    return payload


if __name__ == "__main__":
    main()
