"""Side information at the head of each tile stream, decoder-exact: the adaptation (a scale offset
per 32x32 block and channel; coder tool 1) and the orientation of each tile (tool 2), their symbol
tables, and the tile's pixel coordinates under an orientation.  The encoder's searches that choose
them are in :mod:`armcodec.encoder.search`.

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

Orientation (tool 2): a tile may be coded mirrored left-right, upside down, or both (rotated
by 180 degrees), so that the causal context sees the tile's structure from the side the model
predicts best (on 8 validation photographs, float NLL in 128x128 tiles: -0.34% with all eight
dihedral transforms chosen per tile, and the four mirrorings above got most picks; no transposes,
so a tile keeps its shape).  The orientation is one symbol heading the tile's stream, before its
offsets, and the offsets' blocks are those of the coded (mirrored) tile.  The encoder picks it
from a float copy of the network (the model's ``float_proxy``, within about 0.01%
of the exact bits), far faster than the exact integer pass; a float estimate on another device
could, on a near tie, pick another orientation, which changes the file but never its decoding.
"""
from __future__ import annotations

import numpy as np
import torch

from armcodec.errors import FormatError
from armcodec.exact.tables import N_SYMBOLS, PRECISION

BLOCK = 32
SHIFT_MIN, SHIFT_MAX = -8, 7
N_SHIFTS = SHIFT_MAX - SHIFT_MIN + 1
N_ORIENTATIONS = 4  # bit 0: mirrored left-right, bit 1: upside down


class Adaptation:
    """The offsets of a batch of tiles: ``shifts`` int64 (n_blocks, g) over the blocks of all tiles
    (tile after tile), and, for every pixel of the batch's schedule, its block (``block_of``)."""

    def __init__(self, block_of: torch.Tensor, blocks_per_block: list[int], shifts: torch.Tensor,
                 orientations: np.ndarray | None = None):
        self.block_of, self.blocks_per_block, self.shifts = block_of, blocks_per_block, shifts
        self.orientations = orientations  # int64 (tiles of the batch,) with the orientation tool, else None
        self.first = np.concatenate([[0], np.cumsum(blocks_per_block)]).astype(np.int64)

    @staticmethod
    def blocks(tiles, n: np.ndarray, i: np.ndarray, j: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """Block of each pixel (tile n, row i, column j inside it) and the block count per tile."""
        across = np.array([-(-t.w // BLOCK) for t in tiles], dtype=np.int64)
        counts = [int(-(-t.h // BLOCK) * a) for t, a in zip(tiles, across)]
        first = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return first[n] + (i // BLOCK) * across[n] + j // BLOCK, counts

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
