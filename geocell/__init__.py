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
