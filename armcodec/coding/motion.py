"""Motion compensation of the previous frame (DECODER-EXACT): a plane group's context is the
previous frame's group moved block by block by motion vectors the encoder chose and sent.

``compensate(prev, vectors, block)``: the block at (by, bx) of the result is the previous frame's
pixels at (y + dy, x + dx), coordinates clamped to the frame (edge pixels repeat).  Both sides run
exactly this integer indexing before the temporal model sees the context, so the vectors are side
information like any other: the encoder may pick them any way (:mod:`armcodec.encoder.motion`).
With ``unit=QUARTER`` (the records with the predictor flag, 0.13) the vectors are in
quarter pixels and the moved sample is the bilinear blend of the four around the position, in
integers: ``(sum of (4 - fy or fy)(4 - fx or fx) * sample + 8) >> 4``.

Bytes (a frame record's motion field, :mod:`armcodec.container_video`): for every plane group
coded with the previous frame, in order, its blocks row-major, each int8 dy then int8 dx;
raw-deflated.  Empty: every vector zero.
"""
from __future__ import annotations

import zlib

import numpy as np

from armcodec.errors import FormatError

BLOCK = 16
MAX_VECTOR = 16  # |dy|, |dx| at most this many pixels
QUARTER = 4  # the predictor's vectors: quarter pixels


def block_grid(height: int, width: int, block: int = BLOCK) -> tuple[int, int]:
    return -(-height // block), -(-width // block)


def compensate(prev: np.ndarray, vectors: np.ndarray | None, block: int = BLOCK, unit: int = 1) -> np.ndarray:
    """prev: uint8 (H, W, g); vectors: int (by, bx, 2) in 1/``unit`` pixels (1 or QUARTER) or None
    (all zero) -> uint8 (H, W, g)."""
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
    y0, x0 = ys[:, None] + iy, xs[None, :] + ix
    p = prev.astype(np.int32)

    def at(y, x):
        return p[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]

    fy, fx = fy[..., None], fx[..., None]
    acc = ((unit - fy) * ((unit - fx) * at(y0, x0) + fx * at(y0, x0 + 1))
           + fy * ((unit - fx) * at(y0 + 1, x0) + fx * at(y0 + 1, x0 + 1)))
    return np.ascontiguousarray(((acc + unit * unit // 2) // (unit * unit)).astype(np.uint8))


def pack(fields: list[np.ndarray]) -> bytes:
    """The motion fields of a frame's temporal groups -> their bytes (empty when all zero)."""
    if not any(f.any() for f in fields):
        return b""
    raw = b"".join(np.ascontiguousarray(f, dtype=np.int8).tobytes() for f in fields)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return z.compress(raw) + z.flush()


def unpack(data: bytes, shapes: list[tuple[int, int]], units: list[int] | None = None) -> list[np.ndarray]:
    """Bytes -> one (by, bx, 2) int field per temporal group of block grid ``shapes`` (its vectors
    in 1/``units[k]`` pixels, 1 by default); refuses damaged or out-of-range data."""
    if not data:
        return [np.zeros((by, bx, 2), np.int64) for by, bx in shapes]
    size = sum(2 * by * bx for by, bx in shapes)
    d = zlib.decompressobj(-15)
    try:
        raw = d.decompress(data, size + 1)
    except zlib.error:
        raise FormatError("a frame's motion vectors are damaged") from None
    if len(raw) != size or not d.eof or d.unused_data:
        raise FormatError("a frame's motion vectors do not fit its planes")
    v = np.frombuffer(raw, np.int8).astype(np.int64)
    out, pos = [], 0
    for (by, bx), unit in zip(shapes, units or [1] * len(shapes)):
        out.append(v[pos : pos + 2 * by * bx].reshape(by, bx, 2))
        pos += 2 * by * bx
        if np.abs(out[-1]).max(initial=0) > MAX_VECTOR * unit:
            raise FormatError(f"a motion vector longer than {MAX_VECTOR} pixels")
    return out
