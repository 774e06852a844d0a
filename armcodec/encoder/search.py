"""Encoder-only searches (float allowed: they choose what is sent, never how it is decoded): each
tile's orientation, scored by a float proxy network, and each block's adaptation offsets, from the
exact tables' lookup tables.  The choices travel as side symbols (:mod:`armcodec.coding.side`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from armcodec import threads
from armcodec.coding.side import N_ORIENTATIONS, N_SHIFTS, SHIFT_MAX, SHIFT_MIN
from armcodec.encoder.int8_proxy import int8_proxy
from armcodec.exact.tables import (
    CDF_BITS,
    CDF_OFFSET,
    MEAN_STEPS,
    N_SYMBOLS,
    PRECISION,
    SCALE_MAX_IDX,
    SCALE_MIN_IDX,
    TableLUTs,
    mixture_params,
    mixture_weights,
)

INT8_PROXY = True  # the proxy's residual blocks in int8 on a CPU that has them (:mod:`armcodec.encoder.int8_proxy`)
PROXY_PIXELS = 1 << 16  # pixels per float pass of the orientation search (its tensors stay in the cache)


def orient(x: torch.Tensor, o: int) -> torch.Tensor:
    """(..., H, W) tensor as coded under orientation o (its own inverse)."""
    dims = [d for d, bit in ((-1, 1), (-2, 2)) if o & bit]
    return torch.flip(x, dims) if dims else x


def proxy_bits(proxy, x: torch.Tensor, g: int) -> torch.Tensor:
    """float64 (B,): the proxy's estimated bits of channels ``:g`` of the images x (float (B, C, H,
    W)), summed.  A proxy that says how many rows above a pixel its output reads (``rows_above``)
    runs in strips of about :data:`PROXY_PIXELS` pixels, each with that many rows above it: each
    row's output is the whole image's, and a strip's tensors stay in the cache (a 512x512 tile of
    `fast`'s float copy: 2.2 -> 1.2 s, docs/PROFILE.md)."""
    h, w = x.shape[-2:]
    above = getattr(proxy, "rows_above", None)
    rows = max(1, PROXY_PIXELS // (len(x) * w))
    if above is None or rows >= h:
        return proxy(x.contiguous(memory_format=torch.channels_last))[:, :g].double().sum((1, 2, 3))
    parts = []
    for top in range(0, h, rows):
        first = max(0, top - above)
        out = proxy(x[:, :, first : top + rows].contiguous(memory_format=torch.channels_last))
        parts.append(out[:, :g, top - first :])
    return torch.cat(parts, 2).double().sum((1, 2, 3))


@torch.no_grad()
def choose_orientations(proxy, tiles: list[np.ndarray], device) -> np.ndarray:
    """proxy: a model's ``float_proxy()`` (bits per subpixel (B, C, H, W)); tiles: uint8 (h, w, g)
    arrays, g = 1 (fed to every model channel, scored on channel 0, as the coder does) or the
    model's channels.  -> int64 (len(tiles),): per tile the orientation of least estimated bits
    (sums rounded to 1/8 bit; ties: the lower number).  The passes (a batch of tiles under one
    orientation) run in :func:`armcodec.threads.lanes` on a CPU: the proxy's elementwise steps
    gain little from a second intra-op thread, a second pass at once gains nearly 2x."""
    best = np.zeros(len(tiles), dtype=np.int64)
    proxy = proxy.to(memory_format=torch.channels_last)  # oneDNN's faster layout here (1.4x; docs/PROFILE.md)
    if INT8_PROXY:
        proxy = int8_proxy(proxy, device) or proxy  # its residual blocks in int8 where that runs
    by_shape: dict[tuple, list[int]] = {}
    for k, t in enumerate(tiles):
        by_shape.setdefault(t.shape, []).append(k)
    batches = []  # (tile indices, their images (B, C, h, w), g)
    for (h, w, g), ks in by_shape.items():
        per_call = max(1, PROXY_PIXELS // (h * w))
        for a in range(0, len(ks), per_call):
            idx = ks[a : a + per_call]
            x = torch.from_numpy(np.stack([tiles[k] for k in idx])).to(device).permute(0, 3, 1, 2).float()
            batches.append((idx, x.expand(-1, proxy.cfg.image_channels, -1, -1) if g == 1 else x, g))
    passes = [(n, o) for n in range(len(batches)) for o in range(N_ORIENTATIONS)]

    def one_pass(job: tuple[int, int]) -> torch.Tensor:
        _, x, g = batches[job[0]]
        return proxy_bits(proxy, orient(x, job[1]), g)

    with threads.lanes(len(passes) if torch.device(device).type == "cpu" else 1) as in_lanes:
        sums = [one_pass(j) for j in passes] if in_lanes is None else in_lanes(one_pass, passes)
    for n, (idx, _, _) in enumerate(batches):
        bits = torch.stack(sums[n * N_ORIENTATIONS : (n + 1) * N_ORIENTATIONS], 1)  # (tiles, orientations)
        best[idx] = torch.round(bits * 8).argmin(1).cpu().numpy()
    return best


def estimate_bits(params: torch.Tensor, values: torch.Tensor, channel: int, cfg, luts: TableLUTs,
                  shift: int, mean_shift: torch.Tensor | None = None) -> torch.Tensor:
    """float64 (M,): -log2 of each value's probability under the mixture with every log2-scale
    offset by ``shift`` (and the means by ``mean_shift``, int64 (M,), if given), from the same lookup tables as the real tables (without their floor of
    one count per symbol, which costs well under 0.01 bit here)."""
    return _BinEstimate(params, values, channel, cfg, _CdfRows(luts), mean_shift).bits(shift)


class _CdfRows:
    """The lookup table's cdf rows with a 0 before and a 1 (2**CDF_BITS) after (the 0 below value 0
    and the 1 above 255), built once per search, and (:meth:`windows`) the same integers by
    boundary with the scales in a row, padded with the edge scales the clamp gives."""

    def __init__(self, luts: TableLUTs):
        self.luts = luts
        cdf = luts.cdf
        self.padded = torch.cat([torch.zeros_like(cdf[:, :1]), cdf, torch.full_like(cdf[:, :1], 2**CDF_BITS)], 1)
        self.width = self.padded.shape[1]
        self.flat = self.padded.view(-1)
        self._windows: dict[int, tuple[torch.Tensor, int]] = {}

    def windows(self, n: int) -> tuple[torch.Tensor, int]:
        """(float64 view (rows, n): window ``b * stride + c`` is boundary b's n scales from padded
        column c, the stride)."""
        if n not in self._windows:
            p = self.padded
            by_column = torch.cat([p[:1].expand(n, -1), p, p[-1:].expand(n, -1)]).t().contiguous().double().view(-1)
            self._windows[n] = (by_column.as_strided((by_column.numel() - n + 1, n), (1, 1)), p.shape[0] + 2 * n)
        return self._windows[n]


class _BinEstimate:
    """What :func:`estimate_bits` needs of one channel's mixture that no scale offset changes
    (weights, means, the value's bin edges), computed once for every candidate offset."""

    def __init__(self, params, values, channel, cfg, rows: _CdfRows, mean_shift=None):
        logits, means, _ = mixture_params(params, channel, values[:, :channel], cfg, None, mean_shift)
        self.weights = mixture_weights(logits, cfg, rows.luts)  # (M, K)
        k, c_all = cfg.mixtures, cfg.image_channels
        self.logs = params[:, (2 * c_all + channel) * k : (2 * c_all + channel + 1) * k]
        x = values[:, channel : channel + 1]
        self.rows = rows  # the bin's upper (16x + 8) and lower (16x - 8) boundary's column in them
        hi_at = (16 * x + MEAN_STEPS // 2 - means + CDF_OFFSET).clamp(0, 2 * CDF_OFFSET) + 1
        lo_at = (16 * x - MEAN_STEPS // 2 - means + CDF_OFFSET).clamp(0, 2 * CDF_OFFSET) + 1
        self.hi_at = torch.where(x == N_SYMBOLS - 1, rows.width - 1, hi_at)
        self.lo_at = torch.where(x == 0, 0, lo_at)
        self.total = (self.weights.sum(1) * 2**CDF_BITS).double()

    def bits(self, shift: int) -> torch.Tensor:
        row = ((self.logs + shift).clamp(SCALE_MIN_IDX, SCALE_MAX_IDX) - SCALE_MIN_IDX) * self.rows.width
        hi, lo = self.rows.flat[row + self.hi_at], self.rows.flat[row + self.lo_at]
        mass = (self.weights * (hi - lo)).sum(1).double()
        return self._bits(mass)

    def _bits(self, mass: torch.Tensor) -> torch.Tensor:
        total = self.total if mass.ndim == 1 else self.total.view(-1, 1)
        p = (mass / total).clamp_min(2.0**-PRECISION)
        return -torch.log2(p)

    def bits_of_shifts(self, first: int, n: int) -> torch.Tensor:
        """float64 (M, n): :meth:`bits` of the shifts ``first .. first + n - 1`` (the same
        numbers), each pixel's masses for all of them from one ``embedding_bag`` over
        :meth:`_CdfRows.windows` (one pixel's component reads its n scales as one window); the
        integer sums are exact in float64."""
        windows, stride = self.rows.windows(n)
        n_scales = self.rows.padded.shape[0]
        start = (self.logs + first - SCALE_MIN_IDX).clamp(-n, n_scales) + n  # the window's first column
        index = torch.cat([self.hi_at * stride + start, self.lo_at * stride + start], 1)
        w = self.weights.double()
        mass = F.embedding_bag(index, windows, per_sample_weights=torch.cat([w, -w], 1), mode="sum")
        return self._bits(mass)


def choose_shifts(params: torch.Tensor, values: torch.Tensor, block_of: torch.Tensor, n_blocks: int, cfg,
                  luts: TableLUTs, chunk: int = 1 << 16, mean_shifts: torch.Tensor | None = None) -> torch.Tensor:
    """params: integer (M, n_params) of every pixel of a batch; values: int64 (M, g); block_of:
    int64 (M,) block of each pixel; mean_shifts: int64 (M, g) residual feedback of every pixel, or None.  -> int64 (n_blocks, g): the offset of least estimated bits
    per block and channel (ties: the one nearest zero, then the smaller)."""
    g = values.shape[1]
    cands = sorted(range(SHIFT_MIN, SHIFT_MAX + 1), key=lambda d: (abs(d), d))
    rows = _CdfRows(luts)
    best = torch.zeros((n_blocks, g), dtype=torch.int64, device=params.device)
    for c in range(g):
        best_bits = None
        totals = torch.zeros((n_blocks, N_SHIFTS), dtype=torch.int64, device=params.device)  # shifts ascending
        for a in range(0, len(values), chunk):  # bounded temporaries; the mixture once for every offset
            ms = None if mean_shifts is None else mean_shifts[a : a + chunk, c]
            est = _BinEstimate(params[a : a + chunk], values[a : a + chunk], c, cfg, rows, ms)
            # integer sums (1/256 bit per pixel): the same totals in any order, on any device
            totals.index_add_(0, block_of[a : a + chunk], torch.round(est.bits_of_shifts(SHIFT_MIN, N_SHIFTS) * 256).long())
        for d in cands:
            per_block = totals[:, d - SHIFT_MIN]
            if best_bits is None:
                best_bits = per_block
                best[:, c] = d
            else:
                better = per_block < best_bits
                best_bits = torch.where(better, per_block, best_bits)
                best[:, c] = torch.where(better, torch.full_like(best[:, c], d), best[:, c])
    return best
