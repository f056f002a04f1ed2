"""``cli.py tune``: an Optuna study of tiny trials (each a run folder), continued after a kill (the
stale RUNNING trial failed by its heartbeat and retried in its own folder), a raising trial
recorded FAILED while the study goes on, a bad space refused before any trial, and best.yaml
that ``train --config`` takes."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from geocell_engine import cli
from tests.tiny_data import TINY, make_tiny_dataset

optuna = pytest.importorskip("optuna")  # CI installs it (the tune extra); skipped only outside CI


class _Killed(BaseException):
    """Stands for SIGKILL: no except clause of optuna's or ours sees it, so the trial stays RUNNING."""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny"))


def _space(tmp_path: Path, **extra) -> Path:
    spec = {"name": "t", "space": {"lr": {"distribution": "log_uniform", "low": 1e-4, "high": 1e-1},
                                   "weight_decay": {"distribution": "categorical", "choices": [0.0, 0.01, 0.1]}},
            "pruner": {"type": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
            "sampler": {"type": "random", "seed": 0}, **extra}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _tune(space: Path, manifest: Path, out: Path, *extra: str) -> int:
    return cli.main(["tune", str(space), "--data", str(manifest), "--out-dir", str(out), *TINY, "--task", "country",
                     *extra])


def _trials(folder: Path):
    storage = optuna.storages.RDBStorage(f"sqlite:///{folder / 'study.db'}")
    return optuna.load_study(study_name="t", storage=storage).get_trials()


def test_a_killed_study_resumes_retries_the_stale_trial_and_writes_best_yaml(tiny, tmp_path, monkeypatch, capsys):
    from geocell_engine.engine import run as run_module

    real = run_module.run_training

    def killed_in_trial_1(config, *args, on_epoch_end=None, **kwargs):
        def hook(epoch, row):
            on_epoch_end(epoch, row)
            if config.run_name == "trial-1" and epoch == 1:
                raise _Killed()
        return real(config, *args, on_epoch_end=hook, **kwargs)

    space = _space(tmp_path)
    folder = tmp_path / "t"
    monkeypatch.setattr(run_module, "run_training", killed_in_trial_1)
    with pytest.raises(_Killed):
        _tune(space, tiny, tmp_path, "--n-trials", "3")
    trials = _trials(folder)
    assert [t.state.name for t in trials] == ["COMPLETE", "RUNNING"]
    assert (folder / "trial-1" / "last.pt").is_file()  # epoch 1 of trial 1 was checkpointed
    # the kill stopped the heartbeat; make it older than the grace period instead of waiting
    with sqlite3.connect(folder / "study.db") as db:
        assert db.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00' WHERE trial_id IN "
                          "(SELECT trial_id FROM trials WHERE state = 'RUNNING')").rowcount == 1
    monkeypatch.setattr(run_module, "run_training", real)
    capsys.readouterr()
    assert _tune(space, tiny, tmp_path, "--n-trials", "3") == 0
    out = capsys.readouterr().out
    trials = _trials(folder)
    assert [t.number for t in trials] == [0, 1, 2, 3]  # the count continues
    assert trials[1].state.name == "FAIL"
    retry = trials[2]
    assert retry.system_attrs["failed_trial"] == 1 and retry.params == trials[1].params
    assert retry.user_attrs["run_dir"] == "trial-1" and "retry of trial 1, resuming trial-1" in out
    assert not (folder / "trial-2").exists()
    assert trials[3].params != trials[0].params  # the continued study draws anew (seed offset by its trials)
    assert [t.state.name for t in trials if t.number != 1] in (["COMPLETE"] * 3, ["COMPLETE", "COMPLETE", "PRUNED"],
                                                              ["COMPLETE", "PRUNED", "COMPLETE"])
    # the pruner saw every epoch's validation score, as metrics.jsonl holds it
    for t in (trials[0], retry):
        rows = [json.loads(x) for x in (folder / t.user_attrs["run_dir"] / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == [1, 2]
        assert t.intermediate_values == {r["epoch"]: pytest.approx(r["val_score"]) for r in rows}
        if t.state.name == "COMPLETE":
            assert t.value == pytest.approx(min(r["val_score"] for r in rows))
    # best.yaml is the best completed trial's config, and train --config takes it
    completed = [t for t in trials if t.state.name == "COMPLETE"]
    best = min(completed, key=lambda t: t.value)
    values = yaml.safe_load((folder / "best.yaml").read_text())
    assert values["lr"] == pytest.approx(best.params["lr"]) and values["weight_decay"] == best.params["weight_decay"]
    assert "out_dir" not in values and "run_name" not in values and values["task"] == "country"
    assert cli.main(["train", "--config", str(folder / "best.yaml"), "--print-config"]) == 0
    assert f"lr: {values['lr']}" in capsys.readouterr().out
    for name in ("history.png", "importances.png"):
        assert (folder / "plots" / name).stat().st_size > 1000
    assert "| 1 | fail |" in (folder / "tune.md").read_text()
    # enough finished trials: the same command trains nothing more
    assert _tune(space, tiny, tmp_path, "--n-trials", "3") == 0
    assert len(_trials(folder)) == 4


def test_a_raising_trial_is_failed_with_its_error_and_the_study_goes_on(tiny, tmp_path, monkeypatch, capsys):
    from geocell_engine.engine import run as run_module

    real = run_module.run_training

    def fails_in_trial_0(config, *args, **kwargs):
        if config.run_name == "trial-0":
            raise RuntimeError("disk full (simulated)")
        return real(config, *args, **kwargs)

    monkeypatch.setattr(run_module, "run_training", fails_in_trial_0)
    space = _space(tmp_path, pruner={"type": "successive_halving", "min_resource": 1, "reduction_factor": 2})
    assert _tune(space, tiny, tmp_path, "--n-trials", "1", "--epochs", "1") == 0
    trials = _trials(tmp_path / "t")
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[0].user_attrs["error"] == "RuntimeError: disk full (simulated)"
    assert "trial 0: failed: RuntimeError: disk full (simulated)" in capsys.readouterr().out
    assert not (tmp_path / "t" / "plots" / "importances.png").exists()  # one completed trial: no importances


@pytest.mark.parametrize("space,named", [
    ({"dropout": {"distribution": "uniform", "low": 0.0, "high": 1.5}}, r"space\.dropout\.high: dropout must be"),
    ({"lr": {"distribution": "log_uniform", "low": 0.0, "high": 0.1}}, "log_uniform distribution needs low > 0"),
    ({"lrr": {"distribution": "uniform", "low": 0.1, "high": 0.2}}, "'lrr' is not a config key"),
    ({"accum_steps": {"distribution": "uniform", "low": 1, "high": 2.5}},
     r"space\.accum_steps\.high: accum_steps is an integer key"),
    ({"seed": [0, 1]}, "'seed' cannot be searched"),
    ({"batch_size": [8, 16]}, "cannot also be given as a flag"),  # TINY types --batch-size
    ({"lr": {"distribution": "normal", "low": 0.1, "high": 0.2}}, "distribution must be one of"),
])
def test_a_bad_space_stops_before_any_trial(tiny, tmp_path, capsys, space, named):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "space": space}))
    assert _tune(path, tiny, tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    import re

    assert re.search(named, err), err
    assert not (tmp_path / "t" / "study.db").exists()


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "configs" / "tune").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_spaces_fit_the_config(path):
    from geocell_engine.engine.config import TrainConfig
    from geocell_engine.engine.tune import check_space, load_tune_spec

    spec = load_tune_spec(path)
    check_space(spec, TrainConfig())
    assert {p.key for p in spec.space} <= {"lr", "weight_decay", "dropout", "backbone_lr_mult", "tau_km",
                                            "warmup_epochs"}


def test_a_trial_stopped_by_ctrl_c_is_retried_in_its_folder(tiny, tmp_path, monkeypatch, capsys):
    from geocell_engine.engine import run as run_module

    real = run_module.run_training

    def ctrl_c_in_trial_0(config, *args, on_epoch_end=None, **kwargs):
        def hook(epoch, row):
            on_epoch_end(epoch, row)
            if config.run_name == "trial-0" and epoch == 1:
                raise KeyboardInterrupt
        return real(config, *args, on_epoch_end=hook, **kwargs)

    space = _space(tmp_path)
    monkeypatch.setattr(run_module, "run_training", ctrl_c_in_trial_0)
    assert _tune(space, tiny, tmp_path, "--n-trials", "1") == 130
    metrics = tmp_path / "t" / "trial-0" / "metrics.jsonl"
    first = json.loads(metrics.read_text().splitlines()[0])
    monkeypatch.setattr(run_module, "run_training", real)
    assert _tune(space, tiny, tmp_path, "--n-trials", "1") == 0
    trials = _trials(tmp_path / "t")
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"] and trials[0].user_attrs["interrupted"]
    assert trials[1].params == trials[0].params and trials[1].user_attrs["run_dir"] == "trial-0"
    rows = [json.loads(x) for x in metrics.read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and rows[0] == first  # resumed after epoch 1, not trained again
    assert "retry of trial 0, resuming trial-0" in capsys.readouterr().out
