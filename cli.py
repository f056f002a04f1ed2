#!/usr/bin/env python
"""geocell command line: label coordinates with countries and admin-1 units, and more.

Thin by design: each subcommand parses its flags, then calls library code. Heavy modules
(geopandas, torch, timm) are imported inside the command that needs them, so ``--help`` answers
at once. Any error geocell raises on purpose is printed as one line and exits with code 2.

Usage:
    python cli.py label examples/cities.csv --out cities_labelled.csv
    python cli.py --help
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

EXIT_OK = 0
EXIT_USAGE = 2


def _add_label_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "label",
        help="label a CSV/Parquet of coordinates with country (adm0_a3) and admin-1",
        description=(
            "Read a CSV or Parquet table with latitude/longitude columns (lat/latitude and "
            "lon/lng/longitude/long, any case, detected automatically), assign each point to a "
            "Natural Earth country and admin-1 unit (state/province) from the boundaries shipped "
            "with geocell, write the table with the new columns added, and print a summary. "
            "Longitudes in 0..360 are accepted and normalised. Points farther than "
            "--max-distance-km from any land polygon get empty codes. The output is written "
            "atomically: on any error no output file is left behind."
        ),
    )
    p.add_argument("input", type=Path, help="CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet) table")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output table (CSV or Parquet by its suffix); default: INPUT_labelled.<suffix> in the current folder",
    )
    p.add_argument(
        "--max-distance-km",
        type=float,
        default=None,
        help="points outside every polygon go to the nearest one within this distance (default 25 km)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_label)


def _default_output(input_path: Path) -> Path:
    name = input_path.name
    for suffix in (".csv.gz", ".csv", ".tsv", ".parquet", ".pq"):
        if name.lower().endswith(suffix):
            return Path(name[: -len(suffix)] + "_labelled" + suffix)
    return Path(name + "_labelled.csv")


def _cmd_label(args: argparse.Namespace) -> int:
    from geocell.label import format_label_summary, label_points
    from geocell.tables import read_points, write_table

    start = time.perf_counter()
    points = read_points(args.input)
    if points.n_wrapped_lon:
        print(
            f"note: {points.n_wrapped_lon} longitudes in (180, 360] were normalised to (-180, 0]",
            file=sys.stderr,
        )
    kwargs = {} if args.max_distance_km is None else {"max_distance_km": args.max_distance_km}
    labels = label_points(points.lat, points.lon, progress=not args.quiet, **kwargs)
    out = args.out if args.out is not None else _default_output(args.input)
    frame = points.frame.copy()
    for column in labels.columns:
        if column in frame.columns:
            frame = frame.drop(columns=column)
    frame = frame.join(labels.set_index(frame.index))
    write_table(frame, out)
    print(format_label_summary(labels, seconds=time.perf_counter() - start))
    print(f"wrote {len(frame)} rows to {out}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cli.py",
        description=(
            "geocell: image geolocation toolkit. Geo commands (label) work without torch; "
            "run 'python cli.py COMMAND --help' for each command's options."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_label_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input or usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from geocell.errors import GeocellError

    try:
        return args.func(args)
    except GeocellError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
