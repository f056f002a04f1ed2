"""Evaluation metrics: distance table, classification metrics, per-group table."""

from __future__ import annotations

import numpy as np
import pytest

from geocell import haversine
from geocell.metrics import classification_metrics, distance_metrics, per_group_table


def test_distance_metrics_matches_direct_computation():
    rng = np.random.default_rng(0)
    tl, tn = rng.uniform(-60, 60, 500), rng.uniform(-180, 180, 500)
    pl, pn = tl + rng.normal(0, 3, 500), tn + rng.normal(0, 3, 500)
    pl = np.clip(pl, -90, 90)
    m = distance_metrics(tl, tn, pl, pn)
    d = haversine(tl, tn, pl, pn)
    assert m.n == 500
    assert m.median_km == pytest.approx(np.median(d))
    assert m.mean_km == pytest.approx(d.mean())
    assert m.accuracy_at_km[200.0] == pytest.approx(np.mean(d <= 200))
    assert m.mean_geoscore == pytest.approx(np.mean(5000 * np.exp(-d / 1492.7)))
    assert set(m.as_dict()["accuracy_at_km"]) == {"1.0", "25.0", "200.0", "750.0", "2500.0"}


def test_perfect_guesses():
    m = distance_metrics([10.0, 20.0], [30.0, 40.0], [10.0, 20.0], [30.0, 40.0])
    assert m.median_km == 0.0 and m.mean_geoscore == 5000.0 and m.accuracy_at_km[1.0] == 1.0


def test_classification_metrics():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.5, 0.3, 0.2], [0.2, 0.5, 0.3]])
    m = classification_metrics(["a", "b", "c", "a"], proba, ["a", "b", "c"])
    assert m.top_k_accuracy == {1: 0.5, 3: 1.0, 5: 1.0}
    # recall a = 1/2, b = 1, c = 0
    assert m.balanced_accuracy == pytest.approx(0.5)
    assert 0.0 <= m.mean_average_precision <= 1.0
    # a true label unknown to the classifier counts as wrong at every k
    m = classification_metrics(["zzz"], np.array([[0.5, 0.3, 0.2]]), ["a", "b", "c"])
    assert m.top_k_accuracy[3] == 0.0


def test_classification_metrics_checks_shape():
    with pytest.raises(ValueError, match="proba must have shape"):
        classification_metrics(["a"], np.zeros((1, 2)), ["a", "b", "c"])


def test_per_group_table():
    table = per_group_table(["x", "y", "x"], [True, False, False], [10.0, 20.0, 30.0])
    assert table.index.tolist() == ["x", "y"]
    assert table.loc["x", "n"] == 2 and table.loc["x", "accuracy"] == 0.5 and table.loc["x", "median_km"] == 20.0
