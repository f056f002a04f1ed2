"""`cli.py data clean|split|resize` on a tiny generated manifest; bad input exits 2."""

from __future__ import annotations

import pandas as pd

from geocell_engine import cli
from tests.tiny_data import make_tiny_dataset


def test_clean_split_resize(tmp_path, capsys):
    manifest = make_tiny_dataset(tmp_path / "d", n_per_place=6)
    frame = pd.read_csv(manifest).drop(columns=["split"])
    frame.loc[len(frame)] = ["img/0_0.png", 0.0, 0.0]  # a placeholder (0, 0) coordinate
    frame.to_csv(manifest, index=False)
    clean = tmp_path / "d" / "clean.csv"
    assert cli.main(["data", "clean", str(manifest), "--out", str(clean), "--steps", "coordinates,duplicates"]) == 0
    out = capsys.readouterr().out
    assert "wrote 36 rows" in out and "sha256" in out
    split = tmp_path / "d" / "split.csv"
    assert cli.main(["data", "split", str(clean), "--out", str(split), "--method", "random"]) == 0
    assert set(pd.read_csv(split)["split"]) <= {"train", "val", "test"}
    resized = tmp_path / "r"
    assert cli.main(["data", "resize", str(clean), "--out", str(resized), "--short-side", "16"]) == 0
    assert (resized / "manifest.csv").is_file()


def test_data_clean_missing_manifest(tmp_path, capsys):
    assert cli.main(["data", "clean", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "nope.csv" in capsys.readouterr().err and not (tmp_path / "o.csv").exists()


def test_train_with_a_split_file(tmp_path, capsys):
    from tests.tiny_data import TINY

    manifest = make_tiny_dataset(tmp_path / "d")
    pd.read_csv(manifest).drop(columns=["split"]).to_csv(manifest, index=False)
    split = tmp_path / "split.csv"
    assert cli.main(["data", "split", str(manifest), "--out", str(split), "--method", "random"]) == 0
    names = pd.read_csv(split)["split"]
    common = ["train", "--data", str(manifest), "--out-dir", str(tmp_path / "runs"), "--task", "country", *TINY,
              "--epochs", "1"]
    assert cli.main([*common, "--split-file", str(split)]) == 0
    out = capsys.readouterr().out
    assert f"train {int((names == 'train').sum())}, val {int((names == 'val').sum())}" in out
    pd.read_csv(split).iloc[:-1].to_csv(split, index=False)  # one row short: refused
    assert cli.main([*common, "--split-file", str(split), "--no-resume"]) == 2
    assert "rows, but" in capsys.readouterr().err
