"""The compiled loops of :mod:`armcodec.exact.fused` (decoder-exact; imported only where numba is).

Module-level functions, so numba's cache (``cache=True``) finds them again in every later process:
its index is keyed by the function's code and the values of its closure, and a kernel defined
inside a function closes over the dispatchers it calls, whose pickled form differs from process
to process (each process compiled them again, 1.5-2 s, and added files to the cache).  What each
loop computes, and why it gives the torch steps' integers: :mod:`armcodec.exact.fused`.
"""
import numba
import numpy as np

jit = numba.njit(cache=True, nogil=True)


@jit
def requant(a, scale):
    """The requantization: floor(a * scale + 1/2) in float64 (exact, see the module)."""
    return np.floor(np.float64(a) * scale + 0.5)


@jit
def requant_clamp(acc, scale, lo, hi, out, add=None):
    """``add``: integers added before the clamps, or None (numba compiles each case apart)."""
    c = acc.shape[1]
    for i in range(out.shape[0]):
        for j in range(c):
            v = requant(acc[i, j], scale[j])
            if add is not None:
                v += add[i, j]
            out[i, j] = min(max(v, lo), hi)


@jit
def split_int8(x, k, out):
    """x (M, K) integers -> out int8 (2M, K): rows [0, M) ``x >> k`` (a floor), rows [M, 2M) the
    remainders ``x - (hi << k)`` in [0, 2**k)."""
    m = x.shape[0]
    for i in range(m):
        for j in range(x.shape[1]):
            v = np.int32(x[i, j])
            hi = v >> k
            out[i, j] = hi
            out[m + i, j] = v - (hi << k)


@jit
def gather_int8(src, idx, n_off, k, out):
    """The rows ``idx`` of ``src`` (R, C) integers, n_off of them a position -> out int8 (M, n_off * C)
    (k = 0) or, split as :func:`split_int8` splits, (2M, n_off * C)."""
    c = src.shape[1]
    m = len(idx) // n_off
    for i in range(m):
        for o in range(n_off):
            r = idx[i * n_off + o]
            base = o * c
            for j in range(c):
                v = np.int32(src[r, j])
                if k:
                    hi = v >> k
                    out[i, base + j] = hi
                    out[m + i, base + j] = v - (hi << k)
                else:
                    out[i, base + j] = v


@jit
def join_int32(prod, m, k, bias, out):
    """The int32 product of :func:`split_int8`'s halves (k > 0) or of M int8 rows (k = 0) -> out
    float64 (M, N) ``(prod[:M] << k) + prod[M:2M] + bias`` (``prod[:M] + bias`` for k = 0)."""
    for i in range(m):
        for j in range(out.shape[1]):
            v = prod[i, j]
            if k:
                v = (v << k) + prod[m + i, j]
            out[i, j] = np.float64(v) + bias[j]


@jit
def gate(acc, scale, gmax, out):
    f = out.shape[1]
    half, inv = np.float64(gmax // 2), 1.0 / gmax
    for i in range(out.shape[0]):
        for j in range(f):
            x = requant(acc[i, j], scale[j])
            y = requant(acc[i, f + j], scale[f + j]) + half
            x = min(max(x, -gmax), gmax)
            y = min(max(y, 0.0), gmax)
            out[i, j] = np.floor(x * y * inv)


@jit
def mix_residual(acc, scale, resid, rmax, out):
    c = acc.shape[1]
    for i in range(out.shape[0]):
        for j in range(c):
            v = requant(acc[i, j], scale[j])
            v = min(max(v, -rmax), rmax) + resid[i, j]
            out[i, j] = min(max(v, -rmax), rmax)


@jit
def requant_sum(acc, scale, add, out):
    c = acc.shape[1]
    for i in range(out.shape[0]):
        for j in range(c):
            out[i, j] = np.int64(requant(acc[i, j], scale[j]) + add[i, j])


@jit
def quantize_row(d, total, one_division, out):
    """One row of :func:`quantized`: d int64 (n + 1,) -> out (n,)."""
    n = len(d) - 1
    a1, a0 = (total - n) >> 12, (total - n) & 4095
    d0 = d[0]
    span = d[n] - d0
    if span <= 0:
        raise ZeroDivisionError("a table without mass")
    prev = 0
    for j in range(1, n + 1):
        num = d[j] - d0
        if one_division:  # floor(num * N / span): a float64 estimate within 1 of it, corrected
            q = np.int64(np.float64(num) * np.float64(total - n) / np.float64(span))
            r = num * (total - n) - q * span
            while r < 0:
                q -= 1
                r += span
            while r >= span:
                q += 1
                r -= span
            cum = j + q
        else:
            high = num * a1
            q1 = high // span
            cum = j + (q1 << 12) + (((high - q1 * span) << 12) + num * a0) // span
        out[j - 1] = cum - prev
        prev = cum


@jit
def quantized(d, total, one_division, out):
    for i in range(out.shape[0]):
        quantize_row(d[i], total, one_division, out[i])


@jit
def binned_first(weights, means, scale_idx, rows, stride, c, one_division, out):
    """BinnedTables' first tables; c: the constants (see :func:`binned_first`)."""
    cdf_offset, mean_steps, bin_, precision, cdf_bits, floor_shift, n_symbols = c[0], c[1], c[2], c[3], c[4], c[5], c[6]
    m, kk = weights.shape
    n_bins = out.shape[1]
    step = bin_ * mean_steps
    acc = np.empty(n_bins - 1, np.float64)
    d = np.empty(n_bins + 1, np.int64)
    for i in range(m):
        wsum = 0
        for k in range(kk):
            wsum += weights[i, k]
        floor = wsum >> floor_shift
        acc[:] = 0.0
        for k in range(kk):
            before = cdf_offset + mean_steps // 2 - means[i, k] - mean_steps
            idx = (scale_idx[i, k] * step + before % step) * stride + before // step + 1
            wk = np.float64(weights[i, k])
            for b in range(n_bins - 1):
                acc[b] += wk * rows[idx, b]
        d[0] = 0
        for b in range(n_bins - 1):
            d[b + 1] = (np.int64(acc[b]) << (precision - cdf_bits)) + floor * bin_ * (b + 1)
        d[n_bins] = (wsum << precision) + n_symbols * floor
        quantize_row(d, np.int64(1) << precision, one_division, out[i])


@jit
def binned_second(weights, means, scale_idx, bins, rows, stride, c, one_division, out):
    """BinnedTables' second tables, of the bins ``bins``."""
    cdf_offset, mean_steps, bin_, precision, cdf_bits, floor_shift = c[0], c[1], c[2], c[3], c[4], c[5]
    m, kk = weights.shape
    n_bins = c[6] // bin_
    acc = np.empty(bin_ + 1, np.float64)
    d = np.empty(bin_ + 1, np.int64)
    for i in range(m):
        wsum = 0
        for k in range(kk):
            wsum += weights[i, k]
        floor = wsum >> floor_shift
        bn = bins[i]
        acc[:] = 0.0
        for k in range(kk):
            first = cdf_offset + mean_steps // 2 - means[i, k]
            idx = (scale_idx[i, k] * mean_steps + first % mean_steps) * stride + first // mean_steps + bin_ * bn - 1
            wk = np.float64(weights[i, k])
            for t in range(bin_ + 1):
                acc[t] += wk * rows[idx, t]
        for t in range(bin_ + 1):
            v = np.int64(acc[t])
            if t == 0 and bn == 0:
                v = 0
            if t == bin_ and bn == n_bins - 1:
                v = wsum << cdf_bits
            d[t] = (v << (precision - cdf_bits)) + floor * (bin_ * bn + t)
        quantize_row(d, np.int64(1) << precision, one_division, out[i])
