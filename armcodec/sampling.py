"""Draw images from a model (the generative side of an autoregressive model; ``armcodec sample``).

The decoder's scan, with a coder that draws each value from the exact integer tables the decoder
would pop it with (inverse CDF of ``2**PRECISION`` frequencies at a uniform integer: with binned
symbols, what new files use, the bin and then the value in it), no other coder tools.  The draws come from a seeded NumPy generator in scan order and the tables are integer-exact,
so a seed gives the same image on any machine, thread count or device.  Tiles are drawn
independently, as they are coded.
"""
from __future__ import annotations

import numpy as np
import torch

from armcodec import threads
from armcodec.coding.planes import image_coords, tile_batches
from armcodec.coding.scan import Schedule, scan, tile_grid
from armcodec.exact.tables import PRECISION, TableLUTs


class SamplingCoder:
    """The decoder's direction; every symbol drawn from its table (int64 (M, n) frequencies)."""

    reverse = False
    adaptation = None
    known = None  # every pixel drawn (no copied blocks)

    def __init__(self, n_pixels: int, channels: int, rng: np.random.Generator, device):
        self.values = torch.zeros((n_pixels, channels), dtype=torch.int64, device=device)
        self.rng = rng

    def code(self, a: int, b: int, c: int, tables, steps) -> torch.Tensor:
        symbols = []
        for level in range(tables.levels):
            q = tables.first() if level == 0 else tables.second(symbols[0])
            u = torch.from_numpy(self.rng.integers(0, 2**PRECISION, size=b - a, dtype=np.int64)).to(q.device)
            symbols.append(torch.searchsorted(torch.cumsum(q, 1), u.view(-1, 1), right=True).view(-1))
        v = tables.join(symbols)
        self.values[a:b, c] = v
        return v

    def end_step(self, steps) -> None:
        pass


def sample_image(model, luts: TableLUTs, height: int, width: int, tile: int, seed, device,
                 progress=None, binned: bool = True) -> tuple[np.ndarray, float]:
    """-> uint8 (height, width, model channels) drawn from the model, and its -log2 likelihood
    under the tables it was drawn from (bits).  ``seed``: anything ``np.random.default_rng`` takes.
    ``binned``: draw from the binned symbols' tables (new files' layout, since 0.11), else from
    the flat tables (0.10 and earlier drew from those)."""
    with threads.managed(device):
        return _sample(model, luts, height, width, tile, seed, device, progress, binned)


def _sample(model, luts, height, width, tile, seed, device, progress, binned):
    channels = model.cfg.image_channels
    rng = np.random.default_rng(seed)
    tiles = tile_grid(height, width, tile)
    out = np.zeros((height, width, channels), dtype=np.uint8)
    bits = 0.0
    for batch in tile_batches(tiles, model, tile, 1 << 30, decoding=True):
        bt = [tiles[k] for k in batch]
        sched = Schedule(bt, model, tile)
        coder = SamplingCoder(len(sched.n), channels, rng, device)
        bits += float(scan(sched, model.decoder_steps(bt, sched, tile, device, channels), coder, channels, model.cfg, luts,
                           binned=binned).sum())
        ys, xs = image_coords(bt, sched, None)
        out[ys, xs] = coder.values.cpu().numpy().astype(np.uint8)
        if progress:
            progress(len(batch))
    return out, bits
