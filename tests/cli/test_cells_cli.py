"""`cli.py cells build / info / plot` on the shipped example points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from geocell.cells import CellSet
from geocell.s2 import s2_level, s2_parent, s2_token_to_cell_id
from geocell_engine import cli

CITIES = Path(__file__).resolve().parents[2] / "examples" / "cities.csv"


def test_semantic_build_info_plot(tmp_path, capsys):
    out = tmp_path / "semantic.parquet"
    assert cli.main(["cells", "build", "--points", str(CITIES), "--kind", "semantic", "--min-samples", "20",
                     "--max-samples", "120", "--out", str(out)]) == 0
    cells = CellSet.load(out)
    assert cells.kind == "semantic" and cells.counts.sum() == 5000 and cells.counts.max() <= 120
    assert "semantic cells from 5,000 points" in capsys.readouterr().out
    assert cli.main(["cells", "info", str(out)]) == 0
    assert cells.hash in capsys.readouterr().out
    png = tmp_path / "map.png"
    assert cli.main(["cells", "plot", str(out), "--points", str(CITIES), "--out", str(png)]) == 0
    with Image.open(png) as img:
        assert img.format == "PNG" and img.size[0] > 1000


def test_s2_build_writes_one_file_per_tau(tmp_path, capsys):
    out = tmp_path / "s2.parquet"
    assert cli.main(["cells", "build", "--points", str(CITIES), "--kind", "s2", "--tau-min", "10",
                     "--tau-max", "500", "100", "--out", str(out)]) == 0
    coarse, fine = CellSet.load(out), CellSet.load(tmp_path / "s2-1.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2-1.parquet", "s2.parquet"]
    assert coarse.params["tau_max"] == 500 and fine.params["tau_max"] == 100
    assert len(coarse) < len(fine) and coarse.parent is None
    # the saved parent index maps every fine cell to the coarse cell that contains it
    assert fine.parent.shape == (len(fine),) and fine.parent.min() >= 0 and fine.parent.max() < len(coarse)
    coarse_ids = s2_token_to_cell_id(coarse.ids)
    fine_ids = s2_token_to_cell_id(fine.ids)
    assert np.array_equal(s2_parent(fine_ids, s2_level(coarse_ids)[fine.parent]), coarse_ids[fine.parent])
    assert np.all(np.bincount(fine.parent, weights=fine.counts, minlength=len(coarse)) <= coarse.counts)


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--min-samples", "50", "--max-samples", "60"], "max_samples >= 2"),
     (["--kind", "s2", "--tau-min", "100", "--tau-max", "50"], "tau_min <= every tau_max")],
)
def test_bad_parameters_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "c.parquet"
    assert cli.main(["cells", "build", "--points", str(CITIES), "--out", str(out), *args]) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_info_on_a_non_cell_file(tmp_path, capsys):
    assert cli.main(["cells", "info", str(CITIES)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {CITIES}: cannot be read as a CellSet GeoParquet file")
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"lat": [1.0], "lon": [2.0]}).to_parquet(plain)
    assert cli.main(["cells", "info", str(plain)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {plain}: not a geocell CellSet file (no geocell.cellset metadata)")


def _build_fails(argv, capsys):
    assert cli.main(["cells", "build", *map(str, argv)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    return err


@pytest.mark.parametrize("name", ["cells.csv", "cells.json", "cells"])
def test_out_must_be_parquet_and_is_checked_before_reading(tmp_path, capsys, name):
    # the points file does not exist: the --out check must come first
    err = _build_fails(["--points", tmp_path / "missing.csv", "--out", tmp_path / name], capsys)
    assert f"--out {tmp_path / name}: unknown output format; expected a name ending in .parquet" in err
    assert list(tmp_path.iterdir()) == []


def test_out_equal_to_the_points_is_refused(tmp_path, capsys):
    points = tmp_path / "s2-1.parquet"
    pd.read_csv(CITIES).to_parquet(points)
    before = points.read_bytes()
    err = _build_fails(["--points", points, "--out", points], capsys)
    assert f"--out {points} is the input file {points}" in err
    # with two --tau-max values the second partition goes to OUT-1, here the points file
    err = _build_fails(["--points", points, "--kind", "s2", "--tau-max", "500", "100",
                        "--out", tmp_path / "s2.parquet"], capsys)
    assert f"output of partition 1 (named after --out) {points} is the input file {points}" in err
    assert points.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2-1.parquet"]


def test_cellset_save_refuses_a_non_parquet_name(tmp_path):
    from geocell.errors import OutputFileError

    cells = CellSet(ids=np.array(["a"]), centroid_lat=np.array([0.0]), centroid_lon=np.array([0.0]),
                    counts=np.array([1]), country=np.array(["X"]), admin1=np.array(["X-1"]),
                    geometry=np.array([None], dtype=object), member_admin1=(("X-1",),), member_counts=((1,),),
                    admin1_country={"X-1": "X"}, kind="semantic", params={})
    with pytest.raises(OutputFileError, match=r"cells.csv: unknown output format; expected a name ending in \.parquet"):
        cells.save(tmp_path / "cells.csv")
    assert list(tmp_path.iterdir()) == []
