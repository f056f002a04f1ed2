"""Calibrated prediction regions: coverage on a synthetic exchangeable set (n >= 10,000) within 1
point of the level for a miscalibrated model, scores and thresholds by hand, geodesic areas and
GeoJSON outlines of real cells, the report with its interval and curve."""

from __future__ import annotations

import math

import numpy as np
import pytest

from geocell_engine.errors import ConformalError
from geocell_engine.evaluation.conformal import (
    ConformalCalibration,
    calibrate,
    cell_areas_km2,
    conformal_scores,
    evaluate_regions,
    format_region_report,
    plot_coverage_area,
    prediction_region,
    prediction_sets,
    region_outline,
)


def synthetic(n, k=100, seed=0, temperature=2.0):
    """Truth drawn from softmax(logits); the model reports softmax(temperature * logits), i.e. it
    is overconfident (temperature > 1): exchangeable samples, a miscalibrated model."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, k))
    true_p = np.exp(logits - logits.max(1, keepdims=True))
    true_p /= true_p.sum(1, keepdims=True)
    cum = true_p.cumsum(1)
    y = (rng.random(n)[:, None] > cum).sum(1)
    model = np.exp(temperature * (logits - logits.max(1, keepdims=True)))
    return model / model.sum(1, keepdims=True), np.minimum(y, k - 1)


@pytest.mark.parametrize("score", ["mass", "aps"])
@pytest.mark.parametrize("level", [0.9, 0.8])
def test_coverage_within_one_point_on_exchangeable_data(score, level):
    p, y = synthetic(20_000)
    cal = calibrate(p[:10_000], y[:10_000], level, score, seed=3)
    sets = prediction_sets(p[10_000:], cal, seed=4)
    coverage = sets.covers(y[10_000:]).mean()
    assert abs(coverage - level) <= 0.01, (score, level, coverage)
    # the overconfident model's own mass on its regions is well below the level: conformal corrects it
    if level == 0.9:
        assert sets.mass.mean() > level and sets.sizes.min() >= 1


def test_scores_thresholds_and_sets_by_hand():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    assert conformal_scores(p, [1, 2], "mass").tolist() == pytest.approx([0.8, 0.9])
    aps = conformal_scores(p, [1, 2], "aps", seed=0)
    assert (aps > [0.5, 0.6]).all() and (aps <= [0.8, 0.9]).all()
    scores = np.linspace(0.1, 0.9, 9)  # calibrate picks the ceil((n + 1) level)-th smallest score
    probs = np.tile([0.05, 0.95], (9, 1))
    cal = ConformalCalibration(0.9, "mass", float(scores[8]), 9)
    assert calibrate(probs, np.zeros(9, np.int64), 0.9).threshold == pytest.approx(1.0)
    assert calibrate(probs[:5], np.zeros(5, np.int64), 0.9).threshold == math.inf  # 6 > 5: every cell
    sets = prediction_sets(np.array([[0.2, 0.5, 0.3], [0.95, 0.03, 0.02]]),
                           ConformalCalibration(0.9, "mass", 0.8, 100))
    assert sets.mask.tolist() == [[False, True, True], [True, False, False]]  # prefix; top cell always
    assert sets.cells(0, [0.2, 0.5, 0.3]).tolist() == [1, 2] and sets.mass.tolist() == pytest.approx([0.8, 0.95])
    assert ConformalCalibration.from_dict(cal.as_dict()) == cal
    inf = ConformalCalibration(0.9, "mass", math.inf, 5)
    assert inf.as_dict()["threshold"] is None and ConformalCalibration.from_dict(inf.as_dict()) == inf


def test_errors():
    with pytest.raises(ConformalError, match="row 0 sums to 3"):
        calibrate(np.array([[1.0, 2.0]]), [0])
    with pytest.raises(ConformalError, match=r"probs\[0, 1\] is -0.5"):
        calibrate(np.array([[1.5, -0.5]]), [0])
    with pytest.raises(ConformalError, match=r"true_cell\[0\] is 7"):
        calibrate(np.array([[0.5, 0.5]]), [7])
    with pytest.raises(ConformalError, match="level"):
        calibrate(np.array([[0.5, 0.5]]), [0], level=90)
    with pytest.raises(ConformalError, match="score"):
        calibrate(np.array([[0.5, 0.5]]), [0], score="raps")
    with pytest.raises(ConformalError, match="not a conformal calibration"):
        ConformalCalibration.from_dict({"level": 0.9})


@pytest.fixture(scope="module")
def cells():
    from geocell.s2cells import build_s2

    rng = np.random.default_rng(0)
    lat = np.r_[rng.normal(48, 2, 300), rng.normal(-25, 2, 300)]
    lon = np.r_[rng.normal(2, 2, 300), rng.normal(134, 2, 300)]
    admin1 = np.array(["FRA-1"] * 300 + ["AUS-1"] * 300)
    return build_s2(lat, lon, tau_min=5, tau_max=[80], point_admin1=admin1,
                    admin1_country={"FRA-1": "FRA", "AUS-1": "AUS"})[0]


def test_areas_and_outline(cells):
    import shapely
    from pyproj import Geod

    areas = cell_areas_km2(cells)
    assert areas.shape == (len(cells),) and (areas > 0).all()
    members = [0, 1, 2]
    outline = region_outline(cells, members)
    assert outline["type"] in ("Polygon", "MultiPolygon")
    union_area = abs(Geod(ellps="WGS84").geometry_area_perimeter(shapely.geometry.shape(outline))[0]) / 1e6
    assert union_area == pytest.approx(areas[members].sum(), rel=1e-6)  # cells do not overlap
    k = len(cells)
    p = np.full((2, k), 0.1 / (k - 1))
    p[0, 0], p[1, 3] = 0.9, 0.9
    p[1, 4], p[1, 3] = 0.05, 0.85
    p /= p.sum(axis=1, keepdims=True)
    regions = prediction_region(p, ConformalCalibration(0.9, "mass", 0.91, 1000), cells, cell_areas=areas)
    assert regions[0].cells[0] == 0 and regions[1].cells[:2] == (3, 4)
    assert regions[1].area_km2 == pytest.approx(areas[list(regions[1].cells)].sum())
    assert regions[0].geojson["type"] in ("Polygon", "MultiPolygon") and regions[0].cell_ids is not None
    with pytest.raises(ConformalError, match="at least one cell"):
        region_outline(cells, [])


def test_evaluate_regions_report_and_plot(cells, tmp_path):
    k = len(cells)
    p, y = synthetic(3000, k=k, seed=1)
    clusters = np.arange(1500) // 30
    report = evaluate_regions(p[:1500], y[:1500], p[1500:], y[1500:], cells, level=0.9, clusters=clusters,
                              levels=(0.5, 0.9), n_resamples=300)
    assert report.coverage.low <= report.coverage.point <= report.coverage.high
    assert report.coverage.n_clusters == 50 and report.mean_area_km2.point > 0
    assert [c.level for c in report.curve] == [0.5, 0.9]
    assert report.curve[0].mean_area_km2 < report.curve[1].mean_area_km2
    text = format_region_report(report)
    assert "coverage on 1,500 test samples" in text and "| 90 |" in text
    assert report.as_dict()["calibration"]["level"] == 0.9
    png = plot_coverage_area(report.curve, tmp_path / "coverage_area.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
