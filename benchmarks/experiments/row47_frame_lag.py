"""Could the decoder run frame t+1's wavefront in the scan of frame t, a fixed number of steps
behind it (more rows per step, fewer steps per frame)?  Only if every previous-frame sample a
pixel of t+1 reads was decoded at an earlier step.  For a plane of H x W in tiles of T, the
temporal model's window (reach r) around each moved position, with motion vectors of at most m:
the lag is max over pixels of (the latest step its window reads - its own step) + 1.

    python -m benchmarks.experiments.row47_frame_lag [--out FILE]

Prints and writes (``results/frame_lag.json``) the lag, against the T + 3(T - 1) steps of a
tile, with the window reading across tile borders (the format since 0.4) and, for comparison,
confined to its own tile (a format change: window positions outside the tile read as outside
the frame, and the moved sources clamped into the tile).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from armcodec.coding.scan import tile_grid

HERE = Path(__file__).parent
SLOPE = 3  # the wavefront: pixel (i, j) of a tile at step j + 3 i


def steps_and_tiles(h: int, w: int, tile: int) -> tuple[np.ndarray, np.ndarray]:
    steps, owner = np.empty((h, w), np.int64), np.empty((h, w), np.int64)
    for k, t in enumerate(tile_grid(h, w, tile)):
        i, j = np.meshgrid(np.arange(t.h), np.arange(t.w), indexing="ij")
        steps[t.y : t.y + t.h, t.x : t.x + t.w] = j + SLOPE * i
        owner[t.y : t.y + t.h, t.x : t.x + t.w] = k
    return steps, owner


def lag(h: int, w: int, tile: int, reach: int, vector: tuple[int, int], own_tile: bool) -> int:
    """Every block moved by the same vector (dy, dx), the worst case of that length."""
    steps, owner = steps_and_tiles(h, w, tile)
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    top, left = (ys // tile) * tile, (xs // tile) * tile  # each pixel's tile
    bottom, right = np.minimum(top + tile, h) - 1, np.minimum(left + tile, w) - 1
    worst = np.full((h, w), np.iinfo(np.int64).min, np.int64)
    for di in range(-reach, reach + 1):
        for dj in range(-reach, reach + 1):
            qy, qx = ys + di, xs + dj  # the moved frame's position in the window
            inside = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
            sy, sx = np.clip(qy + vector[0], 0, h - 1), np.clip(qx + vector[1], 0, w - 1)
            if own_tile:  # the window stops at the tile's edges; the source is clamped into the tile
                inside &= owner[np.clip(qy, 0, h - 1), np.clip(qx, 0, w - 1)] == owner
                sy = np.clip(qy + vector[0], top, bottom)
                sx = np.clip(qx + vector[1], left, right)
            worst = np.where(inside, np.maximum(worst, steps[sy, sx]), worst)
    return int((worst - steps).max()) + 1


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "frame_lag.json")
    a = ap.parse_args(argv)
    rows = []
    for (h, w), tile in (((288, 352), 128), ((144, 176), 128), ((288, 352), 64)):
        for vector in ((0, 0), (4, 4), (16, 16), (-16, -16)):
            for own in (False, True):
                rec = {"plane": f"{w}x{h}", "tile": tile, "tile_steps": tile + SLOPE * (tile - 1), "reach": 2,
                       "vector": vector, "window": "own tile" if own else "across tiles",
                       "lag": lag(h, w, tile, 2, vector, own)}
                rows.append(rec)
                print(rec, flush=True)
    a.out.write_text(json.dumps(rows, indent=1) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
