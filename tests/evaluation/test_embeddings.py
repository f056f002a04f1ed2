"""``cli.py embed``: per-image embeddings equal the backbone's features, the per-country maps and
the confusion-similarity map are written, UMAP joins in when its package is there."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from geocell_engine import cli
from geocell_engine.evaluation.embeddings import (
    EmbeddingError,
    confusion_similarity,
    country_means,
)


def test_country_means_and_confusion_similarity_by_hand():
    names, means, counts = country_means(np.array([[1.0, 0.0], [3.0, 2.0], [5.0, 5.0], [9.0, 9.0]]),
                                         np.array(["B", "B", "A", ""]))
    assert names.tolist() == ["A", "B"] and counts.tolist() == [1, 2]
    assert means.tolist() == [[5.0, 5.0], [2.0, 1.0]]
    # rows: A -> (A 2, B 0, C 0); B -> (A 1, B 1, C 0); C -> (A 0, B 0, C 1)
    rows, sim = confusion_similarity(np.array(["A", "A", "B", "B", "C"]), np.array(["A", "A", "A", "B", "C"]))
    assert rows.tolist() == ["A", "B", "C"]
    assert sim[0, 1] == pytest.approx(1 / np.sqrt(2)) and sim[0, 2] == 0.0 and np.allclose(np.diag(sim), 1.0)
    with pytest.raises(EmbeddingError, match="do not match"):
        country_means(np.zeros((3, 2)), np.array(["A"]))


def test_embed_writes_embeddings_and_maps(tiny_checkpoint, tmp_path, monkeypatch, capsys):
    import torch

    from geocell_engine.data.dataset import load_eval_split
    from geocell_engine.engine.model import load_model
    from geocell_engine.evaluation.features import extract_features

    class FakeUMAP:  # stands for umap-learn (not installed in CI): the plumbing is what is tested
        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def fit_transform(self, x):
            return np.asarray(x)[:, :2]

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    manifest, checkpoint = tiny_checkpoint
    out = tmp_path / "emb"
    assert cli.main(["embed", str(checkpoint), "--data", str(manifest), "--split", "test", "--out", str(out),
                     "--device", "cpu"]) == 0
    frame = pd.read_parquet(out / "embeddings.parquet")
    loaded = load_model(checkpoint, "cpu")
    width = loaded.model.backbone.num_features
    assert list(frame.columns) == ["id", "lat", "lon", "country", *[f"e{i}" for i in range(width)]]
    split = load_eval_split(str(manifest), "test").split
    assert len(frame) == len(split) == 12 and frame["id"].tolist() == split.ids.astype(str).tolist()
    torch.manual_seed(0)
    expected = extract_features(loaded.model, split, image_size=32)
    np.testing.assert_allclose(frame[[f"e{i}" for i in range(width)]].to_numpy(), expected, rtol=1e-5, atol=1e-6)
    result = json.loads((out / "embed.json").read_text())
    assert set(result["files"]) == {"embeddings", "tsne", "umap", "confusion_map"}
    for name in ("tsne.png", "umap.png", "confusion_map.png"):
        assert (out / name).stat().st_size > 1000
    assert [c["country"] for c in result["countries"]] == sorted(set(frame["country"]))
    means = frame.groupby("country")[[f"e{i}" for i in range(width)]].mean().to_numpy()
    np.testing.assert_allclose([c["umap_xy"] for c in result["countries"]], means[:, :2], rtol=1e-5)
    sim = np.asarray(result["confusion"]["similarity"])
    assert np.allclose(sim, sim.T) and np.allclose(np.diag(sim), 1.0)
    assert "![tsne](tsne.png)" in (out / "embed.md").read_text()


def test_embed_defaults_beside_the_checkpoint_and_links_the_run_report(tiny_checkpoint, tmp_path):
    import shutil

    manifest, checkpoint = tiny_checkpoint
    run = tmp_path / "run"
    run.mkdir()
    shutil.copy(checkpoint, run / "best.pt")
    (run / "report.md").write_text("# Report\n\nthe run's own text\n")
    args = ["embed", str(run / "best.pt"), "--data", str(manifest), "--split", "test", "--device", "cpu"]
    assert cli.main(args) == 0
    assert (run / "embed-test" / "embed.json").is_file()
    report = (run / "report.md").read_text()
    assert report.startswith("# Report\n\nthe run's own text\n")
    assert "![tsne](embed-test/tsne.png)" in report and "(embed-test/embeddings.parquet)" in report
    assert cli.main(args) == 0  # again: the section is replaced, not added twice
    assert (run / "report.md").read_text() == report


def test_report_section_replaces_only_its_own_block(tmp_path):
    from geocell_engine.errors import ReportError
    from geocell_engine.evaluation.report import set_report_section

    report = tmp_path / "report.md"
    report.write_text("# R\n")
    set_report_section(report, "a", "## A\none")
    set_report_section(report, "b", "## B")
    set_report_section(report, "a", "## A\ntwo")
    text = report.read_text()
    assert text.count("## A") == 1 and "two" in text and "one" not in text and text.index("two") < text.index("## B")  # replaced in place
    report.write_text("# R\n<!-- section:a -->\n## A\n")
    with pytest.raises(ReportError, match="no closing"):
        set_report_section(report, "a", "## A")
    with pytest.raises(ReportError, match="no report"):
        set_report_section(tmp_path / "missing.md", "a", "x")
    with pytest.raises(ReportError, match="key"):
        set_report_section(report, "a b", "x")
