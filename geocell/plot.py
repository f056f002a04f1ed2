"""World maps of geocells (``cli.py cells plot``). Matplotlib is imported inside the function,
with its own Agg canvas: nothing global is touched."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

__all__ = ["plot_cells"]


def plot_cells(cells: Any, path: str | Path, *, points: Optional[tuple[np.ndarray, np.ndarray]] = None,
               max_points: int = 50_000, seed: int = 0) -> Path:
    """Draw the cells in random colours over country outlines, with points on top; write a PNG.

    Args:
        cells: a :class:`geocell.CellSet`.
        path: the PNG to write (atomically).
        points: optional ``(lat, lon)`` arrays, degrees; at most ``max_points`` are drawn.
    """
    import shapely
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.collections import PatchCollection
    from matplotlib.figure import Figure
    from matplotlib.patches import Polygon as MplPolygon

    from .boundaries import load_admin0
    from .tables import atomic_write

    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(14, 7), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    patches, colours = [], []
    palette = rng.random((len(cells), 3)) * 0.7 + 0.25
    for k, geom in enumerate(cells.geometry):
        for part in shapely.get_parts(geom):
            if part.geom_type == "Polygon" and not part.is_empty:
                patches.append(MplPolygon(np.asarray(part.exterior.coords), closed=True))
                colours.append(palette[k])
    ax.add_collection(PatchCollection(patches, facecolors=colours, edgecolors="white", linewidths=0.2, alpha=0.85))
    outlines = shapely.get_parts(shapely.boundary(np.asarray(load_admin0().geometry.values, dtype=object)))
    for line in shapely.get_parts(outlines):
        xy = np.asarray(line.coords)
        ax.plot(xy[:, 0], xy[:, 1], color="0.35", linewidth=0.25)
    if points is not None:
        lat, lon = np.asarray(points[0]), np.asarray(points[1])
        if lat.size > max_points:
            keep = rng.choice(lat.size, max_points, replace=False)
            lat, lon = lat[keep], lon[keep]
        ax.scatter(lon, lat, s=0.6, c="black", alpha=0.6, linewidths=0)
    s = cells.summary()
    ax.set_title(f"{s['cells']} {s['kind']} cells, {s['samples']:,} training points "
                 f"(per cell: min {s['samples_per_cell_min']}, median {s['samples_per_cell_median']:.0f}, "
                 f"max {s['samples_per_cell_max']})")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-90, 90)
    ax.set_aspect("equal")
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
