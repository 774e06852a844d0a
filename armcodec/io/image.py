"""Images in and out (Pillow): exact uint8 arrays plus what is needed to write them back.

Accepted: 8-bit L, LA, RGB, RGBA from any format Pillow reads losslessly (PNG, TIFF, BMP,
PPM/PGM, lossless WebP, ...).  Everything else (palette, 1-bit, 16-bit, float, CMYK,
multi-frame) is refused with an :class:`UnsupportedInputError` that says why: armcodec never
converts an input silently.  Kept with the pixels: the ICC profile, the EXIF block, the XMP packet
PNG text chunks (tEXt, zTXt, iTXt: key and text; PNG's XMP is one of them) and the transparent
colour of an L or RGB PNG (tRNS).  Writing them
back: PNG holds all of them, WebP the EXIF and XMP; a format that cannot hold what the image
carries is refused with a message (never dropped silently).
"""
from __future__ import annotations

import io
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


PNG_XMP_KEY = "XML:com.adobe.xmp"
# Output format -> the metadata kinds it holds (besides the ICC profile)
HOLDS = {"PNG": ("exif", "xmp", "text", "transparency"), "WEBP": ("exif", "xmp")}


@dataclass
class ImageInfo:
    mode: str  # L, LA, RGB or RGBA
    icc_profile: bytes = b""
    metadata: tuple = ()  # ((kind, key, value bytes), ...): ("exif", "", ...), ("xmp", "", ...), ("text", key, utf-8)


def read_metadata(im: Image.Image) -> tuple:
    """The EXIF, XMP and text entries Pillow found in an opened image, in a fixed order."""
    items = []
    exif = im.info.get("exif")
    if exif:
        items.append(("exif", "", bytes(exif)))
    text = dict(getattr(im, "text", None) or {}) if im.format == "PNG" else {}
    xmp = text.pop(PNG_XMP_KEY, None) or im.info.get("xmp")  # PNG's XMP is an iTXt chunk of this key
    if xmp:
        items.append(("xmp", "", xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)))
    items += [("text", str(k), str(v).encode("utf-8")) for k, v in text.items()]
    colour = im.info.get("transparency")  # PNG's tRNS on an L or RGB image: the transparent colour
    if colour is not None and im.mode in ("L", "RGB"):
        values = (colour,) if isinstance(colour, int) else tuple(colour)
        if len(values) != len(im.mode) or not all(isinstance(v, int) and 0 <= v < 65536 for v in values):
            raise UnsupportedInputError(f"transparency {colour!r} of a mode {im.mode} image is not a colour armcodec can keep")
        items.append(("transparency", "", b"".join(v.to_bytes(2, "little") for v in values)))
    return tuple(items)


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


class _Source:
    """An image file given by path, or its bytes (a pipe): what the checks below read of it."""

    def __init__(self, source):
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.name, self.path, self._data = "-", None, bytes(source)
        else:
            self.path = Path(source)
            self.name, self._data = str(self.path), None

    def open(self):
        return Image.open(io.BytesIO(self._data) if self.path is None else self.path)

    def head(self, n: int) -> bytes:
        if self._data is not None:
            return self._data[:n]
        with open(self.path, "rb") as f:
            return f.read(n)

    def data(self) -> bytes:
        return self._data if self._data is not None else self.path.read_bytes()


def _declared_bit_depth(im: Image.Image, src: _Source) -> int | None:
    """Bits per sample as stored in the file, where Pillow may have reduced it on load."""
    if im.format == "PNG":
        head = src.head(26)
        if len(head) >= 25 and head[12:16] == b"IHDR":
            return head[24]
    if im.format == "TIFF":
        bps = im.tag_v2.get(258)
        if bps is not None:
            return max(bps) if isinstance(bps, tuple) else int(bps)
    return None


def read_image(source: str | os.PathLike | bytes) -> tuple[np.ndarray, ImageInfo]:
    """Read an image exactly (a path, or the bytes of a file: a pipe) -> uint8 (H, W, C) and
    ImageInfo, or raise UnsupportedInputError."""
    src = _Source(source)
    path = src.name
    try:
        im = src.open()
    except FileNotFoundError:
        raise UnsupportedInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnsupportedInputError(f"{path}: is a directory") from None
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UnsupportedInputError(f"{path}: cannot read as an image ({e})") from None
    with im:
        depth = _declared_bit_depth(im, src) if im.mode in MODES else None
        if depth is not None and depth != 8:
            raise UnsupportedInputError(f"{path}: stored with {depth} bits per sample; armcodec codes 8-bit images exactly and refuses others")
        if im.format == "WEBP" and not _webp_is_lossless(src):
            raise UnsupportedInputError(f"{path}: lossy WebP; its decoded pixels would be coded, not the file (convert to PNG first if that is intended)")
        return from_pil(im, path)


def from_pil(im: Image.Image, where: str = "image") -> tuple[np.ndarray, ImageInfo]:
    """A Pillow image (opened or in memory) -> uint8 (H, W, C) and ImageInfo, or raise
    UnsupportedInputError (``where`` names it in the message).  Its pixels as Pillow holds them."""
    if getattr(im, "n_frames", 1) > 1:
        raise UnsupportedInputError(f"{where}: has {im.n_frames} frames; armcodec codes single images")
    mode = im.mode
    if mode not in MODES:
        why = _REFUSALS.get(mode) or (
            "16-bit image is not supported (only 8 bits per sample)" if mode.startswith("I;16") else f"mode {mode} is not supported"
        )
        raise UnsupportedInputError(f"{where}: {why}")
    try:
        a = np.asarray(im)
    except (OSError, ValueError) as e:
        raise UnsupportedInputError(f"{where}: image data is corrupted ({e})") from None
    arr, info = from_array(a)
    if info.mode != mode:
        raise UnsupportedInputError(f"{where}: decoded as {arr.shape}, which does not match mode {mode}")
    info.icc_profile = bytes(im.info.get("icc_profile") or b"")
    info.metadata = read_metadata(im)
    return arr, info


def _webp_is_lossless(src: _Source) -> bool:
    head = src.head(64)
    if b"VP8L" in head[12:16]:
        return True
    if b"VP8X" in head[12:16]:
        data = src.data()
        return b"VP8L" in data and b"VP8 " not in data
    return False


def check_output_format(path: Path, mode: str, suffix: str | None = None, metadata: tuple = ()) -> tuple[str, dict]:
    """(Pillow format, save options) for writing ``mode`` to ``path`` exactly (in the format its
    suffix names, or ``suffix`` if given: ``.png``, ``.tiff``, ...), or a refusal."""
    suffix = (suffix or Path(path).suffix).lower() or ".png"
    if suffix not in LOSSLESS_OUTPUTS:
        raise UnsupportedInputError(f"{path}: {suffix} is not a lossless output format; use one of {', '.join(LOSSLESS_OUTPUTS)}")
    fmt, opts, modes = LOSSLESS_OUTPUTS[suffix]
    if mode not in modes:
        raise UnsupportedInputError(f"{path}: {fmt} cannot store mode {mode} exactly; use .png or .tiff")
    check_metadata(path, fmt, metadata)
    return fmt, opts


def write_image(path, a: np.ndarray, info: ImageInfo, suffix: str | None = None) -> None:
    """Write uint8 (H, W, C) in a lossless format chosen by the suffix (PNG by default), or by
    ``suffix`` (then ``path`` may also be a binary file object, such as stdout)."""
    path = path if hasattr(path, "write") else Path(path)
    fmt, opts = check_output_format(Path("-") if hasattr(path, "write") else path, info.mode, suffix, info.metadata)
    im = Image.fromarray(np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a))
    if im.mode != info.mode:
        raise UnsupportedInputError(f"array of shape {a.shape} does not match mode {info.mode}")
    kw = dict(opts)
    if info.icc_profile and fmt in ("PNG", "TIFF", "WEBP"):
        kw["icc_profile"] = info.icc_profile
    kw.update(metadata_options(fmt, info.metadata))
    im.save(path, format=fmt, **kw)


def check_metadata(path, fmt: str, metadata: tuple) -> None:
    """Refuse a format that cannot hold the image's metadata (nothing is dropped silently)."""
    lost = sorted({kind for kind, _, _ in metadata} - set(HOLDS.get(fmt, ())))
    if lost:
        names = {"exif": "EXIF", "xmp": "XMP", "text": "text chunks", "transparency": "transparent colour (tRNS)"}
        where = [s for s, (f, _, _) in LOSSLESS_OUTPUTS.items() if set(k for k, _, _ in metadata) <= set(HOLDS.get(f, ()))]
        raise UnsupportedInputError(f"{path}: {fmt} cannot hold the image's {' and '.join(names[k] for k in lost)}; "
                                    f"write {' or '.join(where) or '.png'} instead")


def metadata_options(fmt: str, metadata: tuple) -> dict:
    """Pillow save options that write ``metadata`` in format ``fmt`` (checked by check_metadata)."""
    kw: dict = {}
    texts = []
    for kind, key, value in metadata:
        if kind == "exif":
            kw["exif"] = value
        elif kind == "transparency":
            values = [int.from_bytes(value[k : k + 2], "little") for k in range(0, len(value), 2)]
            kw["transparency"] = values[0] if len(values) == 1 else tuple(values)
        elif kind == "xmp" and fmt == "PNG":
            texts.append((PNG_XMP_KEY, value.decode("utf-8", "replace")))
        elif kind == "xmp":
            kw["xmp"] = value
        else:
            texts.append((key, value.decode("utf-8")))
    if texts:
        from PIL.PngImagePlugin import PngInfo

        chunks = PngInfo()
        for key, text in texts:
            try:
                key.encode("latin-1"), text.encode("latin-1")
                if key == PNG_XMP_KEY:
                    chunks.add_itxt(key, text)
                else:
                    chunks.add_text(key, text)
            except UnicodeEncodeError:
                chunks.add_itxt(key, text)
        kw["pnginfo"] = chunks
    return kw
