"""The SVG world map: every country drawn once, inside the view box, valid XML, small."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np

from geocell.boundaries import load_admin0
from geocell_engine.app.worldmap import MAP_HEIGHT, MAP_WIDTH, countries, lonlat_to_xy, world_svg


def test_every_country_is_one_path_inside_the_view_box():
    svg = world_svg()
    root = ET.fromstring(svg)
    paths = [e for e in root.iter("{http://www.w3.org/2000/svg}path")]
    codes = [p.get("data-code") for p in paths]
    assert len(codes) == len(set(codes)) == len(load_admin0())
    assert {c.code for c in countries()} == set(codes)
    numbers = np.array([int(v) for v in re.findall(r"-?\d+", " ".join(p.get("d") for p in paths))])
    xs, ys = numbers[0::2], numbers[1::2]
    assert xs.min() >= 0 and xs.max() <= MAP_WIDTH and ys.min() >= 0 and ys.max() <= MAP_HEIGHT
    assert len(svg) < 600_000
    fra = next(p for p in paths if p.get("data-code") == "FRA")
    assert fra.get("data-name") == "France"


def test_projection_is_equirectangular():
    x, y = lonlat_to_xy(np.array([-180.0, 0.0, 180.0]), np.array([90.0, 0.0, -90.0]))
    assert x.tolist() == [0.0, 1800.0, 3600.0] and y.tolist() == [0.0, 900.0, 1800.0]


def test_countries_are_sorted_by_name():
    names = [c.name.casefold() for c in countries()]
    assert names == sorted(names) and len(names) > 200
