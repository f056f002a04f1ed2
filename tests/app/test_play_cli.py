"""`cli.py play`: the server from the command line (address printed, Ctrl-C is one line and exit
130), no torch without --checkpoint, `--report`, and setup errors as one line with exit 2."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from geocell_engine import cli
from geocell_engine.app.store import GameStore

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), GEOCELL_CACHE=str(tmp_path / "cache"))
    env.pop("PYTHONSTARTUP", None)
    return env


def _call(url: str, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"},
                                 method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_play_serves_and_stops_on_ctrl_c(tmp_path, tiny_manifest):
    db = tmp_path / "games.sqlite"
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "play", "--data", str(tiny_manifest), "--port", "0",
                             "--rounds", "2", "--db", str(db), "--seed", "1"], cwd=tmp_path, env=_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()
        assert first.startswith("geocell game: http://127.0.0.1:"), first + proc.stderr.read()
        url = first.split()[2]
        assert "manifest.csv, 12 test images, 2 rounds, no model" in first
        info = _call(url + "api/info")
        assert info["rounds"] == 2 and info["model"] is None
        game = _call(url + "api/games", {"player": "cli"})["game"]
        _call(url + f"api/games/{game}/rounds/1")
        assert _call(url + f"api/games/{game}/rounds/1/guess", {"lat": 10, "lon": 10})["guess"]["score"] > 0
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert err.strip() == f"game server stopped; 1 guesses stored in {db}", err
    assert len(GameStore(db).guesses()) == 1


def test_a_game_without_checkpoint_never_imports_torch(tmp_path, tiny_manifest):
    code = f"""
import json, sys, threading, urllib.request
from geocell_engine.app.server import make_server
srv = make_server({str(tiny_manifest)!r}, db={str(tmp_path / 'g.sqlite')!r}, rounds=1)
threading.Thread(target=srv.serve_forever, daemon=True).start()
def call(path, body=None):
    req = urllib.request.Request(srv.url + path, data=None if body is None else json.dumps(body).encode(),
                                 headers={{"Content-Type": "application/json"}}, method="GET" if body is None else "POST")
    return json.loads(urllib.request.urlopen(req).read() or b"null") if not path.endswith("image") else urllib.request.urlopen(req).read()
g = call("api/games", {{"player": "p"}})["game"]
call(f"api/games/{{g}}/rounds/1"); call(f"api/games/{{g}}/rounds/1/image")
call(f"api/games/{{g}}/rounds/1/guess", {{"lat": 1, "lon": 2, "countries": ["FRA"]}})
call(f"api/games/{{g}}/report")
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "timm", "torchvision")))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_report_prints_and_writes_the_table(tmp_path, tiny_game_data, start_server, capsys):
    db = tmp_path / "games.sqlite"
    _, client = start_server(tiny_game_data, rounds=2, seed=4, db=db)
    game = client.new_game("dora")
    client.guess(game, 1, lat=48.0, lon=2.0, countries=["FRA"])
    client.guess(game, 2, countries=["USA", "AUS"])
    assert cli.main(["play", "--report", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "| who | rounds | top-1 % | top-3 % | top-5 % | pins | median km | mean GeoScore | median s |" in out
    assert "| dora | 2 |" in out and "### manifest.csv, no model" in out
    assert (tmp_path / "game_report.md").read_text() in out
    data = json.loads((tmp_path / "game_report.json").read_text())
    assert data["sections"][0]["rows"][0]["who"] == "dora"
    custom = tmp_path / "elsewhere" / "table.md"
    assert cli.main(["play", "--report", "--db", str(db), "--out", str(custom)]) == 0
    assert custom.is_file() and custom.with_suffix(".json").is_file()


def test_setup_errors_are_one_line_and_exit_2(tmp_path, tiny_manifest, capsys):
    cases = [
        (["play", "--report", "--db", str(tmp_path / "none.sqlite")], "no such game database"),
        (["play", "--data", str(tiny_manifest), "--rounds", "0", "--db", str(tmp_path / "g.sqlite")], "--rounds 0"),
        (["play", "--data", str(tiny_manifest), "--rounds", "50", "--db", str(tmp_path / "g.sqlite")], "only 12 images"),
        (["play", "--data", str(tiny_manifest), "--port", "70000"], "--port 70000"),
        (["play", "--data", str(tmp_path / "missing.csv"), "--db", str(tmp_path / "g.sqlite")], "no such manifest"),
        (["play", "--data", "nonsense", "--db", str(tmp_path / "g.sqlite")], "unknown data set"),
        (["play", "--data", str(tiny_manifest), "--db", str(tmp_path)], "is a folder"),
    ]
    for argv, words in cases:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err and err.count("\n") == 1, (argv, err)
