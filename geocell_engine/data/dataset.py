"""Evaluation and training splits as the engine sees them, and batches of image tensors.

A :class:`GeoSplit` is a set of samples with either in-memory images (bluemarble patches,
``(N, H, W, 3)`` uint8) or image paths (a user's manifest), plus coordinates and labels. Batches
are uint8 tensors ``(B, 3, S, S)``; normalisation and augmentation run on whole batches in the
training loop (vectorised, cheap on a CPU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, Optional, Union

import numpy as np

from geocell_engine.data.accounting import BadImage, ImageAccount
from geocell_engine.errors import DataError

__all__ = ["DatasetInfo", "GeoSplit", "DataError", "load_splits", "load_eval_split", "EvalData", "iterate_batches", "load_image", "BadImageLog",
           "ImageAccount", "BadImage", "screen_split", "require_usable", "OnBadImage"]

#: What to do with a manifest row whose image is missing or cannot be decoded: raise a
#: :class:`DataError` naming the row (``"fail"``), or leave it out and record it (``"skip"``).
OnBadImage = Literal["skip", "fail"]
#: The flag that lets a user choose ``"skip"``; every "fail" message names it.
_SKIP_HINT = ("pass --on-bad-image skip (to `train` or `evaluate`) to leave such images out, count them in the "
              "report and list them in bad_images.csv")


@dataclass(frozen=True)
class DatasetInfo:
    """Identity of a training data set, stored in checkpoints and reports.

    Attributes:
        name, version: e.g. ``"manifest.csv"``, ``"manifest"``.
        sha256: file role -> hex digest (``"manifest"``, ``"split"``, ...).
        images: the images left out so far (missing files found by :func:`load_splits`; screening
            and batch decoding add unreadable ones). Not part of the identity (not compared).
    """

    name: str
    version: str
    sha256: Mapping[str, str]
    images: ImageAccount = field(default_factory=ImageAccount, compare=False, repr=False)
    split_rule: str = field(default="", compare=False)
    left_out: tuple[tuple[str, str, str], ...] = field(default=(), compare=False, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: name, version, sha256, ``images`` (:meth:`ImageAccount.as_dict`), the split
        rule, and how many photos of a folder were left out (no GPS, ...)."""
        return {"name": self.name, "version": self.version, "sha256": dict(self.sha256),
                "images": self.images.as_dict(), "split_rule": self.split_rule, "left_out": len(self.left_out)}


@dataclass(frozen=True, eq=False)
class GeoSplit:
    """N samples of one split.

    Attributes:
        name: "train", "val", "test" (or "test-shadedrelief", ...).
        lat, lon: ``(N,)`` float64 degrees.
        country, admin1: ``(N,)`` str ``adm0_a3`` / ``adm1_code`` ("" where unknown).
        ids: ``(N,)`` str sample ids.
        images: ``(N, H, W, 3)`` uint8 (memory map or array), or None when ``paths`` is set.
        paths: ``(N,)`` image files, or None.
        row_names: ``(N,)`` how messages name each sample's source line, or None.
        shards: where the images are when they are in WebDataset shards
            (:class:`geocell_engine.data.shards.ShardSource`), or None.
        source_index: ``(N,)`` each sample's position in the split as the shards were written
            (shard-backed splits; kept through :meth:`take`), or None.
    """

    name: str
    lat: np.ndarray
    lon: np.ndarray
    country: np.ndarray
    admin1: np.ndarray
    ids: np.ndarray
    images: Optional[np.ndarray] = None
    paths: Optional[np.ndarray] = None
    row_names: Optional[np.ndarray] = None
    shards: Any = None
    source_index: Optional[np.ndarray] = None

    def __len__(self) -> int:
        return int(self.lat.size)

    def take(self, index: np.ndarray) -> "GeoSplit":
        """The samples at ``index`` (sorted index keeps memory-map reads sequential)."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        images = None if self.images is None else np.asarray(self.images[index])
        return replace(self, lat=self.lat[index], lon=self.lon[index], country=self.country[index],
                       admin1=self.admin1[index], ids=self.ids[index], images=images,
                       paths=pick(self.paths), row_names=pick(self.row_names),
                       source_index=pick(self.source_index))

    def subsample(self, n: Optional[int], seed: int) -> "GeoSplit":
        """At most ``n`` samples, drawn without replacement with ``seed`` (all when None)."""
        if n is None or n >= len(self):
            return self
        index = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return self.take(index)

    def only_countries(self, countries: Iterable[str]) -> "GeoSplit":
        """The samples whose ``country`` is one of ``countries`` (order kept)."""
        keep = np.isin(self.country, np.asarray(sorted(set(countries)), dtype=self.country.dtype))
        return self if keep.all() else self.take(np.flatnonzero(keep))

    def cap_per_country(self, n: Optional[int], seed: int) -> "GeoSplit":
        """At most ``n`` samples of each country, drawn without replacement with ``seed`` (all when None).

        The draw is nested: with the same seed, the samples kept under a cap are a subset of those
        kept under any larger cap, so a data-size study's rows differ only in the added samples.
        """
        if n is None:
            return self
        order = np.random.default_rng(seed).permutation(len(self))
        shuffled = self.country[order]
        grouped = np.argsort(shuffled, kind="stable")  # by country, in shuffled order within each
        names = shuffled[grouped]
        rank = np.arange(len(self)) - np.searchsorted(names, names, side="left")  # 0, 1, ... per country
        return self.take(np.sort(order[grouped[rank < n]]))


#: The bundled data sets ``load_splits`` knows by name (the frozen bluemarble versions).
BLUEMARBLE_NAMES: tuple[str, ...] = ("bluemarble-v1", "bluemarble-v2")


def _bluemarble(split: str, imagery: str = "bmng", version: str = "bluemarble-v1") -> tuple[GeoSplit, DatasetInfo]:
    from geocell_engine.data.bluemarble import bluemarble_spec, load_bluemarble

    spec = bluemarble_spec(version)
    data = load_bluemarble(split, imagery=imagery, spec=spec)  # type: ignore[arg-type]
    info = DatasetInfo(spec.name, str(data.info.get("version", spec.name)), dict(data.sha256))
    name = split if imagery == "bmng" else f"{split}-{imagery}"
    return GeoSplit(name=name, lat=data.lat, lon=data.lon, country=data.adm0_a3.astype(str),
                    admin1=data.adm1_code.astype(str), ids=data.ids.astype(str), images=data.images), info


def _split_from_file(split_file: str, n_rows: int, path: Path) -> np.ndarray:
    """Split names of every row of a manifest, from an ``id,split`` file written for it
    (rows in the manifest's order, as :func:`geocell_engine.data.splits.split_manifest` writes them)."""
    from geocell_engine.data.splits import read_split_manifest

    _, names = read_split_manifest(split_file)
    if len(names) != n_rows:
        raise DataError(f"{split_file}: {len(names)} rows, but {path} has {n_rows}; "
                        "write the split for this manifest with `cli.py data split`")
    return np.asarray(names, dtype=object)


#: Orders of region seeds :func:`default_split` tries before it gives up (small data sets with few
#: places can run out of eligible seeds in one order and not in another).
_SPATIAL_ATTEMPTS = 5


def default_split(lat: np.ndarray, lon: np.ndarray, country: Optional[np.ndarray], seed: int,
                  method: str = "spatial") -> tuple[np.ndarray, str]:
    """The split of samples that come without one: ``(names (N,) of train / val / test / "",
    the rule in words)``; ``""`` marks a sample left unused.

    ``"spatial"`` (the default): :func:`geocell_engine.data.splits.spatial_split` with 10% each
    for validation and test in held-out regions at least
    :data:`geocell.constants.SPATIAL_SPLIT_BUFFER_KM` from every training point (samples inside
    the buffers are left unused and counted), countries kept in training. ``"random"``: a seeded
    80 / 10 / 10 draw. Samples without coordinates (NaN) are always split at random.

    Raises:
        DataError: the spatial split cannot place validation or test regions (too few places);
            the message says to pass ``--split-method random``.
    """
    from geocell.constants import SPATIAL_SPLIT_BUFFER_KM
    from geocell_engine.data.splits import SplitError, spatial_split

    n = int(np.asarray(lat).size)
    has_xy = np.isfinite(lat) & np.isfinite(lon)
    if method == "random" or not has_xy.all():
        u = np.random.default_rng(seed).random(n)
        names = np.where(u < 0.8, "train", np.where(u < 0.9, "val", "test")).astype(object)
        why = "" if method == "random" else " (the samples have no coordinates)"
        return names, f"random 80/10/10, seed {seed}{why}"
    if method != "spatial":
        raise DataError(f"split method {method!r}; expected 'spatial' or 'random'")
    labels = None
    if country is not None:  # the keep-every-country rule; a point off every coast counts for the nearest one
        labels = np.asarray(country).astype(str).copy()
        unknown = labels == ""
        if unknown.any():
            from geocell.assign import assign_country

            labels[unknown] = assign_country(np.asarray(lat)[unknown], np.asarray(lon)[unknown],
                                             max_distance_km=math.inf)
    rng = np.random.default_rng(seed)
    for attempt in range(_SPATIAL_ATTEMPTS):  # region seeds are tried in input order: a few orders
        order = rng.permutation(n)
        try:
            result = spatial_split(np.asarray(lat)[order], np.asarray(lon)[order], fractions=(0.8, 0.1, 0.1),
                                   buffer_km=SPATIAL_SPLIT_BUFFER_KM,
                                   labels=None if labels is None else labels[order], seed=seed)
            break
        except SplitError as exc:
            if attempt == _SPATIAL_ATTEMPTS - 1:
                raise DataError(f"the default spatial split failed with {_SPATIAL_ATTEMPTS} orders of region seeds "
                                f"({exc}); give a split column, a --split-file, or --split-method random") from exc
    names = np.empty(n, dtype=object)
    names[order] = result.split
    unused = int((names == "").sum())
    rule = (f"spatial, seed {seed}: validation and test regions at least {SPATIAL_SPLIT_BUFFER_KM:.0f} km from "
            f"every training sample; {unused:,} sample{'s' if unused != 1 else ''} inside the buffers left unused")
    return names, rule


def _split_names(path: Path, table, n_rows: int, seed: int, split_file: Optional[str],
                 method: str = "spatial") -> tuple[np.ndarray, str]:
    """``((n_rows,) train / val / test / "" for every data row of the manifest, the rule)``, rows
    with a missing image included (so a missing file never moves another row to another split)."""
    from geocell.tables import read_table
    from geocell_engine.data.samples import source_row_name

    frame = table.frame
    split_col = next((c for c in frame.columns if str(c).lower() == "split"), None)
    if split_file is not None:
        split, where = _split_from_file(split_file, n_rows, path), lambda r: f"{split_file}: row {r}"
        rule = f"from {split_file}"
    elif split_col is not None:
        if len(frame) == n_rows:
            column = frame[split_col]
        else:  # the table lacks the rows whose image is missing: their split is in the file
            raw = read_table(path)
            column = raw[next(c for c in raw.columns if str(c).lower() == "split")]
        split = column.astype(str).str.lower().to_numpy(dtype=object)
        where = lambda r: source_row_name(path, r)  # noqa: E731
        rule = f"the {split_col!r} column"
    else:  # every row, those with a missing image too: their coordinates are in the file
        from geocell_engine.data.readers import read_manifest

        everything = read_manifest(path, missing="ignore")
        country = everything.frame["adm0_a3"].fillna("").astype(str).to_numpy() if "adm0_a3" in everything.frame else None
        if country is None:
            from geocell.assign import get_assigner

            country = np.asarray(get_assigner().assign(everything.lat, everything.lon).country).astype(str)
        return default_split(everything.lat, everything.lon, country, seed, method)
    bad = ~np.isin(split, ["train", "val", "test"])
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where(r)}: split {split[r]!r}; expected train, val or test"
                        f" ({int(bad.sum())} such row{'s' if bad.sum() > 1 else ''} in all)")
    return split, rule


def _missing_images(path: Path, table, split: np.ndarray, on_bad_image: OnBadImage, account: ImageAccount) -> None:
    """Raise for the rows whose image file does not exist (``"fail"``), or record them under
    their split (``"skip"``)."""
    from geocell_engine.data.samples import source_row_name

    read = next((r for r in table.reports if r.step == "read"), None)
    if read is None or len(read.dropped) == 0:
        return
    gone = read.dropped
    gone = gone[split[gone.source_row.to_numpy()] != ""]  # rows the split leaves unused are not needed
    if len(gone) == 0:
        return
    if on_bad_image == "fail":
        first = gone.iloc[0]
        n = len(gone)
        raise DataError(f"{source_row_name(path, int(first.source_row))}: image file {first.path} not found"
                        f" ({n} missing image file{'s' if n > 1 else ''} in all; {_SKIP_HINT})")
    for r in gone.itertuples(index=False):
        account.add(str(split[int(r.source_row)]), source_row_name(path, int(r.source_row)), r.path, "missing",
                    r.detail)


def _read_samples(path: Path):
    """The manifest's table (rows with a missing image dropped and reported) and its row count."""
    from geocell_engine.data.readers import read_manifest

    table = read_manifest(path, missing="drop")  # the dropped rows are in table.reports: raised or recorded below
    if not table.has_coordinates:
        raise DataError(f"{path}: has no coordinates; the training tasks need lat/lon for every image")
    read = next((r for r in table.reports if r.step == "read"), None)
    return table, (read.n_in if read is not None else len(table))


class _Samples:
    """Per-row arrays of a manifest's table (labels assigned once), and GeoSplits cut from them."""

    def __init__(self, table):
        from geocell.assign import get_assigner

        frame = table.frame
        self.lat, self.lon = table.lat, table.lon
        if not table.has_coordinates:  # an ImageFolder tree: the folder names are the labels
            self.country = frame["adm0_a3"].fillna("").astype(str).to_numpy()
            self.admin1 = np.full(len(frame), "", dtype=object).astype(str)
        else:
            labels = get_assigner().assign(self.lat, self.lon)
            country = frame["adm0_a3"].fillna("").astype(str).to_numpy() if "adm0_a3" in frame else labels.country
            self.country = np.asarray(np.where(country == "", labels.country, country)).astype(str)
            self.admin1 = np.asarray(labels.admin1).astype(str)
        self.source_row = frame["source_row"].to_numpy()
        self.rows = np.array([table.row_name(i) for i in range(len(frame))], dtype=object)
        self.ids = frame["id"].astype(str).to_numpy() if "id" in frame else np.asarray(table.paths, dtype=str)
        self.paths = np.asarray(table.paths, dtype=object)

    def split(self, name: str, sel: np.ndarray) -> GeoSplit:
        return GeoSplit(name=name, lat=self.lat[sel], lon=self.lon[sel], country=self.country[sel],
                        admin1=self.admin1[sel], ids=self.ids[sel], paths=self.paths[sel], row_names=self.rows[sel])


def _info(path: Path, split_file: Optional[str], account: ImageAccount, rule: str = "") -> DatasetInfo:
    from geocell_engine.data.samples import sha256_file

    sha = {"manifest": sha256_file(path)}
    if split_file is not None:
        sha["split"] = sha256_file(split_file)
    return DatasetInfo(name=path.name, version="manifest", sha256=sha, images=account, split_rule=rule)


def _manifest_splits(path: Path, seed: int, split_file: Optional[str] = None,
                     on_bad_image: OnBadImage = "fail", split_method: str = "spatial"
                     ) -> tuple[dict[str, GeoSplit], DatasetInfo]:
    table, n_rows = _read_samples(path)
    split_all, rule = _split_names(path, table, n_rows, seed, split_file, split_method)
    account = ImageAccount()
    _missing_images(path, table, split_all, on_bad_image, account)

    samples = _Samples(table)
    split = split_all[samples.source_row]
    out = {}
    for name in ("train", "val", "test"):
        if not (split_all == name).any():
            raise DataError(f"{path}: the {name} split is empty; give a 'split' column with train/val/test rows")
        out[name] = samples.split(name, np.flatnonzero(split == name))
        require_usable(out[name], account)
    return out, _info(path, split_file, account, rule)


def _folder_splits(root: Path, seed: int, on_bad_image: OnBadImage, split_method: str
                   ) -> tuple[dict[str, GeoSplit], DatasetInfo]:
    """A folder of geotagged photos: coordinates from EXIF GPS, labels from ``geocell.assign``,
    the default split; photos without (valid) GPS or that cannot be opened are left out and listed
    in ``info.left_out``."""
    from geocell_engine.data.readers import read_exif_folder, read_image_folder

    tree = _is_country_tree(root)
    table = read_image_folder(root) if tree else read_exif_folder(root)
    read = next((r for r in table.reports if r.step == "read"), None)
    left_out: tuple[tuple[str, str, str], ...] = ()
    if read is not None and len(read.dropped):
        left_out = tuple((str(r.path), str(r.reason), str(r.detail)) for r in read.dropped.itertuples(index=False))
    samples = _Samples(table)
    names, rule = default_split(samples.lat, samples.lon, samples.country, seed, split_method)
    out, account = {}, ImageAccount()
    for name in ("train", "val", "test"):
        if not (names == name).any():
            raise DataError(f"{root}: the {name} split is empty ({rule}); add photos or pass --split-method random")
        out[name] = samples.split(name, np.flatnonzero(names == name))
    sha = {"listing": _listing_sha256(table.frame["path"].tolist())}
    return out, DatasetInfo(name=root.name, version="country folders" if tree else "photo folder", sha256=sha,
                            images=account, split_rule=rule, left_out=left_out)


def _shard_splits(folder: Path) -> tuple[dict[str, GeoSplit], DatasetInfo]:
    """The splits of a shard folder (:mod:`geocell_engine.data.shards`): labels from its
    ``samples.parquet``, images streamed from its shards."""
    import pandas as pd

    from geocell_engine.data.shards import SAMPLES_FILE, ShardSource, read_shard_index

    index = read_shard_index(folder)
    frame = pd.read_parquet(folder / SAMPLES_FILE)
    out = {}
    for name in ("train", "val", "test"):
        rows = frame[frame["split"] == name].sort_values("index")
        if rows.empty:
            raise DataError(f"{folder}: the shards hold no {name} sample")
        files = tuple(dict.fromkeys(rows.sort_values("key")["shard"].tolist()))
        out[name] = GeoSplit(name=name, lat=rows["lat"].to_numpy(np.float64), lon=rows["lon"].to_numpy(np.float64),
                             country=rows["country"].fillna("").astype(str).to_numpy(),
                             admin1=rows["admin1"].fillna("").astype(str).to_numpy(),
                             ids=rows["id"].astype(str).to_numpy(), shards=ShardSource(str(folder), name, files),
                             source_index=rows["index"].to_numpy(np.int64))
    from geocell_engine.data.samples import sha256_file

    sha = {"index": sha256_file(folder / "index.json")}
    return out, DatasetInfo(name=folder.name, version="shards", sha256=sha, split_rule=str(index.get("split_rule", "")))


def _is_country_tree(root: Path) -> bool:
    """True for an ImageFolder tree: no photo at the top, and a sub-folder named after a country
    (then every sub-folder must be one: :func:`read_image_folder` refuses the others by name)."""
    import os

    from geocell_engine.data.countries import normalise_country
    from geocell_engine.data.images import is_image_file

    entries = [e for e in os.scandir(root) if not e.name.startswith(".")]
    if any(e.is_file() and is_image_file(e.name) for e in entries):
        return False
    for entry in entries:
        if entry.is_dir():
            try:
                normalise_country(entry.name, where=str(root))
                return True
            except (KeyError, ValueError):
                continue
    return False


def _listing_sha256(paths: list[str]) -> str:
    """sha256 of a folder's photo list (path, size, modification time): the folder's identity."""
    import hashlib
    import os

    h = hashlib.sha256()
    for path in paths:
        st = os.stat(path)
        h.update(f"{path}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class EvalData:
    """The samples one evaluation scores, and what happened to the others.

    Attributes:
        split: the samples whose image file exists (screen them with :func:`screen_split`).
        info: data set identity; ``info.images`` records the missing images (``"skip"``).
        split_name: the split evaluated, or ``"all"`` for a file without a split column.
        in_file: data rows of the manifest (or samples of the bluemarble split).
        selected: rows of that split (``in_file`` for ``"all"``), missing images included.
    """

    split: GeoSplit
    info: DatasetInfo
    split_name: str
    in_file: int
    selected: int


def load_eval_split(data: str, split: Optional[str] = None, *, seed: int = 0, split_file: Optional[str] = None,
                    on_bad_image: OnBadImage = "fail") -> EvalData:
    """The samples to evaluate: a whole manifest, or one of its splits.

    A manifest without a ``split`` column (and no ``split_file``) is a benchmark file
    (Im2GPS3k, YFCC4k, an OSV-5M test CSV): every row is evaluated, as ``"all"``, and asking for
    a ``split`` is an error (the file has none). With a split column or file, ``split`` selects
    one (default ``"test"``); the other splits may be empty (an all-test file is fine).
    ``"bluemarble-v1"`` has train / val / test (default ``"test"``). Rows whose image file does not
    exist raise (``on_bad_image="fail"``) or are recorded in ``info.images`` under the split
    name (``"skip"``).

    Raises:
        DataError: a split asked of a file without one, an unknown split name, a bad split
            value, no usable sample, or (``"fail"``) a missing image (naming its row).
    """
    if on_bad_image not in ("skip", "fail"):
        raise DataError(f"on_bad_image {on_bad_image!r}; expected 'skip' or 'fail'")
    if split is not None and split not in ("train", "val", "test"):
        raise DataError(f"unknown split {split!r}; expected train, val or test")
    path = Path(data)
    if data == "bluemarble-v1" or path.suffix.lower() not in (".csv", ".parquet", ".tsv", ".gz", ".pq"):
        splits, info = load_splits(data, seed=seed, split_file=split_file, on_bad_image=on_bad_image)
        name = split or "test"
        return EvalData(splits[name], info, name, len(splits[name]), len(splits[name]))
    if not path.is_file():
        from geocell.errors import InputFileError

        raise InputFileError(f"{path}: no such manifest")
    table, n_rows = _read_samples(path)
    has_split = split_file is not None or any(str(c).lower() == "split" for c in table.frame.columns)
    if not has_split:
        if split is not None:
            raise DataError(f"{path} has no split column (and no split file was given), so all {n_rows:,} rows are "
                            f"evaluated; leave out --split {split}, or add a 'split' column")
        name, split_all = "all", np.full(n_rows, "all", dtype=object)
    else:
        name = split or "test"
        split_all, _ = _split_names(path, table, n_rows, seed, split_file)
    account = ImageAccount()
    _missing_images(path, table, split_all, on_bad_image, account)
    samples = _Samples(table)
    chosen = samples.split(name, np.flatnonzero(split_all[samples.source_row] == name))
    selected = int((split_all == name).sum())
    if selected == 0:
        raise DataError(f"{path}: the {name} split is empty; the split column has "
                        f"{', '.join(sorted(set(split_all.tolist())))}")
    require_usable(chosen, account)
    return EvalData(chosen, _info(path, split_file, account), name, n_rows, selected)


def load_splits(data: str, seed: int = 0, split_file: Optional[str] = None,
                on_bad_image: OnBadImage = "fail", split_method: str = "spatial"
                ) -> tuple[dict[str, GeoSplit], DatasetInfo]:
    """Train / val / test splits of a data set: ``"bluemarble-v1"``, ``"bluemarble-v2"``, a
    manifest path, or a folder of photos with GPS in their EXIF.

    A manifest's split comes from ``split_file`` (an ``id,split`` file written by
    ``cli.py data split``), else from its ``split`` column (train / val / test), else from
    :func:`default_split` with ``split_method`` (spatial by default; ``info.split_rule`` says
    which rule was used). A folder is split by :func:`default_split`; its photos without GPS
    are listed in ``info.left_out``. Every row whose image file does not exist raises
    (``on_bad_image="fail"``) or is left out and recorded in ``info.images`` under its split
    (``"skip"``); files that exist but cannot be decoded are found later by
    :func:`screen_split` / :func:`iterate_batches`.

    Returns:
        ``({"train": GeoSplit, "val": ..., "test": ...}, DatasetInfo)``; ``info.images`` is the
        :class:`ImageAccount` to pass on to :func:`screen_split`, :func:`iterate_batches` and
        :func:`require_usable` (empty for bluemarble, whose patches are in memory).

    Raises:
        DataError: unknown data set name, a manifest without coordinates, with a bad split value,
            an empty split, a split whose images are all missing, or (``"fail"``) a missing image
            (naming its row and line, the path, and how many are missing in all).
    """
    if on_bad_image not in ("skip", "fail"):
        raise DataError(f"on_bad_image {on_bad_image!r}; expected 'skip' or 'fail'")
    if data in BLUEMARBLE_NAMES:
        splits, info = {}, None
        for name in ("train", "val", "test"):
            splits[name], info = _bluemarble(name, version=data)
        return splits, info  # type: ignore[return-value]
    path = Path(data)
    if path.suffix.lower() in (".csv", ".parquet", ".tsv", ".gz", ".pq"):
        if not path.is_file():
            from geocell.errors import InputFileError

            raise InputFileError(f"{path}: no such manifest")
        return _manifest_splits(path, seed, split_file, on_bad_image, split_method)
    if path.is_dir() and (path / "index.json").is_file():
        if split_file is not None:
            raise DataError(f"--split-file is for a manifest; the shards in {path} were split when they were written "
                            "(cli.py data shards --split-file)")
        return _shard_splits(path)
    if path.is_dir():
        if split_file is not None:
            raise DataError(f"--split-file is for a manifest; {path} is a folder (its split is made by "
                            "--split-method)")
        return _folder_splits(path, seed, on_bad_image, split_method)
    raise DataError(f"unknown data set {data!r}; expected {' or '.join(map(repr, BLUEMARBLE_NAMES))}, a manifest "
                    "file (.csv / .parquet) or a folder of geotagged photos")


def robustness_split(data: str) -> Optional[GeoSplit]:
    """The test split rendered from another map (bluemarble only), for a robustness check."""
    if data not in BLUEMARBLE_NAMES:
        return None
    return _bluemarble("test", imagery="shadedrelief", version=data)[0]


@dataclass
class BadImageLog:
    """Messages about images left out by :func:`iterate_batches` with ``on_bad_image="skip"``, one
    per image (the same image in a later epoch is not listed again). Kept for callers that want
    plain lines; an :class:`ImageAccount` passed as ``bad_log`` records the same per split."""

    rows: list[str] = field(default_factory=list)
    _seen: set[str] = field(default_factory=set, init=False, repr=False, compare=False)

    def add(self, message: str) -> None:
        if message not in self._seen:
            self._seen.add(message)
            self.rows.append(message)

    def __len__(self) -> int:
        return len(self.rows)


#: Exceptions that mean "this image cannot be used" (PIL raises OSError / ValueError / SyntaxError
#: for bad files; InputFileError is a FileNotFoundError, CorruptImageError a ValueError).
_BAD_IMAGE_ERRORS = (OSError, ValueError, SyntaxError)


def _bad_image(split: GeoSplit, i: int, exc: BaseException) -> BadImage:
    """The record of sample ``i`` of a file-backed split that failed to load with ``exc``."""
    return bad_image_record(split.name, split.paths, split.row_names, i, exc)


def bad_image_record(split_name: str, paths: Any, row_names: Any, i: int, exc: BaseException) -> BadImage:
    """The record of image ``i`` (``paths[i]``, named ``row_names[i]`` or by its path) that failed
    to load with ``exc``: missing for a FileNotFoundError, unreadable otherwise."""
    path = str(paths[i])
    row = str(row_names[i]) if row_names is not None else path
    detail = str(exc)
    if detail.startswith(path + ": "):  # open_rgb names the file first; the record names it already
        detail = detail[len(path) + 2:]
    problem = "missing" if isinstance(exc, FileNotFoundError) else "unreadable"
    return BadImage(split_name, row, path, problem, detail)


def load_image(path: str, size: int) -> np.ndarray:
    """An image file -> ``(size, size, 3)`` uint8: decoded by :func:`geocell_engine.data.images.open_rgb`
    (EXIF orientation, RGB, JPEG ``draft``, shorter side shrunk to ``size``), enlarged if it was
    smaller, then centre-cropped.

    Raises:
        geocell.errors.InputFileError, geocell_engine.errors.CorruptImageError: missing or bad file.
    """
    from PIL import Image

    from geocell_engine.data.images import open_rgb

    img = open_rgb(path, short_side=size)
    if min(img.size) < size:  # open_rgb never enlarges
        scale = size / min(img.size)
        img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    w, h = img.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _resize_array(images: np.ndarray, size) -> Any:
    """``(B, H0, W0, 3)`` uint8 -> ``(B, 3, H, W)`` uint8 tensor; ``size`` as :func:`image_hw` takes it."""
    import torch
    import torch.nn.functional as F

    from geocell_engine.data.transforms import image_hw

    h, w = image_hw(size)
    batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
    if batch.shape[-2] != h or batch.shape[-1] != w:
        batch = F.interpolate(batch.float(), size=(h, w), mode="bilinear", antialias=True,
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return batch


def _square_decoder(image_size) -> Callable[[str], np.ndarray]:
    """The default file decoder: :func:`load_image` (square sizes) or the photo evaluation
    transform with its defaults (other shapes), ``(3, H, W)`` uint8 out."""
    from geocell_engine.data.transforms import EvalDecoder, PhotoTransformSettings, image_hw

    h, w = image_hw(image_size)
    if h == w:
        return lambda path: load_image(path, h).transpose(2, 0, 1)
    return EvalDecoder(PhotoTransformSettings(h, w))


def _record_bad(bad_log: Union[BadImageLog, ImageAccount, None], record: BadImage) -> None:
    if isinstance(bad_log, ImageAccount):
        bad_log.add(record.split, record.row, record.path, record.problem, record.detail)
    elif bad_log is not None:
        bad_log.add(record.message())


def iterate_batches(
    split: GeoSplit,
    index: np.ndarray,
    batch_size: int,
    image_size: Union[int, str, tuple[int, int]],
    on_bad_image: OnBadImage = "fail",
    bad_log: Union[BadImageLog, ImageAccount, None] = None,
    decode: Optional[Callable[[str], np.ndarray]] = None,
) -> Iterator[tuple[Any, np.ndarray]]:
    """Yield ``(images uint8 (B, 3, H, W) tensor, sample indices (B,))`` over ``index`` in order.

    Args:
        split: in-memory or file-backed samples.
        index: ``(M,)`` int sample indices into ``split``, in the order wanted.
        batch_size: B, at most; a batch is smaller by the images left out.
        image_size: a side S (H = W = S), ``"WxH"`` or ``(H, W)``, px.
        on_bad_image: an image from a path that cannot be read raises :class:`DataError` naming
            its manifest line and file (``"fail"``), or is left out of its batch (``"skip"``);
            a batch whose images are all bad is not yielded at all.
        bad_log: where ``"skip"`` records what it left out: an :class:`ImageAccount` (under
            ``split.name``) or a :class:`BadImageLog` (one line per image); None records nothing.
        decode: an image file -> ``(3, H, W)`` uint8 (e.g.
            :class:`geocell_engine.data.transforms.EvalDecoder`); default :func:`load_image`.
    """
    import torch

    if decode is None and split.images is None:
        decode = _square_decoder(image_size)
    if split.shards is not None:
        yield from _shard_batches(split, index, batch_size, decode)
        return

    for start in range(0, len(index), batch_size):
        idx = np.asarray(index[start:start + batch_size])
        if split.images is not None:
            order = np.argsort(idx, kind="stable")
            images = np.empty((idx.size,) + split.images.shape[1:], dtype=np.uint8)
            images[order] = split.images[idx[order]]  # sorted reads from the memory map
            yield _resize_array(images, image_size), idx
            continue
        arrays, kept = [], []
        for i in idx:
            try:
                arrays.append(decode(split.paths[i]))  # type: ignore[misc]
                kept.append(i)
            except _BAD_IMAGE_ERRORS as exc:
                record = _bad_image(split, int(i), exc)
                if on_bad_image == "fail":
                    raise DataError(f"{record.message()}; {_SKIP_HINT}") from exc
                _record_bad(bad_log, record)
        if kept:
            yield torch.from_numpy(np.stack(arrays)), np.asarray(kept)


def _shard_batches(split: GeoSplit, index: np.ndarray, batch_size: int, decode) -> Iterator[tuple[Any, np.ndarray]]:
    """Batches of a shard-backed split, streamed in shard order; ``index`` must be increasing (the
    order of the split)."""
    import torch

    from geocell_engine.data.shards import stream_split

    index = np.asarray(index, dtype=np.int64)
    if index.size > 1 and np.any(np.diff(index) <= 0):
        raise DataError(f"split {split.name!r} is in shards: its samples can only be read in order")
    position = {int(o): int(i) for i, o in zip(index, split.source_index[index])}
    arrays, kept = [], []
    for pixels, original in stream_split(split.shards, decode, wanted=split.source_index[index]):
        arrays.append(pixels)
        kept.append(position[original])
        if len(kept) == batch_size:
            yield torch.from_numpy(np.stack(arrays)), np.asarray(kept)
            arrays, kept = [], []
    if kept:
        yield torch.from_numpy(np.stack(arrays)), np.asarray(kept)


def _try_load(path: str, decode: Callable[[str], np.ndarray]) -> Optional[BaseException]:
    """None if ``decode(path)`` succeeds, else the exception it raised."""
    try:
        decode(path)
    except _BAD_IMAGE_ERRORS as exc:
        return exc
    return None


def screen_split(split: GeoSplit, image_size: Union[int, str, tuple[int, int]], on_bad_image: OnBadImage,
                 account: Optional[ImageAccount], threads: int = 4,
                 decode: Optional[Callable[[str], np.ndarray]] = None) -> GeoSplit:
    """The samples of ``split`` whose image can be decoded, each image decoded once.

    Call it on the evaluation splits before anything is scored, so that the model and every
    baseline see the same samples (and the report's counts are the counts scored). Decoding is
    the same as the batches' (:func:`load_image` at ``image_size``), on ``threads`` threads (PIL
    releases the GIL while it decodes); the decoded pixels are not kept.

    Args:
        split: N samples; an in-memory split (bluemarble) is returned as it is.
        image_size: the size the images will be decoded at (as :func:`iterate_batches` takes it).
        decode: the decoder the batches will use (default :func:`load_image`).
        on_bad_image: ``"fail"`` raises on the first bad image in split order; ``"skip"`` leaves
            bad images out and records them in ``account`` under ``split.name``.
        account: where ``"skip"`` records (None: nowhere).
        threads: decoding threads (>= 1).

    Returns:
        A GeoSplit of the N' <= N readable samples, in the original order (``split`` itself when
        all are readable).

    Raises:
        DataError: with ``"fail"``, the first bad image, naming its manifest line and file.

    Example:
        >>> import numpy as np
        >>> s = GeoSplit("val", np.zeros(2), np.zeros(2), np.array(["", ""]), np.array(["", ""]),
        ...              np.array(["a", "b"]), images=np.zeros((2, 4, 4, 3), np.uint8))
        >>> screen_split(s, 32, "skip", ImageAccount()) is s
        True
    """
    from concurrent.futures import ThreadPoolExecutor

    if split.images is not None or split.shards is not None or len(split) == 0:
        return split  # in memory, or in shards (a bad sample there raises naming its shard and key)
    if split.paths is None:
        raise DataError(f"split {split.name!r} has neither images nor paths")
    ok = np.ones(len(split), dtype=bool)
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(split)))) as pool:
        # map() yields in split order, so "fail" names the first bad row, not the first to finish
        decode = decode or _square_decoder(image_size)
        results = pool.map(_try_load, [str(p) for p in split.paths], [decode] * len(split))
        for i, exc in enumerate(results):
            if exc is None:
                continue
            record = _bad_image(split, i, exc)
            if on_bad_image == "fail":
                pool.shutdown(wait=True, cancel_futures=True)
                raise DataError(f"{record.message()}; {_SKIP_HINT}") from exc
            ok[i] = False
            if account is not None:
                account.add(record.split, record.row, record.path, record.problem, record.detail)
    return split if ok.all() else split.take(np.flatnonzero(ok))


_SPLIT_WORDS = {"train": "training", "val": "validation", "test": "test", "all": "evaluation"}


def require_usable(split: GeoSplit, account: Optional[ImageAccount] = None) -> GeoSplit:
    """``split`` itself if it has at least one sample; else a :class:`DataError` that says how many
    of its images were missing or unreadable and names the first.

    Call it after :func:`screen_split` (val / test) and before training (train); :func:`load_splits`
    calls it too, for splits whose image files are all missing.

    Raises:
        DataError: e.g. ``"no usable training images: 10 missing, 0 unreadable (first: m.csv:
            row 0 (line 2): image /data/a.png not found (...))"``.
    """
    if len(split) > 0:
        return split
    word = _SPLIT_WORDS.get(split.name, split.name)
    records = account.records(split.name) if account is not None else []
    if not records:
        raise DataError(f"no usable {word} images: the {split.name} split has no samples")
    counts = account.counts(split.name)  # type: ignore[union-attr]
    raise DataError(f"no usable {word} images: {counts['missing']} missing, {counts['unreadable']} unreadable"
                    f" (first: {records[0].message()})")
