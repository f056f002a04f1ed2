"""The training engine: fit with checkpoints and resume, and predictions for evaluation.

One loop serves every task and device: AdamW with a lower learning rate for the backbone,
timm's warmup + cosine schedule stepped per update, gradient accumulation, bf16 autocast and
channels_last where they help, optional EMA (timm's ``ModelEmaV3``), early stopping on the
validation split, and DDP when launched with ``torchrun`` (the same command). After every epoch
``last.pt`` (and ``best.pt`` when validation improved) is written atomically together with
``metrics.jsonl``, which is rewritten from the checkpoint's history, so a run killed at any
moment resumes from its last finished epoch with no truncated file and no duplicated row.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from geocell_engine.data.dataset import BadImageLog, GeoSplit, iterate_batches
from geocell_engine.engine.config import TrainConfig
from geocell_engine.engine.tasks import Objective
from geocell_engine.evaluation.predictions import Predictions

__all__ = ["DistContext", "setup_distributed", "choose_precision", "build_model", "fit", "predict_split", "FitResult"]


# ---------------------------------------------------------------------------- device / DDP
@dataclass(frozen=True)
class DistContext:
    """Where this process runs: rank / world size of a torchrun launch (1 process otherwise)."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed() -> DistContext:
    """Join the process group when launched by torchrun (gloo on CPU, nccl on CUDA)."""
    import torch
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world <= 1:
        return DistContext(device="cuda" if cuda else "cpu")
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local)
    return DistContext(rank=rank, world_size=world, device=f"cuda:{local}" if cuda else "cpu")


def choose_precision(config: TrainConfig, device: str) -> str:
    """``"bf16"`` or ``"fp32"``. ``auto`` picks bf16 on a CUDA GPU that supports it and fp32 on
    a CPU: on these AVX-512 CPUs bf16 autocast made EfficientNet-Lite0 training at 64 px slower,
    not faster (``benchmarks/bench_fit.py`` measures both in one run)."""
    import torch

    if config.precision != "auto":
        return config.precision
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "fp32"


def build_model(config: TrainConfig, objective: Objective, pretrained: Optional[bool] = None):
    """A GeoModel with the run's backbone and heads (``pretrained`` overrides the config)."""
    from heads import Backbone, GeoModel

    use_pretrained: Any = config.pretrained if pretrained is None else pretrained
    if use_pretrained and config.weights:
        use_pretrained = config.weights
    backbone = Backbone(config.backbone, pretrained=use_pretrained, channels_last=config.channels_last)
    return GeoModel(backbone, objective.build_heads(backbone.num_features))


def _normaliser(model, device):
    import torch

    prep = _unwrap(model).backbone.preprocessing
    mean = torch.tensor(prep.mean, device=device).view(1, 3, 1, 1) * 255.0
    std = torch.tensor(prep.std, device=device).view(1, 3, 1, 1) * 255.0
    return mean, std


def _unwrap(model):
    return model.module if hasattr(model, "module") else model


def _augment(images, generator):
    """Mild photometric jitter per image (brightness / contrast +-10%) and a random shift of up
    to 1/16 of the side (reflect padding); the patches stay north-up."""
    import torch
    import torch.nn.functional as F

    b, _, h, w = images.shape
    bright = 1.0 + (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.2
    contrast = 1.0 + (torch.rand(b, 1, 1, 1, generator=generator) - 0.5) * 0.2
    mean = images.mean(dim=(1, 2, 3), keepdim=True)
    images = ((images - mean) * contrast + mean) * bright
    pad = max(1, h // 16)
    padded = F.pad(images, (pad, pad, pad, pad), mode="reflect")
    dx, dy = torch.randint(0, 2 * pad + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy:dy + h, dx:dx + w].clamp(0, 255)


# ---------------------------------------------------------------------------- prediction
def predict_split(model, objective: Objective, split: GeoSplit, config: TrainConfig, device: str = "cpu",
                  name: str = "model", precision: str = "fp32", bad_log: Optional[BadImageLog] = None) -> Predictions:
    """Run the model over a split and collect everything the report needs."""
    import torch

    model = _unwrap(model)
    model.eval()
    mean, std = _normaliser(model, device)
    countries = np.asarray(objective.countries)
    lat_out, lon_out, proba_out, cell_out, dist_out, kept_out, admin1_out = [], [], [], [], [], [], []
    autocast = torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    with torch.no_grad():
        for images, idx in iterate_batches(split, np.arange(len(split)), max(64, config.batch_size), config.image_size,
                                           config.on_bad_image, bad_log):
            x = (images.to(device).float() - mean) / std
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast:
                outputs = model(x)
                pred = model.predict(x, k=5, outputs=outputs)
            lat_out.append(pred.lat.float().cpu().numpy())
            lon_out.append(pred.lon.float().cpu().numpy())
            proba_out.append(_country_proba(outputs, objective, countries, x.shape[0]))
            if "region" in outputs:
                cell_out.append(outputs["region"].logits.argmax(dim=1).cpu().numpy())
            if pred.admin1 is not None and pred.admin1.labels is not None:
                admin1_out.extend(labels[0] for labels in pred.admin1.labels)
            if "distance" in outputs:
                dist_out.append(outputs["distance"].distance_km.float().cpu().numpy())
            kept_out.append(idx)
    kept = np.concatenate(kept_out) if kept_out else np.zeros(0, dtype=np.int64)
    proba = np.concatenate(proba_out) if proba_out else np.zeros((0, len(countries)))
    true_dist = pred_dist = None
    if dist_out:
        from geocell import haversine_matrix

        pred_dist = np.concatenate(dist_out)
        true_dist = np.minimum(haversine_matrix(split.lat[kept], split.lon[kept], objective.anchors.lat,
                                                objective.anchors.lon), config.distance_clip_km)
    true_cell = None
    if cell_out and objective.cells is not None and not isinstance(objective.cells, dict):
        true_cell = objective.cells.assign(split.lat[kept], split.lon[kept])
    has_proba = proba.size > 0 and np.isfinite(proba).all()
    pred_country = countries[proba.argmax(axis=1)] if has_proba else np.full(kept.size, "", dtype=object)
    pred_lat = np.concatenate(lat_out).astype(np.float64) if lat_out else np.zeros(0)
    pred_lon = np.concatenate(lon_out).astype(np.float64) if lon_out else np.zeros(0)
    if not has_proba:  # latlon / distance only: the country of the guessed point
        from geocell.assign import assign_country

        pred_country = assign_country(pred_lat, pred_lon)
    no_location = ~np.isfinite(pred_lat)
    if no_location.any():  # a country-only model: guess the centre of the predicted country
        pred_lat[no_location], pred_lon[no_location] = objective.country_location(np.asarray(pred_country)[no_location])
    return Predictions(
        name=name, true_lat=split.lat[kept], true_lon=split.lon[kept],
        pred_lat=pred_lat, pred_lon=pred_lon,
        true_country=split.country[kept], pred_country=np.asarray(pred_country).astype(str),
        country_vocab=countries if has_proba else None, country_proba=proba if has_proba else None,
        true_admin1=split.admin1[kept], pred_admin1=np.asarray(admin1_out, dtype=str) if admin1_out else None,
        true_cell=true_cell,
        pred_cell=np.concatenate(cell_out) if cell_out else None,
        true_distance_km=true_dist, pred_distance_km=pred_dist, ids=split.ids[kept],
    )


def _country_proba(outputs, objective: Objective, countries: np.ndarray, b: int) -> np.ndarray:
    """(b, C) probabilities over the run's country vocabulary (NaN when no head gives them)."""
    if "country" in outputs:
        return outputs["country"].probs().float().cpu().numpy()
    if "region" in outputs and outputs["region"].country_probs is not None:
        cell_countries = objective.cell_state()["countries"]
        probs = outputs["region"].country_probs.float().cpu().numpy()
        out = np.zeros((b, len(countries)), dtype=np.float64)
        index = {c: i for i, c in enumerate(countries.tolist())}
        for j, c in enumerate(cell_countries):
            if c in index:
                out[:, index[c]] += probs[:, j]
        return out
    return np.full((b, len(countries)), np.nan)


# ---------------------------------------------------------------------------- fit
@dataclass
class FitResult:
    """What :func:`fit` leaves behind."""

    run_dir: Path
    history: list
    best_path: Path
    last_path: Path
    epochs_run: int
    stopped_early: bool
    seconds: float
    images_per_second: float


def _val_score(task: str, distance_km: np.ndarray, country_accuracy: float) -> float:
    """Lower is better: median km for location tasks, 1 - accuracy for the country task."""
    return 1.0 - country_accuracy if task == "country" else float(np.median(distance_km))


def fit(
    config: TrainConfig,
    objective: Objective,
    train: GeoSplit,
    val: GeoSplit,
    run_dir: Path,
    checkpoint_extra: dict[str, Any],
    ctx: DistContext = DistContext(),
    log: Callable[[str], None] = print,
) -> FitResult:
    """Train, validating and checkpointing after every epoch; resumes from ``run_dir/last.pt``.

    Args:
        checkpoint_extra: plain data stored in every checkpoint (dataset identity, labels).
    """
    import torch
    from timm.scheduler import CosineLRScheduler
    from tqdm.auto import tqdm

    from geocell_engine.engine.checkpoint import (
        check_compatible,
        load_checkpoint,
        save_checkpoint,
    )

    torch.manual_seed(config.seed)
    device = ctx.device
    precision = choose_precision(config, device)
    model = build_model(config, objective).to(device)
    if config.init_from:
        _init_from(model, config.init_from, log)
    backbone_params = list(_unwrap(model).backbone.parameters())
    head_params = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    optimizer = torch.optim.AdamW(
        [{"params": backbone_params, "lr": config.lr * config.backbone_lr_mult},
         {"params": head_params, "lr": config.lr}],
        weight_decay=config.weight_decay,
    )
    shard = max(1, len(train) // ctx.world_size)
    steps_per_epoch = max(1, math.ceil(shard / (config.batch_size * config.accum_steps)))
    total_steps = steps_per_epoch * config.epochs
    scheduler = CosineLRScheduler(optimizer, t_initial=total_steps, lr_min=config.lr * 0.01,
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
        model = DistributedDataParallel(model, device_ids=[int(device.split(":")[1])] if device.startswith("cuda") else None)

    history: list[dict[str, Any]] = []
    start_epoch, step, best, since_best = 1, 0, math.inf, 0
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if ctx.is_main:  # temp files of writes cut short by a kill: never renamed, so never valid
        for stale in run_dir.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
    if last_path.is_file():
        ckpt = load_checkpoint(last_path)
        check_compatible(ckpt, cells_hash=(objective.cell_state() or {}).get("hash"),
                         vocab={"country": list(objective.countries)}, source=str(last_path))
        _unwrap(model).load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        if ema is not None and ckpt.get("ema") is not None:
            ema.load_state_dict(ckpt["ema"])
        history, step = list(ckpt["history"]), int(ckpt["step"])
        start_epoch, best, since_best = int(ckpt["epoch"]) + 1, float(ckpt["best_metric"]), int(ckpt["since_best"])
        if ctx.is_main:  # a kill between the checkpoint and the history write leaves it one row short
            _write_history(run_dir / "metrics.jsonl", history)
        log(f"resuming {run_dir} after epoch {ckpt['epoch']} (step {step})")

    mean, std = _normaliser(model, device)
    targets = {
        "lat": torch.as_tensor(train.lat, dtype=torch.float32),
        "lon": torch.as_tensor(train.lon, dtype=torch.float32),
        "country": torch.as_tensor(objective.country_targets(train.country)),
    }
    autocast = torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16,
                              enabled=precision == "bf16")
    generator = torch.Generator().manual_seed(config.seed)
    bad_log = BadImageLog([])
    started, images_seen, train_seconds = time.perf_counter(), 0, 0.0
    stopped_early = False
    log(f"training {', '.join(objective.tasks)} on {len(train):,} images ({precision}, {device}, "
        f"{ctx.world_size} process{'es' if ctx.world_size > 1 else ''}), validating on {len(val):,}")

    for epoch in range(start_epoch, config.epochs + 1):
        if since_best >= config.patience:
            stopped_early = True
            break
        model.train()
        rng = np.random.default_rng(config.seed * 1000 + epoch)
        order = rng.permutation(len(train))[ctx.rank::ctx.world_size][:shard]
        epoch_start, loss_sum, parts_sum, batches = time.perf_counter(), 0.0, {}, 0
        bar = tqdm(total=len(order), unit="img", desc=f"epoch {epoch}/{config.epochs}",
                   disable=True if config.quiet or not ctx.is_main else None, leave=False)
        optimizer.zero_grad(set_to_none=True)
        for micro, (images, idx) in enumerate(iterate_batches(train, order, config.batch_size, config.image_size,
                                                             config.on_bad_image, bad_log)):
            x = images.to(device).float()
            if config.augment:
                x = _augment(x, generator)
            x = (x - mean) / std
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            t_idx = torch.as_tensor(idx)
            lat, lon = targets["lat"][t_idx].to(device), targets["lon"][t_idx].to(device)
            with autocast:
                outputs = model(x)
            loss, parts = objective.loss(outputs, lat, lon, targets["country"][t_idx].to(device))
            (loss / config.accum_steps).backward()
            if (micro + 1) % config.accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                scheduler.step_update(step)
                if ema is not None:
                    ema.update(_unwrap(model), step=step)
            loss_sum += float(loss.detach())
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v
            batches += 1
            images_seen += len(idx)
            bar.update(len(idx))
            bar.set_postfix(loss=f"{loss_sum / batches:.3f}",
                            img_s=f"{bar.n / max(time.perf_counter() - epoch_start, 1e-9):.0f}")
        bar.close()
        epoch_seconds = time.perf_counter() - epoch_start
        train_seconds += epoch_seconds
        eval_model = ema.module if ema is not None else _unwrap(model)
        row: dict[str, Any] = {"epoch": epoch, "step": step, "train_loss": loss_sum / max(batches, 1),
                               **{f"train_loss_{k}": v / max(batches, 1) for k, v in parts_sum.items()},
                               "lr": optimizer.param_groups[1]["lr"], "epoch_seconds": epoch_seconds,
                               "train_images_per_s": len(order) / max(epoch_seconds, 1e-9)}
        if ctx.is_main:
            preds = predict_split(eval_model, objective, val, config, device, precision=precision)
            from geocell import haversine

            d = haversine(preds.true_lat, preds.true_lon, preds.pred_lat, preds.pred_lon)
            country_acc = float(np.mean(preds.pred_country == preds.true_country))
            score = _val_score(config.task, d, country_acc)
            row.update({"val_median_km": float(np.median(d)), "val_mean_km": float(np.mean(d)),
                        "val_country_acc": country_acc})
            improved = score < best
            best, since_best = (score, 0) if improved else (best, since_best + 1)
            history.append(row)
            payload = {
                "model": _unwrap(model).state_dict(),
                "ema": ema.state_dict() if ema is not None else None,
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epoch, "step": step, "best_metric": best, "since_best": since_best,
                "history": history, "config": config.to_dict(), **objective.label_state(), **checkpoint_extra,
            }
            if improved:
                best_payload = dict(payload, model=eval_model.state_dict())
                save_checkpoint(best_path, best_payload)
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
    return FitResult(run_dir, history, best_path, last_path, len(history), stopped_early,
                     time.perf_counter() - started, images_seen / max(train_seconds, 1e-9))


def _init_from(model, path: str, log: Callable[[str], None]) -> None:
    """Task-aware pretraining: copy the backbone (and heads of the same shape) from a checkpoint."""
    from geocell_engine.engine.checkpoint import load_checkpoint

    state = load_checkpoint(path)["model"]
    own = model.state_dict()
    compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    backbone_keys = [k for k in compatible if k.startswith("backbone.")]
    if not backbone_keys:
        from geocell_engine.engine.checkpoint import CheckpointError

        raise CheckpointError(f"{path}: its backbone does not fit this model (another architecture?)")
    model.load_state_dict(compatible, strict=False)
    log(f"initialised {len(backbone_keys)} backbone and {len(compatible) - len(backbone_keys)} head tensors from {path}")


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    from geocell.tables import atomic_write

    text = "".join(json.dumps(row, sort_keys=True) + "\n" for row in history)
    atomic_write(path, lambda p: p.write_text(text))
