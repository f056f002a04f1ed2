"""The game server over HTTP: a game through the API, what is stored, bad requests (always a 4xx
with a message, never a traceback), path traversal, out-of-turn guesses, two games at once."""

from __future__ import annotations

import io
import json
import sqlite3
import threading

import numpy as np
import pytest
from PIL import Image

from geocell import geoguessr_score, haversine
from tests.app.conftest import patch_game_data


def test_a_game_through_the_api_is_stored(start_server, tiny_game_data, tmp_path):
    server, client = start_server(tiny_game_data, rounds=3, seed=7)
    info = client.get("/api/info").json()
    assert info["rounds"] == 3 and info["model"] is None and info["max_picks"] == 5
    assert ["FRA", "France"] in info["countries"] and len(info["countries"]) > 200
    game = client.new_game("  Ann   Lee ")
    page = client.get("/")
    assert page.status == 200 and b"/static/app.js" in page.body
    assert "default-src 'self'" in page.headers["content-security-policy"]
    # round 1: pin + countries; round 2: pin only; round 3: countries only
    plays = [dict(lat=48.0, lon=2.0, countries=["FRA", "DEU"]), dict(lat=-33.0, lon=150.0), dict(countries=["USA"])]
    results = []
    for k, body in enumerate(plays, start=1):
        img = client.get(f"/api/games/{game}/rounds/{k}/image")
        assert img.status == 200 and img.headers["content-type"] == "image/jpeg"
        Image.open(io.BytesIO(img.body)).verify()
        r = client.guess(game, k, **body)
        assert r.status == 200, r.body
        results.append(r.json())
    state = client.get(f"/api/games/{game}").json()
    assert state["finished"] and state["player"] == "Ann Lee" and state["played"] == 3
    con = sqlite3.connect(tmp_path / "games.sqlite")
    rows = con.execute("SELECT g.round, g.player, g.guess_lat, g.guess_lon, g.guess_countries, g.pin_country, "
                       "g.distance_km, g.score, g.seconds, r.true_lat, r.true_lon, r.image_id, g.image_id "
                       "FROM guesses g JOIN rounds r USING (game_id, round) WHERE game_id = ? ORDER BY round",
                       (game,)).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3] and {r[1] for r in rows} == {"Ann Lee"}
    assert json.loads(rows[0][4]) == ["FRA", "DEU"] and rows[0][5] == "FRA"
    assert json.loads(rows[1][4]) == [] and rows[1][5] == "AUS"
    assert rows[2][2] is None and rows[2][6] is None and rows[2][7] is None and json.loads(rows[2][4]) == ["USA"]
    for row, res in zip(rows[:2], results[:2]):
        d = float(haversine(row[9], row[10], row[2], row[3]))
        assert row[6] == pytest.approx(d) and row[7] == pytest.approx(float(geoguessr_score(d)))
        assert res["guess"]["score"] == pytest.approx(row[7]) and res["model"] is None
    assert all(r[8] >= 0 for r in rows) and all(r[11] == r[12] for r in rows)
    assert state["total"] == pytest.approx(rows[0][7] + rows[1][7])
    report = client.get(f"/api/games/{game}/report").json()
    (row,) = report["sections"][0]["rows"]
    assert row["who"] == "Ann Lee" and row["rounds"] == 3 and row["pins"] == 2


def test_patches_are_served_as_png_at_their_size(start_server):
    server, client = start_server(patch_game_data(), rounds=2, seed=0)
    game = client.new_game()
    r = client.get(f"/api/games/{game}/rounds/1")
    assert r.json()["pixelated"] is True and "enlarged" in r.json()["caption"]
    img = client.get(r.json()["image"])
    assert img.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(img.body)) as im:
        assert im.size == (64, 64)
    index = server.app.store.rounds(game)[0].sample_index
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(img.body))), server.app.data.split.images[index])
    assert client.get(f"/api/games/{game}/rounds/2/image").status == 409  # not open yet


def test_the_round_payload_does_not_give_the_answer_away(start_server, tiny_game_data):
    _, client = start_server(tiny_game_data, rounds=2, seed=1)
    game = client.new_game()
    r = client.get(f"/api/games/{game}/rounds/1")
    text = r.body.decode()
    assert set(r.json()) == {"round", "rounds", "image", "caption", "pixelated"}
    assert '"lat"' not in text and ".png" not in text and "img/" not in text and "true" not in text


def _bad_requests(game: str):
    ok = {"Content-Type": "application/json"}
    g = f"/api/games/{game}/rounds/1/guess"
    return [
        # (method, path, raw body, headers, status, words in the message)
        ("POST", "/api/games", b"{not json", ok, 400, "not valid JSON"),
        ("POST", "/api/games", b"[1, 2]", ok, 400, "JSON object"),
        ("POST", "/api/games", b'{"player": ""}', ok, 400, "1 to 40"),
        ("POST", "/api/games", b'{"player": 5}', ok, 400, "name"),
        ("POST", "/api/games", json.dumps({"player": "x" * 41}).encode(), ok, 400, "1 to 40"),
        ("POST", "/api/games", b'{"player": "a\\u0000b"}', ok, 400, "control"),
        ("POST", "/api/games", b'{"player": "ann", "admin": true}', ok, 400, "unknown field 'admin'"),
        ("POST", "/api/games", b'{"player": "ann"}', {"Content-Type": "text/plain"}, 415, "application/json"),
        ("POST", "/api/games", b'{"player": "ann"}', {}, 415, "application/json"),
        ("POST", "/api/games", b"\xff\xfe", ok, 400, "not valid JSON"),
        ("POST", "/api/games", b"x" * 20000, ok, 413, "at most"),
        ("POST", "/api/games", b"{}", {**ok, "Content-Length": "abc"}, 400, "not a number"),
        ("POST", "/api/games", b"{}", {**ok, "Content-Length": "-1"}, 400, "negative"),
        ("POST", g, b'{"lat": 91, "lon": 0}', ok, 400, "lat 91.0 is out of range"),
        ("POST", g, b'{"lat": 0, "lon": -180.5}', ok, 400, "lon -180.5 is out of range"),
        ("POST", g, b'{"lat": NaN, "lon": 0}', ok, 400, "not valid JSON"),
        ("POST", g, b'{"lat": 1e400, "lon": 0}', ok, 400, "finite"),
        ("POST", g, b'{"lat": "10", "lon": 0}', ok, 400, "lat must be a number"),
        ("POST", g, b'{"lat": true, "lon": 0}', ok, 400, "lat must be a number"),
        ("POST", g, b'{"lat": 10}', ok, 400, "both lat and lon"),
        ("POST", g, b'{"countries": ["XXX"]}', ok, 400, "unknown country code \"XXX\""),
        ("POST", g, b'{"countries": ["fra"]}', ok, 400, "unknown country code"),
        ("POST", g, b'{"countries": [1]}', ok, 400, "unknown country code 1"),
        ("POST", g, b'{"countries": "FRA"}', ok, 400, "must be a list"),
        ("POST", g, b'{"countries": ["FRA", "FRA"]}', ok, 400, "twice"),
        ("POST", g, json.dumps({"countries": ["FRA", "DEU", "ITA", "ESP", "PRT", "BEL"]}).encode(), ok, 400, "at most 5"),
        ("POST", g, b"{}", ok, 400, "needs a pin"),
        ("POST", g, b'{"countries": []}', ok, 400, "needs a pin"),
        ("POST", g, b'{"lat": 1, "lon": 2, "id": "other"}', ok, 400, "unknown field 'id'"),
        ("POST", "/api/games/nosuchgame/rounds/1/guess", b'{"lat": 1, "lon": 2}', ok, 404, "no game 'nosuchgame'"),
        ("POST", f"/api/games/{game}/rounds/9/guess", b'{"lat": 1, "lon": 2}', ok, 404, "rounds 1 to 2"),
        ("POST", f"/api/games/{game}/rounds/0/guess", b'{"lat": 1, "lon": 2}', ok, 404, "rounds 1 to 2"),
        ("POST", f"/api/games/{game}/rounds/2/guess", b'{"lat": 1, "lon": 2}', ok, 409, "not open yet"),
        ("GET", f"/api/games/{game}/rounds/2", None, {}, 409, "current round is 1"),
        ("GET", f"/api/games/{game}/rounds/-1", None, {}, 404, "no such page"),
        ("GET", f"/api/games/{game}/rounds/x", None, {}, 404, "no such page"),
        ("GET", "/api/games/no-such-game", None, {}, 404, "no game"),
        ("GET", "/api/games/" + "a" * 65, None, {}, 404, "no such page"),
        ("GET", "/api/games/nogame/rounds/1/image", None, {}, 404, "no game"),
        ("GET", "/api/games/nogame/report", None, {}, 404, "no game"),
        ("GET", "/api/nothing", None, {}, 404, "no such page"),
        ("DELETE", f"/api/games/{game}", None, {}, 405, "DELETE is not allowed"),
        ("PUT", "/api/games", b"{}", ok, 405, "use POST"),
        ("GET", "/api/games", None, {}, 405, "use POST"),
        ("POST", "/api/info", b"{}", ok, 405, "use GET"),
        ("BREW", "/", None, {}, 405, "BREW is not allowed"),
        ("PATCH", "/nothing", None, {}, 404, "no such page"),
        ("GET", "/api/info", None, {"Host": "evil.example:80"}, 400, "is not this server"),
        ("GET", "/", None, {"Host": "attacker.test"}, 400, "is not this server"),
    ]


def test_bad_requests_get_a_4xx_with_a_message(start_server, tiny_game_data, capfd):
    _, client = start_server(tiny_game_data, rounds=2, seed=2)
    game = client.new_game()
    assert client.get(f"/api/games/{game}/rounds/1").status == 200
    for method, path, raw, headers, status, words in _bad_requests(game):
        r = client.request(method, path, raw=raw, headers=headers)
        if "Host" in headers:
            assert b"<html" not in r.body
        assert r.status == status, (method, path, raw, r.status, r.body)
        assert r.headers["content-type"].startswith("application/json"), (method, path)
        message = r.json()["error"]
        assert words in message, (method, path, message)
        assert "Traceback" not in message and "File \"" not in message
    # nothing of the above was stored, and the game goes on
    assert client.post(f"/api/games/{game}/rounds/1/guess", {"lat": 1, "lon": 2}).status == 200
    assert "Traceback" not in capfd.readouterr().err


def test_malformed_http_is_refused_as_json(start_server, tiny_game_data):
    import socket

    server, _ = start_server(tiny_game_data, rounds=1)
    for raw in (b"GARBAGE\r\n\r\n", b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n"):
        with socket.create_connection(server.server_address[:2], timeout=10) as s:
            s.sendall(raw)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        if reply.startswith(b"HTTP/"):
            status = int(reply.split(b" ", 2)[1])
            assert 400 <= status < 500, reply[:200]
        # else a one-word request line is HTTP/0.9, answered with a body and no status line
        assert b'{"error": "' in reply and b"Traceback" not in reply


@pytest.mark.parametrize("path", [
    "/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/store.py", "/static/..\\server.py",
    "/static//etc/passwd", "/static/%2Fetc%2Fpasswd", "/static/.%2e/.%2e/.%2e/etc/passwd",
    "/../../../../etc/passwd", "//etc/passwd", "/static/", "/static/server.py", "/static/__init__.py",
    "/static/index.html/../../store.py", "/api/games/x/rounds/1/image/../../../../../etc/passwd",
    "/map.svg/../../server.py", "http://127.0.0.1/etc/passwd", "/static/app.js%00.png", "/img/0_0.png",
    "/manifest.csv",
])
def test_path_traversal_is_refused(start_server, tiny_game_data, path):
    _, client = start_server(tiny_game_data, rounds=1)
    r = client.get(path)
    assert r.status == 404, (path, r.status)
    assert b"root:" not in r.body and b"import" not in r.body and b"PNG" not in r.body
    assert client.get("/static/app.js").status == 200  # the listed files are served


def test_guesses_out_of_turn_are_refused(start_server, tiny_game_data):
    _, client = start_server(tiny_game_data, rounds=2, seed=3)
    game = client.new_game()
    r = client.post(f"/api/games/{game}/rounds/1/guess", {"lat": 1, "lon": 2})
    assert r.status == 409 and "has not been shown yet" in r.json()["error"]
    assert client.guess(game, 1, lat=1, lon=2).status == 200
    again = client.post(f"/api/games/{game}/rounds/1/guess", {"lat": 1, "lon": 2})
    assert again.status == 409 and "already guessed" in again.json()["error"]
    assert client.guess(game, 2, countries=["FRA"]).status == 200
    over = client.post(f"/api/games/{game}/rounds/2/guess", {"lat": 1, "lon": 2})
    assert over.status == 409 and "is over" in over.json()["error"]
    assert len(client.get(f"/api/games/{game}").json()["results"]) == 2


def test_two_concurrent_games(start_server, tiny_game_data, tmp_path):
    """Two players at once, each round of both games interleaved by a barrier; then one round
    guessed by many threads at the same time is stored once."""
    server, client = start_server(tiny_game_data, rounds=4)
    barrier = threading.Barrier(2)
    out: dict[str, list] = {}
    errors: list = []

    def play(player: str, lat: float, lon: float):
        try:
            barrier.wait(10)
            game = client.new_game(player)
            scores = []
            for k in range(1, 5):
                barrier.wait(10)
                r = client.guess(game, k, lat=lat, lon=lon, countries=["FRA"] if player == "ann" else ["AUS", "USA"])
                assert r.status == 200, r.body
                scores.append(r.json()["guess"]["score"])
            out[player] = [game, scores]
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=play, args=a) for a in (("ann", 48.0, 2.0), ("bob", -30.0, 140.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    con = sqlite3.connect(tmp_path / "games.sqlite")
    for player, (game, scores) in out.items():
        rows = con.execute("SELECT player, guess_lat, guess_countries, score FROM guesses WHERE game_id = ? "
                           "ORDER BY round", (game,)).fetchall()
        assert len(rows) == 4 and {r[0] for r in rows} == {player}
        assert {r[1] for r in rows} == ({48.0} if player == "ann" else {-30.0})
        assert [r[3] for r in rows] == pytest.approx(scores)
    assert out["ann"][0] != out["bob"][0]

    game = client.new_game("carl")
    assert client.get(f"/api/games/{game}/rounds/1").status == 200
    statuses: list[int] = []
    start = threading.Barrier(6)

    def race():
        start.wait(10)
        statuses.append(client.post(f"/api/games/{game}/rounds/1/guess", {"lat": 0, "lon": 0}).status)

    racers = [threading.Thread(target=race) for _ in range(6)]
    for t in racers:
        t.start()
    for t in racers:
        t.join(60)
    assert sorted(statuses) == [200] + [409] * 5
    assert con.execute("SELECT COUNT(*) FROM guesses WHERE game_id = ?", (game,)).fetchone()[0] == 1


def test_a_seed_gives_every_game_the_same_images(start_server, tiny_game_data):
    server, client = start_server(tiny_game_data, rounds=3, seed=11)
    a, b = client.new_game("a"), client.new_game("b")
    ids = [[r.image_id for r in server.app.store.rounds(g)] for g in (a, b)]
    assert ids[0] == ids[1] and len(set(ids[0])) == 3


def test_the_map_is_served_gzipped_and_plain(start_server, tiny_game_data):
    import gzip

    _, client = start_server(tiny_game_data, rounds=1)
    z = client.get("/map.svg", headers={"Accept-Encoding": "gzip"})
    plain = client.get("/map.svg")
    assert z.headers.get("content-encoding") == "gzip" and gzip.decompress(z.body) == plain.body
    assert plain.body.startswith(b"<svg") and b'data-code="FRA"' in plain.body


def test_setup_errors(tiny_game_data, tmp_path):
    from geocell_engine.app.errors import GameError
    from geocell_engine.app.server import make_server

    with pytest.raises(GameError, match="only 12 images"):
        make_server(tiny_game_data, db=tmp_path / "g.sqlite", rounds=13)
    with pytest.raises(GameError, match="expected 1 to 100"):
        make_server(tiny_game_data, db=tmp_path / "g.sqlite", rounds=0)
    with pytest.raises(GameError, match="is a folder"):
        make_server(tiny_game_data, db=tmp_path, rounds=1)
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(GameError, match="cannot be used as the game database"):
        make_server(tiny_game_data, db=tmp_path / "junk.sqlite", rounds=1)
    server = make_server(tiny_game_data, db=tmp_path / "g.sqlite", rounds=1)
    try:
        with pytest.raises(GameError, match="cannot listen on"):
            make_server(tiny_game_data, db=tmp_path / "g.sqlite", rounds=1, port=server.server_address[1])
    finally:
        server.server_close()


def test_loopback_host_names_are_answered(start_server, tiny_game_data):
    server, client = start_server(tiny_game_data, rounds=1)
    port = server.server_address[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "localhost"):
        assert client.get("/api/info", headers={"Host": host}).status == 200, host
    assert client.get("/api/info", headers={"Host": f"127.0.0.1.evil.test:{port}"}).status == 400
