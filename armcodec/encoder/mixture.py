"""Encoder-only: each tile's mixture index for the previous-frame predictor's mixture
(:class:`armcodec.models.previous_frame_exact.PredictorMixture`): the index whose mixture gives the
tile's samples the fewest bits by the model's own tables (before the coder tools), every index
(with and without the neighbour term) tried on every tile of the batch at once."""
from __future__ import annotations

import numpy as np
import torch

from armcodec.encoder.search import estimate_bits
from armcodec.exact.tables import TableLUTs
from armcodec.models.previous_frame_exact import N_MIX, mix_params, mixed_config, row_offsets

ROWS = 1 << 14  # rows estimated at a time

def choose(model: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor, values: torch.Tensor, schedule, n_tiles: int,
           term: torch.Tensor, cfg, luts: TableLUTs, indices: int = 2 * N_MIX) -> np.ndarray:
    """The model's head integers (M, cfg.n_params; int32 or int64), the predictor's means, scales
    and neighbour terms (M, C) and the values (M, C) of a batch -> int64 (n_tiles,) mixture
    indices, the best of ``indices`` (N_MIX: without the neighbour term only) for the tile's
    samples of every channel."""
    mixed = mixed_config(cfg)
    cost = np.zeros((indices, n_tiles))
    for a in range(0, len(values), ROWS):  # a part of the rows at a time: the temporaries stay small
        b = min(a + ROWS, len(values))
        part = model[a:b].long()
        for v in range(indices):
            offsets = row_offsets(np.array([v]), np.zeros(b - a, np.int64), term[a:b]).to(model.device)
            params = mix_params(part, mean[a:b], scale[a:b], offsets, cfg)
            bits = sum(estimate_bits(params, values[a:b], ch, mixed, luts, 0) for ch in range(values.shape[1]))
            cost[v] += np.bincount(schedule.n[a:b], weights=bits.cpu().numpy(), minlength=n_tiles)
    return cost.argmin(0)
