"""Can the orientation search score fewer pixels?  On the validation split of the training folder
(never Kodak or eval), per 512x512 tile: the default model's float NLL under each of the four
mirrorings the codec offers (the truth), and the picks of the orientation proxy (``fast``'s float
copy, what the ``default`` preset uses) scored on the whole tile or on horizontal strips (``S``
rows out of every ``P``, each strip scored on its own, mirrored within itself so that every
orientation sees the same pixels).  Reports the default's bpsp at each way's picks and the proxy's
time.

    python -m benchmarks.experiments.row31_orient_strips ../shared/data/train --limit 12

Writes benchmarks/experiments/results/orient_strips.json.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import armcodec
from armcodec.coding.scan import tile_grid
from armcodec.encoder.search import orient
from armcodec.training.data import list_images, load_rgb, split_train_val

WAYS = {"whole": None, "strips 32/128": (32, 128), "strips 64/256": (64, 256), "strips 32/256": (32, 256),
        "strips 16/128": (16, 128)}


def strips(x: torch.Tensor, way) -> torch.Tensor:
    """(1, C, H, W) -> (n, C, S, W): the strips a way scores (the whole tile if way is None)."""
    if way is None:
        return x
    s, p = way
    h = x.shape[2]
    starts = [a + (p - s) // 2 for a in range(0, h - s + 1, p)] or [0]
    return torch.cat([x[:, :, a : a + s] for a in starts if a + s <= h] or [x], 0)


@torch.no_grad()
def bits(net, x: torch.Tensor) -> list[float]:
    return [float(net(orient(x, o).contiguous()).double().sum()) for o in range(4)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--limit", type=int, default=12)
    ap.add_argument("--tile", type=int, default=512)
    a = ap.parse_args(argv)
    truth_net = armcodec.Codec("max")._proxy_net()  # the default weights' own float copy
    proxy = armcodec.Codec("default")._proxy_net()  # fast's float copy
    _, val = split_train_val(list_images(a.data))
    n_px, tot = 0, {k: 0.0 for k in ["as is", "oracle", *WAYS]}
    secs = {k: 0.0 for k in WAYS}
    agree = {k: [] for k in WAYS}
    rows = []
    for p, im in zip(val[: a.limit], load_rgb(val[: a.limit])):
        x = torch.from_numpy(im).float()[None]
        for t in tile_grid(*im.shape[1:], a.tile):
            z = x[:, :, t.y : t.y + t.h, t.x : t.x + t.w]
            truth = np.array(bits(truth_net, z))
            tot["as is"] += truth[0]
            tot["oracle"] += truth.min()
            n_px += z.numel()
            row = {"image": p.name, "tile": [t.y, t.x], "truth": truth.tolist()}
            for k, way in WAYS.items():
                t0 = time.perf_counter()
                pb = np.array(bits(proxy, strips(z, way)))
                secs[k] += time.perf_counter() - t0
                pick = int(np.argmin(np.round(pb * 8)))
                tot[k] += truth[pick]
                agree[k].append(pick == int(truth.argmin()))
                row[k] = pick
            rows.append(row)
            print(row, flush=True)
    mean = {k: v / n_px for k, v in tot.items()}
    out = {"tile": a.tile, "images": a.limit, "subpixels": n_px, "bpsp_at_picks": mean,
           "proxy_seconds": secs, "agrees_with_oracle": {k: float(np.mean(v)) for k, v in agree.items()}, "tiles": rows}
    print(json.dumps({k: out[k] for k in ("bpsp_at_picks", "proxy_seconds", "agrees_with_oracle")}, indent=1))
    (Path(__file__).parent / "results" / "orient_strips.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
