"""Benchmark files as `evaluate` reads them: GeoCLIP's layout, YFCC4k's missing images, swapped
headers, OSV-5M's Namibian rows, and whole-file evaluation (no split column, no 80/10/10 split)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from geocell.errors import InvalidCoordinateError, SwappedCoordinatesWarning
from geocell_engine.data.dataset import load_eval_split
from geocell_engine.data.readers import detect_layout, read_manifest
from geocell_engine.errors import DataError, ManifestError
from tests import benchmark_files as bf


def test_geoclip_layout_finds_images_and_keeps_only_present_ones(tmp_path):
    truth = bf.im2gps3k_style(tmp_path / "yfcc25600.csv", 50, seed=1, layout="geoclip", images=True)
    assert detect_layout(["IMG_FILE", "LAT", "LON"]) == ("geoclip", {"key": "IMG_FILE", "lat": "LAT", "lon": "LON"})
    gone = truth["IMG_ID"].iloc[[3, 7, 11]]
    for name in gone:
        (tmp_path / "im2gps3ktest" / name).unlink()
    with pytest.raises(ManifestError, match=r"row 3 \(line 5\): image .* not found .*3 missing images in all"):
        read_manifest(tmp_path / "yfcc25600.csv")
    table = read_manifest(tmp_path / "yfcc25600.csv", missing="drop")
    assert table.layout == "geoclip" and len(table) == 47
    (report,) = table.reports
    assert (report.n_in, report.n_out) == (50, 47) and sorted(report.dropped.source_row) == [3, 7, 11]


def test_swapped_header_in_range_warns_naming_the_columns(tmp_path):
    bf.im2gps3k_style(tmp_path / "im2gps3k_places365.csv", 3000, seed=0, swapped_header=True, max_abs_lon=90)
    with pytest.warns(SwappedCoordinatesWarning, match=r"columns 'LAT' \(read as latitude\) and 'LON' .* look swapped"):
        read_manifest(tmp_path / "im2gps3k_places365.csv", missing="ignore")
    bf.im2gps3k_style(tmp_path / "right.csv", 3000, seed=0, max_abs_lon=90)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SwappedCoordinatesWarning)
        read_manifest(tmp_path / "right.csv", missing="ignore")


def test_swapped_header_out_of_range_is_an_error_naming_the_column(tmp_path):
    bf.im2gps3k_style(tmp_path / "im2gps3k_places365.csv", 300, seed=0, swapped_header=True)
    with pytest.raises(InvalidCoordinateError, match=r"line \d+\): column 'LAT' \(latitude\) .* outside \[-90, 90\]"):
        read_manifest(tmp_path / "im2gps3k_places365.csv", missing="ignore")


def test_osv5m_file_keeps_namibian_rows(tmp_path):
    frame = bf.osv5m_style(tmp_path / "test.csv", 100, n_namibia=12)
    table = read_manifest(tmp_path / "test.csv", missing="ignore")
    assert table.layout == "osv5m" and len(table) == 100
    assert (table.frame["country"] == "NA").sum() == 12 and (table.frame["adm0_a3"] == "NAM").sum() == 12
    assert (table.frame["unique_country"].to_numpy() == frame["unique_country"].to_numpy()).all()


def _manifest(tmp_path, n=40, split=None):
    names = [f"img/{i}.jpg" for i in range(n)]
    bf.write_images(tmp_path, names)
    lat, lon = bf.cities(n, seed=5)
    frame = pd.DataFrame({"path": names, "lat": lat, "lon": lon})
    if split is not None:
        frame["split"] = split
    frame.to_csv(tmp_path / "m.csv", index=False)
    return tmp_path / "m.csv"


def test_a_file_without_a_split_column_is_evaluated_whole(tmp_path):
    path = _manifest(tmp_path, 40)
    data = load_eval_split(str(path))
    assert (data.split_name, data.in_file, data.selected, len(data.split)) == ("all", 40, 40, 40)
    assert data.split.name == "all"
    with pytest.raises(DataError, match="has no split column .* all 40 rows are evaluated; leave out --split test"):
        load_eval_split(str(path), "test")


def test_a_split_column_selects_and_an_all_test_file_is_fine(tmp_path):
    path = _manifest(tmp_path, 40, split=np.where(np.arange(40) < 30, "train", "test"))
    data = load_eval_split(str(path))  # default: test
    assert (data.split_name, data.in_file, data.selected, len(data.split)) == ("test", 40, 10, 10)
    assert len(load_eval_split(str(path), "train").split) == 30
    with pytest.raises(DataError, match="the val split is empty"):
        load_eval_split(str(path), "val")
    all_test = _manifest(tmp_path / "t", 20, split="test")
    assert len(load_eval_split(str(all_test)).split) == 20  # load_splits refuses it: its train split is empty


def test_missing_images_are_counted_under_the_split(tmp_path):
    path = _manifest(tmp_path, 30)
    for i in (2, 4):
        (tmp_path / "img" / f"{i}.jpg").unlink()
    with pytest.raises(DataError, match=r"row 2 \(line 4\).*2 missing image files in all"):
        load_eval_split(str(path))
    data = load_eval_split(str(path), on_bad_image="skip")
    assert (data.selected, len(data.split)) == (30, 28)
    assert data.info.images.counts("all") == {"missing": 2, "unreadable": 0}
