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
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

from geocell_engine.data.accounting import ImageAccount
from geocell_engine.data.dataset import GeoSplit
from geocell_engine.data.loader import epoch_order
from geocell_engine.data.transforms import eval_decoder
from geocell_engine.engine.config import TrainConfig
from geocell_engine.engine.device import DistContext, autocast, choose_precision
from geocell_engine.engine.inputs import (
    BatchMixing,
    TrainInput,
    augment_batch,
    augment_kind,
    describe_recipe,
)
from geocell_engine.engine.model import build_model
from geocell_engine.engine.predict import predict_split
from geocell_engine.engine.tasks import Task

__all__ = ["fit", "train_one_epoch", "validate", "FitResult", "EpochProgress", "augment_batch"]


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


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


@dataclass
class EpochProgress:
    """How far an epoch got: micro-batches done and the loss sums so far (a mid-epoch checkpoint
    stores it, so a resumed epoch reports the same mean loss as an uninterrupted one)."""

    micro: int = 0
    loss_sum: float = 0.0
    parts_sum: dict = field(default_factory=dict)
    batches: int = 0

    def means(self) -> dict[str, float]:
        n = max(self.batches, 1)
        return {"train_loss": self.loss_sum / n, **{f"train_loss_{k}": v / n for k, v in self.parts_sum.items()}}


def train_one_epoch(loop: _Loop, task: Task, batches: Iterable[tuple[Any, np.ndarray]], targets: Mapping[str, Any],
                    config: TrainConfig, device: str, precision: str, mixing: BatchMixing,
                    progress: Optional[Any] = None, done: Optional[EpochProgress] = None,
                    after_step: Optional[Callable[[EpochProgress], None]] = None) -> EpochProgress:
    """One pass over ``batches`` (the rest of an epoch after micro-batch ``done.micro``).

    Args:
        batches: ``(uint8 (B, 3, H, W) images, sample indices (B,))`` (:meth:`TrainInput.epoch`).
        targets: the task's per-sample targets as CPU tensors (``task.targets(train)``).
        mixing: the on-device augmentation, erasing and MixUp / CutMix (:class:`BatchMixing`).
        done: what a resumed epoch had done before (None: start of the epoch).
        after_step: called after every optimizer step with the progress so far (mid-epoch
            checkpoints). A last partial accumulation at the end of the epoch is stepped too.

    Returns:
        The epoch's :class:`EpochProgress`.
    """
    import torch

    model, optimizer = loop.model, loop.optimizer
    model.train()
    state = done or EpochProgress()
    pending = 0

    def step() -> None:
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loop.step += 1
        loop.scheduler.step_update(loop.step)
        if loop.ema is not None:
            loop.ema.update(_unwrap(model), step=loop.step)

    optimizer.zero_grad(set_to_none=True)
    for images, idx in batches:
        x, mix = mixing.images(images.to(device, non_blocking=True).float().div_(255.0))
        t_idx = torch.as_tensor(idx)
        batch_targets = {k: v[t_idx].to(device, non_blocking=True) for k, v in targets.items()}
        with autocast(device, precision):
            outputs = model(x)
        loss, parts = mixing.loss(task, outputs, batch_targets, mix)
        (loss / config.accum_steps).backward()
        pending += 1
        state.micro += 1
        state.loss_sum += float(loss.detach())
        for k, v in parts.items():
            state.parts_sum[k] = state.parts_sum.get(k, 0.0) + v
        state.batches += 1
        if pending == config.accum_steps:
            step()
            pending = 0
            if after_step is not None:
                after_step(state)
        if progress is not None:
            progress.update(len(idx))
            progress.set_postfix(loss=f"{state.loss_sum / state.batches:.3f}")
    if pending:  # the last, partial accumulation of the epoch
        step()
        if after_step is not None:
            after_step(state)
    return state


def validate(model, task: Task, val: GeoSplit, config: TrainConfig, device: str, precision: str) -> tuple[dict[str, float], float]:
    """``({val_median_km, val_mean_km, val_country_acc}, score)`` on the validation split; the
    score is the task's (lower is better). The km are None for samples without coordinates."""
    from geocell import haversine

    preds = predict_split(model, task, val, image_size=config.image_size, batch_size=max(64, config.batch_size),
                          device=device, precision=precision, on_bad_image=config.on_bad_image,
                          decode=eval_decoder(config))  # as evaluate and the test split decode
    located = np.isfinite(preds.true_lat).all() and np.isfinite(preds.true_lon).all()
    d = haversine(preds.true_lat, preds.true_lon, preds.pred_lat, preds.pred_lon) if located else None
    row = {"val_median_km": float(np.median(d)) if located else None,  # None: no coordinates (country folders)
           "val_mean_km": float(np.mean(d)) if located else None,
           "val_country_acc": float(np.mean(preds.pred_country == preds.true_country))}
    return row, task.score(preds)


def _setup(config: TrainConfig, task: Task, train: GeoSplit, ctx: DistContext, log) -> tuple[_Loop, int]:
    import torch
    torch.manual_seed(config.seed)
    random.seed(config.seed)  # timm's random erasing and Mixup draw from these two
    np.random.seed(config.seed % 2**32)
    model = build_model(config, task).to(ctx.device)
    if config.init_from:
        init_from_checkpoint(model, task, config.init_from, heads=config.init_heads, log=log)
    backbone_params = list(model.backbone.parameters())
    head_params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    optimizer = torch.optim.AdamW(
        [{"params": backbone_params, "lr": config.lr * config.backbone_lr_mult},
         {"params": head_params, "lr": config.lr}],
        weight_decay=config.weight_decay,
    )
    shard = max(1, len(train) // ctx.world_size)
    scheduler = _schedule(config, optimizer, shard)
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
    hook: Optional[Callable[[str, int, int], None]] = None,
    account: Optional[ImageAccount] = None,
    on_epoch_end: Optional[Callable[[int, Mapping[str, Any]], None]] = None,
) -> FitResult:
    """Train, validating and checkpointing after every epoch; resumes from ``run_dir/last.pt``.

    ``last.pt`` is also written every ``config.checkpoint_every`` optimizer steps inside an
    epoch. A resume restores the weights, optimiser, schedule, EMA, the random-number states and
    the position in the epoch, so it continues exactly where the checkpoint was taken (bitwise
    with one process, one thread and deterministic kernels). It refuses changed settings
    (:func:`geocell_engine.engine.resume.check_resume_config`).

    Args:
        checkpoint_extra: plain data stored in every checkpoint (dataset identity).
        hook: called as ``hook(event, epoch, step)``: ``"step"`` after every optimizer step,
            ``"checkpoint"`` after a mid-epoch ``last.pt``, ``"epoch"`` after an epoch's
            ``last.pt`` (before ``metrics.jsonl``). Tests raise from it to cut a run at a chosen
            point, as a kill would.
        account: where unreadable training images are recorded (``on_bad_image="skip"``).
        on_epoch_end: called as ``on_epoch_end(epoch, row)`` on the main rank once an epoch's
            ``last.pt`` and ``metrics.jsonl`` (and its TensorBoard events) are written; ``row`` is
            the epoch's history row (``val_score`` included). It may raise to stop the run there
            (a hyperparameter search prunes a trial so); the run stays resumable.

    Returns:
        :class:`FitResult` with the best model loaded.

    Raises:
        DataError: an epoch in which no training image could be read.
        ConfigError: a resume with changed settings.
    """
    import torch
    from tqdm.auto import tqdm

    from geocell_engine.engine.checkpoint import (
        check_compatible,
        load_checkpoint,
        save_checkpoint,
    )
    from geocell_engine.engine.resume import (
        check_resume_config,
        rng_state,
        set_rng_state,
    )
    from geocell_engine.errors import DataError

    device = ctx.device
    precision = choose_precision(config.precision, device)
    loop, shard = _setup(config, task, train, ctx, log)
    history: list[dict[str, Any]] = []
    start_epoch, best, since_best, resumed = 1, math.inf, 0, None
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if ctx.is_main:  # temp files of writes cut short by a kill: never renamed, so never valid
        for stale in run_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    task_state = {"name": task.name, "labels": task.labels.to_state(), "state": task.state()}
    if last_path.is_file():
        ckpt = load_checkpoint(last_path)
        changed = check_resume_config(ckpt["config"], config.to_dict(), source=str(last_path))
        check_compatible(ckpt, cells_hash=task.cells_hash, countries=task.labels.countries, source=str(last_path))
        _unwrap(loop.model).load_state_dict(ckpt["model"])
        loop.optimizer.load_state_dict(ckpt["optimizer"])
        loop.scheduler.load_state_dict(ckpt["scheduler"])
        if loop.ema is not None and ckpt.get("ema") is not None:
            loop.ema.load_state_dict(ckpt["ema"])
        history, loop.step = list(ckpt["history"]), int(ckpt["step"])
        start_epoch, best, since_best = int(ckpt["epoch"]) + 1, float(ckpt["best_metric"]), int(ckpt["since_best"])
        if ckpt.get("rng") is not None:
            set_rng_state(ckpt["rng"], loop.generator)
        if ckpt.get("in_epoch"):
            resumed = EpochProgress(**ckpt["in_epoch"])
        if "epochs" in changed:
            loop.scheduler = _schedule(config, loop.optimizer, shard)
            loop.scheduler.step_update(loop.step)
            if ctx.is_main:
                _record_change(run_dir, {"epochs": [ckpt["config"]["epochs"], config.epochs], "at_step": loop.step})
            log(f"extending the run from {ckpt['config']['epochs']} to {config.epochs} epochs (schedule rebuilt)")
        if ctx.is_main:  # a kill between the checkpoint and the history write leaves it one row short
            _write_history(run_dir / "metrics.jsonl", history)
        where = f"in epoch {start_epoch} (step {loop.step})" if resumed else f"after epoch {ckpt['epoch']} (step {loop.step})"
        log(f"resuming {run_dir} {where}")

    targets = {k: torch.as_tensor(v) for k, v in task.targets(train).items()}
    bad_log = account if account is not None else ImageAccount()
    started, images_seen, train_seconds = time.perf_counter(), 0, 0.0
    stopped_early = False
    model_mean = tuple(float(m) for m in _unwrap(loop.model).mean.flatten().tolist())
    mixing = BatchMixing(config, augment_kind(config, train), task, _unwrap(loop.model).mean.cpu(),
                         _unwrap(loop.model).std.cpu(), loop.generator)
    weights = None
    if config.balanced_sampling:
        from geocell_engine.data.splits import balanced_weights

        weights = balanced_weights(train.country, power=config.balance_power)
    source = TrainInput(train, config, device, model_mean, bad_log, rank=ctx.rank, world_size=ctx.world_size)
    log(f"training {task.describe()} on {len(train):,} images ({precision}, {device}, "
        f"{ctx.world_size} process{'es' if ctx.world_size > 1 else ''}), validating on {len(val):,}")
    log(source.describe() + (f"; {describe_recipe(config)}" if describe_recipe(config) else ""))

    def payload(epoch_done: int, in_epoch: Optional[EpochProgress]) -> dict[str, Any]:
        return {
            "model": _unwrap(loop.model).state_dict(),
            "ema": loop.ema.state_dict() if loop.ema is not None else None,
            "optimizer": loop.optimizer.state_dict(), "scheduler": loop.scheduler.state_dict(),
            "epoch": epoch_done, "step": loop.step, "best_metric": best, "since_best": since_best,
            "in_epoch": None if in_epoch is None else dict(vars(in_epoch), parts_sum=dict(in_epoch.parts_sum)),
            "rng": rng_state(loop.generator),
            "history": history, "config": config.to_dict(), "task": task_state, **checkpoint_extra,
        }

    epoch_log = None  # the TensorBoard writer (--logger tensorboard), main rank only
    if ctx.is_main and config.logger != "none":
        from geocell_engine.engine.tensorboard import open_logger

        epoch_log = open_logger(config.logger, run_dir, history)
    try:
        for epoch in range(start_epoch, config.epochs + 1):
            if since_best >= config.patience:
                stopped_early = True
                break
            order = epoch_order(len(train), config.seed, epoch, weights)[ctx.rank::ctx.world_size][:shard]
            done, resumed = resumed, None
            bar = tqdm(total=len(order), initial=min(len(order), (done.micro if done else 0) * config.batch_size),
                       unit="img", desc=f"epoch {epoch}/{config.epochs}",
                       disable=True if config.quiet or not ctx.is_main else None, leave=False)

            def after_step(progress: EpochProgress, epoch: int = epoch) -> None:
                if hook is not None:
                    hook("step", epoch, loop.step)
                if config.checkpoint_every and loop.step % config.checkpoint_every == 0 and ctx.is_main:
                    save_checkpoint(last_path, payload(epoch - 1, progress))
                    if hook is not None:
                        hook("checkpoint", epoch, loop.step)

            epoch_start = time.perf_counter()
            batches = source.epoch(order, epoch, skip=done.micro if done else 0)
            try:
                progress = train_one_epoch(loop, task, batches, targets, config, device, precision, mixing, bar,
                                           done=done, after_step=after_step)
            except BaseException:
                source.close()
                raise
            bar.close()
            if progress.batches == 0:
                raise DataError(f"epoch {epoch}: none of the {len(order):,} training images could be read "
                                f"({bad_log.summary()})")
            epoch_seconds = time.perf_counter() - epoch_start
            train_seconds += epoch_seconds
            images_seen += len(order)
            eval_model = loop.ema.module if loop.ema is not None else _unwrap(loop.model)
            row: dict[str, Any] = {"epoch": epoch, **progress.means()}
            row.update({"step": loop.step, "lr": loop.optimizer.param_groups[1]["lr"], "epoch_seconds": epoch_seconds,
                        "train_images_per_s": len(order) / max(epoch_seconds, 1e-9)})
            if ctx.is_main:
                metrics, score = validate(eval_model, task, val, config, device, precision)
                row.update(metrics, val_score=score)  # the task's own (lower is better): what model choice uses
                improved = score < best
                best, since_best = (score, 0) if improved else (best, since_best + 1)
                history.append(row)
                state = payload(epoch, None)
                if improved:
                    save_checkpoint(best_path, dict(state, model=eval_model.state_dict()))
                save_checkpoint(last_path, state)
                if hook is not None:
                    hook("epoch", epoch, loop.step)
                _write_history(run_dir / "metrics.jsonl", history)
                if epoch_log is not None:
                    epoch_log.log_epoch(row)
                median = "n/a" if row["val_median_km"] is None else f"{row['val_median_km']:,.0f} km"
                log(f"epoch {epoch}: loss {row['train_loss']:.4f}  val median {median}  "
                    f"val country {row['val_country_acc']:.1%}  {row['train_images_per_s']:.0f} img/s"
                    + ("  (best)" if improved else ""))
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
            if ctx.world_size > 1:
                import torch.distributed as dist

                flags = torch.tensor([since_best], dtype=torch.long)
                dist.broadcast(flags, src=0)
                since_best = int(flags.item())
    finally:  # also when on_epoch_end stops the run (a pruned trial): no loader worker is left behind
        source.close()
        if epoch_log is not None:
            epoch_log.close()
    unreadable = bad_log.records("train")
    if unreadable:
        log(f"left out {len(unreadable)} unreadable training images; first: {unreadable[0].message()}")
        if ctx.is_main:
            bad_log.write(run_dir / "bad_images.csv")
    model = None
    if ctx.is_main:
        model = _unwrap(loop.model)
        model.load_state_dict(load_checkpoint(best_path)["model"])
        model.eval()
    return FitResult(run_dir, history, best_path, last_path, len(history), stopped_early,
                     time.perf_counter() - started, images_seen / max(train_seconds, 1e-9), model)


def _schedule(config: TrainConfig, optimizer, shard: int):
    """timm's warmup + cosine schedule, stepped per optimizer update."""
    from timm.scheduler import CosineLRScheduler

    steps_per_epoch = max(1, math.ceil(math.ceil(shard / config.batch_size) / config.accum_steps))
    return CosineLRScheduler(optimizer, t_initial=steps_per_epoch * config.epochs, lr_min=config.lr * 0.01,
                             warmup_t=int(config.warmup_epochs * steps_per_epoch),
                             warmup_lr_init=config.lr * 0.01, t_in_epochs=False)


def _record_change(run_dir: Path, change: Mapping[str, Any]) -> None:
    """Append a settings change of a resumed run to ``run_dir/changes.jsonl`` (atomically)."""
    from geocell.tables import atomic_write

    path = run_dir / "changes.jsonl"
    old = path.read_text() if path.is_file() else ""
    atomic_write(path, lambda p: p.write_text(old + json.dumps(dict(change), sort_keys=True) + "\n"))


def init_from_checkpoint(model, task: Task, path: str, heads: bool = False,
                         log: Callable[[str], None] = print) -> list[str]:
    """Task-aware pretraining: copy a checkpoint's backbone (and, with ``heads``, its heads).

    The backbone must match tensor for tensor. Heads are copied only when the checkpoint's
    country vocabulary and cells equal this run's; otherwise the error names what differs.

    Returns:
        The names of the copied tensors.

    Raises:
        CheckpointError: another backbone (first differing tensor named), or heads requested for
        another vocabulary / other cells.
    """
    from geocell_engine.engine.checkpoint import check_compatible, load_checkpoint
    from geocell_engine.errors import CheckpointError

    ckpt = load_checkpoint(path)
    state, own = ckpt["model"], model.state_dict()
    own_backbone = [k for k in own if k.startswith("backbone.")]
    for key in own_backbone:
        if key not in state or tuple(state[key].shape) != tuple(own[key].shape):
            found = "missing" if key not in state else f"shape {tuple(state[key].shape)}"
            raise CheckpointError(f"{path}: its backbone does not fit this model ({key}: {found}, expected "
                                  f"{tuple(own[key].shape)}; it was trained with {ckpt['config'].get('backbone')!r})")
    copy = {k: state[k] for k in own_backbone}
    if heads:
        check_compatible(ckpt, countries=task.labels.countries, cells_hash=task.cells_hash, source=str(path))
        head_keys = [k for k in own if not k.startswith("backbone.") and k in state
                     and tuple(state[k].shape) == tuple(own[k].shape)]
        if not head_keys:
            raise CheckpointError(f"{path}: none of its heads ({ckpt['task']['name']}) fit this run's "
                                  f"({task.describe()})")
        copy.update({k: state[k] for k in head_keys})
    model.load_state_dict(copy, strict=False)
    n_heads = len(copy) - len(own_backbone)
    log(f"initialised {len(own_backbone)} backbone" + (f" and {n_heads} head" if heads else "") +
        f" tensors from {path}")
    return sorted(copy)


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    from geocell.tables import atomic_write

    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in history)
    atomic_write(path, lambda p: p.write_text(text))
