"""An ensemble of integer PixelCNNs that codes with a fixed-weight mixture of their distributions.

Each member runs its own wavefront over the same pixels (they must share slope, reach and
channels, so that their activation maps are laid out alike).  Their head outputs are
interleaved into the layout of one model with K = sum of the members' components (per channel:
all members' logits, then all means, ...), so the tables, the adaptation and the coder see a
single mixture.  The one difference is the mixture weights: each member's weights are
normalised to ``2**WEIGHT_BITS`` before they are pooled (:func:`armcodec.tables.mixture_weights`),
so every member carries half (a third, ...) of the probability mass whatever its logits; or, with
``shares`` (small positive integers), ``share / sum(shares)`` of it.
Integer arithmetic only, like a single model: the ensemble is as exact on any device.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from armcodec.models.pixelcnn import PixelCNNConfig
from armcodec.quant import IntPixelCNN, WavefrontState


MAX_SHARES = 64  # sum of the shares: keeps the tables' int64 products in range (tables.MAX_MIXTURES)


@dataclass(frozen=True)
class EnsembleConfig:
    members: tuple[PixelCNNConfig, ...]
    shares: tuple[int, ...] | None = None  # each member's part of the probability mass; None: equal

    def __post_init__(self):
        if len(self.members) < 2:
            raise ValueError("an ensemble needs at least two members")
        if self.shares is not None:
            if (len(self.shares) != len(self.members) or any(not isinstance(x, int) or x < 1 for x in self.shares)
                    or sum(self.shares) > MAX_SHARES):
                raise ValueError(f"ensemble shares must be one positive integer per member, summing to at most "
                                 f"{MAX_SHARES}: {self.shares}")
        # what fixes the activation map layout (pads come from the first and block kernel offsets)
        # (and the tables read one coupling grid)
        shared = lambda m: (m.image_channels, m.slope, m.first_reach, m.block_reach, m.blocks > 0, m.coef_steps)  # noqa: E731
        if any(shared(m) != shared(self.members[0]) for m in self.members[1:]):
            raise ValueError("ensemble members must share image_channels, slope, first_reach, block_reach and coef_steps")

    @property
    def image_channels(self) -> int:
        return self.members[0].image_channels

    @property
    def slope(self) -> int:
        return self.members[0].slope

    @property
    def coef_steps(self) -> int:
        return self.members[0].coef_steps

    @property
    def mixtures(self) -> int:
        return sum(m.mixtures for m in self.members)

    @property
    def member_mixtures(self) -> tuple[int, ...]:
        """Components per member: the groups whose weights are normalised separately."""
        return tuple(m.mixtures for m in self.members)

    @property
    def member_shares(self) -> tuple[int, ...]:
        """Each member's weight in the mixture, in units of 1 / sum (equal: all 1)."""
        return self.shares or (1,) * len(self.members)

    @property
    def n_params(self) -> int:
        return sum(m.n_params for m in self.members)

    def to_dict(self) -> dict:
        d = {"members": [m.to_dict() for m in self.members]}
        return d if self.shares is None else {**d, "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, d: dict) -> "EnsembleConfig":
        shares = d.get("shares")
        return cls(tuple(PixelCNNConfig.from_dict(m) for m in d["members"]), tuple(shares) if shares is not None else None)


def interleave_order(cfg: EnsembleConfig) -> torch.Tensor:
    """Column order that turns the members' concatenated outputs into one model's layout: each
    member's outputs are runs of K_m columns (per channel: logits, means, log-scales; then per
    channel pair: coupling), and run r of the ensemble is run r of every member in turn."""
    n_runs = cfg.members[0].n_params // cfg.members[0].mixtures
    starts = np.concatenate([[0], np.cumsum([m.n_params for m in cfg.members])])
    cols = [s + r * m.mixtures + k for r in range(n_runs) for m, s in zip(cfg.members, starts) for k in range(m.mixtures)]
    return torch.tensor(cols, dtype=torch.int64)


class EnsembleState:
    """The members' activation maps over the same batch of tiles (one layout: EnsembleConfig checks it)."""

    def __init__(self, states: list[WavefrontState]):
        self.states = states

    def flat_index(self, n: np.ndarray, i: np.ndarray, j: np.ndarray) -> torch.Tensor:
        return self.states[0].flat_index(n, i, j)

    def write_pixels(self, pos: torch.Tensor, values: torch.Tensor) -> None:
        for s in self.states:
            s.write_pixels(pos, values)

    def clear_right(self, pos: torch.Tensor) -> None:
        for s in self.states:
            s.clear_right(pos)


class IntEnsemble:
    """Integer-exact ensemble with the interface of :class:`~armcodec.quant.IntPixelCNN`."""

    def __init__(self, members: list[IntPixelCNN], shares: tuple[int, ...] | None = None):
        self.members = members
        self.cfg = EnsembleConfig(tuple(m.cfg for m in members), shares)
        self.order = interleave_order(self.cfg).to(members[0].first.weight.device)

    @property
    def map_channels(self) -> int:
        return sum(m.map_channels for m in self.members)

    @property
    def pass_channels(self) -> int:
        return sum(m.pass_channels for m in self.members)

    @property
    def ring_columns(self) -> int:
        return max(m.ring_columns for m in self.members)

    def new_state(self, n_tiles: int, tile: int, device, columns: int | None = None) -> EnsembleState:
        return EnsembleState([m.new_state(n_tiles, tile, device, columns) for m in self.members])

    def run(self, state: EnsembleState, pos: torch.Tensor, single_pass: bool = False) -> torch.Tensor:
        out = torch.cat([m.run(s, pos, single_pass=single_pass) for m, s in zip(self.members, state.states)], 1)
        return out.index_select(1, self.order)

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f"member.{i}.{k}": v for i, m in enumerate(self.members) for k, v in m.tensors().items()}

    @staticmethod
    def from_tensors(cfg: EnsembleConfig, t: dict) -> "IntEnsemble":
        members = []
        for i, mc in enumerate(cfg.members):
            prefix = f"member.{i}."
            members.append(IntPixelCNN.from_tensors(mc, {k[len(prefix):]: v for k, v in t.items() if k.startswith(prefix)}))
        return IntEnsemble(members, cfg.shares)

    def float_proxy(self):
        """The first member's float copy: good enough to guide the encoder's orientation choice."""
        return self.members[0].float_proxy()

    def to(self, device) -> "IntEnsemble":
        return IntEnsemble([m.to(device) for m in self.members], self.cfg.shares)
