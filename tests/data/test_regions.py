"""Held-out region ids recovered from coordinates: the same partition as the spatial split made,
for a synthetic split and for bluemarble-v1 itself, whose manifests (and the README's sha256s)
stay as they are."""

from __future__ import annotations

import json
import numpy as np
import pytest

from geocell_engine.data import bluemarble as bm
from geocell_engine.data.bluemarble import write_manifests
from geocell_engine.data.regions import bluemarble_clusters, bluemarble_regions, link_regions, region_link_km
from geocell_engine.data.splits import spatial_split
from geocell_engine.errors import SplitError

def same_partition(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    pairs = {(x, y) for x, y in zip(a.tolist(), b.tolist())}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_synthetic_split_regions_are_recovered():
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-60, 70, 6000), rng.uniform(-180, 180, 6000)
    s = spatial_split(lat, lon, sizes=(2000, 300, 300), buffer_km=300, region_km=120, per_region=15, seed=1)
    held = np.flatnonzero(s.split != "")
    held = held[s.split[held] != "train"]
    got = link_regions(lat[held], lon[held], held, link_km=region_link_km(120, 300))
    assert same_partition(got, s.region[held])
    # a region is named by its smallest member id, whatever subset is passed
    val = s.split[held] == "val"
    assert np.array_equal(link_regions(lat[held][val], lon[held][val], held[val], link_km=270.0), got[val])
    for r in np.unique(got):
        assert r == held[got == r].min()


def test_link_distance_needs_a_gap():
    assert region_link_km(150.0, 363.0) == pytest.approx(331.5)
    with pytest.raises(SplitError, match="2 \\* region_km < buffer_km"):
        region_link_km(200.0, 363.0)
    with pytest.raises(SplitError, match="link_km"):
        link_regions([0.0], [0.0], [1], link_km=float("nan"))
    with pytest.raises(SplitError, match="integers"):
        link_regions([0.0], [0.0], ["a"], link_km=10.0)


SMALL = bm.BlueMarbleSpec(name="bluemarble-small", sizes=(600, 60, 60), pool_size=3000, draw_block=1024, per_region=10)


def test_clusters_of_prediction_ids(tmp_path):
    """bluemarble_clusters reads a cached data set's manifests (bluemarble-v1 itself is checked in
    tests/data/test_bluemarble.py::test_frozen_definition_points_labels_split)."""
    folder = tmp_path / SMALL.name
    rng = np.random.default_rng(5)
    lat, lon = np.round(rng.uniform(-60, 70, 3000), 6), np.round(rng.uniform(-180, 180, 3000), 6)
    s = spatial_split(lat, lon, sizes=SMALL.sizes, buffer_km=SMALL.buffer_km, region_km=SMALL.region_km,
                      per_region=SMALL.per_region)
    ids = np.flatnonzero(s.split != "")
    n = ids.size
    points = bm.BlueMarblePoints(ids=ids, lat=lat[ids], lon=lon[ids], geonameid=np.zeros(n, np.int64),
                                 adm0_a3=np.full(n, "FRA"), adm1_code=np.full(n, "FRA-1"), split=s.split[ids],
                                 stats={}, region=s.region[ids])
    sha = write_manifests(points, folder)
    (folder / "info.json").write_text(json.dumps({"spec": SMALL.to_dict(), "sha256": sha}))
    held = points.split != "train"
    got = bluemarble_clusters(points.ids[held].astype(str), cache_dir=tmp_path, spec=SMALL)
    assert same_partition(got, points.region[held]) and got.dtype == np.int64
    test = points.split == "test"

    class Part:
        split = "test"
        lat, lon, ids = points.lat[test], points.lon[test], points.ids[test]

    assert np.array_equal(bluemarble_regions(Part, SMALL), got[test[held]])
    with pytest.raises(SplitError, match="training point"):
        bluemarble_clusters([points.ids[points.split == "train"][0]], cache_dir=tmp_path, spec=SMALL)
    with pytest.raises(SplitError, match="not a point"):
        bluemarble_clusters(["999999"], cache_dir=tmp_path, spec=SMALL)
    with pytest.raises(SplitError, match="no held-out regions"):
        bluemarble_regions(type("Train", (), {"split": "train"}))


def test_recorded_region_ids_are_used_and_manifests_have_none(tmp_path):
    """A version that records regions in split.csv (bluemarble-v2) gives exactly those ids, even
    where linking the coordinates would name them differently; a manifest gets None (samples are
    resampled). The folder is a stand-in with bluemarble-v2's definition and tiny manifests."""
    from geocell_engine.data.regions import dataset_clusters

    folder = tmp_path / bm.BLUEMARBLE_V2.name
    ids = np.arange(6, dtype=np.int64)
    lat = np.array([0.0, 0.1, 0.2, 20.0, 20.1, 40.0])
    split = np.array(["train", "test", "test", "test", "val", "val"])
    region = np.array([-1, 907, 907, 3, 3, 55], dtype=np.int64)  # not "smallest member id" names
    points = bm.BlueMarblePoints(ids=ids, lat=lat, lon=np.zeros(6), geonameid=np.zeros(6, np.int64),
                                 adm0_a3=np.full(6, "FRA"), adm1_code=np.full(6, "FRA-1"), split=split,
                                 stats={}, region=region)
    sha = write_manifests(points, folder, region_column=True)
    (folder / "info.json").write_text(json.dumps({"spec": bm.BLUEMARBLE_V2.to_dict(), "sha256": sha}))
    got = dataset_clusters("bluemarble-v2", ["5", "3", "1", "2", "4"], cache_dir=tmp_path)
    assert got.tolist() == [55, 3, 907, 907, 3]
    assert dataset_clusters("photos/manifest.csv", ["a", "b"], cache_dir=tmp_path) is None
    with pytest.raises(SplitError, match="training point"):
        dataset_clusters("bluemarble-v2", ["0"], cache_dir=tmp_path)
