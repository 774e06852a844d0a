"""Row 67: the video encoder's block search (encoder-only; 0.16).

0.15's search charged every vector 2.0 SAD units per pixel of its length per pixel of the block,
within 7 pixels, each plane group alone, and refined within half a pixel.  On cockatoo.mp4 (a
shaking 720p camera, decoded H.264) that kept most blocks at the zero vector: frame 8's luma
matched the moved previous frame exactly at 37% of its samples, where the best vector of each
16x16 block within 16 pixels (H.264's quarter samples) matches 88%.

``files``: real files (0.16's tools: long vectors off) of a clip's frames ``--start`` .. ``--start + --frames - 1`` (the first a key
frame), printing each later frame's bytes, with the search as 0.15 ran it (``--search 0.15``) or as
0.16 runs it, and 0.16's with another ``--cost`` (per pixel that a vector differs from the median
of its neighbours') or refinement ``--reach`` (quarter pixels).

``exact``: per plane of frame ``--start``, the share of samples that its previous frame, moved as
each search moves it, matches exactly.

    python -m benchmarks.experiments.row67_block_search --study files CLIP [--search 0.15] [--cost C] [--reach R]
    python -m benchmarks.experiments.row67_block_search --study exact ../shared/data/video/cockatoo.mp4 --start 8
"""
from __future__ import annotations

import argparse
import io
import itertools
from pathlib import Path

import numpy as np

import armcodec.video
from armcodec.coding import motion
from armcodec.coding.motion import MAX_VECTOR, QUARTER, block_grid
from armcodec.encoder import motion as motion_search
from armcodec.encoder import motion_kernels


def search_015(cur, prev, block=motion.BLOCK, radius=7, reach=None):
    """0.15's block search: SAD of the channels' sum, 2.0 per pixel of length, within 7 pixels."""
    h, w = cur.shape[:2]
    by, bx = block_grid(h, w, block)
    c = cur.astype(np.int32).sum(2)
    p = np.pad(prev.astype(np.int32).sum(2), radius, mode="edge")
    best, out = np.full((by, bx), np.inf), np.zeros((by, bx, 2), np.int64)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            moved = p[radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            sad = motion_search.block_sad(c[:, :, None], moved[:, :, None], block) + 2.0 * (abs(dy) + abs(dx)) * block * block
            better = sad < best
            best[better], out[better] = sad[better], (dy, dx)
    return out


def refine_015(cur, prev, vectors, block=motion.BLOCK, unit=QUARTER, sharp=False, phases=None, reach=None):
    """0.15's refinement: within half a pixel, SAD of the channels' sum."""
    if sharp and phases is None:
        phases = motion.sixtap_phases(prev)
    c = cur.astype(np.int32).sum(2, keepdims=True)
    # the channels' sum moved: each candidate through compensate, as 0.15 did
    base = vectors * unit
    best = np.full(base.shape[:2], np.inf)
    out = base.copy()
    for qy in range(-(unit // 2), unit // 2 + 1):
        for qx in range(-(unit // 2), unit // 2 + 1):
            cand = np.clip(base + np.array([qy, qx]), -MAX_VECTOR * unit, MAX_VECTOR * unit)
            moved = motion.compensate(prev, cand, block, unit, sharp, phases).astype(np.int32).sum(2, keepdims=True)
            sad = motion_search.block_sad(c, moved, block) + (0.5 * block * block / unit if qy or qx else 0.0)
            better = sad < best
            best[better], out[better] = sad[better], cand[better]
    return out


def use_015():
    motion_search.search, motion_search.refine = search_015, refine_015
    armcodec.video._same_size = lambda groups: [[k] for k in range(len(groups))]


def source(clip: Path, start: int, n: int):
    from armcodec.io.frames import video_source, y4m_source

    src = y4m_source(open(clip, "rb"), str(clip)) if clip.suffix == ".y4m" else video_source(clip, video_only=True)
    src.frames = itertools.islice(src.frames, start, start + n)
    return src


def files(clip: Path, start: int, n: int) -> None:
    sizes = []
    armcodec.video.VideoCodec(long_motion=False).encode(source(clip, start, n), io.BytesIO(), progress=lambda s: sizes.append(s.bytes))
    print(f"{clip.name} frames {start}..{start + n - 1}: key {sizes[0]}, later {sum(sizes[1:])} {sizes[1:]}")


def exact(clip: Path, start: int) -> None:
    prev, cur = list(source(clip, start - 1, 2).frames)
    for k, (c, p) in enumerate(zip(cur.groups, prev.groups)):
        ph = motion.sixtap_phases(p)
        f = motion_search.refine(c, p, motion_search.search(c, p), sharp=True, phases=ph)
        moved = motion.compensate(p, f, unit=QUARTER, sharp=True, phases=ph)
        print(f"plane {k}: {(moved == c).mean():.3f} of its samples matched exactly")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--study", choices=("files", "exact"), default="files")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--frames", type=int, default=5)
    ap.add_argument("--search", choices=("0.15", "0.16"), default="0.16")
    ap.add_argument("--cost", type=float, default=motion_search.VECTOR_COST)
    ap.add_argument("--reach", type=int, default=3, help="the refinement's reach in quarter pixels (0.16: 3)")
    a = ap.parse_args()
    motion_search.VECTOR_COST = a.cost
    if a.reach != 3:
        kernel = motion_kernels.refine_search

        def refine_search(cur, prev, phases, sharp, unit, base, reach, *rest):
            kernel(cur, prev, phases, sharp, unit, base, a.reach, *rest)

        motion_search.refine_search = refine_search
    if a.search == "0.15":
        use_015()
    if a.study == "files":
        files(a.clip, a.start, a.frames)
    else:
        exact(a.clip, a.start)


if __name__ == "__main__":
    main()
