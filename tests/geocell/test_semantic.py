"""Semantic geocells built from the shipped Natural Earth admin-1 layer and GeoNames cities."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from geocell.cells import CellSet, CellSetError, admin1_of_points
from geocell.semantic import build_semantic

CITIES = Path(__file__).resolve().parents[2] / "examples" / "cities.csv"
MIN, MAX = 20, 120


@pytest.fixture(scope="module")
def cities():
    frame = pd.read_csv(CITIES)
    return frame["latitude"].to_numpy(float), frame["longitude"].to_numpy(float)


@pytest.fixture(scope="module")
def cells(cities):
    return build_semantic(*cities, min_samples=MIN, max_samples=MAX)


def test_every_point_in_exactly_one_cell(cities, cells):
    lat, lon = cities
    idx = cells.assign(lat, lon)
    assert idx.shape == lat.shape and idx.min() >= 0 and idx.max() < len(cells)
    assert int(cells.counts.sum()) == lat.size
    # points inside a cell polygon are assigned to that polygon, and only one polygon holds them
    hits = shapely.contains_xy(cells.geometry[idx], lon, lat)
    assert hits.mean() > 0.95
    tree = shapely.STRtree(cells.geometry)
    pt, cell = tree.query(shapely.points(lon, lat), predicate="within")
    assert np.bincount(pt, minlength=lat.size).max() == 1


def test_counts_within_bounds_except_small_countries(cities, cells):
    lat, lon = cities
    assert cells.counts.max() <= MAX
    country_of_point = pd.Series([cells.admin1_country[a] for a in admin1_of_points(lat, lon)])
    totals = country_of_point.value_counts()
    small = cells.counts < MIN
    assert all(totals[c] < MIN for c in cells.country[small])
    # such a country is a single cell
    assert all((cells.country == c).sum() == 1 for c in cells.country[small])


def test_cells_never_cross_a_country_border(cells):
    for members, country in zip(cells.member_admin1, cells.country):
        assert {cells.admin1_country[m] for m in members} == {country}


def test_polygons_valid_and_not_overlapping(cells):
    geoms = cells.geometry
    assert shapely.is_valid(geoms).all()
    tree = shapely.STRtree(geoms)
    a, b = tree.query(geoms, predicate="intersects")
    pairs = a < b
    overlap = shapely.area(shapely.intersection(geoms[a[pairs]], geoms[b[pairs]]))
    assert overlap.max() < 1e-9  # square degrees: shared borders only


def test_no_gaps_inside_a_country(cells):
    from geocell.boundaries import load_admin0

    admin0 = load_admin0().set_index("adm0_a3")
    for country in ["FRA", "USA", "IND", "BRA"]:
        union = shapely.union_all(cells.geometry[cells.country == country])
        missing = shapely.difference(admin0.geometry[country], union).area
        assert missing < 1e-6 * admin0.geometry[country].area


def test_deterministic_and_round_trip(tmp_path, cities, cells):
    again = build_semantic(*cities, min_samples=MIN, max_samples=MAX)
    assert again.hash == cells.hash
    other = build_semantic(*cities, min_samples=MIN, max_samples=MAX + 10)
    assert other.hash != cells.hash
    loaded = CellSet.load(cells.save(tmp_path / "semantic.parquet"))
    assert loaded.hash == cells.hash
    lat, lon = cities
    assert np.array_equal(loaded.assign(lat[:500], lon[:500]), cells.assign(lat[:500], lon[:500]))


def test_hierarchy_marginalises_to_countries(cells):
    to_admin1, to_country = cells.hierarchy()
    np.testing.assert_allclose(np.asarray(to_country.sum(axis=1)).ravel(), 1.0)
    # semantic cells lie in one country, so each row of cell -> country is one-hot
    np.testing.assert_allclose(to_country.max(axis=1).toarray().ravel(), 1.0)
    vocab = cells.country_vocab()
    assert [vocab[j] for j in to_country.argmax(axis=1).A.ravel()] == cells.country.tolist()


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [({"min_samples": 50, "max_samples": 40}, "max_samples >= 2"), ({"min_samples": 0, "max_samples": 10}, "1 <= min")],
)
def test_bad_bounds(kwargs, pattern):
    with pytest.raises(CellSetError, match=pattern):
        build_semantic([10.0], [10.0], **kwargs)


def test_empty_input():
    with pytest.raises(CellSetError, match="empty"):
        build_semantic([], [])


def test_identical_points_cannot_be_split():
    cells = build_semantic(np.full(300, 48.85), np.full(300, 2.35), min_samples=10, max_samples=100)
    # documented: identical points stay in one cell, above max_samples
    assert len(cells) == 1 and cells.counts[0] == 300 and cells.country[0] == "FRA"


def test_points_in_the_ocean_join_the_nearest_unit():
    lat, lon = np.array([0.0, 0.5, -40.0]), np.array([-140.0, -140.5, -20.0])  # mid-Pacific / mid-Atlantic
    cells = build_semantic(lat, lon, min_samples=1, max_samples=10)
    assert cells.counts.sum() == 3 and all(c != "" for c in cells.country)
    assert cells.assign(0.2, -140.2) in range(len(cells))
