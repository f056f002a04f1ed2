"""``multi``: several tasks on one backbone, with a weight per loss (``config.loss_weights``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from geocell_engine.engine.tasks.base import Labels, Task, get_task_class, register_task
from geocell_engine.errors import ConfigError


@register_task("multi")
class MultiTask(Task):
    """The tasks of ``config.multi_tasks`` side by side. The loss is ``sum(w_t * loss_t)`` with
    ``w_t = config.loss_weights[t]`` (1 where not given); the location and the countries come
    from the first sub-task that gives them (in the order given); the score is the median km.

    Args:
        parts: ``{name: task}`` in the order of ``config.multi_tasks``.
    """

    composite = True

    def __init__(self, config, labels: Labels, parts: Mapping[str, Task]) -> None:
        super().__init__(config, labels)
        self.parts = dict(parts)

    @classmethod
    def _classes(cls, config) -> dict[str, type[Task]]:
        names = tuple(config.multi_tasks)
        if not names or len(set(names)) != len(names):
            raise ConfigError(f"multi_tasks must name distinct single tasks, got {list(names)}")
        classes = {name: get_task_class(name) for name in names}
        nested = [name for name, c in classes.items() if c.composite]
        if nested:
            raise ConfigError(f"multi_tasks cannot name the composite tasks {nested}")
        return classes

    @classmethod
    def build(cls, config, labels, train, run_dir: Optional[Path] = None, log=print) -> "MultiTask":
        parts = {name: sub.build(config, labels, train, run_dir=run_dir, log=log)
                 for name, sub in cls._classes(config).items()}
        return cls(config, labels, parts)

    @classmethod
    def from_state(cls, config, labels, state, run_dir: Optional[Path] = None) -> "MultiTask":
        parts = {name: sub.from_state(config, labels, state.get(name) or {}, run_dir=run_dir)
                 for name, sub in cls._classes(config).items()}
        return cls(config, labels, parts)

    @property
    def supports_mixup(self) -> bool:  # type: ignore[override]
        """Only when every part has classes to mix (latlon and distance do not)."""
        return all(part.supports_mixup for part in self.parts.values())

    @property
    def needs_coordinates(self) -> bool:  # type: ignore[override]
        return any(part.needs_coordinates for part in self.parts.values())

    def state(self) -> dict[str, Any]:
        return {name: part.state() for name, part in self.parts.items()}

    @classmethod
    def state_from_format_1(cls, config, ckpt) -> dict[str, Any]:
        return {name: sub.state_from_format_1(config, ckpt) for name, sub in cls._classes(config).items()}

    @property
    def cells_hash(self) -> Optional[str]:
        return next((p.cells_hash for p in self.parts.values() if p.cells_hash is not None), None)

    def build_heads(self, in_features: int) -> dict[str, Any]:
        heads: dict[str, Any] = {}
        for part in self.parts.values():
            for name, head in part.build_heads(in_features).items():
                if name in heads:
                    raise ConfigError(f"two tasks of multi_tasks build a head named {name!r}")
                heads[name] = head
        return heads

    def targets(self, split) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for part in self.parts.values():
            out.update(part.targets(split))
        return out

    def loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any]) -> tuple[Any, dict[str, float]]:
        total, parts = 0.0, {}
        for name, part in self.parts.items():
            value, sub_parts = part.loss(outputs, targets)
            parts.update(sub_parts)
            total = total + float(self.config.loss_weights.get(name, 1.0)) * value
        return total, parts

    def mixed_loss(self, outputs: Mapping[str, Any], targets: Mapping[str, Any], mix: Any) -> tuple[Any, dict[str, float]]:
        total, parts = 0.0, {}
        for name, part in self.parts.items():
            value, sub_parts = part.mixed_loss(outputs, targets, mix)
            parts.update(sub_parts)
            total = total + float(self.config.loss_weights.get(name, 1.0)) * value
        return total, parts

    def country_proba(self, outputs: Mapping[str, Any]) -> Optional[np.ndarray]:
        for part in sorted(self.parts.values(), key=lambda p: p.name != "country"):  # a country head first
            proba = part.country_proba(outputs)
            if proba is not None:
                return proba
        return None

    def collect(self, outputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Each part's arrays under ``"<part>/<key>"``."""
        return {f"{name}/{key}": value for name, part in self.parts.items()
                for key, value in part.collect(outputs).items()}

    def finish(self, collected: Mapping[str, np.ndarray], lat: np.ndarray, lon: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, part in self.parts.items():
            prefix = f"{name}/"
            mine = {key[len(prefix):]: value for key, value in collected.items() if key.startswith(prefix)}
            out.update(part.finish(mine, lat, lon))
        return out

    def describe(self) -> str:
        return "multi (" + ", ".join(p.describe() for p in self.parts.values()) + ")"
