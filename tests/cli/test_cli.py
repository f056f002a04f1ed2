"""The command line: `label` end to end, and every bad input gives exit 2 and no output file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from geocell_engine import cli

ROOT = Path(__file__).resolve().parents[2]


def test_help_is_fast_and_imports_no_torch():
    code = "import sys; from geocell_engine import cli; cli.build_parser(); print('torch' in sys.modules, 'geopandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0


def test_label_writes_codes_and_names(tmp_path, capsys):
    src = tmp_path / "pts.csv"
    src.write_text("name,Latitude,lng\nParis,48.8566,2.3522\nSydney,-33.8688,151.2093\nPacific,0,-140\nWrapped,40.7128,285.994\n")
    out = tmp_path / "out.parquet"
    assert cli.main(["label", str(src), "--out", str(out), "--quiet"]) == 0
    frame = pd.read_parquet(out)
    assert frame["name"].tolist() == ["Paris", "Sydney", "Pacific", "Wrapped"]
    assert frame["adm0_a3"].tolist() == ["FRA", "AUS", "", "USA"]
    assert frame["iso_a2"].tolist()[:2] == ["FR", "AU"]
    assert frame["admin1"].tolist()[1] == "New South Wales"
    assert pd.isna(frame["assign_distance_km"][2])
    captured = capsys.readouterr()
    assert "points: 4" in captured.out and "unassigned (at sea): 1" in captured.out
    assert "1 longitudes in (180, 360] were normalised" in captured.err


def test_label_default_output_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "in.csv").write_text("lat,lon\n48.85,2.35\n")
    assert cli.main(["label", "in.csv", "--quiet"]) == 0
    assert pd.read_csv(tmp_path / "in_labelled.csv")["adm0_a3"].tolist() == ["FRA"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("lat,lon\n1,2\nabc,3\n", "row 1 (line 3): column 'lat' holds 'abc'"),
        ("lat,lon\n1,2\n,3\n", "row 1 (line 3): latitude missing (NaN)"),
        ("lat,lon\n1,2\nnan,3\n", "row 1 (line 3): column 'lat' holds 'nan'"),
        ("lat,lon\n1,2\n-91,3\n", "latitude -91.0 is outside [-90, 90]"),
        ("x,y\n1,2\n", "no latitude column"),
        ("lat,lon,lat\n1,2,3\n", "2 latitude columns: 'lat' (column 1), 'lat' (column 3); expected exactly one"),
        ("lat,Latitude,lon\n1,1,2\n", "2 latitude columns: 'lat' (column 1), 'Latitude' (column 2)"),
        ("lat,lon,LNG\n1,2,2\n", "2 longitude columns: 'lon' (column 2), 'LNG' (column 3)"),
        ("lat,lon\nTrue,2\nFalse,3\n", "row 0 (line 2): column 'lat' holds 'True', which is not a number (2 such"),
    ],
)
def test_bad_input_exit_2_and_no_output(tmp_path, capsys, text, message):
    src = tmp_path / "bad.csv"
    src.write_text(text)
    out = tmp_path / "out.csv"
    assert cli.main(["label", str(src), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_bad_max_distance_and_missing_file(tmp_path, capsys):
    src = tmp_path / "ok.csv"
    src.write_text("lat,lon\n1,2\n")
    assert cli.main(["label", str(src), "--max-distance-km", "-5", "--out", str(tmp_path / "o.csv")]) == 2
    assert "max_distance_km" in capsys.readouterr().err
    assert cli.main(["label", str(tmp_path / "missing.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_example_file_labels_match_geonames(tmp_path):
    out = tmp_path / "cities.csv"
    assert cli.main(["label", str(ROOT / "examples" / "cities.csv"), "--out", str(out), "--quiet"]) == 0
    from geocell.boundaries import same_country

    frame = pd.read_csv(out, keep_default_na=False)
    agree = same_country(frame["geonames_cc"].to_numpy(), frame["adm0_a3"].to_numpy())
    assert agree.mean() >= 0.995


def _label_fails(argv, capsys):
    """Run `label`, expect exit 2 and a one-line message; return the message."""
    assert cli.main(["label", *map(str, argv), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


def test_boolean_coordinate_column_in_parquet(tmp_path, capsys):
    src = tmp_path / "flags.parquet"
    pd.DataFrame({"lat": [True, False], "lon": [2.0, 3.0]}).to_parquet(src)
    err = _label_fails([src, "--out", tmp_path / "out.csv"], capsys)
    assert "column 'lat' holds booleans (dtype bool); expected numbers in degrees" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags.parquet"]


def test_repeated_column_in_parquet(tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "twice.parquet"
    pq.write_table(pa.table([pa.array([1.0]), pa.array([2.0]), pa.array([3.0])], names=["lon", "lat", "lon"]), src)
    err = _label_fails([src, "--out", tmp_path / "out.parquet"], capsys)
    assert "2 longitude columns: 'lon' (column 1), 'lon' (column 3)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["twice.parquet"]


def test_out_equal_to_the_input_is_refused_before_any_work(tmp_path, capsys, monkeypatch):
    import geocell.label
    import geocell.tables

    def no_work(*args, **kwargs):
        raise AssertionError("the input was read or labelled although --out is the input")

    monkeypatch.setattr(geocell.tables, "read_points", no_work)
    monkeypatch.setattr(geocell.label, "label_points", no_work)
    (tmp_path / "sub").mkdir()
    src = tmp_path / "in.csv"
    text = "lat,lon\n48.85,2.35\n"
    src.write_text(text)
    (tmp_path / "link.csv").symlink_to(src)
    for out in (src, tmp_path / "sub" / ".." / "in.csv", tmp_path / "link.csv"):
        err = _label_fails([src, "--out", out], capsys)
        assert f"--out {out} is the input file {src}" in err
    monkeypatch.chdir(tmp_path)
    err = _label_fails(["in.csv", "--out", src], capsys)
    assert "is the input file in.csv" in err
    assert src.read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "link.csv", "sub"]


@pytest.mark.parametrize("name", ["out.txt", "out.json", "out.csv.bz2", "out"])
def test_unknown_out_suffix_is_refused_before_reading_the_input(tmp_path, capsys, name):
    # the input does not exist: the --out check must come first
    err = _label_fails([tmp_path / "missing.csv", "--out", tmp_path / name], capsys)
    assert f"--out {tmp_path / name}: unknown output format; expected a name ending in .csv, .csv.gz, .tsv, .parquet" in err
    assert list(tmp_path.iterdir()) == []


def test_out_that_is_a_folder_is_refused(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("lat,lon\n48.85,2.35\n")
    (tmp_path / "folder.csv").mkdir()
    err = _label_fails([src, "--out", tmp_path / "folder.csv"], capsys)
    assert "folder.csv is a folder" in err


def test_a_label_killed_mid_write_leaves_a_temp_file_that_the_next_run_removes(tmp_path, capsys):
    src = tmp_path / "in.csv"
    src.write_text("lat,lon\n48.85,2.35\n")
    out = tmp_path / "out.csv"
    # a writer that is killed (SIGKILL: no cleanup possible) after writing half its file
    code = (
        "import sys, time; from geocell.tables import atomic_write\n"
        "def write(tmp):\n"
        "    tmp.write_text('lat,lon,adm0_a3\\n48.85,2.')\n"
        "    print(tmp.name, flush=True); time.sleep(60)\n"
        f"atomic_write({str(out)!r}, write)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        tmp_name = proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert tmp_name.startswith(f".out.csv.{proc.pid}@") and tmp_name.endswith(".tmp")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([tmp_name, "in.csv"])  # left behind
    assert cli.main(["label", str(src), "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]
    assert pd.read_csv(out)["adm0_a3"].tolist() == ["FRA"]
