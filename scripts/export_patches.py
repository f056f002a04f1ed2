"""Write a few patches of a bluemarble split as PNG files, for ``cli.py predict`` (and
``--explain``) on real imagery at known coordinates.

Run: python scripts/export_patches.py [--data bluemarble-v1] [--split test] [--n 3] [--seed 0] --out DIR

Each file is named ``ID.png``; a ``patches.csv`` beside them lists id, lat, lon, country.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="bluemarble-v1")
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    import pandas as pd
    from PIL import Image

    from geocell.tables import atomic_write
    from geocell_engine.data.dataset import load_splits

    splits, _ = load_splits(args.data, seed=args.seed)
    split = splits[args.split]
    if split.images is None:
        raise SystemExit(f"{args.data} {args.split}: not an in-memory patch set")
    chosen = np.sort(np.random.default_rng(args.seed).choice(len(split), size=min(args.n, len(split)), replace=False))
    args.out.mkdir(parents=True, exist_ok=True)
    for i in chosen:
        path = args.out / f"{split.ids[i]}.png"
        atomic_write(path, lambda p, i=i: Image.fromarray(split.images[i]).save(p, format="PNG"))
    table = pd.DataFrame({"id": split.ids[chosen], "lat": split.lat[chosen], "lon": split.lon[chosen],
                          "country": split.country[chosen]})
    atomic_write(args.out / "patches.csv", lambda p: table.to_csv(p, index=False))
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
