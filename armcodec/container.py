"""The ``.arm`` container: the only module that knows the byte format (docs/FORMAT.md).

Everything is little-endian and written with ``struct``; ``varint`` is unsigned LEB128 (at most
5 bytes, below 2**32)::

    offset 0   "ARMC"                          magic
           4   u8   format version (2; version 1 is read, see below)
           5   u8   0 (version 1: the coder profile)
           6   u32  header length N
          10   header (N bytes):
                 u8 kind (0 image, 1 replicated image, 2 classic)   u8 mode (see below)   u8 bits per sample
                     (8; 1, 2, 4 for L and P; 16 for L, LA, RGB, RGBA)
                 varint width   varint height   varint frames (1)   u16 tile size
                 kind 1 only: u8 fy, u8 fx (see below)
                 u8 n + n bytes weights name (utf-8)      16 bytes: sha256 prefix of the weights
                 u8 T, then T coder tools, ids ascending: u8 id, u8 length L, L bytes
                 varint n + n bytes ICC profile (0: none)
                 version 3 only: varint M, then M metadata items: u8 kind (1 EXIF, 2 XMP, 3 text,
                     4 transparency, 5 palette, 6 PNG chunk (key: its type), 7 deflated: a metadata
                     list, raw-deflated, read in its place),
                     varint k + k bytes key (utf-8; text only, else 0), varint n + n bytes value
                 varint stream count S, then S x (u32 byte length, u32 CRC32 of the stream index
                     as u32 followed by the tile's decoded samples)
        10+N   u32  CRC32 of bytes [0, 10+N)
        14+N   payload: the S streams, back to back (lengths are multiples of 4)

Coder tools (:class:`CoderTools`): 1 adaptation (L = 0: scale offsets per 32x32 block and channel
head each tile stream, :mod:`armcodec.coding.side`), 2 orientation (L = 0, needs 1: each tile's
orientation comes first), 3 residual feedback (L = 1: the feature set, needs 1,
:mod:`armcodec.coding.feedback`), 4 classic tiles (L = 0: one more stream after the tiles', a map
saying which streams are PNG zlib streams of their tile, :mod:`armcodec.coding.tile_png`; its CRC
field is its own CRC32), 5 binned symbols (L = 0, since 0.11: every sample the model codes is
two symbols, its bin of 16 values under a table of 16 frequencies, then its place in the bin under
a table of 16 that depends on the bin, :class:`armcodec.exact.tables.BinnedTables`; without it one
symbol under a table of 256, :func:`armcodec.exact.tables.component_tables`).  Ids 128-255 are reserved for a model family's own side
information.  A reader refuses a tool it does not know, so new tools never pass for old ones.

Version 3 is version 2 with the metadata list; :func:`write` writes it only for an image that has
metadata, so every other file is a version-2 file, byte for byte what 0.2 wrote.

Version 1 (written by armcodec 0.1) has the same layout with u32 width, height and frames, no tool
list, u32 ICC and stream counts, and a coder profile number in byte 5 that names its tools
(:data:`PROFILE_TOOLS`).

Modes: 1 L, 2 LA, 3 RGB, 4 RGBA; 5 RGB and 6 RGBA whose R, G and B planes are equal, coded as
one grey plane that the decoder writes to all three (the image decodes as RGB(A), bit for bit);
7 P and 8 PA (palette in metadata item 5), coded as their colours (:func:`coded_mode`).  The
plane groups per tile follow :func:`group_sizes` (16 bits: high bytes' groups, then low bytes').
Kind 1: the image is made of fy x fx blocks of equal pixels (a nearest-neighbour upscale by
integer factors, fy and fx in [1, 255], not both 1, dividing the height and the width); the
streams code the (height / fy) x (width / fx) image of the blocks' pixels, which the decoder
repeats.  Tiles, streams and everything below count in that coded image.
Kind 2 (classic, :mod:`armcodec.coding.classic`): the encoder found a classic lossless coding of
the image smaller than the model's (small, flat or synthetic images).  Its header is short: after
width, height and frames come u8 codec (1: the zlib stream of a PNG's IDAT chunks, 2: a lossless
WebP file), the ICC profile, in version 3 the metadata, and a u32 CRC32 of the decoded samples
(as tile stream 0's); the payload is the rest of the file.  No tile size, weights or streams.
Streams are ordered by plane group (RGB, L or the grey of modes 5 and 6 first, then alpha), then
tile (row-major).
:func:`parse` validates everything it can before anything is allocated or decoded.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field, replace

import numpy as np

from armcodec.errors import ChecksumError, FormatError, LimitError

MAGIC = b"ARMC"
FORMAT_VERSION = 2  # what write() produces for an image without metadata
METADATA_VERSION = 3  # ... and with metadata (version 2 plus the metadata list)
READ_VERSIONS = (1, 2, 3)
# metadata kinds (version 3): the image's EXIF block, its XMP packet, a text entry (key, value),
# the transparent colour of an L or RGB image (PNG's tRNS: one u16 little-endian per channel);
# 9 (0.12.10): another item whose value is stored as differences of records (:func:`_filtered`)
META_KINDS = {1: "exif", 2: "xmp", 3: "text", 4: "transparency", 5: "palette", 6: "chunk", 7: "deflated", 8: "levels",
              9: "filtered"}
META_CODES = {v: k for k, v in META_KINDS.items()}
TOOL_ADAPTATION, TOOL_ORIENTATION, TOOL_FEEDBACK, TOOL_CLASSIC_TILES, TOOL_BINNED = 1, 2, 3, 4, 5
TOOL_SHARP_MOTION, TOOL_COLOUR_MIXTURE, TOOL_CLASSIC_GROUPS, TOOL_LONG_MOTION = 6, 7, 8, 9  # video files only
VIDEO_TOOLS = (TOOL_SHARP_MOTION, TOOL_COLOUR_MIXTURE, TOOL_CLASSIC_GROUPS, TOOL_LONG_MOTION)
KNOWN_TOOLS = (TOOL_ADAPTATION, TOOL_ORIENTATION, TOOL_FEEDBACK, TOOL_CLASSIC_TILES, TOOL_BINNED, *VIDEO_TOOLS)
FAMILY_TOOLS = range(128, 256)  # reserved: a model family's own side information
FEEDBACK_SETS = (1, 2, 3)  # the residual feedback's feature sets a file may name (3 is written)


@dataclass(frozen=True)
class CoderTools:
    """The coder tools a file's tile streams use (the header's tool list).  ``feedback``: the
    residual feedback's feature set, 0 for none; orientation and feedback need the adaptation.
    ``family``: a model family's own side information, tool id (128-255) -> bytes."""

    adaptation: bool = False
    orientation: bool = False
    feedback: int = 0
    family: tuple[tuple[int, bytes], ...] = ()
    classic_tiles: bool = False  # tool 4: some tile streams are PNG zlib streams (a map stream says which)
    binned: bool = False  # tool 5: each modelled sample is two symbols, its bin of 16 values and its place in it
    sharp_motion: bool = False  # tool 6 (video files, 0.14): quarter-pixel samples by H.264's 6-tap filter, not bilinear
    colour_mixture: bool = False  # tool 7 (video files, 0.15): the predictor's mixture codes R, G, B groups too
    classic_groups: bool = False  # tool 8 (video files, 0.15): a record's plane group may be one lossless WebP
    long_motion: bool = False  # tool 9 (video files, 0.17): vectors up to 64 pixels, sent as median differences

    def __post_init__(self):
        if (self.orientation or self.feedback) and not self.adaptation:
            raise ValueError("the orientation and the feedback need the adaptation")
        if self.feedback not in (0, *FEEDBACK_SETS):
            raise ValueError(f"unknown feedback feature set {self.feedback}")

    def describe(self) -> dict:
        return {"adaptation": self.adaptation, "orientation": self.orientation, "feedback": self.feedback,
                **({"classic_tiles": True} if self.classic_tiles else {}),
                **({"binned": True} if self.binned else {}),
                **({"sharp_motion": True} if self.sharp_motion else {}),
                **({"colour_mixture": True} if self.colour_mixture else {}),
                **({"classic_groups": True} if self.classic_groups else {}),
                **({"long_motion": True} if self.long_motion else {}),
                **({"family": {str(k): v.hex() for k, v in self.family}} if self.family else {})}


# version 1: coder profile -> its tools (adaptation, orientation, the feedback's feature set)
PROFILE_TOOLS = {
    1: CoderTools(),
    2: CoderTools(True),
    3: CoderTools(True, True),
    4: CoderTools(True, False, 1),
    5: CoderTools(True, True, 1),
    6: CoderTools(True, False, 2),
    7: CoderTools(True, True, 2),
    8: CoderTools(True, False, 3),
    9: CoderTools(True, True, 3),
}
CODER_PROFILES = tuple(PROFILE_TOOLS)


def legacy_profile(tools: CoderTools) -> int | None:
    """The version-1 coder profile number with these tools, the symbols' layout aside (None if no
    profile has them)."""
    tools = replace(tools, binned=False)
    return next((p for p, t in PROFILE_TOOLS.items() if t == tools), None)


PREAMBLE = struct.Struct("<4sBBI")
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA", 7: "P", 8: "PA"}
MODE_CODES = {v: k for k, v in MODES.items()}
GREY_MODES = {5: "RGB", 6: "RGBA"}  # R = G = B, coded once
GREY_MODE_CODES = {v: k for k, v in GREY_MODES.items()}
MODE_GROUPS = {"L": (1,), "LA": (1, 1), "RGB": (3,), "RGBA": (3, 1)}  # plane groups (streams per tile) per mode
BITS = {"L": (1, 2, 4, 8, 16), "LA": (8, 16), "RGB": (8, 16), "RGBA": (8, 16), "P": (1, 2, 4, 8), "PA": (8,)}
KIND_IMAGE, KIND_REPLICATED, KIND_CLASSIC = 0, 1, 2
CLASSIC_CODECS = {1: "png", 2: "webp", 3: "png-adam7"}  # kind 2: a PNG's zlib stream (3: interlaced) or a lossless WebP file
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
    model: str  # the weights' name (version 1: the model name it was written with)
    weights_sha256: bytes  # first 16 bytes
    bits: int = 8
    frames: int = 1
    icc_profile: bytes = b""
    metadata: tuple = ()  # ((kind, key, value bytes), ...): kind "exif", "xmp" or "text" (version 3)
    stream_lengths: list[int] = field(default_factory=list)
    stream_crcs: list[int] = field(default_factory=list)
    version: int = FORMAT_VERSION
    tools: CoderTools = CoderTools()
    grey: bool = False  # an RGB(A) image whose R, G and B are equal, coded as one plane (modes 5, 6)
    replication: tuple[int, int] = (1, 1)  # (fy, fx): blocks of equal pixels, coded once (kind 1)
    classic: str | None = None  # kind 2: "png", "png-adam7" or "webp", the one stream is that file
    palette: bytes = b""  # modes P and PA: 3 bytes (R, G, B) per entry, stored as metadata item 5
    classic_streams: list = field(default_factory=list)  # tool 4: per stream, whether it is a PNG zlib stream
    levels: tuple = ()  # 16 bits: per channel, the sorted values the samples take (at most 256 each), metadata item 8:
    # the streams (or the classic payload) code each sample's index among them, an 8-bit image

    @property
    def transparent(self) -> bool:
        """A palette image with a tRNS chunk (its coded colours carry alpha)."""
        return any(kind == "transparency" for kind, _, _ in self.metadata)

    @property
    def coded_bits(self) -> int:
        """Bits per sample of what is coded: 8 for 16-bit samples coded by their levels' indices."""
        return 8 if self.levels else self.bits

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Channels of each coded plane group, in stream order (:func:`group_sizes`)."""
        return group_sizes(self.mode, self.coded_bits, self.transparent)

    @property
    def channels(self) -> int:
        return len(self.mode)

    @property
    def profile(self) -> int | None:
        """The version-1 coder profile with this file's tools (what version-1 files store)."""
        return legacy_profile(self.tools)

    @property
    def coded_size(self) -> tuple[int, int]:
        """(height, width) of the image the streams code: the full image's over the replication."""
        return self.height // self.replication[0], self.width // self.replication[1]

    def n_tiles(self) -> int:
        if self.classic:
            return 1
        h, w = self.coded_size
        return -(-h // self.tile) * -(-w // self.tile)

    def describe(self) -> dict:
        return {
            "format_version": self.version,
            "coder_profile": self.profile,
            "coder_tools": self.tools.describe(),
            "kind": f"classic ({self.classic})" if self.classic else "image",
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
            "png_streams": sum(self.classic_streams),
            "model": self.model,
            "weights_sha256_prefix": self.weights_sha256.hex(),
            "icc_profile_bytes": len(self.icc_profile),
            "palette_entries": len(self.palette) // 3,
            "levels": [len(v) for v in self.levels],
            "metadata": [f"{kind} {key}".strip() + f" ({len(value)} bytes)" for kind, key, value in self.metadata],
            "payload_bytes": sum(self.stream_lengths),
        }


def coded_mode(mode: str, transparent: bool = False) -> str:
    """The 8-bit mode of the planes the model (or WebP) codes: a palette image as its colours
    (RGB, or RGBA with its tRNS alpha or alpha plane), every other mode as itself."""
    if mode == "P":
        return "RGBA" if transparent else "RGB"
    return "RGBA" if mode == "PA" else mode


def group_sizes(mode: str, bits: int = 8, transparent: bool = False) -> tuple[int, ...]:
    """Channels of each plane group a tile's streams code, in stream order: the coded mode's
    groups; for 16 bits per sample those of the high bytes, then those of the low bytes."""
    groups = MODE_GROUPS[coded_mode(mode, transparent)]
    return groups * 2 if bits == 16 else groups


def mode_code(mode: str, grey: bool = False) -> int:
    if grey and mode not in GREY_MODE_CODES:
        raise ValueError(f"only RGB and RGBA images can be coded as grey, not {mode}")
    return GREY_MODE_CODES[mode] if grey else MODE_CODES[mode]


def varint(n: int) -> bytes:
    """Unsigned LEB128 of 0 <= n < 2**32."""
    if not 0 <= n < 1 << 32:
        raise ValueError(f"{n} does not fit a varint field")
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _tool_list(tools: CoderTools) -> list[tuple[int, bytes]]:
    out = []
    if tools.adaptation:
        out.append((TOOL_ADAPTATION, b""))
    if tools.orientation:
        out.append((TOOL_ORIENTATION, b""))
    if tools.feedback:
        out.append((TOOL_FEEDBACK, bytes([tools.feedback])))
    if tools.classic_tiles:
        out.append((TOOL_CLASSIC_TILES, b""))
    if tools.binned:
        out.append((TOOL_BINNED, b""))
    if tools.sharp_motion:
        out.append((TOOL_SHARP_MOTION, b""))
    if tools.colour_mixture:
        out.append((TOOL_COLOUR_MIXTURE, b""))
    if tools.classic_groups:
        out.append((TOOL_CLASSIC_GROUPS, b""))
    if tools.long_motion:
        out.append((TOOL_LONG_MOTION, b""))
    return out + sorted(tools.family)


def write(h: ArmHeader, streams: list[bytes]) -> bytes:
    """A version-2 file: header ``h`` (its version is ignored) and the tile streams."""
    name = h.model.encode("utf-8")
    if len(name) > 255:
        raise ValueError("weights name longer than 255 bytes")
    replicated = tuple(h.replication) != (1, 1)
    if replicated:
        _check_replication(*h.replication, h.width, h.height)
    if h.classic:
        return _write_classic(h, streams)
    tools = _tool_list(h.tools)
    if any(not 0 < t < 256 or len(v) > 255 for t, v in tools) or len({t for t, _ in tools}) != len(tools):
        raise ValueError(f"invalid coder tools {h.tools}")
    items = _items(h)
    crcs = list(h.stream_crcs)
    if h.tools.classic_tiles:  # the map of PNG streams, one more stream after the tiles'
        if len(h.classic_streams) != len(streams) or not any(h.classic_streams):
            raise ValueError("classic tiles need one flag per stream, one of them set")
        streams = list(streams) + [classic_map(h.classic_streams)]
        crcs.append(zlib.crc32(streams[-1]) & 0xFFFFFFFF)
    body = [
        struct.pack("<BBB", KIND_REPLICATED if replicated else KIND_IMAGE, mode_code(h.mode, h.grey), h.bits),
        varint(h.width), varint(h.height), varint(h.frames), struct.pack("<H", h.tile),
        struct.pack("<BB", *h.replication) if replicated else b"",
        struct.pack("<B", len(name)), name, h.weights_sha256[:16].ljust(16, b"\0"),
        struct.pack("<B", len(tools)), *(struct.pack("<BB", t, len(v)) + v for t, v in tools),
        varint(len(h.icc_profile)), h.icc_profile,
        _metadata_bytes(items) if items else b"",
        varint(len(streams)),
    ]
    body += [struct.pack("<II", len(s), crc) for s, crc in zip(streams, crcs)]
    header = b"".join(body)
    head = PREAMBLE.pack(MAGIC, METADATA_VERSION if items else FORMAT_VERSION, 0, len(header)) + header
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + b"".join(streams)


def stream_bitmap(flags) -> bytes:
    """A flag per stream: bit k (least significant first) of byte k // 8 set where ``flags[k]``
    (tool 4's map, a video record's copy map); :func:`bitmap_flags` reads it back."""
    return np.packbits(np.array(flags, bool), bitorder="little").tobytes() if len(flags) else b""


def bitmap_flags(bitmap: bytes, n: int) -> list[bool]:
    """The first ``n`` flags of a :func:`stream_bitmap` (fewer if it is shorter)."""
    return np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little")[:n].astype(bool).tolist()


def classic_map(flags) -> bytes:
    """Tool 4's map: bit k (least significant first) of byte k // 8 set when stream k is a PNG
    zlib stream; zero-padded to a multiple of 4 bytes."""
    bits = stream_bitmap(flags)
    return bits.ljust(-(-len(bits) // 4) * 4, b"\0")


def _items(h: ArmHeader) -> tuple:
    """The header's metadata list: the metadata, then the palette (modes P and PA) or levels."""
    _check_image(h, ValueError)
    return tuple(h.metadata) + ((("palette", "", h.palette),) if h.palette else ()) + \
        ((("levels", "", levels_bytes(h.levels)),) if h.levels else ())


def levels_bytes(levels) -> bytes:
    """Metadata item 8: per channel, u16 n - 1, then the n values as u16 differences (the first
    from 0), all little-endian; deflated with the list, evenly spaced levels cost almost nothing."""
    out = []
    for v in levels:
        v = np.asarray(v, np.int64)
        out += [struct.pack("<H", len(v) - 1), np.diff(v, prepend=0).astype("<u2").tobytes()]
    return b"".join(out)


def parse_levels(data: bytes, channels: int) -> tuple:
    out, pos = [], 0
    for _ in range(channels):
        if pos + 2 > len(data):
            raise FormatError("levels item is truncated")
        n = struct.unpack_from("<H", data, pos)[0] + 1
        if n > 256 or pos + 2 + 2 * n > len(data):
            raise FormatError("levels item is truncated or has more than 256 levels")
        d = np.frombuffer(data, "<u2", n, pos + 2).astype(np.int64)
        v = np.cumsum(d)
        if (d[1:] == 0).any() or v[-1] > 65535:
            raise FormatError("levels are not increasing 16-bit values")
        out.append(v.astype(np.uint16))
        pos += 2 + 2 * n
    if pos != len(data):
        raise FormatError("levels item has bytes left over")
    return tuple(out)


def _write_classic(h: ArmHeader, streams: list[bytes]) -> bytes:
    code = {v: k for k, v in CLASSIC_CODECS.items()}.get(h.classic)
    if code is None or h.grey or tuple(h.replication) != (1, 1) or _tool_list(h.tools) or len(streams) != 1 or not streams[0]:
        raise ValueError(f"invalid classic file: {h.classic}")
    items = _items(h)
    header = b"".join([
        struct.pack("<BBB", KIND_CLASSIC, mode_code(h.mode), h.bits), varint(h.width), varint(h.height), varint(h.frames),
        struct.pack("<B", code), varint(len(h.icc_profile)), h.icc_profile,
        _metadata_bytes(items) if items else b"", struct.pack("<I", h.stream_crcs[0]),
    ])
    head = PREAMBLE.pack(MAGIC, METADATA_VERSION if items else FORMAT_VERSION, 0, len(header)) + header
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + streams[0]


def _parse_classic(r: "_Reader", data, version: int, mode_code: int, bits: int, width: int, height: int,
                   frames: int) -> tuple[ArmHeader, list[bytes]]:
    (code,) = r.take("<B")
    if code not in CLASSIC_CODECS:
        raise FormatError(f"unknown classic codec {code}")
    if mode_code not in MODES:
        raise FormatError(f"classic image with mode code {mode_code}")
    icc = r.raw(r.varint())
    metadata = _read_metadata(r) if version >= METADATA_VERSION else ()
    (crc,) = r.take("<I")
    if r.pos != r.end:
        raise FormatError("classic header has bytes left over")
    payload = bytes(data[r.end + 4 :])
    if not payload:
        raise FormatError("classic image without a payload (truncated file)")
    h = ArmHeader(MODES[mode_code], width, height, 0, "", bytes(16), bits, frames, icc, metadata, [len(payload)], [crc],
                  version=version, classic=CLASSIC_CODECS[code])
    _split_palette(h)
    if h.classic == "webp" and (h.mode in ("L", "LA") or (h.coded_bits != 8 and h.mode not in ("P", "PA"))):
        raise FormatError(f"a WebP payload cannot hold a {h.bits}-bit {h.mode} image")
    if h.classic.startswith("png") and h.mode == "PA":
        raise FormatError("a PNG payload cannot hold a PA image")
    return h, [payload]


def _check_size(bits: int, frames: int, width: int, height: int, max_pixels: int) -> None:
    if bits not in (1, 2, 4, 8, 16) or frames != 1:
        raise FormatError(f"unsupported sample depth {bits} or frame count {frames}")
    if width < 1 or height < 1:
        raise FormatError(f"invalid image size {width}x{height}")
    if width * height > max_pixels:
        raise LimitError(f"image of {width}x{height} pixels exceeds the limit of {max_pixels} pixels")


def _check_image(h: ArmHeader, error=FormatError) -> None:
    """The mode's bit depth, palette, transparency and kept PNG chunks agree."""
    if h.bits not in BITS[h.mode]:
        raise error(f"a mode {h.mode} image cannot have {h.bits} bits per sample")
    entries = len(h.palette) // 3
    if (h.mode in ("P", "PA")) != bool(h.palette) or len(h.palette) % 3 or entries > 256:
        raise error(f"a mode {h.mode} image with a palette of {len(h.palette)} bytes")
    if h.mode == "P" and entries > 1 << h.bits:
        raise error(f"a {h.bits}-bit palette image with {entries} palette entries")
    kinds = [kind for kind, _, _ in h.metadata]
    if h.levels and (h.bits != 16 or len(h.levels) != h.channels or max(map(len, h.levels)) > 256):
        raise error(f"levels of a {h.bits}-bit {h.mode} image")
    if "palette" in kinds or "levels" in kinds or kinds.count("transparency") > 1:
        raise error("metadata lists a palette or a transparency twice")
    for kind, key, value in h.metadata:
        if kind == "transparency":
            fits = 1 <= len(value) <= entries if h.mode == "P" else h.mode in ("L", "RGB") and len(value) == 2 * h.channels
            if not fits:
                what = "palette alpha" if h.mode == "P" else "transparent colour"
                raise error(f"a {what} of {len(value)} bytes does not fit a mode {h.mode} image")
        if kind == "chunk" and not (len(key) == 4 and key.isascii() and key.isalpha() and key[0].islower()) and \
                not (key == "PLTE" and h.mode in ("RGB", "RGBA")):
            raise error(f"{key!r} is not an ancillary PNG chunk type (or a true-colour image's PLTE)")


def _split_palette(h: ArmHeader) -> None:
    """Move a parsed metadata list's palette and levels items into ``h.palette`` and ``h.levels``,
    then check the image."""
    h.palette = b"".join(value for kind, _, value in h.metadata if kind == "palette")
    levels = [value for kind, _, value in h.metadata if kind == "levels"]
    if sum(kind == "palette" for kind, _, _ in h.metadata) > 1 or len(levels) > 1:
        raise FormatError("metadata lists a palette or levels twice")
    if levels:
        if h.bits != 16 or h.mode not in MODE_GROUPS:
            raise FormatError(f"levels in a {h.bits}-bit {h.mode} image")
        h.levels = parse_levels(levels[0], h.channels)
    h.metadata = tuple(item for item in h.metadata if item[0] not in ("palette", "levels"))
    _check_image(h)


def _record_filter(kind: str, key: str, value: bytes) -> tuple[int, int] | None:
    """(stride, start) of the records a metadata value is made of, where differences of
    neighbouring records deflate better than the records (a palette's or suggested palette's
    colours, a histogram's counts); None for the others."""
    if len(value) < 32:
        return None
    if kind == "palette" or (kind == "chunk" and key == "PLTE"):
        return 3, 0
    if kind == "chunk" and key == "hIST":
        return 2, 0
    if kind == "chunk" and key == "sPLT":  # name, NUL, sample depth (8 or 16), then entries of 6 or 10 bytes
        start = value.find(b"\0") + 2
        if 2 <= start <= len(value) and value[start - 1] in (8, 16):
            return (6 if value[start - 1] == 8 else 10), start
    return None


def _delta(value: bytes, stride: int, start: int, undo: bool = False) -> bytes:
    """``value`` with each byte from ``start + stride`` on replaced by its difference (mod 256)
    from the byte ``stride`` before it, or (``undo``) the differences summed back."""
    if len(value) <= start:
        return value
    body = np.frombuffer(value, dtype=np.uint8, offset=start)
    rows = -(-len(body) // stride)
    a = np.zeros(rows * stride, dtype=np.uint8)
    a[: len(body)] = body
    a = a.reshape(rows, stride)
    if undo:
        a = np.cumsum(a, axis=0, dtype=np.uint8)  # uint8 sums wrap mod 256
    else:
        a[1:] -= a[:-1].copy()
    return value[:start] + a.reshape(-1)[: len(body)].tobytes()


def _item_bytes(kind: str, key: str, value: bytes) -> bytes:
    k = key.encode("utf-8")
    return b"".join([struct.pack("<B", META_CODES[kind]), varint(len(k)), k, varint(len(value)), bytes(value)])


def _deflate(data: bytes) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    return z.compress(data) + z.flush()


def _filtered(kind: str, key: str, value: bytes, item: bytes) -> bytes | None:
    """The item (``item``: its bytes, :func:`_item_bytes`) as a kind-9 item (u8 its kind, varint
    stride, varint start, then its value with :func:`_delta` applied) where that deflates smaller
    than the item itself; else None."""
    value = bytes(value)
    f = _record_filter(kind, key, value)
    if f is None:
        return None
    stride, start = f
    inner = struct.pack("<B", META_CODES[kind]) + varint(stride) + varint(start) + _delta(value, stride, start)
    out = _item_bytes("filtered", key, inner)
    return out if len(_deflate(out)) < len(_deflate(item)) else None


def _metadata_bytes(items) -> bytes:
    """The metadata list; as one item of kind 7 (the list, raw-deflated) where that is smaller;
    palettes and other lists of records as differences (kind 9) where that makes the list smaller."""
    plain, filtered = [varint(len(items))], [varint(len(items))]
    for kind, key, value in items:
        if kind not in META_CODES or kind in ("deflated", "filtered") or (key and kind not in ("text", "chunk")):
            raise ValueError(f"invalid metadata item {kind!r} {key!r}")
        item = _item_bytes(kind, key, value)
        plain.append(item)
        filtered.append(_filtered(kind, key, value, item) or item)
    best = None
    for raw in dict.fromkeys([b"".join(plain), b"".join(filtered)]):  # the unfiltered list first: it wins ties
        packed = _deflate(raw)
        packed = varint(1) + struct.pack("<B", META_CODES["deflated"]) + varint(0) + varint(len(packed)) + packed
        out = packed if len(packed) < len(raw) else raw
        if best is None or len(out) < len(best):
            best = out
    return best


def _read_metadata(r: "_Reader", nested: bool = False) -> tuple:
    items = []
    for _ in range(r.varint()):
        (code,) = r.take("<B")
        if code not in META_KINDS:
            raise FormatError(f"unknown metadata kind {code}")
        try:
            key = r.raw(r.varint()).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("metadata key is not valid utf-8") from None
        if key and META_KINDS[code] not in ("text", "chunk", "filtered"):
            raise FormatError("metadata item has a key where none belongs")
        value = r.raw(r.varint())
        if META_KINDS[code] == "deflated":  # a metadata list, raw-deflated
            if nested:
                raise FormatError("a deflated metadata list inside another")
            d = zlib.decompressobj(-15)
            try:
                plain = d.decompress(value, MAX_HEADER)
            except zlib.error:
                raise FormatError("deflated metadata is damaged") from None
            if d.unconsumed_tail or not d.eof:
                raise FormatError("deflated metadata is damaged or too large")
            inner = _Reader(plain, 0, len(plain))
            items += _read_metadata(inner, nested=True)
            if inner.pos != inner.end:
                raise FormatError("deflated metadata has bytes left over")
        elif META_KINDS[code] == "filtered":
            items.append(_unfiltered(key, value))
        else:
            items.append((META_KINDS[code], key, value))
    return tuple(items)


def _unfiltered(key: str, value: bytes) -> tuple[str, str, bytes]:
    """A kind-9 item's original item (kind, key, value)."""
    r = _Reader(value, 0, len(value))
    (code,) = r.take("<B")
    stride, start = r.varint(), r.varint()
    kind = META_KINDS.get(code)
    if kind in (None, "deflated", "filtered") or (key and kind not in ("text", "chunk")):
        raise FormatError(f"filtered metadata item of kind {code}")
    if not 1 <= stride <= 255 or start > len(value) - r.pos:
        raise FormatError("filtered metadata item has an invalid stride or start")
    return kind, key, _delta(value[r.pos:], stride, start, undo=True)


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

    def varint(self) -> int:
        n = 0
        for k in range(5):
            (byte,) = self.take("<B")
            n |= (byte & 0x7F) << (7 * k)
            if not byte & 0x80:
                if (k and not byte) or n >= 1 << 32:
                    raise FormatError("header holds an overlong or too large number")
                return n
        raise FormatError("header holds a number longer than 5 bytes")

    def raw(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise FormatError("header field runs past the header")
        b = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return b


def read_weights_id(r: _Reader) -> tuple[str, bytes]:
    """The weights' name (u8 n + n bytes, utf-8) and sha256 prefix (16 bytes) a header names."""
    (name_len,) = r.take("<B")
    try:
        model = r.raw(name_len).decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("weights name is not valid utf-8") from None
    return model, r.raw(16)


def _read_tools(r: _Reader) -> CoderTools:
    (count,) = r.take("<B")
    found: dict[int, bytes] = {}
    for _ in range(count):
        tool, length = r.take("<BB")
        value = r.raw(length)
        if found and tool <= max(found):
            raise FormatError("coder tools are not listed in ascending order")
        found[tool] = value
    unknown = [t for t in found if t not in KNOWN_TOOLS]
    if unknown:
        raise FormatError(f"the file uses coder tool {unknown[0]}, which this armcodec does not know "
                          "(written by a newer version?)")
    if any(len(found[t]) for t in (TOOL_ADAPTATION, TOOL_ORIENTATION, TOOL_CLASSIC_TILES, TOOL_BINNED, *VIDEO_TOOLS)
           if t in found) or \
            (TOOL_FEEDBACK in found and len(found[TOOL_FEEDBACK]) != 1):
        raise FormatError("a coder tool has a value of the wrong length")
    feedback = found[TOOL_FEEDBACK][0] if TOOL_FEEDBACK in found else 0
    try:
        return CoderTools(TOOL_ADAPTATION in found, TOOL_ORIENTATION in found, feedback,
                          classic_tiles=TOOL_CLASSIC_TILES in found, binned=TOOL_BINNED in found,
                          sharp_motion=TOOL_SHARP_MOTION in found, colour_mixture=TOOL_COLOUR_MIXTURE in found,
                          classic_groups=TOOL_CLASSIC_GROUPS in found, long_motion=TOOL_LONG_MOTION in found)
    except ValueError as e:
        raise FormatError(f"invalid coder tools: {e}") from None


def parse(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[ArmHeader, list[bytes]]:
    """Validate and split an .arm file of any version; raises FormatError, ChecksumError or LimitError."""
    data = memoryview(data).toreadonly() if not isinstance(data, bytes) else data
    if len(data) < PREAMBLE.size or bytes(data[:4]) != MAGIC:
        raise FormatError("not an armcodec file (bad magic)")
    _, version, profile, hlen = PREAMBLE.unpack_from(data, 0)
    if version not in READ_VERSIONS:
        raise FormatError(f"unsupported .arm format version {version} (this armcodec reads versions "
                          f"{', '.join(map(str, READ_VERSIONS))})")
    if version == 1 and profile not in CODER_PROFILES:
        raise FormatError(f"unsupported coder profile {profile} (this armcodec reads {', '.join(map(str, CODER_PROFILES))})")
    if version >= 2 and profile != 0:
        raise FormatError(f"reserved byte is {profile}, not 0")
    hend = PREAMBLE.size + hlen
    if hlen > MAX_HEADER or hend + 4 > len(data):
        raise FormatError(f"file is truncated: header of {hlen} bytes does not fit in {len(data)} bytes")
    (stored_crc,) = struct.unpack_from("<I", data, hend)
    if zlib.crc32(bytes(data[:hend])) & 0xFFFFFFFF != stored_crc:
        raise ChecksumError("header CRC32 mismatch: the file is corrupted")
    r = _Reader(data, PREAMBLE.size, hend)
    if version == 1:
        kind, mode_code, bits, width, height, frames, tile = r.take("<BBBIIIH")
    else:
        kind, mode_code, bits = r.take("<BBB")
        width, height, frames = r.varint(), r.varint(), r.varint()
        if kind == KIND_CLASSIC:
            _check_size(bits, frames, width, height, max_pixels)
            return _parse_classic(r, data, version, mode_code, bits, width, height, frames)
        (tile,) = r.take("<H")
    if kind not in (KIND_IMAGE, KIND_REPLICATED):
        raise FormatError(f"unsupported content kind {kind}")
    if mode_code not in MODES and mode_code not in GREY_MODES:
        raise FormatError(f"unknown image mode code {mode_code}")
    _check_size(bits, frames, width, height, max_pixels)
    if not MIN_TILE <= tile <= MAX_TILE:
        raise FormatError(f"invalid tile size {tile}")
    replication = (1, 1)
    if kind == KIND_REPLICATED:
        replication = r.take("<BB")
        _check_replication(*replication, width, height)
    model, sha = read_weights_id(r)
    if version == 1:
        tools = PROFILE_TOOLS[profile]
        (icc_len,) = r.take("<I")
        icc = r.raw(icc_len)
        (n_streams,) = r.take("<I")
        metadata = ()
    else:
        tools = _read_tools(r)
        if tools.sharp_motion or tools.colour_mixture or tools.classic_groups or tools.long_motion:
            raise FormatError("an image file with a tool of the video coder's")
        icc = r.raw(r.varint())
        metadata = _read_metadata(r) if version >= METADATA_VERSION else ()
        n_streams = r.varint()
    grey = mode_code in GREY_MODES
    mode = GREY_MODES[mode_code] if grey else MODES[mode_code]
    h = ArmHeader(mode, width, height, tile, model, sha, bits, frames, icc, metadata, version=version, tools=tools,
                  grey=grey, replication=tuple(replication))
    _split_palette(h)
    if grey and h.coded_bits != 8:
        raise FormatError(f"a grey {mode} image with {bits} bits per sample")
    expected = h.n_tiles() * len(h.group_sizes) + (1 if tools.classic_tiles else 0)
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
    if tools.classic_tiles:
        bitmap, crc = streams.pop(), h.stream_crcs.pop()
        h.stream_lengths.pop()
        if zlib.crc32(bitmap) & 0xFFFFFFFF != crc:
            raise ChecksumError("the classic tiles' map fails its CRC32: the file is corrupted")
        flags = bitmap_flags(bitmap, len(streams))
        if bitmap != classic_map(flags) or len(flags) != len(streams) or not any(flags):
            raise FormatError("the classic tiles' map does not fit the stream table")
        h.classic_streams = flags
    return h, streams
