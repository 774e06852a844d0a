"""The polyphase pyramid's geometry, decoder-exact: its levels, phases and the integer input of
each pass, shared by the float training graph (:mod:`armcodec.models.pyramid`) and the exact
model (:mod:`armcodec.models.pyramid_exact`), so that both read the same integers."""
from __future__ import annotations

import torch

PHASES = ((1, 1), (0, 1), (1, 0))  # coded in this order on each level; (0, 0) is the coarser level
INSIDE_VALUE = 32  # integer of the "inside the image" input channel (1.0 on the input grid)
LEVEL_VALUE = 8  # integer of the level input channel per level (level / 4 on the input grid)


def padded_side(n: int, levels: int) -> int:
    """``n`` rounded up to a multiple of ``2**levels`` (every level's grid then has even sides)."""
    return -(-n // 2**levels) * 2**levels


def level_grid(centred: torch.Tensor, inside: torch.Tensor, level: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Level ``level`` of an image padded to a multiple of ``2**(level+1)``: (B, C, 2h, 2w) and its mask."""
    s = 2**level
    return centred[:, :, ::s, ::s], inside[:, :, ::s, ::s]


def phase(x: torch.Tensor, p: tuple[int, int]) -> torch.Tensor:
    return x[:, :, p[0] :: 2, p[1] :: 2]


def pass_input(centred: torch.Tensor, inside: torch.Tensor, k: int, level: int) -> torch.Tensor:
    """The integer input of pass ``k`` of a level: ``centred`` (B, C, 2h, 2w) = pixel - 128 inside
    the image and 0 outside (undecoded phases may hold anything: only the phases before pass k are
    read), ``inside`` (B, 1, 2h, 2w) 1 inside the image, 0 outside.  -> (B, C*(k+1) + 2, h, w):
    phase (0, 0) and the phases of passes before k, then the inside mark of phase (0, 0)
    (INSIDE_VALUE) and the level (LEVEL_VALUE * level) there.  Integer arithmetic only, the same
    for the float model (times INPUT_SCALE) and the exact one."""
    known = [phase(centred, (0, 0))] + [phase(centred, p) for p in PHASES[:k]]
    mark = phase(inside, (0, 0))
    return torch.cat(known + [mark * INSIDE_VALUE, mark * (LEVEL_VALUE * level)], 1)
