"""The machine a run trains on, as its report records it: CPU model and speed flags, and the
bare training step rate measured at the start of the run.

Training speed differs about twofold between 2-core machines of the same kind (AVX-512 with
bf16 on one, AVX2 only on another), so a run's wall time is only comparable with another's
beside the bare step rate measured on the same machine in the same run.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any

__all__ = ["SPEED_FLAGS", "cpu_flags", "cpu_model", "bare_step_rate", "machine_record"]

#: The CPU flags that change the speed of torch's kernels (recorded with every absolute figure).
SPEED_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def _cpuinfo_value(key: str) -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    line = next((ln for ln in text.splitlines() if ln.startswith(key)), "")
    return line.split(":", 1)[-1].strip()


def cpu_flags() -> list[str]:
    """The :data:`SPEED_FLAGS` this CPU has (from /proc/cpuinfo; empty where it is not readable)."""
    have = set(_cpuinfo_value("flags").split())
    return [f for f in SPEED_FLAGS if f in have]


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or ``platform.processor()`` elsewhere."""
    return _cpuinfo_value("model name") or platform.processor() or platform.machine()


def bare_step_rate(config: Any, task: Any, train: Any, steps: int = 4) -> float:
    """Images per second of the bare training step of this run's model: forward, loss, backward
    and an AdamW step on random images of the run's batch and image size with the targets of
    the first training samples (fp32, CPU threads as set), timed over ``steps`` steps after
    one untimed step; data loading is not included.

    The global random state is left as it was (``torch.random.fork_rng``), so measuring does not
    change what the run then trains.
    """
    import torch

    from geocell_engine.data.transforms import image_hw
    from geocell_engine.engine.model import build_model

    height, width = image_hw(config.image_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(config, task, pretrained=False)
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
        images = torch.rand(config.batch_size, 3, height, width)
        first = train.subsample(config.batch_size, 0)
        targets = {k: torch.as_tensor(v) for k, v in task.targets(first).items()}
        images = images[:len(first)]
        seconds = 0.0
        for step in range(steps + 1):
            start = time.perf_counter()
            loss, _ = task.loss(model(images), targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step:  # the first step selects kernels
                seconds += time.perf_counter() - start
    return steps * len(first) / seconds


def machine_record(step_rate: float | None) -> dict[str, Any]:
    """The machine fields of a run's report: CPU model, cores, speed flags, the bare step rate."""
    return {"CPU": cpu_model(), "CPU cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count(), "CPU flags": " ".join(cpu_flags()) or "none of " + ", ".join(SPEED_FLAGS[:3]),
            "bare step images/s at start": None if step_rate is None else round(step_rate, 1)}
