"""Start-up cost: `import geocell` and `cli.py --help` against a bare interpreter, in one run.

Run: python benchmarks/bench_startup.py [--repeat 7]

Each case is a fresh `python` process; the baseline is `python -c pass` (interpreter start-up,
which depends on the environment's site-packages). Budgets: import geocell <= 0.3 s and
cli.py --help <= 0.5 s, both including interpreter start-up; also reports whether torch or
geopandas were imported (they must not be). Writes benchmarks/results/startup.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.common import environment, markdown_table, write_results  # noqa: E402

CASES = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "import geocell": [sys.executable, "-c", "import geocell"],
    "cli.py --help": [sys.executable, str(ROOT / "cli.py"), "--help"],
}
CHECK = "import sys, geocell, cli; cli.build_parser(); print(sorted(m for m in ('torch', 'timm', 'geopandas', 'shapely') if m in sys.modules))"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    rows = []
    for name, cmd in CASES.items():
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
        rows.append({"case": name, "median_s": statistics.median(times), "min_s": min(times)})
    base = rows[0]["median_s"]
    for row in rows:
        row["over_baseline_s"] = row["median_s"] - base
    heavy = subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, check=True, capture_output=True, text=True).stdout.strip()
    print(markdown_table(rows, ["case", "median_s", "min_s", "over_baseline_s"]))
    print(f"heavy modules imported by geocell + cli parser: {heavy}")
    payload = {"environment": environment(("numpy",)), "results": rows, "heavy_modules_imported": heavy,
               "budget_s": {"import geocell": 0.3, "cli.py --help": 0.5}}
    print(f"wrote {write_results('startup', payload)}")
    return payload


if __name__ == "__main__":
    main()
