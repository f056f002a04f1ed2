"""Property and reference tests for geocell.geodesy (numpy and torch)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from geocell import (
    EARTH_RADIUS_KM,
    accuracy_at,
    destination,
    geodesic,
    geoguessr_score,
    haversine,
    haversine_matrix,
    latlon_to_xyz,
    spherical_mean,
    xyz_to_latlon,
)

lats = st.floats(-90.0, 90.0, allow_nan=False)
lons = st.floats(-180.0, 180.0, allow_nan=False)
points = st.tuples(lats, lons)
SPHERE = Geod(a=EARTH_RADIUS_KM * 1000.0, b=EARTH_RADIUS_KM * 1000.0)


def random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n points uniform on the sphere, degrees."""
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


@given(points, points)
def test_symmetric_and_bounded(p, q):
    d_pq = haversine(*p, *q)
    assert d_pq == pytest.approx(haversine(*q, *p), abs=1e-9)
    assert 0.0 <= d_pq <= math.pi * EARTH_RADIUS_KM + 1e-9


@given(points)
def test_zero_for_identical_points(p):
    assert haversine(*p, *p) == pytest.approx(0.0, abs=1e-9)


@given(points, points, points)
def test_triangle_inequality(a, b, c):
    assert haversine(*a, *c) <= haversine(*a, *b) + haversine(*b, *c) + 1e-6


@given(points, points)
def test_agrees_with_pyproj_on_a_sphere(p, q):
    _, _, metres = SPHERE.inv(p[1], p[0], q[1], q[0])
    ours = haversine(*p, *q)
    assert ours == pytest.approx(metres / 1000.0, rel=1e-6, abs=1e-6)


@given(points, points)
def test_within_0_6_percent_of_wgs84(p, q):
    ours, ellipsoid = haversine(*p, *q), geodesic(*p, *q)
    assert abs(ours - ellipsoid) <= 0.006 * ellipsoid + 1e-6


@settings(max_examples=50)
@given(st.lists(points, min_size=1, max_size=20), st.lists(points, min_size=1, max_size=20))
def test_numpy_equals_torch_float64(a, b):
    a, b = np.array(a), np.array(b)
    expected = haversine(a[:, 0], a[:, 1], b[:1, 0], b[:1, 1])
    got = haversine(*(torch.tensor(x, dtype=torch.float64) for x in (a[:, 0], a[:, 1], b[:1, 0], b[:1, 1])))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-9)
    m_np = haversine_matrix(a[:, 0], a[:, 1], b[:, 0], b[:, 1])
    m_t = haversine_matrix(*(torch.tensor(x, dtype=torch.float64) for x in (a[:, 0], a[:, 1], b[:, 0], b[:, 1])))
    # near the antipode the chord -> angle step is ill-conditioned and scipy's and torch's cdist
    # round differently: up to 0.19 m was seen (hypothesis found it); 1 m bounds that with margin
    np.testing.assert_allclose(m_t.numpy(), m_np, rtol=1e-9, atol=1e-3)


def test_antimeridian_and_poles():
    # 0.2 degrees of longitude across the antimeridian on the equator
    assert haversine(0.0, 179.9, 0.0, -179.9) == pytest.approx(0.2 * math.pi / 180 * EARTH_RADIUS_KM, rel=1e-9)
    assert haversine(0.0, 180.0, 0.0, -180.0) == pytest.approx(0.0, abs=1e-9)
    # every longitude names the same pole
    assert haversine(90.0, 0.0, 90.0, 123.0) == pytest.approx(0.0, abs=1e-6)
    assert haversine(-90.0, -45.0, 90.0, 10.0) == pytest.approx(math.pi * EARTH_RADIUS_KM, rel=1e-12)
    # longitudes given as 0..360 measure the same
    assert haversine(10.0, 350.0, 10.0, 10.0) == pytest.approx(haversine(10.0, -10.0, 10.0, 10.0), rel=1e-12)


def test_scalar_in_scalar_out_and_radius_parameter():
    d = haversine(48.8566, 2.3522, 51.5074, -0.1278)
    assert isinstance(d, float)
    assert d == pytest.approx(343.56, abs=0.01)
    assert haversine(48.8566, 2.3522, 51.5074, -0.1278, radius_km=6371.0) == pytest.approx(d * 6371.0 / EARTH_RADIUS_KM)


def test_broadcasting_shapes():
    lat, lon = random_points(6, 0)
    out = haversine(lat.reshape(2, 3, 1), lon.reshape(2, 3, 1), lat[:4], lon[:4])
    assert out.shape == (2, 3, 4)


def test_matrix_matches_pairwise_float64():
    la, lo = random_points(50, 1)
    lb, lob = random_points(70, 2)
    expected = haversine(la[:, None], lo[:, None], lb[None, :], lob[None, :])
    np.testing.assert_allclose(haversine_matrix(la, lo, lb, lob), expected, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_matrix_float32_error_below_1km_at_every_distance(backend):
    la, lo = random_points(200, 3)
    lb, lob = random_points(3000, 4)
    rng = np.random.default_rng(5)
    # near-identical pairs (metres apart) and near-antipodal pairs, where float32 formulas break
    lb[:200], lob[:200] = la + rng.normal(0, 1e-4, 200), lo + rng.normal(0, 1e-4, 200)
    lb[200:400], lob[200:400] = -la + rng.normal(0, 1e-4, 200), lo + 180.0 + rng.normal(0, 1e-4, 200)
    expected = haversine(la[:, None], lo[:, None], lb[None, :], lob[None, :])
    args32 = [x.astype(np.float32) for x in (la, lo, lb, lob)]
    if backend == "torch":
        got = haversine_matrix(*(torch.from_numpy(x) for x in args32))
        assert got.dtype == torch.float32
        got = got.numpy()
    else:
        got = haversine_matrix(*args32)
        assert got.dtype == np.float32
    # the reference uses the float32-rounded inputs' exact positions
    expected = haversine(*(x.astype(np.float64) for x in (args32[0][:, None], args32[1][:, None], args32[2][None], args32[3][None])))
    assert np.abs(got - expected).max() < 1.0
    # the dot-product + acos shortcut would fail this on the near-identical pairs:
    xa, xb = latlon_to_xyz(*args32[:2]), latlon_to_xyz(*args32[2:])
    acos_km = np.arccos(np.clip(xa @ xb.T, -1, 1)) * EARTH_RADIUS_KM
    assert np.abs(acos_km - expected).max() > 1.0


def test_matrix_rejects_non_1d():
    with pytest.raises(ValueError, match="lat_a must be 1-D"):
        haversine_matrix(np.zeros((2, 2)), np.zeros((2, 2)), [0.0], [0.0])


def test_gradient_flows_through_torch_haversine():
    lat = torch.tensor([10.0, 20.0], dtype=torch.float64, requires_grad=True)
    d = haversine(lat, torch.tensor([0.0, 0.0], dtype=torch.float64), 0.0, 0.0).sum()
    d.backward()
    # moving north away from the equator increases the distance by ~111 km per degree
    np.testing.assert_allclose(lat.grad.numpy(), [111.2, 111.2], rtol=1e-2)


@given(points)
def test_xyz_round_trip(p):
    xyz = latlon_to_xyz(*p)
    assert np.linalg.norm(xyz) == pytest.approx(1.0)
    lat, lon = xyz_to_latlon(xyz)
    assert haversine(float(lat), float(lon), *p) < 1e-6


def test_xyz_to_latlon_checks_shape():
    with pytest.raises(ValueError, match="last axis of length 3"):
        xyz_to_latlon(np.zeros((4, 2)))


def test_spherical_mean_across_antimeridian_and_weights():
    lat, lon = spherical_mean([0.0, 0.0], [179.0, -179.0])
    assert lat == pytest.approx(0.0, abs=1e-9) and abs(lon) == pytest.approx(180.0)
    lat, lon = spherical_mean([0.0, 0.0], [0.0, 90.0], weights=[3.0, 1.0])
    assert lon == pytest.approx(math.degrees(math.atan2(1.0, 3.0)))
    # reduction along an axis of a batch
    lat, lon = spherical_mean(np.array([[0.0, 0.0], [10.0, 10.0]]), np.array([[10.0, 20.0], [0.0, 0.0]]), axis=1)
    np.testing.assert_allclose(lat, [0.0, 10.0], atol=1e-9)
    np.testing.assert_allclose(lon, [15.0, 0.0], atol=1e-9)


def test_spherical_mean_undefined_raises():
    with pytest.raises(ValueError, match="undefined"):
        spherical_mean([0.0, 0.0], [0.0, 180.0])
    with pytest.raises(ValueError, match="non-negative"):
        spherical_mean([0.0, 1.0], [0.0, 1.0], weights=[1.0, -1.0])


@given(points, st.floats(0, 360), st.floats(0, 19000))
def test_destination_travels_the_requested_distance(p, bearing, dist):
    lat2, lon2 = destination(*p, bearing, dist)
    assert -90.0 <= lat2 <= 90.0 and -180.0 <= lon2 < 180.0
    assert haversine(*p, lat2, lon2) == pytest.approx(dist, abs=1e-6 * 20000)


def test_destination_agrees_with_pyproj_sphere():
    lon2, lat2, _ = SPHERE.fwd(2.35, 48.85, 37.0, 1234_000.0)
    got = destination(48.85, 2.35, 37.0, 1234.0)
    assert got == pytest.approx((lat2, lon2), abs=1e-7)


def test_geoguessr_score():
    assert geoguessr_score(0.0) == 5000.0
    assert geoguessr_score(1492.7) == pytest.approx(5000.0 / math.e)
    scores = geoguessr_score(np.array([0.0, 10.0, 100.0, 1000.0]))
    assert np.all(np.diff(scores) < 0)
    assert isinstance(geoguessr_score(torch.tensor([1.0])), torch.Tensor)


def test_accuracy_at_inclusive_and_exclusive():
    d = np.array([1.0, 25.0, 24.0, 3000.0])
    assert accuracy_at(d) == {1.0: 0.25, 25.0: 0.75, 200.0: 0.75, 750.0: 0.75, 2500.0: 0.75}
    assert accuracy_at(d, inclusive=False)[1.0] == 0.0
    assert accuracy_at(torch.tensor([0.5, 2.0]), thresholds=(1,)) == {1: 0.5}


@pytest.mark.parametrize("bad", [[1.0, float("nan")], [-1.0], []])
def test_accuracy_at_rejects_bad_distances(bad):
    with pytest.raises(ValueError):
        accuracy_at(bad)


def test_non_numeric_input_is_a_clear_type_error():
    with pytest.raises(TypeError, match="expected numbers"):
        haversine(["a"], [0.0], [0.0], [0.0])
