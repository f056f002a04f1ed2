"""Hyperparameter search with Optuna (``cli.py tune SPACE.yaml``): trials are ordinary run folders.

A search space is a YAML file::

    name: lr-wd                    # the study folder: OUT_DIR/lr-wd/
    space:                         # config key -> distribution
      lr: {distribution: log_uniform, low: 1.0e-5, high: 1.0e-1}
      weight_decay: {distribution: categorical, choices: [0.0, 0.001, 0.01, 0.1]}
      dropout: {distribution: uniform, low: 0.0, high: 0.5}
    pruner: {type: median, n_startup_trials: 2, n_warmup_steps: 1}   # or successive_halving, none
    sampler: {type: tpe, seed: 0}                                     # or random
    n_trials: 20                   # finished (complete or pruned) trials the study is to have

Everything else a trial trains with is the ``train`` configuration (defaults < ``--quick`` <
``--config`` YAML < flags typed); each trial sets the keys of ``space`` on top of it.

How it runs (:func:`run_tune`):

- The study lives in ``OUT_DIR/NAME/study.db`` (SQLite through Optuna's ``RDBStorage``,
  ``load_if_exists``): the same command continues it, up to ``n_trials`` finished trials.
- Trial N trains in ``OUT_DIR/NAME/trial-N`` (:func:`~geocell_engine.engine.run.run_training`
  with ``read_test=False``: the test split is never read). The objective is the task's
  validation score (``val_score``, lower is better) at the best epoch, as ``cli.py study``
  chooses rows. Each epoch's ``val_score`` is reported to the pruner, which may stop the trial
  (state PRUNED).
- A trial left RUNNING by a kill stops sending heartbeats; the next run of the command marks it
  FAILED and retries it with the same parameters (Optuna's heartbeat and
  ``RetryHeartbeatStaleTrialCallback``). The retry trains in the folder of the trial it retries
  and resumes its run from ``last.pt``. A trial stopped by Ctrl-C (recorded FAILED, marked
  ``interrupted``) is retried the same way.
- A trial that raises is recorded FAILED with its error (user attribute ``error``) and the
  study goes on. A space that does not fit the config (a bound out of a key's range, an unknown
  key) is refused before any trial, naming the key.
- After the trials: ``best.yaml`` (the best trial's full config, without where it ran; ``train
  --config best.yaml`` trains it), ``trials.csv``, ``tune.md`` (one row per trial) and the plots
  ``plots/history.png`` and, with at least two completed trials, ``plots/importances.png``
  (``optuna.visualization.matplotlib``); every file written atomically.

Optuna is an optional extra (``pip install -e ".[tune]"``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from geocell_engine.engine.config import TrainConfig, load_yaml_config
from geocell_engine.engine.resume import RESUMABLE_KEYS
from geocell_engine.errors import ConfigError

__all__ = ["ParamSpec", "TuneSpec", "load_tune_spec", "run_tune", "TuneResult", "DISTRIBUTIONS", "PRUNERS"]

#: The distributions a space key may take.
DISTRIBUTIONS = ("log_uniform", "uniform", "categorical")
#: The pruners a spec may choose.
PRUNERS = ("median", "successive_halving", "none")
SAMPLERS = ("tpe", "random")
_SPEC_KEYS = {"name", "space", "pruner", "sampler", "n_trials", "heartbeat_seconds"}
#: Keys a trial cannot search: where and how the run lives, and the data it trains on.
_NOT_SEARCHABLE = RESUMABLE_KEYS | {"data", "split_file", "seed", "run_name", "out_dir"}
_MISSING = ("cli.py tune needs the optuna package, which is not installed; install it with pip install optuna "
            "(or pip install -e \".[tune]\")")


@dataclass(frozen=True)
class ParamSpec:
    """One searched key: ``distribution`` is log_uniform / uniform (``low``..``high``; an integer
    key draws integers) or categorical (``choices``)."""

    key: str
    distribution: str
    low: Optional[float] = None
    high: Optional[float] = None
    choices: tuple = ()

    def suggest(self, trial: Any, integer: bool) -> Any:
        """The value of this key for an Optuna trial."""
        if self.distribution == "categorical":
            return trial.suggest_categorical(self.key, list(self.choices))
        log = self.distribution == "log_uniform"
        if integer:
            return trial.suggest_int(self.key, int(self.low), int(self.high), log=log)
        return trial.suggest_float(self.key, float(self.low), float(self.high), log=log)

    def describe(self) -> str:
        if self.distribution == "categorical":
            return f"{self.key} in {list(self.choices)}"
        return f"{self.key} {self.distribution} {self.low:g}..{self.high:g}"


@dataclass(frozen=True)
class TuneSpec:
    """A parsed search space (see the module docstring); ``source`` is the file."""

    name: str
    space: tuple[ParamSpec, ...]
    pruner: Mapping[str, Any] = field(default_factory=lambda: {"type": "median"})
    sampler: Mapping[str, Any] = field(default_factory=lambda: {"type": "tpe", "seed": 0})
    n_trials: int = 20
    heartbeat_seconds: int = 60
    source: str = ""


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _param(key: str, raw: Any, source: str) -> ParamSpec:
    where = f"{source}: space.{key}"
    if isinstance(raw, list):
        raw = {"distribution": "categorical", "choices": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a mapping with 'distribution' ({', '.join(DISTRIBUTIONS)}) or a list of "
                          f"choices, got {raw!r}")
    dist = raw.get("distribution")
    if dist not in DISTRIBUTIONS:
        raise ConfigError(f"{where}.distribution must be one of {', '.join(DISTRIBUTIONS)}, got {dist!r}")
    allowed = {"distribution", "choices"} if dist == "categorical" else {"distribution", "low", "high"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} for a {dist} distribution; expected {sorted(allowed)}")
    if dist == "categorical":
        choices = raw.get("choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.choices must be a non-empty list, got {choices!r}")
        bad = [c for c in choices if not (c is None or isinstance(c, (bool, int, float, str)))]
        if bad:
            raise ConfigError(f"{where}.choices: {bad[0]!r} is not a number, string, boolean or null")
        return ParamSpec(key, dist, choices=tuple(choices))
    if "low" not in raw or "high" not in raw:
        raise ConfigError(f"{where}: a {dist} distribution needs low and high")
    low, high = _number(raw["low"], f"{where}.low"), _number(raw["high"], f"{where}.high")
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got low={low:g}, high={high:g}")
    if dist == "log_uniform" and low <= 0:
        raise ConfigError(f"{where}: a log_uniform distribution needs low > 0, got {low:g}")
    return ParamSpec(key, dist, low, high)


def _typed_mapping(raw: Any, key: str, choices: tuple[str, ...], default: Mapping[str, Any], source: str) -> dict:
    value = dict(default) if raw is None else raw
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, Mapping) or value.get("type") not in choices:
        raise ConfigError(f"{source}: {key} must be a mapping with type one of {', '.join(choices)}, got {raw!r}")
    return dict(value)


def load_tune_spec(path: str | Path) -> TuneSpec:
    """Read and check a search-space YAML (its keys and distributions; the config keys are
    checked against the train config by :func:`check_space`).

    Raises:
        ConfigError: naming the file and the key.
        InputFileError: no such file.
    """
    raw = load_yaml_config(path)
    source = str(path)
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown}; expected {sorted(_SPEC_KEYS)}")
    space = raw.get("space")
    if not isinstance(space, Mapping) or not space:
        raise ConfigError(f"{source}: 'space' must map config keys to distributions, got {space!r}")
    params = tuple(_param(str(k), v, source) for k, v in space.items())
    n_trials = raw.get("n_trials", 20)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"{source}: n_trials must be an integer >= 1, got {n_trials!r}")
    heartbeat = raw.get("heartbeat_seconds", 60)
    if isinstance(heartbeat, bool) or not isinstance(heartbeat, int) or heartbeat < 1:
        raise ConfigError(f"{source}: heartbeat_seconds must be an integer >= 1, got {heartbeat!r}")
    name = str(raw.get("name") or Path(path).stem)
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{source}: name must be a folder name, got {name!r}")
    return TuneSpec(name, params,
                    _typed_mapping(raw.get("pruner"), "pruner", PRUNERS, {"type": "median"}, source),
                    _typed_mapping(raw.get("sampler"), "sampler", SAMPLERS, {"type": "tpe", "seed": 0}, source),
                    n_trials, heartbeat, source)


def check_space(spec: TuneSpec, base: TrainConfig, typed: Mapping[str, Any] = ()) -> None:
    """Refuse a space that does not fit the train config, before any trial: an unknown or
    unsearchable key, a key also typed as a flag, or a bound or choice the key does not accept.

    Raises:
        ConfigError: naming the space key (and the bound) and what the key accepts.
    """
    from dataclasses import fields

    known = {f.name for f in fields(TrainConfig)}
    for p in spec.space:
        where = f"{spec.source}: space.{p.key}"
        if p.key not in known:
            raise ConfigError(f"{where}: {p.key!r} is not a config key; known keys: {', '.join(sorted(known))}")
        if p.key in _NOT_SEARCHABLE:
            raise ConfigError(f"{where}: {p.key!r} cannot be searched (it says where or on what a trial runs)")
        if p.key in typed:
            raise ConfigError(f"{where}: {p.key!r} is searched, so it cannot also be given as a flag "
                              f"(--{p.key.replace('_', '-')})")
        integer = _is_int(p.key)
        values = ({f"choices[{i}]": c for i, c in enumerate(p.choices)} if p.distribution == "categorical" else
                  {"low": p.low, "high": p.high})
        for label, value in values.items():
            if integer and p.distribution != "categorical" and not float(value).is_integer():
                raise ConfigError(f"{where}.{label}: {p.key} is an integer key, got {value:g}")
            value = int(value) if integer and p.distribution != "categorical" else value
            TrainConfig.from_dict({**base.to_dict(), p.key: value}, source=f"{where}.{label}")


def _is_int(key: str) -> bool:
    import typing

    hint = typing.get_type_hints(TrainConfig)[key]
    return hint is int or int in typing.get_args(hint) and float not in typing.get_args(hint)


def _pruner(spec: TuneSpec):
    import optuna

    kwargs = {k: v for k, v in spec.pruner.items() if k != "type"}
    kind = spec.pruner["type"]
    cls = {"median": optuna.pruners.MedianPruner, "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
           "none": optuna.pruners.NopPruner}[kind]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{spec.source}: pruner {kind}: {exc}") from None


def _sampler(spec: TuneSpec, trials_before: int = 0):
    """The spec's sampler. Its seed is offset by the trials the study already has, so that a run
    that continues a study draws new values instead of repeating the first run's (a seeded
    sampler made again starts its random stream again); the same history gives the same draws."""
    import optuna

    kwargs = {k: v for k, v in spec.sampler.items() if k != "type"}
    if kwargs.get("seed") is not None and trials_before:
        if isinstance(kwargs["seed"], bool) or not isinstance(kwargs["seed"], int):
            raise ConfigError(f"{spec.source}: sampler seed must be an integer, got {kwargs['seed']!r}")
        kwargs["seed"] = (kwargs["seed"] + trials_before) % 2**32
    kind = spec.sampler["type"]
    cls = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}[kind]
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{spec.source}: sampler {kind}: {exc}") from None


def _storage(path: Path, heartbeat_seconds: int):
    """SQLite RDBStorage with heartbeats; a stale RUNNING trial is failed and retried once."""
    import warnings

    import optuna
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():  # heartbeats and their retry are "experimental" since optuna 2.8
        warnings.simplefilter("ignore", ExperimentalWarning)
        retry_cls = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        if retry_cls is not None:  # optuna >= 4.9
            callback = {"heartbeat_stale_trial_callback": retry_cls(max_retry=1)}
        else:
            callback = {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)}
        return optuna.storages.RDBStorage(f"sqlite:///{path}", heartbeat_interval=heartbeat_seconds, **callback)


class _TrialFailed(Exception):
    """Internal: a trial raised; Optuna records it FAILED and the study goes on."""


def _retried_number(trial: Any) -> Optional[int]:
    """The number of the trial a heartbeat retry repeats (None for a new trial); ``trial`` is a
    FrozenTrial or a running Trial (whose system attributes live in the storage)."""
    if not hasattr(trial, "system_attrs"):
        trial = trial.study._storage.get_trial(trial._trial_id)
    return trial.system_attrs.get("failed_trial")


@dataclass
class TuneResult:
    """What :func:`run_tune` leaves: the study folder, the trials table, the best trial (or None)."""

    folder: Path
    table: str
    best: Optional[dict[str, Any]]
    counts: dict[str, int]


def _finished(study) -> int:
    from optuna.trial import TrialState

    return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.get_trials(deepcopy=False))


def run_tune(spec: TuneSpec, base: TrainConfig, out_dir: str | Path, *, n_trials: Optional[int] = None,
             timeout: Optional[float] = None, typed: Mapping[str, Any] = (),
             log: Callable[[str], None] = print) -> TuneResult:
    """Run (or continue) the study of ``spec`` until it has ``n_trials`` finished trials.

    Args:
        spec: the search space (:func:`load_tune_spec`).
        base: the train config every trial starts from (its ``out_dir`` and ``run_name`` are
            replaced by the study folder and ``trial-N``).
        out_dir: the parent of the study folder ``out_dir/spec.name``.
        n_trials: finished (complete or pruned) trials the study is to have (default:
            ``spec.n_trials``); a run of the command trains the ones missing. Failed trials do
            not count; a run stops after ``max(3, n_trials)`` of them.
        timeout: stop starting trials after this many seconds (the running one finishes).
        typed: the train flags that were typed (a searched key may not be one of them).

    Returns:
        :class:`TuneResult`.

    Raises:
        ConfigError: the space does not fit the config (before any trial), optuna is missing.
    """
    try:
        import optuna
    except ImportError:
        raise ConfigError(_MISSING) from None
    import warnings

    from optuna.exceptions import ExperimentalWarning
    from optuna.trial import TrialState

    from geocell_engine.engine import run as run_module

    check_space(spec, base, typed)
    pruner, sampler = _pruner(spec), _sampler(spec)
    n_trials = spec.n_trials if n_trials is None else n_trials
    if n_trials < 1:
        raise ConfigError(f"--n-trials must be >= 1, got {n_trials}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be > 0 seconds, got {timeout}")
    folder = Path(out_dir) / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is ours
    try:
        storage = _storage(folder / "study.db", spec.heartbeat_seconds)
        study = optuna.create_study(study_name=spec.name, storage=storage, direction="minimize", sampler=sampler,
                                    pruner=pruner, load_if_exists=True)
        if study.user_attrs.get("space") not in (None, [p.describe() for p in spec.space]):
            raise ConfigError(f"{spec.source}: the study {folder / 'study.db'} was made with another space "
                              f"({study.user_attrs['space']}); give the spec another name")
        study.set_user_attr("space", [p.describe() for p in spec.space])
        before = len(study.get_trials(deepcopy=False))
        if before:
            study.sampler = _sampler(spec, before)
        integers = {p.key: _is_int(p.key) for p in spec.space}
        from geocell_engine.engine.tasks import get_task_class

        score_name = get_task_class(base.task).score_name

        def objective(trial) -> float:
            retried = _retried_number(trial)
            number = trial.number if retried is None else retried
            values = {p.key: p.suggest(trial, integers[p.key]) for p in spec.space}
            shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
            # a bad combination of values is the space's fault: it stops the study (not caught)
            config = TrainConfig.from_dict({**base.to_dict(), **values, "out_dir": str(folder),
                                            "run_name": f"trial-{number}", "resume": True, "quiet": True},
                                           source=f"{spec.source}: trial {trial.number} ({shown})")
            run_dir = folder / f"trial-{number}"
            trial.set_user_attr("run_dir", run_dir.name)
            log(f"trial {trial.number}: {shown}" + (f" (retry of trial {retried}, resuming {run_dir.name})"
                                                    if retried is not None else ""))
            metrics = run_dir / "metrics.jsonl"
            if retried is not None and metrics.is_file():  # the epochs the killed trial finished
                for line in metrics.read_text().splitlines():
                    row = json.loads(line)
                    if row.get("val_score") is not None:
                        trial.report(float(row["val_score"]), int(row["epoch"]))

            def on_epoch_end(epoch: int, row: Mapping[str, Any]) -> None:
                if row.get("val_score") is None:
                    return
                trial.report(float(row["val_score"]), epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch} (val_score {row['val_score']:.4g})")

            try:
                summary = run_module.run_training(config, log=lambda _: None, read_test=False,
                                                  on_epoch_end=on_epoch_end)
            except optuna.TrialPruned as exc:
                log(f"trial {trial.number}: {exc}")
                raise
            except KeyboardInterrupt:  # Ctrl-C: Optuna records FAILED; the next run retries it (see below)
                trial.set_user_attr("interrupted", True)
                raise
            except Exception as exc:  # recorded FAILED with its error; the study goes on
                message = f"{type(exc).__name__}: {exc}"
                trial.set_user_attr("error", message)
                log(f"trial {trial.number}: failed: {message}")
                raise _TrialFailed(message) from exc
            history = summary.report["history"]
            best = next(r for r in history if r["epoch"] == summary.report["best_epoch"])
            for key in ("val_median_km", "val_country_acc"):
                trial.set_user_attr(key, best.get(key))
            trial.set_user_attr("best_epoch", summary.report["best_epoch"])
            trial.set_user_attr("epochs_run", len(history))
            value = float(best["val_score"])
            log(f"trial {trial.number}: {score_name} {value:.4g} at epoch {summary.report['best_epoch']}")
            return value

        _retry_interrupted(study)
        done = _finished(study)
        failed_here = []
        max_failures = max(3, n_trials)  # a setup in which every trial fails does not loop for ever

        def stop_when_done(study, trial) -> None:
            if trial.state == TrialState.FAIL:
                failed_here.append(trial.number)
            if _finished(study) >= n_trials or len(failed_here) >= max_failures:
                study.stop()

        if done < n_trials:
            log(f"study {spec.name} ({folder / 'study.db'}): {done} finished trials, running until {n_trials}")
            study.optimize(objective, timeout=timeout, catch=(_TrialFailed,), callbacks=[stop_when_done])
            if len(failed_here) >= max_failures:
                log(f"stopped after {len(failed_here)} failed trials in this run (see tune.md for their errors)")
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
            log(f"study {spec.name}: {done} finished trials, as --n-trials {n_trials} asks")
        trials = study.get_trials(deepcopy=False)
        counts = {s.name.lower(): sum(t.state == s for t in trials) for s in TrialState}
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        best = None
        if completed:
            top = min(completed, key=lambda t: t.value)
            best = {"number": top.number, "value": top.value, "params": dict(top.params),
                    "run_dir": top.user_attrs.get("run_dir")}
            _write_best(folder / "best.yaml", base, top, spec, score_name)
        table = _table(trials, spec, score_name)
        _write_outputs(folder, study, table, completed, log)
        return TuneResult(folder, table, best, counts)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _retry_interrupted(study) -> None:
    """Queue a retry of every trial Ctrl-C interrupted (FAILED with user attribute
    ``interrupted``), once, with the same values and the same ``failed_trial`` mark a heartbeat
    retry gets, so that it resumes the interrupted trial's run folder as a killed trial's does."""
    import optuna
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    queued = {t.system_attrs.get("failed_trial") for t in trials}
    for t in trials:
        original = t.system_attrs.get("failed_trial", t.number)
        if t.state == TrialState.FAIL and t.user_attrs.get("interrupted") and original not in queued:
            study.add_trial(optuna.create_trial(state=TrialState.WAITING, params=t.params,
                                                distributions=t.distributions,
                                                system_attrs={"failed_trial": original,
                                                              "retry_history": [t.number]}))
            queued.add(original)


def _write_best(path: Path, base: TrainConfig, trial: Any, spec: TuneSpec, score_name: str) -> None:
    """The best trial's config as YAML for ``train --config`` (without where the trial ran)."""
    import yaml

    from geocell.tables import atomic_write

    config = TrainConfig.from_dict({**base.to_dict(), **trial.params}, source=str(path)).to_dict()
    for key in ("out_dir", "run_name", "resume", "quiet"):
        config.pop(key)
    header = (f"# best trial {trial.number} of study {spec.name} ({spec.source}): {score_name} (validation) "
              f"{trial.value:.6g} at epoch {trial.user_attrs.get('best_epoch')}\n"
              f"# train it: python cli.py train --config {path.name}\n")
    text = header + yaml.safe_dump(config, sort_keys=False)
    atomic_write(path, lambda p: p.write_text(text))


def _table(trials, spec: TuneSpec, score_name: str) -> str:
    keys = [p.key for p in spec.space]
    lines = ["| trial | state | " + " | ".join(keys) + f" | {score_name} (validation) | best epoch | epochs | note |",
             "|---:|---|" + "---:|" * len(keys) + "---:|---:|---:|---|"]
    for t in trials:
        params = [f"{t.params[k]:.3g}" if isinstance(t.params.get(k), float) else str(t.params.get(k, ""))
                  for k in keys]
        value = f"{t.value:.4g}" if t.value is not None else ""
        retried = _retried_number(t)
        note = t.user_attrs.get("error", "")
        if retried is not None:
            note = (note + "; " if note else "") + f"retry of trial {retried}"
        if t.state.name == "PRUNED" and t.intermediate_values:
            last = max(t.intermediate_values)
            value = f"({t.intermediate_values[last]:.4g} at epoch {last})"
        epochs = t.user_attrs.get("epochs_run", len(t.intermediate_values) or "")
        lines.append(f"| {t.number} | {t.state.name.lower()} | " + " | ".join(params) +
                     f" | {value} | {t.user_attrs.get('best_epoch', '')} | {epochs} | "
                     f"{str(note).replace('|', '/')} |")
    return "\n".join(lines)


def _write_outputs(folder: Path, study, table: str, completed: list, log: Callable[[str], None]) -> None:
    """``tune.md``, ``trials.csv`` and the plots (history; importances with >= 2 completed trials).

    Optuna's matplotlib functions draw with pyplot and set a style: they run inside
    ``matplotlib.rc_context`` so that the global settings are left as they were."""
    import warnings

    import matplotlib
    from optuna.exceptions import ExperimentalWarning

    from geocell.tables import atomic_write

    atomic_write(folder / "tune.md", lambda p: p.write_text(table + "\n"))
    frame = study.trials_dataframe()
    atomic_write(folder / "trials.csv", lambda p: frame.to_csv(p, index=False))
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    def save(make, name: str) -> None:
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            ax = make(study)
            fig = ax.figure
            try:
                fig.set_size_inches(8, 5)
                fig.tight_layout()
                atomic_write(plots / name, lambda p: fig.savefig(p, format="png", dpi=100))
            finally:
                plt.close(fig)

    if completed:
        save(ovm.plot_optimization_history, "history.png")
    if len(completed) >= 2:
        try:
            save(ovm.plot_param_importances, "importances.png")
        except (RuntimeError, ValueError) as exc:  # e.g. every completed trial scored the same
            log(f"no parameter-importance plot: {exc}")
