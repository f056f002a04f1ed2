"""Named constants shared by every module of geocell.

Every number that another project might choose differently is defined here once and exposed as
a default parameter value elsewhere, so published figures that used another choice can be
reproduced by passing it explicitly.
"""

from __future__ import annotations

__all__ = [
    "EARTH_RADIUS_KM",
    "EARTH_RADIUS_ROUND_KM",
    "EARTH_EQUATORIAL_RADIUS_KM",
    "GEOSCORE_SCALE_KM",
    "GEOSCORE_MAX",
    "ACCURACY_THRESHOLDS_KM",
    "ASSIGN_MAX_DISTANCE_KM",
]

#: Mean Earth radius (IUGG arithmetic mean radius R1), km. Used by default everywhere.
EARTH_RADIUS_KM: float = 6371.0088

#: Radius many projects use instead (e.g. OSV-5M's and sklearn's examples), km.
EARTH_RADIUS_ROUND_KM: float = 6371.0

#: WGS84 equatorial radius, km (PIGEON uses it in one place).
EARTH_EQUATORIAL_RADIUS_KM: float = 6378.137

#: GeoGuessr score scale: ``score = 5000 * exp(-d / GEOSCORE_SCALE_KM)``.
GEOSCORE_SCALE_KM: float = 1492.7

#: Maximum GeoGuessr score for one guess.
GEOSCORE_MAX: float = 5000.0

#: The standard distance thresholds of image geolocation papers: street, city, region,
#: country, continent (km).
ACCURACY_THRESHOLDS_KM: tuple[float, ...] = (1.0, 25.0, 200.0, 750.0, 2500.0)

#: Default search radius of the nearest-polygon fallback in point -> country assignment (km).
ASSIGN_MAX_DISTANCE_KM: float = 25.0

#: Temperature of PIGEON's haversine label smoothing, km: a training point gives cell i the
#: target ``exp(-(d_i - min_j d_j) / tau)`` (the ``tau_km`` training default).
LABEL_SMOOTHING_TAU_KM: float = 75.0

#: Distance clip of GeoTrainr's pairwise distance discriminator: 10 degrees of arc, about
#: 1110 km (the ``distance_clip_km`` training default).
DISTANCE_CLIP_KM: float = 1110.0

#: Smallest distance between every held-out point and every training point in a spatially
#: disjoint split, km (the ``cli.py data split --buffer-km`` default; bluemarble-v1 uses it too).
SPATIAL_SPLIT_BUFFER_KM: float = 363.0
