"""The previous-frame predictor (DECODER-EXACT): a model without weights for a video frame's grey
planes, which predicts every sample to be its motion-compensated previous frame's and is as sure of
it as the samples coded before it around it were.

Implements :class:`armcodec.models.base.ExactModel`, so the one scan loop, the integer tables, the
coder tools and ANS code with it exactly as with the temporal PixelCNN (a still or slowly moving
scene of a noisy camera, where the temporal PixelCNN is not sure enough of the previous frame:
docs/EXPERIMENTS.md, row 62).

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

R, G, B groups (coder tool 7, 0.15): each channel has its own ``c``, ``r``, activity and edge as
above, and channel k > 0's mean is coupled to channel k - 1's residual, as the model's coupling
to the earlier channels is written (coefficient 1)::

    mean_k    = c_k(i, j) + x_{k-1}(i, j) - c_{k-1}(i, j)

(a change of brightness, or a vector a little off, moves the three channels together).  The
neighbour term below is each channel's own (the model's likeliest mean with its coupling to the
sample's earlier channels).

The video coder never uses the predictor alone: :class:`PredictorMixture` adds it to the
temporal PixelCNN's mixture as one more component of each channel (every tile of a grey plane,
and with tool 7 of an R, G, B group, coded with the previous frame, in files whose records have
the predictor flag), with a logit ``max(the model's
logits) + mix_offset(v)`` for a per-tile index ``v`` the encoder picks
(:mod:`armcodec.encoder.mixture`) and sends: from the model nearly alone (the predictor 8 bits
below the model's likeliest component) to the predictor nearly alone (8 bits above).  Each sample
then costs about what the better of the two would give it (docs/EXPERIMENTS.md, row 62).

Since 0.14 a tile's index may also say (``v >= N_MIX``, :func:`uses_neighbours`) that each sample's
predictor logit moves with which of the two did better on its coded neighbours::

    gap(n)    = ilog(|x(n) - m(n)|) - ilog(|r(n)|)    (m: the mean of the model's likeliest component,
                                                      to a level)
    logit    += clamp(sum of gap over GAP_NEIGHBOURS >> NEIGHBOUR_SHIFT, -NEIGHBOUR_MAX, NEIGHBOUR_MAX)

(1/8 bit: 1.25 bits for each octave the model's ten nearest coded neighbours missed by more than
the predictor's did on average, 0 outside the tile; row 63 of docs/EXPERIMENTS.md.)

Every constant below is part of the format: a file says it used this model (the video record's
predictor flag), not which constants, so changing one needs a new model and a new flag.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from armcodec.container_video import N_MIX
from armcodec.exact.tables import MEAN_STEPS

# fitted on training clips (video-train, carphone's and vtest's frames after the 60th; docs/EXPERIMENTS.md
# row 62): bits of every (base, slopes) on 400K samples of 84 moved-frame planes
SCALE_BASE = -24  # 1/8 octave: log2 scale -3 where the neighbours match the previous frame and no edge moves
ACT_SLOPE = 8  # 1/16 of 1/8 octave per 1/16 octave of activity: the scale grows as the activity
EDGE_SLOPE = 1
NEIGHBOURS = ((0, -1), (-1, 0), (-1, -1), (-1, 1))
ENCODER_ROWS = 1 << 15  # the encoder's mixture rows built at a time
MIX_STEP = 8  # 1/8 bit (the logits' grid): the mixture offsets' step, one bit
# the neighbour term (0.14): the gaps of these coded neighbours (those on earlier steps of the
# model's wavefront: all ten from slope 3), their sum (1/16 octave) >> 3 -> 1/8 bit: 1.25 bits an
# octave on average (row 63: 10 neighbours and 2.5 bits an octave against 4, 6 and 8 and 1.5-2.5)
GAP_NEIGHBOURS = NEIGHBOURS + ((0, -2), (-2, 0), (-1, -2), (-1, 2), (-2, -1), (-2, 1))
NEIGHBOUR_SHIFT = 3
NEIGHBOUR_MAX = 64  # at most 8 bits either way
PAD = 2  # rows above and columns either side the neighbours reach


def ilog(n: np.ndarray) -> np.ndarray:
    """16 * log2(1 + n) for integers n >= 0, exactly in integers: the exponent's 16 steps plus the
    mantissa's linear part (floor)."""
    m = np.asarray(n, dtype=np.int64) + 1
    e = np.floor(np.log2(m)).astype(np.int64)  # exact for the small integers here (m < 2**20), checked below
    e -= (np.left_shift(1, e) > m).astype(np.int64)
    e += (np.left_shift(1, e + 1) <= m).astype(np.int64)
    return 16 * e + ((16 * (m - np.left_shift(1, e))) >> e)


def edge_strength(c: np.ndarray, ys: np.ndarray | None = None, xs: np.ndarray | None = None) -> np.ndarray:
    """c: (H, W) moved previous frame -> int32, the ``edge`` term at every position (H, W) or at
    the positions ``ys``, ``xs`` (M,) (the frame's edge samples repeat)."""
    h, w = c.shape
    if ys is None:
        ys, xs = (a.ravel() for a in np.meshgrid(np.arange(h), np.arange(w), indexing="ij"))
        return edge_strength(c, ys, xs).reshape(h, w)
    at = lambda y, x: c[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)].astype(np.int32)  # noqa: E731
    return np.abs(at(ys, xs + 1) - at(ys, xs - 1)) + np.abs(at(ys + 1, xs) - at(ys - 1, xs))


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
        """Per pixel: its previous samples, means, scale terms, map index and residuals
        (:class:`Predictions`, per channel) and, alone, its head's integers."""
        return tile * tile * (PIXEL_BYTES * self.cfg.image_channels + 8 * self.cfg.n_params)

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

    def head(self, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """The predictor's mean (1/16 level, relative to 128) and log2-scale (1/8) int64 (M, 1) ->
        the head's integers int64 (M, n_params): channel 0's components all alike, the rest zero."""
        k, ch = self.cfg.mixtures, self.cfg.image_channels
        out = torch.zeros((len(mean), self.cfg.n_params), dtype=torch.int64, device=mean.device)
        out[:, ch * k : ch * k + k] = mean[:, :1]
        out[:, 2 * ch * k : 2 * ch * k + k] = scale[:, :1]
        return out


_ILOG = ilog(np.arange(4 * 255 + 1)).astype(np.int32)  # ilog of every activity and edge (at most 4 * 255)
PIXEL_BYTES = 64  # Predictions' arrays per pixel, with room for their temporaries


class Predictions:
    """Both directions' parameter source over a schedule: the residuals of the samples observed
    so far in a padded map per tile (flat); :meth:`columns` gives the predictor's mean and scale of
    ``schedule[a:b]`` from the map (the encoder observes every sample first, the decoder step by
    step), a call its head's integers."""

    def __init__(self, model: PreviousFramePredictor, tiles, schedule, tile: int, device, context, channels: int = 1):
        if context is None:
            raise ValueError("the previous-frame predictor needs the previous frame")
        planes, ys, xs = context[:3]
        which = context[3] if len(context) > 3 else np.zeros(len(ys), np.int64)
        planes = planes if isinstance(planes, list) else [planes]
        self.model, self.device, self.channels = model, device, channels
        c = np.empty((len(ys), channels), np.int32)
        edge = np.empty((len(ys), channels), np.int32)
        for w, p in enumerate(planes):
            at = which == w
            c[at] = p[ys[at], xs[at], :channels]
            for ch in range(channels):
                edge[at, ch] = edge_strength(p[:, :, ch], ys[at], xs[at])
        self.c = c
        mean = (c - 128) * MEAN_STEPS
        if channels > 1:  # channel k's mean is coupled to channel k - 1's residual (COLOUR_COUPLING)
            mean[:, 1:] = (c[:, 1:] - c[:, :-1]) * MEAN_STEPS
        self.mean = torch.from_numpy(mean.astype(np.int64)).to(device)
        self.edge_term = (SCALE_BASE << 4) + EDGE_SLOPE * _ILOG[edge]  # the scale's part known before the scan
        rows, cols = tile + PAD, tile + 2 * PAD  # row 0, columns 0 and -1 of a tile's map: outside it (0)
        self.res = np.zeros((len(tiles) * rows * cols, channels), np.int32)
        self.at = (schedule.n * rows + schedule.i + PAD) * cols + schedule.j + PAD
        self.around = np.array([di * cols + dj for di, dj in NEIGHBOURS], np.int64)
        self.gap_around = np.array([di * cols + dj for di, dj in GAP_NEIGHBOURS if model.precedes(di, dj)], np.int64)
        self.gap = None  # the neighbour term's map (observe_gaps), like res
        self.params = None

    def columns(self, a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and log2-scale integers int64 (b - a, channels) of ``schedule[a:b]``."""
        act = np.abs(self.res[self.at[a:b, None] + self.around]).sum(1)
        scale = (self.edge_term[a:b] + ACT_SLOPE * _ILOG[act]) >> 4
        return self.mean[a:b], torch.from_numpy(scale.astype(np.int64)).to(self.device)

    def __call__(self, a: int, b: int) -> torch.Tensor:
        if self.params is not None:
            return self.params[a:b].long()
        return self.model.head(*self.columns(a, b))

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        self.res[self.at[a:b]] = values[:, : self.channels].cpu().numpy() - self.c[a:b]

    def observe_gaps(self, a: int, b: int, model_mean: np.ndarray) -> None:
        """After :meth:`observe` of ``schedule[a:b]``: each sample's gap between the model's miss
        and the predictor's (``model_mean``: int64 (b - a, channels) the model's likeliest
        component's mean, 1/16 level relative to 128, :func:`likeliest_mean`)."""
        if self.gap is None:
            self.gap = np.zeros_like(self.res)
        r = self.res[self.at[a:b]]
        x16 = (r.astype(np.int64) + self.c[a:b] - 128) * MEAN_STEPS
        miss = np.minimum(np.abs(x16 - model_mean) >> 4, 4 * 255)
        self.gap[self.at[a:b]] = _ILOG[miss] - _ILOG[np.abs(r)]

    def neighbour_term(self, a: int, b: int) -> np.ndarray:
        """The predictor logit's neighbour term int64 (b - a, channels) of ``schedule[a:b]`` (1/8 bit)."""
        if self.gap is None:
            return np.zeros((b - a, self.channels), np.int64)
        total = self.gap[self.at[a:b, None] + self.gap_around].sum(1).astype(np.int64)
        return np.clip(total >> NEIGHBOUR_SHIFT, -NEIGHBOUR_MAX, NEIGHBOUR_MAX)


# --- the predictor as one more component of the model's mixture ---------------------------------
def mix_offset(v) -> np.ndarray:
    """Mixture indices (0..2 N_MIX - 1, the record's) -> the predictor's logit above the model's largest,
    1/8 bit: from 8 bits below to 8 bits above (``v`` and ``v + N_MIX`` alike)."""
    return MIX_STEP * (np.asarray(v, dtype=np.int64) % N_MIX - N_MIX // 2)


def uses_neighbours(v) -> np.ndarray:
    """Mixture indices -> bool: the index adds the neighbour term (0.14; see the module docstring)."""
    return np.asarray(v, dtype=np.int64) >= N_MIX


def likeliest_mean(model: torch.Tensor, cfg, known: torch.Tensor) -> np.ndarray:
    """The model's head integers (M, cfg.n_params) and the samples (M, C) -> int64 (M, C): each
    channel's mean (1/16 level relative to 128, as the head writes it, with its coupling to the
    earlier channels' samples, unclamped) of its component with the largest logit (the first of
    equals)."""
    k, c = cfg.mixtures, cfg.image_channels
    p = model.cpu().numpy().astype(np.int64)
    x = known.cpu().numpy().astype(np.int64)
    rows = np.arange(len(p))
    shift = cfg.coef_steps.bit_length() - 1
    out = np.empty((len(p), x.shape[1]), np.int64)
    for ch in range(x.shape[1]):
        top = np.argmax(p[:, ch * k : (ch + 1) * k], axis=1)
        mean = p[rows, (c + ch) * k + top]
        pair0 = 3 * c * k + ch * (ch - 1) // 2 * k
        for prev in range(ch):
            coef = np.clip(p[rows, pair0 + prev * k + top], -cfg.coef_steps, cfg.coef_steps)
            mean = mean + ((coef * (x[:, prev] - 128) * MEAN_STEPS) >> shift)
        out[:, ch] = mean
    return out


def mixed_config(cfg):
    """The head layout of a model's mixture with the predictor added: one more component."""
    return dataclasses.replace(cfg, mixtures=cfg.mixtures + 1)


def mix_params(model: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, offsets: torch.Tensor, cfg) -> torch.Tensor:
    """The model's head integers int64 (M, cfg.n_params), the predictor's means and log2-scales
    and each row's logit offsets int64 (M, C) of a group of C channels (1: a grey plane, coded
    through channel 0; cfg.image_channels: R, G, B) -> the mixture's int64 (M,
    mixed_config(cfg).n_params): each channel's K components, then the predictor's with logit
    ``max(the K logits) + offset``; the couplings between the C channels kept, the predictor's
    channel k coupled to channel k - 1 with coefficient 1 (its mean there is relative to that
    channel's residual: :class:`Predictions`); channels beyond C zero."""
    k, c = cfg.mixtures, cfg.image_channels
    k2, n = k + 1, mean.shape[1]
    out = torch.zeros((model.shape[0], mixed_config(cfg).n_params), dtype=torch.int64, device=model.device)
    for ch in range(n):
        logits = model[:, ch * k : (ch + 1) * k]
        out[:, ch * k2 : ch * k2 + k] = logits
        out[:, ch * k2 + k] = logits.amax(1) + offsets[:, ch]
        for part, value in ((1, mean), (2, scale)):  # means, log2-scales
            out[:, (part * c + ch) * k2 : (part * c + ch) * k2 + k] = model[:, (part * c + ch) * k : (part * c + ch + 1) * k]
            out[:, (part * c + ch) * k2 + k] = value[:, ch]
        for prev in range(ch):  # coupling pairs (1, 0), (2, 0), (2, 1)
            pair = ch * (ch - 1) // 2 + prev
            out[:, 3 * c * k2 + pair * k2 : 3 * c * k2 + pair * k2 + k] = model[:, 3 * c * k + pair * k : 3 * c * k + (pair + 1) * k]
            if prev == ch - 1:
                out[:, 3 * c * k2 + pair * k2 + k] = cfg.coef_steps
    return out


class PredictorMixture:
    """A temporal model's mixture with the predictor as one more component (see the module
    docstring), for grey planes.  The parameter sources take ``mix``: the batch's tiles' mixture
    indices; the encoder's may leave it out, and ``chooser(model params, predictor means, predictor
    scales, values, schedule, n_tiles)`` (encoder-only) picks them, kept in :attr:`choices` by tile
    position."""

    architecture = "previous-frame-mixture"
    uses_context = True

    def __init__(self, model, chooser=None):
        self.model, self.chooser = model, chooser
        self.predictor = PreviousFramePredictor(model.cfg)
        self.cfg = mixed_config(model.cfg)
        self.choices: dict[tuple[int, int], int] = {}

    def step_of(self, i: np.ndarray, j: np.ndarray, tile: int) -> np.ndarray:
        return self.model.step_of(i, j, tile)

    def precedes(self, di: int, dj: int) -> bool:
        return self.model.precedes(di, dj)

    def tile_bytes(self, tile: int, decoding: bool) -> int:
        return self.model.tile_bytes(tile, decoding) + self.predictor.tile_bytes(tile, decoding)

    def float_proxy(self):
        raise NotImplementedError("a frame coded with its previous frame has no orientation search")

    def layers(self) -> dict:
        return self.model.layers()

    def encoder_pass(self, tiles: list, schedule, tile: int, device, values: torch.Tensor, context=None,
                     mix=None) -> "MixedParams":
        model = self.model.encoder_pass(tiles, schedule, tile, device, values, context=context).params  # int32
        pred = Predictions(self.predictor, tiles, schedule, tile, device, context, values.shape[1])
        pred.observe(0, len(values), values)
        mean, scale = pred.columns(0, len(values))
        pred.observe_gaps(0, len(values), likeliest_mean(model, self.model.cfg, values))
        term = torch.from_numpy(pred.neighbour_term(0, len(values))).to(device)
        del pred
        if mix is None:
            mix = self.chooser(model, mean, scale, values, schedule, len(tiles), term)
        mix = np.asarray(mix, dtype=np.int64)
        self.choices.update({(t.y, t.x): int(v) for t, v in zip(tiles, mix)})
        offsets = row_offsets(mix, schedule.n, term)
        params = torch.empty((len(values), self.cfg.n_params), dtype=torch.int32, device=device)
        for a in range(0, len(values), ENCODER_ROWS):  # int64 temporaries of a part at a time
            b = min(a + ENCODER_ROWS, len(values))
            params[a:b] = mix_params(model[a:b].long(), mean[a:b], scale[a:b], offsets[a:b], self.model.cfg)
        return MixedParams(None, None, offsets, self.model.cfg, params)

    def decoder_steps(self, tiles: list, schedule, tile: int, device, channels: int, context=None,
                      mix=None) -> "MixedParams":
        if channels not in (1, self.model.cfg.image_channels) or mix is None:
            raise ValueError("the predictor's mixture codes grey planes or the model's channels, with a mixture "
                             "index per tile")
        a = self.model.decoder_steps(tiles, schedule, tile, device, channels, context=context)
        b = Predictions(self.predictor, tiles, schedule, tile, device, context, channels)
        mix = np.asarray(mix, dtype=np.int64)
        offsets = row_offsets(mix, schedule.n, channels=channels)
        near = torch.from_numpy(uses_neighbours(mix)[schedule.n]).to(device)[:, None] if uses_neighbours(mix).any() else None
        return MixedParams(a, b, offsets, self.model.cfg, neighbours=near)


def row_offsets(mix: np.ndarray, n: np.ndarray, term: torch.Tensor | None = None, channels: int = 1) -> torch.Tensor:
    """Per tile mixture indices and each row's tile ``n`` -> each row's predictor logit offsets
    int64 (rows, channels) (1/8 bit), with ``term`` (the rows' neighbour terms, (rows, channels))
    where the tile's index uses it."""
    offsets = torch.from_numpy(mix_offset(mix)[n])[:, None]
    if term is None:
        return offsets.expand(-1, channels).contiguous()
    near = torch.from_numpy(uses_neighbours(mix)[n]).to(term.device)[:, None]
    return offsets.to(term.device) + torch.where(near, term, 0)


class MixedParams:
    """The mixture's parameter source: the two sources' integers joined step by step (the decoder),
    or all of them joined once (``params``, the encoder)."""

    def __init__(self, model, predictor, offsets: torch.Tensor, cfg, params: torch.Tensor | None = None,
                 neighbours: torch.Tensor | None = None):
        self.model, self.predictor, self.offsets, self.cfg, self.params = model, predictor, offsets, cfg, params
        self.neighbours = neighbours  # bool (rows, 1): its tile's index adds the neighbour term (None: no tile's)
        self.handed = {}  # the model's integers of the rows handed out, until they are observed

    def __call__(self, a: int, b: int) -> torch.Tensor:
        if self.params is not None:
            return self.params[a:b].long()
        model = self.model(a, b)
        offsets = self.offsets[a:b]
        if self.neighbours is not None:
            self.handed[a] = model
            term = torch.from_numpy(self.predictor.neighbour_term(a, b)).to(offsets.device)
            offsets = offsets.to(term.device) + torch.where(self.neighbours[a:b], term, 0)
        return mix_params(model, *self.predictor.columns(a, b), offsets, self.cfg)

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        if self.params is None:
            self.model.observe(a, b, values)
            self.predictor.observe(a, b, values)
            if self.neighbours is not None:
                self.predictor.observe_gaps(a, b, likeliest_mean(self.handed.pop(a), self.cfg, values))
