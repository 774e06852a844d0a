"""Pack the training photographs compactly for a trip to the GPU machine (64 MiB limit per call).

    python benchmarks/pack_train.py ../shared/data/train .pack --area 0.6

Every image is stored as lossless WebP under its own stem, so the sorted order and therefore
``armcodec.train.split_train_val`` are unchanged.  Validation images (every tenth) are kept
whole, so the validation crops are exactly the ones a run on the original folder uses;
training images are cut to their central ``--area`` fraction (aspect kept) to fit the budget.
``python -m armcodec.train .pack ...`` then trains on the folder as usual.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from PIL import Image

from armcodec.train import list_images, split_train_val


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--area", type=float, default=0.6, help="fraction of each training image kept (central crop)")
    a = ap.parse_args(argv)
    paths = list_images(a.src)
    _, val = split_train_val(paths)
    val = set(val)
    a.dst.mkdir(parents=True, exist_ok=True)
    total = 0
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            if p not in val and a.area < 1:
                w, h = im.size
                k = math.sqrt(a.area)
                cw, ch = max(128, round(w * k)), max(128, round(h * k))
                left, top = (w - cw) // 2, (h - ch) // 2
                im = im.crop((left, top, left + cw, top + ch))
            out = a.dst / f"{p.stem}.webp"
            im.save(out, "WEBP", lossless=True, quality=100, method=4)
            total += out.stat().st_size
    print(f"{len(paths)} images ({len(val)} validation, whole) -> {a.dst}: {total / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
