"""The previous-frame predictor (DECODER-EXACT): a model without weights for a video frame's grey
planes, which predicts every sample to be its motion-compensated previous frame's and is as sure of
it as the samples coded before it around it were.

Implements :class:`armcodec.models.base.ExactModel`, so the one scan loop, the integer tables, the
coder tools and ANS code with it exactly as with the temporal PixelCNN; the video encoder codes a
plane group with it where that is smaller (a still or slowly moving scene of a noisy camera, where
the temporal PixelCNN is not sure enough of the previous frame: docs/EXPERIMENTS.md, row 62).

Per sample at (i, j) of a tile, with ``c`` the moved previous frame and ``r = x - c`` the temporal
residual of a sample already coded (0 outside the tile, like the residual feedback's)::

    mean      = c(i, j)                                         (every mixture component the same)
    act       = |r(i, j-1)| + |r(i-1, j)| + |r(i-1, j-1)| + |r(i-1, j+1)|
    edge      = |c(i, j+1) - c(i, j-1)| + |c(i+1, j) - c(i-1, j)|    (c clamped at the frame's edges)
    log2scale = (SCALE_BASE + (ACT_SLOPE * ilog(act) + EDGE_SLOPE * ilog(edge)) >> 4) / 8

with ``ilog(n)`` = 16 log2(1 + n) in integers (:func:`ilog`).  The neighbours are on earlier
wavefront steps of the temporal PixelCNN's schedule (``j + slope * i``, which this model shares,
so the residual feedback has the same neighbours); the adaptation tool then moves the scale per
block and the residual feedback the mean (its features are these temporal residuals), both fitted
by the encoder.  The head's integers are laid out as the model's whose ``cfg`` this one borrows
(:mod:`armcodec.exact.tables`), channel 0 only (a grey plane).

Every constant below is part of the format: a file says it used this model (the video record's
predictor mask), not which constants, so changing one needs a new model and a new flag.
"""
from __future__ import annotations

import numpy as np
import torch

from armcodec.exact.tables import MEAN_STEPS

# fitted on training clips (video-train, carphone's and vtest's frames after the 60th; docs/EXPERIMENTS.md
# row 62): bits of every (base, slopes) on 400K samples of 84 moved-frame planes
SCALE_BASE = -24  # 1/8 octave: log2 scale -3 where the neighbours match the previous frame and no edge moves
ACT_SLOPE = 8  # 1/16 of 1/8 octave per 1/16 octave of activity: the scale grows as the activity
EDGE_SLOPE = 1
NEIGHBOURS = ((0, -1), (-1, 0), (-1, -1), (-1, 1))
PAD = 1  # rows above and columns either side the neighbours reach


def ilog(n: np.ndarray) -> np.ndarray:
    """16 * log2(1 + n) for integers n >= 0, exactly in integers: the exponent's 16 steps plus the
    mantissa's linear part (floor)."""
    m = np.asarray(n, dtype=np.int64) + 1
    e = np.floor(np.log2(m)).astype(np.int64)  # exact for the small integers here (m < 2**20), checked below
    e -= (np.left_shift(1, e) > m).astype(np.int64)
    e += (np.left_shift(1, e + 1) <= m).astype(np.int64)
    return 16 * e + ((16 * (m - np.left_shift(1, e))) >> e)


def edge_strength(c: np.ndarray) -> np.ndarray:
    """c: int64 (H, W) moved previous frame -> int64 (H, W), the ``edge`` term."""
    p = np.pad(c, 1, mode="edge")
    return np.abs(p[1:-1, 2:] - p[1:-1, :-2]) + np.abs(p[2:, 1:-1] - p[:-2, 1:-1])


class PreviousFramePredictor:
    """See the module docstring; ``cfg``: the head layout to write (the grey-plane weights' config)."""

    architecture = "previous-frame"
    uses_context = True

    def __init__(self, cfg):
        self.cfg = cfg

    def step_of(self, i: np.ndarray, j: np.ndarray, tile: int) -> np.ndarray:
        return j + self.cfg.slope * i

    def precedes(self, di: int, dj: int) -> bool:
        return dj + self.cfg.slope * di < 0

    def tile_bytes(self, tile: int, decoding: bool) -> int:
        """Per pixel: its schedule and coordinates, residual, context terms and head row (about
        200 bytes, the head's int64 integers most of it)."""
        return tile * tile * (200 + 8 * self.cfg.n_params)

    def float_proxy(self):
        raise NotImplementedError("the previous-frame predictor codes unmirrored frames only (no orientation search)")

    def layers(self) -> dict:
        return {}

    def tensors(self) -> dict:
        return {}

    def to(self, device) -> "PreviousFramePredictor":
        return self

    # --- the parameter sources ------------------------------------------------------------
    def encoder_pass(self, tiles: list, schedule, tile: int, device, values: torch.Tensor, context=None) -> "Predictions":
        src = Predictions(self, tiles, schedule, tile, device, context)
        src.observe(0, len(schedule.n), values)
        src.params = src(0, len(schedule.n)).to(torch.int32)
        return src

    def decoder_steps(self, tiles: list, schedule, tile: int, device, channels: int, context=None) -> "Predictions":
        if channels != 1:
            raise ValueError("the previous-frame predictor codes grey planes only")
        return Predictions(self, tiles, schedule, tile, device, context)

    def head(self, c: np.ndarray, act: np.ndarray, edge: np.ndarray) -> np.ndarray:
        """Moved previous samples, activities and edges (int64 (M,) each) -> the head's integers
        int64 (M, n_params): channel 0's components all alike, everything else zero."""
        k, ch = self.cfg.mixtures, self.cfg.image_channels
        out = np.zeros((len(c), self.cfg.n_params), np.int64)
        out[:, ch * k : ch * k + k] = ((c - 128) * MEAN_STEPS)[:, None]
        out[:, 2 * ch * k : 2 * ch * k + k] = (SCALE_BASE + ((ACT_SLOPE * ilog(act) + EDGE_SLOPE * ilog(edge)) >> 4))[:, None]
        return out


class Predictions:
    """Both directions' parameter source over a schedule: the residuals of the samples observed
    so far in a padded map per tile; a call gives the head's integers of ``schedule[a:b]`` from
    the map (the encoder observes every sample first, the decoder step by step)."""

    def __init__(self, model: PreviousFramePredictor, tiles, schedule, tile: int, device, context):
        if context is None:
            raise ValueError("the previous-frame predictor needs the previous frame")
        planes, ys, xs = context[:3]
        which = context[3] if len(context) > 3 else np.zeros(len(ys), np.int64)
        planes = planes if isinstance(planes, list) else [planes]
        self.model, self.device, self.schedule = model, device, schedule
        self.c = np.empty(len(ys), np.int64)
        self.edge = np.empty(len(ys), np.int64)
        for w, p in enumerate(planes):
            at = which == w
            frame = p[:, :, 0].astype(np.int64)
            self.c[at] = frame[ys[at], xs[at]]
            self.edge[at] = edge_strength(frame)[ys[at], xs[at]]
        self.res = np.zeros((len(tiles), tile + PAD, tile + 2 * PAD), np.int64)  # row 0, columns 0 and -1: outside
        self.n, self.i, self.j = schedule.n, schedule.i + PAD, schedule.j + PAD
        self.params = None

    def __call__(self, a: int, b: int) -> torch.Tensor:
        if self.params is not None:
            return self.params[a:b].long()
        n, i, j = self.n[a:b], self.i[a:b], self.j[a:b]
        act = sum(np.abs(self.res[n, i + di, j + dj]) for di, dj in NEIGHBOURS)
        return torch.from_numpy(self.model.head(self.c[a:b], act, self.edge[a:b])).to(self.device)

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        self.res[self.n[a:b], self.i[a:b], self.j[a:b]] = values[:, 0].cpu().numpy().astype(np.int64) - self.c[a:b]
