"""The only module that talks to constriction (pinned: see pyproject.toml).

Exact hand-over: constriction 0.5's ``Categorical(perfect=False)`` quantizes a float
probability row to 24-bit frequencies, giving every symbol at least one; handed the
float64 integers ``q - 1`` of a table ``q`` with ``q >= 1`` and ``q.sum() == 2**24`` it
reproduces ``q`` exactly (checked symbol boundary by symbol boundary in
``tests/test_ans.py``).  Float rows that are merely close would not.

Streams are constriction's 32-bit words, written little-endian.  ANS is a stack:
:class:`StreamEncoder` must be fed in the reverse of the decoding order.
"""
from __future__ import annotations

import numpy as np
import constriction
import torch

from armcodec.errors import FormatError

CONSTRICTION_VERSION = "0.5.0"  # Categorical(perfect=False) uses 24-bit frequencies = tables.PRECISION
_FAMILY = constriction.stream.model.Categorical(perfect=False)


def _rows(q: np.ndarray) -> np.ndarray:
    """int64 (M, 256) tables -> the float64 rows constriction turns back into q."""
    return np.subtract(q, 1, dtype=np.float64)  # one pass (``(q - 1).astype`` takes two)


def rows_of(q: torch.Tensor) -> np.ndarray:
    """:func:`_rows` of int64 tables held in torch (any device), as numpy, converted once for
    the slices of many streams (:meth:`StreamEncoder.push_rows`, :meth:`StreamDecoder.pop_rows`)."""
    return q.double().sub_(1).cpu().numpy()


class StreamEncoder:
    """One tile stream being written (in reverse decoding order)."""

    def __init__(self) -> None:
        self._coder = constriction.stream.stack.AnsCoder()

    def push(self, symbols: np.ndarray, q: np.ndarray) -> None:
        """Encode ``symbols`` (M,) so that a decoder pops them in this order, with tables q (M, 256)."""
        self.push_rows(symbols, _rows(q))

    def push_rows(self, symbols: np.ndarray, rows: np.ndarray) -> None:
        """:meth:`push` with the tables already as :func:`rows_of` gives them."""
        self._coder.encode_reverse(symbols.astype(np.int32), _FAMILY, rows)

    def finish(self) -> bytes:
        return self._coder.get_compressed().astype("<u4").tobytes()


class StreamDecoder:
    """One tile stream being read."""

    def __init__(self, data: bytes) -> None:
        if len(data) % 4:
            raise FormatError("tile stream length is not a multiple of 4 bytes")
        words = np.frombuffer(data, dtype="<u4").astype(np.uint32)
        try:
            self._coder = constriction.stream.stack.AnsCoder(words) if len(words) else constriction.stream.stack.AnsCoder()
        except ValueError as e:
            raise FormatError(f"invalid tile stream: {e}") from None

    def pop(self, q: np.ndarray) -> np.ndarray:
        """Decode len(q) symbols with tables q (M, 256) -> int64 (M,)."""
        return self.pop_rows(_rows(q)).astype(np.int64)

    def pop_rows(self, rows: np.ndarray) -> np.ndarray:
        """Decode len(rows) symbols with the tables as :func:`rows_of` gives them -> (M,) integers
        (constriction's dtype)."""
        try:
            return self._coder.decode(_FAMILY, rows)
        except (ValueError, RuntimeError) as e:
            raise FormatError(f"tile stream ends early or is corrupted: {e}") from None

    def exhausted(self) -> bool:
        """True when every word was consumed, as it is after the last symbol of a valid stream."""
        return bool(self._coder.is_empty())

