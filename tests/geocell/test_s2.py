"""Tests of geocell.s2 against s2sphere (the reference implementation of S2 in Python)."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import s2sphere
from hypothesis import given, settings
from hypothesis import strategies as st

from geocell.errors import InvalidCoordinateError, S2Error
from geocell.s2 import (
    MAX_LEVEL,
    s2_cell_center,
    s2_cell_id_to_token,
    s2_cell_ids,
    s2_cell_vertices,
    s2_level,
    s2_parent,
    s2_token_to_cell_id,
)

LEVELS = (0, 1, 5, 10, 13, 20, 30)
N_RANDOM = 10_000

# 35.26438968... deg = atan(1 / sqrt(2)): the cube corner direction (1, 1, 1)
CUBE_CORNER_LAT = math.degrees(math.atan(1.0 / math.sqrt(2.0)))

SPECIAL_POINTS = (
    # poles with several longitudes
    [(90.0, lon) for lon in (-180.0, -135.0, -90.0, -45.0, 0.0, 45.0, 90.0, 135.0, 180.0, 12.3)]
    + [(-90.0, lon) for lon in (-180.0, -135.0, -90.0, -45.0, 0.0, 45.0, 90.0, 135.0, 180.0, -77.7)]
    # antimeridian
    + [
        (lat, lon)
        for lat in (-60.0, -1e-9, 0.0, 1e-9, 33.3, 89.9)
        for lon in (-180.0, 180.0, 179.9999999, -179.9999999)
    ]
    # equator and the prime meridian
    + [(0.0, lon) for lon in (-170.0, -90.0, -45.5, -1e-12, 0.0, 1e-12, 44.99999, 90.0, 135.0)]
    + [(lat, 0.0) for lat in (-89.0, -45.0, -1e-12, 1e-12, 45.0, 45.000001, 89.0)]
    # cube face boundaries: |x| = |y|, |x| = |z|, |y| = |z| and the cube corners
    + [(0.0, lon) for lon in (45.0, 135.0, -45.0, -135.0)]
    + [(lat, lon) for lat in (45.0, -45.0) for lon in (0.0, 90.0, 180.0, -90.0)]
    + [
        (lat, lon)
        for lat in (35.26438968, -35.26438968, CUBE_CORNER_LAT, -CUBE_CORNER_LAT)
        for lon in (45.0, 135.0, -45.0, -135.0)
    ]
)


def s2sphere_id(lat: float, lon: float, level: int) -> int:
    return s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(lat, lon)).parent(level).id()


def uniform_sphere(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    lon = rng.uniform(-180.0, 180.0, n)
    return lat, lon


def lon_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| in degrees of longitude, modulo 360 (so -180 and 180 agree)."""
    d = np.abs(np.asarray(a) - np.asarray(b)) % 360.0
    return np.minimum(d, 360.0 - d)


@pytest.fixture(scope="module")
def random_points():
    lat, lon = uniform_sphere(N_RANDOM, seed=20240601)
    leaves = [
        s2sphere.CellId.from_lat_lng(s2sphere.LatLng.from_degrees(a, b)) for a, b in zip(lat.tolist(), lon.tolist())
    ]
    reference = {level: np.array([c.parent(level).id() for c in leaves], dtype=np.uint64) for level in LEVELS}
    return lat, lon, reference


# ------------------------------------------------------------------------------------------------
# agreement with s2sphere
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LEVELS)
def test_ids_match_s2sphere_on_random_points(random_points, level):
    lat, lon, reference = random_points
    ids = s2_cell_ids(lat, lon, level)
    assert ids.dtype == np.uint64 and ids.shape == lat.shape
    mismatch = np.flatnonzero(ids != reference[level])
    assert mismatch.size == 0, f"{mismatch.size} mismatches, first at lat={lat[mismatch[0]]}, lon={lon[mismatch[0]]}"


def test_random_points_cover_all_faces(random_points):
    lat, lon, reference = random_points
    assert set((reference[0] >> np.uint64(61)).tolist()) == set(range(6))


@pytest.mark.parametrize("level", LEVELS)
def test_ids_match_s2sphere_on_special_points(level):
    lat = np.array([p[0] for p in SPECIAL_POINTS])
    lon = np.array([p[1] for p in SPECIAL_POINTS])
    ids = s2_cell_ids(lat, lon, level)
    expected = np.array([s2sphere_id(a, b, level) for a, b in SPECIAL_POINTS], dtype=np.uint64)
    bad = [(SPECIAL_POINTS[k], hex(int(ids[k])), hex(int(expected[k]))) for k in np.flatnonzero(ids != expected)]
    assert not bad


def test_ids_match_s2sphere_on_cell_corners():
    # corners of level-7 and level-16 cells lie exactly on cell edges of every coarser level
    lat, lon = uniform_sphere(300, seed=7)
    corners = []
    for level in (7, 16):
        cells = s2_cell_ids(lat, lon, level)
        corners.append(s2_cell_vertices(cells).reshape(-1, 2))
    corners = np.concatenate(corners)
    for level in (5, 7, 12, 16, 30):
        ids = s2_cell_ids(corners[:, 0], corners[:, 1], level)
        expected = np.array([s2sphere_id(a, b, level) for a, b in corners.tolist()], dtype=np.uint64)
        np.testing.assert_array_equal(ids, expected)


def test_hilbert_tables_match_s2sphere():
    from s2sphere import sphere

    from geocell.s2 import _hilbert_tables

    ij_to_pos, pos_to_ij = _hilbert_tables()
    np.testing.assert_array_equal(ij_to_pos, np.array(sphere.LOOKUP_POS))
    np.testing.assert_array_equal(pos_to_ij, np.array(sphere.LOOKUP_IJ))


@pytest.mark.parametrize("level", LEVELS)
def test_level_parent_and_tokens_match_s2sphere(random_points, level):
    _, _, reference = random_points
    ids = reference[level][:2000]
    assert (s2_level(ids) == level).all()
    tokens = s2_cell_id_to_token(ids)
    assert tokens.tolist() == [s2sphere.CellId(int(i)).to_token() for i in ids.tolist()]
    for coarser in {0, level // 2, level}:
        expected = np.array([s2sphere.CellId(int(i)).parent(coarser).id() for i in ids[:200].tolist()], np.uint64)
        np.testing.assert_array_equal(s2_parent(ids[:200], coarser), expected)


@pytest.mark.parametrize("level", LEVELS)
def test_center_matches_s2sphere(random_points, level):
    _, _, reference = random_points
    ids = reference[level][:1000]
    lat, lon = s2_cell_center(ids)
    ref = [s2sphere.CellId(int(i)).to_lat_lng() for i in ids.tolist()]
    ref_lat = np.array([p.lat().degrees for p in ref])
    ref_lon = np.array([p.lng().degrees for p in ref])
    np.testing.assert_allclose(lat, ref_lat, rtol=0, atol=1e-9)
    assert (lon_diff(lon, ref_lon) < 1e-9).all()


def test_face_centers_match_s2sphere():
    faces = np.array([(f << 61) | (1 << 60) for f in range(6)], dtype=np.uint64)
    lat, lon = s2_cell_center(faces)
    for k, cell in enumerate(faces.tolist()):
        ref = s2sphere.CellId(cell).to_lat_lng()
        assert lat[k] == pytest.approx(ref.lat().degrees, abs=1e-12)
        assert lon[k] == pytest.approx(ref.lng().degrees, abs=1e-12)  # including +-180 at the poles
    np.testing.assert_allclose(lat, [0, 0, 90, 0, 0, -90], atol=1e-12)


@pytest.mark.parametrize("level", (0, 1, 5, 10, 20, 30))
def test_vertices_match_s2sphere(random_points, level):
    _, _, reference = random_points
    ids = reference[level][:200]
    corners = s2_cell_vertices(ids)
    assert corners.shape == (ids.size, 4, 2)
    ref = []
    for i in ids.tolist():
        cell = s2sphere.Cell(s2sphere.CellId(i))
        corners_ll = [s2sphere.LatLng.from_point(cell.get_vertex(k)) for k in range(4)]
        ref.append([[ll.lat().degrees, ll.lng().degrees] for ll in corners_ll])
    ref = np.array(ref)
    np.testing.assert_allclose(corners[..., 0], ref[..., 0], rtol=0, atol=1e-9)
    assert (lon_diff(corners[..., 1], ref[..., 1]) < 1e-9).all()


# ------------------------------------------------------------------------------------------------
# shapes, dtypes, longitude wrapping
# ------------------------------------------------------------------------------------------------


def test_scalar_in_scalar_out():
    cell = s2_cell_ids(48.8584, 2.2945, 10)
    assert isinstance(cell, np.uint64) and int(cell) == s2sphere_id(48.8584, 2.2945, 10)
    assert isinstance(s2_level(cell), np.integer) and s2_level(cell) == 10
    assert isinstance(s2_parent(cell, 3), np.uint64)
    token = s2_cell_id_to_token(cell)
    assert isinstance(token, str) and token == "47e66f"
    assert isinstance(s2_token_to_cell_id(token), np.uint64) and s2_token_to_cell_id(token) == cell
    lat, lon = s2_cell_center(cell)
    assert np.ndim(lat) == 0 and np.ndim(lon) == 0
    assert s2_cell_vertices(cell).shape == (4, 2)
    # python ints (also above 2**63) are accepted as ids, alone or in lists
    assert s2_level(int(cell)) == 10
    big = int(s2_cell_ids(-10.0, -100.0, 4))
    assert big >= 2**63 and s2_level(big) == 4
    assert s2_level([big, int(cell)]).tolist() == [4, 10]
    assert s2_level(np.array([big, int(cell)], dtype=object)).tolist() == [4, 10]


def test_broadcasting_and_level_arrays():
    lat = np.array([[-30.0], [0.0], [60.0]])
    lon = np.array([-120.0, 0.0, 10.0, 170.0])
    ids = s2_cell_ids(lat, lon, 12)
    assert ids.shape == (3, 4)
    for a in range(3):
        for b in range(4):
            assert int(ids[a, b]) == s2sphere_id(lat[a, 0], lon[b], 12)
    levels = np.array([0, 5, 17, 30])
    by_level = s2_cell_ids(51.5, -0.12, levels)
    assert by_level.shape == (4,)
    assert by_level.tolist() == [s2sphere_id(51.5, -0.12, int(lv)) for lv in levels]
    assert s2_level(by_level).tolist() == levels.tolist()
    parents = s2_parent(s2_cell_ids(51.5, -0.12), levels)
    np.testing.assert_array_equal(parents, by_level)
    assert s2_cell_center(ids)[0].shape == (3, 4)
    assert s2_cell_vertices(ids).shape == (3, 4, 4, 2)
    assert s2_cell_id_to_token(ids).shape == (3, 4)


def test_inputs_of_other_types():
    lat, lon = uniform_sphere(50, seed=3)
    ref = s2_cell_ids(lat, lon, 9)
    np.testing.assert_array_equal(s2_cell_ids(lat.tolist(), lon.tolist(), 9), ref)
    np.testing.assert_array_equal(s2_cell_ids(lat, lon, np.int8(9)), ref)
    np.testing.assert_array_equal(s2_cell_ids(lat, lon, 9.0), ref)
    f32 = s2_cell_ids(lat.astype(np.float32), lon.astype(np.float32), 30)
    expected = [s2sphere_id(a, b, 30) for a, b in zip(lat.astype(np.float32).tolist(), lon.astype(np.float32).tolist())]
    assert f32.tolist() == expected
    # int64 views of the same bits (what Parquet or pandas often hold) are accepted
    np.testing.assert_array_equal(s2_level(ref.view(np.int64)), np.full(50, 9))
    np.testing.assert_array_equal(s2_cell_id_to_token(ref.view(np.int64)), s2_cell_id_to_token(ref))


def test_empty_inputs():
    empty = np.array([])
    assert s2_cell_ids(empty, empty, 10).shape == (0,)
    assert s2_cell_ids(empty, empty, 10).dtype == np.uint64
    ids = np.array([], dtype=np.uint64)
    assert s2_level(ids).shape == (0,)
    assert s2_parent(ids, 3).shape == (0,)
    assert s2_cell_center(ids)[0].shape == (0,)
    assert s2_cell_vertices(ids).shape == (0, 4, 2)
    assert s2_cell_id_to_token(ids).shape == (0,)
    assert s2_token_to_cell_id(np.array([], dtype=str)).shape == (0,)


def test_more_points_than_one_block():
    lat, lon = uniform_sphere(10_000, seed=11)  # crosses several internal blocks
    levels = np.arange(10_000) % 31
    ids = s2_cell_ids(lat, lon, levels)
    leaves = s2_cell_ids(lat, lon)
    np.testing.assert_array_equal(s2_parent(leaves, levels), ids)
    np.testing.assert_array_equal(s2_level(ids), levels)


def test_longitudes_are_taken_modulo_360():
    lat = np.array([10.0, -20.0, 30.0, 0.0, 89.0])
    lon = np.array([190.0, 370.0, -190.0, 540.0, -720.0])
    wrapped = np.array([-170.0, 10.0, 170.0, -180.0, 0.0])
    np.testing.assert_array_equal(s2_cell_ids(lat, lon, 30), s2_cell_ids(lat, wrapped, 30))
    lat, lon = uniform_sphere(2000, seed=5)
    for shift in (360.0, -360.0, 720.0):
        np.testing.assert_array_equal(s2_cell_ids(lat, lon + shift, 18), s2_cell_ids(lat, lon, 18))


def test_antimeridian_sides():
    # sin(+-pi) = +-1.2e-16, so +180 and -180 fall either side of the face-3 cell boundary at
    # v = 0, exactly as in S2; both cells touch the antimeridian
    for lon in (180.0, -180.0, 179.9999999, -179.9999999):
        cell = s2_cell_ids(12.0, lon, 20)
        assert int(cell) == s2sphere_id(12.0, lon, 20)
        center_lat, center_lon = s2_cell_center(cell)
        assert lon_diff(center_lon, 180.0) < 1e-3 and abs(center_lat - 12.0) < 1e-3
    assert s2_cell_ids(12.0, 179.9999999, 30) != s2_cell_ids(12.0, -179.9999999, 30)
    assert s2_cell_ids(12.0, 180.0, 1) != s2_cell_ids(12.0, -180.0, 1)


# ------------------------------------------------------------------------------------------------
# tokens
# ------------------------------------------------------------------------------------------------


def test_token_edge_cases():
    assert s2_cell_id_to_token(0) == "X"
    assert s2_token_to_cell_id("X") == 0
    assert s2_token_to_cell_id("x") == 0
    assert s2_cell_id_to_token(np.uint64(0xFFFFFFFFFFFFFFFF)) == "ffffffffffffffff"
    assert s2_cell_id_to_token(np.uint64(1 << 60)) == "1"
    assert s2_token_to_cell_id("1") == 1 << 60
    assert s2_token_to_cell_id("47E66F") == s2_token_to_cell_id("47e66f")
    tokens = np.array([["47e66f", "X"], ["1", "b"]])
    ids = s2_token_to_cell_id(tokens)
    assert ids.shape == (2, 2) and ids.dtype == np.uint64
    assert s2_cell_id_to_token(ids).tolist() == [["47e66f", "X"], ["1", "b"]]
    assert s2_token_to_cell_id(["47e66f", "1"]).tolist() == [0x47E66F0000000000, 1 << 60]
    assert s2_token_to_cell_id(np.array(["47e66f"], dtype=object)).tolist() == [0x47E66F0000000000]
    assert s2_token_to_cell_id(np.array([b"47e66f", b"X"])).tolist() == [0x47E66F0000000000, 0]
    assert s2_token_to_cell_id("ffffffffffffffff") == 0xFFFFFFFFFFFFFFFF
    # every id, valid or not, survives the round trip
    rng = np.random.default_rng(2)
    ids = rng.integers(0, 2**64 - 1, 1000, dtype=np.uint64, endpoint=True)
    ids[:64] = np.uint64(1) << np.arange(64, dtype=np.uint64)
    tokens = s2_cell_id_to_token(ids)
    assert tokens.tolist() == [format(int(i), "016x").rstrip("0") or "X" for i in ids.tolist()]
    np.testing.assert_array_equal(s2_token_to_cell_id(tokens), ids)


@pytest.mark.parametrize("bad", ["", "g", "12345678901234567", "47e6 6f", "ü", "0x47"])
def test_invalid_tokens(bad):
    with pytest.raises(S2Error, match="invalid S2 token"):
        s2_token_to_cell_id(bad)
    with pytest.raises(S2Error, match=r"at index 1"):
        s2_token_to_cell_id(["47e66f", bad])


# ------------------------------------------------------------------------------------------------
# errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_lat", [np.nan, 90.0000001, -90.5, np.inf, -np.inf, 1e300])
def test_bad_latitude(bad_lat):
    lat = np.array([0.0, 10.0, bad_lat, 20.0, np.nan])
    with pytest.raises(InvalidCoordinateError, match=r"^index 2: latitude (missing|.* is outside \[-90, 90\])"):
        s2_cell_ids(lat, np.zeros(5), 10)
    with pytest.raises(InvalidCoordinateError, match="^latitude"):
        s2_cell_ids(bad_lat, 0.0)


def test_bad_latitude_index_in_2d():
    lat = np.zeros((3, 4))
    lat[2, 1] = 91.0
    with pytest.raises(InvalidCoordinateError, match=r"index \(2, 1\): latitude 91.0 is outside"):
        s2_cell_ids(lat, 0.0, 5)


@pytest.mark.parametrize("bad_lon", [np.nan, np.inf, -np.inf])
def test_bad_longitude(bad_lon):
    with pytest.raises(InvalidCoordinateError, match=r"index 1: longitude .*expected finite degrees"):
        s2_cell_ids([0.0, 1.0], [0.0, bad_lon])


def test_any_finite_longitude_is_taken_modulo_360():
    lon = np.array([-540.0, -190.0, 200.0, 725.5])
    assert np.array_equal(s2_cell_ids(10.0, lon, 12), s2_cell_ids(10.0, (lon + 180.0) % 360.0 - 180.0, 12))


@pytest.mark.parametrize("bad_level", [-1, 31, 100, 2.5, np.nan, "10", True, [3, 31]])
def test_bad_level(bad_level):
    with pytest.raises(S2Error, match="level"):
        s2_cell_ids(0.0, 0.0, bad_level)
    with pytest.raises(S2Error, match="level"):
        s2_parent(s2_cell_ids(0.0, 0.0), bad_level)


@pytest.mark.parametrize(
    ("lat", "lon", "match"),
    [("north", 0.0, "latitude 'north' is not a number"),
     ([1.0, "2"], [0.0, 0.0], "index 1: latitude '2' is not a number"),
     ([0.0, 0.0], [0.0, None], "index 1: longitude None is not a number"),
     (np.array([True]), [0.0], "index 0: latitude True is not a number"),
     ([0.0, 1.0], [0.0, 1.0, 2.0], "incompatible shapes")],
)
def test_non_numeric_coordinates(lat, lon, match):
    with pytest.raises(InvalidCoordinateError, match=match):
        s2_cell_ids(lat, lon)


@pytest.mark.parametrize(
    "bad_id",
    [
        0,  # no marker bit
        6 << 61 | 1 << 60,  # face 6
        7 << 61 | 1,  # face 7
        (1 << 60) | (1 << 59),  # marker bit at an odd position
        0x47E66F0000000000 | (1 << 1),  # odd position
    ],
)
def test_invalid_cell_ids(bad_id):
    for fn in (s2_level, s2_cell_center, s2_cell_vertices, lambda ids: s2_parent(ids, 0)):
        with pytest.raises(S2Error, match="invalid S2 cell id"):
            fn(np.array([0x47E66F0000000000, bad_id], dtype=np.uint64))


@pytest.mark.parametrize("bad_ids", [[1.5, 2.0], np.array([1.0]), ["47e66f"], [True], [2**63 + 1, 0.5]])
def test_non_integer_cell_ids(bad_ids):
    with pytest.raises(S2Error, match="64-bit integers"):
        s2_level(bad_ids)


def test_parent_deeper_than_cell():
    cell = s2_cell_ids(0.0, 0.0, 10)
    with pytest.raises(S2Error, match="level-11 parent of a level-10 cell"):
        s2_parent(cell, 11)
    with pytest.raises(S2Error, match=r"at index 1"):
        s2_parent(np.array([s2_cell_ids(0.0, 0.0, 20), cell]), 12)


def test_import_is_lazy():
    code = (
        "import geocell.s2 as m, sys; "
        "assert m._hilbert_tables.cache_info().currsize == 0; "
        "m.s2_cell_ids(1.0, 2.0); "
        "assert m._hilbert_tables.cache_info().currsize == 1"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------------------------
# properties
# ------------------------------------------------------------------------------------------------

latitudes = st.floats(min_value=-90.0, max_value=90.0, allow_nan=False)
longitudes = st.floats(min_value=-180.0, max_value=180.0, allow_nan=False)
levels = st.integers(min_value=0, max_value=MAX_LEVEL)


@settings(max_examples=300, deadline=None)
@given(latitudes, longitudes, levels)
def test_property_matches_s2sphere(lat, lon, level):
    assert int(s2_cell_ids(lat, lon, level)) == s2sphere_id(lat, lon, level)


@settings(max_examples=200, deadline=None)
@given(latitudes, longitudes, levels, levels)
def test_property_parent_of_child(lat, lon, a, b):
    coarse, fine = min(a, b), max(a, b)
    child = s2_cell_ids(lat, lon, fine)
    assert s2_level(child) == fine
    assert s2_parent(child, coarse) == s2_cell_ids(lat, lon, coarse)
    # the parent's id range [id - (lsb - 1), id + (lsb - 1)] contains the child
    parent = int(s2_parent(child, coarse))
    lsb = parent & -parent
    assert parent - (lsb - 1) <= int(child) <= parent + (lsb - 1)


@settings(max_examples=200, deadline=None)
@given(latitudes, longitudes, levels)
def test_property_token_round_trip(lat, lon, level):
    cell = s2_cell_ids(lat, lon, level)
    token = s2_cell_id_to_token(cell)
    assert 1 <= len(token) <= 16 and not token.endswith("0")
    assert s2_token_to_cell_id(token) == cell
    assert s2_token_to_cell_id(token.upper()) == cell


@settings(max_examples=200, deadline=None)
@given(latitudes, longitudes, levels)
def test_property_center_maps_back_to_cell(lat, lon, level):
    cell = s2_cell_ids(lat, lon, level)
    center_lat, center_lon = s2_cell_center(cell)
    assert -90.0 <= center_lat <= 90.0 and -180.0 <= center_lon <= 180.0
    assert s2_cell_ids(center_lat, center_lon, level) == cell
    corners = s2_cell_vertices(cell)
    assert corners.shape == (4, 2) and np.isfinite(corners).all()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(latitudes, longitudes), min_size=1, max_size=20), levels)
def test_property_vectorised_equals_scalar(points, level):
    lat = np.array([p[0] for p in points])
    lon = np.array([p[1] for p in points])
    ids = s2_cell_ids(lat, lon, level)
    assert ids.tolist() == [int(s2_cell_ids(a, b, level)) for a, b in points]
