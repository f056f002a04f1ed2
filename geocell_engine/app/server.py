"""The game's HTTP server: one page, a world map, a small JSON API, on the standard library.

Routes (``ID`` is a game id, ``K`` a 1-based round number)::

    GET  /                              the page (static/index.html)
    GET  /static/NAME                   app.js, style.css (a fixed list; nothing else is served)
    GET  /map.svg                       the world map (gzip when the browser accepts it)
    GET  /api/info                      data set, rounds, model, the pickable countries
    POST /api/games                     {"player": "ann"} -> {"game": ID, "rounds": n}
    GET  /api/games/ID                  the game's results so far
    GET  /api/games/ID/rounds/K         the current round (starts its clock)
    GET  /api/games/ID/rounds/K/image   the round's image
    POST /api/games/ID/rounds/K/guess   {"lat": .., "lon": .., "countries": ["FRA", ...]} -> result
    GET  /api/games/ID/report           this game's player vs model table

Every refusal is a 4xx with ``{"error": "message"}``: unknown route 404, wrong method 405, a body
that is not a JSON object or fails validation 400, a body too large 413, no JSON content type 415
(which also keeps other web sites' plain form posts out), a guess out of turn 409. Only a fault of
the server itself is a 5xx, and its traceback goes to the server's log, never to the client. URL
paths are matched as sent, without decoding or joining, against fixed patterns, and images are
looked up by round, so no request can name a file.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import sys
import threading
import traceback
import unicodedata
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from geocell.errors import GeocellError
from geocell_engine.app.errors import GameConflict, GameError, GameNotFound, RequestError
from geocell_engine.app.game import GameData, ModelGuesser, load_game_data
from geocell_engine.app.store import GameStore, NewRound, RoundRow

__all__ = ["GameApp", "GameServer", "make_server", "MAX_BODY_BYTES", "MAX_PICKS", "MAX_NAME_CHARS"]

#: Largest request body accepted, bytes.
MAX_BODY_BYTES = 16 * 1024
#: Most countries a player may pick per round (seed 003's protocol: top-1/3/5).
MAX_PICKS = 5
#: Longest player name, characters.
MAX_NAME_CHARS = 40
#: The most rounds a game may have.
MAX_ROUNDS = 100

STATIC_DIR = Path(__file__).resolve().parent / "static"
_STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
                 ".txt": "text/plain; charset=utf-8"}
#: Everything the page loads comes from this server (no CDN, no tile server, no web font).
_CSP = ("default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; "
        "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _json_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(400, f"{name} must be a number, got {json.dumps(value)[:40]}")
    v = float(value)
    if not math.isfinite(v):
        raise RequestError(400, f"{name} must be finite, got {v}")
    return v


def _check_fields(body: dict, allowed: tuple[str, ...]) -> None:
    extra = sorted(set(body) - set(allowed))
    if extra:
        raise RequestError(400, f"unknown field {extra[0]!r}; expected {', '.join(allowed)}")


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


def _json(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, allow_nan=False).encode(), "application/json; charset=utf-8")


class GameApp:
    """The game without HTTP: validation, game logic and storage behind the routes.

    Args:
        data: the game's test split (:func:`load_game_data`).
        store: where games and guesses go.
        rounds: rounds per game.
        guesser: the model's guesses, or None for a game without a model.
        seed: None draws new images for every game; an int gives every game the same images in
            the same order (players then compare on the same rounds).
    """

    def __init__(self, data: GameData, store: GameStore, rounds: int = 5, guesser: Optional[ModelGuesser] = None,
                 seed: Optional[int] = None):
        from geocell.assign import assign_country
        from geocell_engine.app.worldmap import countries, world_svg

        if not 1 <= rounds <= MAX_ROUNDS:
            raise GameError(f"--rounds {rounds}; expected 1 to {MAX_ROUNDS}")
        if rounds > len(data):
            raise GameError(f"--rounds {rounds}, but the {data.name} test split has only {len(data)} images")
        self.data, self.store, self.rounds, self.guesser, self.seed = data, store, rounds, guesser, seed
        self.names = {c.code: c.name for c in countries()}
        self._countries = [[c.code, c.name] for c in countries()]
        svg = world_svg().encode()
        self._svg, self._svg_gz = svg, gzip.compress(svg, 6)
        self._static = {p.name: (p.read_bytes(), _STATIC_TYPES.get(p.suffix, "application/octet-stream"))
                        for p in sorted(STATIC_DIR.iterdir()) if p.is_file() and p.suffix in _STATIC_TYPES}
        self._assign = assign_country
        assign_country(0.0, 0.0)  # load the polygons now, not at the first guess
        self._rng_lock = threading.Lock()

    # ------------------------------------------------------------------ static
    def static(self, name: str) -> Response:
        hit = self._static.get(name)
        if hit is None:
            raise RequestError(404, f"no static file {name[:60]!r}")
        return Response(200, hit[0], hit[1])

    def world_map(self, accepts_gzip: bool) -> Response:
        if accepts_gzip:
            return Response(200, self._svg_gz, "image/svg+xml", (("Content-Encoding", "gzip"), ("Vary", "Accept-Encoding")))
        return Response(200, self._svg, "image/svg+xml", (("Vary", "Accept-Encoding"),))

    # ------------------------------------------------------------------ API
    def info(self) -> Response:
        model = None
        if self.guesser is not None:
            model = {"checkpoint": Path(self.guesser.checkpoint).name, "trained_on": self.guesser.trained_on}
        return _json({"data": self.data.name, "rounds": self.rounds, "caption": self.data.caption, "model": model,
                      "max_picks": MAX_PICKS, "countries": self._countries})

    def new_game(self, body: dict) -> Response:
        _check_fields(body, ("player",))
        player = body.get("player")
        if not isinstance(player, str):
            raise RequestError(400, "player must be a name (text)")
        player = " ".join(player.split())
        if not 1 <= len(player) <= MAX_NAME_CHARS:
            raise RequestError(400, f"player name must have 1 to {MAX_NAME_CHARS} characters, got {len(player)}")
        if any(unicodedata.category(ch).startswith("C") for ch in player):
            raise RequestError(400, "player name must not contain control characters")
        with self._rng_lock:
            rng = np.random.default_rng(self.seed)
            index = self.data.draw(self.rounds, rng)
        split = self.data.split
        guesses = self.guesser.guess(index) if self.guesser is not None else [None] * len(index)
        rounds = [NewRound(int(i), str(split.ids[i]), float(split.lat[i]), float(split.lon[i]), str(split.country[i]),
                           None if g is None else g.lat, None if g is None else g.lon,
                           None if g is None else g.countries)
                  for i, g in zip(index.tolist(), guesses)]
        checkpoint = None if self.guesser is None else str(Path(self.guesser.checkpoint).resolve())
        game_id = self.store.create_game(player, self.data.source, self.data.name, checkpoint, rounds)
        return _json({"game": game_id, "player": player, "rounds": len(rounds)}, status=201)

    def show_round(self, game_id: str, round_no: int) -> Response:
        self.store.show_round(game_id, round_no)
        return _json({"round": round_no, "rounds": self.store.game(game_id).n_rounds,
                      "image": f"/api/games/{game_id}/rounds/{round_no}/image", "caption": self.data.caption,
                      "pixelated": self.data.split.images is not None})

    def image(self, game_id: str, round_no: int) -> Response:
        game = self.store.game(game_id)
        played = len(self.store.guesses(game_id))
        if not 1 <= round_no <= game.n_rounds:
            raise GameNotFound(f"game {game_id!r} has rounds 1 to {game.n_rounds}, not {round_no}")
        if round_no > played + 1:
            raise GameConflict(f"round {round_no} of game {game_id!r} is not open yet; the current round is {played + 1}")
        rnd = self.store.rounds(game_id)[round_no - 1]
        body, ctype = self.data.image_bytes(rnd.sample_index)
        return Response(200, body, ctype, (("Cache-Control", "private, max-age=3600"),))

    def _parse_guess(self, body: dict) -> tuple[Optional[float], Optional[float], list[str]]:
        _check_fields(body, ("lat", "lon", "countries"))
        lat, lon = body.get("lat"), body.get("lon")
        if (lat is None) != (lon is None):
            raise RequestError(400, "a pin needs both lat and lon (or neither)")
        if lat is not None:
            lat, lon = _json_number(lat, "lat"), _json_number(lon, "lon")
            if not -90.0 <= lat <= 90.0:
                raise RequestError(400, f"lat {lat} is out of range; expected -90 to 90")
            if not -180.0 <= lon <= 180.0:
                raise RequestError(400, f"lon {lon} is out of range; expected -180 to 180")
        picks = body.get("countries", [])
        if picks is None:
            picks = []
        if not isinstance(picks, list):
            raise RequestError(400, "countries must be a list of adm0_a3 codes")
        if len(picks) > MAX_PICKS:
            raise RequestError(400, f"{len(picks)} countries picked; at most {MAX_PICKS}")
        for code in picks:
            if not isinstance(code, str) or code not in self.names:
                raise RequestError(400, f"unknown country code {json.dumps(code)[:20]}; expected an adm0_a3 code "
                                        "such as FRA (see /api/info)")
        if len(set(picks)) != len(picks):
            raise RequestError(400, "a country is picked twice")
        if lat is None and not picks:
            raise RequestError(400, "a guess needs a pin (lat, lon) or at least one country")
        return lat, lon, picks

    def guess(self, game_id: str, round_no: int, body: dict) -> Response:
        from geocell import geoguessr_score, haversine

        lat, lon, picks = self._parse_guess(body)
        self.store.game(game_id)  # 404 before any work
        rnd = self._round(game_id, round_no)
        distance = score = pin_country = None
        if lat is not None:
            distance = float(haversine(rnd.true_lat, rnd.true_lon, lat, lon))
            score = float(geoguessr_score(distance))
            pin_country = str(self._assign(lat, lon)) or None
        row = self.store.record_guess(game_id, round_no, guess_lat=lat, guess_lon=lon, guess_countries=picks,
                                      pin_country=pin_country, distance_km=distance, score=score)
        return _json(self._result(game_id, rnd, row))

    def _round(self, game_id: str, round_no: int) -> RoundRow:
        rounds = self.store.rounds(game_id)
        if not 1 <= round_no <= len(rounds):
            raise GameNotFound(f"game {game_id!r} has rounds 1 to {len(rounds)}, not {round_no}")
        return rounds[round_no - 1]

    def _named(self, codes) -> list[dict]:
        return [{"code": c, "name": self.names.get(c, c)} for c in codes]

    def _result(self, game_id: str, rnd: RoundRow, g) -> dict:
        from geocell import geoguessr_score, haversine

        model = None
        if rnd.model_lat is not None:
            d = float(haversine(rnd.true_lat, rnd.true_lon, rnd.model_lat, rnd.model_lon))
            model = {"lat": rnd.model_lat, "lon": rnd.model_lon, "countries": self._named(rnd.model_countries or ()),
                     "distance_km": d, "score": float(geoguessr_score(d))}
        picks = list(g.guess_countries) or ([g.pin_country] if g.pin_country else [])
        hit = next((k for k in (1, 3, 5) if rnd.true_country in picks[:k]), None)
        return {"round": rnd.round, "truth": {"lat": rnd.true_lat, "lon": rnd.true_lon, "country": rnd.true_country,
                                              "name": self.names.get(rnd.true_country, rnd.true_country or "the sea")},
                "guess": {"lat": g.guess_lat, "lon": g.guess_lon, "countries": self._named(g.guess_countries),
                          "pin_country": g.pin_country, "distance_km": g.distance_km, "score": g.score,
                          "seconds": g.seconds, "top": hit},
                "model": model}

    def game_state(self, game_id: str) -> Response:
        game = self.store.game(game_id)
        rounds = self.store.rounds(game_id)
        played = self.store.guesses(game_id)
        results = [self._result(game_id, rounds[g.round - 1], g) for g in played]
        total = sum(r["guess"]["score"] or 0.0 for r in results)
        model_total = sum(r["model"]["score"] for r in results) if results and all(r["model"] for r in results) else None
        return _json({"game": game_id, "player": game.player, "rounds": game.n_rounds, "played": len(played),
                      "finished": len(played) == game.n_rounds, "total": total, "model_total": model_total,
                      "results": results})

    def game_report(self, game_id: str) -> Response:
        from geocell_engine.app.report import game_report

        self.store.game(game_id)
        report = game_report(self.store, game_id=game_id)
        return _json({"markdown": report.to_markdown(), **report.as_dict()})


# ---------------------------------------------------------------------------- HTTP
_ID = r"([A-Za-z0-9_-]{1,64})"
_K = r"([0-9]{1,4})"
_ROUTES: list[tuple[str, "re.Pattern[str]", str]] = [
    ("GET", re.compile(r"/(?:index\.html)?"), "index"),
    ("GET", re.compile(r"/static/([A-Za-z0-9_.-]{1,64})"), "static"),
    ("GET", re.compile(r"/map\.svg"), "map"),
    ("GET", re.compile(r"/api/info"), "info"),
    ("POST", re.compile(r"/api/games"), "new_game"),
    ("GET", re.compile(rf"/api/games/{_ID}"), "game_state"),
    ("GET", re.compile(rf"/api/games/{_ID}/report"), "game_report"),
    ("GET", re.compile(rf"/api/games/{_ID}/rounds/{_K}"), "show_round"),
    ("GET", re.compile(rf"/api/games/{_ID}/rounds/{_K}/image"), "image"),
    ("POST", re.compile(rf"/api/games/{_ID}/rounds/{_K}/guess"), "guess"),
]


class _Handler(BaseHTTPRequestHandler):
    server_version = "geocell-game"
    sys_version = ""
    app: GameApp  # set on the subclass made by make_server
    quiet = True

    def __getattr__(self, name: str) -> Callable[[], None]:
        # any HTTP method (PUT, DELETE, FOO) goes through the router: 405 or 404, not 501
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        if not self.quiet:
            super().log_message(format, *args)

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        """The standard library's own refusals (bad request line, headers too long) as JSON too; its
        505 for an HTTP version it does not speak is a 400 here (a malformed request is a 4xx)."""
        if code == HTTPStatus.HTTP_VERSION_NOT_SUPPORTED:
            code, message = 400, f"{message or 'HTTP version not supported'}; use HTTP/1.0 or HTTP/1.1"
        try:
            short, _ = self.responses.get(code, ("error", ""))
        except AttributeError:
            short = "error"
        body = json.dumps({"error": message or short}).encode()
        self.send_response(code, message)
        self.send_header("Connection", "close")
        if code >= 200 and code not in (HTTPStatus.NO_CONTENT, HTTPStatus.RESET_CONTENT, HTTPStatus.NOT_MODIFIED):
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        else:
            self.end_headers()

    def _send(self, r: Response) -> None:
        self.send_response(r.status)
        self.send_header("Content-Type", r.content_type)
        self.send_header("Content-Length", str(len(r.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", _CSP)
        self.send_header("Referrer-Policy", "no-referrer")
        names = {k.lower() for k, _ in r.headers}
        if "cache-control" not in names:
            self.send_header("Cache-Control", "no-store")
        for key, value in r.headers:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(r.body)

    def _read_json(self) -> dict:
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise RequestError(415, f"Content-Type {ctype or '(none)'!r}; expected application/json")
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(411, "chunked bodies are not accepted; send Content-Length")
        raw_len = self.headers.get("Content-Length")
        if raw_len is None:
            raise RequestError(411, "Content-Length is required")
        try:
            length = int(raw_len)
        except ValueError:
            raise RequestError(400, f"Content-Length {raw_len[:20]!r} is not a number") from None
        if length < 0:
            raise RequestError(400, f"Content-Length {length} is negative")
        if length > MAX_BODY_BYTES:
            raise RequestError(413, f"body of {length} bytes; at most {MAX_BODY_BYTES}")
        raw = self.rfile.read(length)
        if len(raw) != length:
            raise RequestError(400, f"body ended after {len(raw)} of {length} bytes")

        def no_constants(name: str):
            raise ValueError(f"{name} is not valid JSON")

        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=no_constants)
        except (UnicodeDecodeError, ValueError) as exc:
            raise RequestError(400, f"body is not valid JSON ({str(exc)[:80]})") from None
        if not isinstance(body, dict):
            raise RequestError(400, f"body must be a JSON object, got {type(body).__name__}")
        return body

    def _check_host(self) -> None:
        """On a loopback address, only requests addressed to a loopback name are answered: a web
        page elsewhere cannot reach the game through a DNS name that points here (DNS rebinding)."""
        if not getattr(self.server, "loopback", False):
            return
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit("]", 1)[0].lstrip("[") if host.startswith("[") else host.rsplit(":", 1)[0]
        if name not in ("127.0.0.1", "localhost", "::1"):
            raise RequestError(400, f"Host {host[:60]!r} is not this server; open it as http://127.0.0.1:PORT/")

    def _route(self) -> Response:
        self._check_host()
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        allowed = []
        for method, pattern, name in _ROUTES:
            m = pattern.fullmatch(path)
            if m is None:
                continue
            if method != self.command:
                allowed.append(method)
                continue
            return self._call(name, m.groups())
        if allowed:
            r = _json({"error": f"{self.command} is not allowed here; use {', '.join(sorted(set(allowed)))}"}, 405)
            return Response(r.status, r.body, r.content_type, (("Allow", ", ".join(sorted(set(allowed)))),))
        raise RequestError(404, f"no such page: {path[:80]}")

    def _call(self, name: str, groups: tuple) -> Response:
        app = self.app
        if name == "index":
            return app.static("index.html")
        if name == "static":
            return app.static(groups[0])
        if name == "map":
            return app.world_map("gzip" in (self.headers.get("Accept-Encoding") or ""))
        if name == "info":
            return app.info()
        if name == "new_game":
            return app.new_game(self._read_json())
        if name in ("game_state", "game_report"):
            return getattr(app, name)(groups[0])
        game_id, round_no = groups[0], int(groups[1])
        if name == "show_round":
            return app.show_round(game_id, round_no)
        if name == "image":
            return app.image(game_id, round_no)
        return app.guess(game_id, round_no, self._read_json())

    def _dispatch(self) -> None:
        try:
            response = self._route()
        except RequestError as exc:
            response = _json({"error": str(exc)}, exc.status)
        except GameNotFound as exc:
            response = _json({"error": str(exc)}, 404)
        except GameConflict as exc:
            response = _json({"error": str(exc)}, 409)
        except GeocellError as exc:  # a fault on the server's side (e.g. an unreadable image): one line
            print(f"game server: {self.command} {self.path[:100]}: {exc}", file=sys.stderr)
            response = _json({"error": str(exc)}, 500)
        except Exception:  # a bug: the traceback goes to the log, the client gets one line
            print(f"game server: {self.command} {self.path[:100]} failed:\n{traceback.format_exc()}", file=sys.stderr)
            response = _json({"error": "internal error (see the server's log)"}, 500)
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            pass


class GameServer(ThreadingHTTPServer):
    """A :class:`ThreadingHTTPServer` (one thread per request) that carries its :class:`GameApp`."""

    daemon_threads = True
    allow_reuse_address = True
    app: GameApp
    loopback: bool = False  # bound to a loopback address: requests must name a loopback host

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}/"


def make_server(data: str | GameData, *, db: str | Path, rounds: int = 5, checkpoint: Optional[str] = None,
                host: str = "127.0.0.1", port: int = 0, seed: Optional[int] = None, quiet: bool = True) -> GameServer:
    """A game server bound to ``host:port`` (port 0: any free port; see ``.url``), not yet serving.

    Call ``serve_forever()`` (in a thread for tests) and ``shutdown()`` / ``server_close()``.
    Without ``checkpoint`` nothing imports torch.

    Raises:
        GameError: bad rounds, a database that cannot be used, or the address is taken.
        DataError, CheckpointError: see :func:`load_game_data` and :func:`load_model`.
    """
    if not 1 <= rounds <= MAX_ROUNDS:  # the cheap checks before the data set is read
        raise GameError(f"--rounds {rounds}; expected 1 to {MAX_ROUNDS}")
    store = GameStore(db)
    game_data = load_game_data(data) if isinstance(data, str) else data
    guesser = ModelGuesser(checkpoint, game_data) if checkpoint is not None else None
    app = GameApp(game_data, store, rounds=rounds, guesser=guesser, seed=seed)
    handler = type("GameHandler", (_Handler,), {"app": app, "quiet": quiet})
    try:
        server = GameServer((host, port), handler)
    except OSError as exc:
        raise GameError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port") from exc
    server.app = app
    server.loopback = _is_loopback(host)
    return server


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
