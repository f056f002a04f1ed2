"""Print a run's TensorBoard scalars as TensorBoard reads them (purges of resumed runs applied),
one row per epoch, and check them against the run's metrics.jsonl.

Run: python scripts/read_tensorboard.py RUN_DIR [--tags train_loss,val_score,val_median_km,lr]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--tags", default="train_loss,val_score,val_median_km,val_country_acc,lr")
    args = parser.parse_args(argv)
    from tensorboard.backend.event_processing import event_accumulator

    from geocell_engine.engine.tensorboard import TENSORBOARD_DIR, scalars_of

    acc = event_accumulator.EventAccumulator(str(args.run / TENSORBOARD_DIR),
                                             size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    events = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    rows = [json.loads(line) for line in (args.run / "metrics.jsonl").read_text().splitlines()]
    tags = [t for t in args.tags.split(",") if t in events]
    print("| epoch | " + " | ".join(tags) + " |")
    print("|---:|" + "---:|" * len(tags))
    steps = sorted({s for t in tags for s, _ in events[t]})
    for step in steps:
        cells = [next((f"{v:.6g}" for s, v in events[t] if s == step), "") for t in tags]
        print(f"| {step} | " + " | ".join(cells) + " |")
    expected = {(k, r["epoch"]): v for r in rows for k, v in scalars_of(r).items()}
    got = {(t, s): v for t, points in events.items() for s, v in points}
    same = set(expected) == set(got) and all(math.isclose(got[k], v, rel_tol=1e-6) for k, v in expected.items())
    duplicates = sum(len(p) - len({s for s, _ in p}) for p in events.values())
    print(f"\n{len(events)} tags x {len(steps)} epochs; duplicated steps: {duplicates}; "
          f"equal to metrics.jsonl: {'yes' if same else 'NO'}")
    return 0 if same and not duplicates else 1


if __name__ == "__main__":
    sys.exit(main())
