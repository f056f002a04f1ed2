"""Readers: OSV-5M / Im2GPS / generic manifests, ImageFolder trees, EXIF GPS folders, and the
image decoder they share. Every bad input gets a message naming the file or row."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from geocell.errors import InputFileError, InvalidCoordinateError, TableError
from geocell_engine.data.countries import normalise_country
from geocell_engine.data.images import open_rgb
from geocell_engine.data.readers import (
    detect_layout,
    exif_gps,
    read_exif_folder,
    read_image_folder,
    read_manifest,
)
from geocell_engine.errors import (
    CorruptImageError,
    ManifestError,
    UnknownCountryNameError,
)


def make_image(path: Path, size=(32, 24), seed: int = 0, exif=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    kwargs = {"exif": exif} if exif is not None else {}
    img.save(path, **kwargs)
    return path


def gps_exif(lat: float, lon: float, orientation: int | None = None, raw=None) -> Image.Exif:
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    gps = exif.get_ifd(0x8825)

    def dms(v: float):
        v = abs(v)
        d = int(v)
        m = int((v - d) * 60)
        s = round((v - d - m / 60) * 3600, 4)
        return (float(d), float(m), float(s))

    if raw is not None:
        gps.update(raw)
    else:
        gps[1], gps[2] = ("N" if lat >= 0 else "S"), dms(lat)
        gps[3], gps[4] = ("E" if lon >= 0 else "W"), dms(lon)
    return exif


# ------------------------------------------------------------------------- manifests
def test_generic_manifest_relative_paths(tmp_path):
    make_image(tmp_path / "imgs" / "a.jpg")
    make_image(tmp_path / "imgs" / "b.jpg")
    (tmp_path / "m.csv").write_text("path,lat,lon,note\nimgs/a.jpg,48.85,2.35,x\nimgs/b.jpg,-33.9,151.2,y\n")
    t = read_manifest(tmp_path / "m.csv")
    assert t.layout == "generic" and t.has_coordinates
    assert t.paths == [str(tmp_path / "imgs" / "a.jpg"), str(tmp_path / "imgs" / "b.jpg")]
    assert t.lat.tolist() == [48.85, -33.9] and t.frame["note"].tolist() == ["x", "y"]
    assert list(t.frame.columns[:3]) == ["path", "lat", "lon"]


def test_generic_manifest_parquet_and_image_dir(tmp_path):
    make_image(tmp_path / "store" / "a.png")
    pd.DataFrame({"Image": ["a.png"], "Latitude": [10.0], "Longitude": [350.0]}).to_parquet(tmp_path / "m.parquet")
    t = read_manifest(tmp_path / "m.parquet", image_dir=tmp_path / "store")
    assert t.paths == [str(tmp_path / "store" / "a.png")]
    assert t.lon.tolist() == [-10.0]  # 0..360 normalised


def test_osv5m_layout(tmp_path):
    for i, gid in enumerate(["1001", "0042"]):
        make_image(tmp_path / "images" / "train" / f"0{i}" / f"{gid}.jpg", seed=i)
    (tmp_path / "train.csv").write_text(
        "id,latitude,longitude,thumb_original_url,country,sequence,captured_at,region,sub-region,city\n"
        "1001,48.85,2.35,u,FR,s,0,Ile-de-France,Paris,Paris\n"
        "0042,40.71,-74.0,u,US,s,0,New York,NY,New York\n"
    )
    t = read_manifest(tmp_path / "train.csv")
    assert t.layout == "osv5m"
    assert [Path(p).name for p in t.paths] == ["1001.jpg", "0042.jpg"]  # ids keep leading zeros
    assert t.frame["adm0_a3"].tolist() == ["FRA", "USA"]
    assert t.frame["region"].tolist() == ["Ile-de-France", "New York"]


def test_im2gps_layout(tmp_path):
    make_image(tmp_path / "im2gps3ktest" / "9_abc_o.jpg")
    (tmp_path / "im2gps3k_places365.csv").write_text("IMG_ID,AUTHOR,LAT,LON,S3_Label\n9_abc_o.jpg,me,35.68,139.69,1\n")
    t = read_manifest(tmp_path / "im2gps3k_places365.csv")
    assert t.layout == "im2gps"
    assert t.paths == [str(tmp_path / "im2gps3ktest" / "9_abc_o.jpg")]
    assert t.lat.tolist() == [35.68] and t.frame["AUTHOR"].tolist() == ["me"]


def test_detect_layout_names_the_columns():
    assert detect_layout(["IMG_ID", "LAT", "LON"])[0] == "im2gps"
    assert detect_layout(["path", "lat", "lng"])[0] == "generic"
    assert detect_layout(["id", "latitude", "longitude", "country"])[0] == "osv5m"
    with pytest.raises(ManifestError, match=r"unrecognised manifest columns id, x, y.*OSV-5M"):
        detect_layout(["id", "x", "y"])


def test_missing_image_is_named_or_dropped(tmp_path):
    make_image(tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_text("path,lat,lon\na.jpg,1,2\nb.jpg,3,4\nc.jpg,5,6\n")
    with pytest.raises(ManifestError, match=r"m\.csv: row 1 \(line 3\): image 'b\.jpg' not found .*2 missing images"):
        read_manifest(tmp_path / "m.csv")
    t = read_manifest(tmp_path / "m.csv", missing="drop")
    assert len(t) == 1 and t.reports[0].counts() == {"missing_image": 2}
    assert t.reports[0].dropped["source_row"].tolist() == [1, 2]
    assert len(read_manifest(tmp_path / "m.csv", missing="ignore")) == 3


@pytest.mark.parametrize(
    ("row", "error", "match"),
    [
        ("a.jpg,abc,2", InvalidCoordinateError, r"row 0 \(line 2\): column 'lat' holds 'abc'"),
        ("a.jpg,,2", InvalidCoordinateError, r"row 0 \(line 2\): column 'lat' \(latitude\) missing"),
        ("a.jpg,120,45", InvalidCoordinateError, r"row 0 \(line 2\): column 'lat' \(latitude\) 120.0 .*swapped"),
        ("a.jpg,10,-200", InvalidCoordinateError, r"row 0 \(line 2\): column 'lon' \(longitude\) -200.0"),
        (",10,20", ManifestError, r"row 0 \(line 2\): column 'path' is empty"),
    ],
)
def test_bad_rows_are_named(tmp_path, row, error, match):
    make_image(tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_text(f"path,lat,lon\n{row}\n")
    with pytest.raises(error, match=match):
        read_manifest(tmp_path / "m.csv")


def test_bad_coordinates_kept_without_validation(tmp_path):
    make_image(tmp_path / "a.jpg")
    (tmp_path / "m.csv").write_text("path,lat,lon\na.jpg,abc,2\na.jpg,120,45\n")
    t = read_manifest(tmp_path / "m.csv", validate=False)
    assert np.isnan(t.lat[0]) and t.lat[1] == 120.0


def test_manifest_file_errors(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_manifest(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(TableError, match="empty"):
        read_manifest(tmp_path / "empty.csv")
    (tmp_path / "m.csv").write_text("path,lat,lon\na.jpg,1,2\n")
    with pytest.raises(InputFileError, match="image folder"):
        read_manifest(tmp_path / "m.csv", image_dir=tmp_path / "absent")
    with pytest.raises(ManifestError, match="do not fit layout 'osv5m'"):
        read_manifest(tmp_path / "m.csv", layout="osv5m")


def test_ambiguous_file_name(tmp_path):
    make_image(tmp_path / "x" / "7.jpg")
    make_image(tmp_path / "y" / "7.jpg")
    (tmp_path / "m.csv").write_text("id,latitude,longitude,country\n7,1,2,FR\n")
    with pytest.raises(ManifestError, match="'7' matches several files"):
        read_manifest(tmp_path / "m.csv")


# ------------------------------------------------------------------------- ImageFolder
def test_image_folder_normalises_country_names(tmp_path):
    for folder in ("France", "united_states", "DE", "GBR", "Côte d'Ivoire"):
        make_image(tmp_path / folder / "one.jpg")
    make_image(tmp_path / "France" / "sub" / "two.png")
    make_image(tmp_path / "stray.jpg")
    (tmp_path / "France" / "notes.txt").write_text("not an image")
    t = read_image_folder(tmp_path)
    assert t.layout == "imagefolder" and not t.has_coordinates
    by_folder = dict(zip(t.frame["folder"], t.frame["adm0_a3"]))
    assert by_folder == {"France": "FRA", "united_states": "USA", "DE": "DEU", "GBR": "GBR", "Côte d'Ivoire": "CIV"}
    assert len(t) == 6 and np.isnan(t.lat).all() and np.isnan(t.lon).all()  # never invented
    assert t.reports[0].counts() == {"not_in_country_folder": 1}


def test_image_folder_unknown_country(tmp_path):
    make_image(tmp_path / "Frnace" / "a.jpg")
    with pytest.raises(UnknownCountryNameError, match=r"folder 'Frnace'.*did you mean 'france'"):
        read_image_folder(tmp_path)


def test_image_folder_errors(tmp_path):
    with pytest.raises(InputFileError, match="no such folder"):
        read_image_folder(tmp_path / "nope")
    (tmp_path / "Italy").mkdir()
    with pytest.raises(ManifestError, match="no images found"):
        read_image_folder(tmp_path)


def test_country_codes_and_aliases():
    assert normalise_country("xkx") == "KOS"
    assert normalise_country("Korea, South") == "KOR"
    assert normalise_country("the netherlands") == "NLD"
    with pytest.raises(UnknownCountryNameError, match="'Atlantis'"):
        normalise_country("Atlantis")


# ------------------------------------------------------------------------- EXIF
def test_exif_folder(tmp_path):
    make_image(tmp_path / "paris.jpg", exif=gps_exif(48.8566, 2.3522))
    make_image(tmp_path / "trip" / "rio.jpg", size=(40, 20), exif=gps_exif(-22.9068, -43.1729, orientation=6))
    make_image(tmp_path / "nogps.jpg")
    make_image(tmp_path / "bad.jpg", exif=gps_exif(0, 0, raw={1: "N", 2: (IFDRational(1, 0), 0.0, 0.0), 3: "E", 4: (1.0, 0.0, 0.0)}))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    t = read_exif_folder(tmp_path)
    assert t.layout == "exif"
    assert [Path(p).name for p in t.paths] == ["paris.jpg", "rio.jpg"]
    assert t.lat == pytest.approx([48.8566, -22.9068], abs=1e-4)
    assert t.lon == pytest.approx([2.3522, -43.1729], abs=1e-4)
    rio = t.frame.iloc[1]
    assert (rio["orientation"], rio["width"], rio["height"]) == (6, 20, 40)  # as displayed
    assert t.reports[0].counts() == {"bad_gps": 1, "no_gps": 1, "unreadable": 1}


def test_exif_folder_without_gps(tmp_path):
    make_image(tmp_path / "a.jpg")
    with pytest.raises(ManifestError, match=r"no photo with GPS.*1 image \(1 no_gps\)"):
        read_exif_folder(tmp_path)
    with pytest.raises(InputFileError):
        read_exif_folder(tmp_path / "absent")


def test_exif_gps_reference_and_range():
    assert exif_gps(Image.new("RGB", (4, 4))) is None
    exif = gps_exif(0, 0, raw={1: "X", 2: (1.0, 0.0, 0.0), 3: "E", 4: (1.0, 0.0, 0.0)})

    class Fake:
        def getexif(self):
            return exif

    with pytest.raises(ValueError, match="reference"):
        exif_gps(Fake())
    exif = gps_exif(0, 0, raw={1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (1.0, 0.0, 0.0)})
    with pytest.raises(ValueError, match="out of range"):
        exif_gps(Fake())


# ------------------------------------------------------------------------- decoding
def test_open_rgb_applies_orientation_and_converts(tmp_path):
    arr = np.zeros((10, 20, 3), dtype=np.uint8)
    arr[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(arr).save(tmp_path / "o.png", exif=exif)
    img = open_rgb(tmp_path / "o.png")
    assert img.size == (10, 20)
    out = np.asarray(img)
    assert out[:10].mean() > 200 and out[10:].mean() < 50  # the white half is now on top
    Image.new("CMYK", (30, 20), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    rgb = open_rgb(tmp_path / "c.jpg", short_side=10)
    assert rgb.mode == "RGB" and rgb.size == (15, 10)
    Image.fromarray(np.full((8, 8), 65535, dtype=np.uint16)).save(tmp_path / "w.png")
    assert np.asarray(open_rgb(tmp_path / "w.png")).min() == 255


def test_open_rgb_errors_name_the_file(tmp_path):
    with pytest.raises(InputFileError, match="nope.jpg"):
        open_rgb(tmp_path / "nope.jpg")
    (tmp_path / "x.jpg").write_text("hello")
    with pytest.raises(CorruptImageError, match=r"x\.jpg: not a recognised image"):
        open_rgb(tmp_path / "x.jpg")
    make_image(tmp_path / "t.jpg", size=(200, 200))
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match=r"t\.jpg: cannot decode.*truncated"):
        open_rgb(tmp_path / "t.jpg")
    assert os.path.getsize(tmp_path / "t.jpg") == len(data) // 2


def test_image_folder_manifest_round_trip(tmp_path):
    from geocell_engine.data.samples import write_manifest

    make_image(tmp_path / "tree" / "Japan" / "a.jpg")
    make_image(tmp_path / "tree" / "NZ" / "b.jpg")
    table = read_image_folder(tmp_path / "tree")
    write_manifest(table, tmp_path / "countries.csv")
    assert (tmp_path / "countries.csv").read_text().splitlines()[1] == "tree/Japan/a.jpg,,,JPN,Japan"
    back = read_manifest(tmp_path / "countries.csv")
    assert not back.has_coordinates and back.frame["adm0_a3"].tolist() == ["JPN", "NZL"]
    (tmp_path / "labels_only.csv").write_text("path,adm0_a3\ntree/Japan/a.jpg,JPN\n")
    only = read_manifest(tmp_path / "labels_only.csv")
    assert not only.has_coordinates and np.isnan(only.lat).all()


def test_two_latitude_columns_are_refused_by_name():
    from geocell_engine.data.readers import detect_layout

    with pytest.raises(ManifestError, match=r"2 latitude columns \(lat, latitude\); keep one"):
        detect_layout(["path", "lat", "latitude", "lon"])
    assert detect_layout(["path", "lat", "lon"])[0] == "generic"
