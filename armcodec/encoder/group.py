"""Encoder-only: a plane group of an image -> its tile streams (the encoder's side of
:mod:`armcodec.coding.planes`).

Per batch of tiles: the orientation search, one parallel model pass over every pixel, the
feedback fit and the adaptation search (all choosing what is sent), then the one scan loop pushes
every symbol with the exact tables the decoder will rebuild.
"""
from __future__ import annotations

import numpy as np
import torch

from armcodec import container_video as cv
from armcodec import threads
from armcodec.coding.planes import (DEFAULT_BATCH_BYTES, CodedGroup, image_coords, known_pixels, new_feedback,
                                    tile_batches, tile_samples)
from armcodec.coding.scan import CountingCoder, EncodeCoder, Schedule, samples_crc, scan, tile_grid
from armcodec.coding.side import N_ORIENTATIONS, Adaptation, side_bits
from armcodec.container import CoderTools
from armcodec.encoder import feedback_fit
from armcodec.encoder.search import choose_orientations, choose_shifts, estimate_bits
from armcodec.exact import fused
from armcodec.exact.tables import TableLUTs

SPAN_PIXELS = 1 << 13  # pixels per table-building call of the encoder's scan (its temporaries: ~1 KiB each)


def encode_group(planes: np.ndarray, model, luts: TableLUTs, tile: int, device, tools: CoderTools,
                 first_stream: int = 0, max_batch_bytes: int = DEFAULT_BATCH_BYTES, progress=None,
                 orient_proxy=None, count_only: bool = False, context: np.ndarray | None = None,
                 copied: list[bool] | None = None, copied_blocks: list[np.ndarray | None] | None = None,
                 block_log2: int = 3) -> CodedGroup:
    """planes: uint8 (H, W, g), g in (1, model channels); tools: the coder tools to use;
    first_stream: the file index of the group's first tile stream (it seeds the tile CRCs);
    orient_proxy: the float network that picks each tile's orientation (default: the model's own
    ``float_proxy()``; any network with the model's image channels will do, the decoder never sees it);
    count_only: the model's bits (and the side information's) without ANS: no streams;
    context: the previous frame's planes of this group, uint8 (H, W, g), for a model that takes them
    (``uses_context``: the temporal model), None for an image or a key frame; copied: per tile,
    whether the decoder takes it from ``context`` as it is (not coded: no stream, no bits);
    copied_blocks: per tile, None or bool (rows, cols) of its blocks of ``2**block_log2`` samples a
    side that the decoder takes from ``context`` (not coded: no bits)."""
    if context is not None and not getattr(model, "uses_context", False):
        raise ValueError(f"a {model.architecture} model takes no previous frame")
    if copied_blocks and any(m is not None for m in copied_blocks) and context is None:
        raise ValueError("blocks copied from a previous frame need the previous frame")
    if copied and any(copied) and context is None:
        raise ValueError("tiles copied from a previous frame need the previous frame")
    if context is not None and tools.orientation:
        raise ValueError("a frame coded with its previous frame is coded unmirrored (no orientation search)")
    copied_blocks = list(copied_blocks) if copied_blocks else None  # (tiles whose map does not pay are dropped)
    h, w, g = planes.shape
    fused.prepare(h * w * g)
    tiles = tile_grid(h, w, tile)
    streams: list[bytes] = [b""] * len(tiles)
    bits = 0.0
    todo = [k for k in range(len(tiles)) if not (copied and copied[k])]
    for batch in tile_batches([tiles[k] for k in todo], model, tile, max_batch_bytes):
        batch = [todo[b] for b in batch]
        bt = [tiles[k] for k in batch]
        sched = Schedule(bt, model, tile)
        orientations = None
        threads.poll()  # the searches' large parallel regions, like the scan's, follow the free cores
        if tools.orientation:
            proxy = orient_proxy if orient_proxy is not None else model.float_proxy()
            orientations = choose_orientations(proxy, [tile_samples(planes, t) for t in bt], device)
            bits += side_bits(len(bt), N_ORIENTATIONS)
        ys, xs = image_coords(bt, sched, orientations)
        values = torch.from_numpy(planes[ys, xs].astype(np.int64)).to(device)  # (M, g)
        extra = {"context": (context, ys, xs)} if context is not None else {}
        source = model.encoder_pass(bt, sched, tile, device, values, **extra)
        known = None
        if copied_blocks and any(copied_blocks[k] is not None for k in batch):
            paying_maps(copied_blocks, batch, sched, block_log2, source.params, values, model.cfg, luts)
            known = known_pixels([copied_blocks[k] for k in batch], sched, block_log2)
        coded = None if known is None else torch.from_numpy(~known).to(device)  # the searches fit these pixels only
        adaptation = fb = mean_shifts = None
        if tools.feedback:
            threads.poll()
            fb = new_feedback(bt, sched, g, model, tile, device, tools.feedback)
            residuals, precisions = feedback_fit.all_residuals(source.params, values, model.cfg, luts)
            if coded is not None:
                precisions = precisions * coded.view(-1, 1)  # a copied pixel's residual does not weigh in the fit
            fb.fill(residuals)
            choice = feedback_fit.choose(fb, residuals, precisions, source.params, values, model.cfg, luts)
            fb.assign(choice.coefs, choice.levels, choice.scales)
            mean_shifts = feedback_fit.mean_shifts(fb, residuals)
            bits += fb.side_bits()
        if tools.adaptation:
            threads.poll()
            block_of, counts = Adaptation.blocks(bt, sched.n, sched.i, sched.j)
            block_of = torch.from_numpy(block_of).to(device)
            if coded is None:
                shifts = choose_shifts(source.params, values, block_of, sum(counts), model.cfg, luts, mean_shifts=mean_shifts)
            else:
                shifts = choose_shifts(source.params[coded], values[coded], block_of[coded], sum(counts), model.cfg, luts,
                                       mean_shifts=None if mean_shifts is None else mean_shifts[coded])
            adaptation = Adaptation(block_of, counts, shifts, orientations)
            bits += side_bits(sum(counts) * g)
        coder = CountingCoder(values, adaptation, known) if count_only else EncodeCoder(values, len(bt), adaptation, fb, known)
        bits += float(scan(sched, source, coder, g, model.cfg, luts, fb, span_pixels=SPAN_PIXELS, binned=tools.binned).sum())
        if not count_only:
            for k, data in zip(batch, coder.finish()):
                streams[k] = data
        if progress:
            progress(len(batch))
    crcs = [samples_crc(tile_samples(planes, t), first_stream + k) for k, t in enumerate(tiles)]
    has_blocks = bool(copied_blocks) and any(m is not None for m in copied_blocks)
    return CodedGroup(streams, crcs, bits, copied=list(copied) if copied and any(copied) else None,
                      blocks=list(copied_blocks) if has_blocks else None, block_log2=block_log2)


def paying_maps(maps: list, batch: list[int], sched, log2: int, params: torch.Tensor, values: torch.Tensor, cfg,
                luts: TableLUTs) -> None:
    """Encoder-only: drop (set to None in ``maps``) the block map of each tile of the batch whose
    copied pixels would cost fewer bits coded, by the model's own mixture (:func:`estimate_bits`,
    before the coder tools), than the map itself (a flat, well-predicted background)."""
    known = known_pixels([maps[k] for k in batch], sched, log2)
    if known is None:
        return
    at = torch.from_numpy(np.flatnonzero(known)).to(params.device)
    bits = sum(estimate_bits(params[at], values[at], c, cfg, luts, 0) for c in range(values.shape[1]))
    per_tile = np.bincount(sched.n[known], weights=bits.cpu().numpy(), minlength=len(batch))
    for n, k in enumerate(batch):
        if maps[k] is not None and per_tile[n] < 8 * (cv.block_map_bytes(maps[k]) + 1):
            maps[k] = None
