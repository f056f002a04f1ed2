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
