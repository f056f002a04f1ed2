"""The human vs model table, on a database written by hand with known answers."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from geocell import geoguessr_score, haversine
from geocell_engine.app.report import game_report, write_report
from geocell_engine.app.store import GameStore, NewRound

PARIS, SYDNEY, TOKYO = (48.85, 2.35, "FRA"), (-33.87, 151.21, "AUS"), (35.68, 139.69, "JPN")


def _rounds(model: bool):
    guesses = [((50.0, 8.0), ("DEU", "FRA", "ITA", "ESP", "CHE")),  # Paris round: FRA 2nd
               ((-35.0, 149.0), ("AUS",)),                           # Sydney: FRA? AUS 1st
               ((35.0, 135.0), ("CHN", "KOR", "TWN", "VNM", "JPN"))]  # Tokyo: JPN 5th
    out = []
    for i, (lat, lon, c) in enumerate((PARIS, SYDNEY, TOKYO)):
        m = dict(model_lat=guesses[i][0][0], model_lon=guesses[i][0][1], model_countries=guesses[i][1]) if model else {}
        out.append(NewRound(i, f"id{i}", lat, lon, c, **m))
    return out


def _play(store: GameStore, player: str, plays, model: bool = True, checkpoint: str | None = "/m/best.pt"):
    game = store.create_game(player, "manifest.csv", "manifest.csv", checkpoint if model else None, _rounds(model))
    for k, (pin, countries) in enumerate(plays, start=1):
        rnd = store.show_round(game, k, now=100.0 * k)
        d = s = pc = None
        if pin is not None:
            d = float(haversine(rnd.true_lat, rnd.true_lon, pin[0], pin[1]))
            s = float(geoguessr_score(d))
            pc = pin[2] if len(pin) > 2 else None
        store.record_guess(game, k, guess_lat=None if pin is None else pin[0], guess_lon=None if pin is None else pin[1],
                           guess_countries=countries, pin_country=pc, distance_km=d, score=s, now=100.0 * k + 2 * k)
    return game


def test_report_counts_top_k_km_and_the_model_on_the_same_rounds(tmp_path):
    store = GameStore(tmp_path / "g.sqlite")
    # ann: Paris pin in France + picks [FRA]; Sydney: no pin, picks [NZL, AUS]; Tokyo: pin in Korea, no picks
    _play(store, "ann", [((48.0, 2.0, "FRA"), ["FRA"]), (None, ["NZL", "AUS"]), ((37.5, 127.0, "KOR"), [])])
    # bob: two rounds only (an unfinished game counts what was guessed)
    _play(store, "bob", [((40.0, -3.0, "ESP"), ["ESP", "PRT", "ITA", "FRA"]), ((-33.0, 151.0, "AUS"), [])])
    report = game_report(store)
    (section,) = report.sections
    assert section.data == "manifest.csv" and section.checkpoint == "/m/best.pt"
    rows = {r.who: r for r in section.rows}
    assert list(rows) == ["ann", "model on ann's rounds", "bob", "model on bob's rounds", "all 2 players",
                          "model on the same rounds"]
    ann = rows["ann"]
    assert (ann.rounds, ann.pins) == (3, 2)
    assert (ann.top1, ann.top3, ann.top5) == pytest.approx((100 / 3, 200 / 3, 200 / 3))  # FRA 1st, AUS 2nd, KOR
    d_ann = [float(haversine(48.85, 2.35, 48.0, 2.0)), float(haversine(35.68, 139.69, 37.5, 127.0))]
    assert ann.median_km == pytest.approx(np.median(d_ann))
    assert ann.mean_geoscore == pytest.approx(np.mean([geoguessr_score(d) for d in d_ann]))
    assert ann.median_seconds == pytest.approx(4.0)  # 2, 4, 6 s
    model = rows["model on ann's rounds"]
    assert (model.rounds, model.pins) == (3, 2)
    assert (model.top1, model.top3, model.top5) == pytest.approx((100 / 3, 200 / 3, 100.0))  # AUS 1st, FRA 2nd, JPN 5th
    d_model = [float(haversine(48.85, 2.35, 50.0, 8.0)), float(haversine(35.68, 139.69, 35.0, 135.0))]  # pinned rounds
    assert model.median_km == pytest.approx(np.median(d_model))
    assert math.isnan(model.median_seconds)
    bob = rows["bob"]
    assert (bob.rounds, bob.pins, bob.top1, bob.top5) == (2, 2, 50.0, 100.0)  # ESP..FRA 4th; pin in AUS counts
    everyone = rows["all 2 players"]
    assert everyone.rounds == 5 and everyone.pins == 4
    assert everyone.top1 == pytest.approx(100 * 2 / 5)  # ann: Paris; bob: Sydney
    md = report.to_markdown()
    assert "| ann | 3 | 33.3 | 66.7 | 66.7 | 2 |" in md and "### manifest.csv, model /m/best.pt" in md
    md_path, json_path = write_report(report, tmp_path / "out" / "report.md")
    assert md_path.read_text() == md
    data = json.loads(json_path.read_text())
    assert data["sections"][0]["rows"][1]["median_seconds"] is None


def test_games_without_a_model_and_other_data_are_separate_sections(tmp_path):
    store = GameStore(tmp_path / "g.sqlite")
    _play(store, "ann", [((48.0, 2.0, "FRA"), [])], model=False)
    _play(store, "ann", [((48.0, 2.0, "FRA"), [])], model=True)
    report = game_report(store)
    assert [(s.checkpoint, [r.who for r in s.rows]) for s in report.sections] == [
        (None, ["ann"]), ("/m/best.pt", ["ann", "model on ann's rounds"])]
    assert "no model" in report.to_markdown()


def test_an_empty_database_says_so(tmp_path):
    report = game_report(GameStore(tmp_path / "g.sqlite"))
    assert report.sections == () and "No guesses stored yet" in report.to_markdown()


def test_names_with_pipes_do_not_break_the_table(tmp_path):
    store = GameStore(tmp_path / "g.sqlite")
    _play(store, "a|b", [((48.0, 2.0, "FRA"), [])], model=False)
    assert "| a\\|b | 1 |" in game_report(store).to_markdown()
