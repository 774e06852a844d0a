"""Wavefront PixelCNN: the float / quantization-aware training model.

Data flow (training)::

    x uint8 (B, C, H, W) -> input (B, C+1, H, W) -> first masked conv (strict)
      -> blocks: masked conv (2F) -> hard gate -> 1x1 (F) -> residual add
      -> head: 1x1 (H) -> clamp -> 1x1 (n_params) -> mixture parameters -> NLL

Every masked convolution only reads offsets ``(di, dj)`` (rows up, columns
right) inside the wavefront half-plane ``dj + slope * di <= 0`` (``< 0`` for
the first layer, which reads pixels).  That half-plane is closed under
addition, so however deep the network is, the value at pixel ``(i, j)``
depends only on pixels with a smaller wavefront time ``t = j + slope * i``:
the decoder can decode one anti-diagonal line ``t`` of every tile at once,
``T + slope * (T - 1)`` steps for a ``T x T`` tile, and no blind spot exists
inside the cone the wavefront allows (the test-suite checks both with
autograd).

All nonlinearities are hard (clamp, ReLU, hard-tanh x hard-sigmoid gate) and
every activation lives on a fixed power-of-two grid, so the network can be
exported to integer-exact inference (:mod:`armcodec.models.pixelcnn_exact`) with the same graph.
With ``qat=True`` the forward pass fake-quantizes weights, activations and
head parameters onto those integer grids (straight-through estimator).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from armcodec.exact import fused

# the distribution parameter grids the integer tables read (armcodec.exact.tables)
from armcodec.exact.tables import LOG2_SCALE_MAX, LOG2_SCALE_MIN, LOGIT_STEPS, LOGSCALE_STEPS, MEAN_MAX, MEAN_MIN, MEAN_STEPS

# Fixed integer grids shared by training (fake quantization) and integer inference.
INPUT_SCALE = 1 / 32  # input: (pixel - 128) in units of 1/32
ONES_VALUE = 128  # integer value of the constant "inside the image" input channel
# The residual stream's, the head hidden layer's and the coupling coefficients' grids are per
# model (PixelCNNConfig: resid_steps, head_steps, coef_steps); models stored before those fields
# existed use 1/32, 1/32 (int range [0, 127]) and 1/64.
GATE_SCALE = 1 / 64  # gate inputs and output, int range [-64, 64]
GATE_MAX = 64
MEAN_GAIN = 32  # head mean output y -> mean = 128 + MEAN_GAIN * y (y on the input's scale)
COEF_MAX = 1.0


class SharedGrids:
    """What every model family's config derives from its fields ``image_channels``, ``mixtures``,
    ``resid_steps`` and ``head_steps``: the residual stream's and the head hidden layer's grids and
    the head's layout."""

    @property
    def resid_scale(self) -> float:
        return 1 / self.resid_steps

    @property
    def resid_max(self) -> int:
        """Residual stream clamp: the same real range (just under +-4) on every grid."""
        return 4 * self.resid_steps - 1

    @property
    def head_scale(self) -> float:
        return 1 / self.head_steps

    @property
    def head_max(self) -> int:
        """Head hidden layer clamp (a ReLU): [0, just under 4] on every grid."""
        return 4 * self.head_steps - 1

    def check_grids(self) -> None:
        if self.resid_steps not in (32, 64, 128):
            raise ValueError(f"resid_steps must be 32, 64 or 128, not {self.resid_steps}")
        if self.head_steps not in (32, 64, 128):
            raise ValueError(f"head_steps must be 32, 64 or 128, not {self.head_steps}")
        if self.coef_steps not in (64, 256, 1024, 4096):
            raise ValueError(f"coef_steps must be 64, 256, 1024 or 4096, not {self.coef_steps}")

    @property
    def n_params(self) -> int:
        """Head outputs: per channel K logits, K means, K log-scales, plus K coupling
        coefficients for every (channel, earlier channel) pair."""
        c, k = self.image_channels, self.mixtures
        return 3 * k * c + k * c * (c - 1) // 2


@dataclass(frozen=True)
class PixelCNNConfig(SharedGrids):
    """Architecture of a wavefront PixelCNN; stored with the weights."""

    image_channels: int = 3
    width: int = 48
    blocks: int = 6
    head_width: int = 96
    mixtures: int = 5
    slope: int = 3
    first_reach: tuple[int, int, int] = (2, 2, 2)  # rows up, columns left, columns right
    block_reach: tuple[int, int, int] = (1, 1, 1)
    linear_skip: bool = True  # a masked linear conv from the pixels straight to the head parameters
    resid_steps: int = 128  # residual stream in 1/resid_steps, integers in [-resid_max, resid_max]
    coef_steps: int = 1024  # channel coupling coefficients in 1/coef_steps
    head_steps: int = 32  # head hidden layer in 1/head_steps, integers in [0, head_max]

    def __post_init__(self):
        self.check_grids()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PixelCNNConfig":
        d = dict(d)
        d.setdefault("linear_skip", False)  # configs stored before the skip existed
        d.setdefault("resid_steps", 32)  # ... and before the grids were per model
        d.setdefault("coef_steps", 64)
        for k in ("first_reach", "block_reach"):
            d[k] = tuple(d[k])
        return cls(**d)



def causal_offsets(reach: tuple[int, int, int], slope: int, strict: bool) -> list[tuple[int, int]]:
    """Kernel offsets (di <= 0, dj) a masked conv may read, in a fixed order.

    ``strict`` (first layer, reads pixels): ``dj + slope*di < 0``, i.e. only pixels of
    earlier wavefront steps.  Otherwise ``<= 0`` (the same step is fine: earlier layers of
    the same positions are computed first).
    """
    up, left, right = reach
    out = []
    for di in range(-up, 1):
        for dj in range(-left, right + 1):
            t = dj + slope * di
            if t < 0 or (t == 0 and not strict):
                out.append((di, dj))
    return out


def _ste_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def _ste_floor(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.floor(x) - x).detach()


def fake_quant(x: torch.Tensor, scale: float, lo: float, hi: float) -> torch.Tensor:
    """Round to the integer grid ``scale * [lo, hi]`` (straight-through gradient)."""
    return torch.clamp(_ste_round(x / scale), lo, hi) * scale


class MaskedConv2d(nn.Module):
    """Convolution restricted to ``causal_offsets``; zero padding outside the tensor."""

    def __init__(self, c_in: int, c_out: int, reach, slope: int, strict: bool):
        super().__init__()
        self.reach = tuple(reach)
        up, left, right = self.reach
        self.offsets = causal_offsets(self.reach, slope, strict)
        self.weight = nn.Parameter(torch.empty(c_out, c_in, up + 1, left + right + 1))
        self.bias = nn.Parameter(torch.zeros(c_out))
        mask = torch.zeros(1, 1, up + 1, left + right + 1)
        for di, dj in self.offsets:
            mask[0, 0, di + up, dj + left] = 1
        self.register_buffer("mask", mask, persistent=False)
        fan_in = c_in * len(self.offsets)
        nn.init.normal_(self.weight, std=1 / math.sqrt(fan_in))

    @property
    def origin(self) -> tuple[int, int]:
        """Kernel index of offset (0, 0): offset (di, dj) is ``weight[:, :, di + origin[0], dj + origin[1]]``."""
        return self.reach[0], self.reach[1]

    def forward(self, x: torch.Tensor, qat: bool, in_scale: float) -> torch.Tensor:
        up, left, right = self.reach
        w, b = quantized_weight_bias(self.weight * self.mask, self.bias, qat, in_scale)
        if left == right:  # the conv's own zero padding, its rows below the tensor dropped: no padded copy
            return F.conv2d(x, w, b, padding=(up, left))[:, :, : x.shape[2]]
        return F.conv2d(F.pad(x, (left, right, up, 0)), w, b)


class DenseConv2d(nn.Module):
    """k x k convolution reading every side (the multi-scale passes: their inputs are all
    decoded), zero padding outside the tensor; offsets row by row."""

    def __init__(self, c_in: int, c_out: int, k: int = 3):
        super().__init__()
        r = k // 2
        self.offsets = [(di, dj) for di in range(-r, r + 1) for dj in range(-r, r + 1)]
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k) / math.sqrt(c_in * k * k))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.origin = (r, r)

    def forward(self, x: torch.Tensor, qat: bool, in_scale: float) -> torch.Tensor:
        w, b = quantized_weight_bias(self.weight, self.bias, qat, in_scale)
        return F.conv2d(x, w, b, padding=self.origin[0])


class Conv1x1(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 1, 1) / math.sqrt(c_in))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.offsets = [(0, 0)]
        self.origin = (0, 0)

    def forward(self, x: torch.Tensor, qat: bool, in_scale: float) -> torch.Tensor:
        w, b = quantized_weight_bias(self.weight, self.bias, qat, in_scale)
        return F.conv2d(x, w, b)


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel symmetric int8 scale, shape (C_out,)."""
    return w.detach().abs().flatten(1).amax(1).clamp_min(1e-8) / 127


def quantized_weight_bias(w, b, qat: bool, in_scale: float):
    if not qat:
        return w, b
    s = weight_scale(w)
    wq = torch.clamp(_ste_round(w / s[:, None, None, None]), -127, 127) * s[:, None, None, None]
    bs = s * in_scale
    bq = _ste_round(b / bs) * bs
    return wq, bq


def activation(x: torch.Tensor, qat: bool, scale: float, lo: int, hi: int, inplace: bool = False) -> torch.Tensor:
    """Clamp to ``scale * [lo, hi]``; with ``qat`` also round onto that integer grid.  ``inplace``
    (not with ``qat``): clamp ``x`` itself (inference, where nothing else reads it)."""
    if qat:
        return fake_quant(x, scale, lo, hi)
    if inplace:
        return x.clamp_(lo * scale, hi * scale)
    return torch.clamp(x, lo * scale, hi * scale)


def gated_trunk(net: nn.Module, inp: torch.Tensor, qat: bool, first_extra: torch.Tensor | None = None,
                out_extra: torch.Tensor | None = None, int8_blocks=None) -> torch.Tensor:
    """The graph every network of the model family shares, on the input grid ``INPUT_SCALE``:
    first conv -> gated residual blocks -> head, plus the linear skip from the input.

    ``net`` has ``cfg`` (width, resid_scale, resid_max), ``first``, ``gate_convs``, ``mix_convs``,
    ``head_hidden``, ``head_out``, ``skip`` (or None) and the ``param_scale`` buffer; its convs are
    masked (the wavefront PixelCNN) or dense (the multi-scale passes).  ``first_extra`` and
    ``out_extra``: terms from a condition (the temporal model's previous frame), added to the first
    conv's output and to the head's, each on its integer grid as the exact model adds them.
    -> raw head output (B, n_params, H, W).

    Without autograd (and ``qat``), as in the encoder's orientation search, the activations are
    clamped and summed in place, and on a CPU a block's gate and residual add are each one compiled
    loop (:mod:`armcodec.models.float_kernels`): the same numbers without a fresh tensor per step
    (a 512x512 tile of `fast`'s float copy on one thread 2.1-2.5 -> 1.7-1.9 s, docs/PROFILE.md).
    ``int8_blocks`` (the encoder's search only, there): an object whose ``block(k, h)`` runs block
    k on the stream in place in int8 arithmetic, approximately
    (:class:`armcodec.encoder.int8_proxy.Int8Blocks`)."""
    rs, rmax = net.cfg.resid_scale, net.cfg.resid_max
    inplace = not qat and not torch.is_grad_enabled()  # every tensor changed in place is this function's own
    first = net.first(inp, qat, INPUT_SCALE)
    if first_extra is not None:
        if qat:  # integer path: both terms requantized to the residual grid, then added
            first, first_extra = _ste_round(first / rs) * rs, _ste_round(first_extra / rs) * rs
        first = first + first_extra
    h = activation(first, qat, rs, -rmax, rmax, inplace)
    if int8_blocks is not None:
        if not inplace:
            raise ValueError("int8 blocks are for inference only (no autograd, no qat)")
        h = h.contiguous(memory_format=torch.channels_last)
    f = net.cfg.width
    for k, (gconv, mconv) in enumerate(zip(net.gate_convs, net.mix_convs)):
        if int8_blocks is not None:  # the block in int8 arithmetic, in place
            int8_blocks.block(k, h)
            continue
        u = gconv(h, qat, rs)  # (B, 2F, H, W)
        loops = _float_loops(u, h) if inplace else None
        if loops is not None:  # the same steps, each one compiled loop
            g = torch.empty((u.shape[0], f, *u.shape[2:]), dtype=u.dtype, memory_format=torch.channels_last)
            loops.gate(_nhwc(u), f, np.float32(-GATE_MAX * GATE_SCALE), np.float32(GATE_MAX * GATE_SCALE), _nhwc(g))
            loops.residual_add(_nhwc(h), _nhwc(mconv(g, qat, GATE_SCALE)), np.float32(-rmax * rs), np.float32(rmax * rs))
            continue
        a = activation(u[:, :f], qat, GATE_SCALE, -GATE_MAX, GATE_MAX, inplace)
        b_gate = activation(u[:, f:].add_(0.5) if inplace else u[:, f:] + 0.5, qat, GATE_SCALE, 0, GATE_MAX,
                            inplace)  # hard sigmoid
        g = a * b_gate
        if qat:  # integer path: (a_int * b_int) >> 6
            g = _ste_floor(g / GATE_SCALE) * GATE_SCALE
        v = activation(mconv(g, qat, GATE_SCALE), qat, rs, -rmax, rmax, inplace)
        h = h.add_(v).clamp_(-rmax * rs, rmax * rs) if inplace else torch.clamp(h + v, -rmax * rs, rmax * rs)
    hs = net.cfg.head_scale
    z = activation(net.head_hidden(h, qat, rs), qat, hs, 0, net.cfg.head_max, inplace)
    out = net.head_out(z, qat, hs)
    terms = [out] + ([net.skip(inp, qat, INPUT_SCALE)] if net.skip is not None else []) + \
        ([out_extra] if out_extra is not None else [])
    if qat and len(terms) > 1:  # integer path: each term is requantized to the parameter grid, then added
        terms = [_ste_round(t / net.param_scale) * net.param_scale for t in terms]
    if inplace:
        for t in terms[1:]:
            out.add_(t)  # the same sums, in the same order, as sum() below
        return out
    return sum(terms[1:], terms[0])


def _float_loops(u: torch.Tensor, h: torch.Tensor):
    """The compiled loops of :mod:`armcodec.models.float_kernels` for a block whose gate conv gave
    ``u`` from the stream ``h``: where the decoder's loops run (:func:`armcodec.exact.fused.active`)
    and both are float32 with their channels innermost (channels-last), else None."""
    if not fused.active(u.device) or u.dtype != torch.float32 or h.dtype != torch.float32 or u.stride(1) != 1 \
            or h.stride(1) != 1:
        return None
    from armcodec.models import float_kernels

    return float_kernels


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return t.permute(0, 2, 3, 1).numpy()


def build_trunk(net: nn.Module, cfg, c_in: int, conv, skip: bool = True) -> None:
    """Give ``net`` the layers :func:`gated_trunk` runs: ``conv(c_in, c_out, role)`` (role
    ``first``, ``gate`` or ``skip``) makes the spatial convs (masked or dense), 1x1 convs the rest;
    the skip (a linear prediction of the parameters from the input) starts at zero, the head
    with broad distributions around mid-grey."""
    f = cfg.width
    net.first = conv(c_in, f, "first")
    net.gate_convs = nn.ModuleList(conv(f, 2 * f, "gate") for _ in range(cfg.blocks))
    net.mix_convs = nn.ModuleList(Conv1x1(f, f) for _ in range(cfg.blocks))
    for m in net.mix_convs:
        m.weight.data *= 0.3
    net.head_hidden = Conv1x1(f, cfg.head_width)
    net.head_out = Conv1x1(cfg.head_width, cfg.n_params)
    net.head_out.weight.data *= 0.1
    net.skip = conv(c_in, cfg.n_params, "skip") if skip else None
    if net.skip is not None:
        nn.init.zeros_(net.skip.weight)
    net.register_buffer("param_scale", param_scales(cfg).float().view(1, -1, 1, 1), persistent=False)
    k, c = cfg.mixtures, cfg.image_channels
    with torch.no_grad():
        net.head_out.bias[2 * k * c : 3 * k * c] = 3.0


class PixelCNN(nn.Module):
    """Float/QAT model; see the module docstring for the graph."""

    def __init__(self, cfg: PixelCNNConfig):
        super().__init__()
        self.cfg = cfg
        def conv(c_in: int, c_out: int, role: str) -> MaskedConv2d:
            reach = cfg.block_reach if role == "gate" else cfg.first_reach
            return MaskedConv2d(c_in, c_out, reach, cfg.slope, strict=role != "gate")

        build_trunk(self, cfg, cfg.image_channels + 1, conv, cfg.linear_skip)

    @property
    def rows_above(self) -> int:
        """How many rows above a pixel its output reads (the first layer's reach up, then each
        block's): rows further up change no output of this row."""
        return self.cfg.first_reach[0] + self.cfg.blocks * self.cfg.block_reach[0]

    def features(self, x: torch.Tensor, qat: bool = False, int8_blocks=None) -> torch.Tensor:
        """x: float (B, C, H, W) pixel values 0..255 -> raw head output (B, n_params, H, W)."""
        ones = torch.full_like(x[:, :1], ONES_VALUE * INPUT_SCALE)
        inp = torch.cat([(x - 128) * INPUT_SCALE, ones], 1)  # (B, C+1, H, W), exact on the grid
        return gated_trunk(self, inp, qat, int8_blocks=int8_blocks)

    def forward(self, x: torch.Tensor, qat: bool = False, int8_blocks=None) -> torch.Tensor:
        """Negative log2-likelihood per subpixel, (B, C, H, W) (``int8_blocks``: :func:`gated_trunk`'s)."""
        return mixture_nll_bits(self.features(x, qat, int8_blocks), x, self.cfg, qat)


def param_scales(cfg: PixelCNNConfig) -> torch.Tensor:
    """Integer grid of each head output (float head units): logits 1/8 bit, means 1/16 level
    (mean = 128 + MEAN_GAIN * y), log2-scales 1/8, coupling coefficients 1/coef_steps.  float64 (n_params,)."""
    k, c = cfg.mixtures, cfg.image_channels
    return torch.cat([
        torch.full((k * c,), 1 / LOGIT_STEPS),
        torch.full((k * c,), 1 / (MEAN_STEPS * MEAN_GAIN)),
        torch.full((k * c,), 1 / LOGSCALE_STEPS),
        torch.full((cfg.n_params - 3 * k * c,), 1 / cfg.coef_steps),
    ]).double()


def split_params(out: torch.Tensor, cfg: PixelCNNConfig):
    """Raw head output (B, P, H, W) -> logits, means, log2 scales (B, C, K, H, W) and
    coupling coefficients (B, n_pairs, K, H, W), pairs ordered (1,0), (2,0), (2,1), ..."""
    b, _, h, w = out.shape
    k, c = cfg.mixtures, cfg.image_channels
    logits = out[:, : k * c].reshape(b, c, k, h, w)
    means = out[:, k * c : 2 * k * c].reshape(b, c, k, h, w)
    logs = out[:, 2 * k * c : 3 * k * c].reshape(b, c, k, h, w)
    coefs = out[:, 3 * k * c :].reshape(b, -1, k, h, w)
    return logits, means, logs, coefs


def mixture_nll_bits(out: torch.Tensor, x: torch.Tensor, cfg: PixelCNNConfig, qat: bool) -> torch.Tensor:
    """Discretized logistic mixture NLL in bits, channel c conditioned on channels < c
    through linear mean coupling (PixelCNN++), mixture weights per channel."""
    logits, means, logs, coefs = split_params(out, cfg)
    means = means * MEAN_GAIN
    if qat:
        logits = _ste_round(logits * LOGIT_STEPS) / LOGIT_STEPS
        means = _ste_round(means * MEAN_STEPS) / MEAN_STEPS
        logs = _ste_round(logs * LOGSCALE_STEPS) / LOGSCALE_STEPS
        coefs = _ste_round(coefs * cfg.coef_steps) / cfg.coef_steps
    coefs = torch.clamp(coefs, -COEF_MAX, COEF_MAX)
    logs = torch.clamp(logs, LOG2_SCALE_MIN, LOG2_SCALE_MAX)
    xc = x - 128  # (B, C, H, W)
    mu_list = []
    pair = 0
    for c in range(cfg.image_channels):
        mu = 128 + means[:, c]
        for prev in range(c):
            shift = coefs[:, pair] * xc[:, prev : prev + 1]
            if qat:  # integer path: floor(coef_int * xc * MEAN_STEPS / coef_steps)
                shift = _ste_floor(shift * MEAN_STEPS) / MEAN_STEPS
            mu = mu + shift
            pair += 1
        mu_list.append(mu)
    mu = torch.clamp(torch.stack(mu_list, 1), MEAN_MIN, MEAN_MAX)  # (B, C, K, H, W)
    inv_s = torch.exp2(-logs)
    xv = x.unsqueeze(2)
    centered = xv - mu
    plus_in = inv_s * (centered + 0.5)
    min_in = inv_s * (centered - 0.5)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid(plus_in), used at x == 0
    log_one_minus_cdf_min = -F.softplus(min_in)  # used at x == 255
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_s * centered
    log_pdf_mid = mid_in - logs * math.log(2) - 2 * F.softplus(mid_in)
    log_mid = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp_min(1e-12)), log_pdf_mid)
    log_probs = torch.where(xv < 0.5, log_cdf_plus, torch.where(xv > 254.5, log_one_minus_cdf_min, log_mid))
    log_w = torch.log_softmax(logits * math.log(2), dim=2)
    nll = -torch.logsumexp(log_probs + log_w, dim=2)  # nats, (B, C, H, W)
    # Integer tables give every value at least 2**-24; mirror that floor loosely.
    return torch.clamp(nll, max=24 * math.log(2)) / math.log(2)
