"""What choosing a tile's orientation buys: float NLL of a checkpoint on the validation split of
the training folder (never Kodak or eval), each tile coded as is or under each of the eight
dihedral transforms (rotations by k*90 degrees, each also transposed).

    python benchmarks/orientation_cost.py ../shared/data/train weights/train/default.ckpt.safetensors --tile 256

Reports, as mean bpsp over the images: as is; the best single transform per image; the best
per tile among all eight; the best per tile among the four mirrorings the codec offers (as is,
left-right, upside down, both: coder profile 3); with ``--proxy CKPT`` also the checkpoint's bits
when a cheaper proxy checkpoint picks each tile's mirroring (and how often the two agree).  Writes benchmarks/results/orientation_cost_<tile>.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from armcodec.coding.scan import tile_grid
from armcodec.training.data import list_images, load_rgb, split_train_val

# index 2*k + t: rot90 k times (counter-clockwise), then transposed if t
from armcodec.training.loop import load_checkpoint

# index 2*k + t: rot90 k times (counter-clockwise), then transposed if t
MIRRORINGS = {0: "as is", 3: "left-right", 7: "upside down", 4: "both"}


@torch.no_grad()
def tile_bits(model, x: torch.Tensor, which=range(8)) -> list[float]:
    """The model's float NLL bits of the tile under each transform of ``which`` (index 2*k + t)."""
    out = []
    for w in which:
        r = torch.rot90(x, w // 2, dims=(2, 3))
        z = r.transpose(2, 3) if w % 2 else r
        out.append(model(z.contiguous()).double().sum().item())
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--tile", type=int, default=128)
    ap.add_argument("--limit", type=int, default=8, help="validation images to use")
    ap.add_argument("--proxy", type=Path, help="a cheaper checkpoint that picks each tile's mirroring instead")
    a = ap.parse_args(argv)
    model, meta, _ = load_checkpoint(a.checkpoint)
    model.eval()
    proxy = None
    if a.proxy:
        proxy = load_checkpoint(a.proxy)[0]
        proxy.eval()
    _, val = split_train_val(list_images(a.data))
    rows = []
    for p, im in zip(val[: a.limit], load_rgb(val[: a.limit])):
        x = torch.from_numpy(im).float()[None]
        tiles = [x[:, :, t.y : t.y + t.h, t.x : t.x + t.w] for t in tile_grid(*im.shape[1:], a.tile)]
        b = np.array([tile_bits(model, z) for z in tiles])
        n = im.size
        mirror = b[:, sorted(MIRRORINGS)]
        rows.append({"image": p.name, "as_is": b[:, 0].sum() / n, "best_per_image": b.sum(0).min() / n,
                     "best_per_tile_8": b.min(1).sum() / n, "best_per_tile_mirrorings": mirror.min(1).sum() / n,
                     "picks_8": np.bincount(b.argmin(1), minlength=8).tolist()})
        if proxy is not None:  # the main model's bits at the mirroring the proxy finds cheapest
            pb = np.array([tile_bits(proxy, z, sorted(MIRRORINGS)) for z in tiles])
            picks = pb.argmin(1)
            rows[-1]["proxy_picks_mirrorings"] = mirror[np.arange(len(b)), picks].sum() / n
            rows[-1]["proxy_agrees"] = float((picks == mirror.argmin(1)).mean())
        print(rows[-1], flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k not in ("image", "picks_8")}
    print(json.dumps(mean, indent=1))
    out = Path(__file__).parent / "results" / f"orientation_cost_{a.tile}.json"
    out.write_text(json.dumps({"checkpoint_step": meta.get("step"), "tile": a.tile, "mean_bpsp": mean, "images": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
