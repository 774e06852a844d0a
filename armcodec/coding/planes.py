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
from armcodec.exact.tables import TableLUTs

DEFAULT_BATCH_BYTES = 2560 << 20  # three of default's 512x512 tiles encode side by side, 25 decode


@dataclass
class CodedGroup:
    streams: list[bytes]
    crcs: list[int]
    model_bits: float
    classic: list[bool] | None = None  # per tile: its stream is a PNG zlib stream (coder tool 4), not ANS


def tile_batches(tiles: list[Tile], model, tile: int, max_batch_bytes: int, decoding: bool = False) -> list[list[int]]:
    """Tiles in batches whose memory (the model's ``tile_bytes`` per tile) fits ``max_batch_bytes``."""
    n = max(1, max_batch_bytes // model.tile_bytes(tile, decoding))
    idx = list(range(len(tiles)))
    return [idx[k : k + n] for k in range(0, len(idx), n)]


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
    nb = feedback.neighbours(model.precedes)
    width = feedback.n_features(len(nb), g - 1, g, features)
    coefs = torch.zeros((len(tiles) * feedback.sets_per_tile(features), g, width), dtype=torch.int64)
    return feedback.Feedback(coefs, sched.n, sched.i, sched.j, tile, nb, device, features)


def tile_samples(planes: np.ndarray, t: Tile) -> np.ndarray:
    return planes[t.y : t.y + t.h, t.x : t.x + t.w]


def decode_group(group: CodedGroup, height: int, width: int, channels: int, model, luts: TableLUTs,
                 tile: int, device, tools: CoderTools, first_stream: int = 0,
                 max_batch_bytes: int = DEFAULT_BATCH_BYTES, progress=None) -> tuple[np.ndarray, float]:
    """Inverse of encode_group: uint8 (H, W, channels) and the model bits; checks every CRC.
    ``tools``: the file's coder tools."""
    tiles = tile_grid(height, width, tile)
    out = np.zeros((height, width, channels), dtype=np.uint8)
    bits = 0.0
    classic = group.classic or [False] * len(tiles)
    for k in (k for k in range(len(tiles)) if classic[k]):  # PNG zlib streams: no model
        t = tiles[k]
        out[t.y : t.y + t.h, t.x : t.x + t.w] = tile_png.decode(group.streams[k], t.w, t.h, channels)
        check_crc(tile_samples(out, t), first_stream + k, group.crcs[k], f"stream {first_stream + k}")
        bits += 8.0 * len(group.streams[k])
        if progress:
            progress(1)
    modelled = [k for k in range(len(tiles)) if not classic[k]]
    for batch in tile_batches([tiles[k] for k in modelled], model, tile, max_batch_bytes, decoding=True):
        batch = [modelled[k] for k in batch]
        bt = [tiles[k] for k in batch]
        sched = Schedule(bt, model, tile)
        blocks = Adaptation.blocks(bt, sched.n, sched.i, sched.j) if tools.adaptation else None
        if blocks is not None:
            bits += side_bits(sum(blocks[1]) * channels) + (side_bits(len(bt), N_ORIENTATIONS) if tools.orientation else 0.0)
        fb = new_feedback(bt, sched, channels, model, tile, device, tools.feedback) if tools.feedback else None
        coder = DecodeCoder([group.streams[k] for k in batch], device, channels, blocks, tools.orientation, fb,
                            n_pixels=len(sched.n))
        if fb is not None:
            bits += fb.side_bits()
        source = model.decoder_steps(bt, sched, tile, device, channels)
        bits += scan(sched, source, coder, channels, model.cfg, luts, fb)
        coder.check_exhausted()
        ys, xs = image_coords(bt, sched, coder.adaptation.orientations if coder.adaptation else None)
        out[ys, xs] = coder.values.cpu().numpy().astype(np.uint8)
        for k in batch:
            check_crc(tile_samples(out, tiles[k]), first_stream + k, group.crcs[k], f"stream {first_stream + k}")
        if progress:
            progress(len(batch))
    return out, bits
