"""S2 cell-id throughput: geocell.s2 (numpy) against s2sphere (pure Python), in one run.

Run: python benchmarks/bench_s2.py [--points 100000] [--baseline-points 20000] [--repeat 7]

Measures points/s of
  * lat/lon -> cell id at level 10 and 30: geocell.s2.s2_cell_ids against
    s2sphere ``CellId.from_lat_lng(LatLng.from_degrees(lat, lon)).parent(level)``;
  * cell id -> centre lat/lon (level 10): s2_cell_center against ``CellId(id).to_lat_lng()``;
  * cell id -> token and back (level 10): s2_cell_id_to_token / s2_token_to_cell_id against
    ``CellId(id).to_token()`` / ``CellId.from_token(token)``.
geocell runs on all points (seeded, uniform on the sphere); s2sphere, about 40x slower, runs on
the first ``--baseline-points`` of them and its rate is extrapolated (its per-point cost does
not depend on the number of points). Ids, tokens and centres are checked to agree on that
subset. The speed-up is the ratio of the two rates. Writes benchmarks/results/s2.json.
"""

from __future__ import annotations

import argparse
import sys
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
from geocell.s2 import (  # noqa: E402
    s2_cell_center,
    s2_cell_id_to_token,
    s2_cell_ids,
    s2_token_to_cell_id,
)


def random_points(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` seeded points uniform on the sphere: (lat, lon) degrees."""
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n))), rng.uniform(-180.0, 180.0, n)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000, help="points for geocell (default 1e5)")
    parser.add_argument("--baseline-points", type=int, default=20_000, help="subset for s2sphere (default 2e4)")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs of geocell (median); s2sphere gets 3")
    parser.add_argument("--out-dir", type=Path, default=None, help="results directory (default benchmarks/results)")
    args = parser.parse_args(argv)
    import s2sphere

    n, m = args.points, min(args.baseline_points, args.points)
    lat, lon = random_points(n)
    sub_lat, sub_lon = lat[:m].tolist(), lon[:m].tolist()
    rows = []

    def add(case: str, seconds: float, baseline_seconds: float, identical: bool, **extra) -> None:
        ours = n / seconds
        theirs = m / baseline_seconds
        rows.append(
            {
                "case": case,
                "points": n,
                "points_per_s": ours,
                "baseline": f"s2sphere {s2sphere_version}",
                "baseline_points": m,
                "baseline_points_per_s": theirs,
                "baseline_extrapolated": m < n,
                "speedup": ours / theirs,
                "identical_on_subset": identical,
                **extra,
            }
        )

    from importlib import metadata

    s2sphere_version = metadata.version("s2sphere")
    for level in (10, 30):
        t_ours = time_call(lambda: s2_cell_ids(lat, lon, level), args.repeat)

        def baseline_ids():
            return [
                s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(a, b)).parent(level).id()
                for a, b in zip(sub_lat, sub_lon)
            ]

        t_base = time_call(baseline_ids, repeat=3)
        identical = bool((s2_cell_ids(lat[:m], lon[:m], level) == np.array(baseline_ids(), np.uint64)).all())
        add(f"lat/lon -> cell id, level {level}", t_ours, t_base, identical)

    ids = s2_cell_ids(lat, lon, 10)
    sub_ids = ids[:m].tolist()
    t_ours = time_call(lambda: s2_cell_center(ids), args.repeat)

    def baseline_centers():
        return [s2sphere.CellId(i).to_lat_lng() for i in sub_ids]

    t_base = time_call(baseline_centers, repeat=3)
    ref = baseline_centers()
    c_lat, c_lon = s2_cell_center(ids[:m])
    d_lat = np.abs(c_lat - np.array([p.lat().degrees for p in ref]))
    d_lon = np.abs(c_lon - np.array([p.lng().degrees for p in ref])) % 360.0
    max_err = float(max(d_lat.max(), np.minimum(d_lon, 360.0 - d_lon).max()))
    add("cell id -> centre lat/lon, level 10", t_ours, t_base, max_err < 1e-9, max_abs_error_deg=max_err)

    t_ours = time_call(lambda: s2_cell_id_to_token(ids), args.repeat)

    def baseline_tokens():
        return [s2sphere.CellId(i).to_token() for i in sub_ids]

    t_base = time_call(baseline_tokens, repeat=3)
    add("cell id -> token, level 10", t_ours, t_base, s2_cell_id_to_token(ids[:m]).tolist() == baseline_tokens())

    tokens = s2_cell_id_to_token(ids)
    sub_tokens = tokens[:m].tolist()
    t_ours = time_call(lambda: s2_token_to_cell_id(tokens), args.repeat)

    def baseline_from_tokens():
        return [s2sphere.CellId.from_token(t).id() for t in sub_tokens]

    t_base = time_call(baseline_from_tokens, repeat=3)
    identical = s2_token_to_cell_id(tokens[:m]).tolist() == baseline_from_tokens()
    add("token -> cell id, level 10", t_ours, t_base, identical)

    print(
        markdown_table(
            rows, ["case", "points_per_s", "baseline_points_per_s", "speedup", "identical_on_subset"]
        )
    )
    print(
        f"\ngeocell on {n:,} seeded points (median of {args.repeat}); s2sphere on the first {m:,} "
        f"(median of 3){', rate extrapolated' if m < n else ''}. speedup = geocell rate / s2sphere rate."
    )
    payload = {
        "environment": environment(("numpy", "s2sphere", "geocell")),
        "settings": {"points": n, "baseline_points": m, "repeat": args.repeat, "seed": 0},
        "peak_rss_mb": peak_rss_mb(),
        "results": rows,
    }
    path = write_results("s2", payload, args.out_dir)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
