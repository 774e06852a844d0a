"""Images in and out: exact samples plus what is needed to write them back.

Accepted: every PNG (all colour types and bit depths, interlaced or not: :mod:`armcodec.io.png`),
16-bit TIFF (tifffile), and L, LA, RGB, RGBA, P, PA, 1 and I;16 images from any other format
Pillow reads losslessly (TIFF, BMP, PPM/PGM, GIF, lossless WebP, ...).  Samples are (H, W, C)
arrays at their native values: uint8 for 1 to 8 bits per sample (1, 2 and 4-bit grey as
0..2**bits-1), uint16 for 16; palette images (P, PA) hold indices, the palette beside them.
Everything else (float, CMYK, 32-bit integer, multi-frame, lossy WebP, a damaged PNG chunk) is
refused with an :class:`UnsupportedInputError` that says why: armcodec never converts an input
silently.  Kept with the pixels: the ICC profile, the EXIF block, the XMP packet, PNG text chunks
(tEXt, zTXt, iTXt: key and text; PNG's XMP is one of them), the transparency (PNG's tRNS: the
transparent colour of an L or RGB image, the alpha of each palette entry) and a PNG's other
ancillary chunks (gAMA, cHRM, sRGB, sBIT, bKGD, hIST, pHYs, sPLT, tIME, ...; an interlaced PNG is
written back non-interlaced).  Writing them back: PNG holds all of them, WebP the EXIF and XMP; a
format that cannot hold what the image carries is refused with a message (never dropped silently).
"""
from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from armcodec.errors import UnsupportedInputError
from armcodec.io import png

MODES = ("L", "LA", "RGB", "RGBA")
CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
ALL_MODES = MODES + ("P", "PA")
_8 = ("L", "LA", "RGB", "RGBA")
# Output suffix -> (Pillow format, save options, what it stores exactly: "MODE" at 8 bits, "MODE;BITS" else)
LOSSLESS_OUTPUTS = {
    ".png": ("PNG", {}, _8 + ("L;1", "L;2", "L;4", "L;16", "LA;16", "RGB;16", "RGBA;16", "P", "P;1", "P;2", "P;4")),
    ".tif": ("TIFF", {"compression": "tiff_deflate"}, _8 + ("L;1", "L;16", "LA;16", "RGB;16", "RGBA;16")),
    ".tiff": ("TIFF", {"compression": "tiff_deflate"}, _8 + ("L;1", "L;16", "LA;16", "RGB;16", "RGBA;16")),
    ".bmp": ("BMP", {}, ("L", "RGB", "RGBA")),
    ".ppm": ("PPM", {}, ("RGB",)),
    ".pgm": ("PPM", {}, ("L",)),
    ".pnm": ("PPM", {}, ("L", "RGB")),
    ".webp": ("WEBP", {"lossless": True, "quality": 100, "exact": True}, ("RGB", "RGBA")),
}
_REFUSALS = {
    "CMYK": "CMYK image is not supported",
    "YCbCr": "YCbCr image is not supported",
    "LAB": "Lab image is not supported",
    "HSV": "HSV image is not supported",
    "I": "32-bit integer image is not supported (1, 2, 4, 8 or 16 bits per sample)",
    "F": "32-bit float image is not supported (1, 2, 4, 8 or 16 bits per sample)",
}
_16 = ("I;16", "I;16L", "I;16B", "I;16N")


PNG_XMP_KEY = "XML:com.adobe.xmp"
# Output format -> the metadata kinds it holds (besides the ICC profile)
HOLDS = {"PNG": ("exif", "xmp", "text", "transparency", "chunk"), "WEBP": ("exif", "xmp")}


def layout(mode: str, bits: int) -> str:
    """"RGB" for 8-bit RGB, "RGB;16" for 16-bit RGB, ...: how LOSSLESS_OUTPUTS names what it holds."""
    return mode if bits == 8 else f"{mode};{bits}"


@dataclass
class ImageInfo:
    mode: str  # L, LA, RGB, RGBA, P (palette indices) or PA (indices and alpha)
    icc_profile: bytes = b""
    metadata: tuple = ()  # ((kind, key, value bytes), ...): ("exif", "", ...), ("xmp", "", ...), ("text", key, utf-8),
    # ("transparency", "", ...), ("chunk", PNG chunk type, body): what armcodec keeps besides the pixels
    bits: int = 8  # bits per sample: 1, 2, 4 (L and P), 8, 16 (L, LA, RGB, RGBA); samples hold native values
    palette: bytes = b""  # P and PA: 3 bytes per entry
    source_stream: tuple | None = None  # encoder only: a PNG input's (IDAT zlib stream, interlace), a classic candidate


def read_metadata(im: Image.Image) -> tuple:
    """The EXIF, XMP, text entries and transparency Pillow found in an opened image, in a fixed order."""
    items = []
    exif = im.info.get("exif")
    if exif:
        items.append(("exif", "", bytes(exif)))
    text = dict(getattr(im, "text", None) or {}) if im.format == "PNG" else {}
    xmp = text.pop(PNG_XMP_KEY, None) or im.info.get("xmp")  # PNG's XMP is an iTXt chunk of this key
    if xmp:
        items.append(("xmp", "", xmp.encode("utf-8") if isinstance(xmp, str) else bytes(xmp)))
    items += [("text", str(k), str(v).encode("utf-8")) for k, v in text.items()]
    colour = im.info.get("transparency")
    if colour is not None and im.mode in ("P", "PA"):  # alpha per palette entry (PNG's tRNS of a palette image)
        if im.mode == "PA" or not isinstance(colour, (int, bytes)):
            raise UnsupportedInputError(f"transparency {colour!r} of a mode {im.mode} image is not one armcodec can keep")
        alpha = b"\xff" * colour + b"\0" if isinstance(colour, int) else colour
        items.append(("transparency", "", alpha[: len(im.getpalette("RGB") or ()) // 3]))  # no alpha past the palette
    elif colour is not None and im.mode in ("L", "RGB") + _16:  # PNG's tRNS on an L or RGB image: the transparent colour
        values = (colour,) if isinstance(colour, int) else tuple(colour)
        if len(values) != (3 if im.mode == "RGB" else 1) or not all(isinstance(v, int) and 0 <= v < 65536 for v in values):
            raise UnsupportedInputError(f"transparency {colour!r} of a mode {im.mode} image is not a colour armcodec can keep")
        items.append(("transparency", "", b"".join(v.to_bytes(2, "little") for v in values)))
    return tuple(items)


def from_array(a: np.ndarray) -> tuple[np.ndarray, ImageInfo]:
    """uint8 or uint16 (H, W) or (H, W, C), C in 1..4 -> (H, W, C) and its mode (C=2 is LA, 4 is
    RGBA) and bit depth (uint16: 16 bits per sample); a bool (H, W) array is a 1-bit grey image."""
    a = np.asarray(a)
    bits = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16, np.dtype(bool): 1}.get(a.dtype)
    if bits is None:
        raise UnsupportedInputError(f"array dtype {a.dtype} is not supported: armcodec codes uint8 and uint16 samples")
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in CHANNEL_MODES or (bits == 1 and a.shape[2] != 1):
        raise UnsupportedInputError(f"array of shape {a.shape} is not an image: expected (H, W) or (H, W, 1..4)")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise UnsupportedInputError(f"empty image of shape {a.shape}")
    return np.ascontiguousarray(a.astype(np.uint8) if bits == 1 else a), ImageInfo(CHANNEL_MODES[a.shape[2]], bits=bits)


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


def _declared_bit_depth(im: Image.Image) -> int | None:
    """Bits per sample as stored in a TIFF file, where Pillow may have reduced it on load."""
    if im.format == "TIFF":
        bps = im.tag_v2.get(258)
        if bps is not None:
            return max(bps) if isinstance(bps, tuple) else int(bps)
    return None


def read_image(source: str | os.PathLike | bytes) -> tuple[np.ndarray, ImageInfo]:
    """Read an image exactly (a path, or the bytes of a file: a pipe) -> samples (H, W, C) at their
    native values (uint8, or uint16 for 16 bits) and ImageInfo, or raise UnsupportedInputError."""
    src = _Source(source)
    path = src.name
    try:
        head = src.head(9)  # the longest signature looked at: YUV4MPEG2
    except FileNotFoundError:
        raise UnsupportedInputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UnsupportedInputError(f"{path}: is a directory") from None
    except OSError as e:
        raise UnsupportedInputError(f"{path}: cannot read ({e})") from None
    if png.is_png(head):
        return _read_png(src)
    if head == b"YUV4MPEG2":
        raise UnsupportedInputError(f"{path}: a YUV4MPEG2 (Y4M) video: armcodec codes still images, video coding "
                                    "is not implemented yet")
    if head[:4] in (b"II*\0", b"MM\0*"):
        found = _read_tiff16(src)
        if found is not None:
            return found
    try:
        im = src.open()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise UnsupportedInputError(f"{path}: cannot read as an image ({e})") from None
    with im:
        if im.mode not in ALL_MODES + ("1",) + _16:
            return from_pil(im, path)  # refuses, naming the mode
        depth = _declared_bit_depth(im)
        if depth is not None and depth != {"1": 1, **dict.fromkeys(_16, 16)}.get(im.mode, 8):
            raise UnsupportedInputError(f"{path}: stored with {depth} bits per sample as mode {im.mode}; armcodec codes "
                                        "1, 8 and 16-bit TIFF images exactly and refuses others")
        if im.format == "WEBP" and not _webp_is_lossless(src):
            raise UnsupportedInputError(f"{path}: lossy WebP; its decoded pixels would be coded, not the file (convert to PNG first if that is intended)")
        return from_pil(im, path)


def _read_png(src: _Source) -> tuple[np.ndarray, ImageInfo]:
    """A PNG file, at any colour type and bit depth, with every chunk CRC checked (io.png)."""
    data = src.data()
    try:
        p = png.parse(data)
        if p.width * p.height > 2 * (Image.MAX_IMAGE_PIXELS or 1 << 62):
            raise UnsupportedInputError(f"{src.name}: image of {p.width}x{p.height} pixels could be a decompression bomb")
        samples = png.decode(p.stream, p.width, p.height, p.bits, p.colour_type, p.interlace)
    except png.PngError as e:
        raise UnsupportedInputError(f"{src.name}: not a valid PNG ({e})") from None
    items = []
    if p.exif:
        items.append(("exif", "", b"Exif\0\0" + p.exif))
    xmp = [v for k, v in p.texts if k == PNG_XMP_KEY]
    if xmp:
        items.append(("xmp", "", xmp[-1].encode("utf-8")))
    items += [("text", k, v.encode("utf-8")) for k, v in p.texts if k != PNG_XMP_KEY]
    if p.trns is not None:
        trns = p.trns if p.colour_type == 3 else b"".join(
            int.from_bytes(p.trns[k : k + 2], "big").to_bytes(2, "little") for k in range(0, len(p.trns), 2))
        items.append(("transparency", "", trns))
    items += [("chunk", k, v) for k, v in p.chunks]
    info = ImageInfo(p.mode, p.icc_profile, tuple(items), p.bits, p.palette, (p.stream, p.interlace))
    if p.colour_type == 3 and samples.max(initial=0) >= len(p.palette) // 3:
        raise UnsupportedInputError(f"{src.name}: a pixel's palette index is past the end of its palette")
    return samples, info


def _read_tiff16(src: _Source):
    """A 16-bit TIFF of two or more channels (Pillow reads them as 8-bit or not at all): the
    samples by tifffile; None for any other TIFF (Pillow reads it)."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(src.data())) as tif:
            page = tif.pages[0]
            if page.bitspersample != 16 or page.samplesperpixel < 2:
                return None
            if len(tif.pages) > 1:
                raise UnsupportedInputError(f"{src.name}: has {len(tif.pages)} pages; armcodec codes single images")
            a = page.asarray()
            icc = page.tags.get(34675)
            icc = bytes(icc.value) if icc is not None else b""
    except UnsupportedInputError:
        raise
    except Exception as e:
        raise UnsupportedInputError(f"{src.name}: cannot read as a 16-bit TIFF ({type(e).__name__}: {e})") from None
    if a.dtype != np.uint16 or a.ndim != 3 or a.shape[2] not in (2, 3, 4):
        raise UnsupportedInputError(f"{src.name}: 16-bit TIFF of shape {a.shape} ({a.dtype}) is not an L, LA, RGB or RGBA image")
    return np.ascontiguousarray(a), ImageInfo(CHANNEL_MODES[a.shape[2]], icc, bits=16)


def from_pil(im: Image.Image, where: str = "image") -> tuple[np.ndarray, ImageInfo]:
    """A Pillow image (opened or in memory) -> samples (H, W, C) and ImageInfo, or raise
    UnsupportedInputError (``where`` names it in the message).  Mode 1 is 1-bit grey (0 and 1),
    I;16 16-bit grey, P and PA keep their indices and palette."""
    if getattr(im, "n_frames", 1) > 1:
        raise UnsupportedInputError(f"{where}: has {im.n_frames} frames; armcodec codes single images")
    mode = im.mode
    if mode not in ALL_MODES + ("1",) + _16:
        raise UnsupportedInputError(f"{where}: {_REFUSALS.get(mode) or f'mode {mode} is not supported'}")
    try:
        a = np.asarray(im)
    except (OSError, ValueError) as e:
        raise UnsupportedInputError(f"{where}: image data is corrupted ({e})") from None
    palette = b""
    if mode in ("P", "PA"):
        palette = bytes(im.getpalette("RGB") or b"")
        a = a[:, :, None] if a.ndim == 2 else a
        if not palette or a[:, :, 0].max(initial=0) >= len(palette) // 3:
            raise UnsupportedInputError(f"{where}: a pixel's palette index is past the end of its palette")
        arr, info = np.ascontiguousarray(a.astype(np.uint8)), ImageInfo(mode)
    else:
        arr, info = from_array(a.astype(np.uint16) if mode in _16 else a)
        if info.mode != {"1": "L", **dict.fromkeys(_16, "L")}.get(mode, mode):
            raise UnsupportedInputError(f"{where}: decoded as {arr.shape}, which does not match mode {mode}")
    info.palette = palette
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


def check_output_format(path: Path, mode: str, suffix: str | None = None, metadata: tuple = (), bits: int = 8) -> tuple[str, dict]:
    """(Pillow format, save options) for writing ``mode`` at ``bits`` to ``path`` exactly (in the
    format its suffix names, or ``suffix`` if given: ``.png``, ``.tiff``, ...), or a refusal."""
    suffix = (suffix or Path(path).suffix).lower() or ".png"
    if suffix not in LOSSLESS_OUTPUTS:
        raise UnsupportedInputError(f"{path}: {suffix} is not a lossless output format; use one of {', '.join(LOSSLESS_OUTPUTS)}")
    fmt, opts, holds = LOSSLESS_OUTPUTS[suffix]
    if layout(mode, bits) not in holds:
        where = [s for s, (_, _, h) in LOSSLESS_OUTPUTS.items() if layout(mode, bits) in h]
        what = f"mode {mode}" + (f" at {bits} bits per sample" if bits != 8 else "")
        raise UnsupportedInputError(f"{path}: {fmt} cannot store {what} exactly; " +
                                    (f"use {' or '.join(where)}" if where else "no output format armcodec writes can "
                                     "(decode it with the Python API: armcodec.Codec().decode)"))
    check_metadata(path, fmt, metadata)
    return fmt, opts


def write_image(path, a: np.ndarray, info: ImageInfo, suffix: str | None = None) -> None:
    """Write samples (H, W, C) in a lossless format chosen by the suffix (PNG by default), or by
    ``suffix`` (then ``path`` may also be a binary file object, such as stdout)."""
    path = path if hasattr(path, "write") else Path(path)
    fmt, opts = check_output_format(Path("-") if hasattr(path, "write") else path, info.mode, suffix, info.metadata, info.bits)
    if a.ndim != 3 or a.shape[2] != {"P": 1, "PA": 2}.get(info.mode, len(info.mode)):
        raise UnsupportedInputError(f"array of shape {a.shape} does not match mode {info.mode}")
    if fmt == "PNG":
        data = _png_file(a, info)
        if hasattr(path, "write"):
            path.write(data)
        else:
            path.write_bytes(data)
        return
    if fmt == "TIFF" and info.bits == 16 and a.shape[2] > 1:
        import tifffile

        tifffile.imwrite(path, a, photometric="rgb" if a.shape[2] >= 3 else "minisblack", planarconfig="contig",
                         extrasamples=["unassalpha"] if a.shape[2] in (2, 4) else None, compression="zlib",
                         iccprofile=info.icc_profile or None)
        return
    if info.bits == 1:
        im = Image.fromarray(a[:, :, 0].astype(bool))
    else:
        im = Image.fromarray(np.ascontiguousarray(a[:, :, 0] if a.shape[2] == 1 else a))
    kw = dict(opts)
    if info.icc_profile and fmt in ("TIFF", "WEBP"):
        kw["icc_profile"] = info.icc_profile
    kw.update(metadata_options(fmt, info.metadata))
    im.save(path, format=fmt, **kw)


def _png_file(a: np.ndarray, info: ImageInfo) -> bytes:
    """The PNG file of an image and what armcodec keeps with it (io.png writes every colour type and depth)."""
    trns = None
    texts, chunks, exif = [], [], b""
    for kind, key, value in info.metadata:
        if kind == "transparency":
            trns = value if info.mode == "P" else b"".join(
                int.from_bytes(value[k : k + 2], "little").to_bytes(2, "big") for k in range(0, len(value), 2))
        elif kind == "exif":
            exif = value
        elif kind == "xmp":
            texts.append((PNG_XMP_KEY, value.decode("utf-8", "replace")))
        elif kind == "text":
            texts.append((key, value.decode("utf-8")))
        elif kind == "chunk":
            chunks.append((key, value))
    return png.write(a, info.bits, png.COLOUR_TYPES[info.mode], palette=info.palette, trns=trns, chunks=chunks,
                     icc_profile=info.icc_profile, exif=exif, texts=texts)


def check_metadata(path, fmt: str, metadata: tuple) -> None:
    """Refuse a format that cannot hold the image's metadata (nothing is dropped silently)."""
    lost = sorted({kind for kind, _, _ in metadata} - set(HOLDS.get(fmt, ())))
    if lost:
        names = {"exif": "EXIF", "xmp": "XMP", "text": "text chunks", "transparency": "transparent colour or palette alpha (tRNS)",
                 "chunk": "PNG chunks (" + ", ".join(sorted({k for kind, k, _ in metadata if kind == "chunk"})) + ")"}
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
