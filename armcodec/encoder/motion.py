"""Encoder-only: motion vectors per block (:mod:`armcodec.coding.motion` applies them).

Block matching by the sum of absolute differences against the previous frame (coordinates clamped
as the decoder clamps them), every vector within ``radius``, a small cost per pixel of length so
that flat or still blocks keep the zero vector (which costs nothing to send); then, for records
with quarter-pixel vectors, each vector refined within half a pixel (:func:`refine`)."""
from __future__ import annotations

import numpy as np

from armcodec.coding.motion import BLOCK, MAX_VECTOR, QUARTER, block_grid, compensate, sixtap_phases

LENGTH_COST = 2.0  # SAD units per pixel of |dy| + |dx|, per pixel of the block


def block_sad(c: np.ndarray, moved: np.ndarray, block: int) -> np.ndarray:
    """The sum of absolute differences of each block (by, bx) between two (H, W) int planes."""
    h, w = c.shape
    by, bx = block_grid(h, w, block)
    diff = np.zeros((by * block, bx * block), np.int64)
    diff[:h, :w] = np.abs(c - moved)
    return diff.reshape(by, block, bx, block).sum((1, 3))


def search(cur: np.ndarray, prev: np.ndarray, block: int = BLOCK, radius: int = 7) -> np.ndarray:
    """cur, prev: uint8 (H, W, g) -> int64 (by, bx, 2): each block's (dy, dx)."""
    radius = min(radius, MAX_VECTOR)
    h, w = cur.shape[:2]
    by, bx = block_grid(h, w, block)
    c = cur.astype(np.int32).sum(2)
    p = np.pad(prev.astype(np.int32).sum(2), radius, mode="edge")
    best = np.full((by, bx), np.inf)
    out = np.zeros((by, bx, 2), np.int64)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            sad = block_sad(c, p[radius + dy : radius + dy + h, radius + dx : radius + dx + w], block) \
                + LENGTH_COST * (abs(dy) + abs(dx)) * block * block
            better = sad < best
            best[better] = sad[better]
            out[better] = (dy, dx)
    return out


def refine(cur: np.ndarray, prev: np.ndarray, vectors: np.ndarray, block: int = BLOCK, unit: int = QUARTER,
           sharp: bool = False, phases: np.ndarray | None = None) -> np.ndarray:
    """Integer vectors (by, bx, 2) -> vectors in 1/``unit`` pixels within half a pixel of them, each
    block's the smallest sum of absolute differences against the previous frame moved as
    ``compensate(..., unit=unit, sharp=sharp)`` moves it, a small cost for leaving the integer vector.
    ``phases``: :func:`~armcodec.coding.motion.sixtap_phases` of prev, when the caller has them."""
    c = cur.astype(np.int64).sum(2)
    if sharp and phases is None:
        phases = sixtap_phases(prev)
    base = vectors * unit
    best = np.full(base.shape[:2], np.inf)
    out = base.copy()
    half = unit // 2
    for qy in range(-half, half + 1):
        for qx in range(-half, half + 1):
            cand = np.clip(base + np.array([qy, qx]), -MAX_VECTOR * unit, MAX_VECTOR * unit)
            moved = compensate(prev, cand, block, unit, sharp, phases).astype(np.int64).sum(2)
            sad = block_sad(c, moved, block) + (0.5 * block * block / unit if qy or qx else 0.0)
            better = sad < best
            best[better] = sad[better]
            out[better] = cand[better]
    return out
