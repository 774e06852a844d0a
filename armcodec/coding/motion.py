"""Motion compensation of the previous frame (DECODER-EXACT): a plane group's context is the
previous frame's group moved block by block by motion vectors the encoder chose and sent.

``compensate(prev, vectors, block)``: the block at (by, bx) of the result is the previous frame's
pixels at (y + dy, x + dx), coordinates clamped to the frame (edge pixels repeat).  Both sides run
exactly this integer indexing before the temporal model sees the context, so the vectors are side
information like any other: the encoder may pick them any way (:mod:`armcodec.encoder.motion`).
With ``unit=QUARTER`` (the records with the predictor flag, 0.13) the vectors are in
quarter pixels and the moved sample is the bilinear blend of the four around the position, in
integers: ``(sum of (4 - fy or fy)(4 - fx or fx) * sample + 8) >> 4``, or, in files with coder
tool 6 (0.14, ``sharp=True``), H.264's luma interpolation (ITU-T H.264 8.4.2.2.1): the half
samples by the 6-tap filter (1, -5, 20, 20, -5, 1) / 32 (the centre one from the unrounded
horizontal halves, / 1024), clipped to 0..255, the quarter samples the rounded-up average of
the two nearest integer or half samples (the diagonal ones of the two nearest half samples), the
frame's edge samples repeated (:func:`sixtap_phases`): sharper than the blend on textures
(row 64 of docs/EXPERIMENTS.md).

Bytes (a frame record's motion field, :mod:`armcodec.container_video`): for every plane group
coded with the previous frame, in order, its blocks row-major, each int8 dy then int8 dx (with
coder tool 6 in a record of quarter pixels, then a byte: 1 when the group's quarter samples are
H.264's, 0 the blend's); raw-deflated.  Empty: every vector zero.

Files with coder tool 9 (0.17, long vectors): vectors up to :data:`MAX_LONG_VECTOR` pixels (a
shaking camera, fast motion), each component sent as its difference ``d`` from the median of the
same component of the vectors left, above and above right of its block (0 outside the group's
grid), zigzagged (``2d`` for ``d >= 0``, ``-2d - 1`` below) to 16 bits: the low bytes of every
component of every group in order (group by group, blocks row-major, dy then dx), then their high
bytes, then (coder tool 6, quarter pixels) the groups' interpolation bytes; raw-deflated.
"""
from __future__ import annotations

import zlib

import numpy as np

from armcodec.errors import FormatError

BLOCK = 16
MAX_VECTOR = 16  # |dy|, |dx| at most this many pixels
MAX_LONG_VECTOR = 64  # ... in files with coder tool 9 (0.17)
QUARTER = 4  # the predictor's vectors: quarter pixels


def block_grid(height: int, width: int, block: int = BLOCK) -> tuple[int, int]:
    return -(-height // block), -(-width // block)


EDGE = MAX_VECTOR + 2  # the 6-tap phases' margin: every position a vector reaches, and the frame's edge beyond


def sixtap_phases(prev: np.ndarray) -> np.ndarray:
    """prev uint8 (H, W, g) -> uint8 (g, 4, 4, H + 2 EDGE, W + 2 EDGE): [c, fy, fx, EDGE + y, EDGE + x]
    is plane c's sample at (x + fx / 4, y + fy / 4) by H.264's luma interpolation, the frame's edge
    samples repeated beyond it (the module docstring)."""
    g = prev.shape[2]
    out = []
    for c in range(g):
        P = np.pad(prev[:, :, c].astype(np.int32), EDGE + 3, mode="edge")
        n0, n1 = P.shape[0] - 6, P.shape[1] - 6

        def taps(a, axis):  # the unrounded half sample between positions k + 2 and k + 3 along ``axis``
            t = lambda k: a[k : a.shape[0] - 5 + k] if axis == 0 else a[:, k : a.shape[1] - 5 + k]  # noqa: E731
            return t(0) - 5 * t(1) + 20 * t(2) + 20 * t(3) - 5 * t(4) + t(5)

        b1, h1 = taps(P, 1), taps(P, 0)
        G = P[3:-3, 3:-3]
        b = np.clip((b1[3:-3, 1 : 1 + n1] + 16) >> 5, 0, 255)  # half right of G
        h = np.clip((h1[1 : 1 + n0, 3:-3] + 16) >> 5, 0, 255)  # half below G
        j = np.clip((taps(b1, 0)[1 : 1 + n0, 1 : 1 + n1] + 512) >> 10, 0, 255)  # the centre
        right = np.pad(h, ((0, 0), (0, 1)), mode="edge")[:, 1:]  # the half below G's right neighbour
        below = np.pad(b, ((0, 1), (0, 0)), mode="edge")[1:]  # the half right of G's lower neighbour
        Gr = np.pad(G, ((0, 0), (0, 1)), mode="edge")[:, 1:]
        Gd = np.pad(G, ((0, 1), (0, 0)), mode="edge")[1:]
        q = np.empty((4, 4) + G.shape, np.uint8)
        q[0, 0], q[0, 2], q[2, 0], q[2, 2] = G, b, h, j
        q[0, 1], q[0, 3], q[1, 0], q[3, 0] = (G + b + 1) >> 1, (b + Gr + 1) >> 1, (G + h + 1) >> 1, (h + Gd + 1) >> 1
        q[2, 1], q[2, 3], q[1, 2], q[3, 2] = (h + j + 1) >> 1, (j + right + 1) >> 1, (b + j + 1) >> 1, (j + below + 1) >> 1
        q[1, 1], q[1, 3], q[3, 1], q[3, 3] = (b + h + 1) >> 1, (b + right + 1) >> 1, (h + below + 1) >> 1, (right + below + 1) >> 1
        out.append(q)
    return np.stack(out)


def compensate(prev: np.ndarray, vectors: np.ndarray | None, block: int = BLOCK, unit: int = 1, sharp: bool = False,
               phases: np.ndarray | None = None) -> np.ndarray:
    """prev: uint8 (H, W, g); vectors: int (by, bx, 2) in 1/``unit`` pixels (1 or QUARTER) or None
    (all zero) -> uint8 (H, W, g).  ``sharp`` (with QUARTER): H.264's interpolation, from
    ``phases`` (:func:`sixtap_phases` of prev) when given."""
    if vectors is None or not vectors.any():
        return prev
    h, w = prev.shape[:2]
    ys, xs = np.arange(h), np.arange(w)
    dy = np.repeat(np.repeat(vectors[:, :, 0], block, 0), block, 1)[:h, :w]
    dx = np.repeat(np.repeat(vectors[:, :, 1], block, 0), block, 1)[:h, :w]
    if unit == 1:
        rows = np.clip(ys[:, None] + dy, 0, h - 1)
        cols = np.clip(xs[None, :] + dx, 0, w - 1)
        return np.ascontiguousarray(prev[rows, cols])
    iy, fy = np.divmod(dy, unit)
    ix, fx = np.divmod(dx, unit)
    if sharp:
        if unit != QUARTER:
            raise ValueError("the 6-tap samples are quarter pixels")
        q = sixtap_phases(prev) if phases is None else phases
        rows = np.clip(ys[:, None] + iy, -EDGE, h - 1 + EDGE) + EDGE
        cols = np.clip(xs[None, :] + ix, -EDGE, w - 1 + EDGE) + EDGE
        return np.ascontiguousarray(np.stack([q[c][fy, fx, rows, cols] for c in range(q.shape[0])], axis=2))
    y0, x0 = ys[:, None] + iy, xs[None, :] + ix
    p = prev.astype(np.int32)

    def at(y, x):
        return p[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]

    fy, fx = fy[..., None], fx[..., None]
    acc = ((unit - fy) * ((unit - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
           + fy * ((unit - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)))
    return np.ascontiguousarray(((acc + unit * unit // 2) // (unit * unit)).astype(np.uint8))


def pack(fields: list[np.ndarray], sharp: list[bool] | None = None, long: bool = False) -> bytes:
    """The motion fields of a frame's temporal groups -> their bytes (empty when all zero).
    ``sharp`` (files with coder tool 6, records in quarter pixels): per group whether its quarter
    samples are H.264's (else the bilinear blend's), a byte 1 or 0 after its vectors.  ``long``
    (coder tool 9): the median differences' layout (the module docstring)."""
    if not any(f.any() for f in fields):
        return b""
    if long:
        z = np.concatenate([zigzag(median_differences(f)).ravel() for f in fields]).astype("<u2")
        raw = z.view(np.uint8)[0::2].tobytes() + z.view(np.uint8)[1::2].tobytes()
        raw += b"" if sharp is None else bytes(bool(s) for s in sharp)
    else:
        raw = b"".join(np.ascontiguousarray(f, dtype=np.int8).tobytes() + (b"" if sharp is None else bytes([bool(sharp[k])]))
                       for k, f in enumerate(fields))
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return z.compress(raw) + z.flush()


def unpack(data: bytes, shapes: list[tuple[int, int]], units: list[int] | None = None,
           sharp: bool = False, long: bool = False) -> tuple[list[np.ndarray], list[bool]]:
    """Bytes -> one (by, bx, 2) int field per temporal group of block grid ``shapes`` (its vectors
    in 1/``units[k]`` pixels, 1 by default) and, with ``sharp`` (coder tool 6 and quarter pixels),
    whether each group's quarter samples are H.264's (else all False); ``long``: coder tool 9's
    layout and reach.  Refuses damaged or out-of-range data."""
    if not data:
        return [np.zeros((by, bx, 2), np.int64) for by, bx in shapes], [False] * len(shapes)
    count = sum(2 * by * bx for by, bx in shapes)
    size = (2 if long else 1) * count + sharp * len(shapes)
    d = zlib.decompressobj(-15)
    try:
        raw = d.decompress(data, size + 1)
    except zlib.error:
        raise FormatError("a frame's motion vectors are damaged") from None
    if len(raw) != size or not d.eof or d.unused_data:
        raise FormatError("a frame's motion vectors do not fit its planes")
    b = np.frombuffer(raw, np.uint8)
    units = units or [1] * len(shapes)
    out, filters, pos = [], [], 0
    if long:  # the low bytes, the high bytes, the interpolation bytes
        z = b[:count].astype(np.int64) | (b[count : 2 * count].astype(np.int64) << 8)
        diffs = (z >> 1) ^ -(z & 1)  # the zigzag undone
        for (by, bx), unit in zip(shapes, units):
            out.append(from_median_differences(diffs[pos : pos + 2 * by * bx].reshape(by, bx, 2), MAX_LONG_VECTOR * unit))
            pos += 2 * by * bx
        flags = list(b[2 * count :]) if sharp else [0] * len(shapes)
    else:  # per group: its vectors, then its interpolation byte
        v = b.view(np.int8).astype(np.int64)
        flags = []
        for (by, bx), unit in zip(shapes, units):
            out.append(v[pos : pos + 2 * by * bx].reshape(by, bx, 2))
            pos += 2 * by * bx
            if np.abs(out[-1]).max(initial=0) > MAX_VECTOR * unit:
                raise FormatError(f"a motion vector longer than {MAX_VECTOR} pixels")
            flags.append(int(b[pos]) if sharp else 0)
            pos += sharp
    for flag in flags:
        if flag not in (0, 1):
            raise FormatError("a frame's interpolation byte is neither 0 nor 1")
        filters.append(bool(flag))
    return out, filters


def zigzag(d: np.ndarray) -> np.ndarray:
    return np.where(d >= 0, 2 * d, -2 * d - 1)


def median_predictions(f: np.ndarray, by: int, bx: int) -> tuple[int, int]:
    """The median of the vectors left, above and above right of block (by, bx) of field ``f``, per
    component (0 outside the grid): the encoder's search charges a vector by its distance to it."""
    w = f.shape[1]
    z = (0, 0)
    a = f[by, bx - 1] if bx > 0 else z
    b = f[by - 1, bx] if by > 0 else z
    c = f[by - 1, bx + 1] if by > 0 and bx + 1 < w else z
    return tuple(int(max(min(a[k], b[k]), min(max(a[k], b[k]), c[k]))) for k in (0, 1))


def median_differences(f: np.ndarray) -> np.ndarray:
    """A field (by, bx, 2) -> each vector less its :func:`median_predictions` (the whole field is
    known here: its neighbours shifted into place)."""
    f = f.astype(np.int64)
    z = np.zeros_like(f)
    left, above, right = z.copy(), z.copy(), z.copy()
    left[:, 1:], above[1:], right[1:, :-1] = f[:, :-1], f[:-1], f[:-1, 1:]
    return f - np.maximum(np.minimum(left, above), np.minimum(np.maximum(left, above), right))


def from_median_differences(d: np.ndarray, limit: int) -> np.ndarray:
    """The inverse of :func:`median_differences`; a vector beyond ``limit`` is refused as soon as it
    appears (its neighbours' predictions would grow from it)."""
    f = np.zeros_like(d)
    for y in range(d.shape[0]):
        for x in range(d.shape[1]):
            py, px = median_predictions(f, y, x)
            vy, vx = py + int(d[y, x, 0]), px + int(d[y, x, 1])
            if abs(vy) > limit or abs(vx) > limit:
                raise FormatError(f"a motion vector longer than {MAX_LONG_VECTOR} pixels")
            f[y, x] = vy, vx
    return f
