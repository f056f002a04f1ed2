"""Where a command runs: the device (chosen once per command), the precision, and DDP ranks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from geocell_engine.errors import ConfigError

__all__ = ["DistContext", "choose_device", "setup_distributed", "leave_distributed", "choose_precision", "autocast"]


@dataclass(frozen=True)
class DistContext:
    """Where this process runs: rank / world size of a torchrun launch (1 process otherwise)."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def choose_device(requested: str = "auto") -> str:
    """``"cuda:<LOCAL_RANK>"`` when a CUDA GPU is available (``auto``), else ``"cpu"``.

    Args:
        requested: "auto", "cpu", "cuda" or "cuda:N".

    Raises:
        ConfigError: "cuda" was requested on a machine without one, or an unknown device name.

    Example:
        >>> choose_device("cpu")
        'cpu'
    """
    import torch

    if requested == "cpu":
        return "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device {requested!r} was requested but torch sees no CUDA GPU")
        return requested if ":" in requested else f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    if requested != "auto":
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {requested!r}")
    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return "cpu"


def setup_distributed() -> DistContext:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    import torch
    import torch.distributed as dist

    device = choose_device()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=device)
    rank = int(os.environ["RANK"])
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    return DistContext(rank=rank, world_size=world, device=device)


def choose_precision(precision: Literal["auto", "bf16", "fp32"], device: str) -> Literal["bf16", "fp32"]:
    """``"bf16"`` or ``"fp32"``. ``auto`` picks bf16 on a CUDA GPU that supports it and fp32 on
    a CPU: on the AVX-512 CPUs here bf16 autocast made EfficientNet-Lite0 training at 64 px slower,
    not faster, and on an AVX2 CPU it ran at a tenth of the speed (``benchmarks/bench_fit.py``)."""
    import torch

    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def leave_distributed() -> None:
    """Leave the process group joined by :func:`setup_distributed` (a no-op without one).

    Called by every rank once training is over: a rank that exits with the group still up can
    abort in gloo's threads at interpreter shutdown ("terminate called without an active
    exception"), while rank 0 is still writing the report.
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def autocast(device: str, precision: str):
    """The autocast context of a precision on a device (a no-op for fp32)."""
    import torch

    return torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                          enabled=precision == "bf16")
