"""Residual feedback (coder profiles 4 to 7): the encoder fits, per tile and channel, a linear
prediction of the model's residual from the residuals around it, and sends the coefficients.

The network predicts each subpixel from the pixels before it, but what it gets wrong is often
correlated from pixel to pixel and from channel to channel: film grain, sensor noise and
demosaicking leave residual structure that the model, trained on downscaled photographs, does
not expect.  Here a subpixel's *residual* is ``16 * x - E``, in 1/16 level, where ``E`` is the
mean of the model's own mixture for it (integer weights from the lookup table, floor division;
including the coupling to the earlier channels of the pixel, without any feedback).  Before the
tables of channel ``c`` of a pixel are built, every component mean moves by

    delta = floor(sum_f a_f * r_f / COEF_STEPS)

over the features ``r_f``: the residuals of channel ``c`` at the causal neighbours
:data:`CANDIDATES` (those the wavefront has already coded; outside the tile they read 0) and the
residuals of the pixel's earlier channels.  The integer coefficients ``a_f`` (1/64, in
[-128, 127]) are chosen by the encoder (least squares on the tile, each residual weighed by the
precision of the model's mixture there, then Newton steps on the model's NLL itself; see
:func:`fit` and :func:`refine`) and travel at the head of
the tile's stream after the adaptation offsets, ``sum_c (n_neighbours + c)`` symbols of 8 bits.
Residuals depend only on the model and the pixels, never on the feedback, so the encoder gets
all of them in one pass, and the decoder computes each one as soon as its subpixel is decoded.
All of it is integer arithmetic: identical on any device.

Two feature sets exist (the coder profile says which, see :data:`FEATURE_SETS`): set 1
(profiles 4 and 5) is the above; set 2 (profiles 6 and 7) adds the residuals of the group's
*other* channels at the :data:`CROSS` neighbours (left and above: coded on earlier wavefront
steps, all channels of them) and a constant feature :data:`CONSTANT` (a bias per tile and
channel: one coefficient step moves the means by 1/16 level, the range is +-8 levels), so
``n_neighbours + c + 2 (g - 1) + 1`` coefficients per channel of a g-channel group.  Set 3
(profiles 8 and 9) has set 2's features, and lets the encoder send the coefficients at one of
:data:`LEVELS` levels per tile: once for the tile (level 0), once per quarter (level 1: squares of
half the nominal tile size rounded up, in coded coordinates) or once per sixteenth (level 2:
squares of a quarter of it, rounded up).  A level symbol (equally likely values) heads the
tile's coefficients, then one coefficient set for each block of that level that holds pixels of
the tile, blocks in row-major order.  The encoder fits every level and keeps the one whose NLL
plus coefficient bits is smaller (:func:`choose`).  Sets 1 and 2 send each coefficient as 8 bits
(equally likely values); set 3 codes them with a two-sided geometric distribution around 0
(:func:`coef_table`, fitted coefficients are mostly a few steps from 0) whose spread, one of
:data:`N_SCALES`, the encoder picks per tile and sends after the level symbol.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from armcodec.coding.adapt import N_SYMBOLS, PRECISION, side_bits, side_tables
from armcodec.errors import FormatError
from armcodec.models.pixelcnn import LOGSCALE_STEPS
from armcodec.tables import MEAN_STEPS, SCALE_MIN_IDX, TableLUTs, mixture_params, mixture_weights

# (row, column) offsets, nearest first; those on an earlier wavefront step are used
CANDIDATES = ((0, -1), (-1, 0), (-1, -1), (-1, 1), (0, -2), (-2, 0), (-1, 2), (-2, -1), (-2, 1))
PAD = 2  # rows above and columns either side that the offsets reach
COEF_STEPS = 64
COEF_MIN, COEF_MAX = -128, 127
N_COEF_VALUES = COEF_MAX - COEF_MIN + 1
RIDGE = 1e-3  # times the mean of the diagonal, added to it in the fit's normal equations
CROSS = ((0, -1), (-1, 0))  # feature set 2: the other channels' residuals at these offsets
CONSTANT = 64  # feature set 2: the constant feature (1/16 level), so a coefficient step moves means by 1/16 level
SOLVE_CHUNK = 1 << 15  # rows per piece of the fit's normal equations (bounds the encoder's memory)
FEATURE_SETS = (1, 2, 3)
LATEST = 3  # the feature set new files use
LEVELS = 3  # feature set 3: the tile, its quarters, its sixteenths
LEVEL_ROWS = (0, 1, 5)  # feature set 3: the first coefficient row of each level within a tile's rows
SETS = 21  # feature set 3: coefficient rows per tile (1 + 4 + 16; a tile uses those of its level)
# feature set 3: the coefficients' geometric distributions, P(v) ~ r**|v|, r = exp(-1/b) for
# b = 0.5, 1, 2, ..., 64 coefficient steps, as integers in 1/65536 (fixed here, not computed, so
# that every machine builds the same tables)
COEF_RATIOS = (8869, 24109, 39750, 51039, 57835, 61565, 63520, 64520)
N_SCALES = len(COEF_RATIOS)


def neighbours(slope: int) -> list[tuple[int, int]]:
    """The offsets of :data:`CANDIDATES` coded before the pixel (``dj + slope * di < 0``)."""
    return [(di, dj) for di, dj in CANDIDATES if dj + slope * di < 0]


def n_features(slope: int, channel: int, channels: int, features: int = 1) -> int:
    """Coefficients of ``channel`` in a group of ``channels`` under feature set ``features``."""
    n = len(neighbours(slope)) + channel
    return n + len(CROSS) * (channels - 1) + 1 if features >= 2 else n


def sets_per_tile(features: int) -> int:
    """Rows of :attr:`Feedback.coefs` per tile: :data:`SETS` with feature set 3, else 1."""
    return SETS if features == 3 else 1


def coefs_per_tile(slope: int, channels: int, features: int = 1) -> int:
    """Coefficients of one coefficient set (all channels of a group)."""
    return sum(n_features(slope, c, channels, features) for c in range(channels))


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


def best_scale(symbols: np.ndarray) -> tuple[int, float]:
    """Encoder, feature set 3: the spread that codes ``symbols`` in the fewest bits, and those bits."""
    bits = [coef_bits(symbols, s) for s in range(N_SCALES)]
    scale = int(np.argmin(bits))
    return scale, bits[scale]


def expected_means(params: torch.Tensor, channel: int, known: torch.Tensor, cfg, luts: TableLUTs) -> torch.Tensor:
    """int64 (M,): the mean of the model's mixture for ``channel`` in 1/16 level (absolute),
    floor of the weighted mean of the clamped component means (weights from the lookup table)."""
    logits, means, _ = mixture_params(params, channel, known, cfg)
    return weighted_mean(mixture_weights(logits, cfg, luts), means)


def weighted_mean(weights: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """int64 (M,): floor(sum w * mean / sum w) of integer (M, K) weights and means."""
    return torch.div((weights * means).sum(1), weights.sum(1), rounding_mode="floor")


class Feedback:
    """Residual map and coefficients of a batch of tiles (in coded coordinates, schedule order).

    coefs: int64 (n_tiles * sets_per_tile(features), channels, max features), the rows of tile t
    at t * sets_per_tile ...; n, i, j: the schedule's tile, row and column of every pixel (numpy
    int64); tile: the nominal tile size (feature set 3's blocks at level L are squares of
    ceil(tile / 2**L))."""

    def __init__(self, coefs: torch.Tensor, n: np.ndarray, i: np.ndarray, j: np.ndarray, tile: int, slope: int,
                 device, features: int = 1):
        if features not in FEATURE_SETS:
            raise ValueError(f"unknown feedback feature set {features}")
        self.coefs = coefs.to(device)
        self.sets = sets_per_tile(features)
        n_tiles, channels = coefs.shape[0] // self.sets, coefs.shape[1]
        self.n_tiles = n_tiles
        self.slope, self.feature_set = slope, features
        self.nb = neighbours(slope)
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
        per_pixel = torch.from_numpy(self.levels).to(self.tile_of.device)[self.tile_of]
        row = self.rows[0]
        for level in range(1, len(self.rows)):
            row = torch.where(per_pixel == level, self.rows[level], row)
        self.set_of = self.tile_of * self.sets + row

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

    def write(self, a: int, b: int, c: int, residuals: torch.Tensor) -> None:
        self.residuals[self.pos[a:b] + c * self.plane] = residuals

    def tile_sets(self, tile: int, level: int | None = None) -> list[int]:
        """The coefficient rows tile ``tile`` sends at ``level`` (default its own), in stream order."""
        level = int(self.levels[tile]) if level is None else level
        base = tile * self.sets + LEVEL_ROWS[level]
        return [base + b for b in np.flatnonzero(self.present[level][tile])]

    def tile_symbols(self, tile: int, level: int | None = None) -> np.ndarray:
        """The tile's coefficients (at ``level``, default its own) as stream symbols: set after
        set, channel after channel."""
        rows = [self.coefs[s, c, : n_features(self.slope, c, self.channels, self.feature_set)]
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
        n = coefs_per_tile(self.slope, self.channels, self.feature_set)
        for k, s in enumerate(self.tile_sets(tile)):
            self.coefs[s] = coefs_from_symbols(symbols[k * n : (k + 1) * n], self.slope, self.channels,
                                               self.feature_set).to(self.coefs.device)
        self.set_levels(self.levels)

    def n_symbols(self, tile: int, level: int) -> int:
        """Coefficient symbols of tile ``tile`` at ``level``."""
        return len(self.tile_sets(tile, level)) * coefs_per_tile(self.slope, self.channels, self.feature_set)

    def side_bits(self) -> float:
        """The coefficients' (and levels' and spreads') bits of every tile: part of model_bits."""
        if self.sets == 1:
            return side_bits(self.n_tiles * coefs_per_tile(self.slope, self.channels, self.feature_set), N_COEF_VALUES)
        bits = sum(coef_bits(self.tile_symbols(t), self.scale(t)) for t in range(self.n_tiles))
        return bits + side_bits(self.n_tiles, LEVELS) + side_bits(self.n_tiles, N_SCALES)


def coefs_from_symbols(symbols: np.ndarray, slope: int, channels: int, features: int = 1) -> torch.Tensor:
    """One tile's stream symbols -> int64 (channels, max features), zero-padded."""
    symbols = np.asarray(symbols, dtype=np.int64)
    if bool((symbols >= N_COEF_VALUES).any()):
        raise FormatError("tile stream starts with an invalid feedback coefficient (corrupted file)")
    out = torch.zeros((channels, n_features(slope, channels - 1, channels, features)), dtype=torch.int64)
    k = 0
    for c in range(channels):
        m = n_features(slope, c, channels, features)
        out[c, :m] = torch.from_numpy(symbols[k : k + m] + COEF_MIN)
        k += m
    return out


def all_residuals(params: torch.Tensor, values: torch.Tensor, cfg, luts: TableLUTs,
                  chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder: int64 (M, g) residuals of every pixel (its values known), and float64 (M, g) the
    precision (1 / variance, in 1/16 level) of the model's mixture there, which weighs each
    residual in :func:`fit`."""
    out = torch.empty_like(values)
    precisions = torch.empty(values.shape, dtype=torch.float64, device=values.device)
    for a in range(0, len(values), chunk):
        p, v = params[a : a + chunk], values[a : a + chunk]
        for c in range(values.shape[1]):
            logits, means, scale_idx = mixture_params(p, c, v[:, :c], cfg)
            weights = mixture_weights(logits, cfg, luts)
            expected = weighted_mean(weights, means)
            out[a : a + chunk, c] = MEAN_STEPS * v[:, c] - expected
            precisions[a : a + chunk, c] = 1 / mixture_variance(weights, means, scale_idx, expected)
    return out, precisions


def mixture_variance(weights: torch.Tensor, means: torch.Tensor, scale_idx: torch.Tensor,
                     expected: torch.Tensor) -> torch.Tensor:
    """float64 (M,): the variance of the mixture in (1/16 level)^2 (encoder only: it just weighs
    the fit; the decoder never computes it)."""
    w = weights.double()
    scale = _scales(scale_idx)
    spread = (means - expected.view(-1, 1)).double()
    var = (w * (math.pi**2 / 3 * scale**2 + spread**2)).sum(1) / w.sum(1)
    return var.clamp_min(1.0)


def fit(fb: Feedback, residuals: torch.Tensor, precisions: torch.Tensor | None = None) -> None:
    """Encoder: write every residual into ``fb`` and set its coefficients to the rounded weighted
    least squares fit per tile and channel, each residual weighed by ``precisions`` (the model's
    1 / variance there; uniform if None): the rate is the model's NLL, which cares less about a
    residual where the model's mixture is wide (float64; only the rounded integers matter to the
    decoder, so how they are chosen is the encoder's business)."""
    m, g = residuals.shape
    for c in range(g):
        fb.write(0, m, c, residuals[:, c])
    coefs = torch.zeros_like(fb.coefs)
    for c in range(g):
        f = fb.features(0, m, c, residuals).double()
        y = residuals[:, c].double()
        wt = torch.ones_like(y) if precisions is None else precisions[:, c]
        k = f.shape[1]
        wf = f * wt.unsqueeze(1)
        sol = _tile_solve(wf, f, wf * y.unsqueeze(1), fb.set_of, coefs.shape[0])
        coefs[:, c, :k] = torch.round(sol * COEF_STEPS).clamp(COEF_MIN, COEF_MAX).long()
    fb.coefs = coefs


def _tile_solve(wf: torch.Tensor, f: torch.Tensor, rhs: torch.Tensor, tile_of: torch.Tensor, n_tiles: int) -> torch.Tensor:
    """float64 (n_tiles, k): per tile, the solution of (sum wf f^T + ridge) x = sum rhs over its
    pixels' rows (wf: the features times each row's weight), the ridge RIDGE times the mean of
    the diagonal (the normal equations of :func:`fit` and the Newton steps of :func:`refine`)."""
    k = f.shape[1]
    a = torch.zeros((n_tiles, k, k), dtype=torch.float64, device=f.device)
    for s in range(0, len(f), SOLVE_CHUNK):  # the (rows, k, k) outer products in bounded pieces
        a.index_add_(0, tile_of[s : s + SOLVE_CHUNK], wf[s : s + SOLVE_CHUNK].unsqueeze(2) * f[s : s + SOLVE_CHUNK].unsqueeze(1))
    b = torch.zeros((n_tiles, k), dtype=torch.float64, device=f.device).index_add_(0, tile_of, rhs)
    ridge = RIDGE * a.diagonal(dim1=1, dim2=2).mean(1) + 1e-9
    a += ridge.view(-1, 1, 1) * torch.eye(k, dtype=torch.float64, device=f.device)
    return torch.linalg.solve(a, b.unsqueeze(2)).squeeze(2)


def refine(fb: Feedback, residuals: torch.Tensor, params: torch.Tensor, values: torch.Tensor, cfg,
           luts: TableLUTs, rounds: int = 2) -> torch.Tensor:
    """Encoder, after :func:`fit`: Newton steps on each coefficient set's and channel's
    coefficients against the model's NLL itself (a float copy of the mixture: the rate, where
    least squares only approximates it), keeping a step only where it lowers that set's and
    channel's NLL.  Returns float64 (coefficient sets,): each set's NLL in nats (all channels)."""
    m, g = residuals.shape
    n_sets = fb.coefs.shape[0]
    total = torch.zeros(n_sets, dtype=torch.float64, device=residuals.device)
    for c in range(g):
        mix = float_mixture(params, values, c, cfg, luts)
        f = fb.features(0, m, c, residuals)
        k = f.shape[1]
        fd = f.double()
        coefs = fb.coefs[:, c, :k]
        best = _tile_nll(_shift(f, coefs, fb.set_of), mix, fb.set_of, n_sets)
        for _ in range(rounds):
            delta = _shift(f, coefs, fb.set_of).double().requires_grad_(True)
            (grad,) = torch.autograd.grad(_nll(delta, mix).sum(), delta, create_graph=True)
            (hess,) = torch.autograd.grad(grad.sum(), delta)
            grad, hess = grad.detach(), hess.detach().clamp_min(1e-6)
            step = _tile_solve(fd * hess.unsqueeze(1), fd, fd * grad.unsqueeze(1), fb.set_of, n_sets)
            trial = torch.round((coefs.double() / COEF_STEPS - step) * COEF_STEPS).clamp(COEF_MIN, COEF_MAX).long()
            nll = _tile_nll(_shift(f, trial, fb.set_of), mix, fb.set_of, n_sets)
            better = nll < best
            coefs = torch.where(better.view(-1, 1), trial, coefs)
            best = torch.where(better, nll, best)
        fb.coefs[:, c, :k] = coefs
        total += best
    return total


def choose(fb: Feedback, residuals: torch.Tensor, precisions: torch.Tensor, params: torch.Tensor,
           values: torch.Tensor, cfg, luts: TableLUTs) -> None:
    """Encoder: :func:`fit` then :func:`refine` the coefficients; with feature set 3 at every level
    (per tile, per quarter, per sixteenth), keeping for each tile the level whose NLL (no scale
    offsets) plus coefficient bits (at the best spread for them) is smaller."""
    if fb.sets == 1:
        fit(fb, residuals, precisions)
        refine(fb, residuals, params, values, cfg, luts)
        return
    row_level = np.repeat(np.arange(LEVELS), np.diff(LEVEL_ROWS + (SETS,)))  # (SETS,)
    coefs, costs = torch.zeros_like(fb.coefs), []
    for level in range(LEVELS):
        fb.set_levels(np.full(fb.n_tiles, level))
        fit(fb, residuals, precisions)
        nll = refine(fb, residuals, params, values, cfg, luts).view(fb.n_tiles, fb.sets).sum(1)
        mine = torch.from_numpy(np.tile(row_level == level, fb.n_tiles)).to(fb.coefs.device)
        coefs = torch.where(mine.view(-1, 1, 1), fb.coefs, coefs)
        costs.append(nll.cpu().numpy() / math.log(2)
                     + np.array([best_scale(fb.tile_symbols(t, level))[1] for t in range(fb.n_tiles)]))
    fb.coefs = coefs
    fb.set_levels(np.argmin(np.stack(costs), 0))
    fb.scales = np.array([best_scale(fb.tile_symbols(t))[0] for t in range(fb.n_tiles)], dtype=np.int64)


def float_mixture(params: torch.Tensor, values: torch.Tensor, channel: int, cfg, luts: TableLUTs):
    """float64 (M, K) weights, means and scales in 1/16 level of channel's mixture (before any
    feedback or scale offset), and its int64 (M,) values: what :func:`_nll` reads."""
    logits, means, scale_idx = mixture_params(params, channel, values[:, :channel], cfg)
    return (mixture_weights(logits, cfg, luts).double(), means.double(),
            _scales(scale_idx), values[:, channel])


def _scales(scale_idx: torch.Tensor) -> torch.Tensor:
    """float64: the logistic scales of integer scale indices, in 1/16 level."""
    return MEAN_STEPS * torch.exp2((scale_idx + SCALE_MIN_IDX).double() / LOGSCALE_STEPS)


def _shift(f: torch.Tensor, coefs: torch.Tensor, tile_of: torch.Tensor) -> torch.Tensor:
    return torch.div((coefs[tile_of] * f).sum(1), COEF_STEPS, rounding_mode="floor")


def _nll(delta: torch.Tensor, mix) -> torch.Tensor:
    """float64 (M,): -ln P(x) under the mixture with every mean moved by ``delta`` (1/16 level)."""
    weights, means, scale, x = mix
    mu = means + delta.view(-1, 1)
    xv = (MEAN_STEPS * x).double().view(-1, 1)
    upper = torch.where(x.view(-1, 1) >= 255, 1.0, torch.sigmoid((xv + MEAN_STEPS / 2 - mu) / scale))
    lower = torch.where(x.view(-1, 1) <= 0, 0.0, torch.sigmoid((xv - MEAN_STEPS / 2 - mu) / scale))
    p = (weights * (upper - lower)).sum(1) / weights.sum(1)
    return -torch.log(p.clamp_min(1e-12))


def _tile_nll(delta: torch.Tensor, mix, tile_of: torch.Tensor, n_tiles: int) -> torch.Tensor:
    nll = _nll(delta.double(), mix)
    return torch.zeros(n_tiles, dtype=torch.float64, device=nll.device).index_add_(0, tile_of, nll)


def all_mean_shifts(fb: Feedback, residuals: torch.Tensor) -> torch.Tensor:
    """Encoder: int64 (M, g) feedback of every pixel (after :func:`fit`)."""
    return torch.stack([fb.mean_shift(0, len(residuals), c, residuals) for c in range(residuals.shape[1])], 1)
