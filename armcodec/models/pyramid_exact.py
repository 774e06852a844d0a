"""The polyphase pyramid, integer-exact: decoder-exact inference (registered as ``polyphase-pyramid``).

A tile (padded to a multiple of ``2**levels``) is coded coarsest level first: the pixels of
``x[::2**levels, ::2**levels]`` by the base wavefront PixelCNN
(:class:`~armcodec.models.pixelcnn_exact.IntPixelCNN`, its own steps), then, level after level,
the three missing phases of the level's 2x2 polyphase split, one *pass* each
(:data:`~armcodec.models.polyphase_exact.PHASES`).  A pass runs a dense integer network
(:class:`IntPassNet`) over the level's grid of every tile of the batch at once, reading only the
pixels of earlier steps (:func:`~armcodec.models.polyphase_exact.pass_input`); the encoder runs every pass
on the known image (:class:`PyramidPass`), the decoder each pass when its step comes
(:class:`PyramidSteps`).  Both go through :meth:`IntPyramid.pass_params`, so their tables are
the same numbers.

Data flow of one pass::

    tile grid (N, C, Tp, Tp) --level, pass_input--> (N, C_in, h, w) --3x3 gather--> IntConv stages
      --> head integers at the target phase's pixels, in schedule order
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from armcodec import threads
from armcodec.coding.scan import Schedule, Tile
from armcodec.exact import fused
from armcodec.exact.layers import IntConv
from armcodec.models.pixelcnn import GATE_MAX, GATE_SCALE, INPUT_SCALE, param_scales
from armcodec.models.pixelcnn_exact import (DECODE_PIXEL_BYTES, ENCODE_PIXEL_BYTES, IntPixelCNN, dequantize_into,
                                            gated_block, int_head)
from armcodec.models.polyphase_exact import PHASES, level_grid, padded_side, pass_input
from armcodec.models.pyramid import Pyramid, PyramidConfig
from armcodec.models.registry import register

CHUNK_POSITIONS = 1 << 13  # grid positions per product of a pass (its temporaries stay near the caches: ~15 MiB)
INPUT_MAX = 128  # |pass_input| <= 128 (pixel - 128, INSIDE_VALUE, LEVEL_VALUE * level)


def gather(x: torch.Tensor, offsets: list[tuple[int, int]]) -> torch.Tensor:
    """x: (N, h, w, C) -> (N*h*w, n_off*C): each position's neighbours at ``offsets`` (zero outside
    the grid), offset-major like the IntConv weight rows."""
    n, h, w, c = x.shape
    r = max(max(abs(di), abs(dj)) for di, dj in offsets)
    xp = F.pad(x, (0, 0, r, r, r, r))
    cols = torch.cat([xp[:, r + di : r + di + h, r + dj : r + dj + w] for di, dj in offsets], 3)
    return cols.view(n * h * w, len(offsets) * c)


class IntPassNet:
    """One pass's integer network: the PixelCNN's stages with dense offsets."""

    def __init__(self, cfg: PyramidConfig, first: IntConv, gates: list, mixes: list, head_hidden: IntConv,
                 head_out: IntConv, skip: IntConv):
        self.cfg, self.first, self.gates, self.mixes = cfg, first, gates, mixes
        self.head_hidden, self.head_out, self.skip = head_hidden, head_out, skip

    def layers(self) -> dict[str, IntConv]:
        out = {"first": self.first, "head_hidden": self.head_hidden, "head_out": self.head_out, "skip": self.skip}
        for b, (g, m) in enumerate(zip(self.gates, self.mixes)):
            out[f"gate.{b}"], out[f"mix.{b}"] = g, m
        return out

    @staticmethod
    def from_tensors(cfg: PyramidConfig, t: dict, prefix: str, k: int) -> "IntPassNet":
        f, c_in, rmax = cfg.width, cfg.pass_inputs(k), cfg.resid_max
        r = cfg.kernel // 2
        dense = [(di, dj) for di in range(-r, r + 1) for dj in range(-r, r + 1)]
        first = IntConv.from_tensors(t, f"{prefix}.first", dense, INPUT_MAX, c_in, f)
        gates = [IntConv.from_tensors(t, f"{prefix}.gate.{b}", dense, rmax, f, 2 * f) for b in range(cfg.blocks)]
        mixes = [IntConv.from_tensors(t, f"{prefix}.mix.{b}", [(0, 0)], GATE_MAX, f, f) for b in range(cfg.blocks)]
        hid = IntConv.from_tensors(t, f"{prefix}.head_hidden", [(0, 0)], rmax, f, cfg.head_width)
        out = IntConv.from_tensors(t, f"{prefix}.head_out", [(0, 0)], cfg.head_max, cfg.head_width, cfg.n_params)
        skip = IntConv.from_tensors(t, f"{prefix}.skip", dense, INPUT_MAX, c_in, cfg.n_params)
        return IntPassNet(cfg, first, gates, mixes, hid, out, skip)

    def to(self, device) -> "IntPassNet":
        return IntPassNet(self.cfg, self.first.to(device), [g.to(device) for g in self.gates],
                          [m.to(device) for m in self.mixes], self.head_hidden.to(device), self.head_out.to(device),
                          self.skip.to(device))

    @property
    def halo(self) -> int:
        """Rows of input an output row reads on each side (the spatial convs' reach, summed)."""
        return (self.cfg.kernel // 2) * (1 + len(self.gates))

    def run(self, inp: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """inp: float32 (N, C_in, h, w) integers (:func:`pass_input`); rows: int64 flat positions
        (n*h*w + r*w + c) whose parameters are wanted -> int64 (len(rows), n_params), in that order.
        The trunk runs on every position of the grid (its kernels read the neighbours); a grid of
        more than :data:`CHUNK_POSITIONS` positions (one large tile) runs in bands of rows, each
        with :attr:`halo` rows more on either side: the same numbers, bounded memory."""
        n, _, h, w = inp.shape
        if n * h * w <= CHUNK_POSITIONS or n > 1:
            return self.run_grid(inp, rows)
        out = torch.empty((len(rows), self.cfg.n_params), dtype=torch.int64, device=rows.device)
        row_of = torch.div(rows, w, rounding_mode="floor")
        band = max(1, CHUNK_POSITIONS // w)
        for r0 in range(0, h, band):
            mine = torch.nonzero((row_of >= r0) & (row_of < r0 + band)).view(-1)
            if len(mine):
                top = max(0, r0 - self.halo)
                out[mine] = self.run_grid(inp[:, :, top : min(h, r0 + band + self.halo)], rows[mine] - top * w)
        return out

    def run_grid(self, inp: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """:meth:`run` on the whole grid at once.  Each dense layer runs as one convolution where
        :meth:`IntConv.dense` can (a CPU: 2-4x faster than gathering every window, the same
        integers), else as a product of the gathered windows."""
        rmax = self.cfg.resid_max
        n, _, h, w = inp.shape
        x = inp.permute(0, 2, 3, 1).contiguous()
        windows: dict[tuple, torch.Tensor] = {}  # the input's gathered windows, when a layer needs them

        def on_input(layer: IntConv) -> torch.Tensor:  # the layer's accumulators
            out = layer.dense_acc(x)
            if out is None:
                key = tuple(layer.offsets)
                windows[key] = windows[key] if key in windows else gather(x, layer.offsets)
                out = layer.acc(windows[key])
            return out

        hs = fused.requant_clamp(on_input(self.first), self.first.scale, -rmax, rmax)
        for gate, mix in zip(self.gates, self.mixes):
            grid = hs.view(n, h, w, -1)
            u = gate.dense_acc(grid)
            hs = gated_block(gate, mix, gather(grid, gate.offsets) if u is None else None, hs, rmax, gate_acc=u)
        skip = self.skip.requantize(on_input(self.skip).index_select(0, rows))
        return int_head(self, hs.index_select(0, rows), None, skip_out=skip)


@register("polyphase-pyramid")
class IntPyramid:
    """Integer-exact polyphase pyramid built from stored integer tensors and its config
    (implements :class:`armcodec.models.base.ExactModel`)."""

    config_class = PyramidConfig

    def __init__(self, cfg: PyramidConfig, base: IntPixelCNN, passes: list[IntPassNet]):
        self.cfg, self.base, self.passes = cfg, base, passes

    def layers(self) -> dict[str, IntConv]:
        """Every integer layer by name (the names of its stored tensors)."""
        out = {f"base.{name}": layer for name, layer in self.base.layers().items()}
        for k, net in enumerate(self.passes):
            out.update({f"pass.{k}.{name}": layer for name, layer in net.layers().items()})
        return out

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: v for name, layer in self.layers().items() for k, v in layer.tensors(name).items()}

    @classmethod
    def from_tensors(cls, cfg: PyramidConfig, t: dict) -> "IntPyramid":
        """Rebuild from the stored config; raises ValueError on any shape or dtype mismatch."""
        base = IntPixelCNN.from_tensors(cfg.base_config(), {k[5:]: v for k, v in t.items() if k.startswith("base.")})
        return IntPyramid(cfg, base, [IntPassNet.from_tensors(cfg, t, f"pass.{k}", k) for k in range(len(PHASES))])

    def to(self, device) -> "IntPyramid":
        return IntPyramid(self.cfg, self.base.to(device), [p.to(device) for p in self.passes])

    def to_float(self) -> Pyramid:
        """A float :class:`Pyramid` with the dequantized weights (close to this model, not exact:
        encoder choices only)."""
        model = Pyramid(self.cfg)
        model.base.load_state_dict(self.base.to_float().state_dict())
        rs = self.cfg.resid_scale
        pairs = []
        for net, inet in zip(model.passes, self.passes):
            pairs += [(net.first, inet.first, INPUT_SCALE, rs), (net.head_hidden, inet.head_hidden, rs, self.cfg.head_scale),
                      (net.head_out, inet.head_out, self.cfg.head_scale, param_scales(self.cfg)),
                      (net.skip, inet.skip, INPUT_SCALE, param_scales(self.cfg))]
            pairs += [(g, ig, rs, GATE_SCALE) for g, ig in zip(net.gate_convs, inet.gates)]
            pairs += [(m, im, GATE_SCALE, rs) for m, im in zip(net.mix_convs, inet.mixes)]
        dequantize_into(pairs)
        return model.eval()

    def float_proxy(self) -> Pyramid:
        """:meth:`to_float` on this model's device, built once."""
        if getattr(self, "_proxy", None) is None:
            self._proxy = self.to_float().to(self.base.first.weight.device)
        return self._proxy

    # --- the model interface: schedule, memory, parameter sources ------------------------
    def base_steps(self, tile: int) -> int:
        """Wavefront steps of the base on the coarsest grid of a nominal tile."""
        tc = padded_side(tile, self.cfg.levels) >> self.cfg.levels
        return tc + self.cfg.base_slope * (tc - 1)

    def step_of(self, i: np.ndarray, j: np.ndarray, tile: int) -> np.ndarray:
        """The base's wavefront step on the coarsest grid, then one step per level and phase."""
        lv = self.cfg.levels
        i, j = np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)
        m = (i | j) | (1 << lv)  # the level of a pixel: trailing zeros of i | j, at most `levels`
        level = np.log2(m & -m).astype(np.int64)
        pi, pj = (i >> level) & 1, (j >> level) & 1
        k = np.where(pi == 1, np.where(pj == 1, 0, 2), 1)  # PHASES.index((pi, pj))
        passes = self.base_steps(tile) + 3 * (lv - 1 - level) + k
        return np.where(level == lv, (j >> lv) + self.cfg.base_slope * (i >> lv), passes)

    def pass_of(self, step: int, tile: int) -> tuple[int, int] | None:
        """(level, pass) of a step, None for the base's steps."""
        idx = step - self.base_steps(tile)
        return None if idx < 0 else (self.cfg.levels - 1 - idx // 3, idx % 3)

    def precedes(self, di: int, dj: int) -> bool:
        """No offset is coded earlier for every pixel (a coarse pixel's neighbours come after it)."""
        return False

    def tile_bytes(self, tile: int, decoding: bool) -> int:
        """Memory of one tile in a batch: its padded grid of centred values (float32, channels and
        inside mark), the per-pixel figures of the wavefront model and the base's own tile on the
        coarsest grid; a pass's temporaries are bounded by :data:`CHUNK_POSITIONS` per batch."""
        tp = padded_side(tile, self.cfg.levels)
        per_pixel = DECODE_PIXEL_BYTES if decoding else ENCODE_PIXEL_BYTES
        return tp * tp * 4 * (self.cfg.image_channels + 1) + tile * tile * per_pixel + \
            self.base.tile_bytes(tp >> self.cfg.levels, decoding)

    def encoder_pass(self, tiles: list, schedule: Schedule, tile: int, device, values: torch.Tensor) -> "PyramidPass":
        return PyramidPass(self, tiles, schedule, tile, device, values)

    def decoder_steps(self, tiles: list, schedule: Schedule, tile: int, device, channels: int) -> "PyramidSteps":
        return PyramidSteps(self, tiles, schedule, tile, device, channels)

    # --- inference ----------------------------------------------------------------------
    def pass_params(self, grid: "TileGrid", level: int, k: int, rows: torch.Tensor) -> torch.Tensor:
        """Head integers of pass ``k`` of ``level`` at grid positions ``rows`` (flat n*h*w + r*w + c
        on the level's coarse grid), int64 (len(rows), n_params), in the order of ``rows``."""
        centred, inside = level_grid(grid.centred, grid.inside, level)
        inp = pass_input(centred, inside, k, level)  # (N, C_in, h, w)
        n, _, h, w = inp.shape
        per = max(1, CHUNK_POSITIONS // (h * w))  # tiles per product
        out = torch.empty((len(rows), self.cfg.n_params), dtype=torch.int64, device=rows.device)
        tile_of = torch.div(rows, h * w, rounding_mode="floor")
        ordered = len(rows) < 2 or bool((tile_of[1:] >= tile_of[:-1]).all())  # schedule order: by tile
        if ordered:  # each product's rows are one slice
            ends = torch.searchsorted(tile_of, torch.arange(0, n + per, per, device=rows.device)).tolist()
        for c, t0 in enumerate(range(0, n, per)):
            threads.poll()
            mine = slice(ends[c], ends[c + 1]) if ordered else torch.nonzero((tile_of >= t0) & (tile_of < t0 + per)).view(-1)
            if len(rows[mine]):
                out[mine] = self.passes[k].run(inp[t0 : t0 + per], rows[mine] - t0 * h * w)
        return out


class TileGrid:
    """A batch's tiles on one padded grid: ``centred`` float32 (N, C, Tp, Tp), pixel - 128 where
    known (zero elsewhere), ``inside`` (N, 1, Tp, Tp) 1 inside each tile's image area."""

    def __init__(self, model: IntPyramid, tiles: list[Tile], tile: int, device):
        tp = padded_side(tile, model.cfg.levels)
        self.channels = model.cfg.image_channels
        self.centred = torch.zeros((len(tiles), self.channels, tp, tp), dtype=torch.float32, device=device)
        self.inside = torch.zeros((len(tiles), 1, tp, tp), dtype=torch.float32, device=device)
        for k, t in enumerate(tiles):
            self.inside[k, :, : t.h, : t.w] = 1

    def write(self, n: torch.Tensor, i: torch.Tensor, j: torch.Tensor, values: torch.Tensor) -> None:
        """values: int64 (M, g), g = model channels or 1 (a plane, replicated)."""
        v = values.float() - 128
        self.centred[n, :, i, j] = v.expand(-1, self.channels) if v.shape[1] == 1 else v


class _Plan:
    """What both parameter sources share: the batch's grid, the base on the coarsest grid and, per
    pass step, the flat grid rows of its pixels."""

    def __init__(self, model: IntPyramid, tiles: list, schedule: Schedule, tile: int, device):
        lv = model.cfg.levels
        self.model, self.schedule, self.tile = model, schedule, tile
        self.grid = TileGrid(model, tiles, tile, device)
        n0 = int(schedule.starts[min(model.base_steps(tile), schedule.n_steps)])
        self.n_base = n0
        tc = padded_side(tile, lv) >> lv
        self.coarse_tiles = [Tile(0, 0, -(-t.h // 2**lv), -(-t.w // 2**lv)) for t in tiles]
        self.coarse = Schedule(self.coarse_tiles, model.base, tc)
        same = (np.array_equal(self.coarse.n, schedule.n[:n0]) and np.array_equal(self.coarse.i << lv, schedule.i[:n0])
                and np.array_equal(self.coarse.j << lv, schedule.j[:n0]))
        if not same:  # the schedule's first steps are the base's wavefront, pixel for pixel
            raise RuntimeError("the pyramid's schedule does not start with its base's")
        self.tc = tc
        self.n = torch.from_numpy(schedule.n).to(device)
        self.i = torch.from_numpy(schedule.i).to(device)
        self.j = torch.from_numpy(schedule.j).to(device)

    def step_rows(self, t: int) -> tuple[int, int, torch.Tensor]:
        """Pass step t: (level, pass, the flat rows of its pixels on the level's coarse grid)."""
        level, k = self.model.pass_of(t, self.tile)
        a, b = int(self.schedule.starts[t]), int(self.schedule.starts[t + 1])
        half = self.grid.centred.shape[2] >> (level + 1)  # the level's coarse grid side
        r, c = self.i[a:b] >> (level + 1), self.j[a:b] >> (level + 1)
        return level, k, (self.n[a:b] * half + r) * half + c

    def step_params(self, t: int) -> torch.Tensor:
        """Head integers of pass step t's pixels, in schedule order."""
        level, k, rows = self.step_rows(t)
        return self.model.pass_params(self.grid, level, k, rows)


class PyramidPass(_Plan):
    """Encoder parameter source: every value known; the base's pass, then every pass of every
    level on the known image (``params``: every pixel's integers, int32, in schedule order)."""

    def __init__(self, model: IntPyramid, tiles: list, schedule: Schedule, tile: int, device, values: torch.Tensor):
        super().__init__(model, tiles, schedule, tile, device)
        self.grid.write(self.n, self.i, self.j, values)
        parts = [model.base.encoder_pass(self.coarse_tiles, self.coarse, self.tc, device, values[: self.n_base]).params]
        parts += [self.step_params(t).to(torch.int32) for t in range(model.base_steps(tile), schedule.n_steps)]
        self.params = torch.cat(parts) if parts else torch.empty((0, model.cfg.n_params), dtype=torch.int32, device=device)

    def __call__(self, a: int, b: int) -> torch.Tensor:
        return self.params[a:b].long()

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        pass


class PyramidSteps(_Plan):
    """Decoder parameter source: the base's cached wavefront steps, then each pass when its step
    comes, on the pixels decoded so far."""

    def __init__(self, model: IntPyramid, tiles: list, schedule: Schedule, tile: int, device, channels: int):
        super().__init__(model, tiles, schedule, tile, device)
        self.base = model.base.decoder_steps(self.coarse_tiles, self.coarse, self.tc, device, channels)

    def __call__(self, a: int, b: int) -> torch.Tensor:
        if b <= self.n_base:
            return self.base(a, b)
        t = int(np.searchsorted(self.schedule.starts, a, side="right")) - 1
        if int(self.schedule.starts[t + 1]) != b:
            raise ValueError("the decoder asks for one step at a time")
        return self.step_params(t)

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        if b <= self.n_base:
            self.base.observe(a, b, values)
        self.grid.write(self.n[a:b], self.i[a:b], self.j[a:b], values)
