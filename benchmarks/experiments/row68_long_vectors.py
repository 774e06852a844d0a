"""Row 68: long motion vectors (coder tool 9, 0.17).

cockatoo.mp4 (a hand-held 720p camera, decoded H.264) shakes by more than the 16 pixels that the
vectors of files before 0.17 reach: 0.16's search put up to 71% of a frame's 16x16 blocks at the
limit.  ``scan``: per frame of a clip's first ``--frames``, the share of blocks whose vector (0.17's
search, up to 64 pixels) is longer than 16 pixels, and the share near 64 (60 or more).  ``files``:
real files of frames ``--start`` .. ``--start + --frames - 1`` (the first a key frame) with tool 9
on and off (``--no-long``: 0.16's search and field), each later frame's bytes.  ``exact``: per
frame ``--start``, the share of samples the moved previous frame matches exactly and the mean
absolute residual, with vectors up to 16 and up to 64 pixels.

    python -m benchmarks.experiments.row68_long_vectors --study scan ../shared/data/video/cockatoo.mp4
    python -m benchmarks.experiments.row68_long_vectors --study files ../shared/data/video/cockatoo.mp4 --start 13 --frames 4 [--no-long]
    python -m benchmarks.experiments.row68_long_vectors --study exact ../shared/data/video/cockatoo.mp4 --start 15
"""
from __future__ import annotations

import argparse
import io
import itertools
from pathlib import Path

import numpy as np

from armcodec.coding.motion import MAX_LONG_VECTOR, MAX_VECTOR
from armcodec.encoder import motion as motion_search
from armcodec.video import VideoCodec


def source(clip: Path, start: int, n: int):
    from armcodec.io.frames import video_source, y4m_source

    src = y4m_source(open(clip, "rb"), str(clip)) if clip.suffix == ".y4m" else video_source(clip, video_only=True)
    src.frames = itertools.islice(src.frames, start, start + n)
    return src


def planes(frame) -> np.ndarray:
    """The frame's groups of the first group's size, as the encoder searches them together."""
    return np.concatenate([g for g in frame.groups if g.shape[:2] == frame.groups[0].shape[:2]], 2)


def scan(clip: Path, n: int) -> None:
    prev, rows = None, []
    for t, frame in enumerate(source(clip, 0, n).frames):
        cur = planes(frame)
        if prev is not None:
            v = motion_search.search(cur, prev, reach=MAX_LONG_VECTOR)
            rows.append(f"{t}: {(np.abs(v) > MAX_VECTOR).any(2).mean():.2f} / {(np.abs(v) >= 60).any(2).mean():.3f}")
        prev = cur
    print(f"{clip.name}, per frame: share of blocks beyond {MAX_VECTOR} pixels / at 60 or more:")
    print(", ".join(rows))


def files(clip: Path, start: int, n: int, long: bool) -> None:
    sizes = []
    VideoCodec(long_motion=long).encode(source(clip, start, n), io.BytesIO(), progress=lambda s: sizes.append(s.bytes))
    print(f"{clip.name} frames {start}..{start + n - 1}, tool 9 {'on' if long else 'off'}: key {sizes[0]}, "
          f"later {sum(sizes[1:])} {sizes[1:]}")


def exact(clip: Path, start: int) -> None:
    prev, cur = (planes(f) for f in source(clip, start - 1, 2).frames)
    for reach in (MAX_VECTOR, MAX_LONG_VECTOR):
        moved, _, _ = motion_search.moved_previous(cur, prev, reach=reach)
        print(f"frame {start}, vectors up to {reach} pixels: {(moved == cur).all(2).mean():.3f} of the pixels matched "
              f"exactly, mean |residual| {np.abs(cur.astype(int) - moved).mean():.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", type=Path)
    ap.add_argument("--study", choices=("scan", "files", "exact"), default="scan")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--no-long", dest="long", action="store_false")
    a = ap.parse_args()
    if a.study == "scan":
        scan(a.clip, a.frames)
    elif a.study == "files":
        files(a.clip, a.start, a.frames, a.long)
    else:
        exact(a.clip, a.start)


if __name__ == "__main__":
    main()
