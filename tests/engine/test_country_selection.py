"""The data-size keys: ``min_per_country`` keeps a fixed set of countries in every split (and in
evaluation), ``max_per_country`` caps each country's training samples with a nested draw."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from geocell_engine import cli
from geocell_engine.data.dataset import GeoSplit
from tests.tiny_data import TINY, make_tiny_dataset


def _split(countries: list[str]) -> GeoSplit:
    n = len(countries)
    return GeoSplit(name="train", lat=np.zeros(n), lon=np.zeros(n), country=np.array(countries),
                    admin1=np.array([""] * n), ids=np.array([f"s{i}" for i in range(n)]))


def test_the_per_country_cap_is_exact_seeded_and_nested():
    split = _split(["FRA"] * 30 + ["USA"] * 12 + ["AUS"] * 3)
    for cap in (1, 5, 10, 40):
        kept = split.cap_per_country(cap, seed=3)
        assert Counter(kept.country.tolist()) == {c: min(cap, n) for c, n in (("FRA", 30), ("USA", 12), ("AUS", 3))}
    small, large = split.cap_per_country(5, seed=3), split.cap_per_country(10, seed=3)
    assert set(small.ids) < set(large.ids)  # a smaller cap keeps a subset of a larger one
    assert list(small.ids) == list(split.cap_per_country(5, seed=3).ids)  # same seed, same draw
    assert set(small.ids) != set(split.cap_per_country(5, seed=4).ids)
    assert split.cap_per_country(None, seed=0) is split


def test_only_countries_keeps_the_order():
    split = _split(["FRA", "USA", "AUS", "FRA", "AUS"])
    assert list(split.only_countries(["AUS", "FRA"]).ids) == ["s0", "s2", "s3", "s4"]


@pytest.fixture()
def uneven(tmp_path):
    """The tiny manifest with Australia's training rows cut to 3 (France and the USA keep 20)."""
    manifest = make_tiny_dataset(tmp_path / "data")
    frame = pd.read_csv(manifest)
    frame["country"] = np.repeat(["FRA", "USA", "AUS"], len(frame) // 3)
    aus_train = frame.index[(frame.country == "AUS") & (frame.split == "train")]
    frame = frame.drop(aus_train[3:]).drop(columns="country")
    frame.to_csv(manifest, index=False)
    return manifest


def test_a_run_keeps_the_countries_with_enough_samples_everywhere(uneven, tmp_path, capsys):
    out = tmp_path / "runs"
    assert cli.main(["train", "--data", str(uneven), "--out-dir", str(out), *TINY, "--task", "country",
                     "--epochs", "1", "--min-per-country", "10", "--max-per-country", "6"]) == 0
    log = capsys.readouterr().out
    assert "countries: 2 countries with at least 10 training samples of 3" in log
    assert "train 12, val 8, test 8" in log  # 6 per kept country; val and test lose Australia's 4 each
    run = out / "country-manifest"
    report = json.loads((run / "report.json").read_text())
    assert report["extra"]["countries"] == "2 countries with at least 10 training samples"
    assert set(pd.read_csv(run / "predictions.csv").true_country) == {"FRA", "USA"}
    # evaluation of the whole test split leaves Australia's rows out, counted
    assert cli.main(["evaluate", str(run / "best.pt"), "--data", str(uneven), "--split", "test",
                     "--out-dir", str(tmp_path / "ev")]) == 0
    assert "4 rows of other countries left out" in capsys.readouterr().out
    rows = json.loads((tmp_path / "ev" / "report.json").read_text())["rows"]
    assert rows["other_countries"] == 4 and rows["scored"] == 8 and rows["selected"] == 12
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["extra"]["inference images/s"] > 0


def test_a_minimum_no_country_reaches_is_refused(uneven, tmp_path, capsys):
    assert cli.main(["train", "--data", str(uneven), "--out-dir", str(tmp_path), *TINY, "--task", "country",
                     "--min-per-country", "500"]) == 2
    err = capsys.readouterr().err
    assert "min_per_country=500" in err and "the most is 20" in err
