"""What makes a resumed run equal an uninterrupted one: random-number states, and which config
keys a resume may change.

A checkpoint stores the states of every generator the loop draws from (torch's global CPU and
CUDA generators, numpy's and Python's global generators, and the augmentation generator) as
taken at the point the run continues from. With one thread and deterministic algorithms, a run
killed anywhere and resumed gives bitwise the same weights and metrics.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import numpy as np

from geocell_engine.errors import ConfigError

__all__ = ["RESUMABLE_KEYS", "rng_state", "set_rng_state", "check_resume_config"]

#: Config keys a resume may change: they cannot change the result. ``epochs`` may grow only
#: with ``extend_epochs`` (the schedule is rebuilt and the change recorded).
RESUMABLE_KEYS: frozenset[str] = frozenset({
    "threads", "quiet", "resume", "out_dir", "run_name", "num_workers", "extend_epochs", "checkpoint_every",
    "logger",
})


def rng_state(generator: Any) -> dict[str, Any]:
    """The random-number states of this process as checkpoint-safe tensors and lists."""
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.as_tensor(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": list(py_state), "gauss": gauss},
        "augment": generator.get_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any], generator: Any) -> None:
    """Restore what :func:`rng_state` took."""
    import torch

    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", np.asarray(n["keys"]).astype(np.uint32), int(n["pos"]), int(n["has_gauss"]),
                         float(n["cached_gaussian"])))
    p = state["python"]
    random.setstate((int(p["version"]), tuple(int(x) for x in p["state"]), p["gauss"]))
    generator.set_state(state["augment"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_resume_config(saved: Mapping[str, Any], current: Mapping[str, Any], source: str) -> list[str]:
    """Refuse a resume whose settings differ from the run's, except :data:`RESUMABLE_KEYS`.

    Returns:
        The keys that differ and are allowed to (for the log), plus ``"epochs"`` when it grew
        with ``extend_epochs``.

    Raises:
        ConfigError: naming every changed key with its old and new value.
    """
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    refused = [k for k in changed if k not in RESUMABLE_KEYS]
    if "epochs" in refused and current.get("extend_epochs") and int(current["epochs"]) > int(saved["epochs"]):
        refused.remove("epochs")
    if refused:
        detail = ", ".join(f"{k} {saved.get(k)!r} -> {current.get(k)!r}" for k in refused)
        hint = ("; to train longer pass --extend-epochs with the new --epochs" if "epochs" in refused else "")
        raise ConfigError(f"{source}: this run was started with other settings ({detail}); a resume may change "
                          f"only {', '.join(sorted(RESUMABLE_KEYS - {'extend_epochs'}))}{hint}. "
                          "Run the same command as before, or start a new run with --no-resume or another --run-name")
    return changed
