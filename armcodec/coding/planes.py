"""Planes of an image <-> tile streams: what both directions share, and the decoder's side.

A *plane group* is what one model evaluation codes jointly: the RGB channels of a colour
image (g = 3), or one plane (g = 1: a grey image, or an alpha plane) that the RGB model
sees replicated into all three inputs and codes through its first channel.  Each tile of
each group is one independent ANS stream with the CRC32 of its samples.  Tiles are
processed in batches that fit ``max_batch_bytes`` (from the model's ``tile_bytes``), so memory
is bounded by tile size and batch, not by the image size.  The encoder's side is
:func:`armcodec.encoder.group.encode_group`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from armcodec.coding import feedback, tile_png
from armcodec.coding.scan import DecodeCoder, Schedule, Tile, check_crc, scan, tile_grid
from armcodec.coding.side import N_ORIENTATIONS, Adaptation, side_bits, tile_coords
from armcodec.container import CoderTools
from armcodec.errors import FormatError
from armcodec.exact import fused
from armcodec.exact.tables import TableLUTs

DEFAULT_BATCH_BYTES = 2560 << 20  # three of default's 512x512 tiles encode side by side, 25 decode


@dataclass
class CodedGroup:
    streams: list[bytes]
    crcs: list[int] | None  # per tile: CRC32 of its stream index and samples; None: checked by the caller (a video frame's one CRC)
    model_bits: float
    classic: list[bool] | None = None  # per tile: its stream is a PNG zlib stream (coder tool 4), not ANS
    copied: list[bool] | None = None  # per tile: equal to the previous frame's (moved) samples there, no stream (video)
    blocks: list[np.ndarray | None] | None = None  # per tile: its copied blocks (bool (rows, cols)) or None (video)
    block_log2: int = 3  # their size: 2**block_log2 samples a side
    mix: list[int] | None = None  # per tile: its index in the previous-frame predictor's mixture (video, 0.13); None: the model alone


def known_pixels(maps: list[np.ndarray | None], sched: Schedule, log2: int) -> np.ndarray | None:
    """bool (pixels in schedule order,): the pixels inside the copied blocks of their tile
    (``maps``: per tile of the batch, bool (rows, cols) or None), which the decoder takes from the
    previous frame and no stream codes; None when no tile has any."""
    if all(m is None for m in maps):
        return None
    known = np.zeros(len(sched.n), bool)
    for k, m in enumerate(maps):
        if m is not None:
            mine = sched.n == k
            known[mine] = m[sched.i[mine] >> log2, sched.j[mine] >> log2]
    return known


def tile_batches(tiles: list[Tile], model, tile: int, max_batch_bytes: int, decoding: bool = False) -> list[list[int]]:
    """Tiles in batches whose memory (the model's ``tile_bytes`` per tile) fits ``max_batch_bytes``:
    as few as fit, of about equal counts (60 tiles where 51 fit: 30 and 30, not 51 and 9; a batch
    takes as many wavefront steps whatever its size, and its peak memory follows its count)."""
    most = max(1, max_batch_bytes // model.tile_bytes(tile, decoding))
    batches = -(-len(tiles) // most)
    idx = list(range(len(tiles)))
    return [idx[len(idx) * k // batches : len(idx) * (k + 1) // batches] for k in range(batches)]


def image_coords(tiles: list[Tile], sched: Schedule, orientations: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Image row and column of every pixel of the schedule (coded in each tile's orientation)."""
    n = sched.n
    i, j = sched.i, sched.j
    if orientations is not None:
        h, w = np.array([t.h for t in tiles])[n], np.array([t.w for t in tiles])[n]
        i, j = tile_coords(orientations[n], h, w, i, j)
    return np.array([t.y for t in tiles])[n] + i, np.array([t.x for t in tiles])[n] + j


def new_feedback(tiles: list[Tile], sched: Schedule, g: int, model, tile: int, device, features: int) -> feedback.Feedback:
    """An empty residual map (coefficients zero) for the batch, in coded coordinates."""
    if features >= 2 and not feedback.usable(model.precedes):
        raise FormatError(f"the file asks for residual feedback, which its model ({model.architecture}) cannot use "
                          "(corrupted file)")
    nb = feedback.neighbours(model.precedes)
    width = feedback.n_features(len(nb), g - 1, g, features)
    coefs = torch.zeros((len(tiles) * feedback.sets_per_tile(features), g, width), dtype=torch.int64)
    return feedback.Feedback(coefs, sched.n, sched.i, sched.j, tile, nb, device, features)


def tile_samples(planes: np.ndarray, t: Tile) -> np.ndarray:
    return planes[t.y : t.y + t.h, t.x : t.x + t.w]


@dataclass
class GroupJob:
    """One plane group of one image for :func:`decode_groups`: its streams, coded size, channels
    and the file index of its first stream (which seeds the tile CRCs); ``context``: the previous
    frame's planes of the group (uint8 (H, W, channels)) for the temporal model, or None."""

    group: CodedGroup
    height: int
    width: int
    channels: int
    first_stream: int = 0
    context: np.ndarray | None = None


def _check_tile(out: np.ndarray, t: Tile, job: GroupJob, k: int) -> None:
    if job.group.crcs is not None:
        check_crc(tile_samples(out, t), job.first_stream + k, job.group.crcs[k], f"stream {job.first_stream + k}")


def decode_groups(jobs: list[GroupJob], model, luts: TableLUTs, tile: int, device, tools: CoderTools,
                  max_batch_bytes: int = DEFAULT_BATCH_BYTES, progress=None, workers=None) -> list[tuple[np.ndarray, float]]:
    """Inverse of encode_group for plane groups (of one image or of many) that share the model,
    nominal tile size, coder tools (``tools``: the files') and channel count; checks every CRC.
    Their tiles are decoded in common batches, so every wavefront step serves the tiles of all of
    them (larger products, the same number of steps).  Each tile is an independent stream, so every
    output is what decoding its job alone gives.  -> [(uint8 (H, W, channels), model bits)] in the
    order of ``jobs``.  ``workers``: a :class:`armcodec.coding.workers.DecodeWorkers` for this
    model, which decodes part of the tiles in other processes (the same outputs)."""
    if len({job.channels for job in jobs}) > 1:
        raise ValueError("decode_groups: the jobs' plane groups must have the same channel count")
    fused.prepare(sum(job.height * job.width * job.channels for job in jobs))
    outs = [np.zeros((job.height, job.width, job.channels), dtype=np.uint8) for job in jobs]
    bits = [0.0] * len(jobs)
    todo, todo_mixed = [], []  # (job, tile index in its group, tile) of every modelled tile: the model's, the mixture's
    for j, job in enumerate(jobs):
        tiles = tile_grid(job.height, job.width, tile)
        classic = job.group.classic or [False] * len(tiles)
        copied = job.group.copied or [False] * len(tiles)
        for k, t in enumerate(tiles):
            if copied[k]:  # the previous frame's samples (moved), checked by the tile's CRC
                if job.context is None:
                    raise FormatError(f"stream {job.first_stream + k} is a copy of a previous frame that is not there")
                outs[j][t.y : t.y + t.h, t.x : t.x + t.w] = tile_samples(job.context, t)
                _check_tile(outs[j], t, job, k)
                continue
            if job.group.mix is not None:
                if job.context is None or classic[k]:
                    raise FormatError(f"stream {job.first_stream + k} is coded by the previous-frame predictor's mixture, "
                                      "which needs a previous frame")
                todo_mixed.append((j, k, t))
                continue
            if not classic[k]:
                todo.append((j, k, t))
                continue
            out = outs[j]  # a PNG zlib stream (coder tool 4): no model
            out[t.y : t.y + t.h, t.x : t.x + t.w] = tile_png.decode(job.group.streams[k], t.w, t.h, job.channels)
            _check_tile(out, t, job, k)
            bits[j] += 8.0 * len(job.group.streams[k])
            if progress:
                progress(1)
    with_context = [job.context is not None for job in jobs]
    if any(with_context) and not all(with_context):
        raise ValueError("decode_groups: either every job has a previous frame or none has")
    for part in (todo, todo_mixed):  # a batch is the model's tiles or the mixture's (decode_tiles)
        if not part:
            continue
        if workers is not None:
            workers.decode(jobs, part, outs, bits, tile, tools, max_batch_bytes, progress)
        else:
            decode_tiles(jobs, part, outs, bits, model, luts, tile, device, tools, max_batch_bytes, progress)
    return list(zip(outs, bits))


def decode_tiles(jobs: list[GroupJob], todo: list[tuple[int, int, Tile]], outs: list[np.ndarray], bits: list[float],
                 model, luts: TableLUTs, tile: int, device, tools: CoderTools, max_batch_bytes: int,
                 progress=None) -> None:
    """The modelled tiles ``todo`` ((job, tile index in its group, tile) each) of :func:`decode_groups`'
    jobs, in batches: their samples into ``outs``, their bits added to ``bits`` (per job).  Tiles of
    groups with mixture indices are decoded by ``model``'s mixture with the previous-frame
    predictor (:class:`armcodec.models.previous_frame_exact.PredictorMixture`): every tile of ``todo``
    or none."""
    channels = jobs[0].channels if jobs else 0
    mixed = {jobs[j].group.mix is not None for j, _, _ in todo}
    if len(mixed) > 1:
        raise ValueError("decode_tiles: the tiles of a call are all the mixture's or none")
    if mixed == {True}:
        from armcodec.models.previous_frame_exact import PredictorMixture

        model = PredictorMixture(model)
    with_context = any(job.context is not None for job in jobs)
    for batch in tile_batches([t for _, _, t in todo], model, tile, max_batch_bytes, decoding=True):
        batch = [todo[b] for b in batch]
        bt = [t for _, _, t in batch]
        sched = Schedule(bt, model, tile)
        blocks = Adaptation.blocks(bt, sched.n, sched.i, sched.j) if tools.adaptation else None
        fb = new_feedback(bt, sched, channels, model, tile, device, tools.feedback) if tools.feedback else None
        known = None
        maps = [jobs[j].group.blocks[k] if jobs[j].group.blocks else None for j, k, _ in batch]
        if any(m is not None for m in maps):  # copied blocks: the previous frame's (moved) samples
            if tools.orientation:
                raise FormatError("copied blocks in a file whose tiles are coded mirrored (corrupted file)")
            sizes = {jobs[j].group.block_log2 for (j, _, _), m in zip(batch, maps) if m is not None}
            if len(sizes) > 1:
                raise ValueError("decode_groups: the jobs' copied blocks must have one size")
            mask = known_pixels(maps, sched, sizes.pop())
            ys, xs = image_coords(bt, sched, None)
            owner = np.array([j for j, _, _ in batch])[sched.n]
            vals = np.zeros((len(mask), channels), np.int64)
            for j in sorted(set(owner[mask].tolist())):
                if jobs[j].context is None:
                    raise FormatError(f"stream {jobs[j].first_stream} has copied blocks and no previous frame")
                at = mask & (owner == j)
                vals[at] = jobs[j].context[ys[at], xs[at]]
            known = (mask, vals)
        coder = DecodeCoder([jobs[j].group.streams[k] for j, k, _ in batch], device, channels, blocks, tools.orientation, fb,
                            n_pixels=len(sched.n), known=known)
        for n, (j, _, _) in enumerate(batch):  # the side information, per tile
            bits[j] += side_bits(blocks[1][n] * channels) if blocks is not None else 0.0
            bits[j] += side_bits(1, N_ORIENTATIONS) if blocks is not None and tools.orientation else 0.0
            bits[j] += fb.tile_side_bits(n) if fb is not None else 0.0
        extra = {}
        if with_context:  # each tile's job's previous frame
            used = sorted({j for j, _, _ in batch})
            which = np.searchsorted(used, np.array([j for j, _, _ in batch])[sched.n])
            extra = {"context": ([jobs[j].context for j in used], *image_coords(bt, sched, None), which)}
        if mixed == {True}:
            extra["mix"] = np.array([jobs[j].group.mix[k] for j, k, _ in batch], np.int64)
        source = model.decoder_steps(bt, sched, tile, device, channels, **extra)
        tile_bits = scan(sched, source, coder, channels, model.cfg, luts, fb, binned=tools.binned)
        coder.check_exhausted()
        ys, xs = image_coords(bt, sched, coder.adaptation.orientations if coder.adaptation else None)
        values = coder.values.cpu().numpy().astype(np.uint8)
        owners = sorted({j for j, _, _ in batch})
        owner = np.array([j for j, _, _ in batch])[sched.n] if len(owners) > 1 else None  # each pixel's job
        for j in owners:
            mine = slice(None) if owner is None else owner == j  # the tiles of one image: every pixel
            outs[j][ys[mine], xs[mine]] = values[mine]
        for n, (j, k, t) in enumerate(batch):
            _check_tile(outs[j], t, jobs[j], k)
            bits[j] += float(tile_bits[n])
        if progress:
            progress(len(batch))
