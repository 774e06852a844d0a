"""Exact transforms between an image and what the model codes: plane groups, the grey plane of a
grey RGB(A) image, and the blocks of a nearest-neighbour upscale.  Each is undone bit for bit."""
from __future__ import annotations

import numpy as np

from armcodec.container import MAX_REPLICATION, MODE_GROUPS


def plane_groups(mode: str, grey: bool = False) -> list[tuple[slice, slice]]:
    """The coded plane groups of an image, in stream order: (channels coded, channels they
    fill).  A grey RGB(A) image (R = G = B) codes R alone and fills R, G and B with it."""
    out, c = [], 0
    for g in MODE_GROUPS[mode]:
        src = slice(c, c + (1 if grey and g == 3 else g))
        out.append((src, slice(c, c + g)))
        c += g
    return out


def is_grey_rgb(arr: np.ndarray, mode: str) -> bool:
    """Whether an RGB(A) image's R, G and B planes are equal (then it is coded as one plane)."""
    return mode in ("RGB", "RGBA") and bool((arr[:, :, 0] == arr[:, :, 1]).all() and (arr[:, :, 1] == arr[:, :, 2]).all())


def replication_factors(arr: np.ndarray) -> tuple[int, int]:
    """(fy, fx), the largest factors (at most 255, dividing the height and the width) such that
    the image is made of fy x fx blocks of equal pixels, a nearest-neighbour upscale; (1, 1) for
    most images.  Such an image is coded as its blocks' pixels (container kind 1)."""
    return _replication(arr, 0), _replication(arr, 1)


def _replication(arr: np.ndarray, axis: int) -> int:
    n = arr.shape[axis]
    line = lambda i: np.take(arr, i, axis=axis)  # noqa: E731
    if n < 2 or not np.array_equal(line(0), line(1)):
        return 1  # most images stop here, after one comparison
    repeats = np.array([np.array_equal(line(i), line(i - 1)) for i in range(1, n)])  # line i repeats line i - 1
    inside_block = np.arange(1, n)
    for f in range(min(n, MAX_REPLICATION), 1, -1):
        if n % f == 0 and repeats[inside_block % f != 0].all():
            return f
    return 1


def replicate(blocks: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """The decoded blocks' pixels repeated fy x fx: the inverse of ``arr[::fy, ::fx]``."""
    fy, fx = factors
    return blocks if (fy, fx) == (1, 1) else np.repeat(np.repeat(blocks, fy, axis=0), fx, axis=1)
