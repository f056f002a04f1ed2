"""Tests of losses/: haversine label smoothing, clipped distance regression and its sampler,
geodesic losses, MixUp/CutMix multi-label BCE."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geocell import (
    EARTH_EQUATORIAL_RADIUS_KM,
    haversine,
    haversine_matrix,
    latlon_to_xyz,
)
from heads import DistanceHead, DistanceOutput
from losses import (
    ClippedDistanceLoss,
    GeodesicLoss,
    HaversineSmoothingLoss,
    MixupBCELoss,
    NearFarPairSampler,
    UnitVectorMSELoss,
    create_mixup,
    haversine_smoothing_targets,
)

KM_PER_DEG = 2 * math.pi * 6371.0088 / 360  # 111.19508 km: one degree of arc, mean radius


def random_points(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return np.degrees(np.arcsin(rng.uniform(-1, 1, n))), rng.uniform(-180, 180, n)


# --- haversine smoothing ----------------------------------------------------------------------


def test_smoothing_matches_pigeon_on_a_hand_worked_example():
    """x = (0, 0.25); cells on the equator at lon 0, 1, 2 (and one at the pole).

    d = 0.25, 0.75, 1.75 degrees = 27.79877, 83.39631, 194.59139 km; min 27.79877 km;
    target = exp(-(d - 27.79877) / 75) = exp(0) = 1, exp(-0.741300) = 0.476494,
    exp(-2.223902) = 0.108186; the pole is 89.75 * 111.19508 km farther: exp(-133.06) ~ 0.
    """
    t = haversine_smoothing_targets([0.0], [0.25], [0.0, 0.0, 0.0, 90.0], [0.0, 1.0, 2.0, 0.0], tau_km=75.0)
    np.testing.assert_allclose(t[0], [1.0, 0.476494, 0.108186, 0.0], rtol=2e-6, atol=1e-30)
    normalised = haversine_smoothing_targets([0.0], [0.25], [0.0, 0.0, 0.0], [0.0, 1.0, 2.0], normalize=True)
    np.testing.assert_allclose(normalised[0], np.array([1.0, 0.476494, 0.108186]) / 1.58468, rtol=2e-6)
    # PIGEON's equatorial radius is a parameter: 0.5 degree farther = 55.66 instead of 55.60 km
    pigeon = haversine_smoothing_targets([0.0], [0.25], [0.0, 0.0], [0.0, 1.0], radius_km=EARTH_EQUATORIAL_RADIUS_KM)
    assert pigeon[0, 1] == pytest.approx(math.exp(-0.5 * 2 * math.pi * EARTH_EQUATORIAL_RADIUS_KM / 360 / 75), rel=1e-6)


def test_smoothing_numpy_and_torch_agree():
    lat, lon = random_points(64, 1)
    c_lat, c_lon = random_points(500, 2)
    expected = haversine_smoothing_targets(lat, lon, c_lat, c_lon)
    got = haversine_smoothing_targets(*(torch.tensor(v, dtype=torch.float32) for v in (lat, lon, c_lat, c_lon)))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float32 and got.shape == (64, 500)
    np.testing.assert_allclose(got.numpy(), expected, atol=2e-3)


@settings(max_examples=50)
@given(st.integers(0, 2**32 - 1), st.floats(5.0, 2000.0))
def test_smoothing_peaks_at_the_nearest_cell_and_decays_with_distance(seed, tau):
    lat, lon = random_points(8, seed)
    c_lat, c_lon = random_points(40, seed + 1)
    t = haversine_smoothing_targets(lat, lon, c_lat, c_lon, tau_km=tau)
    d = haversine(lat[:, None], lon[:, None], c_lat[None, :], c_lon[None, :])
    assert np.all(t <= 1.0) and np.all(t >= 0.0)
    np.testing.assert_array_equal(t.max(axis=1), 1.0)
    np.testing.assert_array_equal(t.argmax(axis=1), d.argmin(axis=1))
    order = np.argsort(d, axis=1)
    sorted_t = np.take_along_axis(t, order, axis=1)
    assert np.all(np.diff(sorted_t, axis=1) <= 1e-12)  # farther cells never get more
    normalised = haversine_smoothing_targets(lat, lon, c_lat, c_lon, tau_km=tau, normalize=True)
    np.testing.assert_allclose(normalised.sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(tau_km=0.0), "tau_km"),
        (dict(tau_km=-5.0), "tau_km"),
        (dict(tau_km=float("nan")), "tau_km"),
        (dict(lat=[0.0, 1.0]), "equal shapes"),
        (dict(lat=[float("nan")]), "entry 0"),
        (dict(lat=[95.0]), "latitude"),
        (dict(cell_lon=[0.0, float("nan")]), "entry 1"),
        (dict(cell_lat=[[0.0, 1.0]], cell_lon=[[0.0, 1.0]]), "1-D"),
    ],
)
def test_smoothing_rejects_bad_arguments(kwargs, message):
    args = dict(lat=[0.0], lon=[0.0], cell_lat=[0.0, 1.0], cell_lon=[0.0, 1.0])
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        haversine_smoothing_targets(**args)


def test_smoothing_loss_is_soft_cross_entropy():
    c_lat, c_lon = random_points(30, 3)
    lat, lon = (torch.tensor(v, dtype=torch.float32) for v in random_points(5, 4))
    criterion = HaversineSmoothingLoss(c_lat, c_lon, tau_km=300.0)
    logits = torch.randn(5, 30, requires_grad=True)
    loss = criterion(logits, lat, lon)
    targets = torch.tensor(haversine_smoothing_targets(lat.numpy(), lon.numpy(), c_lat, c_lon, 300.0), dtype=torch.float32)
    expected = -(targets * torch.log_softmax(logits, -1)).sum(-1).mean()
    torch.testing.assert_close(loss, expected, atol=1e-4, rtol=1e-4)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="shape"):
        criterion(torch.randn(5, 29), lat, lon)
    with pytest.raises(ValueError, match="lat must have shape"):
        criterion(logits, lat[:3], lon[:3])
    with pytest.raises(ValueError, match="entry 2"):
        criterion(logits, torch.tensor([0.0, 0.0, float("nan"), 0.0, 0.0]), lon)
    with pytest.raises(ValueError, match="tau_km"):
        HaversineSmoothingLoss(c_lat, c_lon, tau_km=0)


# --- clipped distance regression ----------------------------------------------------------------

ANCHOR_LAT = torch.tensor([0.0, 0.0, 0.0, 40.0, -60.0])
ANCHOR_LON = torch.tensor([1.0, 5.0, 20.0, 100.0, -70.0])  # 111, 556, 2224, ... km from (0, 0)


def true_clipped(lat, lon, clip=1110.0):
    d = haversine_matrix(lat, lon, ANCHOR_LAT, ANCHOR_LON)
    return torch.clamp(d, max=clip)


def test_distance_loss_is_zero_for_perfect_predictions():
    lat, lon = torch.tensor([0.0, 10.0]), torch.tensor([0.0, 10.0])
    criterion = ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON)
    perfect = DistanceOutput(true_clipped(lat, lon), torch.zeros(2))
    assert float(criterion(perfect, lat, lon)) == pytest.approx(0.0, abs=1e-6)
    # anything beyond the clip is the clip: predicting 1110 km for a 2224 km anchor is right
    assert float(criterion(true_clipped(lat, lon), lat, lon)) == pytest.approx(0.0, abs=1e-6)


def test_distance_loss_balances_near_and_far_pairs():
    """Image at (0, 0): anchors 0, 1 near (111, 556 km), 2, 3, 4 far. An error of e (in clips) on
    every near pair costs near_fraction * e; on every far pair (1 - near_fraction) * e."""
    lat, lon = torch.tensor([0.0]), torch.tensor([0.0])
    truth = true_clipped(lat, lon)
    near = torch.tensor([[True, True, False, False, False]])
    criterion = ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON, near_fraction=0.25, identity_weight=0.0)
    err_near = criterion(truth + 111.0 * near, lat, lon)
    err_far = criterion(truth - 111.0 * ~near, lat, lon)
    assert float(err_near) == pytest.approx(0.25 * 0.1, rel=1e-4)
    assert float(err_far) == pytest.approx(0.75 * 0.1, rel=1e-4)


def test_distance_loss_identity_term():
    lat, lon = torch.tensor([0.0]), torch.tensor([0.0])
    truth = true_clipped(lat, lon)
    criterion = ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON, identity_weight=2.0)
    terms = criterion.terms(DistanceOutput(truth, torch.tensor([222.0])), lat, lon)
    assert float(terms.pairs) == pytest.approx(0.0, abs=1e-6)
    assert float(terms.identity) == pytest.approx(0.2, rel=1e-5)
    assert float(terms.total) == pytest.approx(0.4, rel=1e-5)


def test_distance_loss_with_sampled_pairs_and_the_head():
    head = DistanceHead(8, ANCHOR_LAT, ANCHOR_LON)
    criterion = ClippedDistanceLoss.from_head(head, kind="smooth_l1")
    lat, lon = torch.tensor([0.0, 30.0, -10.0]), torch.tensor([0.0, 60.0, 150.0])
    index = NearFarPairSampler(pairs_per_image=3, seed=0).sample(lat, lon, ANCHOR_LAT, ANCHOR_LON)
    features = torch.randn(3, 8, requires_grad=True)
    loss = criterion(head(features, anchor_index=index), lat, lon)
    loss.backward()
    assert loss.ndim == 0 and features.grad.abs().sum() > 0
    assert head.anchor_embedding.grad[index.unique()].abs().sum() > 0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON, clip_km=0.0), "clip_km"),
        (lambda: ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON, identity_weight=-1.0), "identity_weight"),
        (lambda: ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON, kind="huber"), "kind"),
        (lambda: ClippedDistanceLoss([0.0, float("nan")], [0.0, 0.0]), "entry 1"),
        (lambda: ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON)(torch.zeros(2, 4), torch.zeros(2), torch.zeros(2)), "shape"),
        (lambda: ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON)(torch.zeros(2, 5), torch.zeros(3), torch.zeros(3)), "batch"),
        (lambda: ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON)(torch.zeros(1, 5), torch.tensor([float("nan")]), torch.zeros(1)), "entry 0"),
        (lambda: NearFarPairSampler(pairs_per_image=6).sample(torch.zeros(1), torch.zeros(1), ANCHOR_LAT, ANCHOR_LON), "exceeds"),
        (lambda: NearFarPairSampler(near_fraction=1.5), "near_fraction"),
    ],
)
def test_distance_loss_rejects_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_sampler_balances_near_and_far():
    a_lat, a_lon = (torch.tensor(v, dtype=torch.float32) for v in random_points(400, 5))
    lat, lon = (torch.tensor(v, dtype=torch.float32) for v in random_points(50, 6))
    sampler = NearFarPairSampler(pairs_per_image=8, near_fraction=0.5, seed=0)
    index = sampler.sample(lat, lon, a_lat, a_lon)
    assert index.shape == (50, 8) and index.dtype == torch.long
    assert all(len(set(row)) == 8 for row in index.tolist())  # no anchor twice
    d = haversine_matrix(lat, lon, a_lat, a_lon)
    near = d < 1110.0
    available = near.sum(1)
    picked_near = near.gather(1, index).sum(1)
    torch.testing.assert_close(picked_near, torch.clamp(available, max=4))  # 4 near when possible
    overall_near_share = float(near.float().mean())
    assert overall_near_share < 0.05 and float(picked_near.float().mean()) / 8 > 0.2  # vs ~2% unsampled
    again = NearFarPairSampler(pairs_per_image=8, seed=0).sample(lat, lon, a_lat, a_lon)
    assert torch.equal(index, again)  # seeded


# --- geodesic losses --------------------------------------------------------------------------


def xyz(lat, lon):
    return latlon_to_xyz(torch.tensor(lat, dtype=torch.float64), torch.tensor(lon, dtype=torch.float64))


def test_geodesic_loss_in_km_across_the_antimeridian_and_the_pole():
    criterion = GeodesicLoss()
    pred = xyz([0.0, 0.0, 89.5], [179.5, 0.0, 0.0])
    lat, lon = torch.tensor([0.0, 0.0, 89.5]), torch.tensor([-179.5, 1.0, 180.0])
    per_row = GeodesicLoss(reduction="none")(pred, lat, lon)
    np.testing.assert_allclose(per_row.numpy(), [KM_PER_DEG, KM_PER_DEG, KM_PER_DEG], rtol=1e-9)
    assert float(criterion(pred, lat, lon)) == pytest.approx(KM_PER_DEG, rel=1e-9)


def test_geodesic_loss_gradient_is_finite():
    raw = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    lat, lon = (torch.tensor(v) for v in random_points(6, 7))
    GeodesicLoss()(raw, lat, lon).backward()
    assert torch.isfinite(raw.grad).all() and raw.grad.abs().sum() > 0


def test_unit_vector_mse_is_four_sin_squared_half_angle():
    pred = xyz([0.0, 0.0, 90.0], [0.0, 90.0, 0.0]) * 7.0  # lengths do not matter
    lat, lon = torch.tensor([0.0, 0.0, -90.0]), torch.tensor([0.0, 0.0, 0.0])
    per_row = UnitVectorMSELoss(reduction="none")(pred, lat, lon)
    np.testing.assert_allclose(per_row.numpy(), [0.0, 4 * math.sin(math.pi / 4) ** 2, 4.0], atol=1e-12)


@pytest.mark.parametrize("criterion", [GeodesicLoss(), UnitVectorMSELoss()])
def test_geodesic_losses_reject_bad_arguments(criterion):
    pred = xyz([0.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="batch"):
        criterion(pred, torch.zeros(3), torch.zeros(3))
    with pytest.raises(ValueError, match="entry 1"):
        criterion(pred, torch.tensor([0.0, float("nan")]), torch.zeros(2))
    with pytest.raises(ValueError, match=r"\(B, 3\)"):
        criterion(pred[:, :2], torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="NaN"):
        criterion(torch.full((2, 3), float("nan")), torch.zeros(2), torch.zeros(2))
    with pytest.raises(ValueError, match="reduction"):
        type(criterion)(reduction="max")


# --- MixUp / CutMix as multi-label BCE ----------------------------------------------------------


@pytest.mark.parametrize(("mixup_alpha", "cutmix_alpha"), [(0.8, 0.0), (0.0, 1.0)])
def test_mixed_images_carry_both_classes(mixup_alpha, cutmix_alpha):
    mixup = create_mixup(num_classes=5, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha, seed=0)
    labels = torch.tensor([0, 1, 2, 3])
    images, soft = mixup(torch.randn(4, 3, 16, 16), labels)
    assert soft.shape == (4, 5)
    binary = (soft > 0).float()
    flipped = labels.flip(0)
    for b in range(4):  # timm mixes each image with the batch reversed
        assert binary[b, labels[b]] == 1 and binary[b, flipped[b]] == 1 and binary[b].sum() == 2
    logits = torch.randn(4, 5, requires_grad=True)
    loss = MixupBCELoss()(logits, soft)
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, binary)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


def test_mixup_bce_takes_index_targets_and_thresholds():
    logits = torch.zeros(2, 3)
    loss = MixupBCELoss()(logits, torch.tensor([0, 2]))
    assert float(loss) == pytest.approx(math.log(2), rel=1e-6)
    soft = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.5, 0.5]])
    thresholded = MixupBCELoss(target_threshold=0.2)(torch.zeros(2, 3), soft)
    assert float(thresholded) == pytest.approx(math.log(2), rel=1e-6)


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (torch.full((2, 3), 0.1), "label-smoothed"),
        (torch.tensor([[1.5, 0.0, 0.0], [0.0, 0.0, 1.0]]), r"\[0, 1\]"),
        (torch.zeros(2, 4), "differs"),
        (torch.tensor([0, 3]), "integers"),
        (torch.tensor([0.0, 1.0]), "integers"),
    ],
)
def test_mixup_bce_rejects_bad_targets(target, message):
    with pytest.raises(ValueError, match=message):
        MixupBCELoss()(torch.zeros(2, 3), target)


def test_create_mixup_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mixup_alpha"):
        create_mixup(5, mixup_alpha=0.0, cutmix_alpha=0.0)
    with pytest.raises(ValueError, match="num_classes"):
        create_mixup(1)


@pytest.mark.parametrize("fraction", [0.0, 1.0])
def test_sampler_and_loss_at_the_extreme_fractions(fraction):
    lat, lon = torch.tensor([0.0, 80.0]), torch.tensor([0.0, 0.0])  # second image: no near anchor
    index = NearFarPairSampler(pairs_per_image=3, near_fraction=fraction, seed=1).sample(
        lat, lon, ANCHOR_LAT, ANCHOR_LON
    )
    assert index.shape == (2, 3) and all(len(set(row)) == 3 for row in index.tolist())
    criterion = ClippedDistanceLoss(ANCHOR_LAT, ANCHOR_LON, near_fraction=fraction, identity_weight=0.0)
    truth = true_clipped(lat, lon).gather(1, index)
    # an image whose pairs are all far (or all near) puts its whole weight on that group
    loss = criterion(truth - 111.0, lat, lon, anchor_index=index)
    assert float(loss) == pytest.approx(0.1, rel=1e-4)
