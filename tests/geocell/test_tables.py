"""Reading point tables and validating coordinates: every bad input gets a specific message."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from geocell.errors import InputFileError, InvalidCoordinateError, OutputFileError, TableError
from geocell.tables import (
    _host_tag,
    atomic_write,
    check_output_path,
    read_points,
    remove_stale_temp_files,
    write_table,
)
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


@pytest.mark.parametrize(
    ("header", "what", "named"),
    [("lat,lon,lat", "latitude", "'lat' (column 1), 'lat' (column 3)"),
     ("Latitude,lon,LAT", "latitude", "'Latitude' (column 1), 'LAT' (column 3)"),
     ("lat,longitude,long", "longitude", "'longitude' (column 2), 'long' (column 3)"),
     (" lat ,lat,lon", "latitude", "' lat ' (column 1), 'lat' (column 2)")],
)
def test_repeated_or_ambiguous_coordinate_columns_are_refused(tmp_path, header, what, named):
    path = write_csv(tmp_path / "p.csv", f"{header}\n1,2,3\n")
    with pytest.raises(TableError, match=re.escape(f"2 {what} columns: {named}; expected exactly one")):
        read_points(path)


def test_other_repeated_columns_are_kept(tmp_path):
    points = read_points(write_csv(tmp_path / "p.csv", "name,lat,lon,name\na,1,2,b\n"))
    assert points.lat.tolist() == [1.0] and list(points.frame.columns) == ["name", "lat", "lon", "name.1"]


@pytest.mark.parametrize("dtype", ["bool", "boolean"])
def test_boolean_coordinate_columns_are_refused(tmp_path, dtype):
    path = tmp_path / "p.parquet"
    pd.DataFrame({"lat": [1.0, 2.0], "lon": pd.Series([True, False], dtype=dtype)}).to_parquet(path)
    with pytest.raises(TableError, match=f"column 'lon' holds booleans \\(dtype {dtype}\\)"):
        read_points(path)


def test_check_output_path(tmp_path):
    src = write_csv(tmp_path / "in.csv", "lat,lon\n1,2\n")
    assert check_output_path(tmp_path / "OUT.CSV.GZ", inputs=[src]) == tmp_path / "OUT.CSV.GZ"
    with pytest.raises(OutputFileError, match="is the input file"):
        check_output_path(tmp_path / "." / "in.csv", inputs=[src])
    os.link(src, tmp_path / "hard.csv")
    with pytest.raises(OutputFileError, match="hard.csv is the input file"):
        check_output_path(tmp_path / "hard.csv", inputs=[src])
    with pytest.raises(OutputFileError, match=r"unknown output format; expected a name ending in \.parquet$"):
        check_output_path(tmp_path / "cells.csv", suffixes=(".parquet",))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.csv", "in.csv"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_atomic_write_names_its_temp_file_after_the_target_and_the_writer(tmp_path):
    seen = []
    atomic_write(tmp_path / "out.csv", lambda tmp: (seen.append(tmp.name), tmp.write_text("x")))
    assert seen[0].startswith(f".out.csv.{os.getpid()}@{_host_tag()}.") and seen[0].endswith(".tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


def test_stale_temp_files_are_removed_and_live_ones_kept(tmp_path):
    host, dead = _host_tag(), _dead_pid()
    target = tmp_path / "out.csv"
    stale = [tmp_path / f".out.csv.{dead}@{host}.abc123_x.tmp", tmp_path / f".out.csv.{dead}@{host}.zzz.tmp"]
    kept = [
        tmp_path / f".out.csv.{os.getpid()}@{host}.mine.tmp",  # this process: a concurrent write
        tmp_path / f".out.csv.{os.getppid()}@{host}.parent.tmp",  # a live process
        tmp_path / f".out.csv.{dead}@other-host.abc.tmp",  # another machine: cannot be checked
        tmp_path / f".out.csv.gz.{dead}@{host}.abc.tmp",  # another target
        tmp_path / f".out.csv.{dead}.tmp",  # not made by atomic_write
        tmp_path / "out.csv.tmp",
    ]
    for f in stale + kept:
        f.write_text("half")
    assert sorted(remove_stale_temp_files(target)) == sorted(stale)
    assert sorted(tmp_path.iterdir()) == sorted(kept)
    for f in stale:
        f.write_text("half")
    atomic_write(target, lambda tmp: tmp.write_text("done"))  # every write cleans up first
    assert sorted(tmp_path.iterdir()) == sorted(kept + [target]) and target.read_text() == "done"


def test_target_names_with_glob_characters(tmp_path):
    target = tmp_path / "pts[1]*.csv"
    stale = tmp_path / f".pts[1]*.csv.{_dead_pid()}@{_host_tag()}.abc.tmp"
    stale.write_text("half")
    atomic_write(target, lambda tmp: tmp.write_text("done"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pts[1]*.csv"]
