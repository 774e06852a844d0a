"""The classic path (container kind 2): an image kept as a PNG's zlib stream or a lossless WebP
file, where that is smaller than the model's streams (small, flat or synthetic images, graphics,
palette and low-bit-depth images).

Encoding tries a PNG zlib stream at the image's own colour type and bit depth (adaptive filters,
zlib level 9; :mod:`armcodec.io.png`), the zlib stream of the PNG file the image was read from
(interlaced or not: it was often made by a stronger optimiser), and lossless WebP (methods 4 and 6
at quality 100 up to 64K pixels; above, method 4 at quality 75, and at 100 only where that came
near the smallest file, :func:`webp_worth_full`; ``exact``: colours under transparent pixels
kept) of an 8-bit RGB or RGBA image or of a palette
image's colours (mapped back to its indices on decoding, :mod:`armcodec.transforms`); a candidate
is kept only if it decodes to the very samples (checked, not assumed).  Of a PNG only the zlib
stream is kept: signature, IHDR (rebuilt from the header's size, mode and bit depth), PLTE and tRNS
(from the header), chunk framing and IEND are bytes a tiny image should not pay.  Decoding
validates the payload's format, size and mode before its pixels are decoded; the caller checks
the image's CRC.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from armcodec.container import coded_mode
from armcodec.container_video import (GROUP_CODES, GROUP_RESIDUAL, GROUP_SAMPLES, IN_PAIR, PAIR_CODES,  # noqa: F401
                                      PAIR_RESIDUAL, PAIR_SAMPLES)
from armcodec.errors import FormatError
from armcodec.io import png
from armcodec.transforms import from_planes

FORMATS = {"png": "PNG", "png-adam7": "PNG", "webp": "WEBP"}
WEBP_OPTIONS = {"lossless": True, "method": 4, "quality": 100, "exact": True}
WEBP_SLOW_PIXELS = 1 << 16  # up to this size also WebP's method 6 (a palette crop of 256x256: -7%; on a noisy
# 481x321 photograph of eval/ it took 6.3 s against method 4's 0.8 s for 0.05%, and made the pyramid's encode 3x slower)
WEBP_QUICK_QUALITY = 75  # above WEBP_SLOW_PIXELS first method 4 at this quality: 2.2x (the validation photographs)
# to 4.4x (eval/) less time than at 100, files at most 2.3% larger, 0.4% in all (EXPERIMENTS.md row 57)
WEBP_FULL_MARGIN = 0.975  # ... and at quality 100 too only where the quick file times this is below the smallest other:
# quality 100 was at most 2.3% smaller than 75 on any image measured (rows 57 and 69), so where the quick file is
# more than 2.5% above another, the full one cannot be the smallest (0.95 until 0.17.1: 18 of Kodak's 24 ran it
# for the pyramid preset, 0.49 s an image, 12 now, and no file changed)


def webp_worth_full(quick: list[int], smallest_other: int) -> bool:
    """Whether an image's quick WebP files (sizes; above :data:`WEBP_SLOW_PIXELS`) came near enough
    to ``smallest_other`` (the smallest of its other files) that WebP at quality 100 (at most 2.3%
    smaller than the quick one where measured) might be smaller still.  Encoder-only: it picks
    which candidates are tried, never how a file decodes."""
    return any(q * WEBP_FULL_MARGIN < smallest_other for q in quick)


def candidates(arr: np.ndarray, mode: str, bits: int = 8, planes: np.ndarray | None = None,
               source_stream: tuple | None = None, palette: bytes = b"", transparency: bytes | None = None,
               webp: str = "all") -> list[tuple[str, bytes]]:
    """Samples (H, W, C) of ``mode`` at ``bits`` -> [(codec, payload)] that decode to them exactly.
    ``planes``: the image's 8-bit planes (a palette image's colours), for WebP; ``source_stream``:
    (zlib stream, interlace) of the PNG the image was read from.  ``webp``: which WebP settings
    are tried (the smallest file kept): ``"all"``; ``"quick"``: above :data:`WEBP_SLOW_PIXELS`
    only quality :data:`WEBP_QUICK_QUALITY`; ``"full"``: only what ``"quick"`` leaves out, no PNG."""
    h, w = arr.shape[:2]
    if planes is None and bits == 8 and mode in ("RGB", "RGBA"):
        planes = arr
    out = []
    if mode != "PA" and webp != "full":
        out.append(("png", png.stream(arr, bits, png.COLOUR_TYPES[mode], level=9, search=True)))
        if source_stream is not None:
            out.append(("png-adam7" if source_stream[1] else "png", source_stream[0]))
    if planes is not None and planes.shape[2] >= 3 and (bits == 8 or mode in ("P", "PA")):
        if h * w <= WEBP_SLOW_PIXELS:  # (method, quality): all in "quick"
            settings = [] if webp == "full" else [(4, 100), (6, 100)]
        else:
            quick, full = [(4, WEBP_QUICK_QUALITY)], [(4, 100)]
            settings = {"all": quick + full, "quick": quick, "full": full}[webp]
        found = []
        for method, quality in settings:  # 6 is not always the smaller, nor 100 than 75
            buf = io.BytesIO()
            Image.fromarray(np.ascontiguousarray(planes)).save(buf, format="WEBP", **{**WEBP_OPTIONS, "method": method,
                                                                                      "quality": quality})
            found.append(buf.getvalue())
        if found:
            out.append(("webp", min(found, key=len)))
    kept = []
    for name, data in out:
        try:
            if np.array_equal(decode(name, data, mode, w, h, bits, palette, transparency), arr):
                kept.append((name, data))
        except FormatError:
            pass
    return kept


def decode(name: str, data: bytes, mode: str, width: int, height: int, bits: int = 8, palette: bytes = b"",
           transparency: bytes | None = None) -> np.ndarray:
    """A classic payload -> samples (H, W, C) of ``mode`` at ``bits``; FormatError unless it is a
    ``name`` payload of that size holding that image."""
    if name.startswith("png"):
        try:
            return png.decode(data, width, height, bits, png.COLOUR_TYPES[mode], int(name == "png-adam7"))
        except png.PngError as e:
            raise FormatError(f"classic {name} payload: {e}") from None
    try:
        im = Image.open(io.BytesIO(data), formats=[FORMATS[name]])
        if im.size != (width, height):
            raise FormatError(f"classic {name} payload is {im.size[0]}x{im.size[1]}, the header says {width}x{height}")
        if im.mode != coded_mode(mode, transparency is not None):  # a palette image: its colours
            raise FormatError(f"classic {name} payload holds mode {im.mode}, the header says {mode}")
        a = np.asarray(im)
    except FormatError:
        raise
    except Exception as e:  # Pillow's many ways of refusing a damaged file
        raise FormatError(f"classic {name} payload is damaged ({type(e).__name__}: {e})") from None
    a = a[:, :, None] if a.ndim == 2 else a
    if a.dtype != np.uint8 or a.shape[:2] != (height, width):
        raise FormatError(f"classic {name} payload decodes to {a.dtype} {a.shape}")
    return from_planes(a, mode, bits, palette, transparency) if mode in ("P", "PA") else a


# --- a video frame's plane group as one lossless WebP (coder tool 8, video files, 0.15) ----------------
# A group's classic payload holds its samples (GROUP_SAMPLES) or, for a group coded with the previous
# frame, its residual to the moved previous frame, (x - moved + 128) mod 256 (GROUP_RESIDUAL): where
# the model loses, on screen content and flat graphics (docs/EXPERIMENTS.md, row 65).  A grey plane is
# stored as a WebP whose three channels are equal (WebP's subtract-green transform makes two of them free).
# A pair of equal grey planes (a 4:2:0 frame's U and V) may be one WebP whose channels are (the
# first, the second, the second): PAIR_SAMPLES or PAIR_RESIDUAL on the first, IN_PAIR on the second
# (30-40% below the two apart on flat chroma, row 65).  The codes: :mod:`armcodec.container_video`.
GROUP_WEBP = {"lossless": True, "method": 4, "quality": 100, "exact": True}  # 0.07 s a 720p frame


def group_residual(samples: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """(x - moved + 128) mod 256 of two uint8 arrays of one shape."""
    return (samples.astype(np.int16) - moved.astype(np.int16) + 128).astype(np.uint8)


def from_residual(residual: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """The samples whose :func:`group_residual` to ``moved`` is ``residual``."""
    return (residual.astype(np.int16) + moved.astype(np.int16) - 128).astype(np.uint8)


def group_payload(samples: np.ndarray, moved: np.ndarray | None = None) -> bytes:
    """Encoder-only: the lossless WebP of a plane group's samples (H, W, 1 or 3), or of its residual
    to ``moved`` (the moved previous frame's samples)."""
    a = samples if moved is None else group_residual(samples, moved)
    a = np.repeat(a, 3, 2) if a.shape[2] == 1 else a
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(buf, format="WEBP", **GROUP_WEBP)
    return buf.getvalue()


def group_samples(code: int, payload: bytes, width: int, height: int, channels: int,
                  moved: np.ndarray | None = None) -> np.ndarray:
    """A group's classic payload -> its samples uint8 (height, width, channels); ``moved``: the moved
    previous frame (GROUP_RESIDUAL).  FormatError unless the payload is a lossless WebP of that size
    (a grey plane's with three equal channels)."""
    if code not in GROUP_CODES or (code == GROUP_RESIDUAL) != (moved is not None):
        raise FormatError(f"invalid classic group code {code}")
    a = decode("webp", payload, "RGB", width, height)
    if channels == 1:
        if not (np.array_equal(a[:, :, 0], a[:, :, 1]) and np.array_equal(a[:, :, 0], a[:, :, 2])):
            raise FormatError("a grey plane's classic payload has unequal channels")
        a = a[:, :, :1]
    return np.ascontiguousarray(a) if moved is None else from_residual(a, moved)


def pair_payload(first: np.ndarray, second: np.ndarray, moved: tuple | None = None) -> bytes:
    """Encoder-only: one lossless WebP of two equal grey planes (H, W, 1) (channels: first, second,
    second), or of their residuals to ``moved`` (the two moved previous planes)."""
    if moved is not None:
        first, second = group_residual(first, moved[0]), group_residual(second, moved[1])
    return group_payload(np.concatenate([first, second, second], 2))


def pair_samples(code: int, payload: bytes, width: int, height: int, moved: tuple | None = None) -> tuple:
    """A pair's classic payload -> the two planes uint8 (height, width, 1); ``moved``: the two moved
    previous planes (PAIR_RESIDUAL).  FormatError unless it is a lossless WebP of that size whose
    last two channels are equal."""
    if code not in PAIR_CODES or (code == PAIR_RESIDUAL) != (moved is not None):
        raise FormatError(f"invalid classic group code {code}")
    a = decode("webp", payload, "RGB", width, height)
    if not np.array_equal(a[:, :, 1], a[:, :, 2]):
        raise FormatError("a pair of planes' classic payload has unequal second and third channels")
    out = [np.ascontiguousarray(a[:, :, k : k + 1]) for k in (0, 1)]
    return tuple(out) if moved is None else tuple(from_residual(x, m) for x, m in zip(out, moved))
