"""Encoder-only: integer motion vectors per block (:mod:`armcodec.coding.motion` applies them).

Block matching by the sum of absolute differences against the previous frame (coordinates clamped
as the decoder clamps them), every vector within ``radius``, a small cost per pixel of length so
that flat or still blocks keep the zero vector (which costs nothing to send)."""
from __future__ import annotations

import numpy as np

from armcodec.coding.motion import BLOCK, MAX_VECTOR, QUARTER, block_grid, compensate

LENGTH_COST = 2.0  # SAD units per pixel of |dy| + |dx|, per pixel of the block


def search(cur: np.ndarray, prev: np.ndarray, block: int = BLOCK, radius: int = 7) -> np.ndarray:
    """cur, prev: uint8 (H, W, g) -> int64 (by, bx, 2): each block's (dy, dx)."""
    radius = min(radius, MAX_VECTOR)
    h, w = cur.shape[:2]
    by, bx = block_grid(h, w, block)
    c = cur.astype(np.int32).sum(2)
    p = np.pad(prev.astype(np.int32).sum(2), radius, mode="edge")
    best = np.full((by, bx), np.inf)
    out = np.zeros((by, bx, 2), np.int64)
    ph, pw = by * block, bx * block
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            diff = np.zeros((ph, pw), np.int64)
            diff[:h, :w] = np.abs(c - p[radius + dy : radius + dy + h, radius + dx : radius + dx + w])
            sad = diff.reshape(by, block, bx, block).sum((1, 3)) + LENGTH_COST * (abs(dy) + abs(dx)) * block * block
            better = sad < best
            best[better] = sad[better]
            out[better] = (dy, dx)
    return out


def refine_quarter(cur: np.ndarray, prev: np.ndarray, vectors: np.ndarray, block: int = BLOCK) -> np.ndarray:
    """Integer vectors (by, bx, 2) -> quarter-pixel ones within half a pixel of them, each block's
    the smallest sum of absolute differences against the bilinearly moved previous frame (as
    ``compensate(..., unit=QUARTER)`` moves it), a small cost for leaving the integer vector."""
    h, w = cur.shape[:2]
    by, bx = block_grid(h, w, block)
    c = cur.astype(np.int64).sum(2)
    base = vectors * QUARTER
    best = np.full((by, bx), np.inf)
    out = base.copy()
    half = QUARTER // 2
    for qy in range(-half, half + 1):
        for qx in range(-half, half + 1):
            cand = base + np.array([qy, qx])
            if np.abs(cand).max(initial=0) > MAX_VECTOR * QUARTER:
                cand = np.clip(cand, -MAX_VECTOR * QUARTER, MAX_VECTOR * QUARTER)
            moved = compensate(prev, cand, block, QUARTER).astype(np.int64).sum(2)
            diff = np.zeros((by * block, bx * block), np.int64)
            diff[:h, :w] = np.abs(c - moved)
            sad = diff.reshape(by, block, bx, block).sum((1, 3)) + (0.5 * block * block / QUARTER if qy or qx else 0.0)
            better = sad < best
            best[better] = sad[better]
            out[better] = cand[better]
    return out
