"""The video kind of the ``.arm`` container (format version 4): the only module that knows its bytes
(docs/FORMAT.md, "Video files").  Little-endian, ``varint`` as in :mod:`armcodec.container`::

    offset 0   "ARMC"  u8 version (4)  u8 0  u32 header length N
           10  header (N bytes):
                 u8 kind (3 video)   u8 source (1 Y4M, 2 image frames, 3 a video file's decoded frames)
                 varint width   varint height
                 u8 P planes, each: varint width, varint height, u8 channels (1, or 3: R, G, B coded jointly)
                 varint key interval K (a key frame every K frames, coded without the previous frame)
                 u16 tile size
                 u8 n + n bytes weights name (utf-8)   16 bytes: sha256 prefix of the weights
                 u8 T, then T coder tools (as the image kind's: 1 adaptation, 3 feedback (0.5), 5 binned symbols (0.11);
                 6 (0.14, video only): the quarter-pixel samples of the predictor flag's records by H.264's 6-tap filter;
                 7 (0.15, video only): the predictor flag's records code R, G, B groups by the mixture too;
                 8 (0.15, video only): each record says which plane groups are one lossless WebP instead)
                 varint n + n bytes: the source's description (Y4M: its header line, verbatim;
                     image frames: the mode (L, LA, RGB, RGBA); a video file: JSON, its rate,
                     pixel format and streams, and "y4m": the header line of its planes when the
                     frames are stored as the decoder's YUV or grey planes (0.5), else RGB frames)
       10+N    u32 CRC32 of bytes [0, 10+N)
    then one record per frame:
               u32 R: record header length (below 2**24)
               record header (R bytes): u8 flags (bit k: plane group k is coded with the previous
                   frame's; none set: a key frame)   varint frame number
                   varint n + n bytes: the frame's own bytes (Y4M: the FRAME line's parameters;
                   image frames: its file name)
                   varint m + m bytes: the motion vectors of the groups coded with the previous frame
                   (:mod:`armcodec.coding.motion`; empty: all zero; with coder tool 9, 0.17: up to
                   64 pixels, as differences from the neighbours' median)
                   only with flags bit 7 (0.5): varint c + c bytes, c = ceil(S / 8), the copy map:
                   bit k (least significant first) of byte k // 8 set when tile stream k is empty
                   because the tile equals the previous frame's (moved) samples there (a group
                   coded with the previous frame; the tile's CRC32 checks the copy)
                   only with flags bit 5 (0.6): the block maps: u8 b | m << 4 (blocks of 2**b samples a
                   side, b in 2..5, from each tile's top left, the last ones cut at its edges; m: 0
                   stored, 1 raw deflate), varint L + L bytes that hold (m = 1: deflate to) ceil(S / 8)
                   bytes, bit k set when tile stream k has a map, then per such stream: varint r + r
                   varints, the run lengths over the tile's blocks in row-major order, alternating
                   coded / copied, the first run coded (may be 0), the others above 0, at least one
                   copied block: a copied block is the previous frame's (moved) samples, which its
                   tile stream does not code
                   only with flags bit 4 (0.13, at most 4 plane groups): every motion vector of the
                   record is in quarter pixels (:mod:`armcodec.coding.motion`), and every group of one
                   channel (with coder tool 7, 0.15: every group) coded with the previous frame is
                   coded by the weights' mixture with the
                   previous-frame predictor (:mod:`armcodec.models.previous_frame_exact`): varint c + c
                   bytes, the mixture index (0..16; 17..33 since 0.14: the same offsets with the
                   neighbour term) of each tile stream of those groups in stream order, copied
                   tiles left out
                   only in files with coder tool 8 (0.15): per plane group, u8 its classic code (0: its
                   tile streams as above; 1: one lossless WebP of its samples, the group not coded with
                   the previous frame; 2: one lossless WebP of its residual to the moved previous
                   frame, (x - moved + 128) mod 256, the group coded with the previous frame;
                   3 and 4: the same of this group and the next, two equal planes of one channel
                   (U and V), as one WebP whose channels are (this, next, next), the next group's
                   code 5 (its streams empty)) and, unless 0 or 5, varint: the WebP's length, which
                   the group's first tile stream holds padded with zeros (its other streams empty,
                   none copied, no block map nor mixture index; the compact table only)
                   varint S, then S x (u32 length, u32 CRC32 of the stream index and the tile's samples),
                   or with flags bit 6 (0.5, the compact table): S x varint (length / 4), then u32
                   CRC32 of the frame's decoded samples (every plane group in order, row-major)
               u32 CRC32 of the record header (its length field included)
               the S streams (plane by plane, tiles row-major), lengths multiples of 4
    then the frame table:
               "ARMX"   varint F frames, each: varint record offset minus the previous one's (the first:
                   from the end of the header's CRC), u8 flags
               u32 CRC32 of the table (from "ARMX")
               16 bytes: u64 offset of "ARMX", u32 F, "ARMV"

Records come in frame order and carry everything a reader needs, so a decoder streams them from a
pipe without seeking; the table at the end gives random access (``--frames A:B`` starts from the
key frame at or before A).  The encoder codes a group without the previous frame wherever that is
smaller (a cut), so key frames may come more often than the interval.  :func:`parse_header`, :func:`read_record` and :func:`parse_table`
validate every length against the limits and the bytes present before anything is allocated.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np

from armcodec.container import (MAGIC, MAX_TILE, MIN_TILE, PREAMBLE, CoderTools, _Reader, _read_tools, _tool_list,
                                bitmap_flags, read_weights_id, stream_bitmap, varint)
from armcodec.errors import ChecksumError, FormatError, LimitError

VIDEO_VERSION = 4
KIND_VIDEO = 3
SOURCES = {1: "y4m", 2: "frames", 3: "video"}
SOURCE_CODES = {v: k for k, v in SOURCES.items()}
TABLE_MAGIC = b"ARMX"
END_MAGIC = b"ARMV"
END = struct.Struct("<QI4s")
MAX_VIDEO_HEADER = 1 << 20
MAX_RECORD_HEADER = 1 << 24
COPY_FLAG = 0x80  # record flags: a copy map follows the motion vectors (0.5)
COMPACT_FLAG = 0x40  # record flags: the compact stream table (0.5): varint lengths / 4, one CRC32 of the frame
BLOCKS_FLAG = 0x20  # record flags: block maps follow the copy map (0.6)
PREDICTOR_FLAG = 0x10  # record flags: quarter-pixel vectors, the predictor's mixture indices after the block maps (0.13)
N_MIX = 17  # mixture offsets 0..16 (their meaning: armcodec.models.previous_frame_exact.mix_offset)
MIX_CODES = 2 * N_MIX  # a record's mixture indices: an offset, + N_MIX with the neighbour term (0.14)
# coder tool 8's classic code of a plane group (0.15; :mod:`armcodec.coding.classic` writes and reads
# the WebPs): modelled, one WebP of its samples or residual, of a pair's, the pair's second
MODELLED, GROUP_SAMPLES, GROUP_RESIDUAL, PAIR_SAMPLES, PAIR_RESIDUAL, IN_PAIR = 0, 1, 2, 3, 4, 5
GROUP_CODES = (GROUP_SAMPLES, GROUP_RESIDUAL)
PAIR_CODES = (PAIR_SAMPLES, PAIR_RESIDUAL)
BLOCK_LOG2 = (2, 5)  # copied blocks: 4x4 to 32x32 samples
MAX_PLANES = 4
MAX_FRAMES = 1 << 31
DEFAULT_MAX_PIXELS = 1 << 28  # per frame


def max_table_bytes(frames: int) -> int:
    """The most bytes a frame table of ``frames`` frames takes after its magic (varints of at most 5 bytes)."""
    return 5 + 6 * frames + 4 + END.size + 1


@dataclass
class VideoHeader:
    source: str  # "y4m", "frames" or "video"
    width: int
    height: int
    planes: list[tuple[int, int, int]]  # (width, height, channels) of each coded plane group
    key_interval: int
    tile: int
    model: str
    weights_sha256: bytes
    tools: CoderTools = CoderTools()
    description: bytes = b""
    version: int = VIDEO_VERSION
    size: int = 0  # bytes of the header, CRC included (where the first record starts), once read or written

    def plane_streams(self) -> list[int]:
        """Tile streams of each plane group of a frame."""
        return [-(-h // self.tile) * -(-w // self.tile) for w, h, _ in self.planes]

    def tile_shapes(self) -> list[tuple[int, int]]:
        """(height, width) of every tile stream of a frame, in stream order."""
        return [(min(self.tile, h - y), min(self.tile, w - x)) for w, h, _ in self.planes
                for y in range(0, h, self.tile) for x in range(0, w, self.tile)]

    def n_streams(self) -> int:
        return sum(self.plane_streams())

    def describe(self) -> dict:
        return {"format_version": self.version, "kind": "video", "source": self.source, "width": self.width,
                "height": self.height, "planes": [list(p) for p in self.planes], "key_interval": self.key_interval,
                "tile_size": self.tile, "model": self.model, "weights_sha256_prefix": self.weights_sha256.hex(),
                "coder_tools": self.tools.describe()}


@dataclass
class FrameRecord:
    """One frame's record: which plane groups use the previous frame (none: a key frame), its
    number, its own bytes, its tile streams."""

    temporal: tuple[bool, ...]
    number: int
    extra: bytes
    streams: list[bytes]
    crcs: list[int]  # per stream (the full table); [] with frame_crc
    motion: bytes = b""
    frame_crc: int | None = None  # the compact table's CRC32 of the frame's samples (every group in order, row-major)
    copied: tuple[bool, ...] = ()  # per stream: the tile is the previous frame's (moved) samples, no stream; () none
    blocks: tuple = ()  # per stream: None or bool (rows, cols), the tile's blocks copied from the previous frame; () none
    block_log2: int = 3  # the blocks' size: 2**block_log2 samples a side
    quarter: bool = False  # quarter-pixel vectors; grey groups coded with the previous frame use the predictor's mixture (0.13)
    mix: tuple[int, ...] = ()  # with quarter: per stream of those groups (copied tiles left out), its mixture index
    classic: tuple[tuple[int, int], ...] = ()  # with coder tool 8: per group (classic code, WebP length), (0, 0): modelled
    offset: int = 0  # where it starts in the file (set by the writer and reader)
    size: int = 0

    @property
    def key(self) -> bool:
        return not any(self.temporal)


@dataclass
class FrameTable:
    offsets: list[int] = field(default_factory=list)
    keys: list[bool] = field(default_factory=list)


def write_header(h: VideoHeader) -> bytes:
    name = h.model.encode("utf-8")
    if len(name) > 255 or not 1 <= len(h.planes) <= MAX_PLANES or h.key_interval < 1:
        raise ValueError("invalid video header")
    tools = _tool_list(h.tools)
    body = [struct.pack("<BB", KIND_VIDEO, SOURCE_CODES[h.source]), varint(h.width), varint(h.height),
            struct.pack("<B", len(h.planes))]
    body += [varint(w) + varint(ph) + struct.pack("<B", c) for w, ph, c in h.planes]
    body += [varint(h.key_interval), struct.pack("<H", h.tile), struct.pack("<B", len(name)), name,
             h.weights_sha256[:16].ljust(16, b"\0"), struct.pack("<B", len(tools)),
             *(struct.pack("<BB", t, len(v)) + v for t, v in tools), varint(len(h.description)), h.description]
    header = b"".join(body)
    head = PREAMBLE.pack(MAGIC, VIDEO_VERSION, 0, len(header)) + header
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF)


def is_video(prefix: bytes) -> bool:
    """Whether an .arm file's first bytes (at least 11) are a video file's."""
    return len(prefix) >= 11 and prefix[:4] == MAGIC and prefix[4] == VIDEO_VERSION and prefix[10] == KIND_VIDEO


def _read_exact(stream: BinaryIO, n: int, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise FormatError(f"file is truncated inside {what}")
    return data


def read_header(stream: BinaryIO, max_pixels: int = DEFAULT_MAX_PIXELS) -> VideoHeader:
    """Read and validate the header at the stream's position (the file's start)."""
    pre = _read_exact(stream, PREAMBLE.size, "the header")
    magic, version, reserved, hlen = PREAMBLE.unpack(pre)
    if magic != MAGIC:
        raise FormatError("not an armcodec file (bad magic)")
    if version != VIDEO_VERSION:
        raise FormatError(f"not an armcodec video file (format version {version})")
    if reserved or hlen > MAX_VIDEO_HEADER:
        raise FormatError("invalid video header")
    body = _read_exact(stream, hlen + 4, "the header")
    (crc,) = struct.unpack_from("<I", body, hlen)
    if zlib.crc32(pre + body[:hlen]) & 0xFFFFFFFF != crc:
        raise ChecksumError("header CRC32 mismatch: the file is corrupted")
    r = _Reader(body, 0, hlen)
    kind, source = r.take("<BB")
    if kind != KIND_VIDEO or source not in SOURCES:
        raise FormatError(f"invalid video header (kind {kind}, source {source})")
    width, height = r.varint(), r.varint()
    (n_planes,) = r.take("<B")
    if not 1 <= n_planes <= MAX_PLANES:
        raise FormatError(f"a video frame of {n_planes} planes")
    planes = []
    for _ in range(n_planes):
        w, h = r.varint(), r.varint()
        (c,) = r.take("<B")
        if c not in (1, 3) or not (1 <= w <= width and 1 <= h <= height):
            raise FormatError(f"invalid plane {w}x{h}x{c} in a {width}x{height} video")
        planes.append((w, h, c))
    if width < 1 or height < 1:
        raise FormatError(f"invalid frame size {width}x{height}")
    if width * height > max_pixels:
        raise LimitError(f"frames of {width}x{height} pixels exceed the limit of {max_pixels} pixels")
    key_interval = r.varint()
    (tile,) = r.take("<H")
    if key_interval < 1 or not MIN_TILE <= tile <= MAX_TILE:
        raise FormatError(f"invalid key interval {key_interval} or tile size {tile}")
    model, sha = read_weights_id(r)
    tools = _read_tools(r)
    if tools.orientation or tools.classic_tiles:
        raise FormatError("a video file with coder tools other than the adaptation and the feedback")
    description = r.raw(r.varint())
    if r.pos != r.end:
        raise FormatError("video header has bytes left over")
    return VideoHeader(SOURCES[source], width, height, planes, key_interval, tile, model, sha, tools, description,
                       size=PREAMBLE.size + hlen + 4)


def write_record(rec: FrameRecord) -> bytes:
    compact = rec.frame_crc is not None
    if any(len(s) % 4 for s in rec.streams) or len(rec.crcs) != (0 if compact else len(rec.streams)):
        raise ValueError("invalid frame record")
    flags = sum(1 << k for k, t in enumerate(rec.temporal) if t)
    if rec.motion and rec.key:
        raise ValueError("a key frame has no motion vectors")
    copy_map = b""
    if any(rec.copied):
        if len(rec.copied) != len(rec.streams) or any(c and s for c, s in zip(rec.copied, rec.streams)):
            raise ValueError("invalid copy map")
        flags |= COPY_FLAG
        bitmap = stream_bitmap(rec.copied)
        copy_map = varint(len(bitmap)) + bitmap
    flags |= COMPACT_FLAG if compact else 0
    block_maps = b""
    if any(m is not None for m in rec.blocks):
        if len(rec.blocks) != len(rec.streams) or any(m is not None and c for m, c in zip(rec.blocks, rec.copied)):
            raise ValueError("invalid block maps")
        flags |= BLOCKS_FLAG
        block_maps = write_block_maps(rec.blocks, rec.block_log2)
    predictor = b""
    if rec.quarter:
        if len(rec.temporal) > 4 or any(not 0 <= v < MIX_CODES for v in rec.mix):
            raise ValueError("invalid mixture indices")
        flags |= PREDICTOR_FLAG
        predictor = varint(len(rec.mix)) + bytes(rec.mix)
    elif rec.mix:
        raise ValueError("mixture indices need the predictor flag (quarter-pixel vectors)")
    classic = b"".join(struct.pack("<B", code) + (varint(length) if code not in (MODELLED, IN_PAIR) else b"")
                       for code, length in rec.classic)
    if rec.classic and (len(rec.classic) != len(rec.temporal) or (not compact and any(c for c, _ in rec.classic))):
        raise ValueError("invalid classic groups")
    body = b"".join([struct.pack("<B", flags), varint(rec.number), varint(len(rec.extra)), rec.extra,
                     varint(len(rec.motion)), rec.motion, copy_map, block_maps, predictor, classic,
                     varint(len(rec.streams)),
                     *([varint(len(s) // 4) for s in rec.streams] + [struct.pack("<I", rec.frame_crc)] if compact else
                       [struct.pack("<II", len(s), c) for s, c in zip(rec.streams, rec.crcs)])])
    head = struct.pack("<I", len(body)) + body
    return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + b"".join(rec.streams)


def read_record(stream: BinaryIO, header: VideoHeader, offset: int, remaining: int | None = None) -> FrameRecord | None:
    """The record at the stream's position (file offset ``offset``), or None at the frame table
    (which the stream is then positioned after the magic of).  ``remaining``: bytes left in the
    file when known (a seekable file), checked before streams are read."""
    first = stream.read(4)
    if first == TABLE_MAGIC:
        return None
    if len(first) != 4:
        raise FormatError("file is truncated: it ends before its frame table")
    (rlen,) = struct.unpack("<I", first)
    if rlen >= MAX_RECORD_HEADER or (remaining is not None and rlen + 8 > remaining):
        raise FormatError(f"frame record at byte {offset} is damaged or truncated")
    body = _read_exact(stream, rlen + 4, f"the frame record at byte {offset}")
    (crc,) = struct.unpack_from("<I", body, rlen)
    if zlib.crc32(first + body[:rlen]) & 0xFFFFFFFF != crc:
        raise ChecksumError(f"frame record at byte {offset} fails its CRC32: the file is corrupted")
    r = _Reader(body, 0, rlen)
    (flags,) = r.take("<B")
    copy_map = block_maps = None
    known = COPY_FLAG | COMPACT_FLAG | BLOCKS_FLAG | (PREDICTOR_FLAG if len(header.planes) <= 4 else 0)
    if (flags & ~known) >> len(header.planes):
        raise FormatError(f"frame record at byte {offset} has flags {flags} for {len(header.planes)} plane groups")
    number = r.varint()
    extra = r.raw(r.varint())
    motion = r.raw(r.varint())
    if flags & COPY_FLAG:
        copy_map = r.raw(r.varint())
    if flags & BLOCKS_FLAG:
        (code,) = r.take("<B")
        block_maps = (code, r.raw(r.varint()))
    mix_bytes = r.raw(r.varint()) if flags & PREDICTOR_FLAG else None
    classic = ()
    if header.tools.classic_groups:
        classic = tuple((code, r.varint() if code not in (MODELLED, IN_PAIR) else 0)
                        for (code,) in (r.take("<B") for _ in header.planes))
    n = r.varint()
    if n != header.n_streams():
        raise FormatError(f"frame {number} lists {n} streams, its planes need {header.n_streams()}")
    frame_crc = None
    if flags & COMPACT_FLAG:
        if r.end - r.pos < n + 4:
            raise FormatError(f"frame {number}'s stream table does not fill its record header")
        lengths, crcs = [4 * r.varint() for _ in range(n)], []
        (frame_crc,) = r.take("<I")
        if r.pos != r.end:
            raise FormatError(f"frame {number}'s stream table does not fill its record header")
    else:
        if r.end - r.pos != 8 * n:
            raise FormatError(f"frame {number}'s stream table does not fill its record header")
        table = struct.unpack_from(f"<{2 * n}I", body, r.pos)
        lengths, crcs = list(table[0::2]), list(table[1::2])
    total = sum(lengths)
    if any(x % 4 for x in lengths) or (remaining is not None and 8 + rlen + total > remaining):
        raise FormatError(f"frame {number}'s streams run past the end of the file (truncated?)")
    streams = [_read_exact(stream, x, f"frame {number}'s streams") for x in lengths]
    temporal = tuple(bool(flags >> k & 1) for k in range(len(header.planes)))
    if motion and not any(temporal):
        raise FormatError(f"key frame {number} carries motion vectors")
    copied = ()
    if copy_map is not None:
        copied = tuple(bitmap_flags(copy_map, n))
        if len(copied) != n or copy_map != stream_bitmap(copied):
            raise FormatError(f"frame {number}'s copy map does not match its {n} streams")
        group_of = [g for g, _ in stream_groups(header)]
        if not any(copied) or any(c and (lengths[k] or not temporal[group_of[k]]) for k, c in enumerate(copied)):
            raise FormatError(f"frame {number}'s copy map marks a stream that has bytes or no previous frame")
    if classic:
        _check_classic(classic, header, temporal, lengths, streams, copied, frame_crc, number)
    mix = ()
    if mix_bytes is not None:
        mix = tuple(mix_bytes)
        if len(mix) != len(mixed_streams(header, temporal, copied, classic)) or any(v >= MIX_CODES for v in mix):
            raise FormatError(f"frame {number}'s mixture indices do not match its streams")
    blocks, log2 = (), 3
    if block_maps is not None:
        blocks, log2 = read_block_maps(*block_maps, header, temporal, copied, number)
        if any(b is not None and classic and classic[g][0] for b, (g, _) in zip(blocks, stream_groups(header))):
            raise FormatError(f"frame {number} has a block map in a classic group")
    return FrameRecord(temporal, number, extra, streams, crcs, motion, frame_crc, copied, blocks, log2,
                       mix_bytes is not None, mix, classic, offset, 8 + rlen + total)


def _check_classic(classic, header: VideoHeader, temporal, lengths, streams, copied, frame_crc, number: int) -> None:
    """A record's classic groups (coder tool 8) against its streams (see the module docstring)."""
    first = 0
    for g, ((code, length), count) in enumerate(zip(classic, header.plane_streams())):
        if code:
            residual = code in (GROUP_RESIDUAL, PAIR_RESIDUAL) \
                or (code == IN_PAIR and g > 0 and classic[g - 1][0] == PAIR_RESIDUAL)
            if code > IN_PAIR or residual != temporal[g] or frame_crc is None:
                raise FormatError(f"frame {number}'s plane group {g} has classic code {code}"
                                  f"{' without' if residual else ' with'} the previous frame")
            if (code in PAIR_CODES and not (g + 1 < len(classic) and classic[g + 1] == (IN_PAIR, 0)
                                            and header.planes[g][2] == 1 and header.planes[g] == header.planes[g + 1])) \
                    or (code == IN_PAIR and not (g > 0 and classic[g - 1][0] in PAIR_CODES and length == 0)):
                raise FormatError(f"frame {number}'s classic plane group {g} is not one of a pair of equal planes")
            pad = lengths[first] - length
            if not 0 <= pad < 4 or any(lengths[first + 1 : first + count]) or any(streams[first][length:]) \
                    or (copied and any(copied[first : first + count])):
                raise FormatError(f"frame {number}'s classic plane group {g} does not match its streams")
        first += count


def stream_groups(header: VideoHeader) -> list[tuple[int, int]]:
    """(plane group, tile index in it) of each stream of a frame, in stream order."""
    return [(g, k) for g, count in enumerate(header.plane_streams()) for k in range(count)]


def mixed_streams(header: VideoHeader, temporal, copied=(), classic=()) -> list[int]:
    """The streams (indices) that carry a mixture index in a record with the predictor flag: those
    of the groups coded with the previous frame by the mixture (of one channel; with coder tool 7,
    0.15, also of R, G, B), but the copied tiles and the classic groups (coder tool 8)."""
    return [k for k, (g, _) in enumerate(stream_groups(header))
            if temporal[g] and mixed_group(header, g) and not (copied and copied[k]) and not (classic and classic[g][0])]


def mixed_group(header: VideoHeader, g: int) -> bool:
    """Whether plane group ``g``, coded with the previous frame in a record with the predictor
    flag, is coded by the predictor's mixture: a group of one channel, or any with coder tool 7."""
    return header.planes[g][2] == 1 or header.tools.colour_mixture


def block_map_shape(h: int, w: int, log2: int) -> tuple[int, int]:
    """Blocks of 2**log2 samples a side (the last ones cut) that cover an h x w tile."""
    return -(-h >> log2), -(-w >> log2)


def block_map_bytes(m: np.ndarray) -> int:
    """The bytes a block map takes stored (its run count and runs; before any deflate)."""
    runs = _runs(np.asarray(m, bool))
    return len(varint(len(runs))) + sum(len(varint(x)) for x in runs)


def _runs(m: np.ndarray) -> list[int]:
    """Run lengths of a block map in row-major order, alternating coded / copied, the first coded."""
    flat = m.ravel()
    cuts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate([[0], cuts, [flat.size]])
    runs = np.diff(edges).tolist()
    return ([0] + runs) if flat[0] else runs


def write_block_maps(maps, log2: int) -> bytes:
    """The block map section (flags bit 5) of ``maps`` (per stream: None or bool (rows, cols))."""
    if not BLOCK_LOG2[0] <= log2 <= BLOCK_LOG2[1]:
        raise ValueError(f"copied blocks of 2**{log2} samples are not in the format")
    payload = bytearray(stream_bitmap([m is not None for m in maps]))
    for m in maps:
        if m is not None:
            runs = _runs(np.asarray(m, bool))
            if len(runs) < 2:
                raise ValueError("a block map needs a coded and a copied block")
            payload += varint(len(runs)) + b"".join(varint(x) for x in runs)
    packer = zlib.compressobj(9, zlib.DEFLATED, -15)
    packed = packer.compress(bytes(payload)) + packer.flush()
    method, data = (1, packed) if len(packed) < len(payload) else (0, bytes(payload))
    return struct.pack("<B", log2 | method << 4) + varint(len(data)) + data


def read_block_maps(code: int, data: bytes, header: VideoHeader, temporal, copied, number: int):
    """The block maps of a record (per stream: None or bool (rows, cols)) and their log2 size,
    validated against the record's tiles; FormatError otherwise."""
    bad = f"frame {number}'s block maps are damaged"
    log2, method = code & 15, code >> 4
    if not BLOCK_LOG2[0] <= log2 <= BLOCK_LOG2[1] or method > 1:
        raise FormatError(bad)
    shapes = header.tile_shapes()
    n = len(shapes)
    limit = -(-n // 8) + sum(5 * (1 + np.prod(block_map_shape(h, w, log2)) + 1) for h, w in shapes)
    if method:
        unpacker = zlib.decompressobj(-15)
        try:
            payload = unpacker.decompress(data, limit)
        except zlib.error:
            raise FormatError(bad) from None
        if unpacker.unconsumed_tail or not unpacker.eof or unpacker.unused_data:
            raise FormatError(bad)
    else:
        payload = data
    r = _Reader(payload, 0, len(payload))
    try:
        has = bitmap_flags(r.raw(-(-n // 8)), n)
        group_of = [g for g, _ in stream_groups(header)]
        maps = []
        for k, (h, w) in enumerate(shapes):
            if not has[k]:
                maps.append(None)
                continue
            if not temporal[group_of[k]] or (copied and copied[k]):
                raise FormatError(f"frame {number} has a block map for a tile without a previous frame or a copied one")
            rows, cols = block_map_shape(h, w, log2)
            count = r.varint()
            if not 2 <= count <= rows * cols + 1:
                raise FormatError(bad)
            runs = [r.varint() for _ in range(count)]
            if any(x <= 0 for x in runs[1:]) or sum(runs) != rows * cols:
                raise FormatError(bad)
            flat = np.repeat(np.arange(count) % 2 == 1, runs)
            maps.append(flat.reshape(rows, cols))
    except FormatError as e:
        raise FormatError(f"{bad}: {e}" if str(e) != bad else bad) from None
    if r.pos != r.end or payload[: -(-n // 8)] != stream_bitmap(has) or not any(has):
        raise FormatError(bad)
    return tuple(maps), log2


def write_table(table: FrameTable, table_offset: int, first_offset: int) -> bytes:
    out = [TABLE_MAGIC, varint(len(table.offsets))]
    prev = first_offset
    for off, key in zip(table.offsets, table.keys):
        out += [varint(off - prev), struct.pack("<B", 1 if key else 0)]
        prev = off
    body = b"".join(out)
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF) + END.pack(table_offset, len(table.offsets), END_MAGIC)


def read_table(data: bytes, first_offset: int, file_size: int) -> FrameTable:
    """The frame table from the file's last bytes (``data``: from "ARMX" to the end)."""
    if len(data) < 4 + 4 + END.size or data[:4] != TABLE_MAGIC:
        raise FormatError("the frame table is missing or damaged (truncated file?)")
    body = data[: len(data) - END.size - 4]
    (crc,) = struct.unpack_from("<I", data, len(body))
    if zlib.crc32(body) & 0xFFFFFFFF != crc:
        raise ChecksumError("the frame table fails its CRC32: the file is corrupted")
    r = _Reader(body, 4, len(body))
    n = r.varint()
    if n > len(body):
        raise FormatError("the frame table lists more frames than it holds")
    table, prev = FrameTable(), first_offset
    for _ in range(n):
        prev += r.varint()
        (flags,) = r.take("<B")
        if prev >= file_size or flags > 1 or (table.offsets and prev <= table.offsets[-1]):
            raise FormatError("the frame table's offsets are out of order or out of the file")
        table.offsets.append(prev)
        table.keys.append(bool(flags))
    if r.pos != r.end or (n and not table.keys[0]):
        raise FormatError("the frame table is damaged (bytes left over, or the first frame is not a key frame)")
    return table


def read_frame_table(stream: BinaryIO, first_offset: int) -> tuple[FrameTable, int, int]:
    """A seekable file's frame table, checked against its end -> (table, its offset, file size)."""
    size = stream.seek(0, 2)
    table_at, count = read_end(stream, size)
    stream.seek(table_at)
    table = read_table(stream.read(size - table_at), first_offset, size)
    if len(table.offsets) != count:
        raise FormatError("the frame table's count does not match its end")
    return table, table_at, size


def read_end(stream: BinaryIO, file_size: int) -> tuple[int, int]:
    """(offset of the frame table, frame count) from a seekable file's last 16 bytes."""
    if file_size < END.size:
        raise FormatError("file is truncated")
    stream.seek(file_size - END.size)
    offset, count, magic = END.unpack(stream.read(END.size))
    if magic != END_MAGIC or offset >= file_size - END.size:
        raise FormatError("the file does not end with a frame table (truncated or damaged)")
    return offset, count
