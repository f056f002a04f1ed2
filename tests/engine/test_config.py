"""TrainConfig: checks at construction, YAML 1.2 floats, flag text, precedence, the flag
descriptions the CLI is generated from. No training here: every test runs in milliseconds."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from geocell_engine.engine import config as cfg
from geocell_engine.engine.config import (
    DEFAULT_TAU_KM,
    GROUPS,
    QUICK_PRESET,
    ConfigError,
    TrainConfig,
    config_options,
    load_yaml_config,
    resolve_config,
)


def write(tmp_path, text: str, name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------ YAML floats
@pytest.mark.parametrize(
    ("text", "expected"),
    [("1e-3", 0.001), ("1E5", 1e5), ("-2.5e-4", -2.5e-4), (".5", 0.5), ("1.", 1.0), ("3.0", 3.0),
     ("1.0e+2", 100.0), ("+7e1", 70.0)],
)
def test_yaml_floats_follow_yaml_1_2(tmp_path, text, expected):
    value = load_yaml_config(write(tmp_path, f"x: {text}\n"))["x"]
    assert type(value) is float and value == expected


def test_yaml_keeps_ints_strings_and_special_floats(tmp_path):
    values = load_yaml_config(write(tmp_path, "a: 5\nb: -3\nc: '1e-3'\nd: .inf\ne: .nan\nf: 1e\ng: true\nh: null\n"))
    assert values["a"] == 5 and type(values["a"]) is int and values["b"] == -3
    assert values["c"] == "1e-3"  # quoted: still a string
    assert values["d"] == math.inf and math.isnan(values["e"])
    assert values["f"] == "1e"  # no exponent digits: not a number
    assert values["g"] is True and values["h"] is None


def test_yaml_loader_does_not_change_pyyaml_safe_loader(tmp_path):
    import yaml

    load_yaml_config(write(tmp_path, "lr: 1e-3\n"))
    assert yaml.safe_load("lr: 1e-3\n") == {"lr": "1e-3"}  # PyYAML's own loader is untouched


def test_lr_1e_minus_3_from_yaml_is_a_number(tmp_path):
    config = resolve_config({}, write(tmp_path, "lr: 1e-3\nweight_decay: 5e-2\n"))
    assert config.lr == 0.001 and config.weight_decay == 0.05


# ------------------------------------------------------------------------- construction
def test_defaults_are_valid_and_round_trip():
    config = TrainConfig()
    assert TrainConfig.from_dict(config.to_dict()) == config
    assert config.tau_km == DEFAULT_TAU_KM != cfg.LABEL_SMOOTHING_TAU_KM and config.distance_clip_km == cfg.DISTANCE_CLIP_KM


def test_construction_checks_and_normalises():
    config = TrainConfig(lr=1, multi_tasks=["region", "distance"], loss_weights={"region": 2})
    assert type(config.lr) is float and config.multi_tasks == ("region", "distance")
    assert config.loss_weights == {"region": 2.0} and type(config.loss_weights["region"]) is float
    with pytest.raises(ConfigError, match=r"TrainConfig: epochs must be >= 1, got 0"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match=r"pretrained must be true or false .* got 1 \(an integer\)"):
        TrainConfig(pretrained=1)


@pytest.mark.parametrize(
    ("values", "pieces"),
    [
        ({"epochs": 3.0}, ["epochs", "an integer >= 1", "3.0"]),
        ({"ema_decay": 1.0}, ["ema_decay", "in (0, 1)", "1.0"]),
        ({"lr": float("nan")}, ["lr", "a number > 0", "nan"]),
        ({"lr": True}, ["lr", "a number > 0", "True (a boolean)"]),
        ({"seed": 2**32}, ["seed", "from 0 to 4294967295", "4294967296"]),
        ({"data": ""}, ["data", "a non-empty string", "''"]),
        ({"run_name": 2024}, ["run_name", "a non-empty string or null", "2024 (an integer)"]),
        ({"epochs": None}, ["epochs", "an integer >= 1", "None (null)"]),
        ({"task": "regio"}, ["task", "one of country, distance, latlon, multi, region", "'regio'"]),
        ({"multi_tasks": ["region", "multi"]}, ["multi_tasks", "country, distance, latlon, region", "'multi'"]),
        ({"multi_tasks": ["region", "region"]}, ["multi_tasks", "distinct", "'region'"]),
        ({"multi_tasks": []}, ["multi_tasks", "non-empty", "[]"]),
        ({"loss_weights": {"region": -1}}, ["loss_weights", "weight >= 0", "-1"]),
        ({"loss_weights": {"regio": 1}}, ["loss_weights", "tasks from country", "'regio'"]),
        ({"loss_weights": [1, 2]}, ["loss_weights", "a mapping", "[1, 2]"]),
        ({"num_workers": -1}, ["num_workers", ">= 0", "-1"]),
        ({"warmup_epochs": -0.5}, ["warmup_epochs", ">= 0", "-0.5"]),
        ({"max_eval_samples": 0}, ["max_eval_samples", ">= 1", "0"]),
        ({"label_smoothing": "gaussian"}, ["label_smoothing", "haversine, none", "'gaussian'"]),
    ],
)
def test_from_dict_refuses_with_key_value_source_and_expectation(values, pieces):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(values, source="run/config.yaml")
    message = str(info.value)
    assert message.startswith("run/config.yaml: ")
    for piece in pieces:
        assert piece in message, (piece, message)


def test_optional_fields_accept_null():
    config = TrainConfig.from_dict({"threads": None, "max_train_samples": None, "weights": None, "run_name": None})
    assert config.threads is None and config.max_train_samples is None


def test_rules_between_fields_name_both_sources(tmp_path):
    path = write(tmp_path, "cell_min_samples: 100\n")
    with pytest.raises(ConfigError) as info:
        resolve_config({}, path, quick=True)  # the preset's cell_max_samples 120 < 2 x 100
    message = str(info.value)
    assert "cell_min_samples=100 (from " + str(path) + ")" in message
    assert "cell_max_samples=120 (from the --quick preset)" in message
    # the S2 rule applies to S2 cells only; semantic cells ignore the s2 keys
    with pytest.raises(ConfigError, match=r"s2_tau_max must be at least s2_tau_min"):
        resolve_config({"cells": "s2", "s2_tau_min": "50", "s2_tau_max": "40"})
    assert resolve_config({"s2_tau_min": "50", "s2_tau_max": "40"}).s2_tau_max == 40


def test_unknown_keys_name_the_file(tmp_path):
    path = write(tmp_path, "epochz: 3\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown keys \['epochz'\]"):
        resolve_config({}, path)


def test_tasks_come_from_the_task_registry(monkeypatch):
    """One place for the task names: registering a task extends task, multi_tasks and loss_weights."""
    from geocell_engine.engine.tasks import Task, base

    with pytest.raises(ConfigError, match="task"):
        TrainConfig(task="geohash")
    monkeypatch.setitem(base._REGISTRY, "geohash", type("GeohashTask", (Task,), {}))
    assert "geohash" in cfg.known_tasks() and "geohash" in cfg.head_tasks() and "multi" not in cfg.head_tasks()
    config = TrainConfig(task="geohash", multi_tasks=("geohash",), loss_weights={"geohash": 1.0})
    assert config.multi_tasks == ("geohash",)


# ------------------------------------------------------------------------------- precedence
def test_precedence_defaults_quick_yaml_flags(tmp_path):
    path = write(tmp_path, "epochs: 7\nmax_eval_samples: 50\n")
    assert resolve_config({}).epochs == TrainConfig().epochs
    assert resolve_config({}, quick=True).epochs == QUICK_PRESET["epochs"]
    config = resolve_config({}, path, quick=True)
    assert (config.epochs, config.max_eval_samples) == (7, 50)  # YAML over the preset
    assert config.max_train_samples == QUICK_PRESET["max_train_samples"]  # preset where YAML is silent
    config = resolve_config({"epochs": "3", "max_eval_samples": "none"}, path, quick=True)
    assert (config.epochs, config.max_eval_samples) == (3, None)  # typed flags over everything


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("epochs", "12", 12),
        ("lr", "1e-3", 0.001),
        ("threads", "none", None),
        ("threads", "NULL", None),
        ("multi_tasks", "region, latlon", ("region", "latlon")),
        ("loss_weights", "region=2,latlon=0.25", {"region": 2.0, "latlon": 0.25}),
        ("data", "none", "none"),  # a string field that cannot be null keeps the text
    ],
)
def test_flag_text_is_converted(name, text, expected):
    assert getattr(resolve_config({name: text}), name) == expected


@pytest.mark.parametrize(
    ("name", "text", "shown"),
    [("epochs", "five", "'five'"), ("epochs", "2.5", "2.5 (a float)"), ("lr", "fast", "'fast'"),
     ("loss_weights", "region:1", "'region:1'"), ("epochs", "none", "'none'")],  # not optional: stays text
)
def test_bad_flag_text_names_the_flag(name, text, shown):
    with pytest.raises(ConfigError) as info:
        resolve_config({name: text})
    message = str(info.value)
    assert message.startswith(cfg.flag_name(name) + ": ") and name in message and shown in message


# ------------------------------------------------------------------------ flag descriptions
def test_every_field_has_one_option_with_group_help_and_default():
    options = config_options()
    assert [o.name for o in options] == [f.name for f in fields(TrainConfig)]
    assert len({o.flag for o in options}) == len(options)
    for option in options:
        assert option.group in GROUPS and option.help and option.help.endswith(f"(default: {option.default_text})")
        assert option.is_bool == isinstance(getattr(TrainConfig(), option.name), bool)
