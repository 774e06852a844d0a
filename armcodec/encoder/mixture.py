"""Encoder-only: each tile's mixture index for the previous-frame predictor's mixture
(:class:`armcodec.models.previous_frame_exact.PredictorMixture`): the index whose mixture gives the
tile's samples the fewest bits by the model's own tables (before the coder tools), every index
tried on every tile of the batch at once."""
from __future__ import annotations

import numpy as np
import torch

from armcodec.encoder.search import estimate_bits
from armcodec.exact.tables import TableLUTs
from armcodec.models.previous_frame_exact import N_MIX, mix_offset, mix_params, mixed_config

ROWS = 1 << 14  # rows estimated at a time

def choose(model: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, values: torch.Tensor, schedule, n_tiles: int,
           cfg, luts: TableLUTs) -> np.ndarray:
    """The model's head integers (M, cfg.n_params; int32 or int64), the predictor's mean and scale
    (M,) and the values (M, 1) of a batch -> int64 (n_tiles,) mixture indices."""
    mixed = mixed_config(cfg)
    cost = np.zeros((N_MIX, n_tiles))
    for a in range(0, len(values), ROWS):  # a part of the rows at a time: the temporaries stay small
        b = min(a + ROWS, len(values))
        part = model[a:b].long()
        for v in range(N_MIX):
            offsets = torch.full((b - a,), int(mix_offset(v)), dtype=torch.int64, device=model.device)
            bits = estimate_bits(mix_params(part, mean[a:b], scale[a:b], offsets, cfg), values[a:b], 0, mixed, luts, 0)
            cost[v] += np.bincount(schedule.n[a:b], weights=bits.cpu().numpy(), minlength=n_tiles)
    return cost.argmin(0)
