"""Motion compensation of the previous frame (DECODER-EXACT): a plane group's context is the
previous frame's group moved block by block by integer motion vectors the encoder chose and sent.

``compensate(prev, vectors, block)``: the block at (by, bx) of the result is the previous frame's
pixels at (y + dy, x + dx), coordinates clamped to the frame (edge pixels repeat).  Both sides run
exactly this integer indexing before the temporal model sees the context, so the vectors are side
information like any other: the encoder may pick them any way (:mod:`armcodec.encoder.motion`).

Bytes (a frame record's motion field, :mod:`armcodec.container_video`): for every plane group
coded with the previous frame, in order, its blocks row-major, each int8 dy then int8 dx;
raw-deflated.  Empty: every vector zero.
"""
from __future__ import annotations

import zlib

import numpy as np

from armcodec.errors import FormatError

BLOCK = 16
MAX_VECTOR = 16  # |dy|, |dx| at most this


def block_grid(height: int, width: int, block: int = BLOCK) -> tuple[int, int]:
    return -(-height // block), -(-width // block)


def compensate(prev: np.ndarray, vectors: np.ndarray | None, block: int = BLOCK) -> np.ndarray:
    """prev: uint8 (H, W, g); vectors: int (by, bx, 2) or None (all zero) -> uint8 (H, W, g)."""
    if vectors is None or not vectors.any():
        return prev
    h, w = prev.shape[:2]
    ys, xs = np.arange(h), np.arange(w)
    dy = np.repeat(np.repeat(vectors[:, :, 0], block, 0), block, 1)[:h, :w]
    dx = np.repeat(np.repeat(vectors[:, :, 1], block, 0), block, 1)[:h, :w]
    rows = np.clip(ys[:, None] + dy, 0, h - 1)
    cols = np.clip(xs[None, :] + dx, 0, w - 1)
    return np.ascontiguousarray(prev[rows, cols])


def pack(fields: list[np.ndarray]) -> bytes:
    """The motion fields of a frame's temporal groups -> their bytes (empty when all zero)."""
    if not any(f.any() for f in fields):
        return b""
    raw = b"".join(np.ascontiguousarray(f, dtype=np.int8).tobytes() for f in fields)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return z.compress(raw) + z.flush()


def unpack(data: bytes, shapes: list[tuple[int, int]]) -> list[np.ndarray]:
    """Bytes -> one (by, bx, 2) int field per temporal group of block grid ``shapes``; refuses
    damaged or out-of-range data."""
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
    if np.abs(v).max(initial=0) > MAX_VECTOR:
        raise FormatError(f"a motion vector longer than {MAX_VECTOR} pixels")
    out, pos = [], 0
    for by, bx in shapes:
        out.append(v[pos : pos + 2 * by * bx].reshape(by, bx, 2))
        pos += 2 * by * bx
    return out
