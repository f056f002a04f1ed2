"""The task base class, the label space every task shares, and the task registry.

A task is one class (timm's ``register_model`` / ``create_model`` pattern; torchgeo's
``BaseTask`` with ``configure_models`` / ``configure_losses`` / ``configure_metrics``): it builds
its heads, its targets from a split, its loss, its validation score, its checkpoint state, and
turns model outputs into a location and a country. The engine never branches on a task name.

A new task registers itself::

    @register_task("elevation")
    class ElevationTask(Task):
        needs_coordinates = False
        def build_heads(self, in_features): ...
        def targets(self, split): ...
        def loss(self, outputs, targets): ...

and ``--task elevation`` then works in ``train``, ``evaluate`` and ``predict``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Optional, TypeVar

import numpy as np

from geocell_engine.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from geocell_engine.data.dataset import GeoSplit
    from geocell_engine.engine.config import TrainConfig
    from geocell_engine.evaluation.predictions import Predictions

__all__ = ["Anchors", "Labels", "Task", "register_task", "get_task_class", "list_tasks", "create_task",
           "task_from_state"]


# ---------------------------------------------------------------------------- shared labels
@dataclass(frozen=True)
class Anchors:
    """One fixed position per country: ``lat``, ``lon`` ``(M,)`` degrees and their ``labels``.

    They are the distance head's anchors and the location guess of a country-only model.
    """

    lat: np.ndarray
    lon: np.ndarray
    labels: tuple[str, ...]

    @classmethod
    def from_points(cls, lat: np.ndarray, lon: np.ndarray, country: np.ndarray,
                    countries: tuple[str, ...]) -> "Anchors":
        """The spherical mean of each country's training points; a country with no finite
        coordinates (an ImageFolder tree has none) gets a point inside its Natural Earth polygon."""
        from geocell import spherical_mean

        a_lat, a_lon, missing = [], [], []
        finite = np.isfinite(lat) & np.isfinite(lon)
        for name in countries:
            sel = (country == name) & finite
            if not sel.any():
                missing.append(len(a_lat))
                a_lat.append(np.nan)
                a_lon.append(np.nan)
                continue
            try:
                la, lo = spherical_mean(lat[sel], lon[sel])
            except ValueError:  # points that cancel out: take the first one
                la, lo = float(lat[sel][0]), float(lon[sel][0])
            a_lat.append(float(la))
            a_lon.append(float(lo))
        if missing:
            from geocell_engine.data.countries import country_reference_points

            ref_lat, ref_lon = country_reference_points([countries[i] for i in missing])
            for j, i in enumerate(missing):
                a_lat[i], a_lon[i] = float(ref_lat[j]), float(ref_lon[j])
        return cls(np.asarray(a_lat, dtype=np.float64), np.asarray(a_lon, dtype=np.float64), tuple(countries))

    def locate(self, country: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(N,)`` lat/lon of each named country's anchor (NaN for a name without one)."""
        index = {c: i for i, c in enumerate(self.labels)}
        rows = np.array([index.get(c, -1) for c in np.asarray(country).tolist()], dtype=np.int64)
        lat = np.where(rows >= 0, self.lat[np.maximum(rows, 0)], np.nan)
        lon = np.where(rows >= 0, self.lon[np.maximum(rows, 0)], np.nan)
        return lat, lon

    def to_state(self) -> dict[str, Any]:
        import torch

        return {"lat": torch.tensor(self.lat, dtype=torch.float64),
                "lon": torch.tensor(self.lon, dtype=torch.float64), "labels": list(self.labels)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Anchors":
        return cls(np.asarray(state["lat"], dtype=np.float64), np.asarray(state["lon"], dtype=np.float64),
                   tuple(str(x) for x in state["labels"]))


@dataclass(frozen=True)
class Labels:
    """What every task of a run shares: the country vocabulary and one anchor per country.

    Attributes:
        countries: sorted ``adm0_a3`` codes of the training split (the country head's classes).
        anchors: one position per country of ``countries``.
    """

    countries: tuple[str, ...]
    anchors: Anchors

    @classmethod
    def from_split(cls, train: "GeoSplit") -> "Labels":
        countries = tuple(sorted(set(train.country.tolist()) - {""}))
        return cls(countries, Anchors.from_points(train.lat, train.lon, train.country, countries))

    def country_index(self, country: np.ndarray) -> np.ndarray:
        """``(N,)`` int64 indices into :attr:`countries`, -1 for a name not in it."""
        index = {c: i for i, c in enumerate(self.countries)}
        return np.array([index.get(c, -1) for c in np.asarray(country).tolist()], dtype=np.int64)

    def to_state(self) -> dict[str, Any]:
        return {"countries": list(self.countries), "anchors": self.anchors.to_state()}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "Labels":
        return cls(tuple(str(c) for c in state["countries"]), Anchors.from_state(state["anchors"]))


# ---------------------------------------------------------------------------- the base class
class Task:
    """One thing a model learns to predict. Subclasses override what differs.

    Args:
        config: the run's configuration.
        labels: the country vocabulary and anchors shared by every task of the run.

    Class attributes:
        name: the registry name (set by :func:`register_task`).
        needs_coordinates: whether training samples must carry lat/lon (False: country labels
            are enough, e.g. an ImageFolder tree of country folders).
        score_name: what :meth:`score` measures (lower is better), for logs.
        composite: whether the task combines other tasks (``multi``); a composite task cannot be
            one of ``multi_tasks`` or a ``loss_weights`` key.
        supports_mixup: whether :meth:`mixed_loss` can train on MixUp / CutMix batches.
    """

    name: ClassVar[str] = ""
    needs_coordinates: ClassVar[bool] = True
    composite: ClassVar[bool] = False
    score_name: ClassVar[str] = "val median km"
    supports_mixup: ClassVar[bool] = False

    def __init__(self, config: "TrainConfig", labels: Labels) -> None:
        self.config = config
        self.labels = labels

    # -------------------------------------------------------------- construction
    @classmethod
    def build(cls, config: "TrainConfig", labels: Labels, train: "GeoSplit", run_dir: Optional[Path] = None,
              log: Callable[[str], None] = print) -> "Task":
        """The task for a new run, from its training split (``run_dir`` holds derived files)."""
        return cls(config, labels)

    @classmethod
    def from_state(cls, config: "TrainConfig", labels: Labels, state: Mapping[str, Any],
                   run_dir: Optional[Path] = None) -> "Task":
        """The task of a checkpoint, from :meth:`state` (``run_dir``: the checkpoint's folder)."""
        return cls(config, labels)

    def state(self) -> dict[str, Any]:
        """Task-specific plain data for the checkpoint (tensors, lists, str, numbers)."""
        return {}

    @classmethod
    def state_from_format_1(cls, config: "TrainConfig", ckpt: Mapping[str, Any]) -> dict[str, Any]:
        """This task's :meth:`state` from a format-1 checkpoint (labels and cells at the top level)."""
        return {}

    @property
    def cells_hash(self) -> Optional[str]:
        """The hash of the cells this task classifies into, or None."""
        return None

    # -------------------------------------------------------------- training
    def build_heads(self, in_features: int) -> dict[str, Any]:
        """``{head name: head}`` for backbone features of width ``in_features``."""
        raise NotImplementedError

    def targets(self, split: "GeoSplit") -> dict[str, np.ndarray]:
        """Per-sample targets of a split, ``{name: (N, ...) array}``; the engine takes the rows of
        each batch and moves them to the device."""
        return {"lat": split.lat.astype(np.float32), "lon": split.lon.astype(np.float32)}

    def loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        """``(scalar loss tensor, {part: float})`` for a batch's outputs and targets."""
        raise NotImplementedError

    def mixed_loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any], mix: Any) -> tuple[Any, dict[str, float]]:
        """The loss of a MixUp / CutMix batch, as multi-label binary cross-entropy.

        Args:
            targets: the batch's targets, as for :meth:`loss` (those of the unmixed images).
            mix: ``(B, B)`` float tensor; row ``i`` weighs the images mixed into image ``i``
                (``lam`` on ``i``, ``1 - lam`` on its partner: timm's ``Mixup`` targets of
                ``arange(B)``), so ``mix @ y`` mixes any per-image soft target ``y`` ``(B, C)``.

        Raises:
            NotImplementedError: a task without classes to mix (``supports_mixup`` is False).
        """
        raise NotImplementedError(f"the {self.name} task has no loss for MixUp / CutMix batches")

    def score(self, preds: "Predictions") -> float:
        """Validation score, lower is better: median km by default."""
        from geocell import haversine

        d = haversine(preds.true_lat, preds.true_lon, preds.pred_lat, preds.pred_lon)
        return float(np.median(d)) if d.size else float("inf")

    # -------------------------------------------------------------- prediction
    def predict(self, model: Any, images: Any, k: int = 5, outputs: Optional[Mapping[str, Any]] = None):
        """``heads.Prediction`` for a batch: top-k labels and one lat/lon per image. A model
        without a location head guesses the anchor of its top country ("country centre")."""
        import torch

        pred = model.predict(images, k=k, outputs=outputs)
        if pred.country is not None and not bool(torch.isfinite(pred.lat).all()):
            top = np.asarray([labels[0] for labels in pred.country.labels])
            lat, lon = self.labels.anchors.locate(top)
            pred = replace(pred, lat=torch.as_tensor(lat, device=pred.lat.device),
                           lon=torch.as_tensor(lon, device=pred.lon.device), location_method="country centre")
        return pred

    def country_proba(self, outputs: Mapping[str, Any]) -> Optional[np.ndarray]:
        """``(B, C)`` probabilities over :attr:`Labels.countries`, or None when no head gives them."""
        return None

    def collect(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Extra per-batch arrays for :class:`Predictions` (e.g. ``pred_cell``)."""
        return {}

    def finish(self, collected: Mapping[str, np.ndarray], lat: np.ndarray, lon: np.ndarray) -> dict[str, Any]:
        """Extra :class:`Predictions` fields from the concatenated :meth:`collect` arrays and the
        true coordinates ``(N,)`` (e.g. ``true_cell``)."""
        return dict(collected)

    def describe(self) -> str:
        return self.name


# ---------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[Task]] = {}
T = TypeVar("T", bound=type[Task])


def register_task(name: str) -> Callable[[T], T]:
    """Class decorator: make a :class:`Task` subclass available as ``--task name``.

    Raises:
        ValueError: the name is taken by another class, or the class is not a Task.
    """

    def decorator(cls: T) -> T:
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ValueError(f"register_task({name!r}) expects a Task subclass, got {cls!r}")
        existing = _REGISTRY.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"task name {name!r} is already registered by {existing.__qualname__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorator


def _load_builtin() -> None:
    from geocell_engine.engine.tasks import country, distance, latlon, multi, region  # noqa: F401


def list_tasks() -> tuple[str, ...]:
    """Registered task names, sorted (the built-in ones and any registered since)."""
    _load_builtin()
    return tuple(sorted(_REGISTRY))


def get_task_class(name: str) -> type[Task]:
    """The class registered as ``name``.

    Raises:
        ConfigError: naming the registered tasks.
    """
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; registered tasks: {', '.join(list_tasks())}") from None


def create_task(config: "TrainConfig", train: "GeoSplit", run_dir: Optional[Path] = None,
                log: Callable[[str], None] = print) -> Task:
    """The task of ``config.task`` for a new run on ``train``."""
    cls = get_task_class(config.task)
    return cls.build(config, Labels.from_split(train), train, run_dir=run_dir, log=log)


def task_from_state(config: "TrainConfig", state: Mapping[str, Any], run_dir: Optional[Path] = None) -> Task:
    """The task of a checkpoint's ``"task"`` entry (see :func:`geocell_engine.engine.checkpoint`)."""
    cls = get_task_class(str(state["name"]))
    return cls.from_state(config, Labels.from_state(state["labels"]), state.get("state") or {}, run_dir=run_dir)
