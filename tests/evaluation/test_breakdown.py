"""Breakdowns by continent, hemisphere, east/west and country: groups from the true location,
counts, intervals within each group (cluster-aware), tiny groups without an interval."""

from __future__ import annotations

import doctest
import importlib
import math

import numpy as np
import pytest

from geocell_engine.errors import IntervalError
from geocell_engine.evaluation.breakdown import breakdown, format_breakdown_table, group_labels, take_predictions
from geocell_engine.evaluation.predictions import Predictions
from geocell_engine.evaluation.report import evaluate


def world(seed=0):
    rng = np.random.default_rng(seed)
    spots = [("FRA", 47.0, 2.0), ("DEU", 51.0, 10.0), ("BRA", -10.0, -52.0), ("AUS", -25.0, 134.0),
             ("USA", 39.0, -98.0), ("NAM", -22.0, 17.0)]
    sizes = [60, 40, 50, 30, 45, 1]
    lat = np.concatenate([rng.normal(la, 1.0, k) for (_, la, _), k in zip(spots, sizes)])
    lon = np.concatenate([rng.normal(lo, 1.0, k) for (_, _, lo), k in zip(spots, sizes)])
    country = np.concatenate([[c] * k for (c, _, _), k in zip(spots, sizes)])
    country[5] = ""  # one sample without a known country
    pred_c = np.where(rng.random(lat.size) < 0.6, country, "ITA")
    n = lat.size
    preds = Predictions("m", lat, lon, np.clip(lat + rng.normal(0, 5, n), -90, 90), lon + rng.normal(0, 5, n),
                        country, pred_c, ids=np.arange(n).astype(str))
    clusters = np.arange(n) // 5
    return preds, clusters


def test_groups():
    p, _ = world()
    cont = group_labels(p, "continent")
    assert cont[0] == "Europe" and cont[5] == "unknown" and cont[-1] == "Africa"
    assert set(group_labels(p, "hemisphere")) == {"north", "south"}
    assert group_labels(p, "east_west")[p.true_lon < 0].tolist() == ["west"] * int((p.true_lon < 0).sum())
    assert group_labels(p, "country")[5] == "unknown"
    with pytest.raises(IntervalError, match="by must be one of"):
        group_labels(p, "planet")
    with pytest.raises(IntervalError, match="expected 226"):
        group_labels(p, ["a"])


def test_breakdown_rows_match_the_groups_own_evaluation():
    p, clusters = world()
    rows = breakdown(p, "continent", clusters, n_resamples=200)
    assert [r.group for r in rows] == ["Europe", "South America", "North America", "Oceania", "Africa", "unknown"]
    assert sum(r.n for r in rows) == len(p)
    europe = rows[0]
    idx = np.flatnonzero(group_labels(p, "continent") == "Europe")
    e = evaluate(take_predictions(p, idx))
    assert europe.n == 99 and europe.metrics.median_km.point == pytest.approx(e.median_km)
    assert europe.metrics.country_top1.point == pytest.approx(e.country_top_k[1])
    assert europe.n_clusters == np.unique(clusters[idx]).size and europe.metrics.method.startswith("cluster")
    iv = europe.metrics.median_km
    assert iv.low < iv.point < iv.high
    africa = rows[4]  # one sample: point estimates, no interval
    assert africa.n == 1 and math.isnan(africa.metrics.median_km.low)
    assert africa.metrics.median_km.method == "no interval: 1 cluster"
    hemi = breakdown(p, "hemisphere", n_resamples=200)
    assert {r.group: r.n for r in hemi} == {"north": 145, "south": 81}
    assert hemi[0].metrics.method.startswith("sample")


def test_breakdown_table():
    p, clusters = world()
    rows = breakdown(p, "continent", clusters, n_resamples=200)
    text = format_breakdown_table(rows, "continent")
    lines = text.splitlines()
    assert lines[0] == ("| continent | n | clusters | median km | ≤750 km % | ≤2500 km % | GeoScore | "
                        "country top-1 % |")
    assert lines[2].startswith("| Europe | 99 | 20 | ") and "–" in lines[2]
    assert len(format_breakdown_table(rows, top=2).splitlines()) == 4
    with pytest.raises(IntervalError, match="not evaluated"):
        format_breakdown_table(rows, thresholds=(100.0,))
    with pytest.raises(IntervalError, match="one id per sample"):
        breakdown(p, clusters=np.zeros(3))


@pytest.mark.parametrize("name", ["geocell_engine.evaluation.intervals", "geocell_engine.evaluation.breakdown",
                                  "geocell_engine.data.regions"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
