"""Adaptive S2 partitions and the CellSet container, on seeded synthetic points."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geocell.cells import CellSet, CellSetError
from geocell.s2 import s2_cell_ids, s2_level, s2_parent, s2_token_to_cell_id
from geocell.s2cells import build_s2

COUNTRIES = {"W-1": "WWW", "E-1": "EEE"}


def sphere_points(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


def fake_admin1(lon):
    """Two 'countries': west and east of Greenwich."""
    return np.where(lon < 0, "W-1", "E-1")


@pytest.fixture(scope="module")
def partitions():
    lat, lon = sphere_points(30_000)
    # a dense cluster that forces deep splitting, and a sparse corner that gets dropped
    rng = np.random.default_rng(1)
    lat = np.r_[lat, rng.normal(48.85, 0.05, 5000)]
    lon = np.r_[lon, rng.normal(2.35, 0.05, 5000)]
    cells = build_s2(lat, lon, tau_min=20, tau_max=[2000, 300], min_level=1, max_level=12,
                     point_admin1=fake_admin1(lon), admin1_country=COUNTRIES)
    return lat, lon, cells


def test_counts_within_bounds_and_points_in_their_cells(partitions):
    lat, lon, cells = partitions
    for c, tau_max in zip(cells, (2000, 300)):
        assert c.counts.min() >= 20
        # only cells at max_level may exceed tau_max
        over = c.counts > tau_max
        assert all(s2_parent(s2_token_to_cell_id(t), 12) == s2_token_to_cell_id(t) for t in c.ids[over])
        # every point is in exactly one cell; points of kept cells are in the cell holding them
        idx = c.assign(lat, lon)
        assert idx.shape == lat.shape and idx.min() >= 0 and idx.max() < len(c)
        cell_ids = s2_token_to_cell_id(c.ids)
        levels = s2_level(cell_ids)
        own = s2_parent(s2_cell_ids(lat, lon, 30), levels[idx])
        inside = own == cell_ids[idx]
        assert inside.mean() > 0.99  # the rest fell in dropped cells and went to the nearest centroid
        assert int(inside.sum()) == int(c.counts.sum())


def test_fine_nests_in_coarse(partitions):
    _, _, (coarse, fine) = partitions
    assert len(fine) > len(coarse)
    coarse_ids = s2_token_to_cell_id(coarse.ids)
    fine_ids = s2_token_to_cell_id(fine.ids)
    parent_ids = coarse_ids[fine.parent]
    assert np.array_equal(s2_parent(fine_ids, s2_level(parent_ids)), parent_ids)
    # a coarse cell holds at least the samples of its finer children (fine drops more points)
    assert np.all(np.bincount(fine.parent, weights=fine.counts, minlength=len(coarse)) <= coarse.counts)


def test_centroids_are_spherical_means_inside_cells(partitions):
    _, _, (coarse, _) = partitions
    assert np.all(coarse.assign(coarse.centroid_lat, coarse.centroid_lon) == np.arange(len(coarse)))


def test_hierarchy_is_row_stochastic(partitions):
    _, _, (_, fine) = partitions
    to_admin1, to_country = fine.hierarchy()
    assert to_admin1.shape == (len(fine), 2) and to_country.shape == (len(fine), 2)
    np.testing.assert_allclose(np.asarray(to_country.sum(axis=1)).ravel(), 1.0)
    assert fine.country_vocab() == ("EEE", "WWW")


def test_save_load_round_trip(tmp_path, partitions):
    _, _, (_, fine) = partitions
    path = fine.save(tmp_path / "cells.parquet")
    again = CellSet.load(path)
    assert again.hash == fine.hash
    assert np.array_equal(again.ids, fine.ids) and np.array_equal(again.parent, fine.parent)
    assert again.member_admin1 == fine.member_admin1
    assert all(shapely.equals_exact(a, b, 1e-9) for a, b in zip(again.geometry, fine.geometry))
    lat, lon = sphere_points(100, seed=9)
    assert np.array_equal(again.assign(lat, lon), fine.assign(lat, lon))


def test_same_input_same_hash():
    lat, lon = sphere_points(5000, seed=3)
    a = build_s2(lat, lon, tau_min=10, tau_max=500, point_admin1=fake_admin1(lon), admin1_country=COUNTRIES)[0]
    b = build_s2(lat, lon, tau_min=10, tau_max=500, point_admin1=fake_admin1(lon), admin1_country=COUNTRIES)[0]
    c = build_s2(lat, lon, tau_min=10, tau_max=400, point_admin1=fake_admin1(lon), admin1_country=COUNTRIES)[0]
    assert a.hash == b.hash != c.hash


def test_polygons_valid_and_cross_antimeridian():
    lat = np.r_[np.full(200, 65.0), np.full(200, -89.9)]
    lon = np.r_[np.full(200, 179.99), np.linspace(-180, 180, 200)]
    cells = build_s2(lat, lon, tau_min=5, tau_max=1000, min_level=0, max_level=3,
                     point_admin1=fake_admin1(lon), admin1_country=COUNTRIES)[0]
    assert shapely.is_valid(cells.geometry).all()
    assert not any(g.is_empty for g in cells.geometry)
    # the polygon of the south polar cell contains the pole
    south = cells.assign(-89.9, 0.0)
    assert cells.geometry[south].covers(shapely.Point(0.0, -90.0))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"tau_min": 100, "tau_max": 50}, "tau_min <= every tau_max"),
        ({"min_level": 5, "max_level": 3}, "min_level <= max_level"),
        ({"tau_min": 10_000, "tau_max": 20_000}, "no S2 cell holds tau_min"),
    ],
)
def test_bad_parameters(kwargs, pattern):
    lat, lon = sphere_points(100)
    with pytest.raises(CellSetError, match=pattern):
        build_s2(lat, lon, point_admin1=fake_admin1(lon), admin1_country=COUNTRIES, **kwargs)


def test_empty_input():
    with pytest.raises(CellSetError, match="empty"):
        build_s2([], [], point_admin1=np.array([]), admin1_country=COUNTRIES)


def test_all_points_identical():
    lat, lon = np.full(300, 10.0), np.full(300, 20.0)
    cells = build_s2(lat, lon, tau_min=5, tau_max=100, max_level=10, point_admin1=fake_admin1(lon),
                     admin1_country=COUNTRIES)[0]
    # cannot split below max_level: one cell holding all the points (documented)
    assert len(cells) == 1 and cells.counts[0] == 300


def test_load_rejects_other_files(tmp_path):
    import pandas as pd

    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(CellSetError, match="not a geocell CellSet"):
        CellSet.load(tmp_path / "x.parquet")
    (tmp_path / "y.parquet").write_text("nope")
    with pytest.raises(CellSetError, match="cannot be read"):
        CellSet.load(tmp_path / "y.parquet")
