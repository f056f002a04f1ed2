"""Intervals for bluemarble-v1: every baseline (and a trained run, if given) on the test split with
95% cluster-bootstrap intervals over its 68 held-out regions, paired differences, breakdowns by
continent and hemisphere, and calibrated prediction regions (coverage with its interval).

Run: python scripts/intervals_report.py [--run RUN_DIR] [--out docs/intervals_report.md]
                                        [--resamples 2000] [--seed 0] [--device cpu]

Rows, all on the same 2,000 test patches:
  * the run's model (``RUN_DIR/predictions.csv``), when ``--run`` is given;
  * constant: the training points' spherical geometric median;
  * kNN colour histograms (k = 10), as ``train`` computes it;
  * kNN frozen features: ImageNet EfficientNet-Lite0 (offline weights), k = 10, cosine;
  * true-cell centroid (with the run's ``cells.parquet``).
With ``--run`` the regions are calibrated on the validation split at 90% from ``best.pt``'s cell
probabilities, and the coverage-vs-area curve is drawn. Writes the Markdown report, a JSON twin
(``.json`` beside it) and ``coverage_area.png``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def read_predictions(path: Path, name: str):
    """A run's predictions.csv -> Predictions (no probabilities; ids as strings)."""
    import pandas as pd

    from geocell_engine.evaluation.predictions import Predictions

    frame = pd.read_csv(path, dtype={"id": str, "true_country": str, "pred_country": str, "true_admin1": str,
                                     "pred_admin1": str}, keep_default_na=False)
    opt = lambda c, f=None: (frame[c].to_numpy() if f is None else frame[c].to_numpy(f)) if c in frame else None  # noqa: E731
    return Predictions(name, frame.true_lat.to_numpy(float), frame.true_lon.to_numpy(float),
                       frame.pred_lat.to_numpy(float), frame.pred_lon.to_numpy(float),
                       frame.true_country.to_numpy(str), frame.pred_country.to_numpy(str),
                       true_admin1=opt("true_admin1"), pred_admin1=opt("pred_admin1"),
                       true_cell=opt("true_cell", np.int64), pred_cell=opt("pred_cell", np.int64),
                       ids=frame["id"].to_numpy(str))


def main(argv=None) -> None:
    from dataclasses import replace

    from geocell_engine.data.bluemarble import load_bluemarble
    from geocell_engine.data.dataset import load_splits
    from geocell_engine.data.regions import bluemarble_regions
    from geocell_engine.evaluation.baselines import constant_baseline, knn_colour_baseline, true_cell_centroid
    from geocell_engine.evaluation.breakdown import breakdown, format_breakdown_table
    from geocell_engine.evaluation.features import frozen_knn_baseline
    from geocell_engine.evaluation.intervals import (
        bootstrap_intervals,
        format_interval_table,
        format_paired_table,
        paired_comparison,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a train run directory (predictions.csv, best.pt)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "intervals_report.md")
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    splits, info = load_splits("bluemarble-v1")
    train, val, test = splits["train"], splits["val"], splits["test"]
    regions = bluemarble_regions(load_bluemarble("test"))
    kw = dict(n_resamples=args.resamples, seed=args.seed)
    rows: dict[str, object] = {}
    cells = None
    if args.run is not None:
        model = read_predictions(args.run / "predictions.csv", "model")
        if model.ids.tolist() != test.ids.tolist():
            raise SystemExit(f"{args.run}/predictions.csv does not list the bluemarble-v1 test ids in order")
        rows["model"] = model
        if (args.run / "cells.parquet").is_file():
            from geocell import CellSet

            cells = CellSet.load(args.run / "cells.parquet")
    rows["constant (geometric median)"] = constant_baseline(train.lat, train.lon, train.country, test.lat, test.lon,
                                                            test.country, test.admin1, train_admin1=train.admin1)
    rows["kNN colour histograms"] = knn_colour_baseline(
        np.asarray(train.images), train.lat, train.lon, train.country, np.asarray(test.images), test.lat, test.lon,
        test.country, train_admin1=train.admin1, test_admin1=test.admin1)
    t1 = time.perf_counter()
    rows["kNN frozen EfficientNet-Lite0 features"] = frozen_knn_baseline(train, test, image_size=64, device=args.device,
                                                                         name="kNN frozen EfficientNet-Lite0 features")
    t_frozen = time.perf_counter() - t1
    if cells is not None:
        rows["true-cell centroid"] = true_cell_centroid(cells, test.lat, test.lon, test.country, test.admin1)
    rows = {k: replace(v, name=k, ids=test.ids) for k, v in rows.items()}
    intervals = {k: bootstrap_intervals(v, regions, **kw) for k, v in rows.items()}
    first = next(iter(rows))
    sample = bootstrap_intervals(rows[first], None, **kw)
    md = ["# bluemarble-v1 test: metrics with 95% intervals", "",
          f"Written by `python scripts/intervals_report.py{' --run ' + str(args.run) if args.run else ''}` "
          f"(data set sha256 points {info.sha256['points'][:12]}...). {len(test):,} test patches in "
          f"{np.unique(regions).size} held-out regions; intervals are cluster bootstraps over the regions "
          "(BCa), because patches of one region are not independent.", "",
          format_interval_table(list(intervals.values()), list(intervals)),
          f"Treating the {len(test):,} patches as independent (sample bootstrap) would give {first} "
          f"median {sample.median_km.low:,.0f}–{sample.median_km.high:,.0f} km and country top-1 "
          f"{100 * sample.country_top1.low:.1f}–{100 * sample.country_top1.high:.1f}% instead of "
          f"{intervals[first].median_km.low:,.0f}–{intervals[first].median_km.high:,.0f} km and "
          f"{100 * intervals[first].country_top1.low:.1f}–{100 * intervals[first].country_top1.high:.1f}%.", ""]
    payload = {"intervals": {k: v.as_dict() for k, v in intervals.items()},
               "sample_bootstrap_first_row": sample.as_dict(), "frozen_features_seconds": t_frozen}
    others = [k for k in rows if k != first and k != "true-cell centroid"]
    md += ["## Paired differences", ""]
    payload["paired"] = {}
    for other in others:
        c = paired_comparison(rows[first], rows[other], regions, **kw)
        payload["paired"][other] = c.as_dict()
        md += [f"### {first} − {other}", "", format_paired_table(c)]
    focus = first
    for by in ("continent", "hemisphere"):
        b = breakdown(rows[focus], by, regions, **kw)
        payload[f"breakdown_{by}"] = [r.as_dict() for r in b]
        md += [f"## {focus} by {by} (of the true location)", "", format_breakdown_table(b, by)]
    if args.run is not None and (args.run / "best.pt").is_file():
        from geocell_engine.engine.model import load_model
        from geocell_engine.evaluation.conformal import evaluate_regions, format_region_report, plot_coverage_area
        from geocell_engine.evaluation.features import cell_probabilities

        loaded = load_model(args.run / "best.pt", args.device)
        size = loaded.config.image_size
        p_val = cell_probabilities(loaded.model, val, size, 128, args.device)
        p_test = cell_probabilities(loaded.model, test, size, 128, args.device)
        if cells is None:
            raise SystemExit(f"{args.run}: no cells.parquet beside best.pt; regions need the cells' polygons")
        y_val = np.asarray(cells.assign(val.lat, val.lon), dtype=np.int64)
        y_test = np.asarray(cells.assign(test.lat, test.lon), dtype=np.int64)
        report = evaluate_regions(p_val, y_val, p_test, y_test, cells, level=0.9, clusters=regions, **kw)
        png = plot_coverage_area(report.curve, args.out.with_name("coverage_area.png"))
        payload["regions"] = report.as_dict()
        md += ["## Calibrated prediction regions", "",
               "Calibrated on the validation split, measured on test. Validation and test are different held-out "
               "regions, so the conformal guarantee (which needs exchangeable samples) does not hold here: the "
               "coverage is a measurement.", "", format_region_report(report), f"![coverage vs area]({png.name})", ""]
    payload["seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md), encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=float) + "\n", encoding="utf-8")
    print("\n".join(md))
    print(f"wrote {args.out} and {args.out.with_suffix('.json')} in {payload['seconds']:.0f} s")


if __name__ == "__main__":
    main()
