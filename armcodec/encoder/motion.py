"""Encoder-only: integer motion vectors per block (:mod:`armcodec.coding.motion` applies them).

Block matching by the sum of absolute differences against the previous frame (coordinates clamped
as the decoder clamps them), every vector within ``radius``, a small cost per pixel of length so
that flat or still blocks keep the zero vector (which costs nothing to send)."""
from __future__ import annotations

import numpy as np

from armcodec.coding.motion import BLOCK, MAX_VECTOR, block_grid

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
