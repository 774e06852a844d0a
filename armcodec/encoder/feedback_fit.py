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

import copy
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
from armcodec.exact import fused
from armcodec.exact.tables import LOGSCALE_STEPS, MEAN_STEPS, SCALE_MIN_IDX, TableLUTs, channel_mixture

RIDGE = 1e-3  # times the mean of the diagonal, added to it in the fit's normal equations


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
            weights, means, scale_idx = channel_mixture(p, c, v, cfg, luts)
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
    rows = Rows(set_of, coefs.shape[0])
    for c in range(g):
        f = rows.take(fb.features(0, m, c, residuals).double())
        wt = None if precisions is None else rows.take(precisions[:, c])
        coefs[:, c, : f.shape[1]] = _fit_channel(f, rows.take(residuals[:, c]), wt, rows)
    return coefs


def _fit_channel(f: torch.Tensor, y: torch.Tensor, wt: torch.Tensor | None, rows: "Rows") -> torch.Tensor:
    """float64 features (M, k), int64 residuals (M,), weights (M,) or None, each in row order
    (:meth:`Rows.take`) -> int64 (rows, k)."""
    wf = f if wt is None else f * wt.unsqueeze(1)
    sol = rows.solve(wf, f, wf * y.double().unsqueeze(1))
    return torch.round(sol * COEF_STEPS).clamp(COEF_MIN, COEF_MAX).long()


class Rows:
    """The pixels of each coefficient row (``set_of``: int64 (M,) the row of every pixel), sorted
    once (:meth:`take`) so that each row's sums are one matrix product over its pixels."""

    def __init__(self, set_of: torch.Tensor, n_rows: int):
        self.set_of, self.n_rows = set_of, n_rows
        self.order = torch.argsort(set_of, stable=True)  # stable: a row's pixels in their own order
        self.ordered_set_of = set_of.index_select(0, self.order)
        self.counts = torch.bincount(set_of, minlength=n_rows).tolist()

    def take(self, per_pixel: torch.Tensor) -> torch.Tensor:
        """A per-pixel tensor (M, ...) in row order, what :meth:`solve` reads: gather the features
        once per channel and level, then only each round's weights (M,)."""
        return per_pixel.index_select(0, self.order)

    def solve(self, wf: torch.Tensor, f: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """float64 (n_rows, k): per row, the solution of (sum wf f^T + ridge) x = sum rhs over its
        pixels (wf: the features times each pixel's weight; all three in row order, :meth:`take`),
        the ridge RIDGE times the mean of the diagonal (the normal equations of :func:`fit` and the
        Newton steps of :func:`refine`).  ``rhs`` is summed by ``index_add_`` pixel after pixel,
        so each row's sum is the same in row order as in pixel order."""
        k = f.shape[1]
        a = torch.zeros((self.n_rows, k, k), dtype=torch.float64, device=f.device)
        for r, (wr, fr) in enumerate(zip(wf.split(self.counts), f.split(self.counts))):
            if len(wr):
                a[r] = wr.t() @ fr
        b = _add_rows(rhs, self.ordered_set_of, self.n_rows)
        ridge = RIDGE * a.diagonal(dim1=1, dim2=2).mean(1) + 1e-9
        a += ridge.view(-1, 1, 1) * torch.eye(k, dtype=torch.float64, device=f.device)
        return torch.linalg.solve(a, b.unsqueeze(2)).squeeze(2)

    def sum(self, per_pixel: torch.Tensor) -> torch.Tensor:
        """float64 (n_rows,): the sum of a float64 (M,) figure over each row's pixels."""
        return _add_rows(per_pixel, self.set_of, self.n_rows)


def _add_rows(x: torch.Tensor, row_of: torch.Tensor, n_rows: int) -> torch.Tensor:
    """float64 (n_rows, ...): the sum of x (M, ...) over each row's pixels, pixel after pixel
    (``index_add_``, or its compiled loop: the same sums)."""
    out = torch.zeros((n_rows, *x.shape[1:]), dtype=torch.float64, device=x.device)
    kn = _kernels(x)
    if kn is None:
        return out.index_add_(0, row_of, x)
    kn.add_rows(fused.as_numpy(x).reshape(len(x), -1), fused.as_numpy(row_of), out.numpy().reshape(n_rows, -1))
    return out


def refine(fb: Feedback, coefs: torch.Tensor, set_of: torch.Tensor, residuals: torch.Tensor, params: torch.Tensor,
           values: torch.Tensor, cfg, luts: TableLUTs, rounds: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """After :func:`fit`: Newton steps on each coefficient row's and channel's coefficients against
    the model's NLL itself (a float copy of the mixture: the rate, where least squares only
    approximates it), keeping a step only where it lowers that row's and channel's NLL.  Returns
    the refined coefficients and float64 (rows,): each row's NLL in nats (all channels)."""
    m, g = residuals.shape
    coefs = coefs.clone()
    rows = Rows(set_of, coefs.shape[0])
    total = torch.zeros(rows.n_rows, dtype=torch.float64, device=residuals.device)
    for c in range(g):
        mix = float_mixture(params, values, c, cfg, luts)
        f = fb.features(0, m, c, residuals)
        k = f.shape[1]
        coefs[:, c, :k], best = _refine_channel(f, rows.take(f.double()), coefs[:, c, :k], rows, mix, rounds)
        total += best
    return coefs, total


def _refine_channel(f: torch.Tensor, fd: torch.Tensor, row: torch.Tensor, rows: Rows, mix,
                    rounds: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One channel of :func:`refine`: int64 features f (M, k) (fd: the same in float64, in row
    order, :meth:`Rows.take`), int64 coefficients (rows, k) -> the refined coefficients and each
    row's NLL in nats.  Each candidate's mixture bounds (:class:`_Bounds`) are computed once: the
    derivatives at the kept coefficients take, pixel by pixel, the bounds already computed for
    their NLL (the same numbers).  A row whose rounded coefficients the step leaves as they are
    would score the same NLL, which is not lower: its pixels are not scored again (in the second
    round most rows stay, kodim01: 60-100% of the pixels), and once no row moves the later
    rounds would repeat this one."""
    at = _Bounds(_shift(f, row, rows.set_of), mix)
    best = rows.sum(at.nll(mix))
    for r in range(rounds):
        grad, hess = at.derivatives(mix)
        step = rows.solve(fd * rows.take(hess).clamp_min(1e-6).unsqueeze(1), fd, fd * rows.take(grad).unsqueeze(1))
        trial = torch.round((row.double() / COEF_STEPS - step) * COEF_STEPS).clamp(COEF_MIN, COEF_MAX).long()
        moved = (trial != row).any(1)
        if not bool(moved.any()):
            break
        px = moved[rows.set_of]
        px = None if bool(px.all()) else torch.nonzero(px).squeeze(1)  # the pixels of the rows that moved
        scored, f_px, row_of = (mix, f, rows.set_of) if px is None else (mix.take(px), f[px], rows.set_of[px])
        tried = _Bounds(_shift(f_px, trial, row_of), scored)
        # a moved row's sum over its pixels alone is its sum, pixel after pixel; the others keep best
        nll = torch.where(moved, _add_rows(tried.nll(scored), row_of, rows.n_rows), best)
        better = nll < best
        row = torch.where(better.view(-1, 1), trial, row)
        best = torch.where(better, nll, best)
        if r + 1 < rounds:
            at = at.where(better[rows.set_of], tried, px)
    return row, best


def choose(fb: Feedback, residuals: torch.Tensor, precisions: torch.Tensor, params: torch.Tensor,
           values: torch.Tensor, cfg, luts: TableLUTs) -> FeedbackChoice:
    """:func:`fit` then :func:`refine` the coefficients; with feature set 3 at every level (per
    tile, per quarter, per sixteenth), keeping for each tile the level whose NLL (no scale offsets)
    plus coefficient bits (at the best spread for them) is smaller.  ``fb`` holds every residual.
    Channel by channel, each channel's mixture and features computed once for every level."""
    zeros = np.zeros(fb.n_tiles, dtype=np.int64)
    levels = [0] if fb.sets == 1 else list(range(LEVELS))
    rows = {lv: Rows(fb.rows_for(np.full(fb.n_tiles, lv) if fb.sets > 1 else zeros), fb.coefs.shape[0]) for lv in levels}
    fitted = {lv: torch.zeros_like(fb.coefs) for lv in levels}
    nll = {lv: torch.zeros(fb.coefs.shape[0], dtype=torch.float64, device=fb.coefs.device) for lv in levels}
    m, g = residuals.shape
    for c in range(g):
        mix = float_mixture(params, values, c, cfg, luts)
        f = fb.features(0, m, c, residuals)
        fd, k = f.double(), f.shape[1]
        for lv in levels:
            take = rows[lv].take
            fs = take(fd)
            row = _fit_channel(fs, take(residuals[:, c]), take(precisions[:, c]), rows[lv])
            fitted[lv][:, c, :k], best = _refine_channel(f, fs, row, rows[lv], mix, rounds=2)
            nll[lv] += best
    if fb.sets == 1:
        return FeedbackChoice(fitted[0], zeros, zeros)
    row_level = np.repeat(np.arange(LEVELS), np.diff(LEVEL_ROWS + (SETS,)))  # (SETS,)
    coefs, costs = torch.zeros_like(fb.coefs), []
    for lv in levels:
        mine = torch.from_numpy(np.tile(row_level == lv, fb.n_tiles)).to(fb.coefs.device)
        coefs = torch.where(mine.view(-1, 1, 1), fitted[lv], coefs)
        costs.append(nll[lv].view(fb.n_tiles, fb.sets).sum(1).cpu().numpy() / math.log(2)
                     + np.array([best_scale(fb.tile_symbols(t, lv, fitted[lv]))[1] for t in range(fb.n_tiles)]))
    chosen = np.argmin(np.stack(costs), 0).astype(np.int64)
    scales = np.array([best_scale(fb.tile_symbols(t, int(chosen[t]), coefs))[0] for t in range(fb.n_tiles)], dtype=np.int64)
    return FeedbackChoice(coefs, chosen, scales)


@dataclass
class Mixture:
    """A channel's mixture in float64 before any feedback or scale offset, what :class:`_Bounds`
    reads: weights, means and scales (in 1/16 level) (M, K), the int64 (M,) values, and the
    weights' sums and squared scales, computed once."""

    weights: torch.Tensor
    means: torch.Tensor
    scale: torch.Tensor
    x: torch.Tensor

    def __post_init__(self):
        self.total = self.weights.sum(1)
        self.scale2 = self.scale**2

    def take(self, at: torch.Tensor) -> "Mixture":
        """The mixture at pixels ``at`` (int64): every figure gathered, none recomputed."""
        sub = copy.copy(self)
        for name in ("weights", "means", "scale", "x", "total", "scale2"):
            setattr(sub, name, getattr(self, name)[at])
        return sub


def float_mixture(params: torch.Tensor, values: torch.Tensor, channel: int, cfg, luts: TableLUTs) -> Mixture:
    """The :class:`Mixture` of channel's values (encoder only: it steers the fit)."""
    weights, means, scale_idx = channel_mixture(params, channel, values, cfg, luts)
    return Mixture(weights.double(), means.double(), _scales(scale_idx), values[:, channel])


def _scales(scale_idx: torch.Tensor) -> torch.Tensor:
    """float64: the logistic scales of integer scale indices, in 1/16 level."""
    return MEAN_STEPS * torch.exp2((scale_idx + SCALE_MIN_IDX).double() / LOGSCALE_STEPS)


def _kernels(t: torch.Tensor):
    """The compiled loops (:mod:`armcodec.encoder.fit_kernels`) where the decoder's run
    (:func:`armcodec.exact.fused.active`) and ``t`` is on a CPU, else None (the torch steps)."""
    if not fused.active(t.device):
        return None
    from armcodec.encoder import fit_kernels

    return fit_kernels


def _shift(f: torch.Tensor, coefs: torch.Tensor, tile_of: torch.Tensor) -> torch.Tensor:
    """int64 (M,): each pixel's feedback, floor(its row's coefficients . its features / COEF_STEPS)."""
    kn = _kernels(f)
    if kn is None:
        return torch.div((coefs[tile_of] * f).sum(1), COEF_STEPS, rounding_mode="floor")
    out = torch.empty(len(f), dtype=torch.int64)
    kn.shifts(fused.as_numpy(f), fused.as_numpy(coefs), fused.as_numpy(tile_of), COEF_STEPS, out.numpy())
    return out


class _Bounds:
    """A mixture's logistic CDFs at each value's bin edges, every mean moved by ``delta`` (int64
    or float64 (M,), in 1/16 level): float64 (M, K) ``upper`` and ``lower`` (1 above 255, 0 below
    0), and once computed the value's probability ``p`` (M,): what :meth:`nll` and
    :meth:`derivatives` read."""

    def __init__(self, delta: torch.Tensor | None, mix: Mixture | None, upper=None, lower=None, p=None):
        if delta is not None:
            x = mix.x
            mu = mix.means + delta.double().view(-1, 1)
            xv = (MEAN_STEPS * x).double().view(-1, 1)
            upper = torch.where(x.view(-1, 1) >= 255, 1.0, torch.sigmoid((xv + MEAN_STEPS / 2 - mu) / mix.scale))
            lower = torch.where(x.view(-1, 1) <= 0, 0.0, torch.sigmoid((xv - MEAN_STEPS / 2 - mu) / mix.scale))
        self.upper, self.lower, self.p = upper, lower, p

    def where(self, take: torch.Tensor, other: "_Bounds", at: torch.Tensor | None = None) -> "_Bounds":
        """Per pixel (``take`` bool (M,)): ``other``'s bounds where take, these elsewhere.  ``at``:
        int64 (M',) the pixels ``other`` holds (None: all; ``take`` only at some of them): these
        bounds, changed in place."""
        if at is not None:
            sub = take[at]
            to = at[sub]
            for name in ("upper", "lower", "p"):
                getattr(self, name)[to] = getattr(other, name)[sub]
            return self
        t = take.view(-1, 1)
        p = None if self.p is None or other.p is None else torch.where(take, other.p, self.p)
        return _Bounds(None, None, torch.where(t, other.upper, self.upper), torch.where(t, other.lower, self.lower), p)

    def probability(self, mix: Mixture) -> torch.Tensor:
        """float64 (M,): P(x), the mixture's mass in the value's bin."""
        if self.p is None:
            self.p = (mix.weights * (self.upper - self.lower)).sum(1) / mix.total
        return self.p

    def nll(self, mix: Mixture) -> torch.Tensor:
        """float64 (M,): -ln P(x)."""
        return -torch.log(self.probability(mix).clamp_min(1e-12))

    def derivatives(self, mix: Mixture) -> tuple[torch.Tensor, torch.Tensor]:
        """float64 (M,) each: the first and second derivative of :meth:`nll` with respect to the
        shift (in closed form: p = sum w (U - L) / sum w with U, L logistic CDFs of
        (x +- 1/2 - mu - delta) / s, so p' = sum w (L(1-L) - U(1-U)) / s and
        p'' = sum w (U(1-U)(1-2U) - L(1-L)(1-2L)) / s^2, over the same sum w; -ln p then has
        -p'/p and (p'/p)^2 - p''/p).  Zero where p is below the floor of :meth:`nll`."""
        weights, total = mix.weights, mix.total
        upper, lower = self.upper, self.lower
        p = self.probability(mix)
        kn = _kernels(p)
        if kn is not None:  # one pass over the rows, not a dozen (M, K) tensors
            grad, hess = torch.empty_like(p), torch.empty_like(p)
            kn.bin_derivatives(*(fused.as_numpy(t) for t in (upper, lower, weights, mix.scale, mix.scale2, total, p)),
                               grad.numpy(), hess.numpy())
            return grad, hess
        du, dl = upper * (1 - upper), lower * (1 - lower)
        d1 = (weights * (dl - du) / mix.scale).sum(1) / total
        d2 = (weights * (du * (1 - 2 * upper) - dl * (1 - 2 * lower)) / mix.scale2).sum(1) / total
        live = p >= 1e-12
        p = p.clamp_min(1e-12)
        grad = torch.where(live, -d1 / p, 0.0)
        hess = torch.where(live, (d1 / p) ** 2 - d2 / p, 0.0)
        return grad, hess


def _nll(delta: torch.Tensor, mix) -> torch.Tensor:
    """float64 (M,): -ln P(x) under the mixture with every mean moved by ``delta`` (1/16 level)."""
    return _Bounds(delta, mix).nll(mix)


def nll_derivatives(delta: torch.Tensor, mix) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 (M,) each: the first and second derivative of :func:`_nll` with respect to
    ``delta`` (:meth:`_Bounds.derivatives`)."""
    return _Bounds(delta, mix).derivatives(mix)


def _tile_nll(delta: torch.Tensor, mix, tile_of: torch.Tensor, n_tiles: int) -> torch.Tensor:
    nll = _nll(delta.double(), mix)
    return torch.zeros(n_tiles, dtype=torch.float64, device=nll.device).index_add_(0, tile_of, nll)


def mean_shifts(fb: Feedback, residuals: torch.Tensor) -> torch.Tensor:
    """int64 (M, g) feedback of every pixel, once ``fb`` holds every residual and its coefficients."""
    return torch.stack([fb.mean_shift(0, len(residuals), c, residuals) for c in range(residuals.shape[1])], 1)
