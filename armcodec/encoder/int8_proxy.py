"""The orientation search's proxy with its gate convolutions in int8 (encoder-only: the proxy
chooses what is sent, never how anything is decoded, so it may approximate).

A wavefront PixelCNN's float copy spends most of a proxy pass in its gate convolutions (a 2x3
masked window, F -> 2F channels: `fast`'s are 0.94 of 1.5 s on a 512x512 tile, one thread).  Here
each runs as oneDNN's u8 x s8 convolution (``torch.ops.onednn``, as :class:`armcodec.exact.kernels.Int8Conv`
runs the exact dense layers) on the stream rounded to 1/32 (its clamp of about +-4 in 8 bits) and
gives its output as uint8 on the gate's own grid (1/64, the range the gate's clamps keep); the
weights are the exact model's int8 integers and scales, so only those two roundings differ from the
float proxy.  The rest of the graph is :func:`armcodec.models.pixelcnn.gated_trunk`'s.  On
Kodak's 48 tiles it picks the float proxy's orientation on 45 (the other three within 37-115
estimated bits of a tile's ~1-2.5 million) and on all 39 tiles of the validation photographs, in
about 0.6 of the float proxy's time (docs/PROFILE.md).

Used where :func:`armcodec.exact.kernels.int8_conv_exact` holds (a CPU with VNNI or AMX whose
int8 convolution does not saturate) and the compiled loops run; elsewhere the float proxy.
"""
from __future__ import annotations

import numpy as np
import torch

from armcodec.exact import fused, kernels
from armcodec.models.pixelcnn import GATE_MAX, GATE_SCALE, MaskedConv2d, PixelCNN, _nhwc

STREAM_STEPS = 32  # the stream's uint8 grid: integers in [-128, 127] hold +-4 in steps of 1/32
ZERO_POINT = 128


class Int8Gates:
    """The gate convolutions of a float PixelCNN (masked, padded alike on the left and right) as
    oneDNN int8 convolutions: :meth:`gate` is one block's gate from its stream."""

    def __init__(self, net: PixelCNN):
        self.packed = []  # per block: (packed weights, weight scales, bias, padding)
        for conv in net.gate_convs:
            up, left, right = conv.reach
            if not isinstance(conv, MaskedConv2d) or left != right:
                raise ValueError("the int8 gates need masked convolutions padded alike left and right")
            w = (conv.weight * conv.mask).detach().float()
            scale = w.abs().flatten(1).amax(1).clamp_min(1e-30) / 127  # the exact model's int8 weights
            w8 = torch.round(w / scale[:, None, None, None]).to(torch.int8).contiguous()
            padding = [up, left]
            packed = torch.ops.onednn.qconv_prepack(w8, scale, 1 / STREAM_STEPS, ZERO_POINT, [1, 1], padding, [1, 1], 1,
                                                    None)
            self.packed.append((packed, scale, conv.bias.detach().float().contiguous(), padding))
        self.zeros = torch.zeros(2 * net.cfg.width, dtype=torch.int32)
        self.width = net.cfg.width

    def gate(self, k: int, h: torch.Tensor) -> torch.Tensor:
        """Block k's gate output (float32 (N, F, H, W), channels last) from its stream ``h``
        (float32, channels last): the stream to uint8, the convolution, then
        :func:`armcodec.models.float_kernels.gate_uint8`."""
        from armcodec.models import float_kernels

        n, c, rows, w = h.shape
        x8 = torch.empty((n, rows, w, c), dtype=torch.uint8)
        float_kernels.to_uint8(_nhwc(h), np.float32(STREAM_STEPS), x8.numpy())
        packed, scale, bias, padding = self.packed[k]
        u8 = torch.ops.onednn.qconv2d_pointwise(x8.permute(0, 3, 1, 2), 1 / STREAM_STEPS, ZERO_POINT, packed, scale,
                                                self.zeros, bias, [1, 1], padding, [1, 1], 1, GATE_SCALE, ZERO_POINT,
                                                torch.uint8, "none", [], "")
        g = torch.empty((n, self.width, rows, w), memory_format=torch.channels_last)
        lim = np.float32(GATE_MAX * GATE_SCALE)
        float_kernels.gate_uint8(_nhwc(u8), rows, self.width, np.float32(GATE_SCALE), -lim, lim, _nhwc(g))
        return g


class Int8Proxy:
    """A float PixelCNN proxy (estimated bits per subpixel) with :class:`Int8Gates`; what
    :func:`armcodec.encoder.search.proxy_bits` needs of a proxy (``rows_above``, ``cfg``)."""

    def __init__(self, net: PixelCNN):
        self.net, self.gates = net, Int8Gates(net)
        self.cfg, self.rows_above = net.cfg, net.rows_above

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, int8_gates=self.gates)


def int8_proxy(net, device) -> Int8Proxy | None:
    """``net`` (a float proxy) with its gates in int8 where that runs here (a CPU whose int8
    convolution is exact, the compiled loops started, a wavefront PixelCNN), else None."""
    if torch.device(device).type != "cpu" or type(net) is not PixelCNN or not fused.active(device) \
            or not kernels.int8_conv_exact():
        return None
    try:
        return Int8Proxy(net)
    except (AttributeError, RuntimeError, TypeError, ValueError, NotImplementedError):
        return None
