"""Tile streams kept as PNG zlib streams (coder tool 4): where zlib codes one tile of a plane group
in fewer bytes than the model's ANS stream (flat or synthetic regions next to photographs).

A group's tile (uint8, 1 or 3 channels) is kept as the zlib stream of an 8-bit grey or RGB PNG of
it (:mod:`armcodec.io.png`: adaptive filters, zlib level 9), zero-padded to a multiple of 4 bytes
like every stream; decoding strips the padding after the zlib stream's end.  The container's map
says which streams these are; their CRCs are the tiles' as for ANS streams.
"""
from __future__ import annotations

import zlib

import numpy as np

from armcodec.errors import FormatError
from armcodec.io import png

COLOUR_TYPES = {1: 0, 3: 2}  # channels of a plane group -> PNG colour type


def encode(samples: np.ndarray) -> bytes:
    """uint8 (h, w, 1 or 3) -> the padded zlib stream."""
    data = png.stream(samples, 8, COLOUR_TYPES[samples.shape[2]], level=9, search=True)
    return data + b"\0" * (-len(data) % 4)


def decode(data: bytes, width: int, height: int, channels: int) -> np.ndarray:
    """The inverse of :func:`encode`; FormatError for a damaged stream."""
    d = zlib.decompressobj()
    try:
        d.decompress(data, height * (1 + width * channels) + 1)  # to the stream's end: the padding after it
    except zlib.error:
        raise FormatError("a PNG tile stream is damaged") from None
    if not d.eof or d.unused_data.strip(b"\0"):
        raise FormatError("a PNG tile stream is damaged or padded with other bytes")
    stream = data[: len(data) - len(d.unused_data)]
    try:
        return png.decode(stream, width, height, 8, COLOUR_TYPES[channels], 0)
    except png.PngError as e:
        raise FormatError(f"a PNG tile stream: {e}") from None
