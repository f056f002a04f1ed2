"""Label coordinates with country and admin-1, as a table (what ``cli.py label`` runs).

Example:
    >>> labels = label_points([48.8566, -33.8688], [2.3522, 151.2093])
    >>> labels[["adm0_a3", "country", "admin1"]].values.tolist()
    [['FRA', 'France', 'Paris'], ['AUS', 'Australia', 'New South Wales']]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .constants import ASSIGN_MAX_DISTANCE_KM
from .validate import check_latlon

__all__ = ["LABEL_COLUMNS", "label_points", "format_label_summary"]

#: Columns added by :func:`label_points`, in order.
LABEL_COLUMNS: tuple[str, ...] = ("adm0_a3", "iso_a2", "country", "adm1_code", "admin1", "assign_distance_km")

_CHUNK = 250_000


def label_points(
    lat: Any,
    lon: Any,
    *,
    max_distance_km: float = ASSIGN_MAX_DISTANCE_KM,
    progress: bool = False,
    boundaries: Any = None,
):
    """Country and admin-1 codes and names of each point, as a DataFrame.

    Args:
        lat, lon: ``(N,)`` degrees (validated with :func:`geocell.validate.check_latlon`;
            longitudes in (180, 360] are accepted).
        max_distance_km: points outside every unit go to the nearest one within this distance.
        progress: show a progress bar (useful above a few million points).
        boundaries: an admin-1 file / GeoDataFrame / Assigner; the shipped layer when None.

    Returns:
        DataFrame with :data:`LABEL_COLUMNS`: ``adm0_a3`` (Natural Earth country code),
        ``iso_a2`` (ISO 3166-1 alpha-2 or Natural Earth's stand-in, see
        :func:`geocell.boundaries.country_codes`), ``country`` (name), ``adm1_code``,
        ``admin1`` (name), ``assign_distance_km`` (0 inside a unit, km to the nearest unit for
        points just outside, NaN where nothing is within reach and the codes are ``""``).

    Raises:
        InvalidCoordinateError: a non-numeric, NaN or out-of-range coordinate (index named).
    """
    from tqdm.auto import tqdm

    from .assign import _assigner_for

    lat, lon, _ = check_latlon(lat, lon)  # here, so that messages give indices of the whole input
    lat, lon = lat.reshape(-1), lon.reshape(-1)
    assigner = _assigner_for(boundaries)
    index = np.empty(lat.size, dtype=np.int64)
    distance = np.empty(lat.size, dtype=np.float64)
    with tqdm(total=lat.size, unit="pt", disable=not progress or lat.size <= _CHUNK, desc="assigning") as bar:
        for start in range(0, lat.size, _CHUNK):
            sl = slice(start, start + _CHUNK)
            result = assigner.assign(lat[sl], lon[sl], max_distance_km=max_distance_km)
            index[sl], distance[sl] = result.index, result.distance_km
            bar.update(index[sl].size)
    table = _unit_table(assigner)
    rows = table.iloc[index].reset_index(drop=True)  # index -1 is the trailing empty row
    rows["assign_distance_km"] = distance
    return rows[list(LABEL_COLUMNS)]


def _unit_table(assigner):
    """One row per admin-1 unit of the assigner plus a trailing row of empty labels."""
    import pandas as pd

    from .boundaries import load_admin1

    if getattr(assigner, "_label_table", None) is None:
        admin1 = load_admin1()
        names = admin1.set_index("adm1_code")
        codes = assigner.adm1_codes[:-1]
        known = pd.Index(codes).isin(names.index)
        table = pd.DataFrame({
            "adm0_a3": assigner.adm0_codes[:-1],
            "adm1_code": codes,
            "admin1": np.where(known, names["name"].reindex(codes).fillna("").to_numpy(), ""),
            "country": np.where(known, names["admin"].reindex(codes).fillna("").to_numpy(), ""),
            "iso_a2": np.where(known, names["iso_a2"].reindex(codes).fillna("").to_numpy(), ""),
        })
        empty = pd.DataFrame({c: [""] for c in table.columns})
        assigner._label_table = pd.concat([table, empty], ignore_index=True)
    return assigner._label_table


def format_label_summary(labels, *, seconds: float | None = None, top: int = 10) -> str:
    """A short text report: points, countries, unassigned and offshore counts, top countries."""
    n = len(labels)
    assigned = labels["adm0_a3"] != ""
    offshore = assigned & (labels["assign_distance_km"] > 0)
    lines = [
        f"points: {n:,}" + (f" in {seconds:.1f} s (loading the boundaries and building the index included)" if seconds else ""),
        f"countries: {labels.loc[assigned, 'adm0_a3'].nunique()}   admin-1 units: {labels.loc[assigned, 'adm1_code'].nunique()}",
        f"inside a unit: {int((assigned & ~offshore).sum()):,}   just outside (nearest unit within reach): "
        f"{int(offshore.sum()):,}   unassigned (at sea): {int((~assigned).sum()):,}",
        "",
        f"{'adm0_a3':<8}{'country':<28}{'points':>8}{'share':>8}",
    ]
    counts = labels.loc[assigned].groupby(["adm0_a3", "country"]).size().sort_values(ascending=False)
    for (code, name), count in counts.head(top).items():
        lines.append(f"{code:<8}{name[:27]:<28}{count:>8,}{count / n:>8.1%}")
    return "\n".join(lines)
