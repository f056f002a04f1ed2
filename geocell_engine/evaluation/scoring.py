"""The neutral scorer: any system's predictions (a GeoCLIP or PIGEON dump, ours) under any profile.

Input is a predictions table (CSV / Parquet) and, optionally, a truth table:

- **predictions** with both true and predicted coordinates (``true_lat, true_lon, pred_lat,
  pred_lon``, as ``cli.py evaluate --dump`` writes them), or with predicted coordinates and an
  id column when ``truth`` is given. Coordinate columns are found by name, any case: a
  latitude / longitude name as ``label`` detects them (``lat``, ``latitude``; ``lon``, ``lng``,
  ``longitude``, ``long``) joined with a role word before or after it (``pred_``, ``predicted_``,
  ``prediction_``, ``guess_``, ``_pred``...; ``true_``, ``gt_``, ``target_``, ``label_``,
  ``actual_``...). With ``truth``, plain ``lat`` / ``lon`` columns are the predicted ones. Two
  candidates for one role are refused, naming both.
- **truth**: a benchmark file (Im2GPS3k / YFCC4k ``IMG_ID, LAT, LON``; GeoCLIP ``IMG_FILE,
  LAT, LON``; OSV-5M ``id, latitude, longitude, ...``; or any table with an id column and
  lat / lon). Its ``unique_country`` / ``unique_region`` / ``unique_sub-region`` /
  ``unique_city`` columns, when present, are the true areas of the osv5m profile; text is kept
  as text (Namibia's ``NA`` is a country code, not a missing value).

Predictions are joined to the truth by id: exactly, or else by file name or file stem (an OSV-5M
id ``123`` matches ``images/123.jpg``), whichever matches every prediction. A prediction whose
id is not in the truth, or an id given twice, is an error naming the row; truth rows without a
prediction are counted and reported (``RowCounts.missing``) and left out of the metrics, as
GeoCLIP's published numbers leave out YFCC4k's missing images (but say how many).

Example:
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "p.csv"), "w").write(
    ...     "id,true_lat,true_lon,pred_lat,pred_lon\\na,48.85,2.35,48.0,2.0\\nb,40.71,-74.0,40.0,-74.0\\n")
    >>> inputs = read_scoring_inputs(os.path.join(d, "p.csv"))
    >>> inputs.rows.scored, inputs.predictions.pred_lat.tolist()
    (2, [48.0, 40.0])
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from geocell.errors import TableError
from geocell.tables import LAT_NAMES, LON_NAMES, read_table
from geocell.validate import check_latlon
from geocell_engine.evaluation.predictions import Predictions
from geocell_engine.evaluation.report import EvalResult, RowCounts, evaluate

__all__ = ["ScoringInputs", "read_scoring_inputs", "score_files", "score_clusters", "PRED_WORDS", "TRUE_WORDS", "ID_NAMES",
           "OSV5M_AREA_COLUMNS"]

#: Role words of predicted-coordinate columns (``pred_lat``, ``lat_pred``, ``predicted latitude``).
PRED_WORDS: tuple[str, ...] = ("pred", "predicted", "prediction", "guess", "guessed", "est", "estimated", "hat")
#: Role words of true-coordinate columns (``true_lat``, ``gt_lat``, ``lat_gt``).
TRUE_WORDS: tuple[str, ...] = ("true", "gt", "target", "label", "actual", "groundtruth", "ground_truth", "gold", "ref")
#: Id column names, in order of preference (any case).
ID_NAMES: tuple[str, ...] = ("id", "img_id", "img_file", "image_id", "image", "image_path", "path", "filepath",
                             "file", "filename", "key")
#: Truth columns holding OSV-5M's area keys -> the osv5m profile's levels.
OSV5M_AREA_COLUMNS: dict[str, str] = {"unique_country": "country", "unique_region": "region",
                                      "unique_sub-region": "sub-region", "unique_city": "city"}


@dataclass(frozen=True)
class ScoringInputs:
    """What :func:`read_scoring_inputs` read.

    Attributes:
        predictions: the matched rows as :class:`Predictions`.
        true_levels: OSV-5M area keys of the truth (level -> ``(N,)`` str), or None.
        rows: truth rows, scored, without a prediction.
        notes: what was detected (columns, join rule), one line each.
        decided: geocell profile: how the guessed country / admin-1 were found (level -> text).
    """

    predictions: Predictions
    true_levels: Optional[dict[str, np.ndarray]]
    rows: RowCounts
    notes: tuple[str, ...]
    decided: dict[str, str] = field(default_factory=dict)


def _tokens(column: Any) -> list[str]:
    return [t for t in re.split(r"[\s_.\-]+", str(column).strip().lower()) if t]


def _role_column(frame: pd.DataFrame, words: tuple[str, ...], names: tuple[str, ...], what: str,
                 path: Path) -> Optional[str]:
    """The one column named <word>_<name> or <name>_<word> (any separator, any case), or None."""
    words_set = {w.replace("_", "") for w in words} | set(words)
    found = []
    for c in frame.columns:
        t = _tokens(c)
        joined = ["".join(t[:-1]), t[-1]] if len(t) >= 2 else t
        tail = [t[0], "".join(t[1:])] if len(t) >= 2 else t
        if len(t) >= 2 and ((joined[0] in words_set and joined[1] in names) or (tail[0] in names and tail[1] in words_set)):
            found.append(c)
    if len(found) > 1:
        raise TableError(f"{path}: {len(found)} {what} columns: {', '.join(map(repr, found))}; expected one: rename "
                         "or drop the others")
    return found[0] if found else None


def _plain_column(frame: pd.DataFrame, names: tuple[str, ...], what: str, path: Path) -> Optional[str]:
    found = [c for c in frame.columns if str(c).strip().lower() in names]
    if len(found) > 1:
        raise TableError(f"{path}: {len(found)} {what} columns: {', '.join(map(repr, found))}; expected one of "
                         f"{', '.join(names)}: rename or drop the others")
    return found[0] if found else None


def _id_column(frame: pd.DataFrame, path: Path) -> Optional[str]:
    low = {str(c).strip().lower(): c for c in frame.columns}
    return next((low[n] for n in ID_NAMES if n in low), None)


def _csv(path: Path) -> bool:
    return not path.name.lower().endswith((".parquet", ".pq", ".geoparquet"))


def _coordinates(frame: pd.DataFrame, lat_col: str, lon_col: str, path: Path, warn: bool) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 degrees of two columns (errors name the file, row, line and column)."""
    csv = _csv(path)

    def row_name(i: int) -> str:
        return f"{path}: row {i} (line {i + 2})" if csv else f"{path}: row {i}"

    values = []
    for col in (lat_col, lon_col):
        raw = frame[col]
        num = pd.to_numeric(raw, errors="coerce")
        text = (num.isna() & raw.notna()).to_numpy()
        if text.any():
            i = int(np.flatnonzero(text)[0])
            raise TableError(f"{row_name(i)}: column {col!r} holds {raw.iloc[i]!r}, which is not a number "
                             f"({int(text.sum())} such value{'s' if text.sum() > 1 else ''} in all)")
        values.append(num.to_numpy(dtype=np.float64, na_value=np.nan))
    lat, lon, _ = check_latlon(values[0], values[1], row_name=row_name,
                               names=(f"column {lat_col!r} (latitude)", f"column {lon_col!r} (longitude)"))
    if warn:
        from geocell_engine.data.readers import warn_if_swapped

        warn_if_swapped(lat, lon, str(lat_col), str(lon_col), str(path))
    return lat, lon


def _codes(frame: pd.DataFrame, column: str, path: Path) -> Optional[np.ndarray]:
    """A column of Natural Earth adm0_a3 / adm1_code values ("" = unknown), or None if absent."""
    low = {str(c).strip().lower(): c for c in frame.columns}
    if column not in low:
        return None
    return frame[low[column]].fillna("").astype(str).str.strip().to_numpy(dtype=str)


def _check_country_codes(values: Optional[np.ndarray], column: str, path: Path) -> Optional[np.ndarray]:
    if values is None:
        return None
    from geocell.assign import get_assigner

    known = set(get_assigner().adm0_codes.tolist())
    bad = np.flatnonzero(~np.isin(values, list(known)))
    if bad.size:
        raise TableError(f"{path}: column {column!r} holds {str(values[bad[0]])!r} (row {int(bad[0])}), which is not a "
                         f"Natural Earth adm0_a3 code ({bad.size} such values); rename the column to score the "
                         "predicted points' countries instead")
    return values


def _join(pred_ids: np.ndarray, true_ids: np.ndarray, pred_path: Path, truth_path: Path) -> tuple[np.ndarray, str]:
    """For each prediction, its truth row: exact ids, else file names, else file stems."""
    for what, frame_ids, path in (("prediction", pred_ids, pred_path), ("truth", true_ids, truth_path)):
        uniq, first, counts = np.unique(frame_ids, return_index=True, return_counts=True)
        if (counts > 1).any():
            k = int(np.flatnonzero(counts > 1)[0])
            rows = np.flatnonzero(frame_ids == uniq[k])[:2]
            raise TableError(f"{path}: id {str(uniq[k])!r} is given {counts[k]} times (rows {rows[0]} and {rows[1]}); "
                             f"every {what} row needs its own id")
    rules = (("exact ids", lambda a: a), ("file names", lambda a: np.array([os.path.basename(x) for x in a])),
             ("file stems", lambda a: np.array([os.path.splitext(os.path.basename(x))[0] for x in a])))
    best = None
    for rule, key in rules:
        t_keys = key(true_ids)
        uniq, counts = np.unique(t_keys, return_counts=True)
        if (counts > 1).any():
            continue  # this rule would make truth ids ambiguous
        index = pd.Index(t_keys).get_indexer(key(pred_ids))
        if (index >= 0).all():
            return index, rule
        if best is None or (index >= 0).sum() > (best[0] >= 0).sum():
            best = (index, rule)
    index = best[0] if best is not None else np.full(len(pred_ids), -1)
    i = int(np.flatnonzero(index < 0)[0])
    raise TableError(f"{pred_path}: row {i}: id {str(pred_ids[i])!r} is not in {truth_path} "
                     f"({int((index < 0).sum())} of {len(pred_ids)} predictions have no truth row, matching "
                     f"by exact id, file name or file stem); e.g. truth ids: {', '.join(repr(str(x)) for x in true_ids[:3])}")


def read_scoring_inputs(predictions: str | os.PathLike, truth: str | os.PathLike | None = None, *,
                        name: Optional[str] = None, countries: bool = True) -> ScoringInputs:
    """Read a predictions table (and a truth table) into :class:`Predictions` and row counts.

    Args:
        predictions: CSV / Parquet with predicted (and, without ``truth``, true) coordinates.
        truth: CSV / Parquet benchmark file with ids and true coordinates, or None.
        name: the predictor's name in tables (default: the predictions file's stem).
        countries: fill the Natural Earth country / admin-1 of truth and guess that the files
            do not give (what the geocell profile scores); False leaves them ``""``.

    Raises:
        InputFileError, TableError: unreadable files, missing or ambiguous columns, duplicate or
            unknown ids (named with file and row).
        InvalidCoordinateError: a bad coordinate (file, row, line and column named); a
            :class:`geocell.errors.SwappedCoordinatesWarning` is issued for in-range columns that
            look swapped.
    """
    pred_path = Path(predictions)
    pframe = read_table(pred_path)
    notes: list[str] = []
    p_lat = _role_column(pframe, PRED_WORDS, LAT_NAMES, "predicted latitude", pred_path)
    p_lon = _role_column(pframe, PRED_WORDS, LON_NAMES, "predicted longitude", pred_path)
    if truth is not None and p_lat is None and p_lon is None:
        p_lat = _plain_column(pframe, LAT_NAMES, "latitude", pred_path)
        p_lon = _plain_column(pframe, LON_NAMES, "longitude", pred_path)
    if p_lat is None or p_lon is None:
        raise TableError(f"{pred_path}: no predicted {'latitude' if p_lat is None else 'longitude'} column; expected "
                         f"e.g. pred_lat, pred_lon (a name of {', '.join(LAT_NAMES + LON_NAMES)} with one of "
                         f"{', '.join(PRED_WORDS)}){' or lat, lon with --truth' if truth is None else ''}; found "
                         f"columns: {', '.join(map(str, pframe.columns))}")
    pred_lat, pred_lon = _coordinates(pframe, p_lat, p_lon, pred_path, warn=True)
    notes.append(f"predictions: {pred_path} ({len(pframe):,} rows), predicted coordinates from {p_lat!r}, {p_lon!r}")
    pred_country = _check_country_codes(_codes(pframe, "pred_country", pred_path), "pred_country", pred_path)
    pred_admin1 = _codes(pframe, "pred_admin1", pred_path)
    pred_id_col = _id_column(pframe, pred_path)

    true_levels: Optional[dict[str, np.ndarray]] = None
    if truth is None:
        t_lat = _role_column(pframe, TRUE_WORDS, LAT_NAMES, "true latitude", pred_path)
        t_lon = _role_column(pframe, TRUE_WORDS, LON_NAMES, "true longitude", pred_path)
        if t_lat is None or t_lon is None:
            raise TableError(f"{pred_path}: no true {'latitude' if t_lat is None else 'longitude'} column; expected "
                             f"e.g. true_lat, true_lon (or gt_lat, ...), or pass the benchmark file with --truth; "
                             f"found columns: {', '.join(map(str, pframe.columns))}")
        true_lat, true_lon = _coordinates(pframe, t_lat, t_lon, pred_path, warn=True)
        notes.append(f"true coordinates from {t_lat!r}, {t_lon!r} of the same file")
        tframe, index, in_file = pframe, np.arange(len(pframe)), len(pframe)
        ids = (pframe[pred_id_col].astype(str).to_numpy() if pred_id_col is not None
               else np.arange(len(pframe)).astype(str))
        source = str(pred_path)
    else:
        truth_path = Path(truth)
        tframe = read_table(truth_path)
        t_id = _truth_id_column(tframe, truth_path)
        t_lat = _plain_column(tframe, LAT_NAMES, "latitude", truth_path) or _role_column(
            tframe, TRUE_WORDS, LAT_NAMES, "true latitude", truth_path)
        t_lon = _plain_column(tframe, LON_NAMES, "longitude", truth_path) or _role_column(
            tframe, TRUE_WORDS, LON_NAMES, "true longitude", truth_path)
        if t_lat is None or t_lon is None:
            raise TableError(f"{truth_path}: no {'latitude' if t_lat is None else 'longitude'} column; expected one "
                             f"of {', '.join(LAT_NAMES if t_lat is None else LON_NAMES)} (any case); found columns: "
                             f"{', '.join(map(str, tframe.columns))}")
        all_lat, all_lon = _coordinates(tframe, t_lat, t_lon, truth_path, warn=True)
        if pred_id_col is None:
            raise TableError(f"{pred_path}: no id column to join with {truth_path}; expected one of "
                             f"{', '.join(ID_NAMES)} (any case)")
        true_ids = tframe[t_id].astype(str).str.strip().to_numpy(dtype=str)
        pred_ids = pframe[pred_id_col].astype(str).str.strip().to_numpy(dtype=str)
        index, rule = _join(pred_ids, true_ids, pred_path, truth_path)
        notes.append(f"truth: {truth_path} ({len(tframe):,} rows), id {t_id!r}, coordinates {t_lat!r}, {t_lon!r}; "
                     f"joined on {pred_id_col!r} by {rule}")
        true_lat, true_lon = all_lat[index], all_lon[index]
        ids, in_file, source = true_ids[index], len(tframe), str(truth_path)
        low = {str(c).strip().lower(): c for c in tframe.columns}
        areas = {level: tframe[low[col]].fillna("").astype(str).to_numpy(dtype=str)[index]
                 for col, level in OSV5M_AREA_COLUMNS.items() if col in low}
        if areas:
            true_levels = areas
            notes.append(f"true OSV-5M areas from {', '.join(c for c in OSV5M_AREA_COLUMNS if c in low)}")
    true_country = _check_country_codes(_codes(tframe, "true_country", pred_path) if truth is None else
                                         _codes(tframe, "adm0_a3", Path(str(truth))),
                                         "true_country" if truth is None else "adm0_a3",
                                         pred_path if truth is None else Path(str(truth)))
    true_admin1 = _codes(tframe, "true_admin1" if truth is None else "adm1_code", pred_path)
    if true_country is not None:
        true_country = true_country[index]
    if true_admin1 is not None:
        true_admin1 = true_admin1[index]
    n = len(pframe)
    from geocell.assign import get_assigner

    pred_from_file = (pred_country is not None, pred_admin1 is not None)
    need_true = countries and (true_country is None or true_admin1 is None)
    need_pred = countries and (pred_country is None or pred_admin1 is None)
    blank = np.full(n, "", dtype="<U1")
    assigner = get_assigner() if (need_true or need_pred) else None
    if need_true:
        a = assigner.assign(true_lat, true_lon)  # type: ignore[union-attr]
        true_country = a.country if true_country is None else true_country
        true_admin1 = a.admin1 if true_admin1 is None else true_admin1
    if need_pred:
        a = assigner.assign(pred_lat, pred_lon)  # type: ignore[union-attr]
        if pred_country is None:
            notes.append("predicted countries: the Natural Earth country of each predicted point")
        pred_country = a.country if pred_country is None else pred_country
        pred_admin1 = a.admin1 if pred_admin1 is None else pred_admin1
    as_str = lambda a: blank if a is None else np.asarray(a).astype(str)  # noqa: E731
    preds = Predictions(name=name or pred_path.stem, true_lat=true_lat, true_lon=true_lon, pred_lat=pred_lat,
                        pred_lon=pred_lon, true_country=as_str(true_country), pred_country=as_str(pred_country),
                        true_admin1=as_str(true_admin1), pred_admin1=as_str(pred_admin1), ids=np.asarray(ids))
    rows = RowCounts(source=source, in_file=in_file, selected=in_file, missing=in_file - n, unreadable=0, scored=n,
                     missing_what="without a prediction")
    decided = {"country": "pred_country column" if pred_from_file[0] else "natural_earth (guessed point)",
               "admin1": "pred_admin1 column" if pred_from_file[1] else "natural_earth (guessed point)"}
    return ScoringInputs(preds, true_levels, rows, tuple(notes), decided)


def _truth_id_column(frame: pd.DataFrame, path: Path) -> str:
    from geocell_engine.data.readers import detect_layout
    from geocell_engine.errors import ManifestError

    try:
        layout, cols = detect_layout(frame.columns)
        if cols.get("key") is not None:
            return cols["key"]
    except ManifestError:
        pass
    found = _id_column(frame, path)
    if found is None:
        raise TableError(f"{path}: no id column; expected one of {', '.join(ID_NAMES)} (any case) or a benchmark "
                         f"layout (IMG_ID / IMG_FILE / id); found columns: {', '.join(map(str, frame.columns))}")
    return found


def score_files(predictions: str | os.PathLike, truth: str | os.PathLike | None = None,
                profiles: Sequence[str] = ("geocell",), *, name: Optional[str] = None
                ) -> tuple[dict[str, EvalResult], ScoringInputs]:
    """Score a predictions file under each profile: ``({row label: EvalResult}, inputs)``.

    Row labels are the predictor's name, with ``[profile]`` appended when there are several.

    Example:
        >>> import os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> _ = open(os.path.join(d, "p.csv"), "w").write("true_lat,true_lon,pred_lat,pred_lon\\n0,0,0,1\\n")
        >>> results, _ = score_files(os.path.join(d, "p.csv"), profiles=["osv5m", "geoclip"])
        >>> [(k, round(r.median_km, 2)) for k, r in results.items()]
        [('p [osv5m]', 111.19), ('p [geoclip]', 111.32)]
    """
    from geocell.profiles import get_profile

    chosen = [get_profile(p).name for p in profiles] or ["geocell"]
    inputs = read_scoring_inputs(predictions, truth, name=name,
                                 countries=any(get_profile(p).admin == "natural_earth" for p in chosen))
    label = inputs.predictions.name
    results = {}
    for p in chosen:
        r = evaluate(inputs.predictions, profile=p, true_levels=inputs.true_levels)
        if get_profile(p).admin == "natural_earth":  # say how the guessed units were found
            r = replace(r, levels=tuple(replace(lv, method=inputs.decided.get(lv.level, lv.method)) for lv in r.levels))
        results[label if len(chosen) == 1 else f"{label} [{p}]"] = r
    return results, inputs


def score_clusters(inputs: ScoringInputs, clusters: Optional[str], predictions: str | os.PathLike,
                   truth: str | os.PathLike | None = None) -> tuple[Optional[np.ndarray], str]:
    """The resampling clusters of the scored rows, for ``score --clusters``: ``(clusters, what)``.

    Args:
        inputs: what :func:`read_scoring_inputs` read from ``predictions`` (and ``truth``).
        clusters: None (rows are resampled: ``(None, "samples")``); a bluemarble version name
            (``"bluemarble-v1"``, ``"bluemarble-v2"``): the held-out region of each row's id;
            or a column name (exact, else any case) of the predictions table, or else of the
            truth table (joined by the same ids), holding each row's cluster.

    Raises:
        TableError: no such column, or a row whose cluster is empty (named with file and row).
        SplitError: a bluemarble id that is not a validation / test point.
    """
    if clusters is None:
        return None, "samples"
    from geocell_engine.data.bluemarble import BLUEMARBLE_VERSIONS

    if clusters in BLUEMARBLE_VERSIONS:
        from geocell_engine.data.regions import dataset_clusters

        return dataset_clusters(clusters, inputs.predictions.ids), f"held-out regions of {clusters}"

    def find(frame: pd.DataFrame) -> Optional[str]:
        if clusters in frame.columns:
            return clusters
        low = [c for c in frame.columns if str(c).strip().lower() == clusters.strip().lower()]
        return low[0] if len(low) == 1 else None

    pred_path = Path(predictions)
    pframe = read_table(pred_path)
    col = find(pframe)
    if col is not None:
        values, path = pframe[col], pred_path
        if len(values) != len(inputs.predictions):
            raise TableError(f"{pred_path}: {len(values)} rows but {len(inputs.predictions)} were scored")
    elif truth is not None and find(read_table(Path(truth))) is not None:
        path = Path(truth)
        tframe = read_table(path)
        col = find(tframe)
        ids = tframe[_truth_id_column(tframe, path)].astype(str).str.strip()
        lookup = dict(zip(ids.tolist(), tframe[col].tolist()))
        values = pd.Series([lookup.get(str(i)) for i in inputs.predictions.ids], dtype=object)
    else:
        where = f"{pred_path}" + (f" or {truth}" if truth is not None else "")
        raise TableError(f"--clusters {clusters!r}: no such column in {where} and not a bluemarble version "
                         f"({', '.join(BLUEMARBLE_VERSIONS)}); columns of {pred_path}: "
                         f"{', '.join(map(str, pframe.columns))}")
    text = values.astype(object).where(values.notna(), "").astype(str).str.strip().to_numpy(dtype=str)
    empty = np.flatnonzero(text == "")
    if empty.size:
        i = int(empty[0])
        raise TableError(f"{path}: column {col!r} has no cluster for row {i} of the scored rows "
                         f"({empty.size} such rows); every row needs one")
    return text, f"clusters ({col})"
