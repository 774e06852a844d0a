"""Residual feedback (coder tool 3), decoder-exact: the encoder fits, per tile and channel, a linear
prediction of the model's residual from the residuals around it, and sends the coefficients; this
module computes the features and mean shifts both sides must agree on, and reads and writes the
coefficients as stream symbols.  The fit is :mod:`armcodec.encoder.feedback_fit`.

The network predicts each subpixel from the pixels before it, but what it gets wrong is often
correlated from pixel to pixel and from channel to channel: film grain, sensor noise and
demosaicking leave residual structure that the model, trained on downscaled photographs, does
not expect.  Here a subpixel's *residual* is ``16 * x - E``, in 1/16 level, where ``E`` is the
mean of the model's own mixture for it (integer weights from the lookup table, floor division;
including the coupling to the earlier channels of the pixel, without any feedback).  Before the
tables of channel ``c`` of a pixel are built, every component mean moves by

    delta = floor(sum_f a_f * r_f / COEF_STEPS)

over the features ``r_f``: the residuals of channel ``c`` at the causal neighbours
:data:`CANDIDATES` (those the model's schedule codes earlier, ``model.precedes``; outside the
tile they read 0) and the
residuals of the pixel's earlier channels.  The integer coefficients ``a_f`` (1/64, in
[-128, 127]) are chosen by the encoder (:mod:`armcodec.encoder.feedback_fit`) and travel at the head of
the tile's stream after the adaptation offsets, ``sum_c (n_neighbours + c)`` symbols of 8 bits.
Residuals depend only on the model and the pixels, never on the feedback, so the encoder gets
all of them in one pass, and the decoder computes each one as soon as its subpixel is decoded.
All of it is integer arithmetic: identical on any device.

Three feature sets exist (the file's feedback tool names one, see :data:`FEATURE_SETS`; new files
use set 3, sets 1 and 2 are read for the files armcodec 0.1 wrote): set 1 is the above; set 2 adds the residuals of the group's
*other* channels at the :data:`CROSS` neighbours (left and above: coded on earlier wavefront
steps, all channels of them) and a constant feature :data:`CONSTANT` (a bias per tile and
channel: one coefficient step moves the means by 1/16 level, the range is +-8 levels), so
``n_neighbours + c + 2 (g - 1) + 1`` coefficients per channel of a g-channel group.  Set 3 has set 2's features, and lets the encoder send the coefficients at one of
:data:`LEVELS` levels per tile: once for the tile (level 0), once per quarter (level 1: squares of
half the nominal tile size rounded up, in coded coordinates) or once per sixteenth (level 2:
squares of a quarter of it, rounded up).  A level symbol (equally likely values) heads the
tile's coefficients, then one coefficient set for each block of that level that holds pixels of
the tile, blocks in row-major order.  The encoder picks the level.  Sets 1 and 2 send each coefficient as 8 bits
(equally likely values); set 3 codes them with a two-sided geometric distribution around 0
(:func:`coef_table`, fitted coefficients are mostly a few steps from 0) whose spread, one of
:data:`N_SCALES`, the encoder picks per tile and sends after the level symbol.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from armcodec.coding.side import side_bits, side_tables
from armcodec.errors import FormatError
from armcodec.exact import fused
from armcodec.exact.tables import MEAN_MAX_Q, MEAN_MIN_Q, N_SYMBOLS, PRECISION, TableLUTs, channel_mixture

# (row, column) offsets, nearest first; those on an earlier wavefront step are used
CANDIDATES = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0), (-1, 2), (-2, -1), (-2, 1))
PAD = 2  # rows above and columns either side that the offsets reach
COEF_STEPS = 64
COEF_MIN, COEF_MAX = -128, 127
N_COEF_VALUES = COEF_MAX - COEF_MIN + 1
CROSS = ((0, -1), (-1, 0))  # feature set 2: the other channels' residuals at these offsets
CONSTANT = 64  # feature set 2: the constant feature (1/16 level), so a coefficient step moves means by 1/16 level
FEATURE_SETS = (1, 2, 3)
LATEST = 3  # the feature set new files use (sets 1 and 2 are only read)
LEVELS = 3  # feature set 3: the tile, its quarters, its sixteenths
LEVEL_ROWS = (0, 1, 5)  # feature set 3: the first coefficient row of each level within a tile's rows
SETS = 21  # feature set 3: coefficient rows per tile (1 + 4 + 16; a tile uses those of its level)
# feature set 3: the coefficients' geometric distributions, P(v) ~ r**|v|, r = exp(-1/b) for
# b = 0.5, 1, 2, ..., 64 coefficient steps, as integers in 1/65536 (fixed here, not computed, so
# that every machine builds the same tables)
COEF_RATIOS = (8869, 24109, 39750, 51039, 57835, 61565, 63520, 64520)
N_SCALES = len(COEF_RATIOS)


def usable(precedes) -> bool:
    """Whether a model's schedule allows the feedback of sets 2 and 3, whose :data:`CROSS`
    neighbours must be coded before every pixel (the wavefront PixelCNN's are; a multi-scale
    model codes a pixel's left and upper neighbours after it on its coarser levels)."""
    return all(precedes(di, dj) for di, dj in CROSS)


def neighbours(precedes) -> list[tuple[int, int]]:
    """The offsets of :data:`CANDIDATES` coded before the pixel: ``precedes(di, dj)`` (the model's)."""
    return [(di, dj) for di, dj in CANDIDATES if precedes(di, dj)]


def n_features(n_neighbours: int, channel: int, channels: int, features: int = 1) -> int:
    """Coefficients of ``channel`` in a group of ``channels`` under feature set ``features``, with
    ``n_neighbours`` causal neighbours."""
    n = n_neighbours + channel
    return n + len(CROSS) * (channels - 1) + 1 if features >= 2 else n


def sets_per_tile(features: int) -> int:
    """Rows of :attr:`Feedback.coefs` per tile: :data:`SETS` with feature set 3, else 1."""
    return SETS if features == 3 else 1


def coefs_per_tile(n_neighbours: int, channels: int, features: int = 1) -> int:
    """Coefficients of one coefficient set (all channels of a group)."""
    return sum(n_features(n_neighbours, c, channels, features) for c in range(channels))


@functools.lru_cache(maxsize=None)
def coef_table(scale: int | None) -> np.ndarray:
    """int64 (256,) read-only: the frequencies (summing to 2**PRECISION) of a coefficient symbol.
    ``None`` (feature sets 1 and 2): equally likely.  Else the two-sided geometric distribution of
    spread ``scale`` around the value 0, in integers only: weights w(0) = 2**30, w(d + 1) =
    w(d) * COEF_RATIOS[scale] >> 16 at distance d from 0, every symbol at least 1, the rounding's
    remainder on the value 0."""
    if scale is None:
        q = side_tables(1, N_COEF_VALUES)[0]
    else:
        w = [1 << 30]
        for _ in range(N_COEF_VALUES):
            w.append(w[-1] * COEF_RATIOS[scale] >> 16)
        dist = np.abs(np.arange(N_COEF_VALUES, dtype=np.int64) + COEF_MIN)
        weights = np.array(w, dtype=np.int64)[dist]
        free = 2**PRECISION - N_SYMBOLS
        q = np.ones(N_SYMBOLS, dtype=np.int64)
        q[:N_COEF_VALUES] += weights * free // int(weights.sum())
        q[-COEF_MIN] += 2**PRECISION - int(q.sum())
    assert int(q.sum()) == 2**PRECISION and int(q.min()) >= 1
    q.flags.writeable = False
    return q


def coef_tables(n: int, scale: int | None) -> np.ndarray:
    """int64 (n, 256): :func:`coef_table` for ``n`` coefficient symbols."""
    return np.tile(coef_table(scale), (n, 1))


def coef_bits(symbols: np.ndarray, scale: int | None) -> float:
    """-log2 probability of coefficient ``symbols`` under :func:`coef_table` (part of model_bits)."""
    q = coef_table(scale)[np.asarray(symbols, dtype=np.int64)]
    return float(np.sum(PRECISION - np.log2(q)))


def expected_means(params: torch.Tensor, channel: int, known: torch.Tensor, cfg, luts: TableLUTs) -> torch.Tensor:
    """int64 (M,): the mean of the model's mixture for ``channel`` in 1/16 level (absolute),
    floor of the weighted mean of the clamped component means (weights from the lookup table)."""
    weights, means, _ = channel_mixture(params, channel, known, cfg, luts)
    return weighted_mean(weights, means)


def weighted_mean(weights: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """int64 (M,): floor(sum w * mean / sum w) of integer (M, K) weights and means."""
    return torch.div((weights * means).sum(1), weights.sum(1), rounding_mode="floor")


class Feedback:
    """Residual map and coefficients of a batch of tiles (in coded coordinates, schedule order).

    coefs: int64 (n_tiles * sets_per_tile(features), channels, max features), the rows of tile t
    at t * sets_per_tile ...; n, i, j: the schedule's tile, row and column of every pixel (numpy
    int64); tile: the nominal tile size (feature set 3's blocks at level L are squares of
    ceil(tile / 2**L)); nb: the causal neighbour offsets (:func:`neighbours`).

    The decoder fills the residual map as it decodes (:meth:`write`) and reads each tile's
    coefficients from its stream (:meth:`read_tile`); the encoder fills the whole map at once
    (:meth:`fill`) and sets the coefficients it chose (:meth:`assign`)."""

    def __init__(self, coefs: torch.Tensor, n: np.ndarray, i: np.ndarray, j: np.ndarray, tile: int,
                 nb: list[tuple[int, int]], device, features: int = 1):
        if features not in FEATURE_SETS:
            raise ValueError(f"unknown feedback feature set {features}")
        self.coefs = coefs.to(device)
        self.sets = sets_per_tile(features)
        n_tiles, channels = coefs.shape[0] // self.sets, coefs.shape[1]
        self.n_tiles = n_tiles
        self.feature_set = features
        self.nb = list(nb)
        self.width = tile + 2 * PAD
        self.plane = (tile + PAD) * self.width
        self.residuals = torch.zeros(n_tiles * channels * self.plane, dtype=torch.int64, device=device)
        self.channels = channels
        pos = (n * channels * self.plane + (i + PAD) * self.width + j + PAD).astype(np.int64)
        self.pos = torch.from_numpy(pos).to(device)
        offsets = torch.tensor([di * self.width + dj for di, dj in self.nb], dtype=torch.int64, device=device)
        self.around = self.pos.view(-1, 1) + offsets.view(1, -1)  # (M, neighbours)
        n = np.asarray(n, dtype=np.int64)
        self.tile_of = torch.from_numpy(n).to(device)
        levels = LEVELS if self.sets > 1 else 1
        # per level: int64 (M,) the coefficient row (within the tile's) of every pixel, and
        # bool (n_tiles, 4**level) which blocks of the level hold pixels of each tile
        self.rows, self.present = [], []
        for level in range(levels):
            size = -(-tile // (1 << level))  # ceil: the blocks cover an odd tile too
            block = (np.asarray(i) // size) * (1 << level) + np.asarray(j) // size
            self.rows.append(torch.from_numpy((block + LEVEL_ROWS[level]).astype(np.int64)).to(device))
            present = np.zeros((n_tiles, 4**level), dtype=bool)
            present[n, block] = True
            self.present.append(present)
        self.set_levels(np.zeros(n_tiles, dtype=np.int64))
        self.scales = np.zeros(n_tiles, dtype=np.int64)  # feature set 3: each tile's coefficient spread
        if features >= 2:
            cross = [di * self.width + dj for di, dj in CROSS]
            # (M, (channels - 1) * len(CROSS)) per channel c: the other channels' planes at CROSS
            self.cross = [self.pos.view(-1, 1) + torch.tensor([q * self.plane + o for q in range(channels) if q != c
                                                                for o in cross], dtype=torch.int64, device=device)
                          for c in range(channels)]

    def set_levels(self, levels: np.ndarray) -> None:
        """int64 (n_tiles,): the level at which each tile sends its coefficients (feature set 3)."""
        self.levels = np.asarray(levels, dtype=np.int64).copy()
        self.set_of = self.rows_for(self.levels)

    def rows_for(self, levels: np.ndarray) -> torch.Tensor:
        """int64 (M,): the coefficient row of every pixel if the tiles sent theirs at ``levels``."""
        per_pixel = torch.from_numpy(np.asarray(levels, dtype=np.int64)).to(self.tile_of.device)[self.tile_of]
        row = self.rows[0]
        for level in range(1, len(self.rows)):
            row = torch.where(per_pixel == level, self.rows[level], row)
        return self.tile_of * self.sets + row

    def fill(self, residuals: torch.Tensor) -> None:
        """Encoder: every pixel's residuals at once, int64 (M, channels) (the decoder writes
        them step by step with :meth:`write`; the encoder's scan runs backwards, so it needs them all before)."""
        for c in range(residuals.shape[1]):
            self.write(0, len(residuals), c, residuals[:, c])

    def assign(self, coefs: torch.Tensor, levels: np.ndarray, scales: np.ndarray) -> None:
        """Encoder: the coefficients (shaped as :attr:`coefs`), levels and spreads it chose."""
        self.coefs = coefs.to(self.coefs.device)
        self.scales = np.asarray(scales, dtype=np.int64).copy()
        self.set_levels(levels)

    def features(self, a: int, b: int, c: int, earlier: torch.Tensor) -> torch.Tensor:
        """int64 (b-a, n_features): channel c's residuals around pixels a..b, then ``earlier``
        (int64 (b-a, c): the residuals of the pixels' channels before c); with feature sets 2 and
        3 then the other channels' residuals at :data:`CROSS` and the constant."""
        around = self.residuals[self.around[a:b] + c * self.plane]
        if self.feature_set == 1:
            return torch.cat([around, earlier[:, :c]], 1)
        constant = torch.full((b - a, 1), CONSTANT, dtype=torch.int64, device=around.device)
        return torch.cat([around, earlier[:, :c], self.residuals[self.cross[c][a:b]], constant], 1)

    def mean_shift(self, a: int, b: int, c: int, earlier: torch.Tensor) -> torch.Tensor:
        """int64 (b-a,): the feedback added to channel c's means at pixels a..b."""
        f = self.features(a, b, c, earlier)
        coefs = self.coefs[self.set_of[a:b], c, : f.shape[1]]
        return torch.div((coefs * f).sum(1), COEF_STEPS, rounding_mode="floor")

    def move_means(self, a: int, b: int, c: int, earlier: torch.Tensor, weights: torch.Tensor, means: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Channel c at pixels a..b, from the mixture's weights and clamped means (int64 (b-a, K)):
        (the model's own expected value, :func:`weighted_mean`; the means moved by
        :meth:`mean_shift` and clamped again), int64 (b-a,) and (b-a, K); ``earlier`` as
        :meth:`features` takes it.  One compiled loop where :mod:`armcodec.exact.fused` runs (the
        same integers; ``means`` may then be moved in place)."""
        cross = self.cross[c][a:b] if self.feature_set >= 2 else None
        expected = fused.feedback_means(weights, means, self.residuals, self.around[a:b], c * self.plane, earlier, c, cross,
                                        CONSTANT, self.coefs, self.set_of[a:b], COEF_STEPS, MEAN_MIN_Q, MEAN_MAX_Q)
        if expected is not None:
            return expected, means
        expected = weighted_mean(weights, means)
        return expected, (means + self.mean_shift(a, b, c, earlier).view(-1, 1)).clamp(MEAN_MIN_Q, MEAN_MAX_Q)

    def write(self, a: int, b: int, c: int, residuals: torch.Tensor) -> None:
        self.residuals[self.pos[a:b] + c * self.plane] = residuals

    def tile_sets(self, tile: int, level: int | None = None) -> list[int]:
        """The coefficient rows tile ``tile`` sends at ``level`` (default its own), in stream order."""
        level = int(self.levels[tile]) if level is None else level
        base = tile * self.sets + LEVEL_ROWS[level]
        return [base + b for b in np.flatnonzero(self.present[level][tile])]

    def tile_symbols(self, tile: int, level: int | None = None, coefs: torch.Tensor | None = None) -> np.ndarray:
        """The tile's coefficients (at ``level``, default its own; from ``coefs``, default its own)
        as stream symbols: set after set, channel after channel."""
        coefs = self.coefs if coefs is None else coefs
        rows = [coefs[s, c, : n_features(len(self.nb), c, self.channels, self.feature_set)]
                for s in self.tile_sets(tile, level) for c in range(self.channels)]
        return (torch.cat(rows) - COEF_MIN).cpu().numpy()

    def header_symbols(self, tile: int) -> np.ndarray | None:
        """Feature set 3: the tile's level and coefficient spread as stream symbols (int64 (2,));
        None otherwise."""
        return np.array([self.levels[tile], self.scales[tile]], dtype=np.int64) if self.sets > 1 else None

    def scale(self, tile: int) -> int | None:
        """The spread of the tile's coefficient distribution (:func:`coef_table`); None for sets 1, 2."""
        return int(self.scales[tile]) if self.sets > 1 else None

    def read_tile(self, tile: int, level: int, scale: int | None, symbols: np.ndarray) -> None:
        """Decoder: the tile's level, spread and coefficient symbols (as :meth:`tile_symbols`)."""
        self.levels[tile] = level
        if scale is not None:
            self.scales[tile] = scale
        n = coefs_per_tile(len(self.nb), self.channels, self.feature_set)
        for k, s in enumerate(self.tile_sets(tile)):
            self.coefs[s] = coefs_from_symbols(symbols[k * n : (k + 1) * n], len(self.nb), self.channels,
                                               self.feature_set).to(self.coefs.device)
        self.set_levels(self.levels)

    def n_symbols(self, tile: int, level: int) -> int:
        """Coefficient symbols of tile ``tile`` at ``level``."""
        return len(self.tile_sets(tile, level)) * coefs_per_tile(len(self.nb), self.channels, self.feature_set)

    def side_bits(self) -> float:
        """The coefficients' (and levels' and spreads') bits of every tile: part of model_bits."""
        return sum(self.tile_side_bits(t) for t in range(self.n_tiles))

    def tile_side_bits(self, tile: int) -> float:
        """The coefficients' (and level's and spread's) bits of tile ``tile``."""
        if self.sets == 1:
            return side_bits(coefs_per_tile(len(self.nb), self.channels, self.feature_set), N_COEF_VALUES)
        return coef_bits(self.tile_symbols(tile), self.scale(tile)) + side_bits(1, LEVELS) + side_bits(1, N_SCALES)


def coefs_from_symbols(symbols: np.ndarray, n_neighbours: int, channels: int, features: int = 1) -> torch.Tensor:
    """One tile's stream symbols -> int64 (channels, max features), zero-padded."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if bool((symbols >= N_COEF_VALUES).any()):
        raise FormatError("tile stream starts with an invalid feedback coefficient (corrupted file)")
    out = torch.zeros((channels, n_features(n_neighbours, channels - 1, channels, features)), dtype=torch.int64)
    k = 0
    for c in range(channels):
        m = n_features(n_neighbours, c, channels, features)
        out[c, :m] = torch.from_numpy(symbols[k : k + m] + COEF_MIN)
        k += m
    return out
