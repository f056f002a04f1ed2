"""Hygiene steps (coordinates, duplicates, image checks), the whole clean_manifest pipeline with
its atomic output, and the pre-resize cache. Fixtures are generated here with seeded code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from geocell_engine.data import hygiene
from geocell_engine.data.hygiene import (
    QualityThresholds,
    clean_coordinates,
    clean_images,
    clean_manifest,
    drop_duplicate_coordinates,
    inspect_images,
    laplacian_variance,
)
from geocell_engine.data.readers import read_manifest
from geocell_engine.data.resize import preresize, preresize_manifest
from geocell_engine.data.samples import SampleTable, sha256_file, write_manifest


def textured(size=(96, 64), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture()
def image_set(tmp_path) -> dict[str, Path]:
    """One image per condition the image step must recognise."""
    d = tmp_path / "imgs"
    d.mkdir()
    paths = {}

    def save(name, img, **kw):
        paths[name] = d / name
        img.save(paths[name], **kw)

    save("good.jpg", textured(), quality=95)
    save("black.jpg", Image.new("RGB", (96, 64), (3, 3, 3)))
    save("flat.png", Image.new("RGB", (96, 64), (120, 130, 140)))
    smooth = textured((6, 4), seed=1).resize((96, 64), Image.Resampling.BICUBIC).filter(ImageFilter.GaussianBlur(3))
    save("blurry.png", smooth)
    save("cmyk.jpg", textured(seed=2).convert("CMYK"), quality=95)
    save("grey.png", textured(seed=3).convert("L"))
    save("palette.png", textured(seed=4).convert("P"))
    save("wide.png", Image.fromarray(np.random.default_rng(5).integers(0, 65535, (64, 96), dtype=np.uint16)))
    save("trunc.jpg", textured((400, 300), seed=6), quality=95)
    data = paths["trunc.jpg"].read_bytes()
    paths["trunc.jpg"].write_bytes(data[: len(data) // 3])
    paths["junk.jpg"] = d / "junk.jpg"
    paths["junk.jpg"].write_bytes(b"this is not an image")
    paths["gone.jpg"] = d / "gone.jpg"  # never created
    return paths


def table_of(paths, lat=None, lon=None) -> SampleTable:
    n = len(paths)
    lat = np.linspace(-50, 50, n) if lat is None else lat
    lon = np.linspace(-100, 100, n) if lon is None else lon
    return SampleTable.from_columns([str(p) for p in paths], lat, lon, source="test.csv")


# ------------------------------------------------------------------------ coordinates
def test_clean_coordinates_reasons():
    lat = [48.0, np.nan, 120.0, 95.0, 0.0, 10.0, 10.0]
    lon = [2.0, 3.0, 45.0, 170.0, 0.0, 350.0, -190.0]
    t = table_of([f"/x/{i}.jpg" for i in range(7)], lat, lon)
    kept, report = clean_coordinates(t)
    assert kept.lat.tolist() == [48.0, 10.0] and kept.lon.tolist() == [2.0, -10.0]
    reasons = dict(zip(report.dropped["source_row"], report.dropped["reason"]))
    assert reasons == {1: "missing_coordinates", 2: "swapped_latlon", 3: "out_of_range",
                       4: "placeholder_0_0", 6: "out_of_range"}
    assert report.converted == {"lon_0_360": 1}
    assert report.n_in == 7 and report.n_out == 2
    assert "swapped" in report.summary() and kept.reports[-1] is report
    # the swapped row is reported with its values, never silently fixed
    swapped = report.dropped[report.dropped.reason == "swapped_latlon"]
    assert swapped["detail"].item() == "lat=120.0, lon=45.0"


def test_clean_coordinates_keeps_zero_zero_when_asked_and_skips_imagefolder():
    t = table_of(["/a.jpg"], [0.0], [0.0])
    assert len(clean_coordinates(t, drop_placeholder=False)[0]) == 1
    folder = SampleTable(t.frame.assign(lat=np.nan, lon=np.nan), layout="imagefolder", has_coordinates=False)
    kept, report = clean_coordinates(folder)
    assert len(kept) == 1 and report.counts() == {}


def test_drop_duplicate_coordinates():
    t = table_of(["/a", "/b", "/c", "/d"], [10.0, 10.000001, 20.0, 10.0], [5.0, 5.0, 5.0, 5.0])
    kept, report = drop_duplicate_coordinates(t, decimals=5)
    assert kept.paths == ["/a", "/c"]
    assert report.dropped["detail"].tolist() == ["same position as row 0", "same position as row 0"]
    kept6, _ = drop_duplicate_coordinates(t, decimals=6)
    assert kept6.paths == ["/a", "/b", "/c"]


# ------------------------------------------------------------------------ images
def test_inspect_and_clean_images(image_set):
    names = list(image_set)
    t = table_of([image_set[n] for n in names])
    stats = inspect_images(t.paths, workers=2)
    by = dict(zip(names, stats.to_dict("records")))
    assert by["gone.jpg"]["error"] == "missing_image"
    assert by["junk.jpg"]["error"] == "unreadable"
    assert by["trunc.jpg"]["error"] == "truncated"
    assert by["cmyk.jpg"]["mode"] == "CMYK" and by["wide.png"]["mode"].startswith("I")
    assert by["good.jpg"]["laplacian_var"] > 20 * by["blurry.png"]["laplacian_var"]

    kept, report = clean_images(t, stats=stats)
    assert sorted(Path(p).name for p in kept.paths) == ["cmyk.jpg", "good.jpg", "grey.png", "palette.png", "wide.png"]
    reasons = dict(zip(report.dropped["path"].map(lambda p: Path(p).name), report.dropped["reason"]))
    assert reasons == {"black.jpg": "near_black", "flat.png": "low_variance", "blurry.png": "blurry",
                       "trunc.jpg": "truncated", "junk.jpg": "unreadable", "gone.jpg": "missing_image"}
    assert report.converted == {"16bit": 1, "cmyk": 1, "greyscale": 1, "palette": 1}
    assert report.thresholds["min_laplacian_var"] == 20.0
    detail = report.dropped.set_index("reason").loc["blurry", "detail"]
    assert detail.startswith("Laplacian variance") and "< 20" in detail

    strict, report2 = clean_images(t, stats=stats, convert=False)
    assert [Path(p).name for p in strict.paths] == ["good.jpg"]
    assert report2.counts()["cmyk"] == 1 and report2.converted == {}


def test_thresholds_are_parameters(image_set):
    t = table_of([image_set["good.jpg"], image_set["blurry.png"]])
    kept, report = clean_images(t, thresholds=QualityThresholds(min_laplacian_var=0.0), workers=1)
    assert len(kept) == 2 and report.thresholds["min_laplacian_var"] == 0.0


def test_laplacian_variance():
    rng = np.random.default_rng(0)
    sharp = rng.uniform(0, 255, (64, 64))
    assert laplacian_variance(sharp) > 1000
    assert laplacian_variance(np.full((64, 64), 7.0)) == 0.0
    assert laplacian_variance(np.zeros((2, 2))) == 0.0


# ------------------------------------------------------------------------ pipeline
def _manifest(tmp_path, image_set) -> Path:
    rows = [
        ("imgs/good.jpg", 48.85, 2.35),
        ("imgs/good.jpg", 48.85, 2.35),  # duplicate position
        ("imgs/grey.png", 120.0, 45.0),  # swapped
        ("imgs/black.jpg", 10.0, 10.0),  # near-black
        ("imgs/gone.jpg", 11.0, 11.0),  # missing file
        ("imgs/cmyk.jpg", 0.0, 0.0),  # placeholder
        ("imgs/palette.png", -33.9, 151.2),
    ]
    path = tmp_path / "data.csv"
    pd.DataFrame(rows, columns=["path", "lat", "lon"]).to_csv(path, index=False)
    return path


def test_clean_manifest_end_to_end(tmp_path, image_set):
    src = _manifest(tmp_path, image_set)
    out = tmp_path / "clean" / "data.csv"
    table, sha = clean_manifest(src, out)
    assert sha == sha256_file(out)
    text = out.read_text().splitlines()
    assert text[0].startswith("path,lat,lon")
    assert text[1].startswith("../imgs/good.jpg,48.850000,2.350000")
    back = read_manifest(out)
    assert [Path(p).name for p in back.paths] == ["good.jpg", "palette.png"]
    report = json.loads((out.parent / "data.csv.report.json").read_text())
    assert report["sha256"] == sha
    steps = {s["step"]: s for s in report["steps"]}
    assert steps["read"]["dropped"] == {"missing_image": 1}
    assert steps["coordinates"]["dropped"] == {"placeholder_0_0": 1, "swapped_latlon": 1}
    assert steps["duplicates"]["dropped"] == {"duplicate_coordinates": 1}
    assert steps["images"]["dropped"] == {"near_black": 1}
    assert steps["images"]["converted"] == {"palette": 1}
    assert steps["images"]["examples"][0]["source_row"] == 3
    # the same input gives the same bytes
    _, sha2 = clean_manifest(src, tmp_path / "clean2" / "data.csv")
    assert sha2 == sha and (tmp_path / "clean2" / "data.csv").read_bytes() == out.read_bytes()


def test_clean_manifest_writes_nothing_on_failure(tmp_path, image_set, monkeypatch):
    src = _manifest(tmp_path, image_set)
    out = tmp_path / "clean" / "data.csv"
    with pytest.raises(ValueError, match="unknown hygiene step"):
        clean_manifest(src, out, steps=("coordinates", "blur"))

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        clean_manifest(src, out)
    assert not out.exists() and (not out.parent.exists() or list(out.parent.iterdir()) == [])


def test_write_manifest_parquet(tmp_path, image_set):
    t = table_of([image_set["good.jpg"]], [1.5], [2.5])
    write_manifest(t, tmp_path / "m.parquet", report=False)
    back = read_manifest(tmp_path / "m.parquet")
    assert back.lat.tolist() == [1.5] and back.paths == [str(image_set["good.jpg"])]


# ------------------------------------------------------------------------ pre-resize
def test_preresize_shrinks_orients_and_reuses(tmp_path, image_set):
    big = tmp_path / "big.jpg"
    arr = np.zeros((900, 1600, 3), dtype=np.uint8)
    arr[:, :800] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(arr).save(big, quality=90, exif=exif)
    t = table_of([big, image_set["grey.png"], image_set["junk.jpg"]])
    cache = tmp_path / "cache"
    small, report = preresize(t, cache, short_side=128)
    assert report.counts() == {"unreadable": 1}
    img = Image.open(small.paths[0])
    assert img.size == (128, 228)  # rotated portrait, shorter side 128
    assert np.asarray(img.convert("L"))[:100].mean() > 200  # orientation applied: white on top
    assert Image.open(small.paths[1]).size == (96, 64)  # never enlarged
    assert small.frame["original_path"].tolist() == [str(big), str(image_set["grey.png"])]
    mtimes = [Path(p).stat().st_mtime_ns for p in small.paths]
    again, _ = preresize(t, cache, short_side=128)
    assert again.paths == small.paths and [Path(p).stat().st_mtime_ns for p in again.paths] == mtimes
    assert not list(cache.rglob("*.tmp"))


def test_draft_decode_matches_full_decode(tmp_path):
    from geocell_engine.data.images import open_rgb

    path = tmp_path / "photo.jpg"
    textured((1600, 900), seed=9).filter(ImageFilter.GaussianBlur(4)).save(path, quality=92)
    fast = np.asarray(open_rgb(path, short_side=224), dtype=np.float64)
    with Image.open(path) as img:
        full = np.asarray(img.convert("RGB").resize(fast.shape[1::-1], Image.Resampling.BILINEAR), dtype=np.float64)
    assert fast.shape == (224, 398, 3)
    assert np.abs(fast - full).mean() < 4.0


def test_preresize_manifest(tmp_path, image_set):
    src = tmp_path / "m.csv"
    src.write_text("path,lat,lon\nimgs/good.jpg,1,2\nimgs/gone.jpg,3,4\n")
    table, sha = preresize_manifest(src, tmp_path / "small", short_side=32)
    assert len(table) == 1 and sha == sha256_file(tmp_path / "small" / "manifest.csv")
    back = read_manifest(tmp_path / "small" / "manifest.csv")
    assert Image.open(back.paths[0]).size == (48, 32)
    with pytest.raises(ValueError, match="short_side"):
        preresize(table, tmp_path / "x", short_side=2)


def test_hygiene_module_lists_its_steps():
    assert hygiene.STEPS == ("coordinates", "duplicates", "images")
