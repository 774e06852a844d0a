"""The integer matrix products of :class:`armcodec.exact.layers.IntConv`: decoder-exact.

Two kernels compute the same integers, so a file written with one decodes with the other:

- ``float`` (the reference, and the fallback everywhere): integer-valued float32 tensors and
  ``addmm``, exact because every partial sum stays below 2**24 (float64 below 2**53 for a layer
  whose worst case does not): :class:`IntConv` checks the bound.
- ``int8``: ``torch._int_mm`` (int8 x int8 -> int32), which the hardware computes exactly where it
  has integer dot products (CUDA; a CPU with VNNI or AMX through oneDNN).  The weights are int8
  already; an input wider than int8 (the residual stream, |x| <= 511; the first layer's constant
  128) is split as ``x = hi * 2**k + lo`` with ``hi`` in [-128, 127] and ``lo`` in [0, 2**k), both
  int8 (an arithmetic shift and a mask in int16), and the two products (one call on the stacked
  rows) are joined in int32: ``acc = (hi @ W) * 2**k + lo @ W``, then ``+ b`` in float64.  Each
  int32 product is at most ``128 * sum|w|`` per column and every partial sum of the join at most
  ``(in_max + 2**k) * sum|w|``, both checked below 2**31 per layer.

Which one runs: :func:`kernel_for` a device, from :func:`using` (``Codec(kernel=...)``,
``--kernel``) or ``ARMCODEC_KERNEL`` (``auto``, ``float``, ``int8``).  ``auto`` takes ``int8`` on
CUDA and on a CPU that reports VNNI or AMX (without them torch's int8 product is a reference loop,
50-80x slower than float32 on this project's CPU: row 35 of docs/EXPERIMENTS.md), and only after :func:`int8_exact` checked that
device's products on worst-case inputs (fbgemm's AVX2 path without VNNI saturates 16-bit
intermediates, PyTorch #44939; a backend that rounds or saturates must never code a file).
``int8`` asked for where that check fails raises :class:`KernelError`.

Under ``auto`` on a CPU, :func:`use_int8` also leaves a product on the float kernel where it is
too small to pay for the int8 path's fixed cost (about 8 us a call, 25 us when the input is
split: a dozen small tensor operations around ``torch._int_mm``): below :data:`CPU_INT8_MIN_MACS`
multiply-adds, :data:`CPU_INT8_MIN_MACS_SPLIT` when split (row 46 of docs/EXPERIMENTS.md).  Above
them which kernel is faster differs between CPUs (a Zen 4 with VNNI: int8 at 1-3x float's speed
for nearly every shipped layer; a Sapphire Rapids with AMX, whose float32 products are twice as
fast: float for layers with few outputs, row 51), so the first product of each shape (K, N, split,
rows within a factor 2) times both kernels once on random integers and the faster one runs that
shape from then on in this process (:func:`_int8_faster`).  The choice never changes a result.
``int8`` asked for explicitly runs every product on it.

A dense layer over a whole grid (the pyramid's passes) runs as one convolution instead
(:func:`conv_kernel`): float32 where torch's convolution sums the products, or oneDNN's u8 x s8
convolution (:class:`Int8Conv`, the input split like the products' into a high byte and its low
bits) on a CPU with VNNI or AMX where :func:`int8_conv_exact` checked it; ``auto`` times the two
once per shape (the pyramid's gate layers: 1.56 -> 0.88 ms at 8,192 positions, its small
first and skip layers stay on float32).
"""
from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from armcodec.exact import fused

KERNELS = ("auto", "float", "int8")
ENV = "ARMCODEC_KERNEL"
INT32_LIMIT = 2**31
CUDA_MIN_ROWS = 24  # cuBLAS int8: more than 16 rows, and every dimension a multiple of 8
CPU_INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
CPU_INT8_MIN_MACS = 1 << 20  # auto on a CPU: smaller products (rows x K x N) of int8-range inputs run on float
CPU_INT8_MIN_MACS_SPLIT = 8 << 20  # the same for inputs split into two int8 halves

_local = threading.local()
_exact: dict[str, bool] = {}
_faster: dict[tuple[int, int, int, int], bool] = {}  # auto on a CPU: (K, N, split bits, rows.bit_length()) -> int8 faster
CALIBRATION_REPEATS = 3


class KernelError(RuntimeError):
    """A kernel that was asked for does not compute exact products on this device."""


def check_name(name: str) -> str:
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r} (known: {', '.join(KERNELS)})")
    return name


def requested() -> str:
    """The kernel asked for in this thread: :func:`using`, else ``ARMCODEC_KERNEL``, else ``auto``."""
    name = getattr(_local, "name", None)
    return name if name is not None else check_name(os.environ.get(ENV, "auto") or "auto")


@contextmanager
def using(name: str):
    """Run the products inside this block with kernel ``name`` (``auto``, ``float``, ``int8``),
    in the settings the exact model needs whatever the calling program set (:func:`exact_settings`)."""
    old = getattr(_local, "name", None)
    _local.name = check_name(name)
    try:
        with exact_settings():
            yield
    finally:
        _local.name = old


_settings_lock = threading.Lock()
_settings_users = 0
_settings_saved: list = []


def _precision_knobs() -> list:
    """torch's per-backend settings of the float32 products' internal precision (torch >= 2.9:
    oneDNN's ``matmul`` and ``conv`` and cuBLAS's ``matmul.fp32_precision``), empty on an older torch."""
    knobs = [getattr(getattr(torch.backends, b, None), op, None) for b, op in (("mkldnn", "matmul"), ("mkldnn", "conv"),
                                                                            ("cuda", "matmul"))]
    return [k for k in knobs if k is not None and hasattr(k, "fp32_precision")]


@contextmanager
def exact_settings():
    """Inside: what the float kernel's exactness assumes, whatever the program around armcodec set.

    - Every float32 product in full float32: ``torch.set_float32_matmul_precision("medium")`` (or
      ``torch.backends.fp32_precision = "bf16"``, common in training scripts) lets oneDNN compute
      float32 ``addmm`` in bfloat16 on a CPU with AMX, and "high" lets cuBLAS use TF32.
    - float32 as torch's default dtype (``torch.set_default_dtype(torch.float64)`` made tensors
      the model builds without a dtype float64, and coding failed).
    - No autocast (an encode inside ``torch.autocast("cpu", torch.bfloat16)`` ran the products in
      bfloat16).

    The rounded integers would otherwise differ: a file neither written as the decoder reads it nor
    decoded (0.12.0 and earlier, found in the eighth session).  Precision and default dtype are
    the process's, so the first of nested or concurrent blocks (threads) sets them and the last
    restores them; autocast is each thread's own."""
    global _settings_users, _settings_saved
    with _settings_lock:
        if _settings_users == 0:
            knobs = _precision_knobs()
            saved = [(functools.partial(setattr, k, "fp32_precision"), k.fp32_precision) for k in knobs]
            if not knobs:
                saved.append((torch.set_float32_matmul_precision, torch.get_float32_matmul_precision()))
            saved.append((torch.set_default_dtype, torch.get_default_dtype()))
            for k in knobs:
                k.fp32_precision = "ieee"
            if not knobs:
                torch.set_float32_matmul_precision("highest")
            torch.set_default_dtype(torch.float32)
            _settings_saved = saved
        _settings_users += 1
    try:
        with contextlib.ExitStack() as stack:
            for device in ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",):
                stack.enter_context(torch.autocast(device, enabled=False))
            yield
    finally:
        with _settings_lock:
            _settings_users -= 1
            if _settings_users == 0:
                for put, value in _settings_saved:
                    put(value)


def _device_key(device) -> str:
    if isinstance(device, torch.device) and device.type == "cpu":  # every CPU device is the one CPU (a cheap answer)
        return "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)


@functools.lru_cache(maxsize=None)
def cpu_has_int8_dot() -> bool:
    """Whether this CPU reports VNNI or AMX int8 instructions (Linux ``/proc/cpuinfo``; read once)."""
    try:
        with open("/proc/cpuinfo", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return any(f in flags for f in CPU_INT8_FLAGS)
    return False


def int8_exact(device) -> bool:
    """Whether ``torch._int_mm`` on ``device`` gives exact int32 sums at the extremes this module
    uses (-128 * -128, 127 * -128 and 127 * 127 over 8 to 2048 terms, an odd sum past 2**24 that
    float32 would round in any order of summation, and random values), once per device."""
    key = _device_key(device)
    if key not in _exact:
        _exact[key] = _probe(torch.device(key))
    return _exact[key]


def _probe(device: torch.device) -> bool:
    if not hasattr(torch, "_int_mm"):
        return False
    gen = torch.Generator().manual_seed(0)
    try:
        for k in (8, 640, 2048):
            cases = [(torch.full((CUDA_MIN_ROWS, k), -128), torch.full((k, 8), -128)),
                     (torch.full((CUDA_MIN_ROWS, k), 127), torch.full((k, 8), -128)),
                     (torch.full((CUDA_MIN_ROWS, k), 127), torch.full((k, 8), 127)),
                     # k - 1 products 127 * 127: an odd sum past 2**24 (k = 2048) whatever the order of
                     # summation, which float32 cannot hold (with k of them a blocked float32 sum is exact)
                     (F.pad(torch.full((CUDA_MIN_ROWS, k - 1), 127), (0, 1)), torch.full((k, 8), 127)),
                     (torch.randint(-128, 128, (CUDA_MIN_ROWS, k), generator=gen),
                      torch.randint(-128, 128, (k, 16), generator=gen))]
            for a, b in cases:
                want = a.double() @ b.double()
                got = torch._int_mm(a.to(torch.int8).to(device), b.to(torch.int8).to(device))
                if got.dtype != torch.int32 or not torch.equal(got.cpu().double(), want):
                    return False
    except (RuntimeError, NotImplementedError):
        return False
    return True


def kernel_for(device) -> str:
    """``float`` or ``int8``: the kernel the products on ``device`` run with now."""
    name = requested()
    if name == "float":
        return "float"
    dev = device if isinstance(device, torch.device) else torch.device(device)
    if name == "auto":
        fast = dev.type == "cuda" or (dev.type == "cpu" and cpu_has_int8_dot())
        return "int8" if fast and int8_exact(dev) else "float"
    if not int8_exact(dev):
        raise KernelError(f"the int8 kernel does not compute exact products on {dev} (torch {torch.__version__}); "
                          "use the float kernel (--kernel float, or auto)")
    return "int8"


def use_int8(device, rows: int, k: int, n: int, in_max: int, raw: bool = False) -> bool:
    """Whether one product of ``rows`` x ``k`` integers in [-in_max, in_max] by a (k, n) weight
    runs on the int8 kernel: always where :func:`kernel_for` gives ``int8`` and it was asked for
    (or the device is not a CPU); under ``auto`` on a CPU only from the sizes where it pays.
    ``raw``: a product whose split and join are folded into compiled loops that run on either
    kernel (:meth:`armcodec.exact.layers.IntConv.lean_int8`), so the two products alone are
    compared, at every size.  Called for every product of every decoder step, so the cheap
    answers come first: a product below the sizes, or of a shape calibrated to float, returns
    before the kernel and exactness lookups (3 us a call, 5% of a video decode)."""
    name = requested()
    if name == "float":
        return False
    dev = device if isinstance(device, torch.device) else torch.device(device)
    calibrate = name == "auto" and dev.type == "cpu"
    if calibrate:
        split = split_bits(in_max)
        if not raw and rows * k * n < (CPU_INT8_MIN_MACS_SPLIT if split else CPU_INT8_MIN_MACS):
            return False
        key = (k, n, split, rows.bit_length(), raw)
        faster = _faster.get(key)
        if faster is False:  # calibrated: float (which is always exact)
            return False
        if not (cpu_has_int8_dot() and int8_exact(dev)):  # = kernel_for(dev) != "int8" under auto on a CPU
            return False
    elif kernel_for(dev) != "int8":
        return False
    else:  # int8 asked for, or not a CPU
        return True
    if faster is None:
        faster = _faster[key] = _int8_faster(rows, k, n, in_max, raw)
    return faster


DIRECT_CONV = ("Mkldnn", "Slow2d")  # torch's CPU convolutions that sum products (oneDNN's direct, im2col + gemm)


def conv_kernel(x: torch.Tensor, weight: torch.Tensor, in_max: int) -> str | None:
    """How a dense layer (every offset of a square window) runs on a whole grid ``x`` (N, C_in, h,
    w) of integers in [-in_max, in_max] by ``weight`` (C_out, C_in, k, k): ``"int8"`` (oneDNN's
    u8 x s8 -> s32 convolution, :class:`Int8Conv`), ``"float"`` (one float32 convolution) or None
    (the caller gathers the windows).  Each gives the gathered product's integers where it runs
    (the caller checks that every partial sum is an integer below 2**24).

    On a CPU only.  ``int8`` asked for: the int8 convolution where :func:`int8_conv_exact`, else
    None (the gathered int8 product).  ``float``: the float32 convolution where torch picks one
    that sums the products (oneDNN's direct one or im2col and a product); a transform (NNPACK's
    Winograd or FFT, which torch takes with oneDNN switched off) would round: None.  ``auto``:
    on a CPU with VNNI or AMX whose int8 convolution is exact, the faster of the two for this
    shape (timed once per shape, as :func:`use_int8` does for products), else the float one."""
    if x.device.type != "cpu":
        return None
    name = requested()
    if name == "int8":
        return "int8" if int8_conv_exact() else None
    kh, kw = weight.shape[2:]
    try:  # torch's own choice, asked the way F.conv2d will ask it
        backend = torch._C._select_conv_backend(x, weight, None, [1, 1], [kh // 2, kw // 2], [1, 1], False, [0, 0], 1, None)
        direct = backend.name in DIRECT_CONV
    except (AttributeError, RuntimeError, TypeError):  # a torch without this query: no float convolution
        direct = False
    if name == "auto" and cpu_has_int8_dot() and int8_conv_exact():
        n, _, h, w = x.shape
        key = ("conv", weight.shape[1], weight.shape[0], kh, split_bits(in_max), (n * h * w).bit_length())
        if not direct:
            return "int8"
        faster = _faster.get(key)
        if faster is None:
            faster = _faster[key] = _int8_conv_faster(x, weight, in_max)
        return "int8" if faster else "float"
    return "float" if direct else None


def _first_is_faster(first, second) -> bool:
    """Whether ``first`` runs faster than ``second``: the best of :data:`CALIBRATION_REPEATS`
    runs of each, alternating, after one of each to warm up, on one thread.  One thread because
    the answer holds for the rest of the process: timed on two threads while something else
    kept a core busy (the encoder's own WebP candidate, on its thread), every parallel region
    waited for a parked thread and the kernel with more of them lost for good (a pyramid decode
    afterwards 1.35 -> 1.56 s); one thread's ranking is that of the cores' arithmetic, which
    does not change with the load."""
    threads = torch.get_num_threads()
    if threads != 1:
        torch.set_num_threads(1)
    try:
        first(), second()
        best = [float("inf"), float("inf")]
        for _ in range(CALIBRATION_REPEATS):
            for k, fn in enumerate((first, second)):
                t = time.perf_counter()
                fn()
                best[k] = min(best[k], time.perf_counter() - t)
    finally:
        if threads != 1:
            torch.set_num_threads(threads)
    return best[0] < best[1]


def _int8_conv_faster(x: torch.Tensor, weight: torch.Tensor, in_max: int) -> bool:
    """Whether :class:`Int8Conv` runs faster here than a float32 convolution of the same shape
    (:func:`_first_is_faster`, on random integers: their values do not change the time)."""
    gen = torch.Generator().manual_seed(0)
    n, c, h, w = x.shape
    grid = torch.randint(-in_max, in_max + 1, (n, h, w, c), generator=gen).float()
    wt = torch.randint(-8, 9, tuple(weight.shape), generator=gen).float().contiguous(memory_format=torch.channels_last)
    bias = torch.zeros(weight.shape[0])
    conv, r = Int8Conv(wt, bias, in_max), weight.shape[2] // 2
    return _first_is_faster(lambda: conv(grid), lambda: F.conv2d(grid.permute(0, 3, 1, 2), wt, bias, padding=r))


class Int8Conv:
    """One dense layer as oneDNN's u8 x s8 -> s32 convolution (AMX or VNNI; CPU only): ``weight``
    float32 (C_out, C_in, k, k) int8-valued, ``bias`` float32 (C_out,), inputs integers in
    [-in_max, in_max] held in float32.

    An input wider than uint8 is split as :class:`Int8Product`'s (:func:`split_bits`), its high
    part offset to a uint8: ``x = 2**s * (hi - 128) + lo``, ``hi = (x + 128 * 2**s) >> s``, ``lo``
    its low ``s`` bits (an add, a shift and a mask in int16).  ``hi`` runs with zero point 128
    (oneDNN subtracts it; the zero padding of the window is the zero point, i.e. x = 0), ``lo``
    with zero point 0, and the two float32 results join as ``2**s * A + (B + bias)``.  Exact where ``|A| <= 128 * sum|w|`` and ``|B +
    bias|`` are below 2**24 (checked: each converts exactly) and the layer's own sums are (the
    caller's check): the join then is one exact float32 operation."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, in_max: int):
        self.s = split_bits(in_max)
        col = float(weight.double().abs().sum((1, 2, 3)).max())
        worst = max(128 * col, (2**self.s - 1) * col + float(bias.double().abs().max()))
        if worst >= 2**24:
            raise ValueError(f"int8 convolution bound {worst:.3g} exceeds 2**24")
        self.n_out, self.padding = weight.shape[0], weight.shape[2] // 2
        self.w8 = weight.to(torch.int8).contiguous()
        self.ones, self.zeros = torch.ones(self.n_out), torch.zeros(self.n_out, dtype=torch.int32)
        pack = lambda zp: torch.ops.onednn.qconv_prepack(self.w8, self.ones, 1.0, zp, [1, 1], [self.padding] * 2, [1, 1], 1,
                                                         None)
        self.packed = {128: pack(128), 0: pack(0) if self.s else None}
        self.bias = bias.float().contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (N, h, w, C_in) integers (channels last, contiguous) -> float32 (N, C_out,
        h, w) (channels last) ``acc + bias``."""
        x16 = x.to(torch.int16).add_(128 << self.s)  # a new tensor (x is float32)
        hi = (x16 >> self.s).to(torch.uint8).permute(0, 3, 1, 2)
        if not self.s:
            return self.run(hi, 128, self.bias)
        lo = x16.bitwise_and_(2**self.s - 1).to(torch.uint8).permute(0, 3, 1, 2)
        return torch.add(self.run(lo, 0, self.bias), self.run(hi, 128, None), alpha=2**self.s)

    def run(self, x: torch.Tensor, zero_point: int, bias: torch.Tensor | None) -> torch.Tensor:
        """oneDNN's quantized convolution with unit scales: uint8 ``x`` (N, C_in, h, w, channels
        last) -> float32 ``sum(w * (x - zero_point)) + bias`` (its int32 sums, converted)."""
        return torch.ops.onednn.qconv2d_pointwise(x, 1.0, zero_point, self.packed[zero_point], self.ones, self.zeros, bias,
                                                  [1, 1], [self.padding] * 2, [1, 1], 1, 1.0, 0, torch.float32, "none",
                                                  [], "")


_conv_exact: bool | None = None


def int8_conv_exact() -> bool:
    """Whether :class:`Int8Conv` gives the exact integers here (once per process): its CPU
    reports VNNI or AMX (oneDNN's int8 convolution without them goes through 16-bit
    intermediates that saturate) and a float64 convolution agrees with it on the extremes (every
    input 255 or 0 against weights 127 or -128, paired so that a 16-bit pair sum would saturate),
    on random integers and at the zero-padded borders, unsplit and split inputs alike."""
    global _conv_exact
    if _conv_exact is None:
        _conv_exact = cpu_has_int8_dot() and _probe_conv()
    return _conv_exact


def _probe_conv() -> bool:
    gen = torch.Generator().manual_seed(0)
    c_in, c_out = 16, 8
    try:
        for in_max in (127, 511):
            weights = [torch.full((c_out, c_in, 3, 3), -128.0), torch.full((c_out, c_in, 3, 3), 127.0),
                       torch.randint(-128, 128, (c_out, c_in, 3, 3), generator=gen).float()]
            grids = [torch.full((2, 5, 6, c_in), float(in_max)), torch.full((2, 5, 6, c_in), float(-in_max)),
                     torch.randint(-in_max, in_max + 1, (2, 5, 6, c_in), generator=gen).float()]
            for wt in weights:
                bias = torch.randint(-1000, 1001, (c_out,), generator=gen).float()
                conv = Int8Conv(wt.contiguous(memory_format=torch.channels_last), bias, in_max)
                for grid in grids:
                    want = F.conv2d(grid.permute(0, 3, 1, 2).double(), wt.double(), bias.double(), padding=1)
                    got = conv(grid.contiguous())
                    if got.dtype != torch.float32 or not torch.equal(got.double(), want):
                        return False
    except (AttributeError, RuntimeError, TypeError, ValueError, NotImplementedError):
        return False
    return True


def _int8_faster(rows: int, k: int, n: int, in_max: int, raw: bool = False) -> bool:
    """Whether a (rows, k) x (k, n) product of integers in [-in_max, in_max] runs faster on the
    int8 kernel than on float32 ``addmm`` here (:func:`_first_is_faster`, on random integers:
    their values do not change the time); ``raw``: ``torch._int_mm`` of the int8 rows (both halves
    where split) against ``torch.mm``, the products alone."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(-in_max, in_max + 1, (rows, k), generator=gen).float()
    w = torch.randint(-8, 9, (k, n), generator=gen).float()
    bias = torch.zeros(n, dtype=torch.float64)
    product, bias32 = Int8Product(w, bias, in_max), bias.float()
    if raw:
        a = torch.randint(-128, 128, (2 * rows if product.k else rows, k), generator=gen, dtype=torch.int8)
        return _first_is_faster(lambda: torch._int_mm(a, product.w8), lambda: torch.mm(x, w))
    return _first_is_faster(lambda: product(x), lambda: torch.addmm(bias32, x, w).double())


@functools.lru_cache(maxsize=None)
def split_bits(in_max: int) -> int:
    """The smallest k with every integer in [-in_max, in_max] = hi * 2**k + lo, hi in [-128, 127]."""
    k = 0
    while (in_max >> k) > 127 or -((-in_max) >> k) > 128:
        k += 1
    return k


class Int8Product:
    """``x @ W + b`` of one layer with int8 products: W int8 (K, N), b float64 (N,), inputs integers
    in [-in_max, in_max] held in float32.  On CUDA the operands are padded with zeros to cuBLAS's
    shapes (the padding adds nothing)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, in_max: int, pad: bool | None = None):
        self.k = split_bits(in_max)
        if self.k > 7:
            raise ValueError(f"inputs up to {in_max} do not split into two int8 halves")
        col = weight.double().abs().sum(0).max()
        # each int8 product (|hi|, |lo| <= 128), and in the int32 join (hi @ W) * 2**k, whose
        # |hi * 2**k| = |x - lo| <= in_max + 2**k - 1, plus lo @ W
        worst = float(col) * max(128, in_max + 2**self.k)
        if worst >= INT32_LIMIT:
            raise ValueError(f"int8 product bound {worst:.3g} exceeds 2**31")
        self.pad = weight.device.type == "cuda" if pad is None else pad
        self.K, self.N = weight.shape
        w = weight.to(torch.int8)
        if self.pad:
            w = F.pad(w, (0, -self.N % 8, 0, -self.K % 8))
        self.w8 = w.contiguous()
        self.bias = bias.double()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = len(x)
        if not self.pad and fused.active(x.device):  # the split and the join: one compiled loop each
            return self._product(fused.split_int8(x, self.k) if self.k else x.to(torch.int8), m)
        if self.k:  # x = hi * 2**k + lo: an arithmetic shift is floor(x / 2**k), lo = x mod 2**k
            x16 = x.to(torch.int16)
            hi = x16 >> self.k
            a = torch.empty((2 * m, x.shape[1]), dtype=torch.int8, device=x.device)
            a[:m] = hi
            a[m:] = x16.sub_(hi << self.k)
        else:
            a = x.to(torch.int8)
        if self.pad:
            a = F.pad(a, (0, -self.K % 8, 0, max(CUDA_MIN_ROWS - len(a), -len(a) % 8)))
        out = torch._int_mm(a, self.w8)
        acc = out[:m, : self.N]
        if self.k:  # below 2**31 at every partial sum (checked): the join is exact in int32
            acc = (acc << self.k).add_(out[m : 2 * m, : self.N])
        return acc.double().add_(self.bias)

    def gathered(self, src: torch.Tensor, idx: torch.Tensor, m: int) -> torch.Tensor:
        """``self(src.index_select(0, idx).view(m, -1))`` with the gather and the split as one
        compiled loop (where :func:`fused.active`)."""
        if self.pad or not fused.active(src.device):
            return self(src.index_select(0, idx).view(m, self.K))
        return self._product(fused.gather_int8(src, idx, self.K // src.shape[1], self.k), m)

    def raw_gathered(self, src: torch.Tensor, idx: torch.Tensor, m: int) -> torch.Tensor:
        """The compiled path's int32 product, unjoined ((2M, N) split, else (M, N)), of the map
        ``src``'s rows ``idx`` (as :meth:`gathered`; :func:`fused.join_gate` joins it)."""
        return self.raw(fused.gather_int8(src, idx, self.K // src.shape[1], self.k))

    def raw(self, a: torch.Tensor) -> torch.Tensor:
        """The int32 product of int8 rows ``a`` (M, K) (an unsplit layer), unjoined: ``+ bias`` is its
        accumulators (:func:`fused.mix_residual_joined`)."""
        return torch._int_mm(a, self.w8)

    def _product(self, a: torch.Tensor, m: int) -> torch.Tensor:
        """The compiled path's product of the int8 rows ``a`` (M rows, or 2M split), joined."""
        return fused.join_int32(self.raw(a), m, self.k, self.bias)
