"""The integer layers' elementwise steps and the binned frequency tables, fused: decoder-exact.

After each product the integer network requantizes, clamps, gates and adds the residual stream
(:mod:`armcodec.exact.layers`, :func:`armcodec.models.pixelcnn_exact.gated_block`).  As torch
operations that is 4-10 passes over the rows per layer (float32 -> float64, multiply-add, floor,
-> float32, clamps, the gate's products), each a fresh tensor: at a decoder step's few hundred
rows each pass is a few microseconds of overhead, at a pyramid pass's 8,192 rows each one moves
megabytes through memory (a (8,192, 96) requantization: 0.63 ms).  Here each step is one loop
over the rows, compiled once by numba (``cache=True``: later processes load it) where numba is
installed and the tensors are on a CPU (0.23 ms and 7 us for those two; one thread, no pool of
its own beside torch's), from the first coding job large enough to pay for their start
(:func:`prepare`).  Elsewhere, or with ``ARMCODEC_FUSED=0``, the same steps run as the torch
operations they replace (:func:`reference`).

The binned tables (:class:`armcodec.exact.tables.BinnedTables`, coder tool 5) are two dozen
torch operations a channel and step (indices, an ``embedding_bag`` over the lookup table's
windows, shifts, the division of :func:`armcodec.exact.tables.quantized`); here one loop a row
sums each component's window straight from the table and divides: the pyramid's decode 1.28 ->
1.14 s.  The division runs in float64 and is corrected to the exact floor by its int64 remainder.

Both give the same integers.  ``floor(acc * scale + 1/2)`` is computed in float64, where
``acc * scale`` is exact (``acc`` an integer below 2**37, ``scale = m * 2**-shift`` with ``m <
2**15``: :mod:`armcodec.exact.layers`), so the sum rounds once, in the same place, whether or not
the compiler fuses it into one multiply-add; the clamps and the gate's ``a * s / GATE_MAX`` (a
power of two) are exact.  The torch path converts the requantized values to float32 before its
clamps; beyond 2**24 that rounds them, monotonically, to values still beyond every clamp bound,
so each clamp gives what it gives in float64 here.  Tested on random and adversarial values
(ties at exactly one half, accumulators beyond 2**24): ``tests/test_fused.py``; the tables against
their direct formula at the extremes: ``tests/test_tables.py``.
"""
from __future__ import annotations

import os

import numpy as np
import torch

_kernels = None  # numba's compiled kernels (the module fused_kernels), False where numba is missing or switched off


MIN_SAMPLES = 1 << 14  # a coding job from this size starts the kernels (see prepare)


def _compiled():
    global _kernels
    if _kernels is None:
        _kernels = False
        if os.environ.get("ARMCODEC_FUSED", "1") != "0":
            try:
                from armcodec.exact import fused_kernels  # imports numba

                _kernels = fused_kernels
            except ImportError:
                pass
    return _kernels


def prepare(samples: int) -> None:
    """Before a coding job of ``samples`` samples: start the kernels (once per process) if the job
    is large enough to pay for their start, 0.3-0.6 s (numba's import, and its first load of the
    cached machine code, which imports scipy where it is installed); smaller jobs in a process
    that has not started them run the torch steps (the same integers).  From about 16K samples
    (a 74x74 RGB image) the compiled steps pay: a 64x64 crop's `default` decode in a fresh process
    took 1.0-1.8 s either way, a 96x96 crop's 2.0-2.1 s against 2.5-3.0 s, a 481x321 photograph's
    7.8-8.2 s against 15.4-16.8 s (docs/PROFILE.md, twentieth session)."""
    if _kernels is None and samples >= MIN_SAMPLES:
        _compiled()


def enabled(device=None) -> bool:
    """Start the kernels if they are not started; whether they run tensors on ``device`` (a CPU;
    numba installed; not switched off)."""
    return (device is None or torch.device(device).type == "cpu") and bool(_compiled())


def active(device) -> bool:
    """Whether the kernels are started and run tensors on ``device`` (starts nothing)."""
    return bool(_kernels) and torch.device(device).type == "cpu"


def set_enabled(on: bool) -> None:
    """Switch the compiled kernels off (the torch operations run) or on (tests)."""
    global _kernels
    _kernels = None if on else False
    if on:
        _compiled()


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A CPU tensor's samples as a numpy array (a contiguous copy only where the tensor is not)."""
    return t.numpy() if t.is_contiguous() else t.contiguous().numpy()


class StepBuffers:
    """The temporaries of a decoder step on the compiled path (the first layer's output, the
    gathered int8 rows, the gate's rows, the new stream, the head's hidden layer: the step's of
    :class:`armcodec.models.pixelcnn_exact.LeanStep`), kept from one step to the next of the same decode, each as a
    torch tensor and the numpy array of its memory (the products read the one, the loops write the
    other, no conversion a step): the first rows of a buffer of its kind, grown when a step has
    more rows.  One per decode state and process (not shared between threads); what a step takes
    from it is read within the step only."""

    def __init__(self):
        self._buffers: dict = {}  # (kind, cols, dtype) -> the buffer
        self._views: dict = {}  # (kind, cols, dtype, rows) -> its first rows (a step's row counts recur)

    def take(self, kind, rows: int, cols: int, dtype: torch.dtype) -> tuple[torch.Tensor, np.ndarray]:
        """(rows, cols) of ``dtype`` (torch, numpy): the first rows of the buffer of this kind,
        width and dtype, with what it held (grown to at least twice its rows when a step has more)."""
        view = self._views.get((kind, cols, dtype, rows))
        if view is None:
            key = (kind, cols, dtype)
            buf = self._buffers.get(key)
            if buf is None or len(buf) < rows:
                buf = self._buffers[key] = torch.empty((rows if buf is None else max(rows, 2 * len(buf)), cols), dtype=dtype)
                self._views = {k: v for k, v in self._views.items() if k[:3] != key}  # views of the old buffer
            view = self._views[(kind, cols, dtype, rows)] = (buf[:rows], buf[:rows].numpy())
        return view


def compiled():
    """The compiled kernels (:mod:`armcodec.exact.fused_kernels`) where they are started, else None."""
    return _kernels or None


def _use(acc: torch.Tensor):
    return _kernels if _kernels and acc.device.type == "cpu" else False


def split_int8(x: torch.Tensor, k: int) -> torch.Tensor | None:
    """x: (M, K) integers (float32) -> int8 (2M, K), rows ``x >> k`` then ``x - (x >> k << k)`` (the
    halves :class:`armcodec.exact.kernels.Int8Product` multiplies); None where the kernels do not run."""
    kn = _use(x)
    if not kn:
        return None
    out = torch.empty((2 * x.shape[0], x.shape[1]), dtype=torch.int8)
    kn.split_int8(as_numpy(x), int(k), out.numpy())
    return out


def gather_int8(src: torch.Tensor, idx: torch.Tensor, n_off: int, k: int) -> torch.Tensor | None:
    """The rows ``idx`` (int64, M * n_off: position after position) of the map ``src`` (float32 (R, C)
    integers) gathered as int8: (M, n_off * C) for k = 0, else split as :func:`split_int8` splits,
    (2M, n_off * C); None where the kernels do not run."""
    kn = _use(src)
    if not kn:
        return None
    m = len(idx) // n_off
    out = torch.empty((2 * m if k else m, n_off * src.shape[1]), dtype=torch.int8)
    kn.gather_int8(as_numpy(src), as_numpy(idx), int(n_off), int(k), out.numpy())
    return out


def join_int32(prod: torch.Tensor, m: int, k: int, bias: torch.Tensor) -> torch.Tensor | None:
    """The int32 product of :func:`split_int8`'s halves (k > 0) or of M int8 rows (k = 0), (2M or M,
    N) -> float64 (M, N) ``(prod[:M] << k) + prod[M:2M] + bias``; None where the kernels do not run."""
    kn = _use(prod)
    if not kn:
        return None
    out = torch.empty((m, prod.shape[1]), dtype=torch.float64)
    kn.join_int32(prod.numpy(), int(m), int(k), as_numpy(bias), out.numpy())
    return out


def requant_clamp(acc: torch.Tensor, scale: torch.Tensor, lo: float, hi: float, add: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """acc: float32 or float64 (M, C) integer accumulators; scale: float64 (C,) -> float32 (M, C)
    ``clamp(floor(acc * scale + 1/2) [+ add], lo, hi)`` (``add``: float64 (M, C) integers or None)."""
    k = _use(acc)
    if not k:
        return reference.requant_clamp(acc, scale, lo, hi, add)
    out = torch.empty(acc.shape, dtype=torch.float32)
    k.requant_clamp(as_numpy(acc), as_numpy(scale), float(lo), float(hi), out.numpy(), None if add is None else as_numpy(add.double()))
    return out


def gate(acc: torch.Tensor, scale: torch.Tensor, gate_max: int) -> torch.Tensor:
    """The gate of a residual block: acc float32 or float64 (M, 2F) of the gate layer, requantized
    to ``u`` -> float32 (M, F) ``floor(a * s / gate_max)``, ``a = clamp(u[:, :F], -gate_max,
    gate_max)``, ``s = clamp(u[:, F:] + gate_max // 2, 0, gate_max)``."""
    k = _use(acc)
    if not k:
        return reference.gate(acc, scale, gate_max)
    out = torch.empty((acc.shape[0], acc.shape[1] // 2), dtype=torch.float32)
    k.gate(as_numpy(acc), as_numpy(scale), float(gate_max), out.numpy())
    return out


def mix_residual(acc: torch.Tensor, scale: torch.Tensor, resid: torch.Tensor, rmax: int) -> torch.Tensor:
    """A block's end: acc float32 or float64 (M, F) of the mix layer, resid float32 (M, F) -> float32
    ``clamp(clamp(floor(acc * scale + 1/2), -rmax, rmax) + resid, -rmax, rmax)``."""
    k = _use(acc)
    if not k:
        return reference.mix_residual(acc, scale, resid, rmax)
    out = torch.empty(acc.shape, dtype=torch.float32)
    k.mix_residual(as_numpy(acc), as_numpy(scale), as_numpy(resid), float(rmax), out.numpy())
    return out


def join_gate(prod: torch.Tensor, m: int, k: int, bias: torch.Tensor, scale: torch.Tensor, gate_max: int,
              int8: bool) -> torch.Tensor:
    """:func:`gate` of a gate layer's accumulators given as its int8 product unjoined (int32 (2M, 2F),
    or (M, 2F) for k = 0: :func:`join_int32`'s input), joined in the same loop -> (M, F), int8 where
    ``int8`` (the next layer's int8 product reads it as is), else float32.  Compiled path only."""
    out = torch.empty((m, prod.shape[1] // 2), dtype=torch.int8 if int8 else torch.float32)
    _kernels.join_gate(prod.numpy(), int(m), int(k), as_numpy(bias), as_numpy(scale), float(gate_max), out.numpy())
    return out


def mix_residual_joined(prod: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor, resid: torch.Tensor, rmax: int,
                        dest: torch.Tensor | None = None, rows: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`mix_residual` of a mix layer's accumulators given as the int32 product of M int8 rows
    (``prod + bias``) -> float32 (M, F); with ``dest`` (a float32 map) each row also written to
    ``dest[rows]`` (int64 (M,)) in the same loop.  Compiled path only."""
    out = torch.empty(prod.shape, dtype=torch.float32)
    _kernels.mix_residual_joined(prod.numpy(), as_numpy(bias), as_numpy(scale), as_numpy(resid), float(rmax), out.numpy(),
                                 None if dest is None else dest.numpy(), None if rows is None else as_numpy(rows))
    return out


def mix_residual_rows(prod: torch.Tensor, bias: torch.Tensor, scale: torch.Tensor, src: torch.Tensor, rows: torch.Tensor,
                      rmax: int, dest: torch.Tensor | None, keep: bool) -> torch.Tensor | None:
    """:func:`mix_residual_joined` of the stream at the positions read from the map ``src``'s rows
    ``rows`` (int64 (M,)) in the loop (the encoder's pass: no gathered copy of them), each result row
    written to ``dest[rows]`` (a float32 map, not ``src``) -> float32 (M, F) where ``keep`` (or
    ``dest`` is None), else None.  Compiled path only."""
    out = torch.empty(prod.shape, dtype=torch.float32) if keep or dest is None else None
    _kernels.mix_residual_rows(prod.numpy(), as_numpy(bias), as_numpy(scale), as_numpy(src), as_numpy(rows), float(rmax),
                               None if dest is None else dest.numpy(), None if out is None else out.numpy())
    return out


def requant_sum(acc: torch.Tensor, scale: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
    """A head's output: acc float32 or float64 (M, C), add float64 (M, C) integers (the skip
    layer's requantized output) -> int64 ``floor(acc * scale + 1/2) + add``."""
    k = _use(acc)
    if not k:
        return reference.requant_sum(acc, scale, add)
    out = torch.empty(acc.shape, dtype=torch.int64)
    k.requant_sum(as_numpy(acc), as_numpy(scale), as_numpy(add.double()), out.numpy())
    return out


def quantized(d: torch.Tensor, total: int, one_division: bool) -> torch.Tensor | None:
    """:func:`armcodec.exact.tables.quantized` (int64 (M, n + 1) increasing masses -> int64 (M, n)
    frequencies summing to ``total``) as one loop: one division where ``one_division`` (the product
    fits), else the split product; None where the kernels do not run (the caller's torch steps)."""
    k = _use(d)
    if not k:
        return None
    out = torch.empty((d.shape[0], d.shape[1] - 1), dtype=torch.int64)
    k.quantized(as_numpy(d), total, bool(one_division), out.numpy())
    return out


def binned_first(weights, means, scale_idx, rows, stride: int, consts: np.ndarray, one_division: bool, n_bins: int
                 ) -> torch.Tensor | None:
    """:class:`armcodec.exact.tables.BinnedTables`' first tables (int64 (M, n_bins)) from the
    mixture's int64 (M, K) weights, clamped means and scale indices, in one loop per row (the
    weighted windows summed straight from ``rows``, the view of the lookup table the torch steps
    give ``embedding_bag``, then :func:`quantized`'s row); ``consts``: int64 (CDF_OFFSET,
    MEAN_STEPS, BIN, PRECISION, CDF_BITS, FLOOR_SHIFT, N_SYMBOLS).  None where the kernels do not run."""
    k = _use(weights)
    if not k:
        return None
    out = torch.empty((weights.shape[0], n_bins), dtype=torch.int64)
    k.binned_first(as_numpy(weights), as_numpy(means), as_numpy(scale_idx), rows.numpy(), stride, consts, bool(one_division),
                   out.numpy())
    return out


def binned_second(weights, means, scale_idx, bins, rows, stride: int, consts: np.ndarray, one_division: bool
                  ) -> torch.Tensor | None:
    """The second tables (int64 (M, BIN)) of the bins ``bins`` (int64 (M,)), as :func:`binned_first`."""
    k = _use(weights)
    if not k:
        return None
    out = torch.empty((weights.shape[0], int(consts[2])), dtype=torch.int64)
    k.binned_second(as_numpy(weights), as_numpy(means), as_numpy(scale_idx), as_numpy(bins), rows.numpy(), stride, consts,
                    bool(one_division), out.numpy())
    return out


def mixture(params: torch.Tensor, channel: int, known: torch.Tensor, mixtures: int, c_all: int, coef_steps: int,
            bounds: np.ndarray, wlut: torch.Tensor, shifts: torch.Tensor | None, blocks: torch.Tensor | None):
    """:func:`armcodec.exact.tables.channel_mixture` as one loop (weights, means, scale indices, int64
    (M, K) each); None where the kernels do not run."""
    k = _use(params)
    if not k:
        return None
    weights, means, scale_idx = torch.empty((3, params.shape[0], mixtures), dtype=torch.int64)
    k.mixture(as_numpy(params), int(channel), as_numpy(known), int(c_all), int(coef_steps), bounds, as_numpy(wlut),
              None if shifts is None else as_numpy(shifts), None if blocks is None else as_numpy(blocks),
              weights.numpy(), means.numpy(), scale_idx.numpy())
    return weights, means, scale_idx


def feedback_means(weights: torch.Tensor, means: torch.Tensor, residuals: torch.Tensor, around: torch.Tensor, offset: int,
                   earlier: torch.Tensor, channel: int, cross: torch.Tensor | None, constant: int, coefs: torch.Tensor,
                   set_of: torch.Tensor, coef_steps: int, mean_min: int, mean_max: int) -> torch.Tensor | None:
    """:meth:`armcodec.coding.feedback.Feedback.move_means` as one loop: the expected values (int64
    (M,)), ``means`` moved in place; None where the kernels do not run."""
    k = _use(weights)
    if not k:
        return None
    expected = torch.empty(weights.shape[0], dtype=torch.int64)
    k.feedback_means(as_numpy(weights), means.numpy(), as_numpy(residuals), as_numpy(around), int(offset), as_numpy(earlier), int(channel),
                     None if cross is None else as_numpy(cross), int(constant), as_numpy(coefs), as_numpy(set_of), int(coef_steps),
                     int(mean_min), int(mean_max), expected.numpy())
    return expected


class reference:
    """The same steps as torch operations (any device; the definition the kernels are tested against)."""

    @staticmethod
    def requantize(acc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """float64 (M, C) ``floor(acc * scale + 1/2)`` (in place when ``acc`` is float64; the
        product is exact, so the sum rounds once, as in :meth:`IntConv.requantize`'s ``addcmul``)."""
        acc = acc if acc.dtype == torch.float64 else acc.double()
        return acc.mul_(scale).add_(0.5).floor_()

    @staticmethod
    def requant_clamp(acc, scale, lo, hi, add=None):
        v = reference.requantize(acc, scale)
        if add is not None:
            v += add
        return v.clamp_(lo, hi).float()

    @staticmethod
    def gate(acc, scale, gate_max):
        u = reference.requantize(acc, scale).float()
        f = u.shape[1] // 2
        a = u[:, :f].clamp_(-gate_max, gate_max)
        s = u[:, f:].add_(gate_max // 2).clamp_(0, gate_max)
        return a.mul_(s).mul_(1 / gate_max).floor_()  # a power of two: exact

    @staticmethod
    def requant_sum(acc, scale, add):
        return (reference.requantize(acc, scale) + add).long()

    @staticmethod
    def mix_residual(acc, scale, resid, rmax):
        v = reference.requantize(acc, scale).float().clamp_(-rmax, rmax)
        return v.add_(resid).clamp_(-rmax, rmax)
