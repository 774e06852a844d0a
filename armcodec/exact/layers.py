"""Integer layers: decoder-exact.

Every layer computes ``acc = sum(w * a) + b`` with int8-range weights ``w`` and small integer
activations ``a`` held in float32 tensors; construction checks the worst case
``sum(|w|) * max|a| + |b| < 2**24`` per output channel, so every partial sum is an exact integer
in any summation order (layers that could exceed it run in float64, exact below 2**53); the
same sums come from int8 products where the device has them (:mod:`armcodec.exact.kernels`).
Requantization ``floor(acc * m * 2**-shift + 1/2)`` runs in float64 with an integer multiplier
``m < 2**15``: ``m * 2**-shift`` is one float64 (``scale``) and ``acc * scale`` is exactly
``acc * m`` (< 2**52) moved by a power of two, so it is exact as well (:mod:`armcodec.exact.fused`
runs it and the clamps after it as one compiled loop).  The result does not depend on batch,
order, threads, BLAS or device.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from armcodec.exact import fused, kernels

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
        # the bias joins the float32 product: every partial sum, bias included, stays below the bound
        self._b32 = self.bias.float() if self.exact_f32 else None
        self.scale = self.mult * self.inv_shift  # m * 2**-shift, exact in float64
        self._half = torch.tensor(0.5, dtype=torch.float64, device=self.weight.device)
        self._int8: kernels.Int8Product | None = None  # built on first use of the int8 kernel
        self._conv_w: torch.Tensor | bool | None = None  # built on first use of :meth:`dense` (False: not dense)
        self._int8_conv: kernels.Int8Conv | bool | None = None  # built on first int8 use of :meth:`dense`

    def acc(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (M, n_off*C_in) integers -> the accumulator ``x @ W + b``, (M, C_out) integers
        in float32 (a float32 product: below 2**24, exact) or float64, by the kernel
        :func:`armcodec.exact.kernels.use_int8` picks for this product (the same integers)."""
        if kernels.use_int8(x.device, len(x), self.weight.shape[0], self.weight.shape[1], self.in_max):
            return self.int8_product()(x)
        if self.exact_f32:  # mm, then the bias: addmm's broadcast of the bias costs 2-7 us more a call at a step's rows
            return torch.mm(x, self.weight).add_(self._b32)
        return torch.addmm(self.bias, x.double(), self._w64)

    def gathered_acc(self, src: torch.Tensor, idx: torch.Tensor, m: int) -> torch.Tensor:
        """:meth:`acc` of the map ``src``'s rows ``idx`` (float32 (R, C_in); int64 (m * n_off,), position
        after position): on the int8 kernel the gather and the split are one compiled loop."""
        if kernels.use_int8(src.device, m, self.weight.shape[0], self.weight.shape[1], self.in_max):
            return self.int8_product().gathered(src, idx, m)
        return self.acc(src.index_select(0, idx).view(m, self.weight.shape[0]))

    def lean_int8(self, m: int) -> kernels.Int8Product | None:
        """This layer's int8 product for ``m`` rows where its split and join run inside compiled
        loops that the float kernel runs as well (:func:`armcodec.exact.fused.join_gate`,
        ``mix_residual_joined``: the fused kernels active, no padding) and the int8 kernel is the
        choice for the products alone (:func:`kernels.use_int8` ``raw``); else None (:meth:`acc`'s
        path).  The same integers either way."""
        dev = self.weight.device
        if not m or not fused.active(dev) or not kernels.use_int8(dev, m, *self.weight.shape, self.in_max, raw=True):
            return None
        product = self.int8_product()
        return None if product.pad else product

    def int8_product(self) -> kernels.Int8Product:
        """This layer's int8 product, built on first use."""
        if self._int8 is None:
            self._int8 = kernels.Int8Product(self.weight, self.bias, self.in_max)
        return self._int8

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x: float32 (M, n_off*C_in) integers -> float64 (M, C_out) requantized integers."""
        return self.requantize(self.acc(x))

    def clamped(self, x: torch.Tensor, lo: float, hi: float, add: torch.Tensor | None = None) -> torch.Tensor:
        """x: float32 (M, n_off*C_in) integers -> float32 (M, C_out) ``clamp(requantized [+ add], lo, hi)``
        (:func:`armcodec.exact.fused.requant_clamp`: one pass where it is compiled)."""
        return fused.requant_clamp(self.acc(x), self.scale, lo, hi, add)

    def requantize(self, acc: torch.Tensor) -> torch.Tensor:
        """Accumulators (M, C_out), float64 (overwritten) or float32 -> float64 ``floor(acc * scale + 1/2)``, in place
        (a new (M, C_out) float64 tensor per layer cost a fifth of the requantization)."""
        acc = acc if acc.dtype == torch.float64 else acc.double()
        return torch.addcmul(self._half, acc, self.scale, out=acc).floor_()

    def dense(self, x: torch.Tensor) -> torch.Tensor | None:
        """:meth:`dense_acc`, requantized: float64 (N*h*w, C_out), or None."""
        acc = self.dense_acc(x)
        return None if acc is None else self.requantize(acc)

    def dense_acc(self, x: torch.Tensor) -> torch.Tensor | None:
        """x: float32 (N, h, w, C_in) integers (channels last, contiguous) -> the accumulators
        :meth:`acc` gives for every position's gathered window (zeros outside the grid), float32
        (N*h*w, C_out), as one convolution where :func:`kernels.conv_kernel` gives one (int8 or float32) and this
        layer's partial sums stay below 2**24 (the same integers in any order of summation);
        None otherwise (the caller gathers)."""
        n, h, w, c = x.shape
        if self._conv_w is None:  # built once: (C_out, C_in, k, k), offset (di, dj) at [.., di + r, dj + r]
            k = int(round(len(self.offsets) ** 0.5))
            r = k // 2
            square = self.offsets == [(di, dj) for di in range(-r, r + 1) for dj in range(-r, r + 1)]
            self._conv_w = False
            if square and self.exact_f32:
                cw = self.weight.t().reshape(-1, k * k, c).permute(0, 2, 1).reshape(-1, c, k, k)
                self._conv_w = cw.contiguous(memory_format=torch.channels_last)
        if self._conv_w is False:  # not a full window, or partial sums beyond float32's integers
            return None
        xc = x.permute(0, 3, 1, 2)  # a channels-last view of x
        kind = kernels.conv_kernel(xc, self._conv_w, self.in_max)
        if kind == "int8":
            if self._int8_conv is None:
                try:
                    self._int8_conv = kernels.Int8Conv(self._conv_w, self._b32, self.in_max)
                except ValueError:  # its halves' sums beyond 2**24 (no shipped layer): gathered
                    self._int8_conv = False
            if self._int8_conv is False:
                return None
            acc = self._int8_conv(x)
        elif kind == "float":
            acc = torch.nn.functional.conv2d(xc, self._conv_w, self._b32, padding=self._conv_w.shape[2] // 2)
        else:
            return None
        return acc.permute(0, 2, 3, 1).reshape(n * h * w, -1)  # no copy for a channels-last result

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
