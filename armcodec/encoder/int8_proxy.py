"""The orientation search's proxy with its residual blocks in int8 (encoder-only: the proxy
chooses what is sent, never how anything is decoded, so it may approximate).

A wavefront PixelCNN's float copy spends most of a proxy pass in its blocks' convolutions (a 2x3
masked window, F -> 2F channels, then a 1x1 F -> F: `fast`'s gate convolutions alone are 0.94 of
1.5 s on a 512x512 tile, one thread).  Here both run as oneDNN's u8 x s8 convolution
(``torch.ops.onednn``, as :class:`armcodec.exact.kernels.Int8Conv` runs the exact dense layers):
the stream rounded to 1/32 (its clamp of about +-4 in 8 bits), the gate convolution's output as
uint8 on the gate's grid (1/64, the range the gate's clamps keep), the gate in integers as the
exact model computes it, the 1x1's output in float32.  The weights are the exact model's int8
integers and scales; the first layer, the head and the mixture stay the float proxy's
(:func:`armcodec.models.pixelcnn.gated_trunk`).  A pass takes about 0.55 of the float proxy's
time; on Kodak's 48 tiles it picks the float proxy's orientation on 43 (each of the other five
within 0.05% of the tile's estimated bits of it), and those five files are 1,092 bytes smaller
(docs/PROFILE.md).

Used where :func:`armcodec.exact.kernels.int8_conv_exact` holds (a CPU with VNNI or AMX whose
int8 convolution does not saturate) and the compiled loops run; elsewhere the float proxy.
"""
from __future__ import annotations

import numpy as np
import torch

from armcodec.exact import fused, kernels
from armcodec.models.pixelcnn import GATE_SCALE, MaskedConv2d, PixelCNN, _nhwc

STREAM_STEPS = 32  # the stream's uint8 grid: integers in [-128, 127] hold +-4 in steps of 1/32
ZERO_POINT = 128


class Int8Blocks:
    """The residual blocks of a float PixelCNN (gate convolutions masked and padded alike on the
    left and right) in int8 arithmetic: :meth:`block` runs block k on its stream in place."""

    def __init__(self, net: PixelCNN):
        self.gates, self.mixes = [], []  # per block: (packed weights, weight scales, bias, padding)
        for conv, mix in zip(net.gate_convs, net.mix_convs):
            up, left, right = conv.reach
            if not isinstance(conv, MaskedConv2d) or left != right:
                raise ValueError("int8 blocks need masked convolutions padded alike left and right")
            self.gates.append(_packed(conv.weight * conv.mask, conv.bias, 1 / STREAM_STEPS, [up, left]))
            self.mixes.append(_packed(mix.weight, mix.bias, GATE_SCALE, [0, 0]))
        cfg = net.cfg
        self.width, self.resid_max = cfg.width, np.float32(cfg.resid_max * cfg.resid_scale)
        self.zeros = torch.zeros(2 * cfg.width, dtype=torch.int32)

    def block(self, k: int, h: torch.Tensor) -> None:
        """Block k on its stream ``h`` (float32 (N, F, H, W), channels last), in place: the stream as
        uint8 (:func:`stream_uint8`), the gate convolution to uint8, the gate in integers
        (``float_kernels.gate_uint8``), the 1x1 mix convolution of that to float32, the residual
        add (``float_kernels.residual_add``)."""
        from armcodec.models import float_kernels

        n, _, rows, w = h.shape
        g8 = torch.empty((n, rows, w, self.width), dtype=torch.uint8)
        u8 = self.conv(self.gates[k], stream_uint8(h), 1 / STREAM_STEPS, ZERO_POINT, GATE_SCALE, ZERO_POINT)
        float_kernels.gate_uint8(_nhwc(u8), rows, self.width, g8.numpy())
        v = self.conv(self.mixes[k], g8, GATE_SCALE, ZERO_POINT)
        float_kernels.residual_add(_nhwc(h), _nhwc(v), -self.resid_max, self.resid_max)

    def conv(self, layer, x8: torch.Tensor, in_scale: float, in_zero: int, out_scale: float | None = None,
             out_zero: int = 0) -> torch.Tensor:
        """oneDNN's u8 x s8 convolution of ``x8`` (uint8 (N, H, W, C): value ``in_scale * (x8 -
        in_zero)``) by a packed layer (:func:`_packed`): with ``out_scale``, uint8 (N, C_out, H', W')
        channels last on that grid with zero point ``out_zero`` (rounded, clamped), else float32."""
        packed, scale, bias, padding = layer
        dtype = torch.float32 if out_scale is None else torch.uint8
        return torch.ops.onednn.qconv2d_pointwise(x8.permute(0, 3, 1, 2), in_scale, in_zero, packed, scale,
                                                  self.zeros[: len(scale)], bias, [1, 1], padding, [1, 1], 1,
                                                  1.0 if out_scale is None else out_scale, out_zero, dtype, "none",
                                                  [], "")


def stream_uint8(h: torch.Tensor) -> torch.Tensor:
    """A stream (float32 (N, C, H, W), channels last) as uint8 (N, H, W, C) on the grid
    1/:data:`STREAM_STEPS` with zero point 128 (:func:`armcodec.models.float_kernels.to_uint8`)."""
    from armcodec.models import float_kernels

    n, c, rows, w = h.shape
    x8 = torch.empty((n, rows, w, c), dtype=torch.uint8)
    float_kernels.to_uint8(_nhwc(h), np.float32(STREAM_STEPS), x8.numpy())
    return x8


def _packed(weight: torch.Tensor, bias: torch.Tensor, in_scale: float, padding: list[int]):
    """A float layer's weights as oneDNN's packed int8 weights with per-output-channel scales (the
    exact model's int8 integers: its float copy's weights are those times the scale of largest
    magnitude 127), its bias and padding."""
    w = weight.detach().float()
    scale = w.abs().flatten(1).amax(1).clamp_min(1e-30) / 127
    w8 = torch.round(w / scale[:, None, None, None]).to(torch.int8).contiguous()
    packed = torch.ops.onednn.qconv_prepack(w8, scale, in_scale, ZERO_POINT, [1, 1], padding, [1, 1], 1, None)
    return packed, scale, bias.detach().float().contiguous(), padding


class Int8Proxy:
    """A float PixelCNN proxy (estimated bits per subpixel) with :class:`Int8Blocks`; what
    :func:`armcodec.encoder.search.proxy_bits` needs of a proxy (``rows_above``, ``cfg``)."""

    def __init__(self, net: PixelCNN):
        self.net, self.blocks = net, Int8Blocks(net)
        self.cfg, self.rows_above = net.cfg, net.rows_above

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, int8_blocks=self.blocks)


def int8_proxy(net, device) -> Int8Proxy | None:
    """``net`` (a float proxy) with its blocks in int8 where that runs here (a CPU whose int8
    convolution is exact, the compiled loops started, a wavefront PixelCNN), else None."""
    if torch.device(device).type != "cpu" or type(net) is not PixelCNN or not fused.active(device) \
            or not kernels.int8_conv_exact():
        return None
    try:
        return Int8Proxy(net)
    except (AttributeError, RuntimeError, TypeError, ValueError, NotImplementedError):
        return None
