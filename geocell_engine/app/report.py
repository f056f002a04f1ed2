"""The human vs model table of the game database (``cli.py play --report``).

For each data set and model (checkpoint) the games were played with, one row per player and one
row for the model on exactly that player's rounds, then all players together and the model on
the same rounds. Columns:

- ``rounds``: rounds guessed; ``top-1/3/5 %``: the true country among the player's first 1/3/5
  countries. The player's countries are the ones picked, in order (seed 003's protocol); a round
  with a pin and no pick counts the country under the pin as the one pick. The model's are its
  top-5 country list.
- ``pins``: rounds with a pin; ``median km`` and ``mean GeoScore`` (``5000 exp(-km / 1492.7)``,
  unrounded, averaged) are over those rounds, for the player's pin and for the model's point alike.
- ``median s``: the player's median time per round, measured by the server.

Example:
    >>> report = game_report(GameStore(db))        # doctest: +SKIP
    >>> print(report.to_markdown())                # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from geocell_engine.app.store import GameStore, GuessRow, RoundRow

__all__ = ["ReportRow", "ReportSection", "GameReport", "game_report", "report_rows", "write_report"]


@dataclass(frozen=True)
class ReportRow:
    """One line of the table; percentages in 0..100, NaN where there is nothing to average."""

    who: str
    kind: str  # "player", "model", "players", "model-all"
    rounds: int
    top1: float
    top3: float
    top5: float
    pins: int
    median_km: float
    mean_geoscore: float
    median_seconds: float


@dataclass(frozen=True)
class ReportSection:
    """The rows of the games of one data set and one model (``checkpoint`` None: no model)."""

    data: str
    checkpoint: Optional[str]
    rows: tuple[ReportRow, ...]


@dataclass(frozen=True)
class GameReport:
    sections: tuple[ReportSection, ...]

    def to_markdown(self) -> str:
        """Markdown: one heading and table per section, and a note on the columns."""
        if not self.sections:
            return "No guesses stored yet: play a game first (cli.py play).\n"
        out = []
        for s in self.sections:
            model = f"model {s.checkpoint}" if s.checkpoint else "no model"
            out.append(f"### {s.data}, {model}\n")
            out.append(_table(s.rows))
            out.append("")
        out.append(_NOTE)
        return "\n".join(out) + "\n"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN as null)."""
        def clean(row: ReportRow) -> dict[str, Any]:
            return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(row).items()}

        return {"sections": [{"data": s.data, "checkpoint": s.checkpoint, "rows": [clean(r) for r in s.rows]}
                             for s in self.sections]}


_NOTE = ("top-k: the true country among the first k countries (the player's picks in order, or the country "
         "under the pin when none was picked; the model's top-5 list). median km and GeoScore "
         "(5000 exp(-km / 1492.7), averaged) are over the rounds with a pin, for the player's pin and the "
         "model's point on the same images. median s: the player's time per round.")


def _fmt(v: float, digits: int, thousands: bool = False) -> str:
    if isinstance(v, float) and math.isnan(v):
        return ""
    return f"{v:,.{digits}f}" if thousands else f"{v:.{digits}f}"


def _table(rows: Sequence[ReportRow]) -> str:
    head = ("| who | rounds | top-1 % | top-3 % | top-5 % | pins | median km | mean GeoScore | median s |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    lines = [head]
    for r in rows:
        who = r.who.replace("|", "\\|")
        lines.append(f"| {who} | {r.rounds} | {_fmt(r.top1, 1)} | {_fmt(r.top3, 1)} | {_fmt(r.top5, 1)} | {r.pins} | "
                     f"{_fmt(r.median_km, 0, True)} | {_fmt(r.mean_geoscore, 0, True)} | {_fmt(r.median_seconds, 1)} |")
    return "\n".join(lines)


def _topk(lists: Sequence[Sequence[str]], truth: Sequence[str], k: int) -> float:
    if not lists:
        return math.nan
    return 100.0 * float(np.mean([bool(t) and t in list(c)[:k] for c, t in zip(lists, truth)]))


def _median(values: Sequence[float]) -> float:
    return float(np.median(values)) if len(values) else math.nan


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else math.nan


def _player_countries(g: GuessRow) -> tuple[str, ...]:
    if g.guess_countries:
        return g.guess_countries
    return (g.pin_country,) if g.pin_country else ()


def report_rows(who: str, pairs: Sequence[tuple[GuessRow, RoundRow]], with_model: bool,
                kind: str = "player", model_name: Optional[str] = None) -> list[ReportRow]:
    """The player's row for ``(guess, round)`` pairs, and the model's row on the same rounds."""
    from geocell import geoguessr_score, haversine

    truth = [r.true_country for _, r in pairs]
    pinned = [(g, r) for g, r in pairs if g.distance_km is not None]
    lists = [_player_countries(g) for g, _ in pairs]
    rows = [ReportRow(who, kind, len(pairs), _topk(lists, truth, 1), _topk(lists, truth, 3), _topk(lists, truth, 5),
                      len(pinned), _median([g.distance_km for g, _ in pinned]),
                      _mean([g.score for g, _ in pinned]), _median([g.seconds for g, _ in pairs]))]
    if with_model:
        mlists = [r.model_countries or () for _, r in pairs]
        km = [float(haversine(r.true_lat, r.true_lon, r.model_lat, r.model_lon)) for _, r in pinned
              if r.model_lat is not None]
        rows.append(ReportRow(model_name or f"model on {who}'s rounds", "model" if kind == "player" else "model-all",
                              len(pairs), _topk(mlists, truth, 1), _topk(mlists, truth, 3), _topk(mlists, truth, 5),
                              len(km), _median(km), _mean([float(geoguessr_score(d)) for d in km]), math.nan))
    return rows


def game_report(store: GameStore, game_id: Optional[str] = None) -> GameReport:
    """The report of every stored guess (or of one game's)."""
    games = {g.game_id: g for g in store.games()}
    rounds = {(r.game_id, r.round): r for r in store.all_rounds()}
    groups: dict[tuple[str, Optional[str]], list[tuple[GuessRow, RoundRow]]] = {}
    for g in store.guesses(game_id):
        game = games[g.game_id]
        groups.setdefault((game.data_name, game.checkpoint), []).append((g, rounds[(g.game_id, g.round)]))
    sections = []
    for (data, ckpt), pairs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] is not None, kv[0][1] or "")):
        with_model = ckpt is not None
        players: dict[str, list] = {}
        for pair in pairs:
            players.setdefault(pair[0].player, []).append(pair)
        rows: list[ReportRow] = []
        for name in sorted(players, key=str.casefold):
            rows.extend(report_rows(name, players[name], with_model))
        if len(players) > 1:
            rows.extend(report_rows(f"all {len(players)} players", pairs, with_model, kind="players",
                                    model_name="model on the same rounds"))
        sections.append(ReportSection(data, ckpt, tuple(rows)))
    return GameReport(tuple(sections))


def write_report(report: GameReport, out: Path) -> tuple[Path, Path]:
    """Write ``out`` (Markdown, ``.md``) and the same name with ``.json``; returns both paths."""
    from geocell.tables import atomic_write

    out = Path(out)
    md, js = out.with_suffix(".md"), out.with_suffix(".json")
    text = json.dumps(report.as_dict(), indent=2) + "\n"
    atomic_write(md, lambda p: p.write_text(report.to_markdown(), encoding="utf-8"))
    atomic_write(js, lambda p: p.write_text(text, encoding="utf-8"))
    return md, js
