"""The temporal PixelCNN: the wavefront PixelCNN of a frame conditioned on the previous frame
(the video model family, float / quantization-aware training model).

p(x_1..T) = prod_t p(x_t | x_{t-1}): the current frame is coded exactly as an image by the
wavefront PixelCNN (:mod:`armcodec.models.pixelcnn`), and the previous frame, which the decoder
already has whole, enters through two dense, unmasked convolutions over its ``(2r+1)^2`` window
around each pixel (``r = context_reach``): one added to the first layer's output, one to the head's
parameters (a linear prediction of the means from the previous frame, beside the image's own
skip).  The context input is the image input's layout (``pixel - 128`` per channel and a channel
that is ``ONES_VALUE`` inside the frame), zero outside the frame; both convolutions have no bias,
so a frame without a previous one (a key frame) is the same network with the terms left out.

Data flow (training)::

    x (B, C, H, W), previous frame (B, C, H + 2r, W + 2r) (the window's margin: real pixels)
      -> context input -> context_first (B, F, H, W), context_skip (B, n_params, H, W)
      -> gated_trunk(x, ..., first_extra, out_extra) -> mixture NLL

A grey plane (Y, U or V of a YUV frame) is coded as the image model codes one: replicated into
the three channels, coded through channel 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from armcodec.models.pixelcnn import (INPUT_SCALE, ONES_VALUE, DenseConv2d, PixelCNN, PixelCNNConfig, gated_trunk,
                                      mixture_nll_bits, quantized_weight_bias)


@dataclass(frozen=True)
class TemporalConfig(PixelCNNConfig):
    """A wavefront PixelCNN plus the previous frame's window of ``2 * context_reach + 1`` pixels a side."""

    context_reach: int = 2

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.context_reach <= 4:
            raise ValueError(f"context_reach must be in 0..4, not {self.context_reach}")


def context_input(context: torch.Tensor, inside: torch.Tensor | None = None) -> torch.Tensor:
    """Previous frame (B, C, H, W) pixel values -> the context input (B, C + 1, H, W) on the
    input grid: ``pixel - 128`` and the ones channel, both zero where ``inside`` (B, 1, H, W) is 0."""
    ones = torch.full_like(context[:, :1], ONES_VALUE * INPUT_SCALE)
    inp = torch.cat([(context - 128) * INPUT_SCALE, ones], 1)
    return inp if inside is None else inp * inside


class TemporalPixelCNN(PixelCNN):
    """Float/QAT temporal model; see the module docstring."""

    def __init__(self, cfg: TemporalConfig):
        super().__init__(cfg)
        k = 2 * cfg.context_reach + 1
        c_in = cfg.image_channels + 1
        self.context_first = DenseConv2d(c_in, cfg.width, k)
        self.context_skip = DenseConv2d(c_in, cfg.n_params, k)
        for conv in (self.context_first, self.context_skip):  # starts as the image model; no bias (see above)
            nn.init.zeros_(conv.weight)
            conv.bias.requires_grad_(False)
        # the head term predicts the mixture means only: logits, scales and coupling coefficients
        # come from the trunk (a linear term on them moves whole distributions at every step)
        kc = cfg.mixtures * cfg.image_channels
        mask = torch.zeros(cfg.n_params, 1, 1, 1)
        mask[kc : 2 * kc] = 1
        self.register_buffer("skip_mask", mask, persistent=False)

    def context_terms(self, cinp: torch.Tensor, qat: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Context input with a margin of ``context_reach`` (B, C + 1, H + 2r, W + 2r) -> the terms
        added to the first layer (B, F, H, W) and to the head (B, n_params, H, W)."""
        out = []
        for conv, mask in ((self.context_first, None), (self.context_skip, self.skip_mask)):
            weight = conv.weight if mask is None else conv.weight * mask
            w, b = quantized_weight_bias(weight, conv.bias, qat, INPUT_SCALE)
            out.append(F.conv2d(cinp, w, b))
        return out[0], out[1]

    def features(self, x: torch.Tensor, qat: bool = False, context: torch.Tensor | None = None) -> torch.Tensor:
        """x: float (B, C, H, W) pixels 0..255; context: the context input with its margin (see
        :meth:`context_terms`) or None (a key frame) -> raw head output (B, n_params, H, W)."""
        ones = torch.full_like(x[:, :1], ONES_VALUE * INPUT_SCALE)
        inp = torch.cat([(x - 128) * INPUT_SCALE, ones], 1)
        if context is None:
            return gated_trunk(self, inp, qat)
        first_extra, out_extra = self.context_terms(context, qat)
        return gated_trunk(self, inp, qat, first_extra, out_extra)

    def forward(self, x: torch.Tensor, qat: bool = False, context: torch.Tensor | None = None) -> torch.Tensor:
        """Negative log2-likelihood per subpixel (B, C, H, W)."""
        return mixture_nll_bits(self.features(x, qat, context), x, self.cfg, qat)

    @classmethod
    def from_image_model(cls, image: PixelCNN, context_reach: int = 2) -> "TemporalPixelCNN":
        """A temporal model that starts as ``image`` (its weights, the context terms zero)."""
        cfg = TemporalConfig(**{**image.cfg.to_dict(), "context_reach": context_reach})
        model = cls(cfg)
        missing, unexpected = model.load_state_dict(image.state_dict(), strict=False)
        if unexpected or any(not k.startswith("context_") for k in missing):
            raise ValueError(f"not a warm start: missing {missing}, unexpected {unexpected}")
        return model
