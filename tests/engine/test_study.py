"""The ablation runner: rows trained under one budget, chosen on validation, finalists tested once
and compared with the default; a second run skips the finished rows; bad specs refused by name."""

from __future__ import annotations

import json

import pytest

from geocell_engine import cli
from geocell_engine.engine.study import load_study
from geocell_engine.errors import ConfigError
from tests.tiny_data import make_tiny_dataset


def _spec(tmp_path, manifest, **extra):
    import yaml

    spec = {"name": "tiny", "base": {"data": str(manifest), "backbone": "test_efficientnet", "pretrained": False,
                                     "image_size": 32, "epochs": 1, "batch_size": 16, "precision": "fp32",
                                     "threads": 1, "cell_min_samples": 3, "cell_max_samples": 12},
            "variants": {"tau-20": {"tau_km": 20.0}, "tau-300": {"tau_km": 300.0}, "no-smoothing": {"label_smoothing": "none"}},
            "finalists": 1, **extra}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_study_trains_every_row_tests_finalists_and_resumes(tmp_path, capsys):
    manifest = make_tiny_dataset(tmp_path / "data")
    spec = _spec(tmp_path, manifest, finalist_seeds=[1])
    assert cli.main(["study", str(spec), "--out-dir", str(tmp_path / "studies")]) == 0
    out = capsys.readouterr().out
    state = json.loads((tmp_path / "studies" / "tiny" / "study.json").read_text())
    finalists = state["finalists"]
    assert finalists[0] == "default" and len(finalists) == 2
    # every row once; the default and the finalist again with the finalist seed
    assert set(state["rows"]) == {"default-s0", "tau-20-s0", "tau-300-s0", "no-smoothing-s0",
                                  *(f"{row}-s1" for row in finalists)}
    # only finalists read the test split, once per seed
    assert set(state["tests"]) == {f"{row}-s{seed}" for row in finalists for seed in (0, 1)}
    tested = [r for r in state["rows"] if r not in state["tests"]]
    assert all(not (tmp_path / "studies" / "tiny" / r / "test").exists() for r in tested)
    table = (tmp_path / "studies" / "tiny" / "study.md").read_text()
    assert "| default | (base) |" in table and "(not a finalist)" in table and "Δ median km vs default" in table
    finalist = state["finalists"][1]
    line = next(ln for ln in table.splitlines() if ln.startswith(f"| {finalist} |"))
    assert " to " in line  # the paired difference carries its interval
    default_line = next(ln for ln in table.splitlines() if ln.startswith("| default |"))
    assert "–" in default_line.split("|")[5]  # the test median with its interval
    by_seed = default_line.split("|")[7].split(" / ")  # the test median of each seed
    assert [float(m.replace(",", "")) for m in by_seed] == [
        pytest.approx(state["tests"][f"default-s{seed}"]["median_km"], abs=0.5) for seed in (0, 1)]
    assert state["rows"]["default-s0"]["train_seconds"] > 0
    # the chosen finalist has the best validation score of the variants
    scores = {r["row"]: r["val_score"] for r in state["rows"].values() if r["row"] != "default" and r["seed"] == 0}
    assert finalist == min(scores, key=scores.get)
    # run again: nothing retrains
    assert cli.main(["study", str(spec), "--out-dir", str(tmp_path / "studies")]) == 0
    again = capsys.readouterr().out
    assert again.count(": done (in") == 6 and ": training" not in again
    assert "training" in out


@pytest.mark.parametrize("extra,named", [
    ({"variants": {"default": {"epochs": 2}}}, "'default' is the row"),
    ({"variants": {"bad": {"epochz": 2}}}, "row bad"),
    ({"finalists": -1}, "finalists must be"),
    ({"finalist_seeds": [0]}, "finalist_seeds must be"),
    ({"budget": 3}, "unknown study keys"),
])
def test_bad_specs_are_refused_by_name(tmp_path, extra, named):
    spec = _spec(tmp_path, tmp_path / "m.csv", **extra)
    with pytest.raises(ConfigError, match=named):
        load_study(spec)


def test_a_grid_study_tests_every_row_and_plots_from_its_json(tmp_path):
    from geocell_engine.engine.study import run_study

    manifest = make_tiny_dataset(tmp_path / "data")
    spec = _spec(tmp_path, manifest, finalists=0, also_test=["n-4", "n-8"],
                 plot={"x": "max_per_country", "series": ["backbone"]})
    import yaml

    raw = yaml.safe_load(spec.read_text())
    raw["base"].update(task="country", max_per_country=12)
    raw["variants"] = {"n-4": {"max_per_country": 4}, "n-8": {"max_per_country": 8}}
    spec.write_text(yaml.safe_dump(raw))
    state = run_study(load_study(spec), tmp_path / "studies", log=lambda _: None)
    assert state["finalists"] == ["default", "n-4", "n-8"] and len(state["tests"]) == 3
    for test in state["tests"].values():
        iv = test["macro_f1_interval"]
        assert 0 <= iv["low"] <= test["macro_f1"] <= iv["high"] <= 1 and test["inference_images_per_s"] > 0
    assert (tmp_path / "studies" / "tiny" / "study.png").is_file() and state["plot"].endswith("study.png")
    table = (tmp_path / "studies" / "tiny" / "study.md").read_text()
    header = [c.strip() for c in table.splitlines()[0].split("|")]
    line = [c.strip() for c in next(ln for ln in table.splitlines() if ln.startswith("| n-4 |")).split("|")]
    assert line[header.index("test macro F1")].startswith(f"{state['tests']['n-4-s0']['macro_f1']:.3f} (")


@pytest.mark.parametrize("plot,named", [
    ({"x": "max_per_countri"}, "not config keys"),
    ({"series": ["backbone"]}, "plot must be"),
    ({"x": "max_per_country"}, "row default: the plot's x key max_per_country is None"),
])
def test_bad_plot_keys_are_refused_by_name(tmp_path, plot, named):
    with pytest.raises(ConfigError, match=named):
        load_study(_spec(tmp_path, tmp_path / "m.csv", plot=plot))
