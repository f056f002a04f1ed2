"""A full game in headless Chromium: the page is driven like a person (typing a name, clicking the
map, typing countries), then the stored rows, the scores shown and the report table are checked.

Needs Debian's ``chromium`` and ``chromium-driver`` and ``selenium`` (``.ci/run`` installs them);
skipped only when they are missing, and failed instead when ``GEOCELL_REQUIRE_BROWSER=1`` (CI).
Screenshots of every step go to the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from geocell_engine import cli
from geocell_engine.app.browser import chromium_paths
from tests.tiny_data import TINY


def _need_browser():
    problem = None
    try:
        import selenium  # noqa: F401
    except ImportError:
        problem = "selenium is not installed (pip install -e '.[test]')"
    if problem is None and chromium_paths() is None:
        problem = "chromium / chromedriver not found (apt-get install chromium chromium-driver)"
    if problem:
        if os.environ.get("GEOCELL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"GEOCELL_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(problem)


@pytest.fixture(scope="module")
def country_checkpoint(tiny_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("game-model")
    assert cli.main(["train", "--data", str(tiny_manifest), "--out-dir", str(out), *TINY, "--task", "country",
                     "--epochs", "1"]) == 0
    return out / "country-manifest" / "best.pt"


def test_the_model_guesses_through_the_predict_path(tiny_game_data, country_checkpoint):
    """The game's model guesses are what `cli.py predict` says for the same image files."""
    import numpy as np

    from geocell_engine.app.game import ModelGuesser
    from geocell_engine.engine.predict import predict_images

    guesser = ModelGuesser(str(country_checkpoint), tiny_game_data)
    index = [5, 0, 11, 3]
    guesses = guesser.guess(index)
    assert guesser.guess([3])[0] is guesses[3]  # remembered, not recomputed
    expected = predict_images(country_checkpoint, [str(p) for p in tiny_game_data.split.paths[index]], k=5,
                              device="cpu")["images"]
    for g, e in zip(guesses, expected):
        assert g.countries == tuple(c["label"] for c in e["country"])
        assert np.allclose([g.lat, g.lon], [e["lat"], e["lon"]], atol=1e-4)
    assert guesser.trained_on == "manifest.csv"


def test_a_full_game_in_chromium(tiny_manifest, country_checkpoint, start_server, tmp_path, capsys):
    _need_browser()
    from geocell_engine.app.browser import BrowserPlayer, RoundPlay, start_chromium

    began = time.perf_counter()
    db = tmp_path / "games.sqlite"
    server, _ = start_server(str(tiny_manifest), rounds=3, seed=5, db=db, checkpoint=str(country_checkpoint))
    plays = [RoundPlay(48.8, 2.3, ("France", "DEU")),   # pin and two countries (a name and a code)
             RoundPlay(-25.0, 135.0),                  # pin only
             RoundPlay(None, None, ("USA",))]          # countries only
    shots = tmp_path / "screenshots"
    driver = start_chromium(tmp_path / "chromium-profile")
    try:
        player = BrowserPlayer(driver, server.url, screenshots=shots)
        seen = player.play("Selenium Sam", plays)
        console = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    finally:
        driver.quit()
    assert console == []  # nothing failed to load: no CDN, no tile server, no CSP refusal

    # stored rows: one per round, the pins where they were clicked, the countries in order
    con = sqlite3.connect(db)
    rows = con.execute("SELECT g.round, g.player, g.guess_lat, g.guess_lon, g.guess_countries, g.pin_country, g.score, "
                       "g.seconds, r.model_lat, r.model_countries, r.true_country FROM guesses g "
                       "JOIN rounds r USING (game_id, round) ORDER BY g.round").fetchall()
    assert [r[0] for r in rows] == [1, 2, 3] and {r[1] for r in rows} == {"Selenium Sam"}
    for row, play in zip(rows, plays):
        if play.lat is None:
            assert row[2] is None and row[6] is None
        else:  # one screen pixel is about 0.4 degrees here
            assert abs(row[2] - play.lat) < 1.0 and abs(row[3] - play.lon) < 1.0
        assert row[7] > 0 and row[8] is not None and len(json.loads(row[9])) == 3  # the model's guess, 3 classes
    assert json.loads(rows[0][4]) == ["FRA", "DEU"] and rows[0][5] == "FRA"
    assert json.loads(rows[1][4]) == [] and rows[1][5] == "AUS"
    assert json.loads(rows[2][4]) == ["USA"]

    # the scores the page showed are the stored ones; the total is their sum
    shown = [r["score"] for r in seen["rounds"]]
    assert shown == [round(r[6]) if r[6] is not None else 0 for r in rows]
    assert seen["total"] == sum(shown) and f"{sum(shown):,} points in 3 rounds" in seen["final"]
    assert all("Model:" in r["result"] for r in seen["rounds"])
    assert seen["rounds"][0]["picks"] == ["FRA", "DEU"]

    # the report table on the page, and the same numbers from `cli.py play --report`
    assert [r[0] for r in seen["report"]] == ["Selenium Sam", "model on Selenium Sam's rounds"]
    assert seen["report"][0][1] == "3" and seen["report"][0][5] == "2"
    capsys.readouterr()
    assert cli.main(["play", "--report", "--db", str(db)]) == 0
    md = capsys.readouterr().out
    for cells in seen["report"]:
        line = "| " + " | ".join(cells) + " |"
        assert line in md, (line, md)

    assert len(list(shots.glob("*.png"))) == 2 + 2 * len(plays)
    elapsed = time.perf_counter() - began
    print(f"browser game: {elapsed:.1f} s")
