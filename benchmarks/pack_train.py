"""Pack the training photographs compactly for a trip to the GPU machine (64 MiB limit per call).

    python benchmarks/pack_train.py ../shared/data/train .pack --area 0.5      # one pack, central crops
    python benchmarks/pack_train.py ../shared/data/train .pack --parts 3       # every pixel, in 3 packs
    python benchmarks/pack_train.py --join .pack/part0 .pack/part1 .pack/part2 /tmp/train   # there

Every image is stored as lossless WebP under its own stem, so the sorted order and therefore
``armcodec.training.data.split_train_val`` are unchanged.  With ``--area`` validation images (every
tenth) are kept whole, so the validation crops are exactly the ones a run on the original
folder uses, and training images are cut to their central ``--area`` fraction (aspect kept).
With ``--parts N`` every image is cut into N horizontal strips and part k holds strip k of all
of them (``dst/part<k>``): each part travels in its own call, and ``--join`` puts the strips back
together into exactly the original pixels.  ``python -m armcodec.training FOLDER ...`` then trains
on the folder as usual.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

from PIL import Image

from armcodec.training.data import list_images, split_train_val


def _save(im: Image.Image, out: Path) -> int:
    im.save(out, "WEBP", lossless=True, quality=100, method=4)
    return out.stat().st_size


def pack(src: Path, dst: Path, area: float, parts: int) -> None:
    paths = list_images(src)
    _, val = split_train_val(paths)
    val = set(val)
    folders = [dst / f"part{k}" for k in range(parts)] if parts > 1 else [dst]
    for f in folders:
        f.mkdir(parents=True, exist_ok=True)
    total = 0
    for p in paths:
        with Image.open(p) as im:
            im = im.convert("RGB")
            w, h = im.size
            if parts > 1:
                cuts = [round(h * k / parts) for k in range(parts + 1)]
                for f, top, bottom in zip(folders, cuts, cuts[1:]):
                    total += _save(im.crop((0, top, w, bottom)), f / f"{p.stem}.webp")
                continue
            if p not in val and area < 1:
                k = math.sqrt(area)
                cw, ch = max(128, round(w * k)), max(128, round(h * k))
                left, top = (w - cw) // 2, (h - ch) // 2
                im = im.crop((left, top, left + cw, top + ch))
            total += _save(im, dst / f"{p.stem}.webp")
    print(f"{len(paths)} images ({len(val)} validation) -> {dst}: {total / 2**20:.1f} MiB"
          + (f" in {parts} parts" if parts > 1 else ""))


def join(parts: list[Path], dst: Path) -> None:
    """Stack the strips of every image (parts in order) back into one lossless WebP per image."""
    dst.mkdir(parents=True, exist_ok=True)
    names = [sorted(q.name for q in f.glob("*.webp")) for f in parts]
    if any(n != names[0] for n in names):
        raise SystemExit("join: the parts do not hold the same images")
    for name in names[0]:
        strips = [Image.open(f / name).convert("RGB") for f in parts]
        w = strips[0].width
        if any(s.width != w for s in strips):
            raise SystemExit(f"join: {name}: strips of different widths")
        im = Image.new("RGB", (w, sum(s.height for s in strips)))
        y = 0
        for s in strips:
            im.paste(s, (0, y))
            y += s.height
        im.save(dst / name, "WEBP", lossless=True, quality=100, method=0)
    print(f"{len(names[0])} images -> {dst}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", type=Path, nargs="+", help="SRC DST, or with --join PART... DST")
    ap.add_argument("--area", type=float, default=0.6, help="fraction of each training image kept (central crop)")
    ap.add_argument("--parts", type=int, default=1, help="cut every whole image into this many strips, one pack each")
    ap.add_argument("--join", action="store_true", help="put the strips of --parts packs back together")
    a = ap.parse_args(argv)
    if a.join:
        if len(a.paths) < 2:
            ap.error("--join needs the parts and a destination")
        join(a.paths[:-1], a.paths[-1])
    else:
        if len(a.paths) != 2:
            ap.error("expected SRC DST")
        pack(a.paths[0], a.paths[1], a.area, a.parts)


if __name__ == "__main__":
    main()
