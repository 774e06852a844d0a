"""Exact transforms between an image and what the model codes: the 8-bit planes of any image
(a palette image's colours, 1/2/4-bit grey scaled to 0..255, 16-bit samples as high bytes and
reflected low bytes, or as indices among at most 256 levels per channel), plane groups, the grey plane of a grey RGB(A) image, and the blocks of a
nearest-neighbour upscale.  Each is undone bit for bit."""
from __future__ import annotations

import numpy as np

from armcodec.container import MAX_REPLICATION, group_sizes
from armcodec.errors import FormatError


def plane_groups(mode: str, grey: bool = False, bits: int = 8, transparent: bool = False) -> list[tuple[slice, slice]]:
    """The coded plane groups of an image's planes (:func:`to_planes`), in stream order: (channels
    coded, channels they fill).  A grey RGB(A) image (R = G = B) codes R alone and fills R, G and B."""
    out, c = [], 0
    for g in group_sizes(mode, bits, transparent):
        src = slice(c, c + (1 if grey and g == 3 else g))
        out.append((src, slice(c, c + g)))
        c += g
    return out


def is_grey_rgb(arr: np.ndarray, mode: str, bits: int = 8) -> bool:
    """Whether an 8-bit RGB(A) image's R, G and B planes are equal (then it is coded as one plane)."""
    return mode in ("RGB", "RGBA") and bits == 8 and bool((arr[:, :, 0] == arr[:, :, 1]).all() and (arr[:, :, 1] == arr[:, :, 2]).all())


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


def palette_colours(mode: str, palette: bytes, transparency: bytes | None) -> np.ndarray:
    """(entries, 3 or 4) uint8: each palette entry's colour as the planes code it (with its tRNS
    alpha, 255 past the chunk's end, when a P image has one; PA's alpha is a plane of its own)."""
    rgb = np.frombuffer(palette, np.uint8).reshape(-1, 3)
    if mode == "P" and transparency is not None:
        alpha = np.full((len(rgb), 1), 255, np.uint8)
        alpha[: len(transparency), 0] = np.frombuffer(transparency, np.uint8)
        return np.concatenate([rgb, alpha], axis=1)
    return rgb


def sample_levels(arr: np.ndarray, bits: int) -> tuple:
    """16-bit samples that take at most 256 values in every channel: those values per channel
    (the image is then coded as their indices, an 8-bit image); else ()."""
    if bits != 16:
        return ()
    levels = []
    for c in range(arr.shape[2]):
        seen = np.zeros(65536, bool)
        seen[arr[:, :, c]] = True
        if seen.sum() > 256:
            return ()
        levels.append(np.flatnonzero(seen).astype(np.uint16))
    return tuple(levels)


def to_levels(arr: np.ndarray, levels: tuple) -> np.ndarray:
    """16-bit samples -> uint8 indices among their channel's levels."""
    return np.stack([np.searchsorted(v, arr[:, :, c]) for c, v in enumerate(levels)], axis=2).astype(np.uint8)


def from_levels(idx: np.ndarray, levels: tuple) -> np.ndarray:
    """The inverse of :func:`to_levels`; an index past a channel's levels raises FormatError."""
    if any(idx[:, :, c].max(initial=0) >= len(v) for c, v in enumerate(levels)):
        raise FormatError("decoded index past its channel's levels")
    return np.stack([v[idx[:, :, c]] for c, v in enumerate(levels)], axis=2)


def to_planes(arr: np.ndarray, mode: str, bits: int = 8, palette: bytes = b"", transparency: bytes | None = None,
              levels: tuple = ()):
    """An image's samples (native values: uint8 up to 8 bits, uint16 for 16) -> the uint8 planes
    the model codes, or None where they cannot be mapped back (a palette image using an entry
    whose colour an earlier entry also has).  ``levels``: 16-bit samples coded as their indices."""
    if levels:
        return to_levels(arr, levels)
    if mode in ("P", "PA"):
        colours = palette_colours(mode, palette, transparency)
        idx = arr[:, :, 0]
        if idx.max(initial=0) >= len(colours):
            return None
        planes = colours[idx]
        if mode == "PA":
            planes = np.concatenate([planes, arr[:, :, 1:2]], axis=2)
        back = from_planes(planes, mode, bits, palette, transparency, check=False)
        return planes if back is not None and np.array_equal(back, arr) else None
    if bits == 16:  # high bytes, then low bytes reflected where the high byte is odd: a smooth
        hi, lo = arr >> 8, arr & 0xFF  # ramp stays smooth in both planes (no jump from 255 to 0)
        return np.concatenate([hi, np.where(hi & 1, 255 - lo, lo)], axis=2).astype(np.uint8)
    if bits < 8:
        return (arr * (255 // ((1 << bits) - 1))).astype(np.uint8)
    return arr


def from_planes(planes: np.ndarray, mode: str, bits: int = 8, palette: bytes = b"", transparency: bytes | None = None,
                check: bool = True, levels: tuple = ()):
    """The inverse of :func:`to_planes`.  A palette image's colours go back to the first entry of
    that colour; a colour no entry has raises FormatError (``check=False``: returns None)."""
    if levels:
        return from_levels(planes, levels)
    if mode in ("P", "PA"):
        colours = palette_colours(mode, palette, transparency).astype(np.uint32)
        n = colours.shape[1]
        key = lambda c: sum(c[..., k].astype(np.uint32) << (8 * k) for k in range(n))  # noqa: E731
        keys = key(colours)
        order = np.argsort(keys, kind="stable")  # equal colours: the first entry first
        sorted_keys = keys[order]
        want = key(planes[:, :, :n])
        pos = np.minimum(np.searchsorted(sorted_keys, want), len(keys) - 1)
        if not (sorted_keys[pos] == want).all():
            if not check:
                return None
            raise FormatError("decoded colour is not in the palette")
        idx = order[pos].astype(np.uint8)[:, :, None]
        return np.concatenate([idx, planes[:, :, n:]], axis=2) if mode == "PA" else idx
    if bits == 16:
        c = planes.shape[2] // 2
        hi, lo = planes[:, :, :c].astype(np.uint16), planes[:, :, c:].astype(np.uint16)
        return (hi << 8) | np.where(hi & 1, 255 - lo, lo)
    if bits < 8:
        step = 255 // ((1 << bits) - 1)
        if check and (planes % step).any():
            raise FormatError(f"decoded sample is not a {bits}-bit value")
        return planes // step
    return planes
