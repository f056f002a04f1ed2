"""Every image left out of a run is accounted for: missing files and unreadable images raise
(``on_bad_image="fail"``) or are recorded per split (``"skip"``), with the manifest line named."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geocell_engine.data.dataset import (
    BadImageLog,
    GeoSplit,
    ImageAccount,
    iterate_batches,
    load_splits,
    require_usable,
    screen_split,
)
from geocell_engine.errors import DataError
from tests.tiny_data import make_tiny_dataset

# make_tiny_dataset: 6 places x 14 images, image img/{p}_{i}.png on data row 14 p + i (line + 2);
# i < 10 train, 10-11 val, 12-13 test.


def _row(p: int, i: int) -> int:
    return 14 * p + i


def _corrupt(path: Path) -> None:
    path.write_bytes(b"this is not a PNG file")


@pytest.fixture()
def tiny(tmp_path) -> Path:
    return make_tiny_dataset(tmp_path)


def test_missing_file_fails_by_default_naming_line_path_count_and_flag(tiny):
    (tiny.parent / "img/1_3.png").unlink()
    (tiny.parent / "img/4_12.png").unlink()
    with pytest.raises(DataError) as err:
        load_splits(str(tiny))
    message = str(err.value)
    row = _row(1, 3)
    assert f"manifest.csv: row {row} (line {row + 2})" in message
    assert str(tiny.parent / "img/1_3.png") in message
    assert "2 missing image files in all" in message
    assert "--on-bad-image skip (to `train` or `evaluate`)" in message  # both commands take the flag


def test_missing_files_skipped_are_left_out_and_listed_under_their_split(tiny):
    (tiny.parent / "img/0_2.png").unlink()    # train
    (tiny.parent / "img/2_11.png").unlink()   # val
    (tiny.parent / "img/5_10.png").unlink()   # val
    splits, info = load_splits(str(tiny), on_bad_image="skip")
    assert {k: len(v) for k, v in splits.items()} == {"train": 59, "val": 10, "test": 12}
    account = info.images
    assert account.counts("train") == {"missing": 1, "unreadable": 0}
    assert account.counts("val") == {"missing": 2, "unreadable": 0}
    assert account.counts("test") == {"missing": 0, "unreadable": 0}
    val_rows = [r.row for r in account.records("val")]
    assert val_rows == [f"{tiny}: row {_row(2, 11)} (line {_row(2, 11) + 2})",
                        f"{tiny}: row {_row(5, 10)} (line {_row(5, 10) + 2})"]
    assert account.records("train")[0].path == str(tiny.parent / "img/0_2.png")
    assert not any(str(p).endswith(("0_2.png", "2_11.png", "5_10.png")) for s in splits.values() for p in s.paths)
    assert account.summary() == "train: 1 missing; val: 2 missing"
    payload = json.loads(json.dumps(info.as_dict()))  # JSON-able, old keys kept
    assert payload["name"] == "manifest.csv" and "manifest" in payload["sha256"]
    assert payload["images"]["missing"] == 3
    assert payload["images"]["splits"]["val"]["first"][0]["row"] == val_rows[0]


@pytest.mark.parametrize("method", ["random", "spatial"])
def test_the_default_split_of_the_other_rows_does_not_move_when_a_file_is_missing(tiny, method):
    frame = pd.read_csv(tiny).drop(columns=["split"])
    frame.to_csv(tiny, index=False)
    before, _ = load_splits(str(tiny), seed=3, split_method=method)
    Path(before["val"].paths[1]).unlink()
    after, info = load_splits(str(tiny), seed=3, on_bad_image="skip", split_method=method)
    side = {str(p): name for name, s in before.items() for p in s.paths}
    (gone,) = info.images.records()
    assert gone.split == side.pop(gone.path)
    assert {str(p): name for name, s in after.items() for p in s.paths} == side


def test_corrupt_val_image_is_screened_out_and_listed(tiny):
    _corrupt(tiny.parent / "img/3_11.png")
    splits, info = load_splits(str(tiny), on_bad_image="skip")  # it exists: not caught at load time
    assert len(info.images) == 0 and len(splits["val"]) == 12
    val = screen_split(splits["val"], 32, "skip", info.images)
    assert len(val) == 11
    assert not any(str(p).endswith("3_11.png") for p in val.paths)
    (record,) = info.images.records("val")
    row = _row(3, 11)
    assert record.problem == "unreadable" and record.row == f"{tiny}: row {row} (line {row + 2})"
    assert record.path == str(tiny.parent / "img/3_11.png") and "not a recognised image" in record.detail
    # the kept samples keep their labels and order
    keep = [i for i, p in enumerate(splits["val"].paths) if not str(p).endswith("3_11.png")]
    assert np.array_equal(val.lat, splits["val"].lat[keep]) and list(val.row_names) == list(splits["val"].row_names[keep])
    assert screen_split(val, 32, "skip", info.images) is val  # all readable now: the same split


def test_corrupt_image_with_fail_names_the_first_bad_line(tiny):
    _corrupt(tiny.parent / "img/4_13.png")
    _corrupt(tiny.parent / "img/1_12.png")
    splits, info = load_splits(str(tiny))
    with pytest.raises(DataError) as err:
        screen_split(splits["test"], 32, "fail", info.images)
    row = _row(1, 12)  # first in split order, whichever thread finished first
    assert f"row {row} (line {row + 2}): image {tiny.parent / 'img/1_12.png'} cannot be read" in str(err.value)
    assert "--on-bad-image skip" in str(err.value)
    assert len(info.images) == 0


def test_all_train_images_missing_raises_no_usable_training_images(tiny):
    for i in range(10):
        for p in range(6):
            (tiny.parent / f"img/{p}_{i}.png").unlink()
    with pytest.raises(DataError, match=r"no usable training images: 60 missing, 0 unreadable "
                                        r"\(first: .*manifest\.csv: row 0 \(line 2\): image .*0_0\.png not found"):
        load_splits(str(tiny), on_bad_image="skip")


def test_require_usable_after_screening_every_image_out(tiny):
    for p in range(6):
        for i in (12, 13):
            _corrupt(tiny.parent / f"img/{p}_{i}.png")
    splits, info = load_splits(str(tiny), on_bad_image="skip")
    assert require_usable(splits["test"], info.images) is splits["test"]
    test = screen_split(splits["test"], 32, "skip", info.images)
    assert len(test) == 0
    with pytest.raises(DataError, match=r"no usable test images: 0 missing, 12 unreadable "
                                        r"\(first: .*row 12 \(line 14\): image .*0_12\.png cannot be read"):
        require_usable(test, info.images)
    empty = splits["train"].take(np.zeros(0, dtype=int))
    with pytest.raises(DataError, match=r"no usable training images: the train split has no samples"):
        require_usable(empty, ImageAccount())


def test_write_lists_every_bad_image(tiny, tmp_path):
    (tiny.parent / "img/0_0.png").unlink()
    (tiny.parent / "img/5_13.png").unlink()
    _corrupt(tiny.parent / "img/2_10.png")
    _corrupt(tiny.parent / "img/2_12.png")
    splits, info = load_splits(str(tiny), on_bad_image="skip")
    for name in ("val", "test"):
        screen_split(splits[name], 32, "skip", info.images)
    out = info.images.write(tmp_path / "run" / "bad_images.csv")
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    got = {(r["split"], r["problem"], Path(r["path"]).name, r["row"].split(": ", 1)[1]) for r in rows}
    assert got == {
        ("train", "missing", "0_0.png", "row 0 (line 2)"),
        ("test", "missing", "5_13.png", f"row {_row(5, 13)} (line {_row(5, 13) + 2})"),
        ("val", "unreadable", "2_10.png", f"row {_row(2, 10)} (line {_row(2, 10) + 2})"),
        ("test", "unreadable", "2_12.png", f"row {_row(2, 12)} (line {_row(2, 12) + 2})"),
    }
    assert info.images.summary() == "train: 1 missing; val: 1 unreadable; test: 1 missing, 1 unreadable"
    assert [p.name for p in out.parent.iterdir()] == ["bad_images.csv"]  # no temp file left


def test_in_memory_split_is_unchanged_by_screening():
    n = 3
    split = GeoSplit("val", np.zeros(n), np.zeros(n), np.array(["FRA"] * n), np.array([""] * n),
                     np.array(["a", "b", "c"]), images=np.zeros((n, 8, 8, 3), np.uint8))
    account = ImageAccount()
    assert screen_split(split, 32, "fail", account) is split
    assert len(account) == 0


def test_iterate_batches_skips_an_all_bad_batch_and_records_it(tiny):
    splits, info = load_splits(str(tiny))
    val = splits["val"]  # 12 images; batches of 4: corrupt the whole second batch
    for p in val.paths[4:8]:
        _corrupt(Path(p))
    account = ImageAccount()
    batches = list(iterate_batches(val, np.arange(len(val)), 4, 32, "skip", account))
    assert [idx.tolist() for _, idx in batches] == [[0, 1, 2, 3], [8, 9, 10, 11]]
    assert all(images.shape == (4, 3, 32, 32) for images, _ in batches)
    assert [r.row for r in account.records("val")] == list(val.row_names[4:8])
    assert account.counts("val") == {"missing": 0, "unreadable": 4}
    list(iterate_batches(val, np.arange(len(val)), 4, 32, "skip", account))  # a second epoch
    assert len(account) == 4
    log = BadImageLog([])
    for _ in range(2):
        list(iterate_batches(val, np.arange(len(val)), 4, 32, "skip", log))
    assert len(log) == 4 and log.rows[0].startswith(f"{val.row_names[4]}: image {val.paths[4]} cannot be read")
    with pytest.raises(DataError, match=re.escape(f"{val.row_names[4]}: image {val.paths[4]} cannot be read")
                       + ".*--on-bad-image skip"):
        list(iterate_batches(val, np.arange(len(val)), 4, 32, "fail"))


def test_split_file_puts_a_missing_row_under_the_split_it_names(tiny, tmp_path):
    frame = pd.read_csv(tiny)
    swapped = frame["split"].map({"train": "train", "val": "test", "test": "val"})
    pd.DataFrame({"id": frame["path"], "split": swapped}).to_csv(tmp_path / "split.csv", index=False)
    (tiny.parent / "img/2_10.png").unlink()  # val in the manifest's column, test in the split file
    splits, info = load_splits(str(tiny), split_file=str(tmp_path / "split.csv"), on_bad_image="skip")
    (record,) = info.images.records()
    assert record.split == "test" and record.row == f"{tiny}: row {_row(2, 10)} (line {_row(2, 10) + 2})"
    assert (len(splits["val"]), len(splits["test"])) == (12, 11)
