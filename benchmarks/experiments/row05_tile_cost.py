"""What tile borders cost: float NLL of a checkpoint on the validation split of the training
folder (never Kodak or eval), coding each image whole or in tiles of several sizes.

    python benchmarks/tile_cost.py ../shared/data/train weights/train/default.ckpt.safetensors

Writes benchmarks/results/tile_cost.json.  Decode steps per tile are T + slope*(T-1).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.experiments.row13_quant_gap import tiled_bits  # noqa: E402

from armcodec.training.data import list_images, load_rgb, split_train_val  # noqa: E402
from armcodec.training.loop import load_checkpoint  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--tiles", default="32,64,128,256,0", help="tile sizes, 0 = whole image")
    ap.add_argument("--limit", type=int, default=8, help="validation images to use")
    a = ap.parse_args(argv)
    model, meta, _ = load_checkpoint(a.checkpoint)
    model.eval()
    _, val = split_train_val(list_images(a.data))
    images = [im.transpose(1, 2, 0) for im in load_rgb(val[: a.limit])]
    res = {}
    for t in (int(x) for x in a.tiles.split(",")):
        bits = [tiled_bits(model, im, t or max(im.shape), qat=False) / im.size for im in images]
        res[t or "whole"] = float(np.mean(bits))
        print(t or "whole", res[t or "whole"], flush=True)
    out = Path(__file__).parent / "results" / "tile_cost.json"
    out.write_text(json.dumps({"checkpoint_step": meta.get("step"), "images": [p.name for p in val[: a.limit]],
                               "float_bpsp_by_tile": res, "slope": model.cfg.slope}, indent=1) + "\n")


if __name__ == "__main__":
    torch.set_num_threads(torch.get_num_threads())
    main()
