"""Bootstrap intervals: point estimates equal evaluate's, seeded, the own cluster bootstrap agrees
with scipy.stats.bootstrap when every sample is its own cluster, cluster intervals cover where the
sample bootstrap does not, paired comparisons on common ids, formatting, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geocell_engine.errors import IntervalError
from geocell_engine.evaluation.intervals import (
    Interval,
    MetricIntervals,
    _weighted_median,
    bootstrap_intervals,
    format_interval,
    format_interval_table,
    format_paired_table,
    interval_cells,
    metric_label,
    paired_comparison,
)
from geocell_engine.evaluation.predictions import Predictions
from geocell_engine.evaluation.report import evaluate


def make_preds(n=300, seed=0, spread=8.0, name="m", hit_rate=0.4, ids=None):
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(-50, 60, n), rng.uniform(-180, 180, n)
    true_c = np.where(rng.random(n) < 0.1, "", "FRA")
    pred_c = np.where(rng.random(n) < hit_rate, "FRA", "DEU")
    plat = np.clip(lat + rng.normal(0, spread, n), -90, 90)
    plon = lon + rng.normal(0, spread, n)
    return Predictions(name, lat, lon, plat, plon, true_c, pred_c,
                       ids=np.arange(n).astype(str) if ids is None else ids)


def test_points_equal_evaluate():
    p = make_preds()
    r = bootstrap_intervals(p, n_resamples=200)
    e = evaluate(p)
    assert r.median_km.point == pytest.approx(e.median_km, rel=1e-12)
    assert r.mean_km.point == pytest.approx(e.mean_km, rel=1e-12)
    assert r.geoscore.point == pytest.approx(e.mean_geoscore, rel=1e-12)
    for t, v in e.accuracy_at_km.items():
        assert r.accuracy_at_km[t].point == pytest.approx(v)
    assert r.country_top1.point == pytest.approx(e.country_top_k[1])
    assert r.country_top1.n == e.n_country == r.n_country < r.n == 300
    for iv in r.metrics().values():
        assert iv.low <= iv.point <= iv.high and iv.level == 0.95 and iv.n_clusters == 300
    assert r.method == "sample bootstrap, BCa"
    assert r.accuracy_at_km[1.0].method.endswith("(no spread)")  # none within 1 km
    assert (r.accuracy_at_km[1.0].low, r.accuracy_at_km[1.0].high) == (0.0, 0.0)


def test_seeded_and_reproducible():
    p = make_preds()
    clusters = np.arange(300) // 10
    a = bootstrap_intervals(p, clusters, n_resamples=300, seed=4)
    b = bootstrap_intervals(p, clusters, n_resamples=300, seed=4)
    c = bootstrap_intervals(p, clusters, n_resamples=300, seed=5)
    assert a == b
    assert a.median_km.low != c.median_km.low
    assert abs(a.median_km.low - c.median_km.low) < 0.5 * a.median_km.half_width
    assert bootstrap_intervals(p, n_resamples=200, seed=1) == bootstrap_intervals(p, n_resamples=200, seed=1)


@pytest.mark.parametrize("method", ["BCa", "percentile"])
def test_own_engine_with_singleton_clusters_agrees_with_scipy(method):
    """The cluster bootstrap with one sample per cluster is the sample bootstrap: its intervals
    agree with scipy.stats.bootstrap's to Monte Carlo error (the resamples differ)."""
    p = make_preds(n=400, seed=2)
    ref = bootstrap_intervals(p, n_resamples=3000, method=method, seed=0)
    own = bootstrap_intervals(p, np.arange(400), n_resamples=3000, method=method, seed=1)
    assert own.method == f"cluster bootstrap, {method}" and ref.method == f"sample bootstrap, {method}"
    for key, iv in ref.metrics().items():
        other = own.metrics()[key]
        assert other.point == iv.point
        tol = 0.15 * max(iv.half_width, 1e-12) + 1e-12
        assert abs(other.low - iv.low) <= tol and abs(other.high - iv.high) <= tol, (key, iv, other)


def test_weighted_median_is_the_median_of_the_expanded_sample():
    rng = np.random.default_rng(0)
    d = np.sort(rng.exponential(500, 37))
    w = rng.integers(0, 4, size=(200, 37)).astype(np.float64)
    w[:, 0] += 1  # no empty replicate
    got = _weighted_median(d, w)
    expected = [np.median(np.repeat(d, row.astype(int))) for row in w]
    assert np.allclose(got, expected, rtol=0, atol=0)


def clustered(seed, g=30, m=20):
    """Accuracy within 25 km drawn per cluster from U(0, 1): strongly correlated within clusters;
    the population accuracy is 0.5."""
    rng = np.random.default_rng(seed)
    n = g * m
    cl = np.repeat(np.arange(g), m)
    hit = rng.random(n) < rng.random(g)[cl]
    lat, lon = rng.uniform(-60, 60, n), rng.uniform(-180, 180, n)
    c = np.full(n, "X")
    return Predictions("c", lat, lon, lat + np.where(hit, 0.1, 5.0), lon, c, c), cl


def test_cluster_bootstrap_covers_where_the_sample_bootstrap_does_not():
    """Over 60 seeded data sets with 30 correlated clusters, the 95% cluster interval covers the
    true accuracy 50 times (a bootstrap over 30 clusters covers a little less than asked for);
    treating samples as independent covers it 32 times."""
    cover_cluster = cover_sample = 0
    reps = 60
    for seed in range(reps):
        p, cl = clustered(seed)
        kw = dict(thresholds=(25.0,), n_resamples=200, method="percentile", seed=seed)
        cover_cluster += bootstrap_intervals(p, cl, **kw).accuracy_at_km[25.0].contains(0.5)
        cover_sample += bootstrap_intervals(p, np.arange(len(p)), **kw).accuracy_at_km[25.0].contains(0.5)
    assert cover_cluster / reps >= 0.8
    assert cover_sample / reps <= 0.7


def test_cluster_ids_of_any_type_and_their_count():
    p, cl = clustered(0)
    a = bootstrap_intervals(p, cl, n_resamples=200, thresholds=(25.0,))
    b = bootstrap_intervals(p, np.array([f"region-{c:02d}" for c in cl], dtype=object), n_resamples=200, thresholds=(25.0,))
    assert a.n_clusters == b.n_clusters == 30 and a == b


def test_errors_name_the_value():
    p = make_preds(n=20)
    with pytest.raises(IntervalError, match="level"):
        bootstrap_intervals(p, level=95)
    with pytest.raises(IntervalError, match="n_resamples"):
        bootstrap_intervals(p, n_resamples=10)
    with pytest.raises(IntervalError, match="method"):
        bootstrap_intervals(p, method="basic")
    with pytest.raises(IntervalError, match="one id per sample \\(20\\)"):
        bootstrap_intervals(p, clusters=np.zeros(19))
    with pytest.raises(IntervalError, match="at least 2 clusters"):
        bootstrap_intervals(p, clusters=np.zeros(20))
    with pytest.raises(IntervalError, match="expected a Predictions"):
        bootstrap_intervals({"a": 1})
    bad = Predictions("bad", np.array([0.0, np.nan]), np.zeros(2), np.zeros(2), np.zeros(2),
                      np.array(["A", "A"]), np.array(["A", "A"]))
    with pytest.raises(IntervalError, match=r"true_lat\[1\] is nan"):
        bootstrap_intervals(bad)
    one = Predictions("one", np.zeros(1), np.zeros(1), np.zeros(1), np.ones(1), np.array(["A"]), np.array(["A"]))
    with pytest.raises(IntervalError, match="at least 2 samples"):
        bootstrap_intervals(one)


def test_no_known_country_gives_no_country_interval():
    p = make_preds(n=50)
    q = Predictions("q", p.true_lat, p.true_lon, p.pred_lat, p.pred_lon, np.full(50, ""), p.pred_country)
    r = bootstrap_intervals(q, n_resamples=200)
    assert r.country_top1 is None and "country_top1" not in r.metrics() and r.n_country == 0


# ------------------------------------------------------------------------------ paired
def test_paired_difference_on_common_ids():
    a = make_preds(n=300, seed=1, spread=6.0, name="A")
    # B: the same samples (a permuted subset plus extra ids), worse guesses
    rng = np.random.default_rng(9)
    keep = rng.permutation(300)[:250]
    plat = np.clip(a.pred_lat[keep] + rng.normal(0, 6, 250), -90, 90)
    ids_b = np.concatenate([a.ids[keep], ["x1", "x2"]])
    two = lambda x, fill: np.concatenate([x, [fill, fill]])  # noqa: E731
    b = Predictions("B", two(a.true_lat[keep], 0.0), two(a.true_lon[keep], 0.0), two(plat, 0.0),
                    two(a.pred_lon[keep], 0.0), two(a.true_country[keep], ""), two(a.pred_country[keep], ""),
                    ids=ids_b)
    c = paired_comparison(a, b, n_resamples=500)
    assert (c.n_common, c.n_only_a, c.n_only_b) == (250, 50, 2)
    common = np.sort(keep)
    sub_a = evaluate(Predictions("a", a.true_lat[common], a.true_lon[common], a.pred_lat[common], a.pred_lon[common],
                                 a.true_country[common], a.pred_country[common]))
    assert c.a["median_km"] == pytest.approx(sub_a.median_km)
    assert c.difference["median_km"].point == pytest.approx(c.a["median_km"] - c.b["median_km"])
    assert c.difference["median_km"].high < 0  # B's extra noise: A is closer, and the interval says so
    assert c.difference["country_top1"].point == 0.0  # same country guesses
    # clusters: an array aligned with A, or a mapping id -> cluster, give the same result
    cl = np.arange(300) % 25
    by_array = paired_comparison(a, b, cl, n_resamples=300)
    by_map = paired_comparison(a, b, dict(zip(a.ids.tolist(), cl.tolist())), n_resamples=300)
    assert by_array == by_map and by_array.n_clusters == 25


def test_paired_interval_is_narrower_than_separate_ones():
    """Two models that fail on the same hard samples: the difference is known far better than
    each model's own accuracy."""
    rng = np.random.default_rng(0)
    n = 500
    lat, lon = rng.uniform(-50, 50, n), rng.uniform(-180, 180, n)
    hard = rng.exponential(10.0, n)  # per-sample difficulty, shared
    ids = np.arange(n).astype(str)
    c = np.full(n, "X")
    a = Predictions("A", lat, lon, np.clip(lat + hard, -90, 90), lon, c, c, ids=ids)
    b = Predictions("B", lat, lon, np.clip(lat + 1.05 * hard + 0.2, -90, 90), lon, c, c, ids=ids)
    diff = paired_comparison(a, b, n_resamples=500).difference["mean_km"]
    alone = bootstrap_intervals(a, n_resamples=500).mean_km
    assert diff.half_width < 0.2 * alone.half_width
    assert diff.high < 0


def test_paired_errors():
    a = make_preds(n=30, name="A")
    with pytest.raises(IntervalError, match="no ids"):
        paired_comparison(a, Predictions("B", a.true_lat, a.true_lon, a.pred_lat, a.pred_lon, a.true_country,
                                         a.pred_country))
    dup = np.array(["1"] * 30)
    with pytest.raises(IntervalError, match="lists id '1' 30 times"):
        paired_comparison(a, make_preds(n=30, ids=dup))
    other = make_preds(n=30, ids=np.array([f"z{i}" for i in range(30)]))
    with pytest.raises(IntervalError, match="share 0 ids"):
        paired_comparison(a, other)
    moved = Predictions("B", a.true_lat + 1.0, a.true_lon, a.pred_lat, a.pred_lon, a.true_country, a.pred_country,
                        ids=a.ids)
    with pytest.raises(IntervalError, match="id '0': true_lat"):
        paired_comparison(a, moved)
    with pytest.raises(IntervalError, match="no entry for id"):
        paired_comparison(a, a, {"0": 1})
    with pytest.raises(IntervalError, match="aligned with A"):
        paired_comparison(a, a, np.zeros(3))


# ------------------------------------------------------------------------------ formatting
def test_tables():
    p = make_preds(n=200)
    r = bootstrap_intervals(p, np.arange(200) // 8, n_resamples=200)
    table = format_interval_table([r], names=["model"])
    lines = table.splitlines()
    assert lines[0].startswith("| predictor | median km | mean km | ≤25 km %")
    assert lines[2].startswith("| model | ") and lines[2].count("–") == 8
    assert "cluster bootstrap over 25 clusters (BCa); 200 resamples, seed 0" in table
    cells = interval_cells(r, (25.0, 3000.0))
    assert cells["≤3000 km %"] == "" and cells["median km"] == format_interval(r.median_km, "km")
    assert metric_label("accuracy_750km") == "≤750 km %"
    c = paired_comparison(p, make_preds(n=200, spread=12, name="B"), n_resamples=200)
    text = format_paired_table(c)
    assert "| median km |" in text and " to " in text and "200 common ids" in text
    with pytest.raises(IntervalError, match="MetricIntervals"):
        format_interval_table([evaluate(p)])
    iv = Interval(1234.5, 1100.0, 1400.0, 0.95, 10, 10, "x")
    assert format_interval(iv) == "1,234 (1,100–1,400)" or format_interval(iv) == "1,235 (1,100–1,400)"
    assert format_interval(Interval(5.0, math.nan, math.nan, 0.95, 1, 1, "x"), "score") == "5"
    assert isinstance(r, MetricIntervals) and r.as_dict()["metrics"]["median_km"]["n_clusters"] == 25


def test_large_sample_bootstrap_uses_percentile(monkeypatch):
    """Above BCA_MAX_SAMPLES the sample bootstrap switches to the percentile method (BCa's
    jackknife is quadratic in N) and says so; the cluster bootstrap keeps BCa."""
    import geocell_engine.evaluation.intervals as iv_mod

    p = make_preds(n=300)
    monkeypatch.setattr(iv_mod, "BCA_MAX_SAMPLES", 299)
    r = bootstrap_intervals(p, n_resamples=200)
    assert r.method == "sample bootstrap, percentile" and r.median_km.contains(r.median_km.point)
    assert bootstrap_intervals(p, np.arange(300) // 3, n_resamples=200).method == "cluster bootstrap, BCa"
