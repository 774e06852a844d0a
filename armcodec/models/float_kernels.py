"""Compiled loops of the float graph at inference (:func:`armcodec.models.pixelcnn.gated_trunk`
without autograd, as the encoder's orientation search runs it; imported only where numba is).

Each loop is one pass over a tensor's pixels in place of three or four torch steps (each a pass
over memory): the gate (clamp the first half of the gate conv's channels, add 1/2 to the second
half and clamp it, multiply) and the residual add (clamp the block's output, add it to the stream,
clamp).  The same float32 operations in the same order as those steps, so the same numbers
(``tests/test_model.py``).  Arrays are (N, H, W, C) views of channels-last tensors.
"""
import numba
import numpy as np

jit = numba.njit(cache=True, nogil=True)


@jit
def gate(u, f, lo, hi, out):
    """out[..., c] = clamp(u[..., c], lo, hi) * clamp(u[..., f + c] + 1/2, 0, hi), float32."""
    half, zero = np.float32(0.5), np.float32(0.0)
    for n in range(u.shape[0]):
        for i in range(u.shape[1]):
            for j in range(u.shape[2]):
                for c in range(f):
                    a = min(max(u[n, i, j, c], lo), hi)
                    b = min(max(u[n, i, j, f + c] + half, zero), hi)
                    out[n, i, j, c] = a * b


@jit
def residual_add(h, v, lo, hi):
    """h = clamp(h + clamp(v, lo, hi), lo, hi) in place, float32."""
    for n in range(h.shape[0]):
        for i in range(h.shape[1]):
            for j in range(h.shape[2]):
                for c in range(h.shape[3]):
                    h[n, i, j, c] = min(max(h[n, i, j, c] + min(max(v[n, i, j, c], lo), hi), lo), hi)


@jit
def to_uint8(h, inv, out):
    """out = clamp(round(h * inv) + 128, 0, 255): a float32 stream as uint8 on the grid 1/inv
    with zero point 128 (the int8 proxy's convolution input, :mod:`armcodec.encoder.int8_proxy`)."""
    lo, hi, zero = np.float32(0.0), np.float32(255.0), np.float32(128.0)
    for n in range(h.shape[0]):
        for i in range(h.shape[1]):
            for j in range(h.shape[2]):
                for c in range(h.shape[3]):
                    out[n, i, j, c] = np.uint8(min(max(np.round(h[n, i, j, c] * inv) + zero, lo), hi))


@jit
def gate_uint8(u, rows, f, out):
    """The exact model's gate on uint8 values with zero point 128, its first ``rows`` rows: the
    gate convolution's output ``u`` (on the gate's grid) -> ``out``, ``(a * b) >> 6 + 128`` with
    ``a = clamp(u[..., c] - 128, -64, 64)``, ``b = clamp(u[..., f + c] - 128 + 32, 0, 64)``."""
    for n in range(u.shape[0]):
        for i in range(rows):
            for j in range(u.shape[2]):
                for c in range(f):
                    a = min(max(np.int32(u[n, i, j, c]) - 128, -64), 64)
                    b = min(max(np.int32(u[n, i, j, f + c]) - 96, 0), 64)
                    out[n, i, j, c] = np.uint8(((a * b) >> 6) + 128)
