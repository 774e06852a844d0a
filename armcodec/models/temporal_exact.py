"""The temporal PixelCNN, integer-exact (registered as ``temporal-pixelcnn``): the wavefront
PixelCNN of :mod:`armcodec.models.pixelcnn_exact` plus two integer layers over the previous
frame's window (:mod:`armcodec.models.temporal`).

The previous frame is known whole to both sides before a frame is coded, so its terms are one
dense product over the batch's pixels, computed before the scan (:meth:`context_terms`) and
added, position by position, to the first layer's and the head's integers inside
:meth:`IntPixelCNN.run`: the encoder's parallel pass and the decoder's steps add the same
integers.  Without a previous frame (a key frame) the terms are left out, which is what the
bias-free layers give for an all-zero input.
"""
from __future__ import annotations

import numpy as np
import torch

from armcodec.exact.layers import IntConv
from armcodec.models.pixelcnn import INPUT_SCALE, param_scales
from armcodec.models.pixelcnn_exact import CachedSteps, FullPass, IntPixelCNN, dequantize_into
from armcodec.models.registry import register
from armcodec.models.temporal import TemporalConfig, TemporalPixelCNN

CONTEXT_CHUNK = 1 << 13  # positions per context product: its gathered input (~400 bytes each) and terms stay in
# a core's cache while they are made (1 << 16: a foreman decode 6-10% slower, docs/PROFILE.md)
CONTEXT_INDEX_BYTES = 32  # per position: its row, column and frame plane (int64 each), and their sum


class ContextTerms:
    """The previous frame's integer terms at a batch's positions (in scan order): the first
    layer's (float64 (M, F)) and the head's (int64 (M, n_params)).  Each is computed a block of
    :data:`CONTEXT_CHUNK` positions at a time when :meth:`IntPixelCNN.run` first asks for it (the
    encoder's pass and the decoder's steps ask in position order), so the terms take one block of
    memory whatever the frame size; the integers are those of one product over every position.
    ``windows``: every padded window, a strided view (rows, 2r+1, 2r+1, channels) of the padded
    planes; ``corners``: int64 (M,) each position's window (its top-left sample's flat row)."""

    def __init__(self, model: "IntTemporalPixelCNN", windows: torch.Tensor, corners: torch.Tensor, device,
                 offset: int = 0, blocks: dict | None = None):
        self.model, self.windows, self.corners, self.device, self.offset = model, windows, corners, device, offset
        self.count = len(corners)
        self._blocks = blocks if blocks is not None else {}  # "first" / "skip" -> (start, end, terms)

    def at(self, offset: int) -> "ContextTerms":
        """The same terms with position ``offset`` as 0 (a decoder step's positions)."""
        return ContextTerms(self.model, self.windows, self.corners, self.device, self.offset + offset, self._blocks)

    def first(self, a: int, b: int) -> torch.Tensor:
        return self._terms("first", self.offset + a, self.offset + b)

    def skip(self, a: int, b: int) -> torch.Tensor:
        return self._terms("skip", self.offset + a, self.offset + b)

    def _terms(self, which: str, a: int, b: int) -> torch.Tensor:
        start, end, terms = self._blocks.get(which, (0, 0, None))
        if terms is None or a < start or b > end:
            start, end = a, min(self.count, max(b, a + CONTEXT_CHUNK))
            gathered = self.windows[self.corners[start:end]].view(end - start, -1).to(self.device)
            layer = self.model.context_first if which == "first" else self.model.context_skip
            terms = layer(gathered) if which == "first" else layer(gathered).long()
            self._blocks[which] = (start, end, terms)
        return terms[a - start : b - start]


def window_offsets(reach: int) -> list[tuple[int, int]]:
    """The context window's offsets, row by row (the stored weight's row order)."""
    return [(di, dj) for di in range(-reach, reach + 1) for dj in range(-reach, reach + 1)]


@register("temporal-pixelcnn")
class IntTemporalPixelCNN(IntPixelCNN):
    """Integer-exact temporal PixelCNN (implements :class:`armcodec.models.base.ExactModel`, and
    takes ``context`` in its parameter sources)."""

    config_class = TemporalConfig
    uses_context = True

    def __init__(self, cfg: TemporalConfig, first, gates, mixes, head_hidden, head_out, skip, context_first: IntConv,
                 context_skip: IntConv):
        super().__init__(cfg, first, gates, mixes, head_hidden, head_out, skip)
        self.context_first, self.context_skip = context_first, context_skip

    def layers(self) -> dict[str, IntConv]:
        return {**super().layers(), "context_first": self.context_first, "context_skip": self.context_skip}

    @classmethod
    def from_tensors(cls, cfg: TemporalConfig, t: dict) -> "IntTemporalPixelCNN":
        base = IntPixelCNN.from_tensors(cfg, t)
        win, c_in = window_offsets(cfg.context_reach), cfg.image_channels + 1
        cf = IntConv.from_tensors(t, "context_first", win, 128, c_in, cfg.width)
        cs = IntConv.from_tensors(t, "context_skip", win, 128, c_in, cfg.n_params)
        if bool(cf.bias.any()) or bool(cs.bias.any()):
            raise ValueError("the context layers must have no bias")
        return cls(cfg, base.first, base.gates, base.mixes, base.head_hidden, base.head_out, base.skip, cf, cs)

    def to(self, device) -> "IntTemporalPixelCNN":
        b = super().to(device)
        return IntTemporalPixelCNN(self.cfg, b.first, b.gates, b.mixes, b.head_hidden, b.head_out, b.skip,
                                   self.context_first.to(device), self.context_skip.to(device))

    def to_float(self) -> TemporalPixelCNN:
        model = TemporalPixelCNN(self.cfg)
        model.load_state_dict(super().to_float().state_dict(), strict=False)
        dequantize_into([(model.context_first, self.context_first, INPUT_SCALE, self.cfg.resid_scale),
                         (model.context_skip, self.context_skip, INPUT_SCALE, param_scales(self.cfg))])
        return model.eval()

    # --- the previous frame's terms ---------------------------------------------------------
    def context_terms(self, planes, ys: np.ndarray, xs: np.ndarray, device, which: np.ndarray | None = None
                      ) -> "ContextTerms":
        """planes: the previous frame's samples of the coded plane group, uint8 (H, W, g), g in
        (1, channels), or a list of them with ``which`` (M,) naming each position's; ys, xs: image
        rows and columns of the positions -> the integers :meth:`run` adds at those positions
        (:class:`ContextTerms`: computed as the scan reaches them)."""
        if which is None:
            planes, which = [planes], np.zeros(len(ys), np.int64)
        r, c = self.cfg.context_reach, self.cfg.image_channels
        side = 2 * r + 1
        width = max(p.shape[1] for p in planes) + 2 * r  # every plane padded to one row width
        flats, starts = [], [0]
        for p in planes:
            h, w, g = p.shape
            padded = np.zeros((h + 2 * r, width, c + 1), np.float32)  # zero outside the frame
            padded[r : r + h, r : r + w, :c] = p.astype(np.float32) - 128  # a plane g = 1: replicated
            padded[r : r + h, r : r + w, c] = 128  # ONES_VALUE
            flats.append(padded.reshape(-1, c + 1))
            starts.append(starts[-1] + len(flats[-1]))
        flat = torch.from_numpy(np.concatenate(flats))
        # window k of position p is rows corner_p + di * width + dj (di, dj in 0..2r), row by row
        # like window_offsets: one strided view holds every window, none copied
        windows = flat.as_strided((len(flat) - (side - 1) * (width + 1), side, side, c + 1),
                                  (c + 1, width * (c + 1), c + 1, 1))
        corners = np.array(starts[:-1])[which] + np.asarray(ys) * width + np.asarray(xs)
        return ContextTerms(self, windows, torch.from_numpy(corners.astype(np.int64)), device)

    def encoder_pass(self, tiles: list, schedule, tile: int, device, values: torch.Tensor, context=None) -> FullPass:
        """:meth:`IntPixelCNN.encoder_pass`; ``context``: (previous planes, ys, xs[, which]) (see
        :meth:`context_terms`) or None."""
        state = self.new_state(len(tiles), tile, device)
        extra = self.context_terms(*context[:3], device, *context[3:]) if context is not None else None
        return FullPass(self, state, state.flat_index(schedule.n, schedule.i, schedule.j), values, extra)

    def tile_bytes(self, tile: int, decoding: bool) -> int:
        """:meth:`IntPixelCNN.tile_bytes` and the context's indices per pixel (its terms take one
        block, :data:`CONTEXT_CHUNK` positions, whatever the batch)."""
        return super().tile_bytes(tile, decoding) + tile * tile * CONTEXT_INDEX_BYTES

    def decoder_steps(self, tiles: list, schedule, tile: int, device, channels: int, context=None) -> CachedSteps:
        steps = super().decoder_steps(tiles, schedule, tile, device, channels)
        steps.extra = self.context_terms(*context[:3], device, *context[3:]) if context is not None else None
        return steps
