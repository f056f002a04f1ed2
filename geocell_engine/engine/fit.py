"""The training loop: ``fit`` = ``train_one_epoch`` + ``validate`` + checkpoints, resumable.

One loop serves every task and device: AdamW with a lower learning rate for the backbone,
timm's warmup + cosine schedule stepped per update, gradient accumulation, bf16 autocast where
it helps, optional EMA (timm's ``ModelEmaV3``), early stopping on the validation split, and DDP
when launched with ``torchrun`` (the same command). After every epoch ``last.pt`` (and
``best.pt`` when validation improved) is written atomically together with ``metrics.jsonl``,
which is rewritten from the checkpoint's history, so a run killed at any moment resumes from its
last finished epoch with no truncated file and no duplicated row. The task (see
:mod:`geocell_engine.engine.tasks`) supplies heads, targets, loss and validation score.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np

from geocell_engine.data.dataset import BadImageLog, GeoSplit, iterate_batches
from geocell_engine.engine.config import TrainConfig
from geocell_engine.engine.device import DistContext, autocast, choose_precision
from geocell_engine.engine.model import build_model
from geocell_engine.engine.predict import predict_split
from geocell_engine.engine.tasks import Task

__all__ = ["fit", "train_one_epoch", "validate", "FitResult", "augment_batch"]


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def augment_batch(images, generator):
    """Mild photometric jitter per image (brightness / contrast +-10%) and a random shift of up
    to 1/16 of the side (reflect padding); the patches stay north-up.

    Args:
        images: (B, 3, H, W) float in [0, 1].
        generator: a seeded ``torch.Generator`` (CPU).

    Returns:
        (B, 3, H, W) float in [0, 1].
    """
    import torch
    import torch.nn.functional as F

    b, _, h, w = images.shape
    bright = 1.0 + (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.2
    contrast = 1.0 + (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.2
    bright, contrast = bright.to(images.device), contrast.to(images.device)
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = ((images - mean) * contrast + mean) * bright
    pad = max(1, h // 16)
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + h, dx:dx + w].clamp(0, 1)


@dataclass
class FitResult:
    """What :func:`fit` leaves behind. ``model`` holds the best weights (the EMA's when EMA is
    on), in eval mode on the training device; None on non-main DDP ranks."""

    run_dir: Path
    history: list
    best_path: Path
    last_path: Path
    epochs_run: int
    stopped_early: bool
    seconds: float
    images_per_second: float
    model: Any = None


@dataclass
class _Loop:
    """The mutable state of one training run (model, optimiser, schedule, EMA, step)."""

    model: Any
    optimizer: Any
    scheduler: Any
    ema: Any
    step: int
    generator: Any


def train_one_epoch(loop: _Loop, task: Task, train: GeoSplit, targets: Mapping[str, Any], order: np.ndarray,
                    config: TrainConfig, device: str, precision: str, bad_log: BadImageLog,
                    progress: Optional[Any] = None) -> dict[str, float]:
    """One pass over ``order`` (indices into ``train``); returns the mean loss and its parts.

    Args:
        targets: the task's per-sample targets as CPU tensors (``task.targets(train)``).
    """
    import torch

    model, optimizer = loop.model, loop.optimizer
    model.train()
    loss_sum, parts_sum, batches = 0.0, {}, 0
    optimizer.zero_grad(set_to_none=True)
    for micro, (images, idx) in enumerate(iterate_batches(train, order, config.batch_size, config.image_size,
                                                         config.on_bad_image, bad_log)):
        x = images.to(device, non_blocking=True).float().div_(255.0)
        if config.augment:
            x = augment_batch(x, loop.generator)
        t_idx = torch.as_tensor(idx)
        batch_targets = {k: v[t_idx].to(device, non_blocking=True) for k, v in targets.items()}
        with autocast(device, precision):
            outputs = model(x)
        loss, parts = task.loss(outputs, batch_targets)
        (loss / config.accum_steps).backward()
        if (micro + 1) % config.accum_steps == 0:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loop.step += 1
            loop.scheduler.step_update(loop.step)
            if loop.ema is not None:
                loop.ema.update(_unwrap(model), step=loop.step)
        loss_sum += float(loss.detach())
        for k, v in parts.items():
            parts_sum[k] = parts_sum.get(k, 0.0) + v
        batches += 1
        if progress is not None:
            progress.update(len(idx))
            progress.set_postfix(loss=f"{loss_sum / batches:.3f}")
    return {"train_loss": loss_sum / max(batches, 1),
            **{f"train_loss_{k}": v / max(batches, 1) for k, v in parts_sum.items()}}


def validate(model, task: Task, val: GeoSplit, config: TrainConfig, device: str, precision: str) -> tuple[dict[str, float], float]:
    """``({val_median_km, val_mean_km, val_country_acc}, score)`` on the validation split; the
    score is the task's (lower is better)."""
    from geocell import haversine

    preds = predict_split(model, task, val, image_size=config.image_size, batch_size=max(64, config.batch_size),
                          device=device, precision=precision, on_bad_image=config.on_bad_image)
    d = haversine(preds.true_lat, preds.true_lon, preds.pred_lat, preds.pred_lon)
    row = {"val_median_km": float(np.median(d)), "val_mean_km": float(np.mean(d)),
           "val_country_acc": float(np.mean(preds.pred_country == preds.true_country))}
    return row, task.score(preds)


def _setup(config: TrainConfig, task: Task, train: GeoSplit, ctx: DistContext, log) -> tuple[_Loop, int]:
    import torch
    from timm.scheduler import CosineLRScheduler

    torch.manual_seed(config.seed)
    model = build_model(config, task).to(ctx.device)
    if config.init_from:
        _init_from(model, config.init_from, log)
    backbone_params = list(model.backbone.parameters())
    head_params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    optimizer = torch.optim.AdamW(
        [{"params": backbone_params, "lr": config.lr * config.backbone_lr_mult},
         {"params": head_params, "lr": config.lr}],
        weight_decay=config.weight_decay,
    )
    shard = max(1, len(train) // ctx.world_size)
    steps_per_epoch = max(1, math.ceil(shard / (config.batch_size * config.accum_steps)))
    scheduler = CosineLRScheduler(optimizer, t_initial=steps_per_epoch * config.epochs, lr_min=config.lr * 0.01,
                                  warmup_t=int(config.warmup_epochs * steps_per_epoch),
                                  warmup_lr_init=config.lr * 0.01, t_in_epochs=False)
    ema = None
    if config.ema:
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=config.ema_decay)
    if ctx.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        # sparse hierarchy buffers are built identically on every rank and DDP cannot broadcast them
        sparse = [name for name, buf in model.named_buffers() if buf.is_sparse]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, sparse)
        model = DistributedDataParallel(model, device_ids=[int(ctx.device.split(":")[1])]
                                        if ctx.device.startswith("cuda") else None)
    generator = torch.Generator().manual_seed(config.seed)
    return _Loop(model, optimizer, scheduler, ema, 0, generator), shard


def fit(
    config: TrainConfig,
    task: Task,
    train: GeoSplit,
    val: GeoSplit,
    run_dir: Path,
    checkpoint_extra: dict[str, Any],
    ctx: DistContext = DistContext(),
    log: Callable[[str], None] = print,
) -> FitResult:
    """Train, validating and checkpointing after every epoch; resumes from ``run_dir/last.pt``.

    Args:
        checkpoint_extra: plain data stored in every checkpoint (dataset identity).

    Returns:
        :class:`FitResult` with the best model loaded.
    """
    import torch
    from tqdm.auto import tqdm

    from geocell_engine.engine.checkpoint import (
        check_compatible,
        load_checkpoint,
        save_checkpoint,
    )

    device = ctx.device
    precision = choose_precision(config.precision, device)
    loop, shard = _setup(config, task, train, ctx, log)
    history: list[dict[str, Any]] = []
    start_epoch, best, since_best = 1, math.inf, 0
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if ctx.is_main:  # temp files of writes cut short by a kill: never renamed, so never valid
        for stale in run_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    task_state = {"name": task.name, "labels": task.labels.to_state(), "state": task.state()}
    if last_path.is_file():
        ckpt = load_checkpoint(last_path)
        check_compatible(ckpt, cells_hash=task.cells_hash, countries=task.labels.countries, source=str(last_path))
        _unwrap(loop.model).load_state_dict(ckpt["model"])
        loop.optimizer.load_state_dict(ckpt["optimizer"])
        loop.scheduler.load_state_dict(ckpt["scheduler"])
        if loop.ema is not None and ckpt.get("ema") is not None:
            loop.ema.load_state_dict(ckpt["ema"])
        history, loop.step = list(ckpt["history"]), int(ckpt["step"])
        start_epoch, best, since_best = int(ckpt["epoch"]) + 1, float(ckpt["best_metric"]), int(ckpt["since_best"])
        if ctx.is_main:  # a kill between the checkpoint and the history write leaves it one row short
            _write_history(run_dir / "metrics.jsonl", history)
        log(f"resuming {run_dir} after epoch {ckpt['epoch']} (step {loop.step})")

    targets = {k: torch.as_tensor(v) for k, v in task.targets(train).items()}
    bad_log = BadImageLog([])
    started, images_seen, train_seconds = time.perf_counter(), 0, 0.0
    stopped_early = False
    log(f"training {task.describe()} on {len(train):,} images ({precision}, {device}, "
        f"{ctx.world_size} process{'es' if ctx.world_size > 1 else ''}), validating on {len(val):,}")

    for epoch in range(start_epoch, config.epochs + 1):
        if since_best >= config.patience:
            stopped_early = True
            break
        rng = np.random.default_rng(config.seed * 1000 + epoch)
        order = rng.permutation(len(train))[ctx.rank::ctx.world_size][:shard]
        bar = tqdm(total=len(order), unit="img", desc=f"epoch {epoch}/{config.epochs}",
                   disable=True if config.quiet or not ctx.is_main else None, leave=False)
        epoch_start = time.perf_counter()
        row: dict[str, Any] = {"epoch": epoch}
        row.update(train_one_epoch(loop, task, train, targets, order, config, device, precision, bad_log, bar))
        bar.close()
        epoch_seconds = time.perf_counter() - epoch_start
        train_seconds += epoch_seconds
        images_seen += len(order)
        eval_model = loop.ema.module if loop.ema is not None else _unwrap(loop.model)
        row.update({"step": loop.step, "lr": loop.optimizer.param_groups[1]["lr"], "epoch_seconds": epoch_seconds,
                    "train_images_per_s": len(order) / max(epoch_seconds, 1e-9)})
        if ctx.is_main:
            metrics, score = validate(eval_model, task, val, config, device, precision)
            row.update(metrics)
            improved = score < best
            best, since_best = (score, 0) if improved else (best, since_best + 1)
            history.append(row)
            payload = {
                "model": _unwrap(loop.model).state_dict(),
                "ema": loop.ema.state_dict() if loop.ema is not None else None,
                "optimizer": loop.optimizer.state_dict(), "scheduler": loop.scheduler.state_dict(),
                "epoch": epoch, "step": loop.step, "best_metric": best, "since_best": since_best,
                "history": history, "config": config.to_dict(), "task": task_state, **checkpoint_extra,
            }
            if improved:
                save_checkpoint(best_path, dict(payload, model=eval_model.state_dict()))
            save_checkpoint(last_path, payload)
            _write_history(run_dir / "metrics.jsonl", history)
            log(f"epoch {epoch}: loss {row['train_loss']:.4f}  val median {row['val_median_km']:,.0f} km  "
                f"val country {row['val_country_acc']:.1%}  {row['train_images_per_s']:.0f} img/s"
                + ("  (best)" if improved else ""))
        if ctx.world_size > 1:
            import torch.distributed as dist

            flags = torch.tensor([since_best], dtype=torch.long)
            dist.broadcast(flags, src=0)
            since_best = int(flags.item())
    if len(bad_log):
        log(f"skipped {len(bad_log)} unreadable images; first: {bad_log.rows[0]}")
        if ctx.is_main:
            from geocell.tables import atomic_write

            atomic_write(run_dir / "skipped_images.txt", lambda p: p.write_text("\n".join(bad_log.rows) + "\n"))
    model = None
    if ctx.is_main:
        model = _unwrap(loop.model)
        model.load_state_dict(load_checkpoint(best_path)["model"])
        model.eval()
    return FitResult(run_dir, history, best_path, last_path, len(history), stopped_early,
                     time.perf_counter() - started, images_seen / max(train_seconds, 1e-9), model)


def _init_from(model, path: str, log: Callable[[str], None]) -> None:
    """Task-aware pretraining: copy the backbone (and heads of the same shape) from a checkpoint."""
    from geocell_engine.engine.checkpoint import load_checkpoint
    from geocell_engine.errors import CheckpointError

    state = load_checkpoint(path)["model"]
    own = model.state_dict()
    compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    backbone_keys = [k for k in compatible if k.startswith("backbone.")]
    if not backbone_keys:
        raise CheckpointError(f"{path}: its backbone does not fit this model (another architecture?)")
    model.load_state_dict(compatible, strict=False)
    log(f"initialised {len(backbone_keys)} backbone and {len(compatible) - len(backbone_keys)} head tensors from {path}")


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    from geocell.tables import atomic_write

    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in history)
    atomic_write(path, lambda p: p.write_text(text))
