"""The polyphase pyramid: the multi-scale model family, float / quantization-aware training model.

An image ``x`` has levels ``x_l = x[::2**l, ::2**l]`` (l = 0 .. levels).  The coarsest level is
coded by a small wavefront PixelCNN (:class:`armcodec.models.pixelcnn.PixelCNN`).  Each finer
level ``l`` is the 2x2 polyphase split of ``x_l`` on the grid of ``x_{l+1}``: its phase (0, 0) is
``x_{l+1}`` (known), its three other phases are coded in three passes, :data:`PHASES` in order,
each a dense (non-causal) network over that grid that sees every phase coded before it.  One
network per phase serves every level (an input channel says which).  The networks have the
PixelCNN's graph (:func:`armcodec.models.pixelcnn.gated_trunk`: hard activations on fixed integer
grids, gated residual blocks, the mixture head with R -> G -> B coupling, a linear skip), with
3x3 kernels that read every side, so the integer-exact export
(:mod:`armcodec.models.pyramid_exact`) carries over; decoding takes the base's wavefront steps
plus ``3 * levels`` passes, each parallel over every pixel of its phase.

Data flow (training)::

    x (B, C, H, W) -> x_levels -> base PixelCNN on the coarsest level
                   -> per level, per phase: pass_input(decoded phases) -> pass net -> mixture NLL
    -> bits (B, C, H, W), each pixel's where it is

Images of any size: each level is zero-padded to even sides and the inputs mark what is inside
(:func:`~armcodec.models.polyphase_exact.pass_input`), the arithmetic the exact model runs on its tiles.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from armcodec.models.pixelcnn import (
    INPUT_SCALE,
    DenseConv2d,
    PixelCNN,
    PixelCNNConfig,
    SharedGrids,
    build_trunk,
    gated_trunk,
    mixture_nll_bits,
)
from armcodec.models.polyphase_exact import PHASES, level_grid, padded_side, pass_input, phase


@dataclass(frozen=True)
class PyramidConfig(SharedGrids):
    """Architecture of a polyphase pyramid; stored with the weights.  The head layout
    (``image_channels``, ``mixtures``, ``coef_steps``) and the residual grid are shared by the base
    and the passes; ``base_*`` size the base PixelCNN."""

    image_channels: int = 3
    mixtures: int = 5
    coef_steps: int = 1024
    resid_steps: int = 128
    head_steps: int = 32
    levels: int = 3
    width: int = 48
    blocks: int = 3
    head_width: int = 96
    kernel: int = 3
    base_width: int = 32
    base_blocks: int = 3
    base_head_width: int = 64
    base_slope: int = 3

    def __post_init__(self):
        if not 1 <= self.levels <= 6:
            raise ValueError(f"levels must be 1..6, not {self.levels}")
        if self.kernel not in (1, 3, 5):
            raise ValueError(f"kernel must be 1, 3 or 5, not {self.kernel}")
        self.base_config()  # validates the grids

    def base_config(self) -> PixelCNNConfig:
        return PixelCNNConfig(image_channels=self.image_channels, width=self.base_width, blocks=self.base_blocks,
                              head_width=self.base_head_width, mixtures=self.mixtures, slope=self.base_slope,
                              linear_skip=True, resid_steps=self.resid_steps, coef_steps=self.coef_steps,
                              head_steps=self.head_steps)

    def pass_inputs(self, k: int) -> int:
        """Input channels of pass k: the phases known before it, inside, level."""
        return self.image_channels * (k + 1) + 2

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "PyramidConfig":
        return cls(**d)


class PassNet(nn.Module):
    """One pass: the known phases of a level -> the target phase's mixture parameters
    (the PixelCNN's trunk with dense kernels)."""

    def __init__(self, cfg: PyramidConfig, k: int):
        super().__init__()
        self.cfg = cfg
        build_trunk(self, cfg, cfg.pass_inputs(k), lambda c_in, c_out, role: DenseConv2d(c_in, c_out, cfg.kernel))

    def forward(self, inp: torch.Tensor, qat: bool = False) -> torch.Tensor:
        """inp: :func:`pass_input` (integers) -> raw head output (B, n_params, h, w)."""
        return gated_trunk(self, inp * INPUT_SCALE, qat)


class Pyramid(nn.Module):
    """Float/QAT polyphase pyramid; see the module docstring."""

    def __init__(self, cfg: PyramidConfig):
        super().__init__()
        self.cfg = cfg
        self.base = PixelCNN(cfg.base_config())
        self.passes = nn.ModuleList(PassNet(cfg, k) for k in range(len(PHASES)))

    def forward(self, x: torch.Tensor, qat: bool = False) -> torch.Tensor:
        """Negative log2-likelihood per subpixel (B, C, H, W) of pixel values x (B, C, H, W)."""
        b, c, h, w = x.shape
        levels = self.cfg.levels
        hp, wp = padded_side(h, levels), padded_side(w, levels)
        centred = F.pad(x - 128, (0, wp - w, 0, hp - h))
        inside = F.pad(torch.ones_like(x[:, :1]), (0, wp - w, 0, hp - h))
        bits = x.new_zeros(x.shape)
        s = 2**levels
        bits[:, :, ::s, ::s] = self.base(x[:, :, ::s, ::s], qat)
        for level in range(levels - 1, -1, -1):
            cl, il = level_grid(centred, inside, level)
            s = 2**level
            for k, (net, p) in enumerate(zip(self.passes, PHASES)):
                out = net(pass_input(cl, il, k, level), qat)
                target = phase(cl, p) + 128
                nll = mixture_nll_bits(out, target, self.cfg, qat)
                dest = bits[:, :, p[0] * s :: 2 * s, p[1] * s :: 2 * s]  # the phase's pixels inside the image
                dest.copy_(nll[:, :, : dest.shape[2], : dest.shape[3]])
        return bits
