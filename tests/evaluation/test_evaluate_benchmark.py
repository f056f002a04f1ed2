"""`cli.py evaluate` on benchmark files: a 3,000-row Im2GPS3k-style file is scored in full (no
split column: no 80/10/10 split), rows scored / missing / unreadable are printed and stored, and a
YFCC4k-style copy with missing images keeps the present ones and counts the others.

One tiny checkpoint (tests/tiny_data.py, one epoch) serves both cases, in one test function so
that pytest-xdist cannot train it twice on two workers.
"""

from __future__ import annotations

import json

import pandas as pd

from geocell_engine import cli
from tests import benchmark_files as bf
from tests.tiny_data import TINY, make_tiny_dataset


def _checkpoint(root):
    manifest = make_tiny_dataset(root / "data")
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(root / "runs"), *TINY, "--task", "region",
                     "--epochs", "1"]) == 0
    (best,) = (root / "runs").glob("*/best.pt")
    return best


def test_benchmark_files_are_scored_in_full_and_bad_images_counted(tmp_path, capsys):
    checkpoint = _checkpoint(tmp_path / "tiny")
    _a_3000_row_im2gps3k_file_is_scored_in_full(checkpoint, tmp_path / "im2gps3k", capsys)
    _yfcc4k_copy_with_missing_and_broken_images(checkpoint, tmp_path / "yfcc4k", capsys)


def _a_3000_row_im2gps3k_file_is_scored_in_full(checkpoint, tmp_path, capsys):
    tmp_path.mkdir()
    bf.im2gps3k_style(tmp_path / "im2gps3k_places365.csv", 3000, seed=0, images=True)
    out = tmp_path / "eval"
    code = cli.main(["evaluate", str(checkpoint), "--data", str(tmp_path / "im2gps3k_places365.csv"),
                     "--profile", "geocell", "osv5m", "--out-dir", str(out), "--device", "cpu"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "all rows; 3,000 scored, 0 missing images, 0 unreadable" in printed
    assert "profile osv5m: haversine R = 6371.0 km; d < t" in printed and "| model [osv5m] |" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["rows"] == {"source": str(tmp_path / "im2gps3k_places365.csv"), "in_file": 3000, "split": "all",
                              "selected": 3000, "missing": 0, "missing_what": "missing images", "unreadable": 0,
                              "sampled_out": 0, "other_countries": 0, "scored": 3000}
    assert {k: r["n"] for k, r in report["results"].items()} == {"model [geocell]": 3000, "model [osv5m]": 3000}
    assert [lv["n"] for lv in report["results"]["model [osv5m]"]["levels"]] == [3000] * 4
    assert "3,000 scored" in (out / "report.md").read_text()
    # a file without a split column takes no --split
    assert cli.main(["evaluate", str(checkpoint), "--data", str(tmp_path / "im2gps3k_places365.csv"),
                     "--split", "test", "--out-dir", str(out)]) == 2
    assert "has no split column" in capsys.readouterr().err


def _yfcc4k_copy_with_missing_and_broken_images(checkpoint, tmp_path, capsys):
    tmp_path.mkdir()
    truth = bf.im2gps3k_style(tmp_path / "yfcc4k.csv", 60, seed=1, images=True)
    for name in truth["IMG_ID"].iloc[[5, 6, 7]]:
        (tmp_path / "im2gps3ktest" / name).unlink()
    broken = tmp_path / "im2gps3ktest" / truth["IMG_ID"].iloc[9]
    broken.unlink()
    broken.write_bytes(b"not a jpeg")
    data = str(tmp_path / "yfcc4k.csv")
    assert cli.main(["evaluate", str(checkpoint), "--data", data, "--out-dir", str(tmp_path / "e")]) == 2
    assert "not found" in capsys.readouterr().err  # fail is the default: nothing is dropped silently
    assert cli.main(["evaluate", str(checkpoint), "--data", data, "--out-dir", str(tmp_path / "e"),
                     "--on-bad-image", "skip", "--profile", "geoclip"]) == 0
    assert "all rows; 56 scored, 3 missing images, 1 unreadable" in capsys.readouterr().out
    report = json.loads((tmp_path / "e" / "report.json").read_text())
    assert (report["rows"]["scored"], report["rows"]["missing"], report["rows"]["unreadable"]) == (56, 3, 1)
    assert len(pd.read_csv(tmp_path / "e" / "bad_images.csv")) == 4
