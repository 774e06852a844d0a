"""Integer-exact inference of the wavefront PixelCNN, and export from a trained float model.

Every layer computes ``acc = sum(w * a) + b`` with int8-range weights ``w`` and small
integer activations ``a`` held in float32 tensors; export checks the worst case
``sum(|w|) * max|a| + |b| < 2**24`` per output channel, so every partial sum is an exact
integer in any summation order (layers that could exceed it run in float64, exact below
2**53).  Requantization ``floor(acc * m * 2**-shift + 1/2)`` runs in float64 with an
integer multiplier ``m < 2**15``: exact as well.  Nonlinearities are clamps and the gate
``(a * b) >> 6``.  The result does not depend on batch, order, threads, BLAS or device.

A layer is applied by gathering its inputs at the kernel offsets from a padded
activation map (``WavefrontState``) and one matrix product.  The encoder runs each stage
over all positions; the decoder runs all stages on the positions of one wavefront step.
Both go through :meth:`IntPixelCNN.run`, so their tables are the same numbers.

Data flow of one stage::

    map (rows, C_in) --gather offsets--> (M, n_off*C_in) --@ W--> acc --requant, clamp--> (M, C_out)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from armcodec.models.pixelcnn import (
    ACT_MAX,
    GATE_MAX,
    GATE_SCALE,
    HEAD_SCALE,
    INPUT_SCALE,
    ONES_VALUE,
    MaskedConv2d,
    PixelCNN,
    PixelCNNConfig,
    causal_offsets,
    param_scales,
    weight_scale,
)

F32_EXACT = 2**24
F64_SAFE = 2**37  # acc * m (< 2**15) stays below 2**52
MULT_BITS = 15


@dataclass
class IntConv:
    """One integer layer: offsets (di, dj); weight (n_off*C_in, C_out) int-valued float32;
    bias, mult (C_out,) int-valued float64; inv_shift (C_out,) float64 powers of two."""

    offsets: list[tuple[int, int]]
    weight: torch.Tensor
    bias: torch.Tensor
    mult: torch.Tensor
    inv_shift: torch.Tensor
    in_max: int

    def __post_init__(self):
        bound = self.weight.double().abs().sum(0) * self.in_max + self.bias.abs()
        worst = float(bound.max())
        if worst >= F64_SAFE:
            raise ValueError(f"layer accumulator bound {worst:.3g} exceeds 2**37")
        self.exact_f32 = worst < F32_EXACT
        self._w64 = None if self.exact_f32 else self.weight.double()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (M, n_off*C_in) integers -> float64 (M, C_out) requantized integers."""
        acc = (x @ self.weight).double() if self.exact_f32 else x.double() @ self._w64
        acc = acc + self.bias
        return torch.floor(acc * self.mult * self.inv_shift + 0.5)

    def to(self, device) -> "IntConv":
        return IntConv(
            self.offsets, self.weight.to(device), self.bias.to(device), self.mult.to(device),
            self.inv_shift.to(device), self.in_max,
        )

    def tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        shift = (-torch.log2(self.inv_shift)).round().to(torch.int32)
        return {
            f"{prefix}.weight": self.weight.to(torch.int8),
            f"{prefix}.bias": self.bias.to(torch.int64),
            f"{prefix}.mult": self.mult.to(torch.int32),
            f"{prefix}.shift": shift,
        }

    @staticmethod
    def from_tensors(t: dict, prefix: str, offsets, in_max: int, c_in: int, c_out: int) -> "IntConv":
        w = t[f"{prefix}.weight"]
        if w.dtype != torch.int8 or tuple(w.shape) != (len(offsets) * c_in, c_out):
            raise ValueError(f"{prefix}.weight: expected int8 {(len(offsets) * c_in, c_out)}, got {w.dtype} {tuple(w.shape)}")
        for name, dt in (("bias", torch.int64), ("mult", torch.int32), ("shift", torch.int32)):
            v = t[f"{prefix}.{name}"]
            if v.dtype != dt or tuple(v.shape) != (c_out,):
                raise ValueError(f"{prefix}.{name}: expected {dt} ({c_out},)")
        shift = t[f"{prefix}.shift"].long()
        if bool((shift < 0).any()) or bool((shift > 52).any()):
            raise ValueError(f"{prefix}.shift out of range")
        return IntConv(
            list(offsets), w.float(), t[f"{prefix}.bias"].double(), t[f"{prefix}.mult"].double(),
            torch.pow(2.0, -shift.double()), in_max,
        )


def export_conv(conv, offsets, in_scale: float, out_scale: torch.Tensor, in_max: int) -> IntConv:
    """Float conv (masked or 1x1) -> IntConv with the QAT model's weight and bias grids."""
    w = conv.weight.detach().double()
    if isinstance(conv, MaskedConv2d):
        w = w * conv.mask.double()
    s_w = weight_scale(w.float()).double()  # (C_out,), as in quantized_weight_bias
    w_int = torch.clamp(torch.round(w / s_w[:, None, None, None]), -127, 127)
    up, left = (conv.reach[0], conv.reach[1]) if isinstance(conv, MaskedConv2d) else (0, 0)
    rows = [w_int[:, :, di + up, dj + left] for di, dj in offsets]  # each (C_out, C_in)
    weight = torch.cat(rows, 1).t().contiguous().float()  # (n_off*C_in, C_out)
    bias = torch.round(conv.bias.detach().double() / (s_w * in_scale))
    real = s_w * in_scale / out_scale  # acc -> output integer multiplier
    shift = torch.floor(MULT_BITS - 1 - torch.log2(real)).clamp(0, 52)
    mult = torch.round(real * torch.pow(2.0, shift))
    return IntConv(list(offsets), weight, bias, mult, torch.pow(2.0, -shift), in_max)


class WavefrontState:
    """Padded activation maps of a batch of T x T tiles, flattened to (rows, C).

    Map 0 holds the input (pixel - 128 per model channel, and ONES_VALUE inside the image);
    map b+1 holds the residual stream entering block b.  Positions outside a tile's image
    area are never computed and read as zero, exactly like the zero padding in training.

    The encoder's pass over every position keeps whole tiles (``columns`` None).  The decoder
    only ever reads positions a few wavefront steps behind the one it computes (the largest lag
    of any layer offset), so with ``columns`` (at least :attr:`IntPixelCNN.ring_columns`) each tile row keeps
    just that many columns, column ``j`` in slot ``j % columns``: a slot is overwritten only after
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
        self.columns = columns
        self.wp = self.pad_left + tile + self.pad_right if columns is None else columns
        self.rows = n_tiles * self.hp * self.wp
        self.chans = [cfg.image_channels + 1] + [cfg.width] * cfg.blocks
        self.maps: list[torch.Tensor | None] = [None] * len(self.chans)  # allocated (zeros) on first use
        self.channels = cfg.image_channels
        self.device = device
        # clear_right's offsets: the columns right of a row's end
        self._right = torch.tensor([(0, dj) for dj in range(1, self.pad_right + 1)], dtype=torch.int64, device=device)

    def map(self, k: int) -> torch.Tensor:
        """Map k, allocated as zeros on first use."""
        if self.maps[k] is None:
            self.maps[k] = torch.zeros((self.rows, self.chans[k]), dtype=torch.float32, device=self.device)
        return self.maps[k]

    def release(self, k: int) -> None:
        """Free map k (the encoder's single pass, once no later stage reads it)."""
        self.maps[k] = None

    def flat_index(self, n: np.ndarray, i: np.ndarray, j: np.ndarray) -> torch.Tensor:
        col = j + self.pad_left if self.columns is None else j % self.columns
        idx = (n * self.hp + i + self.pad_top) * self.wp + col
        return torch.as_tensor(idx, dtype=torch.int64, device=self.device)

    def offset_index(self, offsets) -> torch.Tensor:
        """int64 (n_off, 2): each offset's row step (in map rows) and column step."""
        return torch.tensor([(di * self.wp, dj) for di, dj in offsets], dtype=torch.int64, device=self.device)

    def around(self, pos: torch.Tensor, off: torch.Tensor) -> torch.Tensor:
        """int64 (M * n_off,): map rows of positions ``pos`` moved by the offsets ``off``."""
        if self.columns is None:
            return (pos.view(-1, 1) + off.sum(1).view(1, -1)).view(-1)
        col = pos % self.columns
        return ((pos - col).view(-1, 1) + off[:, 0].view(1, -1)
                + (col.view(-1, 1) + off[:, 1].view(1, -1)) % self.columns).view(-1)

    def clear_right(self, pos: torch.Tensor) -> None:
        """Decoder with ``columns``: zero, in every map, the pad_right slots right of positions
        ``pos`` (the last pixels of their tile rows), which later rows read as outside the tile."""
        if self.columns is None or not len(pos) or not self.pad_right:
            return
        idx = self.around(pos, self._right)
        for m in self.maps:
            if m is not None:
                m[idx] = 0

    def write_pixels(self, pos: torch.Tensor, values: torch.Tensor) -> None:
        """values: int64 (M, g), g = model channels (RGB) or 1 (a plane replicated)."""
        v = (values.float() - 128).expand(-1, self.channels) if values.shape[1] == 1 else values.float() - 128
        ones = torch.full((len(pos), 1), float(ONES_VALUE), device=self.device)
        self.map(0)[pos] = torch.cat([v, ones], 1)


class IntPixelCNN:
    """Integer-exact wavefront PixelCNN built from stored integer tensors and its config."""

    def __init__(self, cfg: PixelCNNConfig, first: IntConv, gates: list, mixes: list, head_hidden: IntConv,
                 head_out: IntConv, skip: IntConv | None = None):
        self.cfg, self.first, self.gates, self.mixes = cfg, first, gates, mixes
        self.head_hidden, self.head_out, self.skip = head_hidden, head_out, skip

    # --- construction -------------------------------------------------------------------
    @staticmethod
    def from_float(model: PixelCNN) -> "IntPixelCNN":
        cfg = model.cfg
        f = cfg.width
        strict = causal_offsets(cfg.first_reach, cfg.slope, strict=True)
        block = causal_offsets(cfg.block_reach, cfg.slope, strict=False)
        full = lambda n, s: torch.full((n,), s, dtype=torch.float64)  # noqa: E731
        rs, rmax = cfg.resid_scale, cfg.resid_max
        first = export_conv(model.first, strict, INPUT_SCALE, full(f, rs), 128)
        gates = [export_conv(g, block, rs, full(2 * f, GATE_SCALE), rmax) for g in model.gate_convs]
        mixes = [export_conv(m, [(0, 0)], GATE_SCALE, full(f, rs), GATE_MAX) for m in model.mix_convs]
        hid = export_conv(model.head_hidden, [(0, 0)], rs, full(cfg.head_width, HEAD_SCALE), rmax)
        out = export_conv(model.head_out, [(0, 0)], HEAD_SCALE, param_scales(cfg), ACT_MAX)
        skip = export_conv(model.skip, strict, INPUT_SCALE, param_scales(cfg), 128) if cfg.linear_skip else None
        return IntPixelCNN(cfg, first, gates, mixes, hid, out, skip)

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {**self.first.tensors("first"), **self.head_hidden.tensors("head_hidden"), **self.head_out.tensors("head_out")}
        if self.skip is not None:
            out.update(self.skip.tensors("skip"))
        for b, (g, m) in enumerate(zip(self.gates, self.mixes)):
            out.update(g.tensors(f"gate.{b}"))
            out.update(m.tensors(f"mix.{b}"))
        return out

    @staticmethod
    def from_tensors(cfg: PixelCNNConfig, t: dict) -> "IntPixelCNN":
        """Rebuild from the stored config; raises ValueError on any shape or dtype mismatch."""
        f = cfg.width
        strict = causal_offsets(cfg.first_reach, cfg.slope, strict=True)
        block = causal_offsets(cfg.block_reach, cfg.slope, strict=False)
        first = IntConv.from_tensors(t, "first", strict, 128, cfg.image_channels + 1, f)
        rmax = cfg.resid_max
        gates = [IntConv.from_tensors(t, f"gate.{b}", block, rmax, f, 2 * f) for b in range(cfg.blocks)]
        mixes = [IntConv.from_tensors(t, f"mix.{b}", [(0, 0)], GATE_MAX, f, f) for b in range(cfg.blocks)]
        hid = IntConv.from_tensors(t, "head_hidden", [(0, 0)], rmax, f, cfg.head_width)
        out = IntConv.from_tensors(t, "head_out", [(0, 0)], ACT_MAX, cfg.head_width, cfg.n_params)
        skip = IntConv.from_tensors(t, "skip", strict, 128, cfg.image_channels + 1, cfg.n_params) if cfg.linear_skip else None
        return IntPixelCNN(cfg, first, gates, mixes, hid, out, skip)

    def to_float(self) -> PixelCNN:
        """A float :class:`PixelCNN` with the dequantized weights (``w_int * s_w``, ``s_w`` from
        the stored multipliers): run with ``qat=True`` it tracks this model closely but not
        exactly, so it may only inform encoder choices (:mod:`armcodec.coding.adapt`), never tables."""
        cfg = self.cfg
        model = PixelCNN(cfg)
        rs = cfg.resid_scale
        pairs = [(model.first, self.first, INPUT_SCALE, rs), (model.head_hidden, self.head_hidden, rs, HEAD_SCALE),
                 (model.head_out, self.head_out, HEAD_SCALE, param_scales(cfg))]
        pairs += [(g, ig, rs, GATE_SCALE) for g, ig in zip(model.gate_convs, self.gates)]
        pairs += [(m, im, GATE_SCALE, rs) for m, im in zip(model.mix_convs, self.mixes)]
        if self.skip is not None:
            pairs.append((model.skip, self.skip, INPUT_SCALE, param_scales(cfg)))
        with torch.no_grad():
            for conv, ic, in_scale, out_scale in pairs:
                s_w = (ic.mult.cpu() * ic.inv_shift.cpu()) * torch.as_tensor(out_scale, dtype=torch.float64) / in_scale
                c_out, c_in = conv.weight.shape[:2]
                w = torch.zeros(conv.weight.shape, dtype=torch.float64)
                up, left = (conv.reach[0], conv.reach[1]) if isinstance(conv, MaskedConv2d) else (0, 0)
                rows = ic.weight.cpu().double().t().reshape(c_out, len(ic.offsets), c_in)
                for k, (di, dj) in enumerate(ic.offsets):
                    w[:, :, di + up, dj + left] = rows[:, k]
                conv.weight.copy_(w * s_w.view(-1, 1, 1, 1))
                conv.bias.copy_(ic.bias.cpu() * s_w * in_scale)
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

    def run(self, state: WavefrontState, pos: torch.Tensor, chunk: int = 1 << 14, single_pass: bool = False) -> torch.Tensor:
        """Head parameters at positions ``pos`` (flat map rows), int64 (M, n_params).

        Stage by stage: stage s reads map s at its kernel offsets (filled at these or earlier
        positions) and writes map s+1 at ``pos``.  With ``pos`` = every position this is the
        encoder's parallel pass; with one wavefront step it is a decoder step.  ``single_pass``
        (the encoder's pass, the state used once): each residual map is freed as soon as the
        next is written, so at most two of them are held at a time."""
        f, rmax = self.cfg.width, self.cfg.resid_max
        chunks = [pos[k : k + chunk] for k in range(0, len(pos), chunk)] or [pos]
        first_off = state.offset_index(self.first.offsets)
        gate_off = state.offset_index(self.gates[0].offsets) if self.gates else first_off
        # map rows each chunk reads, computed once for all stages
        first_idx = [state.around(p, first_off) for p in chunks]
        gate_idx = [state.around(p, gate_off) for p in chunks]

        def read(src: torch.Tensor, idx: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
            return src.index_select(0, idx).view(len(p), -1)

        for p, idx in zip(chunks, first_idx):
            h = self.first(read(state.map(0), idx, p))
            state.map(1)[p] = h.clamp_(-rmax, rmax).float()
        out = []
        for b, (gate, mix) in enumerate(zip(self.gates, self.mixes)):
            last = b == len(self.gates) - 1
            src = state.map(b + 1)
            for k, p in enumerate(chunks):
                u = gate(read(src, gate_idx[k], p))  # (M, 2F)
                a = u[:, :f].clamp(-GATE_MAX, GATE_MAX)
                g = torch.floor(a * (u[:, f:] + GATE_MAX // 2).clamp(0, GATE_MAX) / GATE_MAX)
                v = mix(g.float()).clamp_(-rmax, rmax)
                h = (src[p].double() + v).clamp_(-rmax, rmax).float()
                if last:
                    out.append(self.head(h, read(state.map(0), first_idx[k], p)))
                else:
                    state.map(b + 2)[p] = h
            if single_pass:
                del src
                state.release(b + 1)
        return torch.cat(out) if out else torch.empty((0, self.cfg.n_params), dtype=torch.int64, device=pos.device)

    def head(self, h: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """h: residual stream, pixels: the first layer's gathered input -> int64 parameters."""
        z = self.head_hidden(h).clamp_(0, ACT_MAX).float()
        out = self.head_out(z)
        if self.skip is not None:
            out = out + self.skip(pixels)
        return out.long()
