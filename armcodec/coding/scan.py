"""The one coding loop, decoder-exact: the model's schedule over a batch of tiles, for both directions.

Pixel (i, j) of a tile is coded at step ``t = model.step_of(i, j)`` (the wavefront PixelCNN:
``j + slope * i``); every tile of the batch advances one step at a time, and a step codes, for
each tile, its pixels of step ``t`` (top row first), channel after channel.  Per step and channel the loop asks a parameter
source for the head's integers at the step's pixels, builds the integer tables, and
hands them to a coder::

    encode: params of all pixels (one parallel pass) -> tables -> EncodeCoder (pushes, last step first)
    decode: params of step t (cached model step)     -> tables -> DecodeCoder (pops)   -> pixels -> model input

With the adaptation tool each tile stream starts with the tile's offsets (one per 32x32 block and
channel, :mod:`armcodec.coding.side`), which shift every log2-scale of that block's tables; with
the orientation tool the tile's orientation comes before them; with the feedback tool the tile's
residual feedback coefficients follow them (:mod:`armcodec.coding.feedback`), and each channel's
means move by the feedback of the residuals around the pixel before its tables are built.  The loop itself only ever sees the coded (possibly mirrored) tile:
:mod:`armcodec.coding.planes` maps its pixels to the image.

ANS is a stack, so the encoder walks the same steps in reverse and pushes each step's
channels in reverse; the decoder then pops them in forward order.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np
import torch

from armcodec import threads
from armcodec.coding import feedback, side
from armcodec.coding.ans import StreamDecoder, StreamEncoder, rows_of
from armcodec.errors import ChecksumError, FormatError
from armcodec.exact.tables import MEAN_STEPS, BinnedTables, FlatTables, TableLUTs, channel_mixture


@dataclass(frozen=True)
class Tile:
    y: int
    x: int
    h: int
    w: int


def tile_grid(height: int, width: int, tile: int) -> list[Tile]:
    """Row-major tiles of at most tile x tile pixels covering the image."""
    return [
        Tile(y, x, min(tile, height - y), min(tile, width - x))
        for y in range(0, height, tile)
        for x in range(0, width, tile)
    ]


class Schedule:
    """Pixels of a batch of tiles ordered by (step, tile, row); ``starts[t]:starts[t+1]`` is step t.

    ``model``: any :class:`~armcodec.models.base.ExactModel` (its ``step_of``); tile: the nominal
    tile size.  n, i, j: int64 arrays (tile index within the batch, row, column inside the tile)."""

    def __init__(self, tiles: list[Tile], model, tile: int):
        ns, is_, js, steps = [], [], [], []
        local: dict[tuple[int, int], tuple] = {}  # a tile shape's pixels by (step, row, column)
        for k, t in enumerate(tiles):
            if (t.h, t.w) not in local:
                ii, jj = (a.ravel().astype(np.int64) for a in np.meshgrid(np.arange(t.h), np.arange(t.w), indexing="ij"))
                st = np.asarray(model.step_of(ii, jj, tile), dtype=np.int64)
                order = np.lexsort((ii, st))  # within a row the columns stay ascending (a stable sort)
                local[(t.h, t.w)] = (ii[order], jj[order], st[order])
            ii, jj, st = local[(t.h, t.w)]
            ns.append(np.full(len(ii), k, dtype=np.int64))
            is_.append(ii)
            js.append(jj)
            steps.append(st)
        self.n_tiles = len(tiles)
        n, i, j, step = (np.concatenate(a) if a else np.empty(0, np.int64) for a in (ns, is_, js, steps))
        # tiles in order, each sorted: a stable sort by step gives (step, tile, row, column)
        order = np.argsort(step, kind="stable")
        self.n, self.i, self.j, step = n[order], i[order], j[order], step[order]
        self.n_steps = int(step.max()) + 1 if len(step) else 0
        self.starts = np.searchsorted(step, np.arange(self.n_steps + 1))
        # (tile, start, end) runs inside each step, for the per-tile coders
        key = step * len(tiles) + self.n
        cuts = np.flatnonzero(np.diff(key)) + 1
        run_starts = np.concatenate([[0], cuts]).astype(np.int64)
        run_ends = np.concatenate([cuts, [len(key)]]).astype(np.int64)
        run_step = step[run_starts] if len(key) else np.empty(0, np.int64)
        self._runs = [[] for _ in range(self.n_steps)]
        for s, a, b in zip(run_step, run_starts, run_ends):
            self._runs[s].append((int(self.n[a]), int(a - self.starts[s]), int(b - self.starts[s])))

    def runs(self, t: int) -> list[tuple[int, int, int]]:
        """[(tile, start, end)] of step t, offsets relative to the step's first pixel."""
        return self._runs[t]

    def spans(self, max_pixels: int = 0) -> list[tuple[int, int]]:
        """Consecutive steps [t0, t1) grouped so that each group has at most ``max_pixels`` pixels
        (a step alone when it has more, and every step alone with 0): the encoder, which knows
        every pixel, builds the tables of many steps at once; the decoder needs one step at a time."""
        if max_pixels <= 0:
            return [(t, t + 1) for t in range(self.n_steps)]
        out, t0 = [], 0
        for t in range(1, self.n_steps + 1):
            if t == self.n_steps or self.starts[t + 1] - self.starts[t0] > max_pixels:
                out.append((t0, t))
                t0 = t
        return out


class EncodeCoder:
    """Pushes the known pixel values; one StreamEncoder per tile.  adaptation: the batch's
    offsets (the adaptation tool), pushed last so that they head each stream; None without it.
    fb: the batch's residual feedback (the feedback tool), pushed just before the offsets.
    known: bool (pixels in schedule order,) or None: pixels the decoder already has (copied
    blocks of a video frame), which are not coded."""

    reverse = True

    def __init__(self, values: torch.Tensor, n_tiles: int, adaptation: side.Adaptation | None = None,
                 fb: feedback.Feedback | None = None, known: np.ndarray | None = None):
        self.values = values  # int64 (pixels in schedule order, g)
        self.adaptation = adaptation
        self.feedback = fb
        self.known = known
        self.streams = [StreamEncoder() for _ in range(n_tiles)]
        self._pending: list = []

    def code(self, a: int, b: int, c: int, tables, steps, rows: np.ndarray | None = None) -> torch.Tensor:
        """``tables``: the channel's :class:`~armcodec.exact.tables.FlatTables` or ``BinnedTables``
        of the coded pixels; ``steps``: [(offset, runs)] of every step in a..b (offset: its first
        pixel's, from a); pushed at end_step.  ``rows``: the coded pixels' offsets from a
        (ascending), whose tables ``tables`` holds; None: all."""
        v = self.values[a:b, c]
        symbols = tables.split(v if rows is None else v[torch.from_numpy(rows).to(v.device)])
        levels = [(tables.first(), symbols[0])] + ([(tables.second(symbols[0]), symbols[1])] if tables.levels == 2 else [])
        self._pending.append(([(rows_of(q), s.cpu().numpy()) for q, s in levels], rows))
        return v

    def end_step(self, steps) -> None:
        """Push what the span coded: its steps last first, each step's channels last first, and
        within a tile's run a sample's second symbols before its first (a stack)."""
        for off, runs in reversed(steps):
            for levels, rows in reversed(self._pending):
                for tile, s, e in runs:
                    i0, i1 = (off + s, off + e) if rows is None else np.searchsorted(rows, (off + s, off + e))
                    if i1 > i0:
                        for q_rows, symbols in reversed(levels):
                            self.streams[tile].push_rows(symbols[i0:i1], q_rows[i0:i1])
        self._pending = []

    def finish(self) -> list[bytes]:
        """The tiles' streams, after the feedback coefficients, the adaptation offsets, then the
        orientation (each if any) went on top."""
        if self.adaptation is not None:
            orientations = self.adaptation.orientations
            for k, enc in enumerate(self.streams):
                if self.feedback is not None:
                    coefs = self.feedback.tile_symbols(k)
                    enc.push(coefs, feedback.coef_tables(len(coefs), self.feedback.scale(k)))
                    header = self.feedback.header_symbols(k)
                    if header is not None:
                        enc.push(header[1:], side.side_tables(1, feedback.N_SCALES))
                        enc.push(header[:1], side.side_tables(1, feedback.LEVELS))
                symbols = self.adaptation.tile_symbols(k)
                enc.push(symbols, side.side_tables(len(symbols)))
                if orientations is not None:
                    enc.push(orientations[k : k + 1], side.side_tables(1, side.N_ORIENTATIONS))
        return [enc.finish() for enc in self.streams]


class CountingCoder:
    """The encoder's direction without ANS (``armcodec eval``): every value known, nothing pushed;
    :func:`scan` still builds every table and returns the model's bits."""

    reverse = True

    def __init__(self, values: torch.Tensor, adaptation: side.Adaptation | None = None, known: np.ndarray | None = None):
        self.values, self.adaptation, self.known = values, adaptation, known

    def code(self, a: int, b: int, c: int, tables, steps, rows: np.ndarray | None = None) -> torch.Tensor:
        return self.values[a:b, c]

    def end_step(self, steps) -> None:
        pass


class DecodeCoder:
    """Pops pixel values; one StreamDecoder per tile.  With ``blocks`` (the adaptation tool: the
    block of every pixel of the schedule and the block count per tile, from ``Adaptation.blocks``)
    each stream first gives its tile's orientation (``oriented``), then its adaptation offsets, then
    with ``fb`` (the feedback tool: the batch's :class:`feedback.Feedback`) its feedback
    coefficients (after the level and spread symbols with feature set 3), written into ``fb``.
    ``values``: int64 (M, channels), every decoded value in schedule order.  ``known``: (bool (M,),
    int64 (M, channels)) or None: pixels the decoder has already (copied blocks of a video frame)
    and their values, which no stream codes."""

    reverse = False

    def __init__(self, streams: list[bytes], device, channels: int = 1,
                 blocks: tuple[np.ndarray, list[int]] | None = None, oriented: bool = False,
                 fb: feedback.Feedback | None = None, n_pixels: int = 0,
                 known: tuple[np.ndarray, np.ndarray] | None = None):
        self.streams = [StreamDecoder(s) for s in streams]
        self.device = device
        self.values = torch.zeros((n_pixels, channels), dtype=torch.int64, device=device)
        self.known, self._known_values = (None, None) if known is None else known
        self.adaptation = None
        if blocks is not None:
            block_of, counts = blocks
            orientations = None
            if oriented:
                table = side.side_tables(1, side.N_ORIENTATIONS)
                orientations = np.array([side.orientation_from_symbol(d.pop(table)[0]) for d in self.streams], dtype=np.int64)
            rows = [side.from_symbols(d.pop(side.side_tables(n * channels))).reshape(n, channels)
                    for d, n in zip(self.streams, counts)]
            shifts = torch.from_numpy(np.concatenate(rows)).to(device)
            self.adaptation = side.Adaptation(torch.from_numpy(block_of).to(device), counts, shifts, orientations)
            if fb is not None:
                for k, d in enumerate(self.streams):
                    level, scale = 0, None
                    if fb.sets > 1:
                        level = int(d.pop(side.side_tables(1, feedback.LEVELS))[0])
                        if level >= feedback.LEVELS:
                            raise FormatError("tile stream starts with an invalid feedback level (corrupted file)")
                        scale = int(d.pop(side.side_tables(1, feedback.N_SCALES))[0])
                        if scale >= feedback.N_SCALES:
                            raise FormatError("tile stream starts with an invalid feedback coefficient spread (corrupted file)")
                    n = fb.n_symbols(k, level)
                    fb.read_tile(k, level, scale, d.pop(feedback.coef_tables(n, scale)))

    def code(self, a: int, b: int, c: int, tables, steps, rows: np.ndarray | None = None) -> torch.Tensor:
        if len(steps) != 1:
            raise ValueError("the decoder pops one wavefront step at a time")
        runs = [(tile, s, e) if rows is None else (tile, *np.searchsorted(rows, (s, e))) for tile, s, e in steps[0][1]]
        n = b - a if rows is None else len(rows)
        symbols = []  # each tile's run pops its first symbols, then (binned) their second ones
        for level in range(tables.levels):
            q_rows = rows_of(tables.first() if level == 0 else tables.second(symbols[0]))
            out = np.empty(n, dtype=np.int64)
            for tile, i0, i1 in runs:
                if i1 > i0:
                    out[i0:i1] = self.streams[tile].pop_rows(q_rows[i0:i1])
            symbols.append(torch.from_numpy(out).to(self.device))
        coded = tables.join(symbols)
        if rows is None:
            v = coded
        else:
            v = torch.from_numpy(self._known_values[a:b, c].copy()).to(self.device)
            v[torch.from_numpy(rows).to(self.device)] = coded
        if len(self.values):
            self.values[a:b, c] = v
        return v

    def end_step(self, steps) -> None:
        pass

    def check_exhausted(self) -> None:
        for k, s in enumerate(self.streams):
            if not s.exhausted():
                raise FormatError(f"tile stream {k} has data left after its last pixel (corrupted file)")


CHUNK_PIXELS = 1 << 13  # a larger step builds its tables in parts of whole tiles (each ~10 KiB a pixel)


def tile_parts(steps, n: int, limit: int):
    """Parts of a span of ``n`` pixels whose tables are built and coded together: (start, end,
    steps of the part, offsets from its start).  With ``limit`` (one step only) the step splits
    between tiles into parts of about ``limit`` pixels (a tile's pixels stay in one part), so
    every tile stream sees its symbols in the same order and memory stays bounded when a step
    covers a large share of the batch (a multi-scale model's pass); else the span is one part."""
    if not limit or n <= limit:
        return [(0, n, steps)]
    (_, runs), = steps

    def part(first: int, end: int):
        lo, hi = runs[first][1], runs[end - 1][2]
        return lo, hi, [(0, [(tile, s - lo, e - lo) for tile, s, e in runs[first:end]])]

    parts, first = [], 0
    for k in range(1, len(runs)):
        if runs[k][2] - runs[first][1] > limit:  # run k would take the part past the limit
            parts.append(part(first, k))
            first = k
    return parts + [part(first, len(runs))]


def scan(schedule: Schedule, params_at, coder, channels: int, cfg, luts: TableLUTs,
         fb: feedback.Feedback | None = None, span_pixels: int = 0, binned: bool = False) -> np.ndarray:
    """Run the wavefront in the coder's direction; returns the model's -log2 likelihood in bits of
    each tile of the batch, float64 (n_tiles,).

    ``span_pixels`` (the encoder only): build the tables of consecutive steps together, up to this
    many pixels at once (:meth:`Schedule.spans`); the same tables, symbols and order, fewer calls.

    params_at: the model's :class:`~armcodec.models.base.ParamSource`: params_at(a, b) -> int64
    (b-a, n_params) for the pixels schedule[a:b] (decode: a model step, which may read the pixels
    of earlier steps); after a step, params_at.observe(a, b, values) receives the step's pixel
    values (int64 (b-a, channels)).  The coder's
    ``adaptation`` (offsets per block and channel, or None) goes into every table of its block; its
    ``known`` (bool (M,) or None) marks pixels no stream codes (copied blocks): no table, no bits;
    ``fb`` (residual feedback, or None) moves the means, and receives each coded channel's residuals.
    ``binned`` (coder tool 5): every sample is coded as two symbols (:class:`BinnedTables`), else
    as one (:class:`FlatTables`)."""
    tables_of = BinnedTables if binned else FlatTables
    # every coded sample's frequency (out of 2**unit_bits, which costs 0 bits), its bits summed once at the end
    unit_bits = tables_of.unit_bits
    counts = torch.full((int(schedule.starts[-1]) if schedule.n_steps else 0, channels), 2**unit_bits,
                        dtype=torch.int64, device=coder.values.device)
    adaptation = coder.adaptation
    known = coder.known  # bool (M,) or None: pixels not coded (copied blocks)
    spans = schedule.spans(span_pixels)
    for t0, t1 in reversed(spans) if coder.reverse else spans:
        a, b = int(schedule.starts[t0]), int(schedule.starts[t1])
        if a == b:  # a tile narrower than the wavefront's slope leaves some steps empty
            continue
        threads.poll()
        steps = [(int(schedule.starts[t]) - a, schedule.runs(t)) for t in range(t0, t1)]
        params = params_at(a, b)
        values = torch.empty((b - a, channels), dtype=torch.int64, device=params.device)
        residuals = torch.empty_like(values)
        for lo, hi, part in tile_parts(steps, b - a, CHUNK_PIXELS if t1 == t0 + 1 else 0):
            pa, pb = a + lo, a + hi  # the pixels of whole tiles of the step (or the whole span)
            rows = None if known is None else np.flatnonzero(~known[pa:pb])  # the coded pixels, from pa
            if rows is not None and len(rows) == pb - pa:
                rows = None
            sel = None if rows is None else torch.from_numpy(rows).to(params.device)
            for c in range(channels):
                blocks = None if adaptation is None else adaptation.block_of[pa:pb]
                weights, means, scale_idx = channel_mixture(params[lo:hi], c, values[lo:hi], cfg, luts,
                                                            None if adaptation is None else adaptation.shifts, blocks)
                if fb is not None:  # the model's own mean, before the feedback; the means moved by it
                    expected, means = fb.move_means(pa, pb, c, residuals[lo:hi], weights, means)
                if sel is None:
                    tables = tables_of(weights, means, scale_idx, luts)
                    values[lo:hi, c] = coder.code(pa, pb, c, tables, part)
                    counts[pa:pb, c] = tables.counts(values[lo:hi, c])
                else:  # the tables of the coded pixels only; a known pixel costs nothing
                    tables = tables_of(weights[sel], means[sel], scale_idx[sel], luts)
                    values[lo:hi, c] = coder.code(pa, pb, c, tables, part, rows)
                    counts[pa + sel, c] = tables.counts(values[lo:hi, c][sel])
                if fb is not None:
                    residuals[lo:hi, c] = MEAN_STEPS * values[lo:hi, c] - expected
                    fb.write(pa, pb, c, residuals[lo:hi, c])
            coder.end_step(part)
        params_at.observe(a, b, values)
    pixel_bits = (unit_bits - torch.log2(counts.double())).sum(1)  # as counts_bits, per pixel
    n = torch.as_tensor(schedule.n, device=pixel_bits.device)
    return torch.zeros(schedule.n_tiles, dtype=torch.float64, device=pixel_bits.device).index_add_(0, n, pixel_bits).cpu().numpy()


def samples_crc(samples: np.ndarray, stream: int) -> int:
    """CRC32 of the stream's index in the file (u32 little-endian) followed by the tile's decoded
    samples, uint8 (h, w, g) in C order: a stream moved to another tile's place fails its check."""
    seed = zlib.crc32(int(stream).to_bytes(4, "little"))
    return zlib.crc32(np.ascontiguousarray(samples, dtype=np.uint8).tobytes(), seed) & 0xFFFFFFFF


def check_crc(samples: np.ndarray, stream: int, expected: int, what: str) -> None:
    got = samples_crc(samples, stream)
    if got != expected:
        raise ChecksumError(f"{what}: CRC32 of decoded samples {got:08x} != stored {expected:08x} (corrupted file or wrong model)")
