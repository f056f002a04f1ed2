"""The public surface of ``geocell``: exceptions, ``__all__``, lazy imports, one coordinate validator."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import geocell
from geocell.errors import GeocellError, InvalidCoordinateError

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(m.name for m in pkgutil.iter_modules(geocell.__path__) if not m.name.startswith("_"))


def _geocell_exceptions() -> dict[str, type]:
    """Every exception class defined anywhere in geocell (after importing every module)."""
    found: dict[str, type] = {}
    for name in MODULES:
        module = importlib.import_module(f"geocell.{name}")
        for attr, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__.startswith("geocell"):
                found[attr] = value
    return found


def test_the_module_list_is_complete():
    assert {"assign", "boundaries", "cells", "errors", "s2", "s2cells", "semantic", "tables", "validate"} <= set(MODULES)


def test_every_exception_is_reachable_from_the_package():
    exceptions = _geocell_exceptions()
    assert {"GeocellError", "InvalidCoordinateError", "TableError", "InputFileError", "CellSetError",
            "AssignError", "S2Error", "BoundaryFileError", "MissingColumnsError"} <= set(exceptions)
    for name, cls in exceptions.items():
        assert getattr(geocell, name) is cls, name
        assert name in geocell.__all__, name
        assert cls.__module__ == "geocell.errors", f"{name} is defined in {cls.__module__}, not geocell.errors"


def test_every_exception_refines_geocell_error_and_a_builtin():
    for name, cls in _geocell_exceptions().items():
        if issubclass(cls, Warning):  # warnings are not errors: a UserWarning that names what looks wrong
            assert issubclass(cls, UserWarning) and not issubclass(cls, GeocellError), name
            continue
        assert issubclass(cls, GeocellError), name
        if cls is not GeocellError:
            assert issubclass(cls, (ValueError, FileNotFoundError)), name


def test_dunder_all_names_resolve():
    assert len(geocell.__all__) == len(set(geocell.__all__))
    for name in geocell.__all__:
        assert getattr(geocell, name) is not None, name
    assert set(geocell.__all__) <= set(dir(geocell))


@pytest.mark.parametrize("module_name", MODULES)
def test_each_module_has_a_resolving_dunder_all(module_name):
    module = importlib.import_module(f"geocell.{module_name}")
    assert isinstance(getattr(module, "__all__", None), list), f"geocell.{module_name} has no __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"geocell.{module_name}.__all__ names {name!r}, which it lacks"


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        geocell.nope  # noqa: B018


def test_import_is_light_and_errors_are_eager():
    code = (
        "import sys, geocell; "
        "heavy = [m for m in ('torch', 'timm', 'shapely', 'geopandas', 'pandas', 'pyproj', 'scipy') if m in sys.modules]; "
        "lazy = [m for m in ('geocell.assign', 'geocell.cells', 'geocell.s2', 'geocell.boundaries') if m in sys.modules]; "
        "assert issubclass(geocell.InvalidCoordinateError, geocell.GeocellError); "
        "assert 'geocell.assign' not in sys.modules; "
        "print(heavy, lazy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "[]"]


# ----------------------------------------------------------------------------- one validator
BAD_COORDINATES = [
    ([0.0, np.nan], [0.0, 0.0], r"index 1: latitude missing \(NaN\)"),
    ([0.0, 91.0], [0.0, 0.0], r"index 1: latitude 91.0 is outside \[-90, 90\]"),
    ([0.0, "north"], [0.0, 0.0], r"index 1: latitude 'north' is not a number"),
    ([0.0, 1.0], [0.0, np.inf], r"index 1: longitude inf"),
]


@pytest.mark.parametrize(("lat", "lon", "match"), BAD_COORDINATES)
def test_s2_raises_invalid_coordinate_error(lat, lon, match):
    with pytest.raises(InvalidCoordinateError, match=match):
        geocell.s2_cell_ids(lat, lon, 10)


def _tiny_cellset():
    from geocell.cells import CellSet

    return CellSet(ids=np.array(["a"]), centroid_lat=np.array([0.0]), centroid_lon=np.array([0.0]),
                   counts=np.array([1]), country=np.array(["X"]), admin1=np.array(["X-1"]),
                   geometry=np.array([None], dtype=object), member_admin1=(("X-1",),), member_counts=((1,),),
                   admin1_country={"X-1": "X"}, kind="semantic", params={})


CALLS = {
    "check_latlon": lambda lat, lon: geocell.check_latlon(lat, lon),
    "s2_cell_ids": lambda lat, lon: geocell.s2_cell_ids(lat, lon, 5),
    "PolygonIndex.locate": lambda lat, lon: _box_index().locate(lat, lon),
    "CellSet.nearest_centroid": lambda lat, lon: _tiny_cellset().nearest_centroid(lat, lon),
    "build_s2": lambda lat, lon: geocell.build_s2(lat, lon, point_admin1=np.array(["X-1", "X-1"]),
                                                  admin1_country={"X-1": "X"}),
    "distance_metrics": lambda lat, lon: geocell.distance_metrics(lat, lon, [0.0, 0.0], [0.0, 0.0]),
}


def _box_index():
    import shapely

    return geocell.PolygonIndex([shapely.box(0, 0, 1, 1)])


@pytest.mark.parametrize("call", sorted(CALLS))
@pytest.mark.parametrize(("lat", "lon", "match"), BAD_COORDINATES)
def test_the_same_message_everywhere(call, lat, lon, match):
    """S2, assignment, cells and metrics all go through geocell.validate."""
    if call == "distance_metrics":  # names its arguments
        match = match.replace("latitude", "true_lat").replace("longitude", "true_lon")
    with pytest.raises(InvalidCoordinateError, match=match):
        CALLS[call](lat, lon)


def test_validation_names_the_argument_and_nd_index():
    with pytest.raises(InvalidCoordinateError, match=r"index 2: pred_lat 95.0 is outside"):
        geocell.distance_metrics([0.0] * 3, [0.0] * 3, [0.0, 0.0, 95.0], [0.0] * 3)
    lat = np.zeros((2, 3))
    lat[1, 2] = -91.0
    with pytest.raises(InvalidCoordinateError, match=r"index \(1, 2\): latitude -91.0"):
        geocell.check_latlon(lat, 0.0)


def test_s2_and_metrics_take_any_finite_longitude_but_assignment_does_not():
    assert geocell.s2_cell_ids(10.0, 370.0, 8) == geocell.s2_cell_ids(10.0, 10.0, 8)
    m = geocell.distance_metrics([10.0], [370.0], [10.0], [10.0])
    assert m.median_km == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(InvalidCoordinateError, match=r"longitude 370.0 is outside \[-180, 360\]"):
        geocell.check_latlon(10.0, 370.0)


# ----------------------------------------------------------------------------- keyword-only options
# Data arguments stay positional; every option (radius, thresholds, distances, taus, levels of a
# build, boundaries, flags) is keyword-only. S2's ``level`` is data: an array broadcast with the
# points, as h3's resolution.
DATA_ARGUMENTS = {
    "haversine": ("lat1", "lon1", "lat2", "lon2"),
    "haversine_matrix": ("lat_a", "lon_a", "lat_b", "lon_b"),
    "geodesic": ("lat1", "lon1", "lat2", "lon2"),
    "destination": ("lat", "lon", "bearing_deg", "distance_km"),
    "spherical_mean": ("lat", "lon", "weights"),
    "geoguessr_score": ("distance_km",),
    "accuracy_at": ("distance_km",),
    "distance_metrics": ("true_lat", "true_lon", "pred_lat", "pred_lon"),
    "classification_metrics": ("y_true", "proba", "labels"),
    "assign_country": ("lat", "lon"),
    "assign_admin1": ("lat", "lon"),
    "get_assigner": ("path",),
    "Assigner": ("admin1",),
    "Assigner.assign": ("self", "lat", "lon"),
    "Assigner.country": ("self", "lat", "lon"),
    "Assigner.admin1": ("self", "lat", "lon"),
    "PolygonIndex": ("geometries",),
    "PolygonIndex.nearest": ("self", "lat", "lon"),
    "build_s2": ("lat", "lon"),
    "build_semantic": ("lat", "lon"),
    "s2_cell_polygons": ("cell_ids",),
    "s2_cell_ids": ("lat", "lon", "level"),
    "label_points": ("lat", "lon"),
    "iso2_to_adm0": ("codes",),
    "adm0_to_iso2": ("codes",),
    "plot_cells": ("cells", "path"),
    "check_latlon": ("lat", "lon"),
    "check_coordinates": ("lat", "lon"),
}


@pytest.mark.parametrize("qualname", sorted(DATA_ARGUMENTS))
def test_options_are_keyword_only(qualname):
    owner, _, method = qualname.partition(".")
    func = getattr(geocell, owner)
    if method:
        func = getattr(func, method)
    positional = tuple(
        p.name for p in inspect.signature(func).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    )
    assert positional == DATA_ARGUMENTS[qualname]


@pytest.mark.parametrize(
    "call",
    [
        lambda: geocell.build_s2([10.0], [10.0], 50),
        lambda: geocell.build_s2([10.0], [10.0], 50, [5000, 2000], 2, 13),
        lambda: geocell.build_semantic([10.0], [10.0], 20, 120),
        lambda: geocell.assign_country(48.85, 2.35, 25.0),
        lambda: geocell.label_points([48.85], [2.35], 25.0),
        lambda: geocell.haversine(0.0, 0.0, 1.0, 1.0, 6371.0),
        lambda: geocell.distance_metrics([0.0], [0.0], [1.0], [1.0], (1.0, 25.0)),
        lambda: geocell.accuracy_at([1.0], (1.0,)),
        lambda: geocell.iso2_to_adm0("FR", False),
    ],
    ids=["build_s2-tau_min", "build_s2-all", "build_semantic", "assign_country", "label_points", "haversine",
         "distance_metrics", "accuracy_at", "iso2_to_adm0"],
)
def test_passing_options_positionally_is_a_type_error(call):
    with pytest.raises(TypeError, match="positional argument"):
        call()
