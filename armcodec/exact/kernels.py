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


def use_int8(device, rows: int, k: int, n: int, in_max: int) -> bool:
    """Whether one product of ``rows`` x ``k`` integers in [-in_max, in_max] by a (k, n) weight
    runs on the int8 kernel: always where :func:`kernel_for` gives ``int8`` and it was asked for
    (or the device is not a CPU); under ``auto`` on a CPU only from the sizes where it pays.
    Called for every product of every decoder step, so the cheap answers come first: a product
    below the sizes, or of a shape calibrated to float, returns before the kernel and exactness
    lookups (3 us a call, 5% of a video decode)."""
    name = requested()
    if name == "float":
        return False
    dev = device if isinstance(device, torch.device) else torch.device(device)
    calibrate = name == "auto" and dev.type == "cpu"
    if calibrate:
        split = split_bits(in_max)
        if rows * k * n < (CPU_INT8_MIN_MACS_SPLIT if split else CPU_INT8_MIN_MACS):
            return False
        key = (k, n, split, rows.bit_length())
        faster = _faster.get(key)
        if faster is False:  # calibrated: float (which is always exact)
            return False
    if kernel_for(dev) != "int8":
        return False
    if not calibrate:  # int8 asked for, or not a CPU
        return True
    if faster is None:
        faster = _faster[key] = _int8_faster(rows, k, n, in_max)
    return faster


DIRECT_CONV = ("Mkldnn", "Slow2d")  # torch's CPU convolutions that sum products (oneDNN's direct, im2col + gemm)


def use_conv(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Whether a dense layer (every offset of a square window) runs as one float32 convolution
    of ``x`` (N, C_in, h, w) by ``weight`` (C_out, C_in, k, k): on a CPU, unless the int8
    kernel was asked for, and only where torch picks a convolution that sums the products
    (oneDNN's direct one or im2col and a product).  Those give the gathered product's integers
    for a layer whose every partial sum is an integer below 2**24 (the caller checks the bound);
    a transform (NNPACK's Winograd or FFT, which torch takes with oneDNN switched off) would round."""
    if x.device.type != "cpu" or requested() == "int8":
        return False
    kh, kw = weight.shape[2:]
    try:  # torch's own choice, asked the way F.conv2d will ask it
        backend = torch._C._select_conv_backend(x, weight, None, [1, 1], [kh // 2, kw // 2], [1, 1], False, [0, 0], 1, None)
    except (AttributeError, RuntimeError, TypeError):  # a torch without this query: gather
        return False
    return backend.name in DIRECT_CONV


def _int8_faster(rows: int, k: int, n: int, in_max: int) -> bool:
    """Whether a (rows, k) x (k, n) product of integers in [-in_max, in_max] runs faster on the
    int8 kernel than on float32 ``addmm`` here, now: the best of :data:`CALIBRATION_REPEATS` runs
    of each, after one to warm up, on random integers (their values do not change the time)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(-in_max, in_max + 1, (rows, k), generator=gen).float()
    w = torch.randint(-8, 9, (k, n), generator=gen).float()
    bias = torch.zeros(n, dtype=torch.float64)
    product, bias32 = Int8Product(w, bias, in_max), bias.float()

    def best(fn) -> float:
        fn()
        times = []
        for _ in range(CALIBRATION_REPEATS):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    return best(lambda: product(x)) < best(lambda: torch.addmm(bias32, x, w).double())


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
