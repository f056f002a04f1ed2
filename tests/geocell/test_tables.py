"""Reading point tables and validating coordinates: every bad input gets a specific message."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geocell.errors import InputFileError, InvalidCoordinateError, TableError
from geocell.tables import atomic_write, read_points, write_table
from geocell.validate import check_latlon


def write_csv(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("header", "lat_col", "lon_col"),
    [("lat,lon", "lat", "lon"), ("Latitude,Longitude", "Latitude", "Longitude"), ("LAT,lng", "LAT", "lng"),
     ("id,latitude,long", "latitude", "long")],
)
def test_column_detection(tmp_path, header, lat_col, lon_col):
    ncols = header.count(",") + 1
    row = ",".join(["7"] * (ncols - 2) + ["48.5", "2.25"])
    points = read_points(write_csv(tmp_path / "p.csv", f"{header}\n{row}\n"))
    assert (points.lat_column, points.lon_column) == (lat_col, lon_col)
    assert points.lat.tolist() == [48.5] and points.lon.tolist() == [2.25]


def test_parquet_round_trip(tmp_path):
    frame = pd.DataFrame({"lat": [1.0, 2.0], "lon": [3.0, 4.0], "name": ["a", "b"]})
    write_table(frame, tmp_path / "p.parquet")
    points = read_points(tmp_path / "p.parquet")
    assert points.lon.tolist() == [3.0, 4.0]
    assert list(points.frame["name"]) == ["a", "b"]


def test_longitudes_0_360_are_normalised_and_counted(tmp_path):
    points = read_points(write_csv(tmp_path / "p.csv", "lat,lon\n10,350\n10,10\n-5,180\n"))
    assert points.lon.tolist() == [-10.0, 10.0, 180.0]
    assert points.n_wrapped_lon == 1


@pytest.mark.parametrize(
    ("text", "error", "pattern"),
    [
        ("", TableError, "empty"),
        ("lat,lon\n", TableError, "no rows"),
        ("x,lon\n1,2\n", TableError, r"no latitude column.*found columns: x, lon"),
        ("lat,y\n1,2\n", TableError, r"no longitude column.*found columns: lat, y"),
        ("lat,lon\n1,2\nabc,3\n", TableError, r"row 1 \(line 3\): column 'lat' holds 'abc', which is not a number"),
        ("lat,lon\n1,2\n3,\n", InvalidCoordinateError, r"row 1 \(line 3\): longitude missing \(NaN\)"),
        ("lat,lon\n1,2\n95,3\n", InvalidCoordinateError, r"row 1 \(line 3\): latitude 95.0 is outside \[-90, 90\]"),
        ("lat,lon\n1,2\n3,-200\n", InvalidCoordinateError, r"row 1 \(line 3\): longitude -200.0 is outside"),
        ("lat,lon\n120,40\n", InvalidCoordinateError, "may be swapped"),
    ],
)
def test_bad_tables_name_the_problem(tmp_path, text, error, pattern):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(error, match=pattern):
        read_points(path)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        read_points(tmp_path / "nope.csv")
    with pytest.raises(TableError, match="unknown table format"):
        read_points(write_csv(tmp_path / "p.txt", "lat,lon\n1,2\n"))


def test_check_latlon_counts_all_bad_values():
    with pytest.raises(InvalidCoordinateError, match=r"index 1: latitude missing \(NaN\).*2 bad values"):
        check_latlon([0.0, np.nan, 91.0], [0.0, 0.0, 0.0])
    with pytest.raises(InvalidCoordinateError, match="outside"):
        check_latlon(0.0, 270.0, wrap_lon=False)
    with pytest.raises(InvalidCoordinateError, match="index 0: latitude 'north' is not a number"):
        check_latlon(["north"], [0.0])


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("previous")

    def failing_writer(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, failing_writer)
    assert target.read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_write_table_gzip_csv(tmp_path):
    write_table(pd.DataFrame({"lat": [1.5], "lon": [2.5]}), tmp_path / "p.csv.gz")
    assert read_points(tmp_path / "p.csv.gz").lat.tolist() == [1.5]
