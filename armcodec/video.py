"""Video: frame sequences -> a video ``.arm`` file and back, frame by frame.

Data flow::

    encode: VideoSource (armcodec.io.frames) -> per frame, per plane group: encode_group(group,
            context = the previous frame's same group, None on a key frame) -> FrameRecord
            -> container_video (header, records, frame table) -> output stream
    decode: stream -> container_video (validated header, then record by record) -> decode_groups
            (same context) -> VideoFrame -> sink (Y4M, PNG frames, FFV1)

Every frame's groups are coded by the preset's model, which sees the previous decoded frame when
it takes one (``uses_context``: the temporal model; an image preset codes every frame alone); the
first frame and every ``key_interval``-th are key frames, coded without it, so decoding can start
there.  The encoder holds the previous frame and the current one; the decoder the same.
"""
from __future__ import annotations

import dataclasses
import functools
import time
import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator

import numpy as np

from armcodec import allocator
from armcodec import container_video as cv
from armcodec.api import Codec
from armcodec.coding import classic, motion
from armcodec.coding.planes import CodedGroup, GroupJob, decode_groups, tile_samples
from armcodec.coding.scan import tile_grid
from armcodec.coding.workers import DecodeWorkers
from armcodec.container import CoderTools
from armcodec.encoder import motion as motion_search
from armcodec.encoder.group import encode_group
from armcodec.encoder.mixture import choose as choose_mixture
from armcodec.errors import ChecksumError, FormatError, LimitError, ModelError
from armcodec.exact import fused
from armcodec.io.frames import VideoFrame, VideoSource, describe_source
from armcodec.models.previous_frame_exact import PredictorMixture

VIDEO_PRESET = "video"
VIDEO_BATCH_BYTES = 1 << 29  # 512 MiB (1 GiB until 0.17.1; docs/DESIGN.md, video streams)
DEFAULT_KEY_INTERVAL = 60
BLOCK_LOG2_DEFAULT = 3  # copied blocks of 8x8 samples unless another size pays more
COPY_SAMPLE_BITS = 2.0  # what the encoder assumes a copied sample would cost coded (its block size choice)


@dataclass
class FrameStats:
    number: int
    key: bool
    bytes: int
    model_bits: float
    seconds: float


@dataclass
class VideoStats:
    """What an encode wrote: frames, bytes, the model's bits, samples per frame."""

    frames: int = 0
    bytes: int = 0
    model_bits: float = 0.0
    samples_per_frame: int = 0
    seconds: float = 0.0

    @property
    def bpsp(self) -> float:
        return 8 * self.bytes / max(1, self.frames * self.samples_per_frame)

    @property
    def model_bpsp(self) -> float:
        return self.model_bits / max(1, self.frames * self.samples_per_frame)


class VideoCodec:
    """Codes frame sequences with a preset's model (default ``video``: the temporal PixelCNN; a
    preset may name other weights for frames of grey planes, :meth:`codec_for`).
    ``key_interval``: a key frame every that many frames (random access, ``frames=`` in
    :meth:`decode`).  The coder tools: the adaptation (``adaptive``) and, with it, the residual
    feedback (``feedback``, the image coder's: about 0.7% smaller, encode 20% slower).  ``intra_check``: also
    code each plane group of a frame without the previous frame and keep the smaller (scene cuts,
    fast motion; about twice the encode time of the frames between key frames).  ``motion``: move
    the previous frame by a motion vector per 16x16 block (block matching) before the model sees it.
    ``predictor`` (0.13): vectors in quarter pixels, and each grey plane coded with the previous
    frame by the model's mixture with the previous-frame predictor
    (:mod:`armcodec.models.previous_frame_exact`: the moved previous sample, as sure as its coded
    neighbours were), its weight per tile picked by the encoder (5-11% smaller files on noisy
    still or slowly moving scenes, about 20% slower decoding); off: files armcodec 0.12 reads.
    ``neighbours`` (0.14, with the predictor): a tile's index may also move each sample's
    predictor weight by which of the two did better on its coded neighbours (0.5-2% smaller);
    off: files armcodec 0.13 reads.  ``sharp`` (0.14, with the predictor; coder tool 6): the
    quarter-pixel samples by H.264's 6-tap interpolation instead of the bilinear blend (sharper on
    textures); off (with ``neighbours`` off): files armcodec 0.13 reads.  ``colour`` (0.15, with
    the predictor; coder tool 7, in the files of R, G, B frames only): R, G, B frames coded with the
    previous frame by the mixture too (each channel its own predictor component, G's and B's
    moved by the residual of the channel before); off: files armcodec 0.14 reads.
    ``classic_groups`` (0.15; coder tool 8): a frame's plane group (or two equal grey planes, U and
    V, together) may also be one lossless WebP of its samples or of its residual to the moved
    previous frame, where that is smaller (screen content, flat graphics); off (with ``colour``
    off): files armcodec 0.14 reads.
    ``long_motion`` (0.17; coder tool 9): motion vectors up to 64 pixels instead of 16, found from
    a search on frames shrunk by 4 (a shaking camera, fast motion), and sent as each vector's
    difference from its neighbours' median; off: files armcodec 0.16 reads.
    ``batch_bytes``: the memory of a batch of tiles, shared by a decode's processes (default 512
    MiB: a 1280x720 clip of any length encodes and decodes within 1.3 GiB, as fast as with 1 GiB)."""

    def __init__(self, model: str = VIDEO_PRESET, device="auto", key_interval: int = DEFAULT_KEY_INTERVAL,
                 tile_size: int | None = None, adaptive: bool = True, max_pixels: int = cv.DEFAULT_MAX_PIXELS,
                 kernel: str | None = None, weights_dir=None, intra_check: bool = True, motion: bool = True,
                 batch_bytes: int = VIDEO_BATCH_BYTES, feedback: bool = True, copy_blocks: bool = True,
                 binned: bool = True, predictor: bool = True, neighbours: bool = True, sharp: bool = True,
                 colour: bool = True, classic_groups: bool = True, long_motion: bool = True):
        if key_interval < 1:
            raise ValueError("the key interval is at least 1")
        def make(name: str, tile: int | None) -> Codec:
            return Codec(name, device, tile, weights_dir=weights_dir, adaptive=adaptive, orient=False,
                         feedback=feedback, classic=False, kernel=kernel, batch_bytes=batch_bytes, binned=binned)

        self._make = make
        self.codec = self._preset_codec = make(model, tile_size)
        planes = self.codec.preset.planes  # in the preset's tile size
        self._planes_codec = make(planes.name, self.codec.tile_size) if planes not in (None, self.codec.preset.weights) else None
        self._other_codecs: dict[str, Codec] = {}  # other installed weights, for files they wrote (_check_weights)
        self.key_interval, self.max_pixels = key_interval, max_pixels
        self.tools = CoderTools(adaptive, feedback=self.codec.tools.feedback, binned=binned, sharp_motion=predictor and sharp,
                                colour_mixture=predictor and colour, classic_groups=classic_groups,
                                long_motion=long_motion)
        self.intra_check, self.motion, self.copy_blocks = intra_check, motion, copy_blocks
        self.predictor, self.neighbours = predictor, neighbours

    def codec_for(self, groups) -> Codec:
        """The codec for frames of these plane groups ((width, height, channels) each): the
        preset's planes weights (trained on grey planes) when every group is one plane and the
        preset names them, else the preset's own.  ``encode`` switches to it."""
        if self._planes_codec is not None and all(ch == 1 for _, _, ch in groups):
            return self._planes_codec
        return self._preset_codec

    @property
    def temporal(self) -> bool:
        return bool(getattr(self.codec.model.net, "uses_context", False))

    # --- encode ---------------------------------------------------------------------------
    def encode(self, source: VideoSource, out: BinaryIO, progress=None) -> VideoStats:
        """Code every frame of ``source`` into ``out`` (written as it goes; a seekable file is not
        needed).  ``progress(FrameStats)`` after each frame."""
        c = self.codec = self.codec_for(source.groups)
        fused.prepare(fused.MIN_SAMPLES)  # a clip: many frames (each alone may be below the size)
        if source.width * source.height > self.max_pixels:
            raise LimitError(f"frames of {source.width}x{source.height} pixels exceed the limit of {self.max_pixels}")
        colour = self.tools.colour_mixture and any(ch > 1 for _, _, ch in source.groups)  # tool 7 where it is used
        header = cv.VideoHeader(source.kind, source.width, source.height, list(source.groups), self.key_interval,
                                c.tile_size, c.model.entry.name, c.model.sha256_prefix,
                                dataclasses.replace(self.tools, colour_mixture=colour), source.description)
        with c._coding():
            head = cv.write_header(header)
            out.write(head)
            pos = first = len(head)
            table = cv.FrameTable()
            stats = VideoStats(samples_per_frame=sum(w * h * ch for w, h, ch in source.groups))
            prev = None
            t_all = time.perf_counter()
            for number, frame in enumerate(source.frames):
                t0 = time.perf_counter()
                if [g.shape for g in frame.groups] != [(h, w, ch) for w, h, ch in source.groups]:
                    raise FormatError(f"frame {number} does not have the first frame's planes")
                key = number % self.key_interval == 0 or not self.temporal
                rec, bits = self.encode_frame(frame, number, None if key else prev)
                key = rec.key
                data = cv.write_record(rec)
                out.write(data)
                table.offsets.append(pos)
                table.keys.append(key)
                pos += len(data)
                stats.frames += 1
                stats.model_bits += bits
                prev = frame
                allocator.release()
                if progress:
                    progress(FrameStats(number, key, len(data), bits, time.perf_counter() - t0))
            if not stats.frames:
                raise FormatError(f"{source.name or 'the input'} holds no frames")
            tail = cv.write_table(table, pos, first)
            out.write(tail)
            stats.bytes = pos + len(tail)
            stats.seconds = time.perf_counter() - t_all
        return stats

    def encode_frame(self, frame: VideoFrame, number: int, prev: VideoFrame | None) -> tuple[cv.FrameRecord, float]:
        """Each plane group with the previous frame (when given: moved by the motion vectors the
        block search picks, refined to quarter pixels with the predictor on; the tiles and blocks
        equal to it there copied; a grey plane by the weights' mixture with the previous-frame
        predictor, a mixture index per tile) and, unless ``intra_check`` is off, also without it,
        keeping the smaller (encoder-only: the record's flags, motion field, copy map, block maps
        and mixture indices say which)."""
        c = self.codec
        m = c.model
        groups = [np.ascontiguousarray(g) for g in frame.groups]
        quarter = prev is not None and self.predictor and len(groups) <= 4  # vectors in quarter pixels
        indices = cv.MIX_CODES if self.neighbours else cv.N_MIX  # 0.14's indices, or 0.13's
        mixture = PredictorMixture(m.net, functools.partial(choose_mixture, cfg=m.net.cfg, luts=m.luts, indices=indices)) if quarter else None
        moved = [None] * len(groups)  # per group: (the moved previous frame, motion field, H.264's quarter samples)
        for ks in _same_size(groups) if prev is not None else ():  # the groups of one size share their vectors
            cur = np.concatenate([groups[k] for k in ks], 2)
            before = np.concatenate([prev.groups[k] for k in ks], 2)
            reach = motion.MAX_LONG_VECTOR if self.tools.long_motion else motion.MAX_VECTOR
            ctx, field, sharp = motion_search.moved_previous(cur, before, self.motion, quarter, self.tools.sharp_motion,
                                                             reach)
            at = 0
            for k in ks:
                ch = groups[k].shape[2]
                moved[k] = (np.ascontiguousarray(ctx[:, :, at : at + ch]), field, sharp)
                at += ch
        log2 = BLOCK_LOG2_DEFAULT
        if prev is not None and self.copy_blocks:
            log2 = copy_block_size(groups, [ctx for ctx, _, _ in moved], c.tile_size)
        chosen, first = [], 0  # per group: (bytes, CodedGroup, uses the previous frame, (classic code, WebP length))
        for g, with_prev in zip(groups, moved):
            def code(net, ctx):
                tiles, maps = copied_blocks(g, ctx, c.tile_size, log2) if ctx is not None else (None, None)
                maps = maps if self.copy_blocks else None  # without block maps: whole tiles only (0.5)
                return encode_group(g, net, m.luts, c.tile_size, c.device, self.tools, first_stream=first,
                                    max_batch_bytes=c.batch_bytes, context=ctx, copied=tiles, copied_blocks=maps,
                                    block_log2=log2)

            coded = []  # (bytes, group, uses the previous frame, (classic code, WebP length))
            if with_prev is not None:
                if mixture is not None and (g.shape[2] == 1 or self.tools.colour_mixture):
                    mixture.choices = {}
                    group = code(mixture, with_prev[0])
                    group.mix = [mixture.choices.get((t.y, t.x), 0) for t in tile_grid(*g.shape[:2], c.tile_size)]
                else:
                    group = code(m.net, with_prev[0])
                coded.append((group_bytes(group, log2), group, True, (0, 0)))
            if with_prev is None or self.intra_check:
                group = code(m.net, None)
                coded.append((group_bytes(group, log2), group, False, (0, 0)))
            n = len(tile_grid(*g.shape[:2], c.tile_size))
            if self.tools.classic_groups:  # one lossless WebP (screen content, flat graphics): the whole group
                tries = [(classic.GROUP_SAMPLES, None)] + ([(classic.GROUP_RESIDUAL, with_prev[0])] if with_prev else [])
                coded += [classic_group(classic.group_payload(g, ctx), n, how, ctx is not None) for how, ctx in tries]
            chosen.append(min(coded, key=lambda x: x[0]))
            first += n
        if self.tools.classic_groups:  # two equal grey planes (U and V) as one WebP, where smaller
            for k in range(len(groups) - 1):
                a, b = groups[k], groups[k + 1]
                if a.shape != b.shape or a.shape[2] != 1 or chosen[k][3][0] == classic.IN_PAIR:
                    continue
                tries = [(classic.PAIR_SAMPLES, None)]
                if moved[k] is not None and moved[k + 1] is not None:
                    tries.append((classic.PAIR_RESIDUAL, (moved[k][0], moved[k + 1][0])))
                n = len(tile_grid(*a.shape[:2], c.tile_size))
                pair = min((classic_group(classic.pair_payload(a, b, ctx), n, how, ctx is not None) for how, ctx in tries),
                           key=lambda x: x[0])
                if pair[0] < chosen[k][0] + chosen[k + 1][0]:
                    chosen[k] = pair
                    chosen[k + 1] = (0, CodedGroup([b""] * n, None, 0.0), pair[2], (classic.IN_PAIR, 0))
        streams, bits, temporal, fields, sharps, copied, blocks, mix = [], 0.0, [], [], [], [], [], []
        for g, with_prev, (_, best, uses_prev, how) in zip(groups, moved, chosen):
            streams += best.streams
            bits += best.model_bits
            copied += best.copied or [False] * len(best.streams)
            blocks += best.blocks or [None] * len(best.streams)
            if best.mix:  # the record lists the indices of the tiles that are not copied
                mix += [v for v, cp in zip(best.mix, best.copied or [False] * len(best.mix)) if not cp]
            temporal.append(uses_prev)
            if uses_prev:
                field = with_prev[1]
                fields.append(field if field is not None else np.zeros((*motion.block_grid(*g.shape[:2]), 2), np.int64))
                sharps.append(with_prev[2])
        classic_codes = [how for _, _, _, how in chosen]
        packed = motion.pack(fields, sharps if quarter and self.tools.sharp_motion else None, self.tools.long_motion)
        bits += 8 * len(packed)
        has_maps = any(b is not None for b in blocks)
        bits += 8 * len(cv.write_block_maps(blocks, log2)) if has_maps else 0
        quarter = quarter and any(temporal)
        return cv.FrameRecord(tuple(temporal), number, frame.extra, streams, [], packed, frame_crc(frame.groups),
                              tuple(copied) if any(copied) else (), tuple(blocks) if has_maps else (), log2,
                              quarter, tuple(mix), tuple(classic_codes) if self.tools.classic_groups else ()), bits

    # --- decode ---------------------------------------------------------------------------
    def open(self, stream: BinaryIO) -> cv.VideoHeader:
        """Read and check a video file's header (and that this codec's weights are its)."""
        header = cv.read_header(stream, self.max_pixels)
        self._check_weights(header)
        return header

    def _check_weights(self, header: cv.VideoHeader) -> None:
        """That the file's weights are this codec's (the preset's own or its planes weights) or
        other installed weights (those of an earlier release's preset: as the image codec, a file
        decodes with whatever installed weights wrote it); the codec switches to them, else a
        ModelError."""
        for c in (self._preset_codec, self._planes_codec, *self._other_codecs.values()):
            if c is not None and c.model.sha256_prefix == header.weights_sha256 and c.model.entry.answers_to(header.model):
                self.codec = c
                return
        entry = self._preset_codec.manifest.by_prefix(header.weights_sha256)
        if entry is not None and entry.answers_to(header.model):
            self.codec = self._other_codecs[entry.name] = self._make(entry.name, header.tile)
            return
        m = self.codec.model
        raise ModelError(f"the file was written with weights {header.model!r} {header.weights_sha256.hex()}, "
                         f"this codec has {m.entry.name!r} {m.sha256_prefix.hex()}")

    def decode(self, stream: BinaryIO, header: cv.VideoHeader, frames: slice | None = None,
               seekable: bool = False) -> Iterator[tuple[int, VideoFrame, float]]:
        """Frames of the file after its header: (number, frame, model bits), in order.
        ``frames``: a range (``slice(a, b)``, 0-based, end excluded): with a seekable file the
        decoding starts at the key frame at or before ``a`` (the frame table), else at the start."""
        start, stop = (frames.start or 0, frames.stop) if frames is not None else (0, None)
        first = header.size
        if seekable:
            table, table_at, _ = cv.read_frame_table(stream, first)
            count = len(table.offsets)
            key = max([k for k in range(min(start, count - 1) + 1) if table.keys[k]] or [0]) if count else 0
            stream.seek(table.offsets[key] if count else first)
            number, pos, end = key, table.offsets[key] if count else first, table_at
        else:
            number, pos, end = 0, first, None
        prev = None
        c = self.codec
        frame = [(h, w, ch) for w, h, ch in header.planes]  # (for_decode starts the fused kernels: a clip)
        with c._coding(), DecodeWorkers.for_decode(frame, header.tile, c.model.net, c.model.luts, c.device,
                                                   clip=True) as workers:
            while stop is None or number < stop:
                rec = cv.read_record(stream, header, pos, None if end is None else end - pos)
                if rec is None:  # the frame table: read from a pipe, it is checked here
                    if end is None:
                        self._check_table(cv.TABLE_MAGIC + stream.read(cv.max_table_bytes(number)), pos, number, first)
                    break
                if rec.number != number:
                    raise FormatError(f"frame record {number} is numbered {rec.number} (damaged file)")
                if not rec.key and prev is None:  # (the table's first frame is a key frame)
                    raise FormatError(f"frame {number} needs the frame before it, and no key frame came before "
                                      "(damaged file)")
                frame, bits = self.decode_frame(header, rec, prev, workers)
                pos += rec.size
                allocator.release()
                if number >= start:
                    yield number, frame, bits
                prev = frame
                number += 1
            else:
                return
        if end is not None and pos != end:
            raise FormatError("the frame records do not end where the frame table begins (damaged file)")

    @staticmethod
    def _check_table(data: bytes, at: int, frames: int, first: int) -> None:
        """A streamed file's frame table: intact, at ``at``, listing the ``frames`` records read."""
        table = cv.read_table(data, first, at + len(data))
        offset, count, _ = cv.END.unpack(data[-cv.END.size :])
        if offset != at or count != frames or len(table.offsets) != frames:
            raise FormatError("the frame table does not match the frames read (damaged or truncated file)")

    def decode_frame(self, header: cv.VideoHeader, rec: cv.FrameRecord, prev: VideoFrame | None,
                     workers: DecodeWorkers | None = None) -> tuple[VideoFrame, float]:
        c = self.codec
        m = c.model
        jobs, k = [], 0
        used = [g for g, t in enumerate(rec.temporal) if t]
        unit = motion.QUARTER if rec.quarter else 1
        # the mixture index of each stream that has one (the grey groups coded with the previous frame)
        mix = dict(zip(cv.mixed_streams(header, rec.temporal, rec.copied, rec.classic), rec.mix)) if rec.quarter else {}
        fields, sharp = motion.unpack(rec.motion, [motion.block_grid(header.planes[g][1], header.planes[g][0]) for g in used],
                                      [unit] * len(used), sharp=header.tools.sharp_motion and rec.quarter,
                                      long=header.tools.long_motion)
        fields, sharp = dict(zip(used, fields)), dict(zip(used, sharp))
        out: list = [None] * len(header.planes)
        bits = 8.0 * len(rec.motion)
        contexts = [motion.compensate(prev.groups[g], fields[g], unit=unit, sharp=sharp[g]) if t else None
                    for g, t in enumerate(rec.temporal)]  # each group's moved previous frame, once
        for g, ((w, h, ch), n) in enumerate(zip(header.planes, header.plane_streams())):
            context = contexts[g]
            code, length = rec.classic[g] if rec.classic else (0, 0)
            if code:  # one lossless WebP (coder tool 8); a pair's second plane is in the first's
                if code in classic.PAIR_CODES:
                    moved = (context, contexts[g + 1]) if code == classic.PAIR_RESIDUAL else None
                    out[g], out[g + 1] = classic.pair_samples(code, rec.streams[k][:length], w, h, moved)
                elif code != classic.IN_PAIR:
                    out[g] = classic.group_samples(code, rec.streams[k][:length], w, h, ch, context)
                bits += 8.0 * length
                jobs.append(None)
                k += n
                continue
            crcs = rec.crcs[k : k + n] if rec.frame_crc is None else None  # the compact table: one CRC for the frame
            group = CodedGroup(rec.streams[k : k + n], crcs, 0.0, copied=list(rec.copied[k : k + n]) or None,
                               blocks=list(rec.blocks[k : k + n]) or None, block_log2=rec.block_log2,
                               mix=[mix.get(s, 0) for s in range(k, k + n)]
                               if rec.quarter and rec.temporal[g] and cv.mixed_group(header, g) else None)
            jobs.append(GroupJob(group, h, w, ch, k, context))
            k += n
        for ch, ctx in sorted({(j.channels, j.context is not None) for j in jobs if j is not None}):  # as many in one scan as can be
            idx = [i for i, j in enumerate(jobs) if j is not None and j.channels == ch and (j.context is not None) == ctx]
            for i, (arr, b) in zip(idx, decode_groups([jobs[i] for i in idx], m.net, m.luts, header.tile, c.device, header.tools,
                                                      max_batch_bytes=c.batch_bytes, workers=workers)):
                out[i] = arr
                bits += b
        if rec.frame_crc is not None and frame_crc(out) != rec.frame_crc:
            raise ChecksumError(f"frame {rec.number} fails its CRC32: the file is corrupted")
        return VideoFrame(out, rec.extra), bits


def classic_group(payload: bytes, tiles: int, how: int, uses_prev: bool) -> tuple:
    """A plane group (or a pair's first) as one WebP, as the encoder compares it: (bytes in the record,
    the group's streams: the WebP zero-padded to a multiple of 4 and empty ones, uses the previous
    frame, (classic code, WebP length))."""
    padded = payload + bytes(-len(payload) % 4)
    return (len(padded) + len(cv.varint(len(payload))), CodedGroup([padded] + [b""] * (tiles - 1), None, 8.0 * len(payload)),
            uses_prev, (how, len(payload)))


def _same_size(groups) -> list[list[int]]:
    """The indices of the plane groups, those of one height and width together, in order of their first."""
    out: dict[tuple[int, int], list[int]] = {}
    for k, g in enumerate(groups):
        out.setdefault(g.shape[:2], []).append(k)
    return list(out.values())


def frame_crc(groups) -> int:
    """CRC32 of a frame's samples: every plane group in order, row-major (the compact stream table's)."""
    crc = 0
    for g in groups:
        crc = zlib.crc32(np.ascontiguousarray(g).data, crc)
    return crc & 0xFFFFFFFF


def copied_blocks(planes: np.ndarray, context: np.ndarray, tile: int, log2: int
                  ) -> tuple[list[bool], list[np.ndarray | None] | None]:
    """Per tile of the group: whether all of it equals the (moved) previous frame (a copied tile)
    and, for the others, the map of its blocks of ``2**log2`` samples a side that do (None where
    none does), so the decoder copies them and only the rest is coded (static backgrounds, the
    skipped blocks of a lossy source, screen content).  Encoder-only."""
    tiles, maps = [], []
    for t in tile_grid(*planes.shape[:2], tile):
        m = equal_blocks(tile_samples(planes, t), tile_samples(context, t), log2)
        tiles.append(bool(m.all()))
        maps.append(m if m.any() and not m.all() else None)
    return tiles, maps if any(m is not None for m in maps) else None


def equal_blocks(a: np.ndarray, b: np.ndarray, log2: int) -> np.ndarray:
    """bool (rows, cols): which blocks of 2**log2 samples a side (the last ones cut) are equal in
    a and b (uint8 (h, w, g) each)."""
    h, w = a.shape[:2]
    s = 1 << log2
    rows, cols = cv.block_map_shape(h, w, log2)
    diff = np.zeros((rows * s, cols * s), bool)
    diff[:h, :w] = (a != b).any(axis=2)
    return ~diff.reshape(rows, s, cols, s).any(axis=(1, 3))


def group_bytes(group: CodedGroup, log2: int) -> int:
    """What a coded plane group adds to its record: its streams and block maps."""
    return sum(map(len, group.streams)) + (len(cv.write_block_maps(group.blocks, log2)) if group.blocks else 0)


def copy_block_size(groups, contexts, tile: int) -> int:
    """The block size of a frame's copied-block maps (log2), picked by the encoder from the plane
    groups and their moved previous frames: the one whose copied samples, at an assumed
    :data:`COPY_SAMPLE_BITS` each, minus 8 bits per map run, pay most.  Encoder-only (the size is
    in the record)."""
    best, gain = BLOCK_LOG2_DEFAULT, None
    for log2 in range(cv.BLOCK_LOG2[0], cv.BLOCK_LOG2[1] + 1):
        g_all = 0.0
        for g, p in zip(groups, contexts):
            for t in tile_grid(*g.shape[:2], tile):
                m = equal_blocks(tile_samples(g, t), tile_samples(p, t), log2)
                if m.any() and not m.all():
                    flat = m.ravel()
                    g_all += COPY_SAMPLE_BITS * int(m.sum()) * (1 << 2 * log2) * g.shape[2] - 8 * (1 + int((flat[1:] != flat[:-1]).sum()))
        if gain is None or g_all > gain:
            best, gain = log2, g_all
    return best


def read_info(stream: BinaryIO, seekable: bool = True) -> dict:
    """A video file's validated header and, from its frame table, frames and key frames."""
    header = cv.read_header(stream, 1 << 62)
    info = {**header.describe(), **describe_source(header.source, header.description)}
    if seekable:
        table, _, size = cv.read_frame_table(stream, header.size)
        info.update(frames=len(table.offsets), key_frames=sum(table.keys), bytes=size)
    return info
