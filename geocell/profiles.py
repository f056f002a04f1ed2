"""Metric profiles: the conventions of each published benchmark table, and one scorer for them.

Published geolocation numbers differ in more than their models: the distance (a sphere of which
radius, or the WGS84 ellipsoid), ``d < t`` or ``d <= t`` at a threshold, whether each GeoScore is
rounded before averaging, whether "distance" means the mean or the median km, and how a country
(or region, or city) hit is decided. A :class:`MetricProfile` pins all of these; :data:`PROFILES`
holds the four named ones and :func:`score_profile` scores predictions under any of them.

=========  ===============  ========  ========  =========  ==========================================
profile    distance         ``d, t``  GeoScore  distance   admin levels
=========  ===============  ========  ========  =========  ==========================================
geocell    sphere 6371.0088 ``<=``    mean      median,    Natural Earth polygons of truth and guess:
                                                mean       country, admin-1
osv5m      sphere 6371.0    ``<``     mean      mean       ``reverse_geocoder`` of the guess: country,
                                                           region, sub-region, city
pigeon     sphere 6378.137  ``<``     mean of   mean,      guess inside the true point's country
                                      rounded   median     polygon
geoclip    WGS84 geodesic   ``<=``    (none)    mean       none
=========  ===============  ========  ========  =========  ==========================================

Every profile's docstring entry (``follows`` and ``notes``) names the code it follows, how sure
we are, and where we knowingly differ. Thresholds are 1 / 25 / 200 / 750 / 2500 km throughout.

Example:
    >>> s = score_profile("pigeon", [0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 2.0])
    >>> s.distance.accuracy_at_km[1.0], s.distance.mean_geoscore   # 0 km and 222.6 km
    (0.5, 4653.5)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping, Optional, Union

import numpy as np

from .constants import (
    ACCURACY_THRESHOLDS_KM,
    EARTH_EQUATORIAL_RADIUS_KM,
    EARTH_RADIUS_KM,
    EARTH_RADIUS_ROUND_KM,
    GEOSCORE_SCALE_KM,
)
from .errors import ProfileError
from .metrics import DistanceMethod, DistanceMetrics, error_km, summarise_errors

__all__ = [
    "MetricProfile",
    "LevelAccuracy",
    "ProfileScore",
    "PROFILES",
    "PROFILE_NAMES",
    "get_profile",
    "score_profile",
    "AdminMethod",
    "GEOCELL",
    "OSV5M",
    "PIGEON",
    "GEOCLIP",
]

#: How admin accuracy is decided:
#: ``natural_earth``: the Natural Earth country / admin-1 unit of the guess equals the truth's;
#: ``reverse_geocoder``: OSV-5M's keys of the nearest GeoNames place of the guess equal the truth's;
#: ``point_in_true_country``: the guess lies inside the polygon of the true point's country (PIGEON);
#: ``none``: no admin accuracy.
AdminMethod = Literal["natural_earth", "reverse_geocoder", "point_in_true_country", "none"]
Statistic = Literal["median", "mean"]


@dataclass(frozen=True)
class MetricProfile:
    """How one benchmark table is computed.

    Attributes:
        name: ``"geocell"``, ``"osv5m"``, ``"pigeon"`` or ``"geoclip"`` (or your own).
        distance: ``"haversine"`` (a sphere of ``radius_km``) or ``"geodesic"`` (``ellipsoid``).
        radius_km: sphere radius, km (unused for ``"geodesic"``).
        inclusive: accuracy at ``t`` km counts ``d <= t`` (True) or ``d < t`` (False).
        round_geoscore: round each guess's GeoScore to an integer before averaging.
        reports_geoscore: whether the followed code reports a GeoScore at all (we compute it
            either way; False means it is not one of that paper's numbers).
        distance_stats: which of median / mean km the followed code reports (we compute both).
        admin: how admin accuracy is decided (:data:`AdminMethod`).
        levels: the admin levels scored, coarse to fine.
        thresholds_km: km thresholds of the accuracy-at-distance table.
        geoscore_scale_km: ``score = 5000 exp(-d / scale)``.
        ellipsoid: pyproj ellipsoid name for ``"geodesic"``.
        follows: the code (repository, files, commit) the profile follows.
        notes: how sure we are, and where we knowingly differ from that code.
    """

    name: str
    distance: DistanceMethod
    radius_km: float
    inclusive: bool
    round_geoscore: bool
    reports_geoscore: bool
    distance_stats: tuple[Statistic, ...]
    admin: AdminMethod
    levels: tuple[str, ...]
    thresholds_km: tuple[float, ...] = ACCURACY_THRESHOLDS_KM
    geoscore_scale_km: float = GEOSCORE_SCALE_KM
    ellipsoid: str = "WGS84"
    follows: str = field(default="", compare=False)
    notes: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.distance not in ("haversine", "geodesic"):
            raise ProfileError(f"profile {self.name!r}: distance {self.distance!r}; expected 'haversine' or 'geodesic'")
        if not (math.isfinite(self.radius_km) and self.radius_km > 0):
            raise ProfileError(f"profile {self.name!r}: radius_km {self.radius_km!r}; expected a positive number of km")
        if self.admin not in ("natural_earth", "reverse_geocoder", "point_in_true_country", "none"):
            raise ProfileError(f"profile {self.name!r}: admin {self.admin!r}; expected one of natural_earth, "
                               "reverse_geocoder, point_in_true_country, none")
        allowed = _LEVELS[self.admin]
        bad = [lv for lv in self.levels if lv not in allowed]
        if bad:
            raise ProfileError(f"profile {self.name!r}: level(s) {', '.join(bad)} cannot be scored with admin "
                               f"{self.admin!r}; expected some of: {', '.join(allowed) or 'none'}")
        if not self.distance_stats or any(s not in ("median", "mean") for s in self.distance_stats):
            raise ProfileError(f"profile {self.name!r}: distance_stats {self.distance_stats!r}; expected "
                               "'median' and/or 'mean'")

    def describe(self) -> str:
        """One line: the conventions, e.g. for the CLI to print above the table."""
        dist = (f"haversine R = {self.radius_km!r} km" if self.distance == "haversine"
                else f"{self.ellipsoid} geodesic (pyproj)")
        score = ("GeoScore: mean of rounded scores" if self.round_geoscore else "GeoScore: unrounded mean")
        if not self.reports_geoscore:
            score += " (not reported by the paper)"
        admin = {"natural_earth": "Natural Earth polygons", "reverse_geocoder": "reverse_geocoder of the guess",
                 "point_in_true_country": "guess inside the true country's polygon", "none": "none"}[self.admin]
        levels = f" ({', '.join(self.levels)})" if self.levels else ""
        return (f"profile {self.name}: {dist}; d {'<=' if self.inclusive else '<'} t; {score}; reports "
                f"{' and '.join(self.distance_stats)} km; admin: {admin}{levels}")


_LEVELS: dict[str, tuple[str, ...]] = {
    "natural_earth": ("country", "admin1"),
    "reverse_geocoder": ("country", "region", "sub-region", "city"),
    "point_in_true_country": ("country",),
    "none": (),
}

GEOCELL = MetricProfile(
    name="geocell", distance="haversine", radius_km=EARTH_RADIUS_KM, inclusive=True, round_geoscore=False,
    reports_geoscore=True, distance_stats=("median", "mean"), admin="natural_earth", levels=("country", "admin1"),
    follows="geocell's own convention (shared/DESIGN.md): IUGG mean Earth radius, d <= t, unrounded GeoScore",
    notes=("Country and admin-1 of truth and guess are the shipped Natural Earth units (a point off a coastline "
           "goes to the nearest unit within 25 km). In `evaluate`, the model's own country / admin-1 answers "
           "are the guess (the classifier, not the point); in `score`, the guessed point's units are (unless "
           "the predictions file has pred_country / pred_admin1). Denominator per level: rows with a known "
           "true unit."),
)

OSV5M = MetricProfile(
    name="osv5m", distance="haversine", radius_km=EARTH_RADIUS_ROUND_KM, inclusive=False, round_geoscore=False,
    reports_geoscore=True, distance_stats=("mean",), admin="reverse_geocoder",
    levels=("country", "region", "sub-region", "city"),
    follows=("github.com/gastruc/osv5m, metrics/distance_based.py (HaversineMetrics: mean haversine as "
             "'Haversine', `haversine_distance < acc`, 5000 * exp(-d / 1492.7) averaged unrounded, area accuracy "
             "per level) and metrics/utils.py (haversine with R = 6371; `reverse`: reverse_geocoder.search of "
             "the guess, keys cc / admin1_cc / admin2_admin1_cc / name_admin2_admin1_cc), read at commit "
             "17b90732"),
    notes=("Sure (read the code) of the radius, '<', the unrounded mean GeoScore, the mean km and the keys. "
           "Differences: (1) OSV-5M computes in float32 radians, we in float64 degrees (sub-metre per "
           "distance). (2) True areas come from the truth file's unique_country / unique_region / "
           "unique_sub-region / unique_city columns when it has them, as OSV-5M takes them from its test.csv; "
           "otherwise we reverse-geocode the true point with the same gazetteer. (3) OSV-5M reads test.csv "
           "with pandas' default NA handling (dtype=str does not stop 'NA' -> NaN), so as published Namibian "
           "rows cannot be country hits; we keep 'NA'. (4) Its code means to drop rows whose true area is "
           "missing (mask `!= 'nan'`) but fills missing values with 'NaN' first, so as published nothing is "
           "dropped; we use a denominator per level (rows with a known true area) and report it, so the other "
           "reading can be recomputed."),
)

PIGEON = MetricProfile(
    name="pigeon", distance="haversine", radius_km=EARTH_EQUATORIAL_RADIUS_KM, inclusive=False,
    round_geoscore=True, reports_geoscore=True, distance_stats=("mean", "median"), admin="point_in_true_country",
    levels=("country",),
    follows=("github.com/LukasHaas/PIGEON, evaluation/metrics.py (compute_geoguessr_metrics: Mean_km_error, "
             "Median_km_error, percentage_within_radius `distances < km`, geoguessr_score = "
             "mean(np.round(5000 * exp(-d / 1492.7))), country_accuracy) and preprocessing/geo_utils.py "
             "(haversine_np, R = 6378137 m, (lon, lat) order), read at commit 3c3559d1"),
    notes=("Sure (read the code) of the radius, '<', the rounding and mean / median. Country: PIGEON finds the "
           "polygon covering the true point (else the nearest polygon) and counts a hit when that polygon "
           "contains the guess. Its countries.geojson is not published with the code; we use the shipped "
           "Natural Earth countries (admin-1 dissolved on adm0_a3), so country accuracy can differ where the "
           "two maps differ. A guess exactly on a border counts for one country here, for none in shapely's "
           "`contains`. Denominator: every row (every true point gets a country)."),
)

GEOCLIP = MetricProfile(
    name="geoclip", distance="geodesic", radius_km=EARTH_RADIUS_KM, inclusive=True, round_geoscore=False,
    reports_geoscore=False, distance_stats=("mean",), admin="none", levels=(),
    follows=("github.com/VicenteVivan/geo-clip, geoclip/train/eval.py (distance_accuracy: "
             "geopy.distance.geodesic, `gd <= dis` at 2500 / 750 / 200 / 25 / 1 km, mean km) and "
             "geoclip/train/dataloader.py (IMG_FILE, LAT, LON; rows whose image is missing are skipped "
             "without notice), read at commit 98b3b48a"),
    notes=("Sure (read the code) of the WGS84 geodesic and '<='; geopy's geodesic and pyproj's Geod.inv both "
           "implement Karney's algorithm (agree to well under a millimetre). GeoCLIP reports no GeoScore and "
           "no country accuracy; we show an unrounded GeoScore for comparison. We never skip missing images "
           "silently: they are counted and listed."),
)

#: The named profiles.
PROFILES: Mapping[str, MetricProfile] = {p.name: p for p in (GEOCELL, OSV5M, PIGEON, GEOCLIP)}
#: Their names, for command-line choices.
PROFILE_NAMES: tuple[str, ...] = tuple(PROFILES)


def get_profile(profile: Union[str, MetricProfile]) -> MetricProfile:
    """A :class:`MetricProfile` by name (or the profile itself).

    Raises:
        ProfileError: an unknown name, listing the known ones.

    Example:
        >>> get_profile("osv5m").radius_km
        6371.0
    """
    if isinstance(profile, MetricProfile):
        return profile
    try:
        return PROFILES[str(profile).strip().lower()]
    except KeyError:
        raise ProfileError(f"unknown metric profile {profile!r}; expected one of {', '.join(PROFILE_NAMES)}") from None


@dataclass(frozen=True)
class LevelAccuracy:
    """Accuracy at one admin level.

    Attributes:
        level: ``"country"``, ``"admin1"``, ``"region"``, ``"sub-region"`` or ``"city"``.
        method: how it was decided (the profile's :data:`AdminMethod`, or ``"pred_country"`` /
            ``"pred_admin1"`` when a model's own answer was the guess).
        n: the denominator: rows whose true unit at this level is known.
        correct: rows counted as hits.
        known, hits: ``(N,)`` bool per row: its true unit is known / it is a hit (``hits``
            implies ``known``), or None when only the counts were kept. They let an interval be
            put on the accuracy (a bootstrap resamples rows); not part of equality or ``as_dict``.
    """

    level: str
    method: str
    n: int
    correct: int
    known: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    hits: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    @property
    def accuracy(self) -> Optional[float]:
        """``correct / n``, or None when ``n == 0``."""
        return self.correct / self.n if self.n else None

    def as_dict(self) -> dict[str, Any]:
        return {"level": self.level, "method": self.method, "n": self.n, "correct": self.correct,
                "accuracy": self.accuracy}


@dataclass(frozen=True)
class ProfileScore:
    """What :func:`score_profile` measured.

    Attributes:
        profile: the profile's name.
        distance: :class:`geocell.metrics.DistanceMetrics` under the profile's conventions.
        levels: one :class:`LevelAccuracy` per profile level.
        error_km: ``(N,)`` float64 km errors (the profile's distance).
    """

    profile: str
    distance: DistanceMetrics
    levels: tuple[LevelAccuracy, ...]
    error_km: np.ndarray = field(repr=False, compare=False)

    def level(self, name: str) -> Optional[LevelAccuracy]:
        """The :class:`LevelAccuracy` of ``name``, or None."""
        return next((lv for lv in self.levels if lv.level == name), None)


def _labels(values: Any, name: str, n: int) -> Optional[np.ndarray]:
    if values is None:
        return None
    arr = np.asarray(values, dtype=object).reshape(-1)
    if arr.size != n:
        raise ProfileError(f"{name} has {arr.size} entries, expected {n} (one per prediction)")
    out = np.array(["" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in arr.tolist()],
                   dtype=str) if arr.dtype == object else arr.astype(str)
    return out.astype(str)


def _level(level: str, method: str, true: np.ndarray, pred: np.ndarray) -> LevelAccuracy:
    known = np.asarray(true != "", dtype=bool).reshape(-1)
    hits = known & np.asarray(true == pred, dtype=bool).reshape(-1)
    return LevelAccuracy(level, method, int(known.sum()), int(np.count_nonzero(hits)), known=known, hits=hits)


def score_profile(
    profile: Union[str, MetricProfile],
    true_lat: Any,
    true_lon: Any,
    pred_lat: Any,
    pred_lon: Any,
    *,
    true_country: Any = None,
    pred_country: Any = None,
    true_admin1: Any = None,
    pred_admin1: Any = None,
    true_levels: Optional[Mapping[str, Any]] = None,
    thresholds: Optional[tuple[float, ...]] = None,
) -> ProfileScore:
    """Score N guesses under a profile: distances, accuracy at distance, GeoScore, admin levels.

    Args:
        profile: a name in :data:`PROFILES` or a :class:`MetricProfile`.
        true_lat, true_lon, pred_lat, pred_lon: ``(N,)`` degrees.
        true_country, true_admin1: ``(N,)`` Natural Earth ``adm0_a3`` / ``adm1_code`` of the
            truth (``""`` = unknown), for ``natural_earth``; default: the units of the true points.
        pred_country, pred_admin1: ``(N,)`` the guessed units, for ``natural_earth``; default:
            the units of the guessed points.
        true_levels: for ``reverse_geocoder``: level -> ``(N,)`` OSV-5M keys of the truth
            (``"FR"``, ``"Ile-de-France_FR"``, ...; ``""`` = unknown); a level not given is
            found by reverse-geocoding the true points.
        thresholds: km; default: the profile's.

    Returns:
        :class:`ProfileScore`.

    Raises:
        InvalidCoordinateError: a NaN / out-of-range / non-numeric coordinate (names the array and index).
        ProfileError: an unknown profile, label arrays of the wrong length, an unknown level.
    """
    p = get_profile(profile)
    d = error_km(true_lat, true_lon, pred_lat, pred_lon, radius_km=p.radius_km, distance=p.distance,
                 ellps=p.ellipsoid)
    n = int(d.size)
    if n == 0:
        raise ProfileError("no predictions to score")
    dist = summarise_errors(d, thresholds=p.thresholds_km if thresholds is None else tuple(thresholds),
                            geoscore_scale_km=p.geoscore_scale_km, inclusive=p.inclusive,
                            round_geoscore=p.round_geoscore)
    coords = [np.broadcast_to(np.asarray(a, dtype=np.float64), d.shape).reshape(-1)
              for a in (true_lat, true_lon, pred_lat, pred_lon)]
    levels: tuple[LevelAccuracy, ...] = ()
    if p.admin == "natural_earth" and p.levels:
        levels = _natural_earth(p, coords, n, true_country, pred_country, true_admin1, pred_admin1)
    elif p.admin == "reverse_geocoder" and p.levels:
        levels = _reverse_geocoder(p, coords, n, true_levels)
    elif p.admin == "point_in_true_country" and p.levels:
        from .assign import get_assigner

        assigner = get_assigner()
        true_c = assigner.assign(coords[0], coords[1], max_distance_km=math.inf).country
        pred_c = assigner.assign(coords[2], coords[3], max_distance_km=0.0).country
        levels = (_level("country", p.admin, np.asarray(true_c), np.where(pred_c == "", "\0", pred_c)),)
    return ProfileScore(p.name, dist, levels, d)


def _natural_earth(p: MetricProfile, coords: list[np.ndarray], n: int, true_country: Any, pred_country: Any,
                   true_admin1: Any, pred_admin1: Any) -> tuple[LevelAccuracy, ...]:
    given = {"true_country": _labels(true_country, "true_country", n),
             "pred_country": _labels(pred_country, "pred_country", n),
             "true_admin1": _labels(true_admin1, "true_admin1", n),
             "pred_admin1": _labels(pred_admin1, "pred_admin1", n)}
    found: dict[str, np.ndarray] = {}
    for side, (lat, lon) in (("true", coords[:2]), ("pred", coords[2:])):
        wanted = [lv for lv in p.levels if given[f"{side}_{lv}"] is None]
        if wanted:
            from .assign import get_assigner

            a = get_assigner().assign(lat, lon)
            found[f"{side}_country"], found[f"{side}_admin1"] = np.asarray(a.country), np.asarray(a.admin1)
    out = []
    for lv in p.levels:
        true = given[f"true_{lv}"] if given[f"true_{lv}"] is not None else found[f"true_{lv}"]
        pred = given[f"pred_{lv}"] if given[f"pred_{lv}"] is not None else found[f"pred_{lv}"]
        method = f"pred_{lv}" if given[f"pred_{lv}"] is not None else p.admin
        out.append(_level(lv, method, true, np.where(pred == "", "\0", pred)))
    return tuple(out)


def _reverse_geocoder(p: MetricProfile, coords: list[np.ndarray], n: int,
                      true_levels: Optional[Mapping[str, Any]]) -> tuple[LevelAccuracy, ...]:
    from .revgeo import encode_osv5m_keys, osv5m_key_codes, reverse_geocode

    true_levels = dict(true_levels or {})
    unknown = [k for k in true_levels if k not in _LEVELS["reverse_geocoder"]]
    if unknown:
        raise ProfileError(f"true_levels has unknown level(s) {', '.join(map(repr, unknown))}; expected some of "
                           f"{', '.join(_LEVELS['reverse_geocoder'])}")
    # keys compared as integer codes of reverse_geocoder's keys (equal codes = equal strings)
    pred_codes = osv5m_key_codes(reverse_geocode(coords[2], coords[3]))
    true_codes: Optional[dict[str, np.ndarray]] = None
    out = []
    for lv in p.levels:
        given = _labels(true_levels.get(lv), f"true_levels[{lv!r}]", n)
        if given is None:
            if true_codes is None:
                true_codes = osv5m_key_codes(reverse_geocode(coords[0], coords[1]))
            true, known = true_codes[lv], np.ones(n, dtype=bool)
        else:
            known = given != ""
            true = np.where(known, encode_osv5m_keys(lv, given), -1)
        hits = known & (true == pred_codes[lv]) & (true >= 0)
        out.append(LevelAccuracy(lv, p.admin, int(known.sum()), int(np.count_nonzero(hits)), known=known, hits=hits))
    return tuple(out)
