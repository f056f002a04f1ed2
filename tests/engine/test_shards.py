"""WebDataset shards: written from a manifest with an index (counts, sha256), trained on by
streaming (one process and two gloo processes with equal steps), evaluated, and a bad sample
named by shard and key."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from geocell_engine import cli
from geocell_engine.errors import DataError
from tests.tiny_data import TINY, make_tiny_dataset

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    manifest = make_tiny_dataset(root / "data", size=(64, 40), suffix="jpg")
    assert cli.main(["data", "shards", str(manifest), str(root / "shards"), "--shard-size", "20"]) == 0
    return root / "shards"


def test_the_index_counts_and_hashes_every_shard(shards):
    index = json.loads((shards / "index.json").read_text())
    assert index["format"] == "geocell-shards-1" and index["samples"] == 84
    assert [e["samples"] for e in index["shards"]] == [20, 20, 20, 20, 4]
    assert sum(e["splits"].get("test", 0) for e in index["shards"]) == 12
    for entry in index["shards"]:
        assert entry["sha256"] == hashlib.sha256((shards / entry["file"]).read_bytes()).hexdigest()
    with tarfile.open(shards / "shard-000000.tar") as tar:
        names = tar.getnames()
    assert names[:2] == ["000000000.jpg", "000000000.json"]
    samples = pd.read_parquet(shards / "samples.parquet")
    assert set(samples.columns) >= {"id", "lat", "lon", "country", "admin1", "split", "index", "shard", "key"}
    assert not list(shards.glob(".partial-*"))


def test_a_split_file_for_shards_is_refused_not_ignored(shards, tmp_path, capsys):
    assert cli.main(["train", "--data", str(shards), "--split-file", str(tmp_path / "s.csv"), "--out-dir",
                     str(tmp_path), *TINY]) == 2
    assert "were split when they were written" in capsys.readouterr().err


def test_writing_over_existing_shards_is_refused(shards, capsys):
    assert cli.main(["data", "shards", str(shards / "nothing.csv"), str(shards)]) == 2
    assert "holds shards already" in capsys.readouterr().err


def test_the_multi_task_trains_and_evaluates_from_shards(shards, tmp_path, capsys):
    assert cli.main(["train", "--data", str(shards), "--out-dir", str(tmp_path), "--task", "multi",
                     "--multi-tasks", "region,country,latlon", *TINY]) == 0
    out = capsys.readouterr().out
    assert "input: WebDataset shards streamed (shuffle buffer 1000)" in out
    run = tmp_path / "multi-shards"
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history] == [4, 8]  # 60 training samples, batch 16: every sample once an epoch
    report = json.loads((run / "report.json").read_text())
    assert report["results"]["model"]["n"] == 12
    assert cli.main(["evaluate", str(run / "best.pt"), "--data", str(shards), "--split", "test"]) == 0
    evaluated = json.loads((run / "eval-shards-test" / "report.json").read_text())
    assert evaluated["results"]["model"]["distance"]["median_km"] == pytest.approx(
        report["results"]["model"]["distance"]["median_km"], rel=1e-6)


def test_a_bad_sample_names_its_shard_and_key(tmp_path):
    from geocell_engine.data.shards import decode_sample

    with pytest.raises(DataError, match=r"s\.tar: sample 000000007: cannot decode its image"):
        decode_sample({"__url__": "s.tar", "__key__": "000000007", "jpg": b"not a jpeg",
                       "json": json.dumps({"index": 0}).encode()}, lambda f: __import__("PIL.Image").Image.open(f).load())


def test_two_gloo_processes_take_the_same_number_of_steps_over_shards(shards, tmp_path):
    probe = Path(__file__).with_name("ddp_probe.py")
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(probe),
           str(tmp_path), "train", "--data", str(shards), "--out-dir", str(tmp_path), "--task", "region",
           *[a if a != "2" else "1" for a in TINY]]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    steps = [[(f["epoch"], f["step"]) for f in r["step_fingerprints"]] for r in ranks]
    assert steps[0] == steps[1] == [(1, 1), (1, 2)]  # ceil(30 / 16) steps on each rank
    assert [len(r["samples"]) for r in ranks] == [32, 32]  # resampled: full batches on both ranks
    assert ranks[0]["losses"] != ranks[1]["losses"]  # each rank drew its own samples
    after = [[f["sha256"] for f in r["step_fingerprints"]] for r in ranks]
    assert after[0] == after[1]  # gradients averaged: the same weights after every step
    assert "shards resampled per rank (with replacement)" in out.stdout + out.stderr
