"""Splits: random, spatially disjoint (guarantee checked by brute force), the split manifest and
its sha256, class-balanced weights."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geocell_engine.data.splits import (
    balanced_weights,
    random_split,
    read_split_manifest,
    spatial_split,
    split_separation,
    write_split_manifest,
)
from geocell_engine.errors import SplitError


def _points(n: int, seed: int = 0, lat=(-60.0, 70.0), lon=(-180.0, 180.0)):
    rng = np.random.default_rng(seed)
    return rng.uniform(*lat, n), rng.uniform(*lon, n)


def test_random_split_sizes_and_determinism():
    s = random_split(100, sizes=(70, 20, 10), seed=3)
    assert [(s == k).sum() for k in ("train", "val", "test", "")] == [70, 20, 10, 0]
    assert np.array_equal(s, random_split(100, sizes=(70, 20, 10), seed=3))
    assert not np.array_equal(s, random_split(100, sizes=(70, 20, 10), seed=4))
    f = random_split(101, fractions=(0.8, 0.1, 0.1))
    assert [(f == k).sum() for k in ("train", "val", "test")] == [81, 10, 10]
    partial = random_split(10, sizes=(5, 1, 1))
    assert (partial == "").sum() == 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sizes": (90, 20, 10)}, "only 100"),
        ({"sizes": (10, -1, 1)}, "non-negative"),
        ({"sizes": None, "fractions": (0.5, 0.5, 0.5)}, "summing to 1"),
    ],
)
def test_random_split_rejects_bad_sizes(kwargs, match):
    with pytest.raises(SplitError, match=match):
        random_split(100, **kwargs)


def test_spatial_split_guarantee_brute_force():
    lat, lon = _points(6000, seed=1)
    s = spatial_split(lat, lon, sizes=(1500, 150, 150), buffer_km=300, region_km=150, per_region=15)
    assert [int((s.split == k).sum()) for k in ("train", "val", "test")] == [1500, 150, 150]
    brute = split_separation(lat, lon, s.split, method="brute")
    assert brute[("test", "train")] >= 300 and brute[("val", "train")] >= 300 and brute[("test", "val")] >= 300
    tree = split_separation(lat, lon, s.split)
    assert tree.keys() == brute.keys()
    for k in tree:
        assert tree[k] == pytest.approx(brute[k], abs=1e-9)
    # at most per_region held-out points come from one region, and regions are recorded
    for which in ("val", "test"):
        regions = s.region[s.split == which]
        assert (regions >= 0).all() and np.bincount(regions).max() <= 15
    assert set(s.seed_split.tolist()) == {"val", "test"}


def test_spatial_split_is_deterministic_and_seeded():
    lat, lon = _points(3000, seed=2)
    kw = dict(sizes=(600, 60, 60), buffer_km=250, region_km=100, per_region=10)
    a, b = spatial_split(lat, lon, **kw), spatial_split(lat, lon, **kw)
    assert np.array_equal(a.split, b.split)
    c = spatial_split(lat, lon, seed=1, **kw)
    assert not np.array_equal(a.split, c.split)


def test_spatial_split_drops_and_counts_unseen_labels():
    # "ZZZ" points are spread everywhere but come last, so training (the first eligible points)
    # never reaches them: every ZZZ candidate of a held-out region must be dropped and counted
    lat, lon = _points(2400, seed=6, lat=(30, 60), lon=(-10, 40))
    labels = np.array(["AAA"] * 2000 + ["ZZZ"] * 400)
    s = spatial_split(lat, lon, sizes=(300, 30, 30), buffer_km=200, region_km=100, per_region=10,
                      labels=labels, max_label_loss=1.0)
    held = np.isin(s.split, ["val", "test"])
    assert held.sum() == 60 and set(labels[held].tolist()) == {"AAA"}
    assert "ZZZ" not in set(labels[s.split == "train"].tolist())
    assert s.unseen_labels == ("ZZZ",)
    in_regions = {w: int(((s.region >= 0) & np.isin(s.region, np.flatnonzero(s.seed_split == w))
                          & (labels == "ZZZ")).sum()) for w in ("val", "test")}
    assert s.dropped_unseen == in_regions and sum(in_regions.values()) > 0


def test_spatial_split_label_loss_rule_protects_small_countries():
    rng = np.random.default_rng(5)
    lat = np.concatenate([rng.uniform(-40, 60, 3000), rng.uniform(10.0, 10.5, 200)])
    lon = np.concatenate([rng.uniform(-100, 100, 3000), rng.uniform(150.0, 150.5, 200)])
    labels = np.array(["BIG"] * 3000 + ["SMALL"] * 200)
    s = spatial_split(lat, lon, sizes=(800, 50, 50), buffer_km=300, region_km=100, per_region=10,
                      labels=labels, max_label_loss=0.5)
    # the small country is one dense blob: a region there would take all of it, so none is made
    assert (s.split[labels == "SMALL"] != "val").all() and (s.split[labels == "SMALL"] != "test").all()
    assert s.dropped_unseen == {"val": 0, "test": 0}


def test_spatial_split_fractions_take_every_eligible_training_point():
    lat, lon = _points(3000, seed=4)
    s = spatial_split(lat, lon, fractions=(0.9, 0.05, 0.05), buffer_km=200, region_km=100, per_region=20)
    assert (s.split == "val").sum() == 150 and (s.split == "test").sum() == 150
    sep = split_separation(lat, lon, s.split, method="brute")
    assert min(sep.values()) >= 200
    # every unused point is within the buffer of a held-out point (otherwise it would train)
    unused = s.split == ""
    held = np.isin(s.split, ["val", "test"]) | (s.region >= 0)
    from geocell.geodesy import haversine

    d = haversine(lat[unused][:, None], lon[unused][:, None], lat[held][None], lon[held][None]).min(axis=1)
    assert (d < 200 + 1e-3).all()


def test_spatial_split_errors_are_specific():
    lat, lon = _points(300, seed=3, lat=(40, 45), lon=(0, 5))
    with pytest.raises(SplitError, match="ran out of points|training points were asked"):
        spatial_split(lat, lon, sizes=(200, 50, 50), buffer_km=363, region_km=50, per_region=5)
    with pytest.raises(SplitError, match="labels has"):
        spatial_split(lat, lon, sizes=(10, 1, 1), labels=["A"] * 3)
    with pytest.raises(SplitError, match="per_region"):
        spatial_split(lat, lon, sizes=(10, 1, 1), per_region=0)


@settings(max_examples=15)
@given(
    seed=st.integers(0, 10_000),
    buffer_km=st.floats(50, 500),
    region_km=st.floats(0, 300),
    cap=st.integers(1, 30),
)
def test_spatial_split_guarantee_property(seed, buffer_km, region_km, cap):
    lat, lon = _points(800, seed=seed)
    try:
        s = spatial_split(lat, lon, sizes=(100, 10, 10), buffer_km=buffer_km, region_km=region_km,
                          per_region=cap, seed=seed)
    except SplitError:
        return
    sep = split_separation(lat, lon, s.split, method="brute")
    assert min(sep.values()) >= buffer_km


def test_split_separation_across_the_antimeridian():
    lat = np.array([0.0, 0.0, 0.0])
    lon = np.array([179.9, -179.9, 90.0])
    split = np.array(["train", "test", "val"])
    for method in ("tree", "brute"):
        sep = split_separation(lat, lon, split, method=method)
        assert sep[("test", "train")] == pytest.approx(22.239, abs=1e-2)


def test_split_manifest_round_trip_and_hash(tmp_path):
    ids = [f"img{i:03d}" for i in range(5)]
    split = np.array(["train", "train", "val", "test", ""])
    sha = write_split_manifest(ids, split, tmp_path / "split.csv")
    data = (tmp_path / "split.csv").read_bytes()
    assert data == b"id,split\nimg000,train\nimg001,train\nimg002,val\nimg003,test\nimg004,\n"
    assert sha == hashlib.sha256(data).hexdigest()
    assert write_split_manifest(ids, split, tmp_path / "again.csv") == sha
    back_ids, back = read_split_manifest(tmp_path / "split.csv")
    assert back_ids == ids and back.tolist() == split.tolist()


def test_split_manifest_rejects_bad_input_and_writes_nothing(tmp_path):
    with pytest.raises(SplitError, match="unknown split names"):
        write_split_manifest(["a"], ["training"], tmp_path / "s.csv")
    with pytest.raises(SplitError, match="comma"):
        write_split_manifest(["a,b"], ["train"], tmp_path / "s.csv")
    with pytest.raises(SplitError, match="2 ids but 1"):
        write_split_manifest(["a", "b"], ["train"], tmp_path / "s.csv")
    assert list(tmp_path.iterdir()) == []


def test_balanced_weights():
    w = balanced_weights(["FRA"] * 6 + ["ITA"] * 2 + ["MLT"])
    assert w.mean() == pytest.approx(1.0)
    # each class gets the same total weight
    totals = [w[:6].sum(), w[6:8].sum(), w[8:].sum()]
    assert np.allclose(totals, totals[0])
    assert np.allclose(balanced_weights(["a", "b", "b"], power=0.0), 1.0)
    soft = balanced_weights(["a"] * 4 + ["b"], power=0.5)
    assert soft[-1] / soft[0] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="power"):
        balanced_weights(["a"], power=-1)
    with pytest.raises(ValueError, match="at least one"):
        balanced_weights([])


def test_split_manifest_random_and_spatial(tmp_path):
    from geocell_engine.data.splits import split_manifest

    lat, lon = _points(1200, seed=8)
    rows = "".join(f"img/{i}.jpg,{a:.5f},{b:.5f},{'AB'[i % 2]}\n" for i, (a, b) in enumerate(zip(lat, lon)))
    (tmp_path / "m.csv").write_text("path,lat,lon,adm0_a3\n" + rows)
    split, sha = split_manifest(tmp_path / "m.csv", tmp_path / "split.csv", fractions=(0.8, 0.1, 0.1))
    ids, back = read_split_manifest(tmp_path / "split.csv")
    assert ids[:2] == ["img/0.jpg", "img/1.jpg"] and back.tolist() == split.tolist()
    assert (split == "val").sum() == 120
    split2, sha2 = split_manifest(tmp_path / "m.csv", tmp_path / "spatial.csv", method="spatial",
                                  sizes=(300, 30, 30), buffer_km=200, region_km=100, per_region=10,
                                  label_column="adm0_a3")
    assert sha2 != sha and (split2 == "test").sum() == 30
    assert min(split_separation(lat, lon, split2, method="brute").values()) >= 200
    with pytest.raises(SplitError, match="no column 'country'"):
        split_manifest(tmp_path / "m.csv", tmp_path / "x.csv", method="spatial", label_column="country")
    with pytest.raises(SplitError, match="method must be"):
        split_manifest(tmp_path / "m.csv", tmp_path / "x.csv", method="kmeans")
    assert not (tmp_path / "x.csv").exists()
