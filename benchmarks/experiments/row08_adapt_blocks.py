"""What adaptation buys for each block size, on the validation photographs (never Kodak/eval).

    python benchmarks/adapt_blocks.py ../shared/data/train --images 3

For every whole 128x128 tile of the held-out images (every tenth training photograph by name)
it computes, with the encoder's estimate (``armcodec.coding.adapt.estimate_bits``), each
pixel's bits under every scale offset, then the bits when each block of 128, 64, 32 or 16
pixels (and each channel) takes its cheapest offset, plus 4 bits per offset sent.  Prints
bpsp without adaptation, with it, and the gain per block size; writes
``benchmarks/results/adapt_blocks.json``.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from armcodec.coding import adapt
from armcodec.coding.scan import Schedule, Tile
from armcodec.models.registry import get_model
from armcodec.models.pixelcnn_exact import WavefrontState
from armcodec.training.data import list_images, split_train_val

SIZES = (128, 64, 32, 16)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train", type=Path)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "adapt_blocks.json")
    a = ap.parse_args(argv)
    m = get_model(a.model, "cpu")
    net, cfg = m.net, m.net.cfg
    paths = split_train_val(list_images(a.train))[1][: a.images]
    sched = Schedule([Tile(0, 0, 128, 128)], cfg.slope)
    offsets = list(range(adapt.SHIFT_MIN, adapt.SHIFT_MAX + 1))
    plain = 0.0
    adapted = {b: 0.0 for b in SIZES}
    n = 0
    for p in paths:
        with Image.open(p) as im:
            img = np.asarray(im.convert("RGB"))
        for y in range(0, img.shape[0] - 127, 128):
            for x in range(0, img.shape[1] - 127, 128):
                v = torch.from_numpy(img[y + sched.i, x + sched.j].astype(np.int64))
                st = WavefrontState(net, 1, 128, "cpu")
                pos = st.flat_index(sched.n, sched.i, sched.j)
                st.write_pixels(pos, v)
                params = net.run(st, pos).long()
                bits = np.stack([np.stack([adapt.estimate_bits(params, v, c, cfg, m.luts, d).numpy() for d in offsets])
                                 for c in range(3)])  # (3, offsets, pixels)
                plain += bits[:, offsets.index(0)].sum()
                for b in SIZES:
                    block = (sched.i // b) * (128 // b) + sched.j // b
                    nb = (128 // b) ** 2
                    per = np.stack([bits[:, :, block == k].sum(2) for k in range(nb)])  # (blocks, 3, offsets)
                    adapted[b] += per.min(2).sum() + 4 * 3 * nb
                n += v.numel()
        print(p.name, f"plain {plain / n:.4f}", {b: round(t / n, 4) for b, t in adapted.items()}, flush=True)
    result = {"model": a.model, "weights_sha256": m.entry.sha256, "images": [p.name for p in paths], "subpixels": n,
              "plain_bpsp": plain / n,
              "adapted_bpsp": {str(b): t / n for b, t in adapted.items()},
              "gain_percent": {str(b): 100 * (1 - t / plain) for b, t in adapted.items()}}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["gain_percent"]))


if __name__ == "__main__":
    main()
