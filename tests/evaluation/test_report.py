"""evaluate(), comparison_table(), write_report() and the plots, on small seeded predictions.

Metric values are checked against direct computations (haversine, sklearn, hand-made cases).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from geocell import haversine
from geocell_engine.evaluation.plots import (
    PlotError,
    plot_confusion,
    plot_per_country_accuracy,
    plot_training_curves,
    plot_world_map,
)
from geocell_engine.evaluation.predictions import Predictions
from geocell_engine.evaluation.report import (
    ReportError,
    comparison_table,
    evaluate,
    write_report,
)

COUNTRIES = np.array(["FRA", "USA", "BRA", "IND", "AUS"])
CENTRES = {"FRA": (47.0, 2.0), "USA": (39.0, -98.0), "BRA": (-10.0, -52.0), "IND": (22.0, 79.0), "AUS": (-25.0, 134.0)}


def make_preds(n=200, seed=0, proba=True, name="model", **extra) -> Predictions:
    rng = np.random.default_rng(seed)
    true_c = rng.choice(COUNTRIES, n, p=[0.35, 0.25, 0.2, 0.12, 0.08])
    true_lat = np.array([CENTRES[c][0] for c in true_c]) + rng.normal(0, 3, n)
    true_lon = np.array([CENTRES[c][1] for c in true_c]) + rng.normal(0, 3, n)
    pred_lat = np.clip(true_lat + rng.normal(0, 4, n), -90, 90)
    pred_lon = (true_lon + rng.normal(0, 6, n) + 180) % 360 - 180
    vocab = np.sort(COUNTRIES)
    logits = rng.normal(0, 1, (n, vocab.size))
    logits[np.arange(n), np.searchsorted(vocab, true_c)] += 1.5
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred_c = vocab[p.argmax(axis=1)]
    kwargs = dict(country_vocab=vocab, country_proba=p) if proba else {}
    kwargs.update(extra)
    return Predictions(name, true_lat, true_lon, pred_lat, pred_lon, true_c, pred_c, **kwargs)


def km(p: Predictions) -> np.ndarray:
    return np.asarray(haversine(p.true_lat, p.true_lon, p.pred_lat, p.pred_lon))


# ------------------------------------------------------------------------------ evaluate
def test_evaluate_distance_and_country_metrics_match_direct_computation():
    from sklearn.metrics import (
        average_precision_score,
        balanced_accuracy_score,
        f1_score,
    )

    p = make_preds()
    r = evaluate(p)
    d = km(p)
    assert r.n == 200 and r.n_country == 200
    assert r.median_km == pytest.approx(np.median(d))
    assert r.mean_km == pytest.approx(np.mean(d))
    for t in (1, 25, 200, 750, 2500):
        assert r.accuracy_within(t) == pytest.approx(np.mean(d <= t))
    assert r.mean_geoscore == pytest.approx(np.mean(5000 * np.exp(-d / 1492.7)))
    order = np.argsort(-p.country_proba, axis=1)
    true_idx = np.searchsorted(p.country_vocab, p.true_country)
    for k in (1, 3, 5):
        assert r.country_top_k[k] == pytest.approx(np.mean((order[:, :k] == true_idx[:, None]).any(axis=1)))
    pred = p.country_vocab[order[:, 0]]
    assert r.country.balanced_accuracy == pytest.approx(balanced_accuracy_score(p.true_country, pred))
    assert r.country.macro_f1 == pytest.approx(f1_score(p.true_country, pred, average="macro"))
    assert r.country.weighted_f1 == pytest.approx(f1_score(p.true_country, pred, average="weighted"))
    onehot = p.true_country[:, None] == p.country_vocab[None, :]
    assert r.country.mean_average_precision == pytest.approx(average_precision_score(onehot, p.country_proba))
    assert r.admin1_accuracy is None and r.cell_accuracy is None and r.distance_mae_km is None
    # per-country rows: most samples first, accuracy and median km per true country
    rows = {row.country: row for row in r.per_country}
    assert [row.n for row in r.per_country] == sorted((row.n for row in r.per_country), reverse=True)
    for c in COUNTRIES:
        sel = p.true_country == c
        assert rows[c].n == sel.sum()
        assert rows[c].accuracy == pytest.approx(np.mean(p.pred_country[sel] == c))
        assert rows[c].median_km == pytest.approx(np.median(d[sel]))


def test_evaluate_hand_made_case():
    p = Predictions(
        "hand", true_lat=np.array([0.0, 0.0, 0.0, 0.0]), true_lon=np.array([0.0, 0.0, 0.0, 0.0]),
        pred_lat=np.array([0.0, 0.0, 0.0, 0.0]), pred_lon=np.array([0.0, 0.1, 1.0, 10.0]),
        true_country=np.array(["A", "A", "B", ""]), pred_country=np.array(["A", "B", "B", "A"]),
        country_vocab=np.array(["A", "B", "C"]),
        country_proba=np.array([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.9, 0.05, 0.05]]),
        true_admin1=np.array(["A-1", "A-2", "B-1", ""]), pred_admin1=np.array(["A-1", "A-1", "B-1", "X"]),
        true_cell=np.array([0, 1, 2, 3]), pred_cell=np.array([0, 1, 5, 3]),
        true_distance_km=np.array([[10.0, 20.0], [30.0, 5.0], [1.0, 2.0], [7.0, 8.0]]),
        pred_distance_km=np.array([[12.0, 20.0], [25.0, 30.0], [1.0, 3.0], [9.0, 4.0]]),
    )
    r = evaluate(p, thresholds=(1, 50, 200))
    one_deg = 111.195  # km per degree on the mean sphere
    assert r.accuracy_at_km == pytest.approx({1.0: 0.25, 50.0: 0.5, 200.0: 0.75}, abs=1e-12)
    assert r.median_km == pytest.approx((0.1 + 1.0) / 2 * one_deg, rel=1e-4)
    assert r.n_country == 3  # "" = unknown is left out of country metrics
    assert r.country_top_k == {1: pytest.approx(2 / 3), 3: 1.0, 5: 1.0}
    assert r.admin1_accuracy == pytest.approx(2 / 3)
    assert r.cell_accuracy == pytest.approx(0.75)
    assert r.distance_mae_km == pytest.approx(np.mean([2, 0, 5, 25, 0, 1, 2, 4]))
    assert r.nearest_anchor_accuracy == pytest.approx(0.5)  # rows 0 and 2
    assert {row.country: row.accuracy for row in r.per_country} == {"A": 0.5, "B": 1.0}


def test_evaluate_without_probabilities_gives_top1_only():
    p = make_preds(proba=False)
    r = evaluate(p)
    assert set(r.country_top_k) == {1}
    assert r.country_top_k[1] == pytest.approx(np.mean(p.pred_country == p.true_country))
    assert r.country.mean_average_precision is None


def test_as_dict_is_plain_json():
    r = evaluate(make_preds(true_cell=np.zeros(200, int), pred_cell=np.zeros(200, int)))
    d = r.as_dict()
    again = json.loads(json.dumps(d, allow_nan=False))
    assert again == d
    assert d["distance"]["accuracy_at_km"]["2500.0"] == r.accuracy_within(2500)
    assert d["country"]["top_k_accuracy"]["3"] == r.country_top_k[3]
    assert d["cell_accuracy"] == 1.0 and d["per_country"][0]["country"] == r.per_country[0].country
    with pytest.raises(Exception):
        r.n = 3  # frozen


def test_evaluate_rejects_mismatched_inputs():
    base = make_preds(n=10)
    kwargs = {k: getattr(base, k) for k in ("name", "true_lat", "true_lon", "pred_lat", "pred_lon", "true_country",
                                            "pred_country")}
    with pytest.raises(ReportError, match="both pred_distance_km and true_distance_km"):
        evaluate(Predictions(**kwargs, pred_distance_km=np.zeros((10, 3))))
    with pytest.raises(ReportError, match=r"must both be \(N, M\)"):
        evaluate(Predictions(**kwargs, pred_distance_km=np.zeros((10, 3)), true_distance_km=np.zeros((10, 4))))
    bad = dict(kwargs, pred_lat=np.full(10, np.nan))
    with pytest.raises(ReportError, match="pred_lat"):
        evaluate(Predictions(**bad))
    with pytest.raises(ReportError, match="expects a Predictions"):
        evaluate({"true_lat": [0.0]})
    with pytest.raises(ValueError):  # Predictions itself refuses different lengths
        Predictions(**dict(kwargs, pred_lon=np.zeros(9)))


# ------------------------------------------------------------------------------ comparison table
def test_comparison_table_content():
    model = evaluate(make_preds())
    top1_only = evaluate(make_preds(seed=1, proba=False, name="top-1 only"))
    text = comparison_table([model, top1_only])
    lines = text.strip().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("| predictor | median km | mean km | ≤25 km % | ≤200 km % | ≤750 km % | ≤2500 km %")
    assert "country top-1 %" in lines[0] and "country top-3 %" in lines[0]
    row = [c.strip() for c in lines[2].strip("|").split("|")]
    assert row[0] == "model"
    assert float(row[1].replace(",", "")) == pytest.approx(model.median_km, abs=0.5)
    assert float(row[4]) == pytest.approx(100 * model.accuracy_within(200), abs=0.05)
    assert float(row[8]) == pytest.approx(100 * model.country_top_k[1], abs=0.05)
    assert float(row[9]) == pytest.approx(100 * model.country_top_k[3], abs=0.05)
    last = [c.strip() for c in lines[3].strip("|").split("|")]
    assert last[0] == "top-1 only" and last[9] == "" and last[8] != ""
    renamed = comparison_table([model], names=["ours | v2"])
    assert "ours \\| v2" in renamed
    with pytest.raises(ReportError, match="2 names for 1 results"):
        comparison_table([model], names=["a", "b"])
    with pytest.raises(ReportError, match="expected an EvalResult"):
        comparison_table([model.as_dict()])


# ------------------------------------------------------------------------------ write_report
HISTORY = [{"epoch": e, "train_loss": 3.0 / e, "val_loss": 3.3 / e, "val_median_km": 2000.0 / e,
            "val_country_acc": 1 - 1 / (e + 1), "lr": 1e-3 * 0.7**e, "note": "text is ignored"} for e in (1, 2, 3)]


def check_png(path: Path) -> None:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 100


def test_write_report_writes_every_file(tmp_path):
    preds = make_preds(n=300)
    results = {"model": evaluate(preds), "constant": evaluate(make_preds(seed=2, name="constant"))}
    extra = {"dataset": {"name": "bluemarble-v1", "sha256": {"points": "ab12"}}, "epochs": 3,
             "timings": {"fit_s": np.float64(12.5)}, "config": Path("run/config.yaml")}
    paths = write_report(tmp_path / "run", results, HISTORY, preds, extra=extra).paths
    assert set(paths) == {"json", "markdown", "training_curves", "confusion", "world_map", "per_country_accuracy"}
    for key in ("training_curves", "confusion", "world_map", "per_country_accuracy"):
        check_png(paths[key])
    report = json.loads(paths["json"].read_text())
    assert list(report["results"]) == ["model", "constant"]
    assert report["results"]["model"]["distance"]["median_km"] == pytest.approx(results["model"].median_km)
    assert report["history"][2]["epoch"] == 3
    assert report["extra"]["timings"]["fit_s"] == 12.5
    assert report["files"]["world_map"] == "plots/world_map.png"
    md = paths["markdown"].read_text()
    assert comparison_table(list(results.values()), list(results)) in md
    assert "## Per country: model" in md and "| FRA |" in md
    assert "- **dataset.sha256.points**: ab12" in md and "- **timings.fit_s**: 12.5" in md
    assert "![world_map](plots/world_map.png)" in md
    leftovers = [p.name for p in (tmp_path / "run").rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_write_report_without_history_or_predictions(tmp_path):
    results = {"model": evaluate(make_preds(n=50))}
    paths = write_report(tmp_path, results, None, None).paths
    assert set(paths) == {"json", "markdown", "per_country_accuracy"}
    assert json.loads(paths["json"].read_text())["history"] == []


def test_write_report_rejects_bad_inputs(tmp_path):
    r = evaluate(make_preds(n=20))
    with pytest.raises(ReportError, match="non-empty"):
        write_report(tmp_path, {}, None, None)
    with pytest.raises(ReportError, match=r"results\['model'\] is a dict"):
        write_report(tmp_path, {"model": r.as_dict()}, None, None)
    with pytest.raises(ReportError, match="history must be a list"):
        write_report(tmp_path, {"model": r}, {"epoch": 1}, None)
    with pytest.raises(ReportError, match=r"history\[0\] is a int"):
        write_report(tmp_path, {"model": r}, [1, 2], None)
    with pytest.raises(ReportError, match="model_preds must be a Predictions"):
        write_report(tmp_path, {"model": r}, None, r)
    assert not (tmp_path / "report.json").exists()


# ------------------------------------------------------------------------------ plots
def test_plots_individually(tmp_path):
    preds = make_preds(n=120)
    check_png(plot_training_curves(HISTORY[:1] + [{"epoch": 2, "train_loss": 1.0}], tmp_path / "c.png"))
    check_png(plot_confusion(preds.true_country, preds.pred_country, tmp_path / "m.png", top=3))
    # lines crossing the antimeridian and more samples than max_lines
    wrap = Predictions("wrap", np.array([-17.0, 10.0]), np.array([179.0, 0.0]), np.array([-18.0, 10.0]),
                       np.array([-178.0, 0.0]), np.array(["FJI", "X"]), np.array(["FJI", "X"]))
    check_png(plot_world_map(wrap, tmp_path / "w.png", max_lines=1))
    check_png(plot_per_country_accuracy(evaluate(preds).per_country_frame(), tmp_path / "p.png", top=2))
    check_png(plot_per_country_accuracy(evaluate(preds).per_country, tmp_path / "p2.png"))
    with pytest.raises(PlotError, match="empty"):
        plot_training_curves([], tmp_path / "x.png")
    with pytest.raises(PlotError, match="no numeric metric"):
        plot_training_curves([{"epoch": 1, "note": "x"}], tmp_path / "x.png")
    with pytest.raises(PlotError, match="3 entries but pred_country has 2"):
        plot_confusion(["A", "B", "C"], ["A", "B"], tmp_path / "x.png")
    with pytest.raises(PlotError, match=r"\.png"):
        plot_confusion(["A"], ["A"], tmp_path / "x.jpg")
    assert not (tmp_path / "x.png").exists()


def test_plots_module_has_no_import_side_effects(tmp_path):
    code = ("import sys, geocell_engine.evaluation.plots, geocell_engine.evaluation.report, geocell_engine.evaluation.baselines; "
            "print('matplotlib' in sys.modules, 'sklearn' in sys.modules); "
            f"geocell_engine.evaluation.plots.plot_confusion(['A', 'B'], ['A', 'A'], {str(tmp_path / 'c.png')!r}); "
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    # nothing heavy at import; plotting never goes through pyplot (no global backend change)
    assert out.stdout.split() == ["False", "False", "False"], out.stderr


# ------------------------------------------------------------------------------ per-country classification report
def _classification_case() -> Predictions:
    """12 samples over 7 true countries (A..G) and one country (Z) predicted but never true
    (each country's counts are worked out by hand in the test)."""
    true = np.array(["A", "A", "A", "B", "B", "C", "C", "D", "E", "F", "G", "G"])
    pred = np.array(["A", "A", "B", "B", "B", "A", "C", "D", "Z", "Z", "G", "F"])
    z = np.zeros(true.size)
    return Predictions("hand", z, z, z, z + 0.1, true, pred)


def test_per_country_precision_recall_f1_support_by_hand():
    from sklearn.metrics import classification_report

    p = _classification_case()
    r = evaluate(p)
    rows = {row.country: row for row in r.per_country}
    assert set(rows) == set("ABCDEFG")
    # A: 2 of 3 true A found (recall 2/3); 3 answers A, 2 right (precision 2/3)
    assert (rows["A"].precision, rows["A"].recall, rows["A"].support) == (pytest.approx(2 / 3), pytest.approx(2 / 3), 3)
    # B: both found; 3 answers B, 2 right
    assert rows["B"].recall == 1.0 and rows["B"].precision == pytest.approx(2 / 3)
    assert rows["B"].f1 == pytest.approx(2 * (2 / 3) / (1 + 2 / 3))
    assert (rows["C"].precision, rows["C"].recall) == (1.0, 0.5)
    assert (rows["D"].precision, rows["D"].recall, rows["D"].f1) == (1.0, 1.0, 1.0)
    assert (rows["E"].precision, rows["E"].recall, rows["E"].f1) == (0.0, 0.0, 0.0)  # never predicted
    assert (rows["F"].precision, rows["F"].recall) == (0.0, 0.0)  # predicted once, wrongly
    assert rows["G"].f1 == pytest.approx(2 / 3)
    for row in r.per_country:
        assert row.recall == row.accuracy  # recall of a country is the accuracy on its samples
    assert r.predicted_only == (("Z", 2),)
    # the same numbers as sklearn's classification report
    ref = classification_report(p.true_country, p.pred_country, output_dict=True, zero_division=0)
    for c, row in rows.items():
        assert (row.precision, row.recall, row.f1, row.support) == pytest.approx(
            (ref[c]["precision"], ref[c]["recall"], ref[c]["f1-score"], ref[c]["support"]))
    # and the macro F1 over all labels (Z counts as F1 0) is the mean of the rows' F1 and Z's 0
    assert r.country.macro_f1 == pytest.approx(sum(row.f1 for row in r.per_country) / 8)


def test_best_and_worst_five_countries(tmp_path):
    from geocell_engine.evaluation.report import best_worst_countries

    r = evaluate(_classification_case())
    best, worst = best_worst_countries(r)
    # F1: D 1, C 2/3 (support 2), A 2/3 (3), G 2/3 (2), B 0.8, E 0, F 0; ties -> more samples first
    assert [row.country for row in best] == ["D", "B", "A", "C", "G"]
    assert [row.country for row in worst] == ["E", "F"]  # 7 countries: the two not among the best
    paths = write_report(tmp_path, {"model": r}, None, None).paths
    md = paths["markdown"].read_text()
    assert "## Per country: model, best and worst five by F1" in md
    assert "| D | 100.0 | 100.0 | 100.0 | 1 |" in md and "| E | 0.0 | 0.0 | 0.0 | 1 |" in md
    assert "Predicted but no sample's true country (precision 0): Z (2x)." in md
    report = json.loads(paths["json"].read_text())
    rows = {row["country"]: row for row in report["results"]["model"]["per_country"]}
    assert rows["A"]["support"] == 3 and rows["A"]["precision"] == pytest.approx(2 / 3)
    assert set(rows["G"]) >= {"precision", "recall", "f1", "support"}
    assert report["results"]["model"]["predicted_only"] == [{"country": "Z", "predicted": 2}]
