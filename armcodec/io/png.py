"""PNG files, read and written exactly at every colour type and bit depth the format has.

Pillow reads 16-bit RGB, grey+alpha and RGBA PNGs as 8-bit images and writes neither those nor
2- and 4-bit grey, and it does not check an IDAT chunk's CRC.  This module parses the chunks
itself (every CRC checked), keeps the palette, the raw tRNS chunk and the ancillary chunks
(gAMA, cHRM, sRGB, sBIT, bKGD, pHYs, ...), and decodes the pixels with Pillow's own zlib and
unfiltering code at their native values: 1, 2 and 4-bit grey and palette indices as 0..2**bits-1,
16-bit samples as uint16.  :func:`write` writes any such image back (adaptive per-row filters, zlib).

Samples are (H, W, C) arrays: uint8 up to 8 bits, uint16 for 16 bits; C by colour type.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODES = {0: "L", 2: "RGB", 3: "P", 4: "LA", 6: "RGBA"}  # colour type -> mode of the samples
COLOUR_TYPES = {v: k for k, v in MODES.items()}
DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# chunks read into other fields (pixels, palette, transparency, ICC, EXIF, text): not kept raw
STRUCTURAL = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS"}
METADATA = {b"iCCP", b"eXIf", b"tEXt", b"zTXt", b"iTXt"}
ANIMATION = {b"acTL", b"fcTL", b"fdAT"}
# where write() puts kept chunks: before PLTE, or after it (all before IDAT)
BEFORE_PLTE = (b"cHRM", b"cICP", b"gAMA", b"sRGB", b"sBIT", b"mDCV", b"cLLI")
MAX_CHUNK = 1 << 31
XMP_KEY = "XML:com.adobe.xmp"


class PngError(ValueError):
    """The bytes are not a PNG this module can read exactly (or are damaged)."""


@dataclass
class Png:
    width: int
    height: int
    bits: int
    colour_type: int
    interlace: int
    palette: bytes = b""  # PLTE: 3 bytes per entry
    trns: bytes | None = None  # the tRNS chunk's body, as stored
    stream: bytes = b""  # the zlib stream of the IDAT chunks
    chunks: list = field(default_factory=list)  # [(type, body)]: the ancillary chunks kept (and a
    # true-colour image's suggested palette, PLTE), in file order
    icc_profile: bytes = b""
    exif: bytes = b""
    texts: list = field(default_factory=list)  # [(key, text)] of the tEXt, zTXt and iTXt chunks, in file order

    @property
    def mode(self) -> str:
        return MODES[self.colour_type]


def is_png(data: bytes) -> bool:
    return data[:8] == SIGNATURE


def parse(data: bytes) -> Png:
    """A PNG file's bytes -> :class:`Png` (pixels not yet decoded), or PngError."""
    if not is_png(data):
        raise PngError("not a PNG file")
    pos, found, png, idat = 8, [], None, []
    while True:
        if pos + 12 > len(data):
            raise PngError("truncated file (no IEND chunk)")
        (n,) = struct.unpack_from(">I", data, pos)
        kind = data[pos + 4 : pos + 8]
        if n >= MAX_CHUNK or pos + 12 + n > len(data):
            raise PngError(f"chunk {kind!r} runs past the end of the file")
        body = data[pos + 8 : pos + 8 + n]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + n)
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise PngError(f"CRC mismatch in chunk {kind.decode('latin-1')!r}: the file is damaged")
        if not (len(kind) == 4 and all(65 <= c <= 90 or 97 <= c <= 122 for c in kind)):
            raise PngError(f"invalid chunk type {kind!r}")
        pos += 12 + n
        if not found and kind != b"IHDR":
            raise PngError("the first chunk is not IHDR")
        if kind == b"IHDR":
            if found:
                raise PngError("more than one IHDR chunk")
            png = _ihdr(body)
        elif kind == b"IDAT":
            if found[-1] != b"IDAT" and idat:
                raise PngError("IDAT chunks are not consecutive")
            idat.append(body)
        elif kind == b"PLTE":
            if len(body) % 3 or not 3 <= len(body) <= 768 or b"PLTE" in found or idat:
                raise PngError("invalid PLTE chunk")
            if png.colour_type == 3:
                png.palette = body
            elif png.colour_type in (2, 6):  # a suggested palette of a true-colour image: kept as it is
                png.chunks.append(("PLTE", body))
            else:
                raise PngError("grey image with a PLTE chunk")
        elif kind == b"tRNS":
            png.trns = body
        elif kind == b"IEND":
            break
        elif kind in ANIMATION:
            raise PngError("animated PNG (APNG): armcodec codes single images")
        elif kind == b"iCCP":
            png.icc_profile = _iccp(body)
        elif kind == b"eXIf":
            png.exif = body
        elif kind in (b"tEXt", b"zTXt", b"iTXt"):
            png.texts.append(_text(kind, body))
        elif kind not in METADATA:
            if not kind[0] & 0x20:
                raise PngError(f"unknown critical chunk {kind.decode('latin-1')!r}")
            png.chunks.append((kind.decode("latin-1"), body))
        found.append(kind)
    if not idat:
        raise PngError("no IDAT chunk")
    if png.colour_type == 3 and not png.palette:
        raise PngError("palette image without a PLTE chunk")
    _check_trns(png.trns, png.colour_type, png.bits, len(png.palette) // 3)
    png.stream = b"".join(idat)
    return png


def _ihdr(body: bytes) -> Png:
    if len(body) != 13:
        raise PngError("IHDR chunk of the wrong length")
    w, h, bits, ct, method, filt, interlace = struct.unpack(">IIBBBBB", body)
    if not (0 < w < 1 << 31 and 0 < h < 1 << 31):
        raise PngError(f"invalid image size {w}x{h}")
    if ct not in DEPTHS or bits not in DEPTHS[ct]:
        raise PngError(f"invalid bit depth {bits} for colour type {ct}")
    if method or filt or interlace > 1:
        raise PngError("unknown compression, filter or interlace method")
    return Png(w, h, bits, ct, interlace)


def _iccp(body: bytes) -> bytes:
    name_end = body.find(b"\0")
    if not 0 < name_end <= 79 or len(body) < name_end + 2 or body[name_end + 1] != 0:
        raise PngError("invalid iCCP chunk")
    try:
        return zlib.decompress(body[name_end + 2 :])
    except zlib.error:
        raise PngError("iCCP chunk: damaged zlib stream") from None


MAX_TEXT = 64 << 20


def _inflate(data: bytes, what: str) -> bytes:
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, MAX_TEXT)
    except zlib.error:
        raise PngError(f"{what}: damaged zlib stream") from None
    if d.unconsumed_tail:
        raise PngError(f"{what}: more than {MAX_TEXT >> 20} MiB of text")
    return out


def _text(kind: bytes, body: bytes) -> tuple[str, str]:
    """A tEXt, zTXt or iTXt chunk -> (key, text)."""
    end = body.find(b"\0")
    if not 0 < end <= 79:
        raise PngError(f"{kind.decode()} chunk without a valid keyword")
    key, rest = body[:end].decode("latin-1"), body[end + 1 :]
    if kind == b"tEXt":
        return key, rest.decode("latin-1")
    if kind == b"zTXt":
        if not rest or rest[0] != 0:
            raise PngError("zTXt chunk with an unknown compression method")
        return key, _inflate(rest[1:], "zTXt chunk").decode("latin-1")
    if len(rest) < 2:
        raise PngError("truncated iTXt chunk")
    compressed, method, rest = rest[0], rest[1], rest[2:]
    parts = rest.split(b"\0", 2)
    if len(parts) != 3 or compressed > 1 or (compressed and method):
        raise PngError("invalid iTXt chunk")
    text = _inflate(parts[2], "iTXt chunk") if compressed else parts[2]
    try:
        return key, text.decode("utf-8")
    except UnicodeDecodeError:
        raise PngError("iTXt chunk whose text is not UTF-8") from None


def _check_trns(trns: bytes | None, ct: int, bits: int, entries: int) -> None:
    if trns is None:
        return
    if ct in (4, 6):
        raise PngError("tRNS chunk in an image with an alpha channel")
    if ct == 3 and len(trns) > entries:
        raise PngError("tRNS chunk longer than the palette")
    if ct in (0, 2) and len(trns) != 2 * (1 if ct == 0 else 3):
        raise PngError("tRNS chunk of the wrong length")


# (colour type, bits) -> [(Pillow mode, raw mode)]: decoding each gives part of the samples
_RAW = {
    (0, 1): [("P", "P;1")], (0, 2): [("P", "P;2")], (0, 4): [("P", "P;4")], (0, 8): [("L", "L")],
    (0, 16): [("I;16", "I;16B")],
    (3, 1): [("P", "P;1")], (3, 2): [("P", "P;2")], (3, 4): [("P", "P;4")], (3, 8): [("P", "P")],
    (2, 8): [("RGB", "RGB")], (2, 16): [("RGB", "RGB;16B"), ("RGB", "RGB;16L")],  # high bytes, low bytes
    (4, 8): [("LA", "LA")], (4, 16): [("RGBA", "RGBA")],  # the 4 bytes of a pixel: L high, L low, A high, A low
    (6, 8): [("RGBA", "RGBA")], (6, 16): [("RGBA", "RGBA;16B"), ("RGBA", "RGBA;16L")],
}


def decode(stream: bytes, width: int, height: int, bits: int, colour_type: int, interlace: int) -> np.ndarray:
    """An IDAT zlib stream -> samples (H, W, C) at native values (Pillow's unfiltering, in C)."""
    parts = []
    for mode, raw in _RAW[(colour_type, bits)]:
        try:
            im = Image.frombytes(mode, (width, height), stream, "zip", raw, interlace)
        except (ValueError, OSError, MemoryError) as e:
            raise PngError(f"image data is damaged ({e})") from None
        a = np.asarray(im)
        parts.append(a[:, :, None] if a.ndim == 2 else a)
    if len(parts) == 2:  # 16-bit RGB(A): high and low bytes
        return (parts[0].astype(np.uint16) << 8) | parts[1]
    a = parts[0]
    if (colour_type, bits) == (4, 16):
        a = a.reshape(height, width, 2, 2).astype(np.uint16)
        return (a[..., 0] << 8) | a[..., 1]
    return np.ascontiguousarray(a)


def read(data: bytes) -> tuple[Png, np.ndarray]:
    png = parse(data)
    return png, decode(png.stream, png.width, png.height, png.bits, png.colour_type, png.interlace)


# -- writing -------------------------------------------------------------------------------

def _rows(samples: np.ndarray, bits: int) -> np.ndarray:
    """Samples -> the image's scanlines as bytes (H, row bytes), before filtering."""
    h, w, c = samples.shape
    if bits == 16:
        return samples.astype(">u2").view(np.uint8).reshape(h, w * c * 2)
    if bits == 8:
        return samples.reshape(h, w * c).astype(np.uint8, copy=False)
    per = 8 // bits
    s = samples.reshape(h, w).astype(np.uint8)
    pad = (-w) % per
    if pad:
        s = np.concatenate([s, np.zeros((h, pad), np.uint8)], axis=1)
    s = s.reshape(h, -1, per)
    out = np.zeros(s.shape[:2], np.uint8)
    for k in range(per):
        out |= s[:, :, k] << (8 - bits * (k + 1))
    return out


def _filter_outputs(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Every row through each of the 5 filters: (5, H, row bytes) uint8."""
    x = rows.astype(np.int16)
    a = np.zeros_like(x)
    a[:, bpp:] = x[:, :-bpp]
    b = np.zeros_like(x)
    b[1:] = x[:-1]
    c = np.zeros_like(x)
    c[1:, bpp:] = x[:-1, :-bpp]
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
    return (np.stack([x, x - a, x - b, x - ((a + b) >> 1), x - paeth]) & 0xFF).astype(np.uint8)


def _filtered(outputs: np.ndarray, choice: int | None = None) -> np.ndarray:
    """Each row filtered: with filter ``choice`` (0-4), or (None) with the filter whose output has
    the smallest sum of absolute values (the usual heuristic).  (H, 1 + row bytes) uint8, filter
    byte first."""
    h = outputs.shape[1]
    if choice is None:
        signed = outputs.astype(np.int16)
        best = np.where(signed < 128, signed, 256 - signed).sum(axis=2).argmin(axis=0)
    else:
        best = np.full(h, choice)
    out = np.empty((h, outputs.shape[2] + 1), np.uint8)
    out[:, 0] = best
    out[:, 1:] = outputs[best, np.arange(h)]
    return out


SEARCH_BYTES = 1 << 18  # stream(search=True) tries every filter and two zlib strategies up to this size


def stream(samples: np.ndarray, bits: int, colour_type: int, level: int = 9, search: bool = False) -> bytes:
    """Samples -> a non-interlaced IDAT zlib stream: adaptive filters; with ``search`` (images of
    at most SEARCH_BYTES) also each fixed filter and zlib's FILTERED strategy, the smallest kept."""
    c = samples.shape[2]
    bpp = max(1, c * bits // 8)
    rows = _rows(samples, bits)
    outputs = _filter_outputs(rows, bpp)
    choices = [None] + ([0, 1, 2, 3, 4] if search and rows.size <= SEARCH_BYTES else [])
    strategies = [zlib.Z_DEFAULT_STRATEGY] + ([zlib.Z_FILTERED] if len(choices) > 1 else [])
    best = None
    for choice in choices:
        raw = _filtered(outputs, choice).tobytes()
        for strategy in strategies:
            z = zlib.compressobj(level, zlib.DEFLATED, zlib.MAX_WBITS, 9, strategy)
            out = z.compress(raw) + z.flush()
            if best is None or len(out) < len(best):
                best = out
    return best


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def ihdr(width: int, height: int, bits: int, colour_type: int, interlace: int = 0) -> bytes:
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bits, colour_type, 0, 0, interlace))


def write(samples: np.ndarray, bits: int, colour_type: int, *, palette: bytes = b"", trns: bytes | None = None,
          chunks=(), icc_profile: bytes = b"", exif: bytes = b"", texts=(), idat: bytes | None = None,
          interlace: int = 0, level: int = 6) -> bytes:
    """A complete PNG file.  ``chunks``: kept ancillary chunks [(type, body)]; ``texts``: [(key,
    str)] as tEXt (latin-1) or iTXt; ``idat``: a ready zlib stream (else made from ``samples``)."""
    h, w = samples.shape[:2]
    out = [SIGNATURE, ihdr(w, h, bits, colour_type, interlace)]
    kept = [(k.encode("latin-1"), v) for k, v in chunks]
    if icc_profile:
        out.append(chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile)))
    out += [chunk(k, v) for k, v in kept if k in BEFORE_PLTE]
    out += [chunk(k, v) for k, v in kept if k == b"PLTE"]  # a true-colour image's suggested palette
    if palette:
        out.append(chunk(b"PLTE", palette))
    if trns is not None:
        out.append(chunk(b"tRNS", trns))
    out += [chunk(k, v) for k, v in kept if k not in BEFORE_PLTE and k != b"PLTE"]
    for key, text in texts:
        k = key.encode("latin-1", "replace")[:79]
        try:
            if key == XMP_KEY:  # XMP belongs in an iTXt chunk
                raise UnicodeEncodeError("latin-1", "", 0, 0, "")
            out.append(chunk(b"tEXt", k + b"\0" + text.encode("latin-1")))
        except UnicodeEncodeError:
            out.append(chunk(b"iTXt", k + b"\0\0\0\0\0" + text.encode("utf-8")))
    if exif:
        out.append(chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\0\0") else exif))
    out.append(chunk(b"IDAT", stream(samples, bits, colour_type, level) if idat is None else idat))
    out.append(chunk(b"IEND", b""))
    return b"".join(out)
