"""geocell: the geo library of the geocell image-geolocation toolkit.

Distances (numpy and torch), offline Natural Earth boundaries, point -> country / admin-1
assignment, geocells and metrics. Importing this package imports neither torch nor timm, nor
shapely, geopandas or pandas: constants, distances and every exception class load at once; the
rest (listed in ``__all__`` too) on first attribute access.

Every error geocell raises on purpose derives from :class:`GeocellError` and is available here,
e.g. ``except geocell.InvalidCoordinateError``.
"""

from .constants import (
    ACCURACY_THRESHOLDS_KM,
    ASSIGN_MAX_DISTANCE_KM,
    EARTH_EQUATORIAL_RADIUS_KM,
    EARTH_RADIUS_KM,
    EARTH_RADIUS_ROUND_KM,
    GEOSCORE_MAX,
    GEOSCORE_SCALE_KM,
)
from .errors import (
    AssignError,
    BoundaryFileError,
    BoundaryFileNotFoundError,
    CellSetError,
    GeocellError,
    InputFileError,
    InvalidCoordinateError,
    MissingColumnsError,
    OutputFileError,
    ProfileError,
    S2Error,
    SwappedCoordinatesWarning,
    TableError,
    UnknownCountryCodeError,
)
from .geodesy import (
    accuracy_at,
    destination,
    geodesic,
    geoguessr_score,
    haversine,
    haversine_matrix,
    latlon_to_xyz,
    spherical_mean,
    xyz_to_latlon,
)

__version__ = "0.1.0"

# Heavier parts load on first use (PEP 562), so `import geocell` stays fast and imports neither
# geopandas nor shapely until they are needed. name -> submodule that defines it.
_LAZY = {
    # assign
    "assign_country": "assign", "assign_admin1": "assign", "Assigner": "assign", "Assignment": "assign",
    "PolygonIndex": "assign", "get_assigner": "assign",
    # boundaries
    "load_admin0": "boundaries", "load_admin1": "boundaries", "country_codes": "boundaries",
    "iso2_to_adm0": "boundaries", "adm0_to_iso2": "boundaries", "same_country": "boundaries",
    "boundaries_info": "boundaries", "BoundariesInfo": "boundaries",
    # continents
    "continent_of": "continents", "continent_table": "continents", "CONTINENT_NAMES": "continents",
    # cells
    "CellSet": "cells", "build_semantic": "semantic", "build_s2": "s2cells", "s2_cell_polygons": "s2cells",
    "build_kmeans": "kmeans_cells",
    # s2
    "s2_cell_ids": "s2", "s2_cell_id_to_token": "s2", "s2_token_to_cell_id": "s2", "s2_parent": "s2",
    "s2_level": "s2", "s2_cell_center": "s2", "s2_cell_vertices": "s2",
    # metrics
    "distance_metrics": "metrics", "classification_metrics": "metrics", "per_group_table": "metrics",
    "DistanceMetrics": "metrics", "ClassificationMetrics": "metrics",
    # metric profiles, reverse geocoding, plausibility of coordinate columns
    "MetricProfile": "profiles", "PROFILES": "profiles", "get_profile": "profiles", "score_profile": "profiles",
    "ProfileScore": "profiles", "LevelAccuracy": "profiles",
    "reverse_geocode": "revgeo", "swapped_columns_check": "plausibility",
    # validation, tables, labelling, plots
    "check_latlon": "validate", "check_coordinates": "validate",
    "read_points": "tables", "read_table": "tables", "write_table": "tables", "PointTable": "tables",
    "check_output_path": "tables",
    "label_points": "label", "plot_cells": "plot",
}

__all__ = [
    # constants
    "ACCURACY_THRESHOLDS_KM", "ASSIGN_MAX_DISTANCE_KM", "EARTH_EQUATORIAL_RADIUS_KM", "EARTH_RADIUS_KM",
    "EARTH_RADIUS_ROUND_KM", "GEOSCORE_MAX", "GEOSCORE_SCALE_KM",
    # errors
    "GeocellError", "InvalidCoordinateError", "TableError", "InputFileError", "OutputFileError", "AssignError",
    "CellSetError",
    "S2Error", "UnknownCountryCodeError", "BoundaryFileError", "BoundaryFileNotFoundError", "MissingColumnsError",
    "ProfileError", "SwappedCoordinatesWarning",
    # geodesy
    "accuracy_at", "destination", "geodesic", "geoguessr_score", "haversine", "haversine_matrix",
    "latlon_to_xyz", "spherical_mean", "xyz_to_latlon",
    # lazy
    *_LAZY,
]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'geocell' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
