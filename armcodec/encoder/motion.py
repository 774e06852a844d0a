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
COARSE = 4  # long vectors (tool 9): the frames shrunk by this much are searched first
LOCAL = 6  # ... and each block's vector found there tried within this many pixels (row 68)


def block_sad(c: np.ndarray, moved: np.ndarray, block: int) -> np.ndarray:
    """The sum of absolute differences of each block (by, bx) between two (H, W, C) int arrays (the
    direct evaluation that the compiled loops are checked against, tests/test_video.py)."""
    h, w = c.shape[:2]
    by, bx = block_grid(h, w, block)
    diff = np.zeros((by * block, bx * block), np.int64)
    diff[:h, :w] = np.abs(c - moved).sum(2)
    return diff.reshape(by, block, bx, block).sum((1, 3))


def search(cur: np.ndarray, prev: np.ndarray, block: int = BLOCK, radius: int = MAX_VECTOR,
           reach: int | None = None) -> np.ndarray:
    """cur, prev: uint8 (H, W, g) -> int64 (by, bx, 2): each block's (dy, dx), every vector within
    ``radius`` pixels tried.  ``reach`` (coder tool 9's files: up to
    :data:`~armcodec.coding.motion.MAX_LONG_VECTOR`): vectors up to that long are found too, each
    block also tried within :data:`LOCAL` pixels of its vector on both frames shrunk by
    :data:`COARSE` (a shaking camera, fast motion)."""
    radius = min(radius, MAX_VECTOR)
    reach = radius if reach is None else max(reach, radius)
    out = np.zeros((*block_grid(*cur.shape[:2], block), 2), np.int64)
    centres, local = out, 0  # (no centres: not read with local 0)
    if reach > radius and block % COARSE == 0 and min(cur.shape[:2]) >= COARSE * block:
        small = -(-reach // COARSE)
        centres = COARSE * search_small(shrink(cur), shrink(prev), block // COARSE, small, out.shape[:2])
        local = LOCAL
    padded = np.pad(prev.astype(np.int32), ((reach, reach), (reach, reach), (0, 0)), mode="edge")
    block_search(np.ascontiguousarray(cur, np.int32), padded, block, radius, VECTOR_COST, out, reach, centres,
                 local, reach)
    return out


def shrink(a: np.ndarray) -> np.ndarray:
    """uint8 (H, W, g) -> int32 (H // COARSE, W // COARSE, g): the sums of its COARSE x COARSE squares."""
    h, w, g = a.shape
    h, w = h // COARSE * COARSE, w // COARSE * COARSE
    return a[:h, :w].astype(np.int32).reshape(h // COARSE, COARSE, w // COARSE, COARSE, g).sum((1, 3))


def search_small(cur: np.ndarray, prev: np.ndarray, block: int, radius: int, grid: tuple[int, int]) -> np.ndarray:
    """:func:`search` on shrunk frames (int32 sums), its vector cost scaled to theirs -> the vectors
    on the full frame's ``grid`` of blocks (the last row or column repeated where the shrunk frame
    lost it)."""
    out = np.zeros((*block_grid(*cur.shape[:2], block), 2), np.int64)
    padded = np.pad(prev, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    block_search(np.ascontiguousarray(cur), padded, block, radius, VECTOR_COST * COARSE ** 3, out, radius, out, 0,
                 radius)
    return np.pad(out, ((0, grid[0] - out.shape[0]), (0, grid[1] - out.shape[1]), (0, 0)), mode="edge")


def refine(cur: np.ndarray, prev: np.ndarray, vectors: np.ndarray, block: int = BLOCK, unit: int = QUARTER,
           sharp: bool = False, phases: np.ndarray | None = None, reach: int = MAX_VECTOR) -> np.ndarray:
    """Integer vectors (by, bx, 2) -> vectors in 1/``unit`` pixels within three quarters of a pixel
    of them and ``reach`` pixels of zero, each
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
                  reach * unit, block, 0.5 * block * block / unit, out)
    return out


def moved_previous(cur: np.ndarray, prev: np.ndarray, search_blocks: bool = True, quarter: bool = True,
                   sharp_allowed: bool = True, reach: int = MAX_VECTOR) -> tuple[np.ndarray, np.ndarray | None, bool]:
    """The previous frame as the video encoder moves it for a plane group (or the groups of one
    size together): (the moved frame uint8 (H, W, g), its field (None: not searched, all zero), its
    quarter samples H.264's).  The block search (``search_blocks``) within ``reach`` pixels, then with
    ``quarter`` each vector refined to quarter pixels by the blend's samples and (``sharp_allowed``,
    coder tool 6) by H.264's, keeping whichever moves the frame closer to ``cur``."""
    field = search(cur, prev, reach=reach) if search_blocks else None
    if not quarter or field is None:
        return compensate(prev, field), field, False
    tries = []
    for sharp in (False, True) if sharp_allowed else (False,):
        phases = sixtap_phases(prev) if sharp else None  # once for both
        f = refine(cur, prev, field, sharp=sharp, phases=phases, reach=reach)
        ctx = compensate(prev, f, unit=QUARTER, sharp=sharp, phases=phases)
        tries.append((int(np.abs(cur.astype(np.int32) - ctx).sum()), ctx, f, sharp))
    _, ctx, field, sharp = min(tries, key=lambda t: t[0])
    return ctx, field, sharp
