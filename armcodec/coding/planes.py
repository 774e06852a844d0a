"""Planes of an image -> tile streams, and back.

A *plane group* is what one model evaluation codes jointly: the RGB channels of a colour
image (g = 3), or one plane (g = 1: a grey image, or an alpha plane) that the RGB model
sees replicated into all three inputs and codes through its first channel.  Each tile of
each group is one independent ANS stream with the CRC32 of its samples.  Tiles are
processed in batches that fit ``max_batch_bytes``, so memory is bounded by tile size and
batch, not by the image size: the encoder's pass holds whole activation maps, the decoder a
ring of a few columns per tile row (:class:`~armcodec.quant.WavefrontState`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from armcodec.coding import feedback
from armcodec.coding.adapt import N_ORIENTATIONS, Adaptation, choose_orientations, choose_shifts, side_bits, tile_coords
from armcodec.coding.scan import DecodeCoder, EncodeCoder, Schedule, Tile, check_crc, samples_crc, scan, tile_grid
from armcodec.ensemble import EnsembleState, IntEnsemble
from armcodec.quant import IntPixelCNN, WavefrontState
from armcodec.tables import TableLUTs

DEFAULT_BATCH_BYTES = 2560 << 20  # three of default's 512x512 tiles encode side by side, 25 decode
ENCODE_PIXEL_BYTES = 1536
DECODE_PIXEL_BYTES = 320
Model = IntPixelCNN | IntEnsemble
State = WavefrontState | EnsembleState


@dataclass
class CodedGroup:
    streams: list[bytes]
    crcs: list[int]
    model_bits: float


def tile_batches(tiles: list[Tile], model: Model, tile: int, max_batch_bytes: int,
                 decoding: bool = False) -> list[list[int]]:
    """Tiles in batches whose memory fits ``max_batch_bytes``: the encoder holds the input and
    two residual maps of whole tiles and, per pixel, its parameters and the fit's and the
    offset search's temporaries (about 1.5 KiB); the decoder a ring of columns per tile row of
    every map and, per pixel, its schedule, values and feedback indices (about 320 bytes).  The
    per-pixel figures are peak RSS measured on kodim01 and a 1024x1024 image (README, memory)."""
    if decoding:
        per_tile = (tile + 4) * model.ring_columns * 4 * model.map_channels + tile * tile * DECODE_PIXEL_BYTES
    else:
        per_tile = (tile + 4) * (tile + 8) * 4 * model.pass_channels + tile * tile * ENCODE_PIXEL_BYTES
    n = max(1, max_batch_bytes // per_tile)
    idx = list(range(len(tiles)))
    return [idx[k : k + n] for k in range(0, len(idx), n)]


class _FullPass:
    """Encoder parameter source: one parallel pass over every pixel of the batch."""

    def __init__(self, model: Model, state: State, pos: torch.Tensor, values: torch.Tensor):
        state.write_pixels(pos, values)
        self.params = model.run(state, pos, single_pass=True).to(torch.int32)

    def __call__(self, a: int, b: int) -> torch.Tensor:
        return self.params[a:b].long()

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        pass


class _Steps:
    """Decoder parameter source: the cached model evaluated on one wavefront step (in a state with
    a ring of columns per tile row; ``last``: bool (M,), the pixels that end their tile row)."""

    def __init__(self, model: Model, state: State, pos: torch.Tensor, channels: int, last: torch.Tensor):
        self.model, self.state, self.pos, self.last = model, state, pos, last
        self.values = torch.zeros((len(pos), channels), dtype=torch.int64, device=pos.device)

    def __call__(self, a: int, b: int) -> torch.Tensor:
        p = self.pos[a:b]
        self.state.clear_right(p[self.last[a:b]])
        return self.model.run(self.state, p)

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        self.state.write_pixels(self.pos[a:b], values)
        self.values[a:b] = values


def _image_coords(tiles: list[Tile], sched: Schedule, orientations: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Image row and column of every pixel of the schedule (coded in each tile's orientation)."""
    n = sched.n
    i, j = sched.i, sched.j
    if orientations is not None:
        h, w = np.array([t.h for t in tiles])[n], np.array([t.w for t in tiles])[n]
        i, j = tile_coords(orientations[n], h, w, i, j)
    return np.array([t.y for t in tiles])[n] + i, np.array([t.x for t in tiles])[n] + j


def _feedback(tiles: list[Tile], sched: Schedule, g: int, model: Model, tile: int, device,
              features: int = 1) -> feedback.Feedback:
    """An empty residual map (coefficients zero) for the batch, in coded coordinates."""
    width = feedback.n_features(model.cfg.slope, g - 1, g, features)
    coefs = torch.zeros((len(tiles) * feedback.sets_per_tile(features), g, width), dtype=torch.int64)
    return feedback.Feedback(coefs, sched.n, sched.i, sched.j, tile, model.cfg.slope, device, features)


def _tile_samples(planes: np.ndarray, t: Tile) -> np.ndarray:
    return planes[t.y : t.y + t.h, t.x : t.x + t.w]


def encode_group(planes: np.ndarray, model: Model, luts: TableLUTs, tile: int, device, first_stream: int = 0,
                 max_batch_bytes: int = DEFAULT_BATCH_BYTES, progress=None, adaptive: bool = False,
                 oriented: bool = False, fed_back: int = 0, orient_proxy=None) -> CodedGroup:
    """planes: uint8 (H, W, g), g in (1, model channels); first_stream: the file index of the
    group's first tile stream (it seeds the tile CRCs); adaptive: choose and send scale offsets
    per 32x32 block (coder profile 2, :mod:`armcodec.coding.adapt`); oriented (with adaptive):
    also an orientation per tile (profile 3), picked by the float network ``orient_proxy``
    (default: the model's own float copy; any network with the model's image channels will do,
    the decoder never sees it); fed_back (with adaptive): also residual feedback
    coefficients per tile and channel with this feature set (1: profiles 4 and 5, 2: profiles 6
    and 7, :mod:`armcodec.coding.feedback`; 0: none)."""
    h, w, g = planes.shape
    fed_back = int(fed_back) if adaptive else 0  # the feature set (True reads as the first)
    tiles = tile_grid(h, w, tile)
    streams: list[bytes] = [b""] * len(tiles)
    bits = 0.0
    for batch in tile_batches(tiles, model, tile, max_batch_bytes):
        bt = [tiles[k] for k in batch]
        sched = Schedule(bt, model.cfg.slope)
        orientations = None
        if adaptive and oriented:
            proxy = orient_proxy if orient_proxy is not None else model.float_proxy()
            orientations = choose_orientations(proxy, [_tile_samples(planes, t) for t in bt], device)
            bits += side_bits(len(bt), N_ORIENTATIONS)
        ys, xs = _image_coords(bt, sched, orientations)
        values = torch.from_numpy(planes[ys, xs].astype(np.int64)).to(device)  # (M, g)
        state = model.new_state(len(bt), tile, device)
        pos = state.flat_index(sched.n, sched.i, sched.j)
        source = _FullPass(model, state, pos, values)
        adaptation = fb = mean_shifts = None
        if fed_back:
            fb = _feedback(bt, sched, g, model, tile, device, fed_back)
            residuals, precisions = feedback.all_residuals(source.params, values, model.cfg, luts)
            feedback.choose(fb, residuals, precisions, source.params, values, model.cfg, luts)
            mean_shifts = feedback.all_mean_shifts(fb, residuals)
            bits += fb.side_bits()
        if adaptive:
            block_of, counts = Adaptation.blocks(bt, sched.n, sched.i, sched.j)
            block_of = torch.from_numpy(block_of).to(device)
            shifts = choose_shifts(source.params, values, block_of, sum(counts), model.cfg, luts, mean_shifts=mean_shifts)
            adaptation = Adaptation(block_of, counts, shifts, orientations)
            bits += side_bits(sum(counts) * g)
        coder = EncodeCoder(values, len(bt), adaptation, fb)
        bits += scan(sched, source, coder, g, model.cfg, luts, fb)
        for k, data in zip(batch, coder.finish()):
            streams[k] = data
        if progress:
            progress(len(batch))
    crcs = [samples_crc(_tile_samples(planes, t), first_stream + k) for k, t in enumerate(tiles)]
    return CodedGroup(streams, crcs, bits)


def decode_group(group: CodedGroup, height: int, width: int, channels: int, model: Model, luts: TableLUTs,
                 tile: int, device, first_stream: int = 0, max_batch_bytes: int = DEFAULT_BATCH_BYTES,
                 progress=None, adaptive: bool = False, oriented: bool = False,
                 fed_back: int = 0) -> tuple[np.ndarray, float]:
    """Inverse of encode_group: uint8 (H, W, channels) and the model bits; checks every CRC."""
    fed_back = int(fed_back) if adaptive else 0
    tiles = tile_grid(height, width, tile)
    out = np.zeros((height, width, channels), dtype=np.uint8)
    bits = 0.0
    for batch in tile_batches(tiles, model, tile, max_batch_bytes, decoding=True):
        bt = [tiles[k] for k in batch]
        sched = Schedule(bt, model.cfg.slope)
        state = model.new_state(len(bt), tile, device, columns=model.ring_columns)
        pos = state.flat_index(sched.n, sched.i, sched.j)
        last = torch.from_numpy(sched.j == np.array([t.w for t in bt])[sched.n] - 1).to(device)
        blocks = Adaptation.blocks(bt, sched.n, sched.i, sched.j) if adaptive else None
        if blocks is not None:
            bits += side_bits(sum(blocks[1]) * channels) + (side_bits(len(bt), N_ORIENTATIONS) if oriented else 0.0)
        fb = _feedback(bt, sched, channels, model, tile, device, fed_back) if fed_back else None
        coder = DecodeCoder([group.streams[k] for k in batch], device, channels, blocks, oriented and adaptive, fb)
        if fb is not None:
            bits += fb.side_bits()
        source = _Steps(model, state, pos, channels, last)
        bits += scan(sched, source, coder, channels, model.cfg, luts, fb)
        coder.check_exhausted()
        ys, xs = _image_coords(bt, sched, coder.adaptation.orientations if coder.adaptation else None)
        out[ys, xs] = source.values.cpu().numpy().astype(np.uint8)
        for k in batch:
            check_crc(_tile_samples(out, tiles[k]), first_stream + k, group.crcs[k], f"stream {first_stream + k}")
        if progress:
            progress(len(batch))
    return out, bits
