"""Images in and out (Pillow): exact uint8 arrays plus what is needed to write them back.

Accepted: 8-bit L, LA, RGB, RGBA from any format Pillow reads losslessly (PNG, TIFF, BMP,
PPM/PGM, lossless WebP, ...).  Everything else (palette, 1-bit, 16-bit, float, CMYK,
multi-frame) is refused with an :class:`UnsupportedInputError` that says why: armcodec never
converts an input silently.  An ICC profile is kept; other metadata (EXIF, text chunks) is
not stored, and the README says so.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from armcodec.errors import UnsupportedInputError

MODES = ("L", "LA", "RGB", "RGBA")
CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
# Output suffix -> (Pillow format, save options, modes it stores exactly)
LOSSLESS_OUTPUTS = {
    ".png": ("PNG", {"compress_level": 6}, MODES),
    ".tif": ("TIFF", {"compression": "tiff_deflate"}, MODES),
    ".tiff": ("TIFF", {"compression": "tiff_deflate"}, MODES),
    ".bmp": ("BMP", {}, ("L", "RGB", "RGBA")),
    ".ppm": ("PPM", {}, ("RGB",)),
    ".pgm": ("PPM", {}, ("L",)),
    ".pnm": ("PPM", {}, ("L", "RGB")),
    ".webp": ("WEBP", {"lossless": True, "quality": 100, "exact": True}, ("RGB", "RGBA")),
}
_REFUSALS = {
    "P": "palette image: convert it to RGB/RGBA first if that is what you want to store (armcodec does not convert silently)",
    "PA": "palette image with alpha: convert it to RGBA first if that is what you want to store",
    "1": "1-bit image: convert it to L (0/255) first if that is what you want to store",
    "CMYK": "CMYK image is not supported",
    "YCbCr": "YCbCr image is not supported",
    "LAB": "Lab image is not supported",
    "HSV": "HSV image is not supported",
    "I": "32-bit integer image is not supported (only 8 bits per sample)",
    "F": "32-bit float image is not supported (only 8 bits per sample)",
}


@dataclass
class ImageInfo:
    mode: str  # L, LA, RGB or RGBA
    icc_profile: bytes = b""


def from_array(a: np.ndarray) -> tuple[np.ndarray, ImageInfo]:
    """uint8 (H, W) or (H, W, C), C in 1..4 -> (H, W, C) and its mode (C=2 is LA, 4 is RGBA)."""
    a = np.asarray(a)
    if a.dtype != np.uint8:
        raise UnsupportedInputError(f"array dtype {a.dtype} is not supported: armcodec codes uint8 samples")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in CHANNEL_MODES:
        raise UnsupportedInputError(f"array of shape {a.shape} is not an image: expected (H, W) or (H, W, 1..4)")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise UnsupportedInputError(f"empty image of shape {a.shape}")
    return np.ascontiguousarray(a), ImageInfo(CHANNEL_MODES[a.shape[2]])


def _declared_bit_depth(im: Image.Image, path: Path) -> int | None:
    """Bits per sample as stored in the file, where Pillow may have reduced it on load."""
    if im.format == "PNG":
        with open(path, "rb") as f:
            head = f.read(26)
        if len(head) >= 25 and head[12:16] == b"IHDR":
            return head[24]
    if im.format == "TIFF":
        bps = im.tag_v2.get(258)
        if bps is not None:
            return max(bps) if isinstance(bps, tuple) else int(bps)
    return None


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, ImageInfo]:
    """Read an image exactly -> uint8 (H, W, C) and ImageInfo, or raise UnsupportedInputError."""
    path = Path(path)
    try:
        im = Image.open(path)
    except FileNotFoundError:
        raise UnsupportedInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnsupportedInputError(f"{path}: is a directory") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UnsupportedInputError(f"{path}: cannot read as an image ({e})") from None
    with im:
        if getattr(im, "n_frames", 1) > 1:
            raise UnsupportedInputError(f"{path}: has {im.n_frames} frames; armcodec codes single images")
        mode = im.mode
        if mode not in MODES:
            why = _REFUSALS.get(mode) or (
                "16-bit image is not supported (only 8 bits per sample)" if mode.startswith("I;16") else f"mode {mode} is not supported"
            )
            raise UnsupportedInputError(f"{path}: {why}")
        depth = _declared_bit_depth(im, path)
        if depth is not None and depth != 8:
            raise UnsupportedInputError(f"{path}: stored with {depth} bits per sample; armcodec codes 8-bit images exactly and refuses others")
        if im.format == "WEBP" and not _webp_is_lossless(path):
            raise UnsupportedInputError(f"{path}: lossy WebP; its decoded pixels would be coded, not the file (convert to PNG first if that is intended)")
        try:
            a = np.asarray(im)
        except (OSError, ValueError) as e:
            raise UnsupportedInputError(f"{path}: image data is corrupted ({e})") from None
        icc = im.info.get("icc_profile") or b""
    arr, info = from_array(a)
    if info.mode != mode:
        raise UnsupportedInputError(f"{path}: decoded as {arr.shape}, which does not match mode {mode}")
    info.icc_profile = bytes(icc)
    return arr, info


def _webp_is_lossless(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(64)
    if b"VP8L" in head[12:16]:
        return True
    if b"VP8X" in head[12:16]:
        data = path.read_bytes()
        return b"VP8L" in data and b"VP8 " not in data
    return False


def check_output_format(path: Path, mode: str) -> tuple[str, dict]:
    """(Pillow format, save options) for writing ``mode`` to ``path`` exactly, or a refusal."""
    suffix = Path(path).suffix.lower() or ".png"
    if suffix not in LOSSLESS_OUTPUTS:
        raise UnsupportedInputError(f"{path}: {suffix} is not a lossless output format; use one of {', '.join(LOSSLESS_OUTPUTS)}")
    fmt, opts, modes = LOSSLESS_OUTPUTS[suffix]
    if mode not in modes:
        raise UnsupportedInputError(f"{path}: {fmt} cannot store mode {mode} exactly; use .png or .tiff")
    return fmt, opts


def write_image(path: str | os.PathLike, a: np.ndarray, info: ImageInfo) -> None:
    """Write uint8 (H, W, C) in a lossless format chosen by the suffix (PNG by default)."""
    path = Path(path)
    fmt, opts = check_output_format(path, info.mode)
    im = Image.fromarray(np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a))
    if im.mode != info.mode:
        raise UnsupportedInputError(f"array of shape {a.shape} does not match mode {info.mode}")
    kw = dict(opts)
    if info.icc_profile and fmt in ("PNG", "TIFF", "WEBP"):
        kw["icc_profile"] = info.icc_profile
    im.save(path, format=fmt, **kw)
