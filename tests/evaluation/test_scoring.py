"""`cli.py score`: any system's predictions under every profile, on generated benchmark files.

No model is needed: the files are written by tests/benchmark_files.py (real GeoNames places,
seeded guesses), and every number is compared with a direct computation of the same profile.
"""

from __future__ import annotations

import re

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from geocell.errors import InvalidCoordinateError, SwappedCoordinatesWarning, TableError
from geocell.profiles import PROFILES, score_profile
from geocell_engine import cli
from geocell_engine.evaluation.scoring import read_scoring_inputs, score_files
from tests import benchmark_files as bf


@pytest.fixture(scope="module")
def im2gps3k(tmp_path_factory):
    d = tmp_path_factory.mktemp("im2gps3k")
    truth = bf.im2gps3k_style(d / "im2gps3k_places365.csv", 3000, seed=0)
    bf.predictions(truth, d / "geoclip_dump.csv", seed=1)
    return d, truth


def _split_cell(cell: str) -> tuple[float, float, float]:
    """``"2,235 (2,101–2,390)"`` -> (2235.0, 2101.0, 2390.0)."""
    m = re.fullmatch(r"([-\d.,]+) \(([-\d.,]+)–([-\d.,]+)\)", cell)
    assert m, f"no interval in {cell!r}"
    return tuple(float(g.replace(",", "")) for g in m.groups())  # type: ignore[return-value]


def _table_rows(text: str, intervals: bool = False) -> dict[str, list[str]]:
    """Cells of each table row by predictor; the interval of a cell is dropped (``"300 (281–317)"``
    -> ``"300"``) unless ``intervals``."""
    rows = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| predictor") and not line.startswith("| ---"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not intervals:
                cells = [c.split(" (")[0] for c in cells]
            rows.setdefault(cells[0], cells[1:])
    return rows


def test_score_cli_scores_a_3000_row_im2gps3k_file_in_full_under_every_profile(im2gps3k, capsys):
    d, truth = im2gps3k
    code = cli.main(["score", str(d / "geoclip_dump.csv"), "--truth", str(d / "im2gps3k_places365.csv"),
                     "--profile", *PROFILES])
    out = capsys.readouterr().out
    assert code == 0
    assert "rows: 3,000 in" in out and "3,000 scored, 0 without a prediction, 0 unreadable" in out
    assert "| predictor | median km | mean km | 25 km % |" in out  # mixed < and <=: no sign
    rows = _table_rows(out)
    preds = pd.read_csv(d / "geoclip_dump.csv")
    for name in PROFILES:
        direct = score_profile(name, truth["lat"], truth["lon"], preds["pred_lat"], preds["pred_lon"])
        row = rows[f"geoclip_dump [{name}]"]
        assert float(row[0].replace(",", "")) == pytest.approx(direct.distance.median_km, abs=0.5)
        assert float(row[3]) == pytest.approx(100 * direct.distance.accuracy_at_km[200.0], abs=0.05)
    # every headline cell carries its 95% interval, and the interval holds the point
    with_iv = _table_rows(out, intervals=True)
    assert "95% intervals in brackets: sample bootstrap over 3,000 samples" in out
    for name in PROFILES:
        cells = with_iv[f"geoclip_dump [{name}]"]
        for cell in cells[:7] + ([cells[7]] if name != "geoclip" else []):  # median .. GeoScore, country top-1
            point, low, high = _split_cell(cell)
            assert low <= point <= high and low < high, (name, cell)


def test_results_follow_each_profile(im2gps3k):
    d, truth = im2gps3k
    results, inputs = score_files(d / "geoclip_dump.csv", d / "im2gps3k_places365.csv", list(PROFILES))
    assert inputs.rows.scored == 3000
    by = {r.profile: r for r in results.values()}
    assert by["osv5m"].distance.mean_km < by["pigeon"].distance.mean_km  # R 6371 < 6378.137
    total = by["pigeon"].mean_geoscore * 3000  # a sum of 3000 rounded scores is a whole number
    assert total == pytest.approx(round(total), abs=1e-6) and by["osv5m"].mean_geoscore * 3000 % 1 > 1e-6
    assert [lv.level for lv in by["osv5m"].levels] == ["country", "region", "sub-region", "city"]
    assert [lv.level for lv in by["pigeon"].levels] == ["country"] and by["geoclip"].levels == ()
    assert {lv.method for lv in by["geocell"].levels} == {"natural_earth (guessed point)"}
    assert by["geocell"].country is not None and by["osv5m"].country is None


def test_truth_rows_without_a_prediction_are_counted(tmp_path):
    truth = bf.im2gps3k_style(tmp_path / "yfcc4k.csv", 200, seed=2, layout="geoclip")
    keep = np.ones(200, bool)
    keep[::10] = False  # 20 images missing from this copy of YFCC4k: GeoCLIP would skip them silently
    bf.predictions(truth, tmp_path / "p.csv", keep=keep, id_column="IMG_FILE")
    results, inputs = score_files(tmp_path / "p.csv", tmp_path / "yfcc4k.csv", ["geoclip"])
    assert (inputs.rows.in_file, inputs.rows.scored, inputs.rows.missing) == (200, 180, 20)
    assert "180 scored, 20 without a prediction" in inputs.rows.summary()
    assert results["p"].n == 180
    code = cli.main(["score", str(tmp_path / "p.csv"), "--truth", str(tmp_path / "yfcc4k.csv"), "--profile", "geoclip",
                     "osv5m", "--out-dir", str(tmp_path / "report")])
    assert code == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert (report["rows"]["scored"], report["rows"]["missing"]) == (180, 20)
    assert {r["profile"] for r in report["results"].values()} == {"geoclip", "osv5m"}
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Admin levels" in md and "180 scored, 20 without a prediction" in md


def test_osv5m_file_keeps_namibia(tmp_path, capsys):
    frame = bf.osv5m_style(tmp_path / "test.csv", 300, n_namibia=30)
    guesses = pd.DataFrame({"id": frame["id"], "lat": frame["latitude"].astype(float) + 1e-4,
                            "lon": frame["longitude"].astype(float)})
    guesses.to_csv(tmp_path / "p.csv", index=False)
    results, inputs = score_files(tmp_path / "p.csv", tmp_path / "test.csv", ["osv5m"])
    assert (inputs.true_levels["country"] == "NA").sum() == 30  # "NA" read as Namibia, not as missing
    country = next(lv for lv in results["p"].levels if lv.level == "country")
    assert (country.n, country.correct) == (300, 300)  # every row kept, Namibian guesses count as hits
    assert cli.main(["score", str(tmp_path / "p.csv"), "--truth", str(tmp_path / "test.csv"), "--profile", "osv5m"]) == 0
    out = capsys.readouterr().out
    assert "| p | country | 300 / 300 | 100.0 | reverse_geocoder |" in out


def test_self_contained_predictions_and_our_dump(tmp_path):
    pd.DataFrame({"image": ["a", "b"], "GT_Lat": [48.85, 40.71], "GT_Lon": [2.35, -74.0],
                  "lat_pred": [48.0, 40.0], "lon_pred": [2.0, -74.0]}).to_csv(tmp_path / "p.csv", index=False)
    inputs = read_scoring_inputs(tmp_path / "p.csv")
    assert inputs.predictions.true_lat.tolist() == [48.85, 40.71] and inputs.predictions.ids.tolist() == ["a", "b"]
    assert inputs.predictions.pred_country.tolist() == ["FRA", "USA"]
    # evaluate --dump columns, with the model's own countries kept as the guess
    pd.DataFrame({"id": ["a", "b"], "true_lat": [48.85, 40.71], "true_lon": [2.35, -74.0], "pred_lat": [48.0, 40.0],
                  "pred_lon": [2.0, -74.0], "true_country": ["FRA", "USA"], "pred_country": ["FRA", "CAN"]}
                 ).to_csv(tmp_path / "dump.csv", index=False)
    results, inputs = score_files(tmp_path / "dump.csv")
    assert results["dump"].country_top1 == 0.5 and inputs.decided["country"] == "pred_country column"


@pytest.mark.parametrize("text, error, match", [
    ("id,pred_lat,pred_lon\na,1,2\n", TableError, "no true latitude column.*--truth"),
    ("id,pred_lat,predicted_lat,pred_lon,true_lat,true_lon\na,1,1,2,1,2\n", TableError,
     "2 predicted latitude columns: 'pred_lat', 'predicted_lat'"),
    ("id,true_lat,true_lon,pred_lat,pred_lon\na,1,2,95,3\n", InvalidCoordinateError,
     r"row 0 \(line 2\): column 'pred_lat' \(latitude\) 95.0 is outside"),
    ("id,true_lat,true_lon,pred_lat,pred_lon\na,1,2,x,3\n", TableError, "column 'pred_lat' holds 'x'"),
    ("id,true_lat,true_lon,pred_lat,pred_lon,pred_country\na,1,2,1,3,FR\n", TableError,
     "'pred_country' holds 'FR'.*not a Natural Earth adm0_a3"),
])
def test_bad_prediction_files_are_named(tmp_path, text, error, match):
    (tmp_path / "p.csv").write_text(text)
    with pytest.raises(error, match=match):
        read_scoring_inputs(tmp_path / "p.csv")


def test_join_errors_and_file_stem_matching(tmp_path):
    (tmp_path / "t.csv").write_text("id,latitude,longitude,country\n1,48.85,2.35,FR\n2,40.71,-74.0,US\n")
    (tmp_path / "p.csv").write_text("path,lat,lon\nimages/1.jpg,48,2\nimages/2.jpg,40,-74\n")
    inputs = read_scoring_inputs(tmp_path / "p.csv", tmp_path / "t.csv")
    assert "by file stems" in inputs.notes[1]
    (tmp_path / "dup.csv").write_text("id,lat,lon\n1,48,2\n1,40,-74\n")
    with pytest.raises(TableError, match="id '1' is given 2 times"):
        read_scoring_inputs(tmp_path / "dup.csv", tmp_path / "t.csv")
    (tmp_path / "unknown.csv").write_text("id,lat,lon\n1,48,2\n7,40,-74\n")
    with pytest.raises(TableError, match=r"row 1: id '7' is not in"):
        read_scoring_inputs(tmp_path / "unknown.csv", tmp_path / "t.csv")


def test_swapped_truth_header_warns_and_an_out_of_range_one_is_an_error(tmp_path, capsys):
    truth = bf.im2gps3k_style(tmp_path / "swapped.csv", 3000, seed=3, swapped_header=True, max_abs_lon=90)
    bf.predictions(truth, tmp_path / "p.csv")
    with pytest.warns(SwappedCoordinatesWarning, match=r"'LAT' \(read as latitude\) and 'LON'.*look swapped"):
        read_scoring_inputs(tmp_path / "p.csv", tmp_path / "swapped.csv")
    assert cli.main(["score", str(tmp_path / "p.csv"), "--truth", str(tmp_path / "swapped.csv")]) == 0
    assert "warning: " in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error", SwappedCoordinatesWarning)
        bf.im2gps3k_style(tmp_path / "right.csv", 3000, seed=3, max_abs_lon=90)
        read_scoring_inputs(tmp_path / "p.csv", tmp_path / "right.csv")  # no warning
    bf.im2gps3k_style(tmp_path / "world.csv", 300, seed=4, swapped_header=True)  # longitudes beyond 90 in LAT
    with pytest.raises(InvalidCoordinateError, match=r"column 'LAT' \(latitude\) .* outside \[-90, 90\].*swapped"):
        read_scoring_inputs(tmp_path / "p.csv", tmp_path / "world.csv")


def test_score_intervals_by_cluster_column_and_without(tmp_path, capsys):
    """`score --clusters COLUMN` resamples whole clusters (the note names them, the cells hold the
    points); `--resamples 0` prints bare points; a missing column or an empty cluster is refused."""
    rng = np.random.default_rng(3)
    n = 400
    lat, lon = rng.uniform(-40, 60, n), rng.uniform(-120, 140, n)
    frame = pd.DataFrame({"id": np.arange(n), "true_lat": lat, "true_lon": lon,
                          "pred_lat": np.clip(lat + rng.normal(0, 4, n), -90, 90), "pred_lon": lon + rng.normal(0, 4, n),
                          "region": np.arange(n) // 10})
    path = tmp_path / "p.csv"
    frame.to_csv(path, index=False)
    out_dir = tmp_path / "rep"
    assert cli.main(["score", str(path), "--clusters", "region", "--resamples", "300", "--out-dir", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "95% intervals in brackets: cluster bootstrap over 40 clusters (region) (BCa); 300 resamples, seed 0." in out
    cells = _table_rows(out, intervals=True)["p"]
    for cell in cells[:7]:
        point, low, high = _split_cell(cell)
        assert low <= point <= high, cell
    report = json.loads((out_dir / "report.json").read_text())
    iv = report["results"]["p"]["intervals"]
    assert iv["n_clusters"] == 40 and iv["method"].startswith("cluster bootstrap")
    assert report["results"]["p"]["distance"]["median_km"] == pytest.approx(iv["metrics"]["median_km"]["point"])
    assert "by continent" in (out_dir / "report.md").read_text()
    assert cli.main(["score", str(path), "--resamples", "0"]) == 0
    out = capsys.readouterr().out
    assert "95% intervals" not in out and "–" not in _table_rows(out, intervals=True)["p"][0]
    assert cli.main(["score", str(path), "--clusters", "nope"]) == 2
    assert "--clusters 'nope': no such column" in capsys.readouterr().err
    frame.loc[7, "region"] = None
    frame.to_csv(path, index=False)
    assert cli.main(["score", str(path), "--clusters", "region"]) == 2
    assert "no cluster for row 7" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse refuses it before any work
        cli.main(["score", str(path), "--resamples", "50"])
    assert exc.value.code == 2 and "at least 100" in capsys.readouterr().err
