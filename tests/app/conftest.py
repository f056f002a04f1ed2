"""Fixtures of the game tests: the tiny PNG manifest, a game server on a free port in a thread,
and a small HTTP client that sends exactly the path it is given (no normalisation)."""

from __future__ import annotations

import http.client
import json
import threading
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pytest

from tests.tiny_data import make_tiny_dataset


@pytest.fixture(scope="session")
def tiny_manifest(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny-game"))


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """Raw HTTP/1.0 requests to a server: the path goes on the request line as given."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def request(self, method: str, path: str, body: Any = None, *, raw: Optional[bytes] = None,
                headers: Optional[dict] = None) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        try:
            conn.putrequest(method, path, skip_host="Host" in hdrs, skip_accept_encoding=True)
            if data is not None and "Content-Length" not in hdrs:
                hdrs["Content-Length"] = str(len(data))
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders()
            if data:
                conn.send(data)
            resp = conn.getresponse()
            return Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw) -> Reply:
        return self.request("POST", path, body, **kw)

    # a whole round through the API
    def new_game(self, player: str = "ann") -> str:
        r = self.post("/api/games", {"player": player})
        assert r.status == 201, r.body
        return r.json()["game"]

    def guess(self, game: str, k: int, **body) -> Reply:
        shown = self.get(f"/api/games/{game}/rounds/{k}")
        assert shown.status == 200, shown.body
        return self.post(f"/api/games/{game}/rounds/{k}/guess", body)


@pytest.fixture
def start_server(tmp_path):
    """``start_server(data, **make_server_kwargs) -> (server, Client)``; every server is stopped after the test."""
    from geocell_engine.app.server import make_server

    servers = []

    def start(data, **kwargs):
        kwargs.setdefault("db", tmp_path / "games.sqlite")
        server = make_server(data, **kwargs)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        servers.append((server, thread))
        host, port = server.server_address[:2]
        return server, Client(host, port)

    yield start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def tiny_game_data(tiny_manifest):
    from geocell_engine.app.game import load_game_data

    return load_game_data(str(tiny_manifest))


def patch_game_data(n: int = 8, seed: int = 0):
    """A bluemarble-like GameData: ``n`` in-memory 64 x 64 patches at known places."""
    from geocell_engine.app.game import GameData
    from geocell_engine.data.dataset import GeoSplit

    rng = np.random.default_rng(seed)
    lat = np.array([48.85, 41.9, 40.4, 52.5, -33.9, 35.7, -22.9, 19.4][:n], dtype=np.float64)
    lon = np.array([2.35, 12.5, -3.7, 13.4, 151.2, 139.7, -43.2, -99.1][:n], dtype=np.float64)
    country = np.array(["FRA", "ITA", "ESP", "DEU", "AUS", "JPN", "BRA", "MEX"][:n])
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    split = GeoSplit("test", lat, lon, country, np.array([""] * n), np.array([f"p{i}" for i in range(n)]), images=images)
    return GameData(name="patches", source="patches", split=split,
                    caption="a 64 x 64 px patch, shown enlarged")
