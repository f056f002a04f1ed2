"""The game's world map: an SVG drawn from the Natural Earth country polygons shipped in geocell.

Equirectangular (plate carrée): ``x = 10 (lon + 180)``, ``y = 10 (90 - lat)`` in a
``3600 x 1800`` view box, so a click converts back with two subtractions and no projection
library in the browser. Each country is one ``<path>`` with ``data-code`` (``adm0_a3``) and
``data-name``; holes use ``fill-rule: evenodd``. The polygons are simplified for the screen
(:data:`SIMPLIFY_DEG`), and parts smaller than :data:`MIN_PART_DEG2` are dropped unless they are a
country's largest part; a country whose largest part is still too small to draw (Monaco, Vatican,
small islands) is a small diamond at a point inside it, so every country can be seen and clicked. The result is about 0.3 MB (0.1 MB gzipped)
and is built once per process.

Example:
    >>> svg = world_svg()                                # doctest: +SKIP
    >>> svg.startswith("<svg") and 'data-code="FRA"' in svg   # doctest: +SKIP
    True
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass

import numpy as np

__all__ = ["SIMPLIFY_DEG", "MIN_PART_DEG2", "MAP_WIDTH", "MAP_HEIGHT", "Country", "countries", "world_svg",
           "lonlat_to_xy", "DOT_RADIUS"]

#: Douglas-Peucker tolerance for the screen map, degrees (about 9 km; 1 px is about 0.3 deg at 1000 px).
SIMPLIFY_DEG = 0.08
#: Parts of a country smaller than this (deg^2) are left out, except the country's largest part.
MIN_PART_DEG2 = 0.05
#: Half-width of the diamond drawn for a country too small to keep a shape, view-box units (0.3 deg).
DOT_RADIUS = 3
#: View box of the SVG: 10 units per degree.
MAP_WIDTH, MAP_HEIGHT = 3600, 1800


@dataclass(frozen=True)
class Country:
    """One pickable country: Natural Earth ``adm0_a3`` code and name."""

    code: str
    name: str


def lonlat_to_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N,)`` degrees -> SVG user units of :func:`world_svg` (``x`` east, ``y`` down)."""
    return (np.asarray(lon, dtype=np.float64) + 180.0) * 10.0, (90.0 - np.asarray(lat, dtype=np.float64)) * 10.0


@functools.lru_cache(maxsize=1)
def countries() -> tuple[Country, ...]:
    """Every country of the shipped boundaries, sorted by name (what a player can pick)."""
    from geocell.boundaries import load_admin0

    admin0 = load_admin0()
    items = [Country(str(c), str(n)) for c, n in zip(admin0["adm0_a3"], admin0["admin"])]
    return tuple(sorted(items, key=lambda c: c.name.casefold()))


def _ring_path(coords: np.ndarray) -> str:
    x, y = lonlat_to_xy(coords[:, 0], coords[:, 1])
    pts = np.stack([np.rint(x), np.rint(y)], axis=1).astype(np.int64)
    keep = np.r_[True, np.any(pts[1:] != pts[:-1], axis=1)]
    pts = pts[keep]
    if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]
    if len(pts) < 3:
        return ""
    body = " ".join(f"{a} {b}" for a, b in pts[1:].tolist())
    return f"M{pts[0, 0]} {pts[0, 1]}L{body}Z"


def _dot_path(geom) -> str:
    """A small diamond at the country's representative point (for countries too small to draw)."""
    p = geom.representative_point()
    x, y = (int(round(float(v))) for v in np.concatenate(lonlat_to_xy(np.array([p.x]), np.array([p.y]))))
    r = DOT_RADIUS
    return f"M{x} {y - r}L{x + r} {y} {x} {y + r} {x - r} {y}Z"


def _country_path(geom) -> str:
    import shapely

    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and not p.is_empty]
    if not parts:
        return ""
    areas = np.array([p.area for p in parts])
    largest = int(areas.argmax())
    out = []
    for i, poly in enumerate(parts):
        if i != largest and areas[i] < MIN_PART_DEG2:
            continue
        out.append(_ring_path(np.asarray(poly.exterior.coords)))
        out.extend(_ring_path(np.asarray(r.coords)) for r in poly.interiors if shapely.area(shapely.Polygon(r)) >= MIN_PART_DEG2)
    return "".join(out)


@functools.lru_cache(maxsize=1)
def world_svg() -> str:
    """The whole map as one SVG document (text): ocean, 30-degree graticule, one path per country."""
    import shapely

    from geocell.boundaries import load_admin0

    admin0 = load_admin0()
    geoms = shapely.simplify(np.asarray(admin0.geometry.array), SIMPLIFY_DEG, preserve_topology=True)
    lines = [f'<svg xmlns="http://www.w3.org/2000/svg" id="worldmap" viewBox="0 0 {MAP_WIDTH} {MAP_HEIGHT}" '
             f'preserveAspectRatio="xMidYMid meet">',
             f'<rect class="ocean" x="0" y="0" width="{MAP_WIDTH}" height="{MAP_HEIGHT}"/>',
             '<g class="graticule">']
    for lon in range(-150, 180, 30):
        x = (lon + 180) * 10
        lines.append(f'<line x1="{x}" y1="0" x2="{x}" y2="{MAP_HEIGHT}"/>')
    for lat in range(-60, 90, 30):
        y = (90 - lat) * 10
        lines.append(f'<line x1="0" y1="{y}" x2="{MAP_WIDTH}" y2="{y}"/>')
    lines.append('</g><g class="countries">')
    for code, name, geom, original in zip(admin0["adm0_a3"], admin0["admin"], geoms, admin0.geometry.array):
        d = _country_path(geom) or _dot_path(original)
        if d:
            lines.append(f'<path class="country" data-code="{html.escape(str(code))}" '
                         f'data-name="{html.escape(str(name))}" d="{d}"/>')
    lines.append('</g><g id="marks"></g></svg>')
    return "\n".join(lines)
