"""Adaptation (coder profile 2): a scale offset per 32x32 block and channel, chosen by the encoder.

The model's predictive distributions are, on average, calibrated for its training crops; a given
block (a patch of sky, a textured wall) is often coded better with every logistic a little sharper
or wider.  For each block of ``BLOCK`` x ``BLOCK`` pixels of a tile (row-major inside the tile;
edge blocks are smaller) and each channel, the encoder tries the integer offsets
``SHIFT_MIN..SHIFT_MAX`` of the log2-scales (in 1/8 octave, the grid of the tables), estimates each
one's bits, and keeps the cheapest.  The offsets travel at the head of the tile's own ANS stream
(blocks x channels symbols of 4 bits, block-major), so the decoder reads them before the tile's
first pixel and builds exactly the encoder's tables; nothing else in the file changes.  The choice
only affects the encoder: the decoder never recomputes it.  Each pixel's estimate is rounded to
1/256 bit and summed as integers, so the choice (and the file) does not depend on summation order
or device unless a float64 log2 lands on a rounding boundary.
"""
from __future__ import annotations

import numpy as np
import torch

from armcodec.errors import FormatError
from armcodec.tables import (
    CDF_BITS,
    CDF_OFFSET,
    MEAN_STEPS,
    N_SYMBOLS,
    PRECISION,
    TableLUTs,
    mixture_params,
    mixture_weights,
)

BLOCK = 32
SHIFT_MIN, SHIFT_MAX = -8, 7
N_SHIFTS = SHIFT_MAX - SHIFT_MIN + 1


class Adaptation:
    """The offsets of a batch of tiles: ``shifts`` int64 (n_blocks, g) over the blocks of all tiles
    (tile after tile), and, for every pixel of the batch's schedule, its block (``block_of``)."""

    def __init__(self, block_of: torch.Tensor, blocks_per_block: list[int], shifts: torch.Tensor):
        self.block_of, self.blocks_per_block, self.shifts = block_of, blocks_per_block, shifts
        self.first = np.concatenate([[0], np.cumsum(blocks_per_block)]).astype(np.int64)

    @staticmethod
    def blocks(tiles, n: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Block of each pixel (tile n, row i, column j inside it) and the block count per tile."""
        across = np.array([-(-t.w // BLOCK) for t in tiles], dtype=np.int64)
        counts = [int(-(-t.h // BLOCK) * a) for t, a in zip(tiles, across)]
        first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return first[n] + (i // BLOCK) * across[n] + j // BLOCK, counts

    def at(self, a: int, b: int, channel: int) -> torch.Tensor:
        """int64 (b-a,): the offsets of pixels a..b of the schedule for ``channel``."""
        return self.shifts[self.block_of[a:b], channel]

    def tile_symbols(self, tile: int) -> np.ndarray:
        """The symbols at the head of the tile's stream, in decoding order."""
        rows = self.shifts[int(self.first[tile]) : int(self.first[tile + 1])]
        return to_symbols(rows.reshape(-1).cpu().numpy())


def side_tables(n: int) -> np.ndarray:
    """int64 (n, 256) table of one offset symbol: symbols 0..N_SHIFTS-1 equally likely, the others
    at the minimum frequency (a corrupted stream can decode them; they are refused)."""
    q = np.ones((n, N_SYMBOLS), dtype=np.int64)
    q[:, :N_SHIFTS] = (2**PRECISION - (N_SYMBOLS - N_SHIFTS)) // N_SHIFTS
    assert int(q[0].sum()) == 2**PRECISION
    return q


def side_bits(n: int) -> float:
    """-log2 probability of ``n`` offset symbols under :func:`side_tables`: part of the image's
    likelihood under the adapted model (a two-part code), so ``model_bits`` counts it."""
    q = side_tables(1)[0, 0]
    return n * float(np.log2(2**PRECISION / q))


def to_symbols(shifts: np.ndarray) -> np.ndarray:
    return np.asarray(shifts, dtype=np.int64) - SHIFT_MIN


def from_symbols(symbols: np.ndarray) -> np.ndarray:
    symbols = np.asarray(symbols, dtype=np.int64)
    if bool((symbols >= N_SHIFTS).any()):
        raise FormatError("tile stream starts with an invalid adaptation symbol (corrupted file)")
    return symbols + SHIFT_MIN


def estimate_bits(params: torch.Tensor, values: torch.Tensor, channel: int, cfg, luts: TableLUTs,
                  shift: int) -> torch.Tensor:
    """float64 (M,): -log2 of each value's probability under the mixture with every log2-scale
    offset by ``shift``, from the same lookup tables as the real tables (without their floor of
    one count per symbol, which costs well under 0.01 bit here)."""
    m = params.shape[0]
    known = values[:, :channel]
    s = torch.full((m,), shift, dtype=torch.int64, device=params.device)
    logits, means, scale_idx = mixture_params(params, channel, known, cfg, s)
    weights = mixture_weights(logits, cfg, luts)  # (M, K)
    x = values[:, channel : channel + 1]
    top = 2**CDF_BITS
    # cdf at the bin's upper (16x + 8) and lower (16x - 8) boundary; 1 above 255, 0 below 0
    hi = luts.cdf[scale_idx, (16 * x + MEAN_STEPS // 2 - means + CDF_OFFSET).clamp(0, 2 * CDF_OFFSET)]
    lo = luts.cdf[scale_idx, (16 * x - MEAN_STEPS // 2 - means + CDF_OFFSET).clamp(0, 2 * CDF_OFFSET)]
    hi = torch.where(x == N_SYMBOLS - 1, torch.full_like(hi, top), hi)
    lo = torch.where(x == 0, torch.zeros_like(lo), lo)
    mass = (weights * (hi - lo)).sum(1).double()
    total = (weights.sum(1) * top).double()
    p = (mass / total).clamp_min(2.0**-PRECISION)
    return -torch.log2(p)


def choose_shifts(params: torch.Tensor, values: torch.Tensor, block_of: torch.Tensor, n_blocks: int, cfg,
                  luts: TableLUTs, chunk: int = 1 << 16) -> torch.Tensor:
    """params: integer (M, n_params) of every pixel of a batch; values: int64 (M, g); block_of:
    int64 (M,) block of each pixel.  -> int64 (n_blocks, g): the offset of least estimated bits
    per block and channel (ties: the one nearest zero, then the smaller)."""
    g = values.shape[1]
    cands = sorted(range(SHIFT_MIN, SHIFT_MAX + 1), key=lambda d: (abs(d), d))
    best = torch.zeros((n_blocks, g), dtype=torch.int64, device=params.device)
    for c in range(g):
        best_bits = None
        for d in cands:
            per_block = torch.zeros(n_blocks, dtype=torch.int64, device=params.device)
            for a in range(0, len(values), chunk):  # bounded temporaries
                est = estimate_bits(params[a : a + chunk], values[a : a + chunk], c, cfg, luts, d)
                # integer sums (1/256 bit per pixel): the same totals in any order, on any device
                per_block.index_add_(0, block_of[a : a + chunk], torch.round(est * 256).long())
            if best_bits is None:
                best_bits = per_block
                best[:, c] = d
            else:
                better = per_block < best_bits
                best_bits = torch.where(better, per_block, best_bits)
                best[:, c] = torch.where(better, torch.full_like(best[:, c], d), best[:, c])
    return best
