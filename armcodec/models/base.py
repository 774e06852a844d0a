"""The protocol every integer-exact model implements, so that one scan loop codes with any of them.

A model is a registered *architecture* (:mod:`armcodec.models.registry`) built from a stored config
and integer tensors (:mod:`armcodec.weights`).  The coder needs from it:

- a **schedule**: ``step_of(i, j, tile)``, the parallel decode step of each pixel of a tile.  Pixels
  of one step are decoded together; a pixel's distribution may depend only on pixels of earlier
  steps (the wavefront PixelCNN: ``j + slope * i``; a multi-scale model: its passes).
- ``precedes(di, dj)``: whether the pixel at that offset is always coded on an earlier step
  (the residual feedback reads residuals only there).
- two **parameter sources** over a :class:`~armcodec.coding.scan.Schedule` of a batch of tiles,
  both giving the head's integers (int64 (M, n_params), the layout of :mod:`armcodec.exact.tables`):
  ``encoder_pass`` (every pixel known: one parallel pass; its ``params`` attribute holds every
  pixel's integers at once, for the encoder's searches) and ``decoder_steps`` (cached decoding,
  one step at a time, fed each step's decoded values through ``observe``).  Integer-exact
  inference makes the two give the same numbers; ``tests/test_model.py`` proves it.
- ``tile_bytes(tile, decoding)``: the memory one tile needs (batches are sized from it).
- ``float_proxy()``: a float network giving bits per subpixel (B, C, H, W) close to the exact
  model's, for encoder-only searches; it never influences a table.
- ``layers()``: every integer layer (:class:`~armcodec.exact.layers.IntConv`) by name, for checks
  that run on all of them (the kernels' exactness).
- ``tensors()`` / ``from_tensors(cfg, tensors)`` and ``cfg`` (a dataclass with ``to_dict`` /
  ``from_dict`` and the head layout fields ``image_channels``, ``mixtures``, ``coef_steps``).
"""
from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np
import torch


class ParamSource(Protocol):
    """The head integers of a batch's pixels, in schedule order, for :func:`armcodec.coding.scan.scan`."""

    def __call__(self, a: int, b: int) -> torch.Tensor:
        """int64 (b - a, n_params) for the pixels ``schedule[a:b]`` (one step)."""

    def observe(self, a: int, b: int, values: torch.Tensor) -> None:
        """The step's pixel values, int64 (b - a, g), once coded."""


class ExactModel(Protocol):
    architecture: ClassVar[str]
    config_class: ClassVar[type]
    cfg: Any

    def step_of(self, i: np.ndarray, j: np.ndarray, tile: int) -> np.ndarray: ...

    def precedes(self, di: int, dj: int) -> bool: ...

    def tile_bytes(self, tile: int, decoding: bool) -> int: ...

    def encoder_pass(self, tiles: list, schedule, tile: int, device, values: torch.Tensor) -> ParamSource: ...

    def decoder_steps(self, tiles: list, schedule, tile: int, device, channels: int) -> ParamSource: ...

    def float_proxy(self) -> torch.nn.Module: ...

    def layers(self) -> dict: ...

    def tensors(self) -> dict[str, torch.Tensor]: ...

    @classmethod
    def from_tensors(cls, cfg: Any, tensors: dict) -> "ExactModel": ...

    def to(self, device) -> "ExactModel": ...
