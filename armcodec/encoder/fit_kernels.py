"""Compiled loops of the encoder's feedback fit (:mod:`armcodec.encoder.feedback_fit`; imported
only where numba is).  Encoder-only: what they compute steers the fit, and only the rounded
coefficients it chooses reach the file.

Each loop replaces a chain of torch steps over (M, K) float64 tensors (a fresh tensor each) by one
pass over the rows.  ``shifts`` gives the torch steps' integers.  ``bin_derivatives`` computes each
component's terms as the torch steps do, but sums a row's K terms in order where torch's reduction
may pair them: a pixel's figures can differ in the last bit (the fit's choices on the Kodak
images do not: docs/PROFILE.md).
"""
import numba

jit = numba.njit(cache=True, nogil=True)


@jit
def shifts(f, coefs, row_of, steps, out):
    """out[i] = floor(sum_j coefs[row_of[i], j] * f[i, j] / steps), int64."""
    k = f.shape[1]
    for i in range(f.shape[0]):
        r = row_of[i]
        acc = 0
        for j in range(k):
            acc += coefs[r, j] * f[i, j]
        out[i] = acc // steps


@jit
def bin_derivatives(upper, lower, weights, scale, scale2, total, p, grad, hess):
    """Per pixel the first and second derivative of -ln p (see ``_Bounds.derivatives``), 0 where
    p is below 1e-12."""
    for i in range(upper.shape[0]):
        d1 = 0.0
        d2 = 0.0
        for j in range(upper.shape[1]):
            u = upper[i, j]
            lo = lower[i, j]
            du = u * (1 - u)
            dl = lo * (1 - lo)
            d1 += weights[i, j] * (dl - du) / scale[i, j]
            d2 += weights[i, j] * (du * (1 - 2 * u) - dl * (1 - 2 * lo)) / scale2[i, j]
        d1 = d1 / total[i]
        d2 = d2 / total[i]
        if p[i] >= 1e-12:
            q = d1 / p[i]
            grad[i] = -q
            hess[i] = q * q - d2 / p[i]
        else:
            grad[i] = 0.0
            hess[i] = 0.0


@jit
def add_rows(x, row_of, out):
    """out[row_of[i]] += x[i] for i in order (what ``index_add_`` does on a CPU, pixel after
    pixel: the same sums), x float64 (M, k), out (n_rows, k)."""
    for i in range(x.shape[0]):
        r = row_of[i]
        for j in range(x.shape[1]):
            out[r, j] += x[i, j]
