"""The classic path (container kind 2): an image kept as a PNG's zlib stream or a lossless WebP
file, where that is smaller than the model's streams (small, flat or synthetic images, graphics).

Encoding tries PNG (zlib level 9, Pillow's optimizer) for every mode and lossless WebP (method 4,
``exact``: colours under transparent pixels kept) for RGB and RGBA, and keeps a candidate only if
it decodes to the very array (checked, not assumed).  Of a PNG only the zlib stream of its IDAT
chunks is kept: signature, IHDR (rebuilt from the header's size and mode), chunk framing and IEND
are 57 bytes a tiny image should not pay.  Decoding validates the payload's format, size and mode
before its pixels are decoded; the caller checks the image's CRC.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from armcodec.errors import FormatError

FORMATS = {"png": "PNG", "webp": "WEBP"}
OPTIONS = {"png": {"compress_level": 9, "optimize": True},
           "webp": {"lossless": True, "method": 4, "quality": 100, "exact": True}}
MODES = {"png": ("L", "LA", "RGB", "RGBA"), "webp": ("RGB", "RGBA")}


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_COLOUR_TYPES = {"L": 0, "RGB": 2, "LA": 4, "RGBA": 6}


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _ihdr(mode: str, width: int, height: int) -> bytes:
    return struct.pack(">IIBBBBB", width, height, 8, PNG_COLOUR_TYPES[mode], 0, 0, 0)


def png_stream(png: bytes, mode: str, width: int, height: int) -> bytes | None:
    """A PNG file -> the zlib stream of its IDAT chunks, if it holds nothing else that
    :func:`png_file` would not rebuild (else None)."""
    pos, idat, kinds = len(PNG_SIGNATURE), [], []
    if not png.startswith(PNG_SIGNATURE):
        return None
    while pos + 8 <= len(png):
        (n,) = struct.unpack_from(">I", png, pos)
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + n]
        kinds.append(kind)
        if kind == b"IHDR" and body != _ihdr(mode, width, height):
            return None
        if kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    if kinds[:1] != [b"IHDR"] or kinds[-1:] != [b"IEND"] or set(kinds[1:-1]) != {b"IDAT"}:
        return None
    return b"".join(idat)


def png_file(stream: bytes, mode: str, width: int, height: int) -> bytes:
    """The PNG file a kept zlib stream came from (what :func:`png_stream` dropped, rebuilt)."""
    return PNG_SIGNATURE + _chunk(b"IHDR", _ihdr(mode, width, height)) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


def _image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a))


def candidates(a: np.ndarray, mode: str) -> list[tuple[str, bytes]]:
    """uint8 (H, W, C) of ``mode`` -> [(codec, file bytes)] that decode to ``a`` exactly."""
    out = []
    for name, fmt in FORMATS.items():
        if mode not in MODES[name]:
            continue
        buf = io.BytesIO()
        _image(a).save(buf, format=fmt, **OPTIONS[name])
        data = buf.getvalue()
        if name == "png":
            data = png_stream(data, mode, a.shape[1], a.shape[0])
            if data is None:
                continue
        try:
            if np.array_equal(decode(name, data, mode, a.shape[1], a.shape[0]), a):
                out.append((name, data))
        except FormatError:
            pass
    return out


def decode(name: str, data: bytes, mode: str, width: int, height: int) -> np.ndarray:
    """A classic payload -> uint8 (H, W, C) of ``mode``; FormatError unless it is a ``name`` file
    of that size holding that mode."""
    try:
        if name == "png":
            data = png_file(data, mode, width, height)
        im = Image.open(io.BytesIO(data), formats=[FORMATS[name]])
        if im.size != (width, height):
            raise FormatError(f"classic {name} payload is {im.size[0]}x{im.size[1]}, the header says {width}x{height}")
        if im.mode != mode:
            raise FormatError(f"classic {name} payload holds mode {im.mode}, the header says {mode}")
        a = np.asarray(im)
    except FormatError:
        raise
    except Exception as e:  # Pillow's many ways of refusing a damaged file
        raise FormatError(f"classic {name} payload is damaged ({type(e).__name__}: {e})") from None
    a = a[:, :, None] if a.ndim == 2 else a
    if a.dtype != np.uint8 or a.shape != (height, width, len(mode)):
        raise FormatError(f"classic {name} payload decodes to {a.dtype} {a.shape}")
    return a
