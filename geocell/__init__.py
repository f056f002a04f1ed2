"""geocell: the geo library of the geocell image-geolocation toolkit.

Distances (numpy and torch), offline Natural Earth boundaries, point -> country / admin-1
assignment, geocells and metrics. Importing this package imports neither torch nor timm.
"""

from .constants import (
    ACCURACY_THRESHOLDS_KM,
    EARTH_EQUATORIAL_RADIUS_KM,
    EARTH_RADIUS_KM,
    EARTH_RADIUS_ROUND_KM,
    GEOSCORE_SCALE_KM,
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
# geopandas nor shapely until they are needed.
_LAZY = {
    "assign_country": "assign", "assign_admin1": "assign", "Assigner": "assign", "PolygonIndex": "assign",
    "load_admin0": "boundaries", "load_admin1": "boundaries", "country_codes": "boundaries",
    "iso2_to_adm0": "boundaries", "adm0_to_iso2": "boundaries", "boundaries_info": "boundaries",
    "CellSet": "cells", "build_semantic": "semantic", "build_s2": "s2cells",
    "s2_cell_ids": "s2", "s2_cell_id_to_token": "s2", "s2_token_to_cell_id": "s2", "s2_parent": "s2",
    "s2_cell_center": "s2", "distance_metrics": "metrics", "classification_metrics": "metrics",
    "check_latlon": "validate", "label_points": "label",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'geocell' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
