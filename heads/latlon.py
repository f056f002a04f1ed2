"""The ``latlon`` head: regress a unit vector on the sphere, decode it to latitude / longitude.

Regressing (x, y, z) instead of (lat, lon) has no discontinuity: the antimeridian (lon +-180) and
the poles (where longitude is undefined) are ordinary points of the sphere, and nearby places
have nearby targets. Decoding uses ``geocell.xyz_to_latlon``.

Example:
    >>> import torch
    >>> head = LatLonHead(8)
    >>> out = head(torch.randn(2, 8))
    >>> out.xyz.shape, out.lat.shape
    (torch.Size([2, 3]), torch.Size([2]))
"""

from __future__ import annotations

import torch
from torch import nn

from geocell.geodesy import xyz_to_latlon

from .outputs import LatLonOutput
from .registry import Head, register_head

__all__ = ["LatLonHead", "decode_xyz"]

_EPS = 1e-12


def decode_xyz(vectors: torch.Tensor) -> LatLonOutput:
    """(B, 3) vectors of any non-zero length -> unit vectors and (lat, lon) in degrees."""
    if vectors.dim() != 2 or vectors.shape[-1] != 3:
        raise ValueError(f"expected (B, 3) vectors, got shape {tuple(vectors.shape)}")
    xyz = vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    lat, lon = xyz_to_latlon(xyz)
    return LatLonOutput(xyz, lat, lon)


@register_head("latlon")
class LatLonHead(Head):
    """Features (B, F) -> unit vectors (B, 3) and their (lat, lon).

    Args:
        in_features: F.
        hidden: width of an optional hidden layer (0: a single linear layer).
        dropout: dropout probability before the first layer.
    """

    def __init__(self, in_features: int, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__(in_features)
        if hidden < 0:
            raise ValueError(f"hidden must be >= 0, got {hidden}")
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        if hidden:
            layers += [nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, 3)]
        else:
            layers.append(nn.Linear(in_features, 3))
        self.net = nn.Sequential(*layers)

    def forward(self, features: torch.Tensor) -> LatLonOutput:
        return decode_xyz(self.net(features))
