#!/usr/bin/env python
"""Play one game of the human baseline page in headless Chromium and keep a screenshot of a round
and the report table (the README's "Human baseline game" section is made with it).

The player is a script, not a person: it plays the prior. Every round it pins the spherical mean
of the training points and picks the five most common training countries in order, by clicking
the map and typing the names like a person would (:class:`geocell_engine.app.browser.BrowserPlayer`).
What it shows is the page and the table's format, not a human baseline; people give that number
by playing ``cli.py play``.

Usage:
    python scripts/screenshot_game.py --checkpoint RUN/best.pt            # bluemarble-v1, 5 rounds
    python scripts/screenshot_game.py --data manifest.csv --rounds 3 --out /tmp/round.png --report /tmp/r.md

Writes ``--out`` (PNG of round ``--shot-round`` after the guess: the image, the pin, the true
place and the model's guess), ``--report`` (Markdown, and a .json beside it) and prints the table.
Needs Debian's chromium and chromium-driver and selenium (pip install -e '.[test]').
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def prior_player(data: str, seed: int = 0):
    """(lat, lon, five country names): the training points' spherical mean and most common countries."""
    from geocell import spherical_mean
    from geocell_engine.app.worldmap import countries
    from geocell_engine.data.dataset import load_splits

    train = load_splits(data, seed=seed)[0]["train"]
    lat, lon = spherical_mean(train.lat, train.lon)
    names = {c.code: c.name for c in countries()}
    top = [c for c, _ in Counter(x for x in train.country.tolist() if x).most_common(5)]
    return float(lat), float(lon), [names[c] for c in top]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default="bluemarble-v1")
    ap.add_argument("--checkpoint", default=None, help="the model whose guesses the page shows")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="which test images (the game's --seed)")
    ap.add_argument("--player", default="scripted prior player")
    ap.add_argument("--shot-round", type=int, default=1, help="the round whose result is the screenshot")
    ap.add_argument("--out", type=Path, default=Path("docs/game_round.png"))
    ap.add_argument("--report", type=Path, default=Path("docs/game_report.md"))
    ap.add_argument("--shots", type=Path, default=None, help="also keep every step's screenshot in this folder")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=960)
    args = ap.parse_args(argv)

    from geocell_engine.app.browser import BrowserPlayer, RoundPlay, start_chromium
    from geocell_engine.app.report import game_report, write_report
    from geocell_engine.app.server import make_server

    began = time.perf_counter()
    lat, lon, picks = prior_player(args.data)
    work = Path(tempfile.mkdtemp(prefix="geocell-screenshot-"))
    try:
        server = make_server(args.data, db=work / "games.sqlite", rounds=args.rounds, checkpoint=args.checkpoint,
                             seed=args.seed)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        driver = start_chromium(work / "profile", width=args.width, height=args.height)
        shots = args.shots or work / "shots"
        try:
            player = BrowserPlayer(driver, server.url, screenshots=shots)
            seen = player.play(args.player, [RoundPlay(lat, lon, picks)] * args.rounds)
        finally:
            driver.quit()
            server.shutdown()
            server.server_close()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shots / f"{args.shot_round:02d}-b-result.png", args.out)
        report = game_report(server.app.store)
        md, js = write_report(report, args.report)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report.to_markdown(), end="")
    print(f"\nplayer: pin {lat:.2f}, {lon:.2f}; picks {', '.join(picks)}; page total {seen['total']:,} points")
    print(f"wrote {args.out}, {md} and {js} in {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
