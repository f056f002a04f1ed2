"""Photo sources: a folder of geotagged JPEGs trains, evaluates and predicts; data without a split
column get a spatial split by default, printed and kept in the run folder."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from geocell_engine import cli
from tests.tiny_data import TINY, make_tiny_dataset, make_tiny_photo_folder


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    return make_tiny_photo_folder(tmp_path_factory.mktemp("exif") / "photos")


def test_a_folder_of_geotagged_photos_trains_multi_evaluates_and_predicts(photo_folder, tmp_path, capsys):
    assert cli.main(["train", "--data", str(photo_folder), "--out-dir", str(tmp_path), "--task", "multi",
                     "--multi-tasks", "region,country,latlon", *TINY]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "multi-photos"
    assert "split: spatial, seed 0: validation and test regions at least 363 km" in out
    assert "left out 2 photos (2 no_gps)" in out
    left_out = pd.read_csv(run / "left_out.csv")
    assert sorted(left_out.path.map(lambda p: p.rsplit("/", 1)[-1])) == ["no_gps_0.jpg", "no_gps_1.jpg"]
    split = pd.read_csv(run / "split.csv")
    counts = split.split.value_counts().to_dict()
    assert counts["val"] == counts["test"] == 8 and counts["train"] + 16 <= 84
    report = json.loads((run / "report.json").read_text())
    assert report["results"]["model"]["n"] == 8
    assert report["extra"]["dataset_sha256"]["listing"]  # the folder listing's identity
    assert cli.main(["evaluate", str(run / "best.pt"), "--data", str(photo_folder)]) == 0
    evaluated = json.loads((run / "eval-photos-test" / "report.json").read_text())
    assert evaluated["results"]["model"]["n"] == 8  # the same spatial test split
    test_ids = split[split.split == "test"].id.tolist()
    capsys.readouterr()
    assert cli.main(["predict", test_ids[0], "--checkpoint", str(run / "best.pt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["images"][0]["image"] == test_ids[0]


def test_a_manifest_without_split_column_is_split_spatially_and_says_so(tmp_path, capsys):
    manifest = make_tiny_dataset(tmp_path / "data")
    frame = pd.read_csv(manifest).drop(columns=["split"])
    frame.to_csv(manifest, index=False)
    flags = [a if a != "2" else "1" for a in TINY]
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(tmp_path), "--task", "country", *flags]) == 0
    out = capsys.readouterr().out
    assert "split: spatial, seed 0" in out and "inside the buffers left unused" in out
    split = pd.read_csv(tmp_path / "country-manifest" / "split.csv")
    assert set(split.split) == {"train", "val", "test"}
    assert cli.main(["train", "--data", str(manifest), "--out-dir", str(tmp_path), "--task", "country",
                     "--split-method", "random", "--run-name", "random", *flags]) == 0
    assert "split: random 80/10/10, seed 0" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "random" / "split.csv")) == 84  # nothing unused


def _country_tree(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, rgb in (("France", (200, 60, 60)), ("united_states", (60, 200, 60)), ("AU", (60, 60, 200))):
        (root / name).mkdir(parents=True)
        for i in range(20):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 20, (40, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.jpg")
    return root


def test_an_imagefolder_tree_trains_the_country_task_and_skips_location_metrics(tmp_path, capsys):
    tree = _country_tree(tmp_path / "tree")
    flags = [a if a != "2" else "1" for a in TINY]
    assert cli.main(["train", "--data", str(tree), "--out-dir", str(tmp_path), "--task", "country", *flags]) == 0
    out = capsys.readouterr().out
    assert "split: random 80/10/10, seed 0 (the samples have no coordinates)" in out
    assert "location metrics skipped" in out
    report = json.loads((tmp_path / "country-tree" / "report.json").read_text())
    model = report["results"]["model"]
    assert model["distance"] is None and model["n_country"] == model["n"] > 0
    assert set(model["country"]["top_k_accuracy"]) >= {"1"}
    assert cli.main(["evaluate", str(tmp_path / "country-tree" / "best.pt"), "--data", str(tree)]) == 0


def test_an_imagefolder_tree_refuses_tasks_that_need_coordinates_and_unknown_folders(tmp_path, capsys):
    tree = _country_tree(tmp_path / "tree")
    assert cli.main(["train", "--data", str(tree), "--out-dir", str(tmp_path), "--task", "region", *TINY]) == 2
    assert "has no coordinates" in capsys.readouterr().err
    (tree / "Atlantis").mkdir()
    assert cli.main(["train", "--data", str(tree), "--out-dir", str(tmp_path), "--task", "country", *TINY]) == 2
    assert "Atlantis" in capsys.readouterr().err
