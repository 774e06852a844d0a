"""Encoder-only: fit the residual feedback's coefficients (float allowed; only the rounded integers
it returns reach the file, and the decoder reads them, never recomputes them).

Per tile (or per block of a tile, feature set 3) and channel: weighted least squares of the
model's residual on the features of :mod:`armcodec.coding.feedback` (each residual weighed by the
precision of the model's mixture there), then Newton steps on the model's NLL itself; with feature
set 3 at every level, keeping per tile the level whose NLL plus coefficient bits is smallest.
The fitter reads the decoder-exact :class:`~armcodec.coding.feedback.Feedback` (its features,
filled with every residual) and returns a :class:`FeedbackChoice`; the caller assigns it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from armcodec.coding.feedback import (
    COEF_MAX,
    COEF_MIN,
    COEF_STEPS,
    LEVEL_ROWS,
    LEVELS,
    N_SCALES,
    SETS,
    Feedback,
    coef_bits,
    weighted_mean,
)
from armcodec.exact.tables import LOGSCALE_STEPS, MEAN_STEPS, SCALE_MIN_IDX, TableLUTs, mixture_params, mixture_weights

RIDGE = 1e-3  # times the mean of the diagonal, added to it in the fit's normal equations
# rows per piece of the fit's normal equations: 1024 rows of 16x16 float64 products (2 MiB) stay in
# cache, 8x faster here than 32768 (docs/PROFILE.md); the sums are the same, added in the same order
SOLVE_CHUNK = 1 << 10


@dataclass
class FeedbackChoice:
    """What the encoder sends: coefficients int64 (rows, g, width) shaped as ``Feedback.coefs``,
    and per tile the level (int64 (n_tiles,)) and the coefficients' spread (int64 (n_tiles,))."""

    coefs: torch.Tensor
    levels: np.ndarray
    scales: np.ndarray


def best_scale(symbols: np.ndarray) -> tuple[int, float]:
    """Feature set 3: the spread that codes ``symbols`` in the fewest bits, and those bits."""
    bits = [coef_bits(symbols, s) for s in range(N_SCALES)]
    scale = int(np.argmin(bits))
    return scale, bits[scale]


def all_residuals(params: torch.Tensor, values: torch.Tensor, cfg, luts: TableLUTs,
                  chunk: int = 1 << 16) -> tuple[torch.Tensor, torch.Tensor]:
    """int64 (M, g) residuals of every pixel (its values known), and float64 (M, g) the
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


def fit(fb: Feedback, residuals: torch.Tensor, precisions: torch.Tensor | None, set_of: torch.Tensor) -> torch.Tensor:
    """The rounded weighted least squares coefficients per coefficient row and channel (int64, shaped
    as ``fb.coefs``), each residual weighed by ``precisions`` (the model's 1 / variance there;
    uniform if None): the rate is the model's NLL, which cares less about a residual where the
    model's mixture is wide.  ``fb`` holds every residual (:meth:`Feedback.fill`); ``set_of``:
    int64 (M,) the row of every pixel."""
    m, g = residuals.shape
    coefs = torch.zeros_like(fb.coefs)
    for c in range(g):
        f = fb.features(0, m, c, residuals).double()
        y = residuals[:, c].double()
        wt = torch.ones_like(y) if precisions is None else precisions[:, c]
        k = f.shape[1]
        wf = f * wt.unsqueeze(1)
        sol = _tile_solve(wf, f, wf * y.unsqueeze(1), set_of, coefs.shape[0])
        coefs[:, c, :k] = torch.round(sol * COEF_STEPS).clamp(COEF_MIN, COEF_MAX).long()
    return coefs


def _tile_solve(wf: torch.Tensor, f: torch.Tensor, rhs: torch.Tensor, tile_of: torch.Tensor, n_tiles: int) -> torch.Tensor:
    """float64 (n_tiles, k): per tile, the solution of (sum wf f^T + ridge) x = sum rhs over its
    pixels' rows (wf: the features times each row's weight), the ridge RIDGE times the mean of
    the diagonal (the normal equations of :func:`fit` and the Newton steps of :func:`refine`)."""
    k = f.shape[1]
    a = torch.zeros((n_tiles, k, k), dtype=torch.float64, device=f.device)
    for s in range(0, len(f), SOLVE_CHUNK):  # the (rows, k, k) outer products in pieces that stay in cache
        a.index_add_(0, tile_of[s : s + SOLVE_CHUNK], wf[s : s + SOLVE_CHUNK].unsqueeze(2) * f[s : s + SOLVE_CHUNK].unsqueeze(1))
    b = torch.zeros((n_tiles, k), dtype=torch.float64, device=f.device).index_add_(0, tile_of, rhs)
    ridge = RIDGE * a.diagonal(dim1=1, dim2=2).mean(1) + 1e-9
    a += ridge.view(-1, 1, 1) * torch.eye(k, dtype=torch.float64, device=f.device)
    return torch.linalg.solve(a, b.unsqueeze(2)).squeeze(2)


def refine(fb: Feedback, coefs: torch.Tensor, set_of: torch.Tensor, residuals: torch.Tensor, params: torch.Tensor,
           values: torch.Tensor, cfg, luts: TableLUTs, rounds: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """After :func:`fit`: Newton steps on each coefficient row's and channel's coefficients against
    the model's NLL itself (a float copy of the mixture: the rate, where least squares only
    approximates it), keeping a step only where it lowers that row's and channel's NLL.  Returns
    the refined coefficients and float64 (rows,): each row's NLL in nats (all channels)."""
    m, g = residuals.shape
    coefs = coefs.clone()
    n_sets = coefs.shape[0]
    total = torch.zeros(n_sets, dtype=torch.float64, device=residuals.device)
    for c in range(g):
        mix = float_mixture(params, values, c, cfg, luts)
        f = fb.features(0, m, c, residuals)
        k = f.shape[1]
        fd = f.double()
        row = coefs[:, c, :k]
        best = _tile_nll(_shift(f, row, set_of), mix, set_of, n_sets)
        for _ in range(rounds):
            delta = _shift(f, row, set_of).double().requires_grad_(True)
            (grad,) = torch.autograd.grad(_nll(delta, mix).sum(), delta, create_graph=True)
            (hess,) = torch.autograd.grad(grad.sum(), delta)
            grad, hess = grad.detach(), hess.detach().clamp_min(1e-6)
            step = _tile_solve(fd * hess.unsqueeze(1), fd, fd * grad.unsqueeze(1), set_of, n_sets)
            trial = torch.round((row.double() / COEF_STEPS - step) * COEF_STEPS).clamp(COEF_MIN, COEF_MAX).long()
            nll = _tile_nll(_shift(f, trial, set_of), mix, set_of, n_sets)
            better = nll < best
            row = torch.where(better.view(-1, 1), trial, row)
            best = torch.where(better, nll, best)
        coefs[:, c, :k] = row
        total += best
    return coefs, total


def choose(fb: Feedback, residuals: torch.Tensor, precisions: torch.Tensor, params: torch.Tensor,
           values: torch.Tensor, cfg, luts: TableLUTs) -> FeedbackChoice:
    """:func:`fit` then :func:`refine` the coefficients; with feature set 3 at every level (per
    tile, per quarter, per sixteenth), keeping for each tile the level whose NLL (no scale offsets)
    plus coefficient bits (at the best spread for them) is smaller.  ``fb`` holds every residual."""
    zeros = np.zeros(fb.n_tiles, dtype=np.int64)
    if fb.sets == 1:
        set_of = fb.rows_for(zeros)
        coefs, _ = refine(fb, fit(fb, residuals, precisions, set_of), set_of, residuals, params, values, cfg, luts)
        return FeedbackChoice(coefs, zeros, zeros)
    row_level = np.repeat(np.arange(LEVELS), np.diff(LEVEL_ROWS + (SETS,)))  # (SETS,)
    coefs, costs = torch.zeros_like(fb.coefs), []
    for level in range(LEVELS):
        set_of = fb.rows_for(np.full(fb.n_tiles, level))
        fitted, nll = refine(fb, fit(fb, residuals, precisions, set_of), set_of, residuals, params, values, cfg, luts)
        nll = nll.view(fb.n_tiles, fb.sets).sum(1)
        mine = torch.from_numpy(np.tile(row_level == level, fb.n_tiles)).to(fb.coefs.device)
        coefs = torch.where(mine.view(-1, 1, 1), fitted, coefs)
        costs.append(nll.cpu().numpy() / math.log(2)
                     + np.array([best_scale(fb.tile_symbols(t, level, fitted))[1] for t in range(fb.n_tiles)]))
    levels = np.argmin(np.stack(costs), 0).astype(np.int64)
    scales = np.array([best_scale(fb.tile_symbols(t, int(levels[t]), coefs))[0] for t in range(fb.n_tiles)], dtype=np.int64)
    return FeedbackChoice(coefs, levels, scales)


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


def mean_shifts(fb: Feedback, residuals: torch.Tensor) -> torch.Tensor:
    """int64 (M, g) feedback of every pixel, once ``fb`` holds every residual and its coefficients."""
    return torch.stack([fb.mean_shift(0, len(residuals), c, residuals) for c in range(residuals.shape[1])], 1)
