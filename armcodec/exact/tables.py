"""Integer distribution parameters -> integer frequency tables (exact on any device).

Decoder-exact: every line here must give the same integers on any device, batch or thread count.

The head layout every model shares: ``cfg.image_channels`` channels, ``cfg.mixtures`` components,
coupling coefficients in 1/``cfg.coef_steps``.  A subpixel's distribution is a mixture of K discretized logistics.  The head gives,
per channel and component, integers: a logit (1/8 bit), a mean (1/16 level, relative
to 128) and a log2-scale (1/8 octave), plus coupling coefficients (1/64) that shift the
means of G and B by the already known R (and G) values.  From those integers this
module builds ``q`` (M, 256) int64 with ``q >= 1`` and ``q.sum(1) == 2**PRECISION``
using only integer arithmetic and two lookup tables (:class:`TableLUTs`) that are
computed once at export time and stored with the weights, so no libm call influences
a probability.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from armcodec.exact import fused

# The head's integer grids: every model's head hands these integers to the tables (a model's
# float training graph rounds onto the same grids, see armcodec.models.pixelcnn).
MEAN_STEPS = 16  # means in 1/16 of a level
LOGSCALE_STEPS = 8  # log2(scale) in 1/8
LOGIT_STEPS = 8  # mixture logits in 1/8 of a bit (log2 units)
LOG2_SCALE_MIN, LOG2_SCALE_MAX = -4.0, 6.0
MEAN_MIN, MEAN_MAX = -2.0, 258.0  # absolute pixel units

PRECISION = 24  # frequency tables sum to 2**24 (constriction's Categorical precision)
N_SYMBOLS = 256
CDF_BITS = 18  # logistic CDF lookup resolution
WEIGHT_BITS = 12  # mixture weight lookup resolution
SCALE_MIN_IDX = int(LOG2_SCALE_MIN * LOGSCALE_STEPS)  # -32
SCALE_MAX_IDX = int(LOG2_SCALE_MAX * LOGSCALE_STEPS)  # 48
MEAN_MIN_Q = int(MEAN_MIN * MEAN_STEPS)
MEAN_MAX_Q = int(MEAN_MAX * MEAN_STEPS)
# d = boundary - mean in 1/16 levels; boundaries 0.5..254.5, means within [MEAN_MIN, MEAN_MAX]
CDF_OFFSET = 260 * MEAN_STEPS
# int64 headroom: mass * 2**PRECISION < K * 2**(CDF_BITS + WEIGHT_BITS + PRECISION) = K * 2**54
MAX_MIXTURES = 256
TABLE_ROWS = 2048  # on a CPU component_tables builds larger batches in parts of this many rows
SUMMED_WINDOWS_MIN_ROWS = 512  # mix_windows on a CPU: embedding_bag from this many rows, the gather below
FLOAT_DIVISION_MIXTURES = 128  # below this many components the tables divide in float64 (exact, see component_tables)
FLOOR_SHIFT = 1  # BinnedTables: each value's floor is W >> FLOOR_SHIFT in D (see there)
ONE_DIVISION_MIXTURES = 7  # up to this many components BinnedTables' D(256) <= 7 * 2**12 * (2**24 + 2**7) < 2**39
BIN = 16  # binned symbols (coder tool 5): a value is its bin of BIN values, then its place in the bin
N_BINS = N_SYMBOLS // BIN


@dataclass(frozen=True)
class TableLUTs:
    """cdf: int32 (n_scales, 2*CDF_OFFSET+1), round(2**CDF_BITS * sigmoid(d / (16 * scale)));
    weight: int32 (n,), round(2**WEIGHT_BITS * 2**(-d/8)) for a logit d below the largest.

    ``to(device)`` adds ``windows``: the same cdf integers regrouped so that the 255 bin
    boundaries of one component (stride MEAN_STEPS in a cdf row) are one contiguous window,
    a view of shape (n_scales, MEAN_STEPS, n_windows, 255), held as float64 (integers below
    2**18: exact) for the product that mixes them; and ``rows``, the same windows as the rows of
    one overlapping view (window ``(s * MEAN_STEPS + r) * stride + j`` starts at element ``j``
    of scale ``s``'s residue row ``r``, ``stride`` long), which :func:`mix_windows` sums on a
    CPU without copying them."""

    cdf: torch.Tensor
    weight: torch.Tensor
    windows: torch.Tensor | None = None
    rows: torch.Tensor | None = None
    stride: int = 0
    bin_rows: torch.Tensor | None = None  # (:class:`BinnedTables`) windows of BIN + 1 residue-row elements
    coarse_rows: torch.Tensor | None = None  # the cdf by residue mod BIN * MEAN_STEPS, windows of N_BINS - 1
    coarse_stride: int = 0

    @staticmethod
    def compute() -> "TableLUTs":
        """Computed once at export (float64 numpy); the result is stored with the weights."""
        idx = np.arange(SCALE_MIN_IDX, SCALE_MAX_IDX + 1, dtype=np.float64)
        scale = 2.0 ** (idx / LOGSCALE_STEPS)
        d = np.arange(-CDF_OFFSET, CDF_OFFSET + 1, dtype=np.float64)
        z = d[None, :] / (MEAN_STEPS * scale[:, None])
        cdf = np.rint((2**CDF_BITS) * 0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.int32)  # sigmoid(z)
        n_w = WEIGHT_BITS * LOGIT_STEPS + 1
        weight = np.rint((2**WEIGHT_BITS) * 2.0 ** (-np.arange(n_w) / LOGIT_STEPS)).astype(np.int32)
        return TableLUTs(torch.from_numpy(cdf), torch.from_numpy(weight))

    def to(self, device) -> "TableLUTs":
        """On ``device``, int64, with the boundary windows channel_tables gathers from."""
        cdf = self.cdf.to(device, torch.int64)
        n_scales, width = cdf.shape
        n = -(-width // MEAN_STEPS)
        padded = torch.full((n_scales, n * MEAN_STEPS), 2**CDF_BITS, dtype=torch.int64, device=device)
        padded[:, :width] = cdf  # beyond the last d the cdf is 1
        by_residue = padded.view(n_scales, n, MEAN_STEPS).transpose(1, 2).contiguous().double()
        windows = by_residue.unfold(2, N_SYMBOLS - 1, 1)
        flat = by_residue.view(-1)
        rows = flat.as_strided((flat.numel() - (N_SYMBOLS - 2), N_SYMBOLS - 1), (1, 1))
        bin_rows = flat.as_strided((flat.numel() - BIN, BIN + 1), (1, 1))
        step = BIN * MEAN_STEPS  # the boundaries of consecutive bins lie this far apart in a cdf row
        n_coarse = -(-width // step)
        padded = torch.full((n_scales, n_coarse * step), 2**CDF_BITS, dtype=torch.int64, device=device)
        padded[:, :width] = cdf
        coarse = padded.view(n_scales, n_coarse, step).transpose(1, 2).contiguous().double().view(-1)
        coarse_rows = coarse.as_strided((coarse.numel() - (N_BINS - 2), N_BINS - 1), (1, 1))
        return TableLUTs(cdf, self.weight.to(device, torch.int64), windows, rows, n, bin_rows, coarse_rows, n_coarse)

    def validate(self) -> None:
        """Raise ValueError if the tables cannot be what compute() made (shape, monotone)."""
        n_scales = SCALE_MAX_IDX - SCALE_MIN_IDX + 1
        if tuple(self.cdf.shape) != (n_scales, 2 * CDF_OFFSET + 1) or self.weight.ndim != 1:
            raise ValueError("lookup tables have the wrong shape")
        c = self.cdf.long()
        if bool((c[:, 1:] < c[:, :-1]).any()) or int(c.min()) < 0 or int(c.max()) > 2**CDF_BITS:
            raise ValueError("CDF lookup table is not monotone in [0, 2**CDF_BITS]")
        w = self.weight.long()
        if int(w[0]) != 2**WEIGHT_BITS or bool((w < 0).any()) or bool((w[1:] > w[:-1]).any()):
            raise ValueError("mixture weight lookup table is invalid")


def mixture_params(params: torch.Tensor, channel: int, known: torch.Tensor, cfg,
                   scale_shift: torch.Tensor | None = None, mean_shift: torch.Tensor | None = None):
    """Integer head outputs of one channel -> (logits, absolute means in 1/16 level clamped,
    scale indices), each int64 (M, K); means include the coupling to earlier channels.
    scale_shift: optional int64 (M,) added to every component's log2-scale (1/8 octave)
    before the clamp: the adaptation tool (see :mod:`armcodec.coding.side`).
    mean_shift: optional int64 (M,) in 1/16 level added to every component's clamped mean, then
    clamped again: the residual feedback (see :mod:`armcodec.coding.feedback`)."""
    k, c_all = cfg.mixtures, cfg.image_channels
    logits = params[:, channel * k : (channel + 1) * k]
    means = params[:, (c_all + channel) * k : (c_all + channel + 1) * k] + 128 * MEAN_STEPS
    logs = params[:, (2 * c_all + channel) * k : (2 * c_all + channel + 1) * k]
    pair0 = 3 * c_all * k + channel * (channel - 1) // 2 * k  # coupling pairs (1,0), (2,0), (2,1), ...
    shift = cfg.coef_steps.bit_length() - 1  # a power of two (the config checks): floor division is a shift
    for prev in range(channel):
        coef = params[:, pair0 + prev * k : pair0 + (prev + 1) * k].clamp(-cfg.coef_steps, cfg.coef_steps)
        xc = (known[:, prev : prev + 1] - 128) * MEAN_STEPS
        means = means + ((coef * xc) >> shift)
    means = means.clamp(MEAN_MIN_Q, MEAN_MAX_Q)
    if mean_shift is not None:
        means = (means + mean_shift.view(-1, 1)).clamp(MEAN_MIN_Q, MEAN_MAX_Q)
    if scale_shift is not None:
        logs = logs + scale_shift.view(-1, 1)
    scale_idx = logs.clamp(SCALE_MIN_IDX, SCALE_MAX_IDX) - SCALE_MIN_IDX
    return logits, means, scale_idx


_BOUNDS = np.array([MEAN_STEPS, MEAN_MIN_Q, MEAN_MAX_Q, SCALE_MIN_IDX, SCALE_MAX_IDX], np.int64)  # fused.mixture's


def channel_mixture(params: torch.Tensor, channel: int, known: torch.Tensor, cfg, luts: TableLUTs,
                    shifts: torch.Tensor | None = None, blocks: torch.Tensor | None = None):
    """:func:`mixture_params` then :func:`mixture_weights` of one channel -> (weights, clamped means,
    scale indices), int64 (M, K) each; ``shifts`` int64 (n_blocks, channels) and ``blocks`` int64
    (M,): the adaptation tool's offsets and each row's block (its scale shift ``shifts[blocks,
    channel]``), or None.  One compiled loop where :mod:`armcodec.exact.fused` runs (the same integers)."""
    out = fused.mixture(params, channel, known, cfg.mixtures, cfg.image_channels, cfg.coef_steps, _BOUNDS, luts.weight,
                        shifts, blocks)
    if out is not None:
        return out
    logits, means, scale_idx = mixture_params(params, channel, known, cfg, None if shifts is None else shifts[blocks, channel])
    return mixture_weights(logits, cfg, luts), means, scale_idx


def mixture_weights(logits: torch.Tensor, cfg, luts: TableLUTs) -> torch.Tensor:
    """int64 (M, K) weights <= 2**WEIGHT_BITS of the components with integer ``logits`` (M, K):
    2**-(max - logit) in WEIGHT_BITS fixed point, from the lookup table (the largest is exactly
    2**WEIGHT_BITS)."""
    gap = (logits.amax(1, keepdim=True) - logits).clamp(max=luts.weight.numel() - 1)
    return luts.weight.index_select(0, gap.reshape(-1)).view(gap.shape)  # int32 or int64 logits


def channel_tables(
    params: torch.Tensor, channel: int, known: torch.Tensor, cfg, luts: TableLUTs,
    scale_shift: torch.Tensor | None = None, mean_shift: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frequency tables of one channel.

    params: int64 (M, n_params) head outputs; known: int64 (M, >=channel) values of the
    channels before ``channel`` at the same pixels; luts: from ``TableLUTs.to(device)``;
    scale_shift, mean_shift: see :func:`mixture_params`.
    Returns int64 (M, 256), every entry >= 1, rows summing to 2**PRECISION.  Integer
    arithmetic only (the float64 product below sums integers < 2**53, so it is exact):
    identical on any device.
    """
    logits, means, scale_idx = mixture_params(params, channel, known, cfg, scale_shift, mean_shift)
    return component_tables(mixture_weights(logits, cfg, luts), means, scale_idx, luts)


def component_tables(weights: torch.Tensor, means: torch.Tensor, scale_idx: torch.Tensor, luts: TableLUTs) -> torch.Tensor:
    """The tables of :func:`channel_tables` from the mixture's integer weights, clamped means and
    scale indices (int64 (M, K) each), on a CPU :data:`TABLE_ROWS` rows at a time (a row's
    temporaries are 2-10 KiB: beyond a few thousand rows they leave the cache and a row costs up
    to 4x more, row 50 of docs/EXPERIMENTS.md)."""
    m = weights.shape[0]
    if m <= TABLE_ROWS or weights.device.type != "cpu":
        return _component_tables(weights, means, scale_idx, luts)
    q = torch.empty((m, N_SYMBOLS), dtype=torch.int64, device=weights.device)
    for a in range(0, m, TABLE_ROWS):
        b = min(a + TABLE_ROWS, m)
        q[a:b] = _component_tables(weights[a:b], means[a:b], scale_idx[a:b], luts)
    return q


def _component_tables(weights: torch.Tensor, means: torch.Tensor, scale_idx: torch.Tensor, luts: TableLUTs) -> torch.Tensor:
    m = weights.shape[0]
    w = weights.double()
    mixed = mix_windows(w, means, scale_idx, luts)
    wsum = w.sum(1, keepdim=True)  # >= 2**WEIGHT_BITS (the largest weight)
    mass = torch.empty((m, N_SYMBOLS), dtype=torch.float64, device=weights.device)  # (M, 256) >= 0
    mass[:, :1] = mixed[:, :1]
    torch.sub(mixed[:, 1:], mixed[:, :-1], out=mass[:, 1:-1])
    mass[:, -1:] = wsum * 2**CDF_BITS - mixed[:, -1:]
    # q = 1 + floor(mass * (2**PRECISION - N_SYMBOLS) / (wsum * 2**CDF_BITS))
    #   = 1 + floor(mass * 65535 / (wsum * 1024))   (N_SYMBOLS = 2**8 divides both)
    if weights.shape[1] < FLOAT_DIVISION_MIXTURES:
        # in float64 and exact: with K components the numerator (< K * 2**46) and the denominator
        # b (< K * 2**22) are exact, and a quotient below an integer n <= 2**24 is below it by at
        # least 1/b, more than its rounding error n * 2**-53 (n * b < K * 2**46 < 2**53), so the
        # floor of the rounded quotient is the floor of the true one
        q = mass.mul_((2**PRECISION - N_SYMBOLS) // N_SYMBOLS).div_(wsum * 2 ** (CDF_BITS - 8)).floor_().add_(1).long()
    else:  # in int64 (K * 2**54 < 2**63)
        total = wsum.long() * 2**CDF_BITS
        q = 1 + torch.div(mass.long() * (2**PRECISION - N_SYMBOLS), total, rounding_mode="floor")
    q[torch.arange(m, device=q.device), q.argmax(1)] += 2**PRECISION - q.sum(1)
    return q


def mix_windows(w: torch.Tensor, means: torch.Tensor, scale_idx: torch.Tensor, luts: TableLUTs,
                gather: bool | None = None) -> torch.Tensor:
    """The mixture's CDF at the 255 inner bin boundaries v - 1/2 (v = 1..255) times the weights,
    float64 (M, 255): sum_k w_k * cdf(scale_k, 16 v - 8 - mean_k + CDF_OFFSET), integers below
    K * 2**30, exact in float64 in any order of summation.

    Either the (M, K, 255) windows are gathered and multiplied by the weights (``bmm``), or, on a
    CPU from :data:`SUMMED_WINDOWS_MIN_ROWS` rows, one ``embedding_bag`` sums the weighted windows
    straight from ``luts.rows`` (nothing gathered: 1.3-4x faster there, and the pyramid's decode
    9% faster, row 50 of docs/EXPERIMENTS.md).  ``gather`` forces one; both give the same
    integers (tests/test_tables.py)."""
    first = CDF_OFFSET + MEAN_STEPS // 2 - means  # lut index of boundary v = 1, >= 0
    residue, start = first % MEAN_STEPS, torch.div(first, MEAN_STEPS, rounding_mode="floor")
    if gather is None:
        gather = w.device.type != "cpu" or len(w) < SUMMED_WINDOWS_MIN_ROWS
    return summed_windows(w, (scale_idx * MEAN_STEPS + residue) * luts.stride + start, luts.rows, gather)


class FlatTables:
    """One channel's tables for files without coder tool 5: one table of N_SYMBOLS frequencies a
    sample (:func:`component_tables`); a sample is one symbol."""

    levels = 1
    unit_bits = PRECISION  # the frequencies of a sample's symbols multiply to a count out of 2**unit_bits

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, scale_idx: torch.Tensor, luts: TableLUTs):
        self.q = component_tables(weights, means, scale_idx, luts)

    def first(self) -> torch.Tensor:
        return self.q

    @staticmethod
    def split(values: torch.Tensor) -> tuple[torch.Tensor]:
        return (values,)

    @staticmethod
    def join(symbols) -> torch.Tensor:
        return symbols[0]

    def counts(self, values: torch.Tensor) -> torch.Tensor:
        return symbol_counts(self.q, values)


class BinnedTables:
    """One channel's tables with coder tool 5 (binned symbols): a sample ``v`` is two symbols, its
    bin ``v // BIN`` under a table of N_BINS frequencies (:meth:`first`), then ``v % BIN`` under a
    table of BIN frequencies that depends on the bin (:meth:`second`).  Each table needs the
    mixture's CDF at BIN + 1 boundaries only, not 257: about 8x less table work a sample.

    Both are :func:`quantized` from ``D(v) = 2**(PRECISION - CDF_BITS) * C(v) + v * F``, where
    ``C(v) = sum_k w_k * cdf(scale_k, 16 v - 8 - mean_k)`` is the mixture's mass below the boundary
    between values v - 1 and v (v = 1..255; :func:`mix_windows`' sums, exact in float64), ``C(0) =
    0``, ``C(256) = W * 2**CDF_BITS``, ``W = sum_k w_k`` and ``F = W >> FLOOR_SHIFT``: every value
    keeps a floor of about 2**-25, so a value the model did not expect costs about 25 bits (24 in
    the flat tables), not 24 for its bin plus up to 24 inside it, and a bin without mass splits
    evenly.  ``F = W`` (the flat tables' floor) made the 6 speed images' files 16 bytes larger than
    the flat tables', which give the largest entry their rounding remainder; ``W >> 1`` as large
    as them, ``W >> 4`` too, but a model that is often wrong pays for it (row 53).
    D(256) = W * 2**24 + 256 * F < K * 2**36."""

    levels = 2
    unit_bits = 2 * PRECISION

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, scale_idx: torch.Tensor, luts: TableLUTs,
                 gather: bool | None = None):
        self.luts, self.scale_idx, self.gather = luts, scale_idx, gather
        self.one_division = weights.shape[1] <= ONE_DIVISION_MIXTURES
        self._second: tuple[torch.Tensor, torch.Tensor] | None = None  # the last (bins, tables) built
        if gather is None and fused.active(weights.device):  # one compiled loop a row: the same integers
            self._kernel_args = (weights, means, scale_idx)
            self._first = fused.binned_first(weights, means, scale_idx, luts.coarse_rows, luts.coarse_stride, _CONSTS,
                                             self.one_division, N_BINS)
            return
        self._kernel_args = None
        self.w = weights.double()
        first = CDF_OFFSET + MEAN_STEPS // 2 - means  # lut index of boundary v = 1, >= 2 * MEAN_STEPS
        self.residue, self.start = first & (MEAN_STEPS - 1), first >> _log2(MEAN_STEPS)  # (powers of two)
        self.wsum = weights.sum(1, keepdim=True)  # W, int64 (M, 1)
        self.floor = self.wsum >> FLOOR_SHIFT  # each value's floor in D
        self.total = (self.wsum << PRECISION) + N_SYMBOLS * self.floor  # D(256)
        # the bins' inner boundaries v = BIN * b (b = 1..N_BINS-1) lie BIN * MEAN_STEPS apart in a cdf row:
        # consecutive elements of one row of the cdf regrouped by residue mod BIN * MEAN_STEPS
        before, step = first - MEAN_STEPS, BIN * MEAN_STEPS  # before: the lut index "v = 0" would have, >= 0
        index = (scale_idx * step + (before & (step - 1))) * luts.coarse_stride + (before >> _log2(step)) + 1
        inner = summed_windows(self.w, index, luts.coarse_rows, gather).long() << (PRECISION - CDF_BITS)
        inner += self.floor * torch.arange(BIN, N_SYMBOLS, BIN, device=inner.device)
        self._first = quantized(torch.cat([torch.zeros_like(self.total), inner, self.total], 1), self.one_division)

    def first(self) -> torch.Tensor:
        """int64 (M, N_BINS): the bins' frequencies, each >= 1, rows summing to 2**PRECISION."""
        return self._first

    def second(self, bins: torch.Tensor) -> torch.Tensor:
        """int64 (M, BIN): the frequencies of the values in each sample's bin ``bins`` (int64 (M,)),
        each >= 1, rows summing to 2**PRECISION."""
        if self._second is not None and torch.equal(self._second[0], bins):  # the coder's, then the bits'
            return self._second[1]
        luts = self.luts
        if self._kernel_args is not None:
            q = fused.binned_second(*self._kernel_args, bins, luts.bin_rows, luts.stride, _CONSTS, self.one_division)
            self._second = (bins, q)
            return q
        first_of_bin = self.start + (BIN * bins - 1).view(-1, 1)  # residue-row element of boundary v = BIN * bin
        index = (self.scale_idx * MEAN_STEPS + self.residue) * luts.stride + first_of_bin
        c = summed_windows(self.w, index, luts.bin_rows, self.gather).long()  # C at BIN * bin + 0..BIN
        c[:, 0].masked_fill_(bins == 0, 0)  # C(0) = 0 and C(256) = the total, not the lut's values there
        c[:, -1] = torch.where(bins == N_BINS - 1, self.wsum[:, 0] << CDF_BITS, c[:, -1])
        c <<= PRECISION - CDF_BITS
        c += self.floor * (BIN * bins.view(-1, 1) + torch.arange(BIN + 1, device=c.device))  # D
        self._second = (bins, quantized(c, self.one_division))
        return self._second[1]

    @staticmethod
    def split(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.div(values, BIN, rounding_mode="floor"), values % BIN

    @staticmethod
    def join(symbols) -> torch.Tensor:
        return symbols[0] * BIN + symbols[1]

    def counts(self, values: torch.Tensor) -> torch.Tensor:
        """int64 (M,): the product of the frequencies of each sample's two symbols (out of
        2**(2 * PRECISION)); the second tables are those of these values' bins."""
        bins, inside = self.split(values)
        q2 = self.second(bins)
        return symbol_counts(self._first, bins) * symbol_counts(q2, inside)


_CONSTS = np.array([CDF_OFFSET, MEAN_STEPS, BIN, PRECISION, CDF_BITS, FLOOR_SHIFT, N_SYMBOLS], np.int64)  # fused.binned_*'s, built once


def _log2(n: int) -> int:
    assert n & (n - 1) == 0
    return n.bit_length() - 1


def quantized(d: torch.Tensor, one_division: bool = False) -> torch.Tensor:
    """int64 (M, n + 1) increasing masses at a table's n + 1 boundaries (``BinnedTables``' D, below
    2**50) -> int64 (M, n) frequencies, each >= 1, summing to 2**PRECISION: the cumulative ``Q(j) =
    j + floor((d_j - d_0) * (2**PRECISION - n) / (d_n - d_0))``.  Exact in int64: the product is
    split at 2**12 (``A = A1 * 2**12 + A0``; ``floor(N A / S) = q1 * 2**12 + floor((r1 * 2**12 + N
    * A0) / S)`` with ``N A1 = q1 S + r1``), every term below 2**62; ``one_division`` where ``d``
    is below 2**39 (at most :data:`ONE_DIVISION_MIXTURES` components), so that ``N * 2**24`` is."""
    out = fused.quantized(d, 2**PRECISION, one_division)  # one pass where it is compiled (the same integers)
    if out is not None:
        return out
    n = d.shape[1] - 1
    num = d - d[:, :1]
    span = num[:, -1:]
    if one_division:  # the product fits: one division (the same integers)
        cum = torch.div(num * (2**PRECISION - n), span, rounding_mode="floor")
        cum += torch.arange(n + 1, device=d.device)
        return cum.diff(1)
    a1, a0 = divmod(2**PRECISION - n, 1 << 12)
    high = num * a1
    q1 = torch.div(high, span, rounding_mode="floor")
    q2 = torch.div(((high - q1 * span) << 12) + num * a0, span, rounding_mode="floor")
    cum = (q1 << 12) + q2
    cum += torch.arange(n + 1, device=d.device)
    return cum.diff(1)


def summed_windows(w: torch.Tensor, index: torch.Tensor, rows: torch.Tensor, gather: bool | None = None) -> torch.Tensor:
    """float64 (M, width): ``sum_k w[:, k] * rows[index[:, k]]`` for the (n, width) overlapping
    rows view of a lookup table: integers below K * 2**30, exact in any order.  On a CPU one
    ``embedding_bag`` (nothing gathered), elsewhere (or ``gather``) the rows gathered and ``bmm``."""
    if gather is None:
        gather = w.device.type != "cpu"
    if gather:
        return torch.bmm(w.unsqueeze(1), rows[index]).squeeze(1)
    return F.embedding_bag(index, rows, per_sample_weights=w, mode="sum")


def symbol_counts(q: torch.Tensor, symbols: torch.Tensor) -> torch.Tensor:
    """int64 (M,): the frequencies (out of 2**PRECISION) the tables give ``symbols``."""
    return q.gather(1, symbols.long().view(-1, 1)).view(-1)


def counts_bits(counts: torch.Tensor) -> float:
    """-log2 of the probabilities of symbols with these frequencies, summed."""
    return float((PRECISION - torch.log2(counts.double())).sum())


def symbol_bits(q: torch.Tensor, symbols: torch.Tensor) -> float:
    """-log2 of the probabilities the tables give ``symbols``: the exact information content."""
    return counts_bits(symbol_counts(q, symbols))

