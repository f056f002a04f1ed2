"""Leakage: planted near-duplicates (exact, re-encoded, resized, cropped copies) of real Blue
Marble crops are found, distinct images are not; nearby points against brute force; the CLI;
the hygiene step that uses the same hashing."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geocell import haversine_matrix
from geocell_engine import cli
from geocell_engine.data.hygiene import clean_manifest, drop_duplicate_images
from geocell_engine.data.leakage import (
    check_leakage,
    find_duplicate_images,
    hamming,
    hash_images,
    nearby_points,
)
from geocell_engine.data.readers import read_manifest
from geocell_engine.errors import LeakageError


@pytest.fixture(scope="module")
def crops():
    """24 distinct, non-overlapping, textured 128 px crops of Blue Marble (decoded at half size)."""
    from geocell_engine.data.render import basemap_path

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(basemap_path("bmng")) as im:
        im.draft("RGB", (im.width // 2, im.height // 2))
        world = np.asarray(im.convert("RGB"))
    rng = np.random.default_rng(0)
    cells = [(y, x) for y in range(0, world.shape[0] - 128, 128) for x in range(0, world.shape[1] - 128, 128)]
    out = []
    for k in rng.permutation(len(cells)):
        y, x = cells[k]
        c = world[y:y + 128, x:x + 128]
        if c.mean(axis=2).std() > 25:
            out.append(np.ascontiguousarray(c))
        if len(out) == 24:
            break
    return out


def jpeg(img: Image.Image, quality=40) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def crop(img: Image.Image, frac, gx, gy) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * frac), round(h * frac)
    x0, y0 = round((w - cw) * gx), round((h - ch) * gy)
    return img.crop((x0, y0, x0 + cw, y0 + ch))


def planted(crops, root):
    """train: 16 PNG files; test: 6 copies of train images (exact file, JPEG 40, half size,
    92% centre crop, 93% crop off a corner, crop + resize + JPEG) and 6 images not in train."""
    root.mkdir(parents=True, exist_ok=True)
    train = []
    for i in range(16):
        train.append(root / f"train_{i}.png")
        Image.fromarray(crops[i]).save(train[-1])
    im = [Image.fromarray(c) for c in crops]
    copies = [None, jpeg(im[1]), im[2].resize((64, 64), Image.Resampling.BILINEAR), crop(im[3], 0.92, 0.5, 0.5),
              crop(im[4], 0.93, 0.1, 0.9), jpeg(crop(im[5], 0.94, 0.7, 0.3).resize((90, 90)), 60)]
    test = []
    for k, img in enumerate(copies):
        test.append(root / f"test_copy_{k}.{'png' if k == 0 else 'jpg'}")
        if img is None:
            shutil.copyfile(train[0], test[-1])
        else:
            img.save(test[-1], quality=95)
    for k in range(6):
        test.append(root / f"test_other_{k}.png")
        Image.fromarray(crops[16 + k]).save(test[-1])
    return [str(p) for p in train], [str(p) for p in test]


def test_planted_copies_found_and_distinct_images_not(crops, tmp_path):
    train, test = planted(crops, tmp_path)
    pairs = find_duplicate_images(hash_images(train), hash_images(test))
    found = {(int(r.test_index), int(r.train_index)): r.kind for r in pairs.itertuples()}
    assert found == {(0, 0): "exact", (1, 1): "near", (2, 2): "near", (3, 3): "near", (4, 4): "near", (5, 5): "near"}
    assert (pairs.distance <= 12).all() and pairs.test_name.iloc[0].endswith("test_copy_0.png")
    # the other way round: a training image that is a crop of a test image
    other = find_duplicate_images(hash_images(test[3:4]), hash_images(train[3:4]))
    assert len(other) == 1
    # without crop views, the cropped copies are missed: the views are what finds them
    flat = find_duplicate_images(hash_images(train, crop_fraction=1.0), hash_images(test, crop_fraction=1.0))
    assert {0, 1, 2} <= set(flat.test_index) and not {3, 4} <= set(flat.test_index)


def test_pixels_and_errors(crops, tmp_path):
    arr = np.stack(crops[:4])
    h = hash_images(arr)
    assert h.views.shape == (4, 10, 2) and h.views.dtype == np.uint64 and h.names[0] == "image 0"
    pairs = find_duplicate_images(h, hash_images(arr[[2]]))
    assert pairs[["test_index", "train_index", "kind", "distance"]].values.tolist() == [[0, 2, "exact", 0]]
    assert hamming(np.array([0b111], np.uint64), np.array([0b100, 2**64 - 1], np.uint64)).tolist() == [[2, 61]]
    with pytest.raises(LeakageError, match="threshold"):
        find_duplicate_images(h, h, threshold=65)
    with pytest.raises(LeakageError, match="crop_fraction"):
        hash_images(arr, crop_fraction=0.0)
    with pytest.raises(LeakageError, match="different crop fractions"):
        find_duplicate_images(h, hash_images(arr, crop_fraction=1.0))
    with pytest.raises(LeakageError, match="uint8 RGB"):
        hash_images(arr.astype(np.float32))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(LeakageError, match="bad.jpg: cannot decode"):
        hash_images([str(bad)])
    with pytest.raises(LeakageError, match="cannot read"):
        hash_images([str(tmp_path / "missing.png")])
    empty = find_duplicate_images(h, hash_images(np.stack(crops[10:12])))
    assert len(empty) == 0 and list(empty.columns)[:2] == ["test_index", "train_index"]


def test_nearby_points_match_brute_force():
    rng = np.random.default_rng(1)
    tr_lat, tr_lon = rng.uniform(-80, 80, 500), rng.uniform(-180, 180, 500)
    te_lat, te_lon = rng.uniform(-80, 80, 60), rng.uniform(-180, 180, 60)
    te_lat[:3], te_lon[:3] = tr_lat[:3] + 0.001, tr_lon[:3]  # ~111 m from a training point
    te_lon[3], tr_lon[499], te_lat[3], tr_lat[499] = 179.9995, -179.9995, 10.0, 10.0  # across the antimeridian
    near = nearby_points(tr_lat, tr_lon, te_lat, te_lon, max_km=1.0)
    d = haversine_matrix(te_lat, te_lon, tr_lat, tr_lon)
    assert np.array_equal(near.train_index.to_numpy(), d.argmin(axis=1))
    np.testing.assert_allclose(near.distance_km, d.min(axis=1), atol=1e-6)
    assert near.within.tolist()[:4] == [True] * 4 and near.within.sum() == 4
    with pytest.raises(LeakageError, match="max_km"):
        nearby_points(tr_lat, tr_lon, te_lat, te_lon, max_km=-1)


def manifest(paths, lat, lon, out):
    pd.DataFrame({"path": paths, "lat": lat, "lon": lon}).to_csv(out, index=False)
    return out


def test_cli_and_report(crops, tmp_path, capsys):
    train, test = planted(crops, tmp_path / "img")
    rng = np.random.default_rng(2)
    tr_lat, tr_lon = rng.uniform(-60, 60, 16), rng.uniform(-180, 180, 16)
    te_lat, te_lon = rng.uniform(-60, 60, 12), rng.uniform(-180, 180, 12)
    te_lat[7], te_lon[7] = tr_lat[9], tr_lon[9] + 0.005  # a test point 0.5 km from a training point
    a = manifest(train, tr_lat, tr_lon, tmp_path / "train.csv")
    b = manifest(test, te_lat, te_lon, tmp_path / "test.csv")
    report = check_leakage(train, test, train_latlon=(tr_lat, tr_lon), test_latlon=(te_lat, te_lon))
    assert report.n_duplicate_test_images == 6 and len(report.nearby) == 1
    assert report.min_distance_km == pytest.approx(float(report.nearby.distance_km.iloc[0]))
    out = tmp_path / "pairs.csv"
    assert cli.main(["data", "leakage", str(a), str(b), "--out", str(out), "--strict"]) == 1
    text = capsys.readouterr().out
    assert "6 test image(s) with a duplicate in training (1 exact pair(s), 5 near pair(s)" in text
    assert "1 test point(s) within 1 km" in text and "test_copy_4.jpg" in text
    written = pd.read_csv(out)
    assert (written.check == "image").sum() == 6 and (written.check == "point").sum() == 1
    assert cli.main(["data", "leakage", str(a), str(b), "--no-images", "--max-km", "0.1"]) == 0
    text = capsys.readouterr().out
    assert "0 test point(s) within 0.1 km" in text and "images:" not in text
    assert cli.main(["data", "leakage", str(a), str(tmp_path / "nope.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err


def test_hygiene_duplicate_image_step(crops, tmp_path):
    train, test = planted(crops, tmp_path / "img")
    paths = train[:6] + test[:6] + [str(tmp_path / "img" / "missing.png")]
    rng = np.random.default_rng(3)
    src = manifest(paths, rng.uniform(-60, 60, 13), rng.uniform(-180, 180, 13), tmp_path / "all.csv")
    table = read_manifest(src, missing="ignore", validate=False)
    kept, report = drop_duplicate_images(table)
    assert len(kept) == 7 and report.counts() == {"duplicate_image": 6}
    assert report.dropped.detail.iloc[0] == "duplicate image of row 0 (exact copy)"
    assert report.dropped.detail.str.startswith("duplicate image of row").all()
    out = tmp_path / "clean.csv"
    cleaned, _ = clean_manifest(src, out, steps=("coordinates", "duplicate_images"))
    assert len(cleaned) == 6  # the missing file is dropped on reading; the 6 copies by the step
    with pytest.raises(ValueError, match="duplicate_images"):
        clean_manifest(src, out, steps=("nope",))
