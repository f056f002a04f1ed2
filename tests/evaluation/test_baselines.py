"""Baselines: spherical geometric median, constant guess, colour-histogram kNN, true-cell centroid.

Fixtures are small seeded synthetic point sets and images; the tiny CellSet is built with
explicit admin-1 labels, so no boundary file is read.
"""

from __future__ import annotations

import numpy as np
import pytest

from geocell import destination, haversine, spherical_mean
from geocell.errors import InvalidCoordinateError
from geocell.s2cells import build_s2
from geocell_engine.evaluation.baselines import (
    BaselineError,
    colour_histogram_features,
    constant_baseline,
    knn_colour_baseline,
    nearest_cell_bound,
    spherical_geometric_median,
    true_cell_centroid,
)
from geocell_engine.evaluation.predictions import Predictions


def total_km(lat, lon, at_lat, at_lon, weights=None):
    d = haversine(np.asarray(lat), np.asarray(lon), at_lat, at_lon)
    return float(np.sum(d if weights is None else np.asarray(weights) * d))


def skewed_set(seed=0):
    """30 points near Paris, 6 near Tokyo, 4 near Sydney, 2 in Buenos Aires."""
    rng = np.random.default_rng(seed)
    groups = [((48.86, 2.35), 30), ((35.68, 139.69), 6), ((-33.87, 151.21), 4), ((-34.6, -58.38), 2)]
    lat = np.concatenate([c[0] + rng.normal(0, 1.0, n) for c, n in groups])
    lon = np.concatenate([c[1] + rng.normal(0, 1.0, n) for c, n in groups])
    return lat, lon


# ------------------------------------------------------------------------------ geometric median
@pytest.mark.parametrize("centre", [(30.0, 40.0), (-75.0, 170.0), (0.0, 179.9), (89.0, 0.0)])
def test_median_of_symmetric_set_is_its_centre(centre):
    lat0, lon0 = centre
    bearings = np.array([0.0, 90.0, 180.0, 270.0, 45.0, 225.0])
    lat, lon = destination(lat0, lon0, bearings, 500.0)
    m_lat, m_lon = spherical_geometric_median(lat, lon)
    assert haversine(m_lat, m_lon, lat0, lon0) < 1e-3  # km


def test_median_single_point_and_heavier_of_two():
    assert spherical_geometric_median([12.5], [-45.0]) == pytest.approx((12.5, -45.0))
    m = spherical_geometric_median([10.0, 20.0], [0.0, 30.0], weights=[3.0, 1.0])
    assert haversine(*m, 10.0, 0.0) < 1e-6  # the heavier point is the median (Vardi-Zhang)
    assert isinstance(m[0], float)


def test_median_beats_spherical_mean_on_skewed_set():
    lat, lon = skewed_set()
    med = spherical_geometric_median(lat, lon)
    mean = spherical_mean(lat, lon)
    assert total_km(lat, lon, *med) < total_km(lat, lon, *mean) * 0.9
    assert haversine(*med, 48.86, 2.35) < 300  # it stays with the majority
    assert haversine(*mean, 48.86, 2.35) > 1000  # the mean is dragged away


def test_median_is_optimal_against_scipy_and_perturbations():
    from scipy.optimize import minimize

    lat, lon = skewed_set(seed=3)
    w = np.random.default_rng(1).uniform(0.5, 2.0, lat.size)
    med = spherical_geometric_median(lat, lon, weights=w)
    best = total_km(lat, lon, *med, w)
    for start in [(0.0, 0.0), (40.0, 20.0), (30.0, 100.0), spherical_mean(lat, lon)]:
        res = minimize(lambda v: total_km(lat, lon, v[0], v[1], w), np.array(start, float), method="Nelder-Mead",
                       options={"xatol": 1e-9, "fatol": 1e-9, "maxiter": 4000})
        assert best <= res.fun + 1e-6 * res.fun
    for bearing in range(0, 360, 30):
        assert best <= total_km(lat, lon, *destination(*med, bearing, 1.0), w)


def test_median_across_antimeridian():
    lat = np.array([-17.0, -16.0, -18.0, -17.5])
    lon = np.array([179.0, -179.5, 178.5, -179.0])
    m_lat, m_lon = spherical_geometric_median(lat, lon)
    assert abs(abs(m_lon) - 180.0) < 1.5 and -18 < m_lat < -16


def test_median_batched_matches_single_sets():
    rng = np.random.default_rng(5)
    lat = rng.uniform(-60, 60, (7, 9))
    lon = rng.uniform(-40, 40, (7, 9))
    b_lat, b_lon = spherical_geometric_median(lat, lon)
    assert b_lat.shape == (7,)
    for i in range(7):
        s = spherical_geometric_median(lat[i], lon[i])
        assert haversine(b_lat[i], b_lon[i], *s) < 1e-4
    t_lat, t_lon = spherical_geometric_median(lat.T, lon.T, axis=0)
    np.testing.assert_allclose(t_lat, b_lat, atol=1e-7)


def test_median_bad_inputs():
    with pytest.raises(BaselineError, match="at least one point"):
        spherical_geometric_median(np.array([]), np.array([]))
    with pytest.raises(BaselineError, match="non-negative"):
        spherical_geometric_median([0.0, 1.0], [0.0, 1.0], weights=[1.0, -1.0])
    with pytest.raises(BaselineError, match="positive total weight"):
        spherical_geometric_median([0.0, 1.0], [0.0, 1.0], weights=[0.0, 0.0])
    with pytest.raises(BaselineError, match="weights of shape"):
        spherical_geometric_median([0.0, 1.0], [0.0, 1.0], weights=[1.0, 1.0, 1.0])
    with pytest.raises(InvalidCoordinateError):
        spherical_geometric_median([0.0, 95.0], [0.0, 1.0])


# ------------------------------------------------------------------------------ constant baseline
def test_constant_baseline():
    lat, lon = skewed_set()
    country = np.array(["FRA"] * 30 + ["JPN"] * 6 + ["AUS"] * 4 + ["ARG"] * 2)
    test_lat, test_lon = np.array([48.0, 35.0, -30.0]), np.array([2.0, 139.0, 150.0])
    test_country = np.array(["FRA", "JPN", ""])
    p = constant_baseline(lat, lon, country, test_lat, test_lon, test_country,
                          test_admin1=["FRA-1", "JPN-1", ""], train_admin1=["FRA-1"] * 30 + ["X"] * 12)
    assert isinstance(p, Predictions) and len(p) == 3
    med = spherical_geometric_median(lat, lon)
    np.testing.assert_allclose(p.pred_lat, med[0])
    np.testing.assert_allclose(p.pred_lon, med[1])
    assert p.pred_country.tolist() == ["FRA"] * 3
    assert p.pred_admin1.tolist() == ["FRA-1"] * 3
    assert p.country_vocab.tolist() == ["ARG", "AUS", "FRA", "JPN"]
    np.testing.assert_allclose(p.country_proba, np.tile([2 / 42, 4 / 42, 30 / 42, 6 / 42], (3, 1)))
    no_admin = constant_baseline(lat, lon, country, test_lat, test_lon, test_country)
    assert no_admin.pred_admin1 is None and no_admin.true_admin1 is None


def test_constant_baseline_mismatched_inputs():
    with pytest.raises(BaselineError, match="train_country has 2 entries, expected 3"):
        constant_baseline([0, 1, 2], [0, 1, 2], ["A", "B"], [0], [0], ["A"])
    with pytest.raises(BaselineError, match="test has no points"):
        constant_baseline([0, 1], [0, 1], ["A", "B"], [], [], [])


# ------------------------------------------------------------------------------ colour histograms
def test_colour_histograms_match_a_per_image_reference():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 9, 5, 3), dtype=np.uint8)
    feats = colour_histogram_features(images, bins=16, joint_bins=4, batch_size=3)
    assert feats.shape == (7, 48 + 64)
    np.testing.assert_allclose(feats.sum(axis=1), 1.0)
    for i, img in enumerate(images):
        per_channel = np.concatenate([np.histogram(img[..., c], bins=16, range=(0, 256))[0] for c in range(3)])
        joint = np.histogramdd(img.reshape(-1, 3), bins=4, range=[(0, 256)] * 3)[0].ravel()
        expected = np.concatenate([per_channel / per_channel.sum(), joint / joint.sum()]) / 2
        np.testing.assert_allclose(feats[i], expected)
    np.testing.assert_allclose(colour_histogram_features(images, batch_size=1000), feats)
    only = colour_histogram_features(images, bins=8, joint_bins=0)
    assert only.shape == (7, 24) and np.allclose(only.sum(axis=1), 1.0)


def test_colour_histograms_reject_bad_images():
    with pytest.raises(BaselineError, match=r"\(N, H, W, 3\)"):
        colour_histogram_features(np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(BaselineError, match="uint8"):
        colour_histogram_features(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(BaselineError, match="power of two"):
        colour_histogram_features(np.zeros((2, 4, 4, 3), np.uint8), bins=10)


# ------------------------------------------------------------------------------ kNN
def coloured_regions(n_per=20, seed=0):
    """Three regions, each with its own dominant colour; points scattered ~100 km around a centre."""
    rng = np.random.default_rng(seed)
    centres = {"FRA": (47.0, 2.0), "BRA": (-10.0, -52.0), "AUS": (-25.0, 134.0)}
    colours = {"FRA": (200, 40, 40), "BRA": (40, 200, 40), "AUS": (40, 40, 200)}
    lat, lon, country, images = [], [], [], []
    for name, (c_lat, c_lon) in centres.items():
        lat.append(c_lat + rng.normal(0, 1.0, n_per))
        lon.append(c_lon + rng.normal(0, 1.0, n_per))
        country += [name] * n_per
        noise = rng.normal(0, 25, (n_per, 8, 8, 3))
        images.append(np.clip(np.array(colours[name]) + noise, 0, 255).astype(np.uint8))
    return np.concatenate(lat), np.concatenate(lon), np.array(country), np.concatenate(images), centres


def test_knn_recovers_training_locations():
    lat, lon, country, images, centres = coloured_regions()
    p = knn_colour_baseline(images, lat, lon, country, images, lat, lon, country, k=1)
    np.testing.assert_allclose(p.pred_lat, lat, atol=1e-9)
    np.testing.assert_allclose(p.pred_lon, lon, atol=1e-9)
    assert (p.pred_country == country).all()
    p10 = knn_colour_baseline(images, lat, lon, country, images, lat, lon, country, k=10)
    assert (p10.pred_country == country).all()
    np.testing.assert_allclose(p10.country_proba.sum(axis=1), 1.0)
    assert p10.country_vocab.tolist() == ["AUS", "BRA", "FRA"]
    centre_lat = np.array([centres[c][0] for c in country])
    centre_lon = np.array([centres[c][1] for c in country])
    # the median of 10 same-region neighbours lies within the region
    assert np.max(haversine(p10.pred_lat, p10.pred_lon, centre_lat, centre_lon)) < 250


def test_knn_votes_and_ties_follow_the_nearest_neighbour():
    images = np.zeros((4, 2, 2, 3), np.uint8)  # pixels: A all 0; B three 0 and one 100 (nearer)
    images[1, 1, 1] = 100
    images[2:] = 200
    query = np.zeros((1, 2, 2, 3), np.uint8)
    query[0, 1] = 100
    p = knn_colour_baseline(images, [0, 1, 2, 3], [0, 0, 0, 0], ["A", "B", "A", "B"],
                            query, [1.0], [0.0], ["B"], k=2)
    assert p.country_proba.tolist() == [[0.5, 0.5]]
    assert p.pred_country.tolist() == ["B"]


def test_knn_bad_k_and_sizes():
    lat, lon, country, images, _ = coloured_regions(n_per=3)
    with pytest.raises(BaselineError, match=r"k must be an integer in \[1, 9\]"):
        knn_colour_baseline(images, lat, lon, country, images, lat, lon, country, k=10)
    with pytest.raises(BaselineError, match="test_images has 8 images, expected 9"):
        knn_colour_baseline(images, lat, lon, country, images[:8], lat, lon, country, k=2)


# ------------------------------------------------------------------------------ true-cell centroid
def test_true_cell_centroid():
    rng = np.random.default_rng(0)
    lat = np.r_[rng.normal(48, 1, 150), rng.normal(40, 1, 150)]
    lon = np.r_[rng.normal(2, 1, 150), rng.normal(-100, 1, 150)]
    admin1 = np.array(["FRA-1"] * 150 + ["USA-1"] * 150)
    cells = build_s2(lat, lon, tau_min=5, tau_max=[60], point_admin1=admin1,
                     admin1_country={"FRA-1": "FRA", "USA-1": "USA"})[0]
    test_lat, test_lon = lat[::10] + 0.01, lon[::10] - 0.01
    test_country = np.where(test_lon > -50, "FRA", "USA")
    p = true_cell_centroid(cells, test_lat, test_lon, test_country, test_admin1=admin1[::10])
    assert p.name == "true-cell centroid"
    old = nearest_cell_bound(cells, test_lat, test_lon, test_country, test_admin1=admin1[::10])  # the old name
    np.testing.assert_array_equal(old.pred_lat, p.pred_lat)
    cell = cells.assign(test_lat, test_lon)
    np.testing.assert_array_equal(p.true_cell, cell)
    np.testing.assert_array_equal(p.pred_cell, cell)
    np.testing.assert_allclose(p.pred_lat, cells.centroid_lat[cell])
    np.testing.assert_allclose(p.pred_lon, cells.centroid_lon[cell])
    assert (p.pred_country == test_country).all()
    assert (p.pred_admin1 == admin1[::10]).all()
    const = constant_baseline(lat, lon, np.where(lon > -50, "FRA", "USA"), test_lat, test_lon, test_country)
    bound_km = haversine(test_lat, test_lon, p.pred_lat, p.pred_lon)
    const_km = haversine(test_lat, test_lon, const.pred_lat, const.pred_lon)
    assert np.median(bound_km) < np.median(const_km) / 10
