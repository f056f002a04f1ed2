"""SQLite storage of games, rounds and guesses: one file, several players at once.

The file is ``$GEOCELL_CACHE/game/games.sqlite`` (default ``~/.cache/geocell/game/games.sqlite``;
``cli.py play --db PATH`` chooses another). Tables:

- ``games``: ``game_id`` (random token), ``player``, ``data`` (``bluemarble-v1`` or the manifest's
  absolute path), ``data_name``, ``checkpoint`` (absolute path or NULL), ``n_rounds``, ``created_at``.
- ``rounds``: per game and round (1-based): ``sample_index`` into the test split, ``image_id``,
  the true ``lat``/``lon``/``country`` (``adm0_a3``), the model's guess (``model_lat``,
  ``model_lon``, ``model_countries`` a JSON list of up to five codes; NULL without a model) and
  ``shown_at`` (when the player first got the round).
- ``guesses``: per game and round: ``player``, ``image_id``, the pin (``guess_lat``/``guess_lon``,
  NULL if none), ``guess_countries`` (JSON list, in the player's order), ``pin_country`` (the
  country under the pin), ``distance_km`` and ``score`` (NULL without a pin), ``seconds`` (from
  ``shown_at`` to the guess, measured by the server) and ``created_at``.

Every write is one transaction (``BEGIN IMMEDIATE``), every query is parameterised, and each call
opens its own connection (threads never share one), in WAL mode so readers do not wait for a writer.
Times are Unix seconds.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence

from geocell_engine.app.errors import GameConflict, GameError, GameNotFound

__all__ = ["default_db_path", "GameStore", "GameRow", "RoundRow", "GuessRow", "NewRound", "SCHEMA"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS games (
    game_id     TEXT PRIMARY KEY,
    player      TEXT NOT NULL,
    data        TEXT NOT NULL,
    data_name   TEXT NOT NULL,
    checkpoint  TEXT,
    n_rounds    INTEGER NOT NULL CHECK (n_rounds > 0),
    created_at  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS rounds (
    game_id         TEXT NOT NULL REFERENCES games (game_id),
    round           INTEGER NOT NULL CHECK (round > 0),
    sample_index    INTEGER NOT NULL,
    image_id        TEXT NOT NULL,
    true_lat        REAL NOT NULL,
    true_lon        REAL NOT NULL,
    true_country    TEXT NOT NULL,
    model_lat       REAL,
    model_lon       REAL,
    model_countries TEXT,
    shown_at        REAL,
    PRIMARY KEY (game_id, round)
);
CREATE TABLE IF NOT EXISTS guesses (
    game_id         TEXT NOT NULL,
    round           INTEGER NOT NULL,
    player          TEXT NOT NULL,
    image_id        TEXT NOT NULL,
    guess_lat       REAL,
    guess_lon       REAL,
    guess_countries TEXT NOT NULL,
    pin_country     TEXT,
    distance_km     REAL,
    score           REAL,
    seconds         REAL NOT NULL,
    created_at      REAL NOT NULL,
    PRIMARY KEY (game_id, round),
    FOREIGN KEY (game_id, round) REFERENCES rounds (game_id, round)
);
"""


def default_db_path() -> Path:
    """``$GEOCELL_CACHE/game/games.sqlite`` (see :func:`geocell_engine.data.cache.default_cache_dir`)."""
    from geocell_engine.data.cache import default_cache_dir

    return default_cache_dir() / "game" / "games.sqlite"


@dataclass(frozen=True)
class NewRound:
    """A round to store when a game is created."""

    sample_index: int
    image_id: str
    true_lat: float
    true_lon: float
    true_country: str
    model_lat: Optional[float] = None
    model_lon: Optional[float] = None
    model_countries: Optional[tuple[str, ...]] = None


@dataclass(frozen=True)
class GameRow:
    game_id: str
    player: str
    data: str
    data_name: str
    checkpoint: Optional[str]
    n_rounds: int
    created_at: float


@dataclass(frozen=True)
class RoundRow:
    game_id: str
    round: int
    sample_index: int
    image_id: str
    true_lat: float
    true_lon: float
    true_country: str
    model_lat: Optional[float]
    model_lon: Optional[float]
    model_countries: Optional[tuple[str, ...]]
    shown_at: Optional[float]


@dataclass(frozen=True)
class GuessRow:
    game_id: str
    round: int
    player: str
    image_id: str
    guess_lat: Optional[float]
    guess_lon: Optional[float]
    guess_countries: tuple[str, ...]
    pin_country: Optional[str]
    distance_km: Optional[float]
    score: Optional[float]
    seconds: float
    created_at: float


def _round(row: sqlite3.Row) -> RoundRow:
    d = dict(row)
    d["model_countries"] = None if d["model_countries"] is None else tuple(json.loads(d["model_countries"]))
    return RoundRow(**d)


def _guess(row: sqlite3.Row) -> GuessRow:
    d = dict(row)
    d["guess_countries"] = tuple(json.loads(d["guess_countries"]))
    return GuessRow(**d)


class GameStore:
    """The game database at ``path`` (created with its tables if missing).

    Raises:
        GameError: the file cannot be opened or is not a SQLite database.

    Example:
        >>> store = GameStore(tmp / "g.sqlite")                       # doctest: +SKIP
        >>> gid = store.create_game("ann", "bluemarble-v1", "bluemarble-v1", None, rounds)  # doctest: +SKIP
    """

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise GameError(f"--db {self.path}: is a folder; expected a SQLite file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connection() as conn:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise GameError(f"--db {self.path}: cannot be used as the game database ({exc})") from exc

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._connect()
        try:
            yield conn
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: the write lock is taken before any read)."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # ------------------------------------------------------------------ writes
    def create_game(self, player: str, data: str, data_name: str, checkpoint: Optional[str],
                    rounds: Sequence[NewRound], now: Optional[float] = None) -> str:
        """Store a new game and all its rounds in one transaction; returns its ``game_id``."""
        game_id = secrets.token_urlsafe(12)
        now = time.time() if now is None else now
        with self._write() as conn:
            conn.execute("INSERT INTO games (game_id, player, data, data_name, checkpoint, n_rounds, created_at) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (game_id, player, data, data_name, checkpoint, len(rounds), now))
            conn.executemany(
                "INSERT INTO rounds (game_id, round, sample_index, image_id, true_lat, true_lon, true_country, "
                "model_lat, model_lon, model_countries) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(game_id, k, int(r.sample_index), str(r.image_id), float(r.true_lat), float(r.true_lon),
                  str(r.true_country), r.model_lat, r.model_lon,
                  None if r.model_countries is None else json.dumps(list(r.model_countries)))
                 for k, r in enumerate(rounds, start=1)])
        return game_id

    def show_round(self, game_id: str, round_no: int, now: Optional[float] = None) -> RoundRow:
        """The current round of a game, marked as shown (the clock of its guess starts the first time).

        Raises:
            GameNotFound: no such game or round.
            GameConflict: the round is not the game's current one (already guessed, or later).
        """
        now = time.time() if now is None else now
        with self._write() as conn:
            self._require_current(conn, game_id, round_no)
            conn.execute("UPDATE rounds SET shown_at = ? WHERE game_id = ? AND round = ? AND shown_at IS NULL",
                         (now, game_id, round_no))
            row = conn.execute("SELECT * FROM rounds WHERE game_id = ? AND round = ?", (game_id, round_no)).fetchone()
        return _round(row)

    def record_guess(self, game_id: str, round_no: int, *, guess_lat: Optional[float], guess_lon: Optional[float],
                     guess_countries: Sequence[str], pin_country: Optional[str], distance_km: Optional[float],
                     score: Optional[float], now: Optional[float] = None) -> GuessRow:
        """Store a player's guess of the current round (one transaction); returns the stored row.

        Raises:
            GameNotFound: no such game or round.
            GameConflict: not the current round, already guessed, or not shown yet.
        """
        now = time.time() if now is None else now
        with self._write() as conn:
            game, rnd = self._require_current(conn, game_id, round_no)
            if rnd["shown_at"] is None:
                raise GameConflict(f"round {round_no} of game {game_id!r} has not been shown yet; "
                                   f"GET /api/games/{game_id}/rounds/{round_no} first")
            seconds = max(0.0, now - float(rnd["shown_at"]))
            conn.execute(
                "INSERT INTO guesses (game_id, round, player, image_id, guess_lat, guess_lon, guess_countries, "
                "pin_country, distance_km, score, seconds, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (game_id, round_no, game["player"], rnd["image_id"], guess_lat, guess_lon,
                 json.dumps(list(guess_countries)), pin_country, distance_km, score, seconds, now))
            row = conn.execute("SELECT * FROM guesses WHERE game_id = ? AND round = ?", (game_id, round_no)).fetchone()
        return _guess(row)

    def _require_current(self, conn: sqlite3.Connection, game_id: str, round_no: int):
        game = conn.execute("SELECT * FROM games WHERE game_id = ?", (game_id,)).fetchone()
        if game is None:
            raise GameNotFound(f"no game {game_id!r}")
        if not 1 <= round_no <= int(game["n_rounds"]):
            raise GameNotFound(f"game {game_id!r} has rounds 1 to {game['n_rounds']}, not {round_no}")
        played = int(conn.execute("SELECT COUNT(*) FROM guesses WHERE game_id = ?", (game_id,)).fetchone()[0])
        if played >= int(game["n_rounds"]):
            raise GameConflict(f"game {game_id!r} is over: all {game['n_rounds']} rounds are guessed")
        if round_no != played + 1:
            what = "was already guessed" if round_no <= played else "is not open yet"
            raise GameConflict(f"round {round_no} of game {game_id!r} {what}; the current round is {played + 1}")
        rnd = conn.execute("SELECT * FROM rounds WHERE game_id = ? AND round = ?", (game_id, round_no)).fetchone()
        return game, rnd

    # ------------------------------------------------------------------ reads
    def game(self, game_id: str) -> GameRow:
        """Raises GameNotFound."""
        with self._connection() as conn:
            row = conn.execute("SELECT * FROM games WHERE game_id = ?", (game_id,)).fetchone()
        if row is None:
            raise GameNotFound(f"no game {game_id!r}")
        return GameRow(**dict(row))

    def rounds(self, game_id: str) -> list[RoundRow]:
        with self._connection() as conn:
            rows = conn.execute("SELECT * FROM rounds WHERE game_id = ? ORDER BY round", (game_id,)).fetchall()
        return [_round(r) for r in rows]

    def guesses(self, game_id: Optional[str] = None) -> list[GuessRow]:
        """The guesses of one game (or of every game), in order."""
        with self._connection() as conn:
            if game_id is None:
                rows = conn.execute("SELECT * FROM guesses ORDER BY created_at, game_id, round").fetchall()
            else:
                rows = conn.execute("SELECT * FROM guesses WHERE game_id = ? ORDER BY round", (game_id,)).fetchall()
        return [_guess(r) for r in rows]

    def games(self) -> list[GameRow]:
        with self._connection() as conn:
            rows = conn.execute("SELECT * FROM games ORDER BY created_at, game_id").fetchall()
        return [GameRow(**dict(r)) for r in rows]

    def all_rounds(self) -> list[RoundRow]:
        with self._connection() as conn:
            rows = conn.execute("SELECT * FROM rounds ORDER BY game_id, round").fetchall()
        return [_round(r) for r in rows]
