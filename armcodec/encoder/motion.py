"""Encoder-only: motion vectors per block (:mod:`armcodec.coding.motion` applies them).

Block matching by the sum of absolute differences against the previous frame (coordinates clamped
as the decoder clamps them; every channel's differences summed), every vector within ``radius``
(the format's largest by default), plus a small cost per pixel that a vector differs from the
median of its coded neighbours' (:func:`~armcodec.encoder.motion_kernels.block_search`); then, for
records with quarter-pixel vectors, each vector refined within three quarters of a pixel (:func:`refine`).
The video encoder searches every plane group of one size together (a 4:4:4 frame's Y, U and V; a
4:2:0 frame's U and V), so they share their vectors (docs/EXPERIMENTS.md, row 67)."""
from __future__ import annotations

import numpy as np

from armcodec.coding.motion import BLOCK, MAX_VECTOR, QUARTER, block_grid, compensate, sixtap_phases
from armcodec.encoder.motion_kernels import block_search, refine_search

# SAD units per pixel of the block per pixel that a vector differs from its neighbours' median
# (row 67: 2.0 per pixel of length before 0.16 kept a shaking camera's blocks at zero)
VECTOR_COST = 0.1


def block_sad(c: np.ndarray, moved: np.ndarray, block: int) -> np.ndarray:
    """The sum of absolute differences of each block (by, bx) between two (H, W, C) int arrays (the
    direct evaluation that the compiled loops are checked against, tests/test_video.py)."""
    h, w = c.shape[:2]
    by, bx = block_grid(h, w, block)
    diff = np.zeros((by * block, bx * block), np.int64)
    diff[:h, :w] = np.abs(c - moved).sum(2)
    return diff.reshape(by, block, bx, block).sum((1, 3))


def search(cur: np.ndarray, prev: np.ndarray, block: int = BLOCK, radius: int = MAX_VECTOR) -> np.ndarray:
    """cur, prev: uint8 (H, W, g) -> int64 (by, bx, 2): each block's (dy, dx)."""
    radius = min(radius, MAX_VECTOR)
    out = np.zeros((*block_grid(*cur.shape[:2], block), 2), np.int64)
    padded = np.pad(prev.astype(np.int32), ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    block_search(np.ascontiguousarray(cur, np.int32), padded, block, radius, VECTOR_COST, out)
    return out


def refine(cur: np.ndarray, prev: np.ndarray, vectors: np.ndarray, block: int = BLOCK, unit: int = QUARTER,
           sharp: bool = False, phases: np.ndarray | None = None) -> np.ndarray:
    """Integer vectors (by, bx, 2) -> vectors in 1/``unit`` pixels within three quarters of a pixel of them, each
    block's the smallest sum of absolute differences against the previous frame moved as
    ``compensate(..., unit=unit, sharp=sharp)`` moves it, a small cost for leaving the integer vector.
    ``phases``: :func:`~armcodec.coding.motion.sixtap_phases` of prev, when the caller has them."""
    if sharp and unit != QUARTER:
        raise ValueError("the 6-tap samples are quarter pixels")
    if sharp and phases is None:
        phases = sixtap_phases(prev)
    out = np.empty_like(vectors)
    refine_search(np.ascontiguousarray(cur, np.int32), np.ascontiguousarray(prev, np.int32),
                  phases if sharp else np.zeros((1, 1, 1, 1, 1), np.uint8), sharp, unit, vectors * unit, 3 * unit // 4,
                  MAX_VECTOR * unit, block, 0.5 * block * block / unit, out)
    return out
