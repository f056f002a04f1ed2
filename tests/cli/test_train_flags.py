"""The generated ``train`` flags: one per config key, defaults in --help, precedence over the YAML,
--print-config, and the bad-config matrix. Nothing here trains: --print-config stops after the
config is resolved, and a bad config is refused before a run directory exists."""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import yaml

from geocell_engine import cli
from geocell_engine.engine.config import TrainConfig, load_yaml_config

ROOT = Path(__file__).resolve().parents[2]


def train_parser() -> argparse.ArgumentParser:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


def shown_default(value) -> str:
    """How the help text must show a default (written out here, independently of config.py)."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def print_config(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert cli.main(["train", *args, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_every_config_key_has_a_flag_with_its_default():
    actions = {a.dest: a for a in train_parser()._actions}
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        action = actions[f.name]
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        assert flag in action.option_strings, f.name
        assert action.default is argparse.SUPPRESS, f.name  # untyped flags never override
        if isinstance(value, bool):
            assert "--no-" + flag[2:] in action.option_strings
            expected = flag if value else "--no-" + flag[2:]
        else:
            expected = shown_default(value)
        assert action.help.replace("%%", "%").endswith(f"(default: {expected})"), (f.name, action.help)


def test_help_text_shows_every_flag_and_default(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    squeezed = "".join(text.split())  # argparse wraps lines anywhere (also at hyphens)
    for group in ("data:", "model:", "optimisation:", "run:"):
        assert f"\n{group}\n" in text
    defaults = TrainConfig()
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        value = getattr(defaults, f.name)
        assert flag in text
        shown = (flag if value else "--no-" + flag[2:]) if isinstance(value, bool) else shown_default(value)
        assert f"(default:{shown})" in squeezed, f.name


def test_untyped_flag_keeps_yaml_value_and_typed_flag_wins(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 7\nlr: 1e-3\nrun_name: from-yaml\nmax_train_samples: 99\n")
    values = print_config(capsys, "--config", str(config))
    assert (values["epochs"], values["lr"], values["run_name"], values["max_train_samples"]) == (7, 0.001, "from-yaml", 99)
    values = print_config(capsys, "--config", str(config), "--epochs", "3", "--max-train-samples", "none")
    assert (values["epochs"], values["max_train_samples"], values["run_name"]) == (3, None, "from-yaml")


def test_quick_is_under_yaml(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 4\n")
    quick = print_config(capsys, "--quick")
    assert quick["epochs"] == 2 and quick["max_train_samples"] == 1500
    values = print_config(capsys, "--quick", "--config", str(config))
    assert values["epochs"] == 4 and values["max_train_samples"] == 1500


@pytest.mark.parametrize("name", ["ema", "pretrained", "resume", "augment", "quiet", "channels_last"])
def test_boolean_flags_work_both_ways_over_yaml(tmp_path, capsys, name):
    flag = name.replace("_", "-")
    for yaml_value, args, expected in [(True, [], True), (False, [], False), (True, [f"--no-{flag}"], False),
                                       (False, [f"--{flag}"], True)]:
        config = tmp_path / "c.yaml"
        config.write_text(f"{name}: {str(yaml_value).lower()}\n")
        assert print_config(capsys, "--config", str(config), *args)[name] is expected, (yaml_value, args)


def test_list_and_mapping_flags(capsys):
    values = print_config(capsys, "--task", "multi", "--multi-tasks", "region,distance",
                          "--loss-weights", "region=2,distance=0.25")
    assert values["multi_tasks"] == ["region", "distance"]
    assert values["loss_weights"] == {"region": 2.0, "distance": 0.25}


def test_print_config_parses_back_to_the_same_config(tmp_path, capsys):
    args = ["--quick", "--task", "multi", "--no-ema", "--lr", "3e-4", "--threads", "2", "--loss-weights", "region=1"]
    capsys.readouterr()
    assert cli.main(["train", *args, "--print-config", "--out-dir", str(tmp_path / "runs")]) == 0
    printed = capsys.readouterr().out
    saved = tmp_path / "printed.yaml"
    saved.write_text(printed)
    again = TrainConfig.from_dict(load_yaml_config(saved), source=str(saved))
    assert again.lr == 3e-4 and again.threads == 2 and again.task == "multi"
    assert again == TrainConfig.from_dict(yaml.safe_load(printed))
    # fed back as --config, it prints itself: nothing lost, nothing added
    assert cli.main(["train", "--config", str(saved), "--print-config"]) == 0
    assert capsys.readouterr().out == printed
    assert not (tmp_path / "runs").exists()


def test_print_config_does_not_import_torch():
    code = ("import sys; from geocell_engine import cli; rc = cli.main(['train', '--print-config']); "
            "print(rc, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[-1] == "0 False"


# yaml text or flags, then the pieces the one-line error must contain
BAD = {
    "precision bf17": ("precision: bf17\n", [], ["precision", "bf17", "auto, bf16, fp32"]),
    "on_bad_image maybe": ("on_bad_image: maybe\n", [], ["on_bad_image", "maybe", "skip, fail"]),
    "ema string": ('ema: "false"\n', [], ["ema", "'false'", "true or false"]),
    "epochs five": ('epochs: "five"\n', [], ["epochs", "'five'", "an integer"]),
    "epochs 2.5": ("epochs: 2.5\n", [], ["epochs", "2.5", "an integer"]),
    "epochs 3.0": ("epochs: 3.0\n", [], ["epochs", "3.0", "an integer"]),
    "threads -1": ("threads: -1\n", [], ["threads", "-1", ">= 1"]),
    "seed -1": ("seed: -1\n", [], ["seed", "-1", "from 0"]),
    "weight_decay -1": ("weight_decay: -1\n", [], ["weight_decay", "-1", ">= 0"]),
    "patience 0": ("patience: 0\n", [], ["patience", "0", ">= 1"]),
    "batch_size 0": ("batch_size: 0\n", [], ["batch_size", "0", ">= 1"]),
    "unknown key": ("epochz: 3\n", [], ["unknown keys", "epochz"]),
    "lr string": ("lr: fast\n", [], ["lr", "'fast'", "a number > 0"]),
    "task": ("task: geohash\n", [], ["task", "geohash", "country, distance"]),
    "flag --epochs five": (None, ["--epochs", "five"], ["--epochs", "epochs", "five", "an integer"]),
    "flag --epochs 2.5": (None, ["--epochs", "2.5"], ["--epochs", "epochs", "2.5", "an integer"]),
    "flag --precision": (None, ["--precision", "bf17"], ["--precision", "precision", "bf17", "auto, bf16, fp32"]),
    "flag --threads -1": (None, ["--threads", "-1"], ["--threads", "threads", "-1", ">= 1"]),
    "flag --seed -1": (None, ["--seed", "-1"], ["--seed", "seed", "-1"]),
    "flag --multi-tasks": (None, ["--multi-tasks", "region,foo"], ["--multi-tasks", "multi_tasks", "region,foo"]),
    "flag --loss-weights": (None, ["--loss-weights", "region:1"], ["--loss-weights", "loss_weights", "region:1"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_is_refused_before_any_run_folder(tmp_path, capsys, case):
    text, flags, pieces = BAD[case]
    args = ["train", "--out-dir", str(tmp_path / "runs"), *flags]
    if text is not None:
        (tmp_path / "bad.yaml").write_text(text)
        args += ["--config", str(tmp_path / "bad.yaml")]
        pieces = [str(tmp_path / "bad.yaml"), *pieces]  # names the file
    capsys.readouterr()
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for piece in pieces:
        assert piece in err, (piece, err)
    assert not (tmp_path / "runs").exists()
