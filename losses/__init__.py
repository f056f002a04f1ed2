"""Geographic losses of geocell (all ``torch.nn.Module``; distances from ``geocell.geodesy``).

- :class:`HaversineSmoothingLoss` / :func:`haversine_smoothing_targets`: PIGEON's haversine
  label smoothing for cell classification.
- :class:`ClippedDistanceLoss` + :class:`NearFarPairSampler`: clipped distance regression for the
  ``distance`` head, with the identity term and near/far balancing.
- :class:`GeodesicLoss` (mean km) and :class:`UnitVectorMSELoss` for the ``latlon`` head.
- :class:`MixupBCELoss` + :func:`create_mixup`: MixUp / CutMix as multi-label BCE, built from
  timm's ``Mixup`` and ``BinaryCrossEntropy``.

Every loss documents shapes and units and raises ``ValueError`` on bad arguments (tau <= 0,
mismatched shapes, NaN coordinates).
"""

from .distance import DEFAULT_CLIP_KM, ClippedDistanceLoss, DistanceLossTerms, NearFarPairSampler
from .geodesic import GeodesicLoss, UnitVectorMSELoss
from .mixup import MixupBCELoss, create_mixup
from .smoothing import DEFAULT_TAU_KM, HaversineSmoothingLoss, haversine_smoothing_targets

__all__ = [
    "haversine_smoothing_targets",
    "HaversineSmoothingLoss",
    "DEFAULT_TAU_KM",
    "ClippedDistanceLoss",
    "DistanceLossTerms",
    "NearFarPairSampler",
    "DEFAULT_CLIP_KM",
    "GeodesicLoss",
    "UnitVectorMSELoss",
    "MixupBCELoss",
    "create_mixup",
]
