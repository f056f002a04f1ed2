"""Run ``geocell train`` under torchrun and record what each rank did (for the DDP test).

Launched as ``python -m torch.distributed.run --nproc_per_node 2 ddp_probe.py OUT_DIR train ...``:
the CLI runs unchanged, with three observers wrapped around library calls (nothing in the
engine is replaced):

- the task's ``targets`` gain a ``sample_id`` column (the index of each training sample), and
  its ``loss`` records the ``sample_id`` of every batch that reaches it, so the file lists the
  training samples this rank really trained on;
- ``build_model`` keeps the model it builds (DDP wraps the same module);
- ``fit`` gets a ``hook`` that fingerprints the parameters after every optimizer step.

Each rank writes ``OUT_DIR/rank<R>.json``: rank, world size, the sample ids of every batch in
training order, the parameter sha256 before training and after each optimizer step, and the
loss of every batch. Meant for one-epoch runs (the sample list is not split by epoch).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def _fingerprint(model) -> str:
    """sha256 of every parameter's bytes, in ``named_parameters`` order (buffers left out:
    BatchNorm running statistics are per rank by design)."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str]) -> int:
    import numpy as np

    import geocell_engine.engine.fit as fit_module
    import geocell_engine.engine.tasks as tasks_module
    from geocell_engine import cli

    out_dir, cli_args = Path(argv[0]), argv[1:]
    rank = int(os.environ["RANK"])
    record: dict = {"rank": rank, "samples": [], "step_fingerprints": [], "losses": []}
    models: list = []
    in_fit = False

    real_create_task = tasks_module.create_task

    def create_task(config, train, **kwargs):
        task = real_create_task(config, train, **kwargs)
        real_targets, real_loss = task.targets, task.loss

        def targets(split):
            return {**real_targets(split), "sample_id": np.arange(len(split), dtype=np.int64)}

        def loss(outputs, batch_targets):
            value, parts = real_loss(outputs, batch_targets)
            if in_fit:  # not the bare-step measurement run_training makes before fit
                record["samples"].extend(batch_targets["sample_id"].tolist())
                record["losses"].append(float(value.detach()))
            return value, parts

        task.targets, task.loss = targets, loss
        return task

    real_build_model = fit_module.build_model

    def build_model(config, task, *args, **kwargs):
        model = real_build_model(config, task, *args, **kwargs)
        models.append(model)
        record["initial_fingerprint"] = _fingerprint(model)
        return model

    real_fit = fit_module.fit

    def fit(*args, **kwargs):
        nonlocal in_fit
        in_fit = True

        def hook(event, epoch, step):
            if event == "step":
                record["step_fingerprints"].append({"epoch": epoch, "step": step, "sha256": _fingerprint(models[-1])})

        assert kwargs.get("hook") is None, "the probe expects run_training to pass no hook"
        kwargs["hook"] = hook
        import torch.distributed as dist

        # the group the run trained in (run_training leaves it once training is over)
        record["world_size"] = dist.get_world_size() if dist.is_initialized() else 1
        return real_fit(*args, **kwargs)

    tasks_module.create_task = create_task
    fit_module.build_model = build_model
    fit_module.fit = fit
    code = cli.main(cli_args)
    record.setdefault("world_size", 1)
    record["exit_code"] = code
    (out_dir / f"rank{rank}.json").write_text(json.dumps(record))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
