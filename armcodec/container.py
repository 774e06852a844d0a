"""The ``.arm`` container, version 1: the only module that knows the byte format.

Everything is little-endian and written with ``struct``::

    offset 0   "ARMC"                          magic
           4   u8   format version (1)
           5   u8   coder profile (1: constriction ANS, 32-bit words, 24-bit tables,
                                   wavefront tiles, one stream per tile and plane group;
                                   2: as 1, and each tile stream starts with the tile's
                                   adaptation offsets, see armcodec.coding.adapt;
                                   3: as 2, and the tile's orientation comes first;
                                   4: as 2, and the tile's residual feedback coefficients
                                   follow the offsets, see armcodec.coding.feedback;
                                   5: as 4, and the tile's orientation comes first;
                                   6 and 7: as 4 and 5 with the feedback's feature
                                   set 2: more coefficients per channel;
                                   8 and 9: as 6 and 7 with feature set 3: a split
                                   flag, then one coefficient set per tile or per
                                   quarter of the tile)
           6   u32  header length N
          10   header (N bytes):
                 u8  kind (0 image, 1 replicated image) u8 mode (see below)    u8 bits per sample (8)
                 u32 width   u32 height  u32 frames (1)   u16 tile size
                 kind 1 only: u8 fy, u8 fx (see below)
                 u8 n + n bytes model name (utf-8)        16 bytes: sha256 prefix of the weights
                 u32 n + n bytes ICC profile (0: none)
                 u32 stream count S, then S x (u32 byte length, u32 CRC32 of the stream index
                     as u32 followed by the tile's decoded samples)
        10+N   u32  CRC32 of bytes [0, 10+N)
        14+N   payload: the S streams, back to back (lengths are multiples of 4)

Modes: 1 L, 2 LA, 3 RGB, 4 RGBA; 5 RGB and 6 RGBA whose R, G and B planes are equal, coded as
one grey plane that the decoder writes to all three (the image decodes as RGB(A), bit for bit).
Kind 1: the image is made of fy x fx blocks of equal pixels (a nearest-neighbour upscale by
integer factors, fy and fx in [1, 255], not both 1, dividing the height and the width); the
streams code the (height / fy) x (width / fx) image of the blocks' pixels, which the decoder
repeats.  Tiles, streams and everything below count in that coded image.
Streams are ordered by plane group (RGB, L or the grey of modes 5 and 6 first, then alpha), then
tile (row-major).
:func:`parse` validates everything it can before anything is allocated or decoded.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from armcodec.errors import ChecksumError, FormatError, LimitError

MAGIC = b"ARMC"
FORMAT_VERSION = 1
PROFILE_PLAIN, PROFILE_ADAPTIVE, PROFILE_ORIENTED, PROFILE_FED_BACK, PROFILE_ORIENTED_FED_BACK = 1, 2, 3, 4, 5
PROFILE_FED_BACK_2, PROFILE_ORIENTED_FED_BACK_2 = 6, 7
PROFILE_FED_BACK_3, PROFILE_ORIENTED_FED_BACK_3 = 8, 9
# coder profile -> the tools its tile streams use: (adaptation offsets, orientation, the residual
# feedback's feature set: 0 none, 1 to 3, see armcodec.coding.feedback)
PROFILE_TOOLS = {
    PROFILE_PLAIN: (False, False, 0),
    PROFILE_ADAPTIVE: (True, False, 0),
    PROFILE_ORIENTED: (True, True, 0),
    PROFILE_FED_BACK: (True, False, 1),
    PROFILE_ORIENTED_FED_BACK: (True, True, 1),
    PROFILE_FED_BACK_2: (True, False, 2),
    PROFILE_ORIENTED_FED_BACK_2: (True, True, 2),
    PROFILE_FED_BACK_3: (True, False, 3),
    PROFILE_ORIENTED_FED_BACK_3: (True, True, 3),
}
CODER_PROFILES = tuple(PROFILE_TOOLS)


def profile_for(adaptive: bool, oriented: bool, feedback: int) -> int:
    """The coder profile of a set of tools (orientation and feedback need the adaptation);
    feedback: the feature set, 0 for none."""
    tools = (adaptive, adaptive and oriented, int(feedback) if adaptive else 0)
    return next(p for p, t in PROFILE_TOOLS.items() if t == tools)
PREAMBLE = struct.Struct("<4sBBI")
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
MODE_CODES = {v: k for k, v in MODES.items()}
GREY_MODES = {5: "RGB", 6: "RGBA"}  # R = G = B, coded once
GREY_MODE_CODES = {v: k for k, v in GREY_MODES.items()}
MODE_GROUPS = {"L": (1,), "LA": (1, 1), "RGB": (3,), "RGBA": (3, 1)}  # plane groups per mode


def plane_groups(mode: str, grey: bool = False) -> list[tuple[slice, slice]]:
    """The coded plane groups of an image, in stream order: (channels coded, channels they
    fill).  A grey RGB(A) image (R = G = B) codes R alone and fills R, G and B with it."""
    out, c = [], 0
    for g in MODE_GROUPS[mode]:
        src = slice(c, c + (1 if grey and g == 3 else g))
        out.append((src, slice(c, c + g)))
        c += g
    return out
KIND_IMAGE, KIND_REPLICATED = 0, 1
MAX_REPLICATION = 255
MIN_TILE, MAX_TILE = 8, 1024
MAX_HEADER = 64 << 20
DEFAULT_MAX_PIXELS = 1 << 30


@dataclass
class ArmHeader:
    mode: str
    width: int
    height: int
    tile: int
    model: str
    weights_sha256: bytes  # first 16 bytes
    bits: int = 8
    frames: int = 1
    icc_profile: bytes = b""
    stream_lengths: list[int] = field(default_factory=list)
    stream_crcs: list[int] = field(default_factory=list)
    version: int = FORMAT_VERSION
    profile: int = PROFILE_PLAIN
    grey: bool = False  # an RGB(A) image whose R, G and B are equal, coded as one plane (modes 5, 6)
    replication: tuple[int, int] = (1, 1)  # (fy, fx): blocks of equal pixels, coded once (kind 1)

    @property
    def channels(self) -> int:
        return len(self.mode)

    @property
    def coded_size(self) -> tuple[int, int]:
        """(height, width) of the image the streams code: the full image's over the replication."""
        return self.height // self.replication[0], self.width // self.replication[1]

    def n_tiles(self) -> int:
        h, w = self.coded_size
        return -(-h // self.tile) * -(-w // self.tile)

    def describe(self) -> dict:
        return {
            "format_version": self.version,
            "coder_profile": self.profile,
            "kind": "image",
            "mode": self.mode,
            "grey_rgb": self.grey,
            "replication": list(self.replication),
            "bits_per_sample": self.bits,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "tile_size": self.tile,
            "tiles": self.n_tiles(),
            "streams": len(self.stream_lengths),
            "model": self.model,
            "weights_sha256_prefix": self.weights_sha256.hex(),
            "icc_profile_bytes": len(self.icc_profile),
            "payload_bytes": sum(self.stream_lengths),
        }


def mode_code(mode: str, grey: bool = False) -> int:
    if grey and mode not in GREY_MODE_CODES:
        raise ValueError(f"only RGB and RGBA images can be coded as grey, not {mode}")
    return GREY_MODE_CODES[mode] if grey else MODE_CODES[mode]


def write(h: ArmHeader, streams: list[bytes]) -> bytes:
    name = h.model.encode("utf-8")
    replicated = tuple(h.replication) != (1, 1)
    if replicated:
        _check_replication(*h.replication, h.width, h.height)
    body = [
        struct.pack("<BBBIIIH", KIND_REPLICATED if replicated else KIND_IMAGE, mode_code(h.mode, h.grey), h.bits,
                    h.width, h.height, h.frames, h.tile),
        struct.pack("<BB", *h.replication) if replicated else b"",
        struct.pack("<B", len(name)), name, h.weights_sha256[:16].ljust(16, b"\0"),
        struct.pack("<I", len(h.icc_profile)), h.icc_profile,
        struct.pack("<I", len(streams)),
    ]
    body += [struct.pack("<II", len(s), crc) for s, crc in zip(streams, h.stream_crcs)]
    header = b"".join(body)
    head = PREAMBLE.pack(MAGIC, FORMAT_VERSION, h.profile, len(header)) + header
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + b"".join(streams)


def _check_replication(fy: int, fx: int, width: int, height: int) -> None:
    if not (1 <= fy <= MAX_REPLICATION and 1 <= fx <= MAX_REPLICATION) or (fy, fx) == (1, 1):
        raise FormatError(f"invalid replication {fy}x{fx}")
    if height % fy or width % fx:
        raise FormatError(f"replication {fy}x{fx} does not divide the image size {width}x{height}")


class _Reader:
    def __init__(self, data: bytes, start: int, end: int):
        self.data, self.pos, self.end = data, start, end

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > self.end:
            raise FormatError("header is truncated")
        vals = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return vals

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise FormatError("header field runs past the header")
        b = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return b


def parse(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[ArmHeader, list[bytes]]:
    """Validate and split an .arm file; raises FormatError, ChecksumError or LimitError."""
    data = memoryview(data).toreadonly() if not isinstance(data, bytes) else data
    if len(data) < PREAMBLE.size or bytes(data[:4]) != MAGIC:
        raise FormatError("not an armcodec file (bad magic)")
    _, version, profile, hlen = PREAMBLE.unpack_from(data, 0)
    if version != FORMAT_VERSION:
        raise FormatError(f"unsupported .arm format version {version} (this armcodec reads version {FORMAT_VERSION})")
    if profile not in CODER_PROFILES:
        raise FormatError(f"unsupported coder profile {profile} (this armcodec reads {', '.join(map(str, CODER_PROFILES))})")
    hend = PREAMBLE.size + hlen
    if hlen > MAX_HEADER or hend + 4 > len(data):
        raise FormatError(f"file is truncated: header of {hlen} bytes does not fit in {len(data)} bytes")
    (stored_crc,) = struct.unpack_from("<I", data, hend)
    if zlib.crc32(bytes(data[:hend])) & 0xFFFFFFFF != stored_crc:
        raise ChecksumError("header CRC32 mismatch: the file is corrupted")
    r = _Reader(data, PREAMBLE.size, hend)
    kind, mode_code, bits, width, height, frames, tile = r.take("<BBBIIIH")
    if kind not in (KIND_IMAGE, KIND_REPLICATED):
        raise FormatError(f"unsupported content kind {kind}")
    if mode_code not in MODES and mode_code not in GREY_MODES:
        raise FormatError(f"unknown image mode code {mode_code}")
    if bits != 8 or frames != 1:
        raise FormatError(f"unsupported sample depth {bits} or frame count {frames}")
    if width < 1 or height < 1:
        raise FormatError(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise LimitError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")
    if not MIN_TILE <= tile <= MAX_TILE:
        raise FormatError(f"invalid tile size {tile}")
    replication = (1, 1)
    if kind == KIND_REPLICATED:
        replication = r.take("<BB")
        _check_replication(*replication, width, height)
    (name_len,) = r.take("<B")
    try:
        model = r.raw(name_len).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("model name is not valid utf-8") from None
    sha = r.raw(16)
    (icc_len,) = r.take("<I")
    icc = r.raw(icc_len)
    (n_streams,) = r.take("<I")
    grey = mode_code in GREY_MODES
    mode = GREY_MODES[mode_code] if grey else MODES[mode_code]
    h = ArmHeader(mode, width, height, tile, model, sha, bits, frames, icc, profile=profile, grey=grey,
                  replication=tuple(replication))
    expected = h.n_tiles() * len(plane_groups(h.mode, h.grey))
    if n_streams != expected:
        raise FormatError(f"stream table lists {n_streams} streams, the image needs {expected}")
    if r.end - r.pos != 8 * n_streams:
        raise FormatError("stream table size does not match the header length")
    table = struct.unpack_from(f"<{2 * n_streams}I", data, r.pos)
    h.stream_lengths, h.stream_crcs = list(table[0::2]), list(table[1::2])
    start = hend + 4
    if start + sum(h.stream_lengths) != len(data):
        raise FormatError(
            f"payload is {len(data) - start} bytes, the stream table declares {sum(h.stream_lengths)} (truncated or padded file)"
        )
    if any(n % 4 for n in h.stream_lengths):
        raise FormatError("a stream length is not a multiple of 4")
    streams, pos = [], start
    for n in h.stream_lengths:
        streams.append(bytes(data[pos : pos + n]))
        pos += n
    return h, streams
