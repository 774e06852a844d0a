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
def residual_add(v, resid, rmax):
    """A block's output ``v`` (requantized) clamped to [-rmax, rmax], added to the stream's
    ``resid``, clamped again: the residual add of every mix kernel below."""
    return min(max(min(max(v, -rmax), rmax) + resid, -rmax), rmax)


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
def join_gate(prod, m, k, bias, scale, gmax, out):
    """:func:`join_int32` then :func:`gate`, a row at a time: prod int32 (2M or M, 2F) -> out (M, F),
    float32 or int8 (the gate's values lie in [-gmax, gmax]).  Each row joined, then requantized,
    into float64 first, each in a loop of its own (the k branch outside the loops): the loops
    vectorise (4,096 rows: 0.96 -> 0.69 ms)."""
    f = out.shape[1]
    half, inv = np.float64(gmax // 2), 1.0 / gmax
    row = np.empty(2 * f, np.float64)
    for i in range(m):
        if k:
            for j in range(2 * f):
                row[j] = np.float64((prod[i, j] << k) + prod[m + i, j]) + bias[j]
        else:
            for j in range(2 * f):
                row[j] = np.float64(prod[i, j]) + bias[j]
        for j in range(2 * f):
            row[j] = requant(row[j], scale[j])
        for j in range(f):
            x = row[j]
            y = row[f + j] + half
            x = x if x < gmax else gmax
            x = x if x > -gmax else -gmax
            y = y if y < gmax else gmax
            y = y if y > 0.0 else 0.0
            out[i, j] = np.floor(x * y * inv)


@jit
def mix_residual_joined(prod, bias, scale, resid, rmax, out, dest=None, rows=None):
    """:func:`mix_residual` of the int32 product of M int8 rows (``prod + bias`` its accumulators);
    with ``dest``, each result row also written to ``dest``'s row ``rows[i]`` (the next map)."""
    c = prod.shape[1]
    for i in range(out.shape[0]):
        for j in range(c):
            out[i, j] = residual_add(requant(np.float64(prod[i, j]) + bias[j], scale[j]), resid[i, j], rmax)
        if dest is not None:
            r = rows[i]
            for j in range(c):
                dest[r, j] = out[i, j]


@jit
def mix_residual_rows(prod, bias, scale, src, rows, rmax, dest, out=None):
    """:func:`mix_residual_joined` with the stream at the positions read from the map ``src``'s rows
    ``rows`` (not a gathered copy) and each result row written to ``dest``'s row ``rows[i]`` (or,
    ``dest`` None, only to ``out``), and to ``out`` if given."""
    c = prod.shape[1]
    for i in range(prod.shape[0]):
        r = rows[i]
        for j in range(c):
            v = residual_add(requant(np.float64(prod[i, j]) + bias[j], scale[j]), src[r, j], rmax)
            if out is not None:
                out[i, j] = v
            if dest is not None:
                dest[r, j] = v


@jit
def mix_residual(acc, scale, resid, rmax, out):
    c = acc.shape[1]
    for i in range(out.shape[0]):
        for j in range(c):
            out[i, j] = residual_add(requant(acc[i, j], scale[j]), resid[i, j], rmax)


@jit
def requant_sum(acc, scale, add, out):
    c = acc.shape[1]
    for i in range(out.shape[0]):
        for j in range(c):
            out[i, j] = np.int64(requant(acc[i, j], scale[j]) + add[i, j])


@jit
def head_sum(acc, scale, skip_acc, skip_scale, out, add=None):
    """A head's parameters in one loop: ``requant_sum(acc, scale, requantized skip)`` (the skip
    layer's accumulators requantized here), plus the integers ``add`` (int64, or None)."""
    c = acc.shape[1]
    for i in range(out.shape[0]):
        for j in range(c):
            v = np.int64(requant(acc[i, j], scale[j]) + requant(skip_acc[i, j], skip_scale[j]))
            if add is not None:
                v += add[i, j]
            out[i, j] = v


@jit
def quantize_row(d, total, one_division, out):
    """One row of :func:`quantized`: d int64 (n + 1,) -> out (n,)."""
    n = len(d) - 1
    a1, a0 = (total - n) >> 12, (total - n) & 4095
    d0 = d[0]
    span = d[n] - d0
    if span <= 0:
        raise ZeroDivisionError("a table without mass")
    ratio = np.float64(total - n) / np.float64(span)  # one division a row: each estimate is corrected below
    prev = 0
    for j in range(1, n + 1):
        num = d[j] - d0
        if one_division:  # floor(num * N / span): a float64 estimate within 1 of it (num <= span), corrected
            q = np.int64(np.float64(num) * ratio)
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


@jit
def mixture(params, c, known, c_all, coef_steps, c_bounds, wlut, shifts, blocks, weights, means, scale_idx):
    """:func:`armcodec.exact.tables.mixture_params` then ``mixture_weights`` of channel ``c``, a row
    at a time: params int64 (M, n_params), known int64 (M, >= c) the earlier channels' values;
    ``c_bounds`` int64 (MEAN_STEPS, MEAN_MIN_Q, MEAN_MAX_Q, SCALE_MIN_IDX, SCALE_MAX_IDX); with
    ``shifts`` (the adaptation tool's int64 (n_blocks, channels)) each row's log2-scales move by
    ``shifts[blocks[i], c]``, else ``shifts`` is None -> weights, means, scale_idx int64 (M, K)."""
    mean_steps, mean_min, mean_max, scale_min, scale_max = c_bounds[0], c_bounds[1], c_bounds[2], c_bounds[3], c_bounds[4]
    kk = weights.shape[1]
    shift = 0
    while (1 << (shift + 1)) <= coef_steps:
        shift += 1
    top = len(wlut) - 1
    pair0 = 3 * c_all * kk + c * (c - 1) // 2 * kk
    for i in range(weights.shape[0]):
        best = params[i, c * kk]
        for k in range(1, kk):
            best = max(best, params[i, c * kk + k])
        move = 0 if shifts is None else shifts[blocks[i], c]
        for k in range(kk):
            weights[i, k] = wlut[min(best - params[i, c * kk + k], top)]
            m = params[i, (c_all + c) * kk + k] + 128 * mean_steps
            for prev in range(c):
                coef = min(max(params[i, pair0 + prev * kk + k], -coef_steps), coef_steps)
                m += (coef * ((known[i, prev] - 128) * mean_steps)) >> shift
            means[i, k] = min(max(m, mean_min), mean_max)
            scale_idx[i, k] = min(max(params[i, (2 * c_all + c) * kk + k] + move, scale_min), scale_max) - scale_min


@jit
def feedback_means(weights, means, residuals, around, offset, earlier, c, cross, constant, coefs, set_of, coef_steps,
                   mean_min, mean_max, expected):
    """The residual feedback of channel ``c``, a row at a time: ``expected`` int64 (M,) the floor
    of the weighted mean of ``means`` (before the feedback), then every mean moved by ``floor(sum_f
    a_f * r_f / coef_steps)`` and clamped, in place.  Features: ``residuals[around[i, n] + offset]``,
    ``earlier[i, :c]``, then with ``cross`` (feature sets 2 and 3; else None) ``residuals[cross[i,
    q]]`` and ``constant``; coefficients ``coefs[set_of[i], c]``."""
    kk = weights.shape[1]
    for i in range(weights.shape[0]):
        num, den = 0, 0
        for k in range(kk):
            num += weights[i, k] * means[i, k]
            den += weights[i, k]
        expected[i] = num // den
        row = set_of[i]
        acc = 0
        f = 0
        for n in range(around.shape[1]):
            acc += coefs[row, c, f] * residuals[around[i, n] + offset]
            f += 1
        for q in range(c):
            acc += coefs[row, c, f] * earlier[i, q]
            f += 1
        if cross is not None:
            for q in range(cross.shape[1]):
                acc += coefs[row, c, f] * residuals[cross[i, q]]
                f += 1
            acc += coefs[row, c, f] * constant
        move = acc // coef_steps
        for k in range(kk):
            means[i, k] = min(max(means[i, k] + move, mean_min), mean_max)
