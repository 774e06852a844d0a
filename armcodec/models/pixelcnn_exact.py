"""The wavefront PixelCNN, integer-exact: decoder-exact inference (registered as
``wavefront-pixelcnn``).

A layer is applied by gathering its inputs at the kernel offsets from a padded activation map
(:class:`WavefrontState`) and one matrix product (:class:`armcodec.exact.layers.IntConv`).  The
encoder runs each stage over all positions (:meth:`IntPixelCNN.encoder_pass`); the decoder runs all
stages on the positions of one wavefront step (:meth:`IntPixelCNN.decoder_steps`).  Both go through
:meth:`IntPixelCNN.run`, so their tables are the same numbers.  Nonlinearities are clamps and the
gate ``(a * b) >> 6``.

Data flow of one stage::

    map (rows, C_in) --gather offsets--> (M, n_off*C_in) --@ W--> acc --requant, clamp--> (M, C_out)
"""
from __future__ import annotations

import weakref

import numpy as np
import torch

from armcodec import threads
from armcodec.exact import fused
from armcodec.exact.layers import IntConv
from armcodec.models.pixelcnn import (
    GATE_MAX,
    GATE_SCALE,
    INPUT_SCALE,
    ONES_VALUE,
    PixelCNN,
    PixelCNNConfig,
    causal_offsets,
    param_scales,
)
from armcodec.models.registry import register

ENCODE_PIXEL_BYTES = 1536  # per pixel besides the maps: parameters, the fit's and searches' temporaries
DECODE_PIXEL_BYTES = 456  # per pixel besides the ring: schedule, values, feedback and gather indices
PASS_CHUNK = 4096  # positions per product of the encoder's pass (kodim01's pass in lanes: 1,024 8.3-9.0 s, 4,096 6.4-7.5 s)


def gated_block(gate: IntConv, mix: IntConv, gathered: torch.Tensor | None, resid: torch.Tensor, rmax: int,
                gate_acc: torch.Tensor | None = None) -> torch.Tensor:
    """One gated residual block on M positions: ``gathered`` the residual stream at the gate's
    offsets (float32 (M, n_off*F)), ``resid`` the stream at the positions (M, F) -> the new stream,
    float32 (M, F) integers in [-rmax, rmax]: the gate ``floor(a * s / GATE_MAX)`` of the gate
    layer's two halves, the mix layer, the residual add (:mod:`armcodec.exact.fused`).
    ``gate_acc``: the gate layer's accumulators already computed (``gathered`` then unused)."""
    g = fused.gate(gate.acc(gathered) if gate_acc is None else gate_acc, gate.scale, GATE_MAX)
    return fused.mix_residual(mix.acc(g), mix.scale, resid, rmax)


def lean_products(gate: IntConv, mix: IntConv, m: int):
    """A block's int8 products on the compiled path at ``m`` rows (:meth:`IntConv.lean_int8`): the
    gate layer's or None; the mix layer's where the gate's is, and unsplit (the gate's rows are
    int8 already; a wider mix input would need the split), else None."""
    g8 = gate.lean_int8(m)
    m8 = None if g8 is None else mix.lean_int8(m)
    return g8, None if m8 is None or m8.k else m8


def gathered_block(gate: IntConv, mix: IntConv, src: torch.Tensor, idx: torch.Tensor, m: int, resid: torch.Tensor | None,
                   rmax: int, dest: torch.Tensor | None = None, rows: torch.Tensor | None = None,
                   keep: bool = True) -> torch.Tensor | None:
    """:func:`gated_block` of the map ``src``'s rows ``idx`` (the gate's offsets of m positions, as
    :meth:`IntConv.gathered_acc` takes them); with ``dest``, the result also written to ``dest[rows]``
    (the next map).  Where the gate's int8 product is the choice for the compiled path
    (:meth:`IntConv.lean_int8`) the gather and split, the join and gate, and the mix layer's join
    and residual add are one compiled loop each around the bare products, and the gate hands the
    mix layer int8 rows when its product is int8 too: the same integers, fewer passes.
    ``resid`` None: the stream at the positions is ``src[rows]``, read there (in the residual
    add's loop on that path); ``keep`` False (with ``dest``): the result only in ``dest`` where
    that path runs (None returned)."""
    g8, m8 = lean_products(gate, mix, m)
    if g8 is None:
        h = gated_block(gate, mix, None, src[rows] if resid is None else resid, rmax, gate_acc=gate.gathered_acc(src, idx, m))
    else:
        g = fused.join_gate(g8.raw_gathered(src, idx, m), m, g8.k, g8.bias, gate.scale, GATE_MAX, int8=m8 is not None)
        if m8 is not None and resid is None:  # the stream read from src and the write to the next map inside the loop
            return fused.mix_residual_rows(m8.raw(g), m8.bias, mix.scale, src, rows, rmax, dest, keep)
        if m8 is not None:
            return fused.mix_residual_joined(m8.raw(g), m8.bias, mix.scale, resid, rmax, dest, rows)
        h = fused.mix_residual(mix.acc(g), mix.scale, src[rows] if resid is None else resid, rmax)
    if dest is not None:
        dest[rows] = h
    return h


def int_head(net, h: torch.Tensor, pixels: torch.Tensor | None, skip_out: torch.Tensor | None = None) -> torch.Tensor:
    """The head of an integer network (``head_hidden``, ``head_out``, ``skip`` or None): h the
    residual stream, pixels the first layer's gathered input -> int64 parameters.  ``skip_out``:
    the skip layer's output already computed (``pixels`` then unused)."""
    z = net.head_hidden.clamped(h, 0, net.cfg.head_max)
    if net.skip is None:
        return net.head_out(z).long()
    return fused.requant_sum(net.head_out.acc(z), net.head_out.scale, net.skip(pixels) if skip_out is None else skip_out)


class LeanStep:
    """A decoder step where each residual block takes :func:`gathered_block`'s compiled path with
    int8 rows into its mix layer (:meth:`IntConv.lean_int8` of both layers at the step's rows):
    the same loops (:mod:`armcodec.exact.fused_kernels`) and products, called on numpy operands
    made once per decode (the maps, the layers' bias and scales) or per step (the gather rows, the
    positions) and on kept buffers (:class:`armcodec.exact.fused.StepBuffers`), the first layer's
    requantization and the head's too (its skip layer's requantization in the head's sum).  A
    block is a dozen Python operations instead of some fifty tensor operations and conversions
    (at best of 7 runs on one thread, the bare loops and products on kept buffers against
    :func:`gathered_block`: a `default` block at 128 rows 330 against 470 us, a `video` one at 150
    rows 70 against 120 us; docs/PROFILE.md).  Per decode state (one process, one thread); the
    same integers as :meth:`IntPixelCNN.run`'s other path (``tests/test_model.py``)."""

    def __init__(self, model: "IntPixelCNN", state: "WavefrontState"):
        # the state holds this (``state.lean``): a weak reference back, so that no cycle keeps a
        # finished decode's maps and buffers (hundreds of MiB) until the cyclic collector runs
        self.model, self._state = model, weakref.ref(state)
        self.buffers = fused.StepBuffers()
        self._plans: dict[int, list | None] = {}  # rows -> per block its operands, or None (not every block lean)
        self._maps: dict[int, np.ndarray] = {}
        self._scales = {name: fused.as_numpy(layer.scale) for name, layer in
                        (("first", model.first), ("hidden", model.head_hidden), ("out", model.head_out), ("skip", model.skip))}

    @property
    def state(self) -> "WavefrontState":
        return self._state()

    def plan(self, m: int) -> list | None:
        """Each block's (gate's int8 weight, split bits, offsets, bias, scale, width; mix layer's
        int8 weight, bias, scale) at ``m`` rows, or None where a block takes another path."""
        if m not in self._plans:
            plan = []
            for gate, mix in zip(self.model.gates, self.model.mixes):
                g8, m8 = lean_products(gate, mix, m)
                if m8 is None:
                    plan = None
                    break
                plan.append((g8.w8, g8.k, len(gate.offsets), fused.as_numpy(g8.bias), fused.as_numpy(gate.scale), g8.N // 2,
                             m8.w8, fused.as_numpy(m8.bias), fused.as_numpy(mix.scale)))
            self._plans[m] = plan or None
        return self._plans[m]

    def _map(self, k: int) -> np.ndarray:
        if k not in self._maps:  # a decoder's maps live as long as its state
            self._maps[k] = self.state.map(k).numpy()
        return self._maps[k]

    def __call__(self, plan: list, pos: torch.Tensor, index: tuple[torch.Tensor, torch.Tensor], extra=None
                 ) -> torch.Tensor:
        """The step's parameters, int64 (M, n_params), at its positions ``pos`` (their map rows; each
        layer's output also written there in the next map); ``index``: the first layer's and the
        gate's gather rows; ``extra``: as :meth:`IntPixelCNN.run` takes it, at this step."""
        net, kn, buffers, m = self.model, fused.compiled(), self.buffers, len(pos)
        rows_n = pos.numpy()
        rmax, gmax, last = float(net.cfg.resid_max), float(GATE_MAX), len(plan) - 1
        # the first layer: its input gathered from map 0 (kept for the skip layer), into map 1
        pixels = self.state.map(0).index_select(0, index[0]).view(m, -1)
        resid, resid_n = buffers.take("first", m, net.cfg.width, torch.float32)
        add = None if extra is None else extra.first(0, m)
        kn.requant_clamp(fused.as_numpy(net.first.acc(pixels)), self._scales["first"], -rmax, rmax, resid_n,
                         None if add is None else fused.as_numpy(add.double()))
        self._map(1)[rows_n] = resid_n
        idx_n = index[1].numpy()
        for b, (gw, k, n_off, gb, gs, f, mw, mb, ms) in enumerate(plan):
            src = self._map(b + 1)
            gathered, gathered_n = buffers.take("gathered", 2 * m if k else m, n_off * src.shape[1], torch.int8)
            kn.gather_int8(src, idx_n, n_off, k, gathered_n)
            gated, gated_n = buffers.take("gated", m, f, torch.int8)
            kn.join_gate(torch._int_mm(gathered, gw).numpy(), m, k, gb, gs, gmax, gated_n)
            # the new stream; after the first block resid_n itself, each value read before it is written
            resid, h_n = buffers.take("stream", m, f, torch.float32)
            kn.mix_residual_joined(torch._int_mm(gated, mw).numpy(), mb, ms, resid_n, rmax, h_n,
                                   None if b == last else self._map(b + 2), None if b == last else rows_n)
            resid_n = h_n
        # the head: int_head's integers, the skip layer requantized inside the sum
        hidden, hidden_n = buffers.take("hidden", m, net.cfg.head_width, torch.float32)
        kn.requant_clamp(fused.as_numpy(net.head_hidden.acc(resid)), self._scales["hidden"], 0.0, float(net.cfg.head_max),
                         hidden_n, None)
        params = torch.empty((m, net.cfg.n_params), dtype=torch.int64)
        add = None if extra is None else extra.skip(0, m)
        kn.head_sum(fused.as_numpy(net.head_out.acc(hidden)), self._scales["out"], fused.as_numpy(net.skip.acc(pixels)),
                    self._scales["skip"], params.numpy(), None if add is None else fused.as_numpy(add))
        return params


def dequantize_into(pairs) -> None:
    """Copy integer layers into float convs: ``pairs`` of (float conv, IntConv, input scale, output
    scale(s)); weights ``w_int * s_w`` with ``s_w`` from the stored multipliers (the float copy
    tracks the integer model closely, not exactly: it may only inform encoder choices)."""
    with torch.no_grad():
        for conv, ic, in_scale, out_scale in pairs:
            s_w = (ic.mult.cpu() * ic.inv_shift.cpu()) * torch.as_tensor(out_scale, dtype=torch.float64) / in_scale
            c_out, c_in = conv.weight.shape[:2]
            w = torch.zeros(conv.weight.shape, dtype=torch.float64)
            up, left = conv.origin
            rows = ic.weight.cpu().double().t().reshape(c_out, len(ic.offsets), c_in)
            for k, (di, dj) in enumerate(ic.offsets):
                w[:, :, di + up, dj + left] = rows[:, k]
            conv.weight.copy_(w * s_w.view(-1, 1, 1, 1))
            conv.bias.copy_(ic.bias.cpu() * s_w * in_scale)


class WavefrontState:
    """Padded activation maps of a batch of T x T tiles, flattened to (rows, C).

    Map 0 holds the input (pixel - 128 per model channel, and ONES_VALUE inside the image);
    map b+1 holds the residual stream entering block b.  Positions outside a tile's image
    area are never computed and read as zero, exactly like the zero padding in training.

    The encoder's pass over every position keeps whole tiles (``columns`` None).  The decoder
    only ever reads positions a few wavefront steps behind the one it computes (the largest lag
    of any layer offset), so with ``columns`` (at least :attr:`IntPixelCNN.ring_columns`) each tile row keeps
    just that many columns, column ``j`` in slot ``(j + slope * i) % columns`` (:meth:`flat_index`): a slot is overwritten only after
    every read of its old position, and :meth:`clear_right` zeroes the columns right of a row's
    last pixel when that pixel is computed (their slots still hold earlier columns).  Same
    numbers, a few MiB per tile instead of about a GiB."""

    def __init__(self, model: "IntPixelCNN", n_tiles: int, tile: int, device, columns: int | None = None):
        cfg = model.cfg
        offs = model.offsets
        self.pad_top = max(-di for di, _ in offs)
        self.pad_left = max(max(-dj for _, dj in offs), 0)
        self.pad_right = max(max(dj for _, dj in offs), 0)
        self.hp = tile + self.pad_top
        self.slope = cfg.slope
        self.columns = columns
        self.wp = self.pad_left + tile + self.pad_right if columns is None else columns
        self.rows = n_tiles * self.hp * self.wp
        self.chans = [cfg.image_channels + 1] + [cfg.width] * cfg.blocks
        self.maps: list[torch.Tensor | None] = [None] * len(self.chans)  # allocated (zeros) on first use
        self.channels = cfg.image_channels
        self.device = device
        self.lean: LeanStep | None = None  # a decoder's steps on numpy operands (made by IntPixelCNN.run)
        # clear_right's offsets: the columns right of a row's end
        self._right = torch.tensor([(0, dj) for dj in range(1, self.pad_right + 1)], dtype=torch.int64, device=device)

    def map(self, k: int) -> torch.Tensor:
        """Map k, allocated as zeros on first use."""
        if self.maps[k] is None:
            self.maps[k] = torch.zeros((self.rows, self.chans[k]), dtype=torch.float32, device=self.device)
        return self.maps[k]

    def release(self, k: int, to: int | None = None) -> None:
        """Free map k (the encoder's single pass, once no later stage reads it).  ``to``: a map
        of as many channels, not yet allocated (if there is one), takes map k's buffer instead of fresh zeros (a
        map of a few hundred MiB is fresh pages from the kernel, ~0.15 s each to fault in): the
        single pass writes a map only at the positions it computes, every one of them before
        any read, so the other rows are still the zeros a fresh map would hold."""
        if to is not None and to < len(self.maps) and self.maps[to] is None and self.chans[to] == self.chans[k]:
            self.maps[to] = self.maps[k]
        self.maps[k] = None

    def flat_index(self, n: np.ndarray, i: np.ndarray, j: np.ndarray) -> torch.Tensor:
        """Map rows of pixels (tile n, row i, column j).  Whole tiles: row-major, (n, i, j).  The
        ring: (n, slot, i), the slot of the wavefront step ``j + slope * i`` (a row's slots turned
        by ``slope * i``, so the same slots hold the same columns as ``j % columns`` would), so a
        step's pixels, and each offset's neighbours of them, are consecutive map rows: a decoder
        step's gathers read runs of memory, not a row per tile row."""
        if self.columns is None:
            idx = (n * self.hp + i + self.pad_top) * self.wp + j + self.pad_left
        else:
            idx = (n * self.columns + (j + self.slope * i) % self.columns) * self.hp + i + self.pad_top
        return torch.as_tensor(idx, dtype=torch.int64, device=self.device)

    def offset_index(self, offsets) -> torch.Tensor:
        """int64 (n_off, 2) of :meth:`around`: each offset's step in map rows and in columns (whole
        tiles), or in tile rows and in ring slots (the ring)."""
        steps = [(di * self.wp, dj) if self.columns is None else (di, dj + self.slope * di) for di, dj in offsets]
        return torch.tensor(steps, dtype=torch.int64, device=self.device)

    def around(self, pos: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        """int64 (M * n_off,): map rows of positions ``pos`` moved by the offsets ``off``
        (:meth:`offset_index`; the ring also takes (0, dj): dj columns right)."""
        if self.columns is None:
            return (pos.view(-1, 1) + off.sum(1).view(1, -1)).view(-1)
        row = pos % self.hp
        slot = (pos // self.hp) % self.columns
        base = pos - row - slot * self.hp  # the tile's first map row
        return ((base + row).view(-1, 1) + off[:, 0].view(1, -1)
                + (slot.view(-1, 1) + off[:, 1].view(1, -1)) % self.columns * self.hp).view(-1)

    def right_rows(self, pos: torch.Tensor) -> torch.Tensor:
        """Decoder with ``columns``: the map rows of the pad_right slots right of positions ``pos``
        (the last pixels of their tile rows), which later rows read as outside the tile; position
        after position, pad_right each (none without a ring)."""
        if self.columns is None or not self.pad_right:
            return torch.empty(0, dtype=torch.int64, device=self.device)
        return self.around(pos, self._right)

    def clear_right(self, pos: torch.Tensor) -> None:
        """Zero, in every map, the :meth:`right_rows` of positions ``pos``."""
        self.zero_rows(self.right_rows(pos))

    def zero_rows(self, idx: torch.Tensor) -> None:
        """Zero map rows ``idx`` in every map (what :meth:`clear_right` computes and zeroes)."""
        if not len(idx):
            return
        for m in self.maps:
            if m is not None:
                m[idx] = 0

    def write_pixels(self, pos: torch.Tensor, values: torch.Tensor) -> None:
        """values: int64 (M, g), g = model channels (RGB) or 1 (a plane replicated)."""
        v = (values.float() - 128).expand(-1, self.channels) if values.shape[1] == 1 else values.float() - 128
        ones = torch.full((len(pos), 1), float(ONES_VALUE), device=self.device)
        self.map(0)[pos] = torch.cat([v, ones], 1)


@register("wavefront-pixelcnn")
class IntPixelCNN:
    """Integer-exact wavefront PixelCNN built from stored integer tensors and its config
    (implements :class:`armcodec.models.base.ExactModel`)."""

    config_class = PixelCNNConfig

    def __init__(self, cfg: PixelCNNConfig, first: IntConv, gates: list, mixes: list, head_hidden: IntConv,
                 head_out: IntConv, skip: IntConv | None = None):
        self.cfg, self.first, self.gates, self.mixes = cfg, first, gates, mixes
        self.head_hidden, self.head_out, self.skip = head_hidden, head_out, skip

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for name, layer in self.layers().items() for k, v in layer.tensors(name).items()}

    def layers(self) -> dict[str, IntConv]:
        """Every integer layer by name (the names of its stored tensors)."""
        out = {"first": self.first, "head_hidden": self.head_hidden, "head_out": self.head_out}
        if self.skip is not None:
            out["skip"] = self.skip
        for b, (g, m) in enumerate(zip(self.gates, self.mixes)):
            out[f"gate.{b}"], out[f"mix.{b}"] = g, m
        return out

    @classmethod
    def from_tensors(cls, cfg: PixelCNNConfig, t: dict) -> "IntPixelCNN":
        """Rebuild from the stored config; raises ValueError on any shape or dtype mismatch."""
        f = cfg.width
        strict = causal_offsets(cfg.first_reach, cfg.slope, strict=True)
        block = causal_offsets(cfg.block_reach, cfg.slope, strict=False)
        first = IntConv.from_tensors(t, "first", strict, 128, cfg.image_channels + 1, f)
        rmax = cfg.resid_max
        gates = [IntConv.from_tensors(t, f"gate.{b}", block, rmax, f, 2 * f) for b in range(cfg.blocks)]
        mixes = [IntConv.from_tensors(t, f"mix.{b}", [(0, 0)], GATE_MAX, f, f) for b in range(cfg.blocks)]
        hid = IntConv.from_tensors(t, "head_hidden", [(0, 0)], rmax, f, cfg.head_width)
        out = IntConv.from_tensors(t, "head_out", [(0, 0)], cfg.head_max, cfg.head_width, cfg.n_params)
        skip = IntConv.from_tensors(t, "skip", strict, 128, cfg.image_channels + 1, cfg.n_params) if cfg.linear_skip else None
        return IntPixelCNN(cfg, first, gates, mixes, hid, out, skip)

    def to_float(self) -> PixelCNN:
        """A float :class:`PixelCNN` with the dequantized weights (``w_int * s_w``, ``s_w`` from
        the stored multipliers): run with ``qat=True`` it tracks this model closely but not
        exactly, so it may only inform encoder choices (:mod:`armcodec.encoder.search`), never tables."""
        cfg = self.cfg
        model = PixelCNN(cfg)
        rs = cfg.resid_scale
        pairs = [(model.first, self.first, INPUT_SCALE, rs), (model.head_hidden, self.head_hidden, rs, cfg.head_scale),
                 (model.head_out, self.head_out, cfg.head_scale, param_scales(cfg))]
        pairs += [(g, ig, rs, GATE_SCALE) for g, ig in zip(model.gate_convs, self.gates)]
        pairs += [(m, im, GATE_SCALE, rs) for m, im in zip(model.mix_convs, self.mixes)]
        if self.skip is not None:
            pairs.append((model.skip, self.skip, INPUT_SCALE, param_scales(cfg)))
        dequantize_into(pairs)
        return model.eval()

    def float_proxy(self) -> PixelCNN:
        """:meth:`to_float` on this model's device, built once."""
        if getattr(self, "_proxy", None) is None:
            self._proxy = self.to_float().to(self.first.weight.device)
        return self._proxy

    def to(self, device) -> "IntPixelCNN":
        return IntPixelCNN(
            self.cfg, self.first.to(device), [g.to(device) for g in self.gates], [m.to(device) for m in self.mixes],
            self.head_hidden.to(device), self.head_out.to(device), self.skip.to(device) if self.skip else None,
        )

    # --- the model interface: schedule, memory, parameter sources ------------------------
    def step_of(self, i: np.ndarray, j: np.ndarray, tile: int) -> np.ndarray:
        """The wavefront step of pixel (i, j) of a tile: ``j + slope * i``."""
        return j + self.cfg.slope * i

    def precedes(self, di: int, dj: int) -> bool:
        """Whether the pixel at offset (di, dj) is on an earlier wavefront step."""
        return dj + self.cfg.slope * di < 0

    def tile_bytes(self, tile: int, decoding: bool) -> int:
        """Memory of one tile in a batch: the encoder holds the input and two residual maps of the
        whole tile and, per pixel, its parameters and the fit's and the offset search's temporaries;
        the decoder a ring of columns per tile row of every map and, per pixel, its schedule, values
        and feedback indices.  Per-pixel figures: peak RSS measured on kodim01 and a 1024x1024 image
        (docs/DESIGN.md, memory)."""
        if decoding:
            return (tile + 4) * self.ring_columns * 4 * self.map_channels + tile * tile * DECODE_PIXEL_BYTES
        return (tile + 4) * (tile + 8) * 4 * self.pass_channels + tile * tile * ENCODE_PIXEL_BYTES

    def encoder_pass(self, tiles: list, schedule, tile: int, device, values: torch.Tensor) -> "FullPass":
        """Every pixel of the batch known (values int64 (M, g) in schedule order): one parallel pass."""
        state = self.new_state(len(tiles), tile, device)
        return FullPass(self, state, state.flat_index(schedule.n, schedule.i, schedule.j), values)

    def decoder_steps(self, tiles: list, schedule, tile: int, device, channels: int) -> "CachedSteps":
        """Cached decoding, one wavefront step at a time, in a ring of columns per tile row."""
        state = self.new_state(len(tiles), tile, device, columns=self.ring_columns)
        pos = state.flat_index(schedule.n, schedule.i, schedule.j)
        last = torch.from_numpy(schedule.j == np.array([t.w for t in tiles])[schedule.n] - 1).to(device)
        return CachedSteps(self, state, pos, channels, last)

    # --- inference ----------------------------------------------------------------------
    @property
    def map_channels(self) -> int:
        """Channels of all activation maps of one position (for memory estimates)."""
        return self.cfg.image_channels + 1 + self.cfg.blocks * self.cfg.width

    @property
    def pass_channels(self) -> int:
        """Channels per position the encoder's single pass holds at once (the input map and two
        residual maps, see :meth:`run`)."""
        return self.cfg.image_channels + 1 + min(self.cfg.blocks, 2) * self.cfg.width

    @property
    def offsets(self) -> list[tuple[int, int]]:
        """Every (row, column) offset a stage reads."""
        return self.first.offsets + self.gates[0].offsets if self.gates else list(self.first.offsets)

    @property
    def ring_columns(self) -> int:
        """Columns per tile row a decoder's ring needs (:class:`WavefrontState`): more than the
        largest lag (wavefront steps back) of any offset, plus the columns right of a row's end
        that :meth:`WavefrontState.clear_right` zeroes."""
        lag = max(-dj - self.cfg.slope * di for di, dj in self.offsets)
        return lag + 1 + max(max(dj for _, dj in self.offsets), 0)

    def new_state(self, n_tiles: int, tile: int, device, columns: int | None = None) -> WavefrontState:
        return WavefrontState(self, n_tiles, tile, device, columns)

    def gather_index(self, state: WavefrontState, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The map rows the first layer and the blocks read around positions ``pos``: int64
        (len(pos) * n_off,) each, position after position (what :meth:`run` gathers)."""
        first_off = state.offset_index(self.first.offsets)
        gate_off = state.offset_index(self.gates[0].offsets) if self.gates else first_off
        return state.around(pos, first_off), state.around(pos, gate_off)

    def run(self, state: WavefrontState, pos: torch.Tensor, chunk: int = PASS_CHUNK, single_pass: bool = False,
            index: tuple[torch.Tensor, torch.Tensor] | None = None, extra=None) -> torch.Tensor:
        """Head parameters at positions ``pos`` (flat map rows), int64 (M, n_params).

        Stage by stage: stage s reads map s at its kernel offsets (filled at these or earlier
        positions) and writes map s+1 at ``pos``.  With ``pos`` = every position this is the
        encoder's parallel pass; with one wavefront step it is a decoder step.  ``single_pass``
        (the encoder's pass, the state used once): each residual map is freed as soon as the
        next is written, so at most two of them are held at a time.  ``extra``: integer terms
        aligned with ``pos`` added to the first layer's and the head's outputs (``extra.first(a, b)``,
        float64 (b - a, F), and ``extra.skip(a, b)``, int64 (b - a, n_params), asked for in position
        order: the temporal model's previous frame, :class:`armcodec.models.temporal_exact.ContextTerms`),
        or None."""
        rmax = self.cfg.resid_max
        if index is not None:  # the decoder's one step, its rows gathered in advance
            chunks, first_idx, gate_idx = [pos], [index[0]], [index[1]]
        else:
            chunks = [pos[k : k + chunk] for k in range(0, len(pos), chunk)] or [pos]
            # map rows each chunk reads, computed once for all stages
            rows = [self.gather_index(state, p) for p in chunks]
            first_idx, gate_idx = [r[0] for r in rows], [r[1] for r in rows]

        def read(src: torch.Tensor, idx: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            return src.index_select(0, idx).view(len(p), -1)

        spans = [(k * chunk, k * chunk + len(p)) for k, p in enumerate(chunks)] if index is None else [(0, len(pos))]
        # one chunk (a decoder step): the stream at the positions and the first layer's input stay
        # at hand, where several chunks read them back from the maps (the same numbers)
        one = len(chunks) == 1
        # several chunks (the encoder's pass): a stage's chunks are independent (each reads the
        # stage's input map and writes its own rows of the next), so they run in lanes, the
        # stages one after another; ``extra`` is asked for in position order, so not with it
        parallel = not one and extra is None and pos.device.type == "cpu"
        resid = pixels = None

        def stage(work) -> list:
            """work(k) for every chunk k, in lanes where ``parallel``; the results in chunk order."""
            threads.poll()
            if parallel:
                with threads.lanes(len(chunks)) as in_lanes:
                    if in_lanes is not None:
                        return in_lanes(work, range(len(chunks)))
            return [work(k) for k in range(len(chunks))]

        if index is not None and self.gates and self.skip is not None and fused.active(pos.device):
            if state.lean is None:  # a decoder step on numpy operands, where every block takes the int8 path
                state.lean = LeanStep(self, state)
            plan = state.lean.plan(len(pos))
            if plan is not None:
                threads.poll()
                return state.lean(plan, pos, index, extra)
        map0, map1 = state.map(0), state.map(1)  # (allocated here, not in the lanes)

        def first(k: int) -> tuple | None:
            p, (a, b) = chunks[k], spans[k]
            x = read(map0, first_idx[k], p)
            h = self.first.clamped(x, -rmax, rmax, None if extra is None else extra.first(a, b))
            map1[p] = h
            return (h, x) if one else None

        at_hand = stage(first)[0]
        if one:
            resid, pixels = at_hand
        out = []
        for b, (gate, mix) in enumerate(zip(self.gates, self.mixes)):
            last = b == len(self.gates) - 1
            src = state.map(b + 1)
            dest = None if last else state.map(b + 2)

            def block(k: int, gate=gate, mix=mix, src=src, dest=dest, last=last):
                p = chunks[k]
                h = gathered_block(gate, mix, src, gate_idx[k], len(p), resid, rmax, dest, p, keep=one or last)
                if not last:
                    return h if one else None
                params = int_head(self, h, read(map0, first_idx[k], p) if pixels is None else pixels)
                return params if extra is None else params + extra.skip(*spans[k])

            done = stage(block)
            if last:
                out = done
            elif one:
                resid = done[0]
            if single_pass:  # map b+3 (written by the next block) reuses map b+1's buffer
                del src, block
                state.release(b + 1, to=b + 3)
        return torch.cat(out) if out else torch.empty((0, self.cfg.n_params), dtype=torch.int64, device=pos.device)



class FullPass:
    """Encoder parameter source: one parallel pass over every pixel of the batch."""

    def __init__(self, model: IntPixelCNN, state: WavefrontState, pos: torch.Tensor, values: torch.Tensor, extra=None):
        state.write_pixels(pos, values)
        self.params = model.run(state, pos, single_pass=True, extra=extra).to(torch.int32)

    def __call__(self, a: int, b: int) -> torch.Tensor:
        return self.params[a:b].long()

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        pass


class CachedSteps:
    """Decoder parameter source: the cached model evaluated on one wavefront step (in a state with
    a ring of columns per tile row; ``last``: bool (M,), the pixels that end their tile row)."""

    def __init__(self, model: IntPixelCNN, state: WavefrontState, pos: torch.Tensor, channels: int, last: torch.Tensor,
                 extra=None):
        self.model, self.state, self.pos, self.extra = model, state, pos, extra
        # every step's gather rows and row ends, computed once for the batch (sliced per step)
        self.first_idx, self.gate_idx = model.gather_index(state, pos)
        self.n_first = len(model.first.offsets)
        self.n_gate = len(model.gates[0].offsets) if model.gates else self.n_first
        # the ring slots right of each row end, which clear_right zeroes when that end is computed
        self.n_right = state.pad_right if state.columns is not None else 0
        self.right_rows = state.right_rows(pos[last])
        self.ends_before = np.concatenate([[0], np.cumsum(last.cpu().numpy())]).astype(np.int64) * self.n_right

    def __call__(self, a: int, b: int) -> torch.Tensor:
        p = self.pos[a:b]
        if self.n_right:  # = state.clear_right(row ends among p), its rows computed in advance
            self.state.zero_rows(self.right_rows[self.ends_before[a] : self.ends_before[b]])
        index = (self.first_idx[a * self.n_first : b * self.n_first], self.gate_idx[a * self.n_gate : b * self.n_gate])
        extra = None if self.extra is None else self.extra.at(a)
        return self.model.run(self.state, p, index=index, extra=extra)

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        self.state.write_pixels(self.pos[a:b], values)
