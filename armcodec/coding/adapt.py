"""Adaptation, chosen by the encoder and sent: a scale offset per 32x32 block and channel (coder
profile 2), and with profile 3 also an orientation per tile.

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

Orientation (profile 3): a tile may be coded mirrored left-right, upside down, or both (rotated
by 180 degrees), so that the causal context sees the tile's structure from the side the model
predicts best (on 8 validation photographs, float NLL in 128x128 tiles: -0.34% with all eight
dihedral transforms chosen per tile, and the four mirrorings above got most picks; no transposes,
so a tile keeps its shape).  The orientation is one symbol heading the tile's stream, before its
offsets, and the offsets' blocks are those of the coded (mirrored) tile.  The encoder picks it
from a float copy of the network (:meth:`armcodec.quant.IntPixelCNN.to_float`, within about 0.01%
of the exact bits), far faster than the exact integer pass; a float estimate on another device
could, on a near tie, pick another orientation, which changes the file but never its decoding.
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
N_ORIENTATIONS = 4  # bit 0: mirrored left-right, bit 1: upside down
PROXY_PIXELS = 1 << 16  # pixels per float pass of the orientation search (bounds its memory)


class Adaptation:
    """The offsets of a batch of tiles: ``shifts`` int64 (n_blocks, g) over the blocks of all tiles
    (tile after tile), and, for every pixel of the batch's schedule, its block (``block_of``)."""

    def __init__(self, block_of: torch.Tensor, blocks_per_block: list[int], shifts: torch.Tensor,
                 orientations: np.ndarray | None = None):
        self.block_of, self.blocks_per_block, self.shifts = block_of, blocks_per_block, shifts
        self.orientations = orientations  # int64 (tiles of the batch,) with profile 3, else None
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


def side_tables(n: int, values: int = N_SHIFTS) -> np.ndarray:
    """int64 (n, 256) table of one side symbol (an offset, or with ``values=N_ORIENTATIONS`` an
    orientation): symbols 0..values-1 equally likely, the others at the minimum frequency (a
    corrupted stream can decode them; they are refused)."""
    q = np.ones((n, N_SYMBOLS), dtype=np.int64)
    q[:, :values] += (2**PRECISION - N_SYMBOLS) // values
    q[:, 0] += 2**PRECISION - int(q[0].sum())
    assert int(q[0].sum()) == 2**PRECISION
    return q


def side_bits(n: int, values: int = N_SHIFTS) -> float:
    """-log2 probability of ``n`` side symbols under :func:`side_tables` (symbol 1: the smallest
    of the equally likely ones, within 2**-20 of the others): part of the image's likelihood
    under the adapted model (a two-part code), so ``model_bits`` counts it."""
    q = side_tables(1, values)[0, 1]
    return n * float(np.log2(2**PRECISION / q))


def to_symbols(shifts: np.ndarray) -> np.ndarray:
    return np.asarray(shifts, dtype=np.int64) - SHIFT_MIN


def from_symbols(symbols: np.ndarray) -> np.ndarray:
    symbols = np.asarray(symbols, dtype=np.int64)
    if bool((symbols >= N_SHIFTS).any()):
        raise FormatError("tile stream starts with an invalid adaptation symbol (corrupted file)")
    return symbols + SHIFT_MIN


def orientation_from_symbol(symbol: int) -> int:
    if not 0 <= int(symbol) < N_ORIENTATIONS:
        raise FormatError("tile stream starts with an invalid orientation symbol (corrupted file)")
    return int(symbol)


def tile_coords(o: np.ndarray, h: np.ndarray, w: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row and column inside the tile (height h, width w) of the coded pixel (i, j) under
    orientation o; all int64 arrays of one length.  Each orientation is its own inverse."""
    return np.where(o & 2, h - 1 - i, i), np.where(o & 1, w - 1 - j, j)


def orient(x: torch.Tensor, o: int) -> torch.Tensor:
    """(..., H, W) tensor as coded under orientation o (its own inverse)."""
    dims = [d for d, bit in ((-1, 1), (-2, 2)) if o & bit]
    return torch.flip(x, dims) if dims else x


@torch.no_grad()
def choose_orientations(proxy, tiles: list[np.ndarray], device) -> np.ndarray:
    """proxy: float PixelCNN (:meth:`~armcodec.quant.IntPixelCNN.to_float`); tiles: uint8 (h, w, g)
    arrays, g = 1 (fed to every model channel, scored on channel 0, as the coder does) or the
    model's channels.  -> int64 (len(tiles),): per tile the orientation of least estimated bits
    (sums rounded to 1/8 bit; ties: the lower number)."""
    best = np.zeros(len(tiles), dtype=np.int64)
    by_shape: dict[tuple, list[int]] = {}
    for k, t in enumerate(tiles):
        by_shape.setdefault(t.shape, []).append(k)
    for (h, w, g), ks in by_shape.items():
        per_call = max(1, PROXY_PIXELS // (h * w))
        for a in range(0, len(ks), per_call):
            idx = ks[a : a + per_call]
            x = torch.from_numpy(np.stack([tiles[k] for k in idx])).to(device).permute(0, 3, 1, 2).float()
            x = x.expand(-1, proxy.cfg.image_channels, -1, -1) if g == 1 else x
            bits = torch.stack([proxy(orient(x, o).contiguous())[:, :g].double().sum((1, 2, 3))
                                for o in range(N_ORIENTATIONS)], 1)  # (tiles, orientations)
            best[idx] = torch.round(bits * 8).argmin(1).cpu().numpy()
    return best


def estimate_bits(params: torch.Tensor, values: torch.Tensor, channel: int, cfg, luts: TableLUTs,
                  shift: int, mean_shift: torch.Tensor | None = None) -> torch.Tensor:
    """float64 (M,): -log2 of each value's probability under the mixture with every log2-scale
    offset by ``shift`` (and the means by ``mean_shift``, int64 (M,), if given), from the same lookup tables as the real tables (without their floor of
    one count per symbol, which costs well under 0.01 bit here)."""
    m = params.shape[0]
    known = values[:, :channel]
    s = torch.full((m,), shift, dtype=torch.int64, device=params.device)
    logits, means, scale_idx = mixture_params(params, channel, known, cfg, s, mean_shift)
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
                  luts: TableLUTs, chunk: int = 1 << 16, mean_shifts: torch.Tensor | None = None) -> torch.Tensor:
    """params: integer (M, n_params) of every pixel of a batch; values: int64 (M, g); block_of:
    int64 (M,) block of each pixel; mean_shifts: int64 (M, g) residual feedback of every pixel, or None.  -> int64 (n_blocks, g): the offset of least estimated bits
    per block and channel (ties: the one nearest zero, then the smaller)."""
    g = values.shape[1]
    cands = sorted(range(SHIFT_MIN, SHIFT_MAX + 1), key=lambda d: (abs(d), d))
    best = torch.zeros((n_blocks, g), dtype=torch.int64, device=params.device)
    for c in range(g):
        best_bits = None
        for d in cands:
            per_block = torch.zeros(n_blocks, dtype=torch.int64, device=params.device)
            for a in range(0, len(values), chunk):  # bounded temporaries
                ms = None if mean_shifts is None else mean_shifts[a : a + chunk, c]
                est = estimate_bits(params[a : a + chunk], values[a : a + chunk], c, cfg, luts, d, ms)
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
