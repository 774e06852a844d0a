"""YUV4MPEG2 (.y4m) streams, read and written frame by frame (exactly: the header line and every
frame's parameters come back byte for byte).

A stream is one header line ``YUV4MPEG2 W<w> H<h> F<n>:<d> I<i> A<n>:<d> C<space> X<...>`` and then
frames, each ``FRAME[ params]\\n`` followed by its planes (Y, then U and V at the colour space's
subsampling, then alpha for ``444alpha``).  8-bit colour spaces only: ``420jpeg``, ``420paldv``,
``420mpeg2`` and ``420`` (the same 4:2:0 layout, sited differently), ``422``, ``444``, ``444alpha``
and ``mono``; other bit depths (``420p10``, ``mono16``, ...) and unknown spaces are refused with a
message that names them.  Nothing is read ahead of the frame asked for, so clips of any length
stream through in the memory of one frame; pipes work (``-``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import numpy as np

from armcodec.errors import FormatError

MAGIC = b"YUV4MPEG2"
FRAME = b"FRAME"
MAX_LINE = 4096  # a header or frame line longer than this is not a Y4M stream
MAX_SIDE = 1 << 16
# colour space -> (chroma subsampling (rows, columns) or None for no chroma, alpha plane)
SPACES = {
    "420jpeg": ((2, 2), False), "420paldv": ((2, 2), False), "420mpeg2": ((2, 2), False), "420": ((2, 2), False),
    "422": ((1, 2), False), "444": ((1, 1), False), "444alpha": ((1, 1), True), "mono": (None, False),
}
DEFAULT_SPACE = "420jpeg"  # what a header without a C token means


@dataclass(frozen=True)
class Y4MHeader:
    """A stream's header: the parsed fields and the line itself (kept verbatim, without its newline)."""

    width: int
    height: int
    rate: tuple[int, int] | None  # frames per second as a fraction (None: not given)
    interlace: str | None  # p, t, b, m or None
    aspect: tuple[int, int] | None  # pixel aspect ratio (0:0 unknown)
    colorspace: str
    comments: tuple[str, ...] = ()  # the X tokens, without the X
    line: bytes = field(default=b"", repr=False)

    def plane_shapes(self) -> list[tuple[int, int]]:
        """(rows, columns) of each plane of a frame, in stream order."""
        sub, alpha = SPACES[self.colorspace]
        shapes = [(self.height, self.width)]
        if sub is not None:
            c = (-(-self.height // sub[0]), -(-self.width // sub[1]))
            shapes += [c, c]
        if alpha:
            shapes.append((self.height, self.width))
        return shapes

    @property
    def pix_fmt(self) -> str:
        """ffmpeg's name for these planes (the siting of 4:2:0 aside)."""
        return {"mono": "gray", "444alpha": "yuva444p", "444": "yuv444p", "422": "yuv422p"}.get(self.colorspace, "yuv420p")

    @property
    def frame_bytes(self) -> int:
        return sum(r * c for r, c in self.plane_shapes())

    @staticmethod
    def parse(line: bytes) -> "Y4MHeader":
        """The header line (without its newline) -> Y4MHeader; FormatError if it is not one this reads."""
        tokens = line.split(b" ")
        if tokens[0] != MAGIC:
            raise FormatError("not a YUV4MPEG2 stream (no YUV4MPEG2 header)")
        fields: dict[str, str] = {}
        comments = []
        for tok in tokens[1:]:
            if not tok:
                continue
            try:
                text = tok.decode("ascii")
            except UnicodeDecodeError:
                raise FormatError("YUV4MPEG2 header has a token that is not ASCII") from None
            key, value = text[0], text[1:]
            if key == "X":
                comments.append(value)
            else:
                fields[key] = value
        try:
            width, height = int(fields["W"]), int(fields["H"])
        except (KeyError, ValueError):
            raise FormatError("YUV4MPEG2 header lacks a valid width (W) or height (H)") from None
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise FormatError(f"YUV4MPEG2 frame size {width}x{height} is outside 1..{MAX_SIDE}")
        space = fields.get("C", DEFAULT_SPACE)
        if space not in SPACES:
            depth = re.fullmatch(r"(?:4\d\dp|mono)(\d+)", space)
            what = f"{depth.group(1)}-bit samples" if depth else "a colour space this does not read"
            raise FormatError(f"YUV4MPEG2 colour space C{space} ({what}): only 8-bit {', '.join(sorted(SPACES))} are coded")
        return Y4MHeader(width, height, _ratio(fields.get("F"), "frame rate F"), fields.get("I"),
                         _ratio(fields.get("A"), "aspect A"), space, tuple(comments), line)


def _ratio(value: str | None, what: str) -> tuple[int, int] | None:
    if value is None:
        return None
    num, sep, den = value.partition(":")
    try:
        out = (int(num), int(den))
    except ValueError:
        raise FormatError(f"YUV4MPEG2 header: {what} {value!r} is not N:D") from None
    if not sep or min(out) < 0:
        raise FormatError(f"YUV4MPEG2 header: {what} {value!r} is not N:D")
    return out


def _line(stream: BinaryIO, what: str) -> bytes | None:
    """One line without its newline; None at the end of the stream (before any byte)."""
    out = bytearray()
    while True:
        b = stream.read(1)
        if not b:
            if not out:
                return None
            raise FormatError(f"YUV4MPEG2 stream ends inside a {what} line")
        if b == b"\n":
            return bytes(out)
        out += b
        if len(out) > MAX_LINE:
            raise FormatError(f"YUV4MPEG2 {what} line longer than {MAX_LINE} bytes")


@dataclass
class Y4MFrame:
    """One frame: its planes (uint8 (rows, columns) each, stream order) and the parameters of its
    FRAME line (the bytes after ``FRAME``, usually empty)."""

    planes: list[np.ndarray]
    params: bytes = b""


class Y4MReader:
    """Frames of a Y4M stream, one at a time: ``header``, then iterate."""

    def __init__(self, stream: BinaryIO):
        self.stream = stream
        line = _line(stream, "header")
        if line is None:
            raise FormatError("empty input (no YUV4MPEG2 header)")
        self.header = Y4MHeader.parse(line)
        self.frames_read = 0

    def __iter__(self) -> Iterator[Y4MFrame]:
        return self

    def __next__(self) -> Y4MFrame:
        line = _line(self.stream, "FRAME")
        if line is None:
            raise StopIteration
        if not line.startswith(FRAME):
            raise FormatError(f"YUV4MPEG2 frame {self.frames_read} does not start with FRAME")
        planes = []
        for rows, cols in self.header.plane_shapes():
            data = self.stream.read(rows * cols)
            if len(data) != rows * cols:
                raise FormatError(f"YUV4MPEG2 stream ends inside frame {self.frames_read}")
            planes.append(np.frombuffer(data, dtype=np.uint8).reshape(rows, cols))
        self.frames_read += 1
        return Y4MFrame(planes, line[len(FRAME) :])


class Y4MWriter:
    """Writes a header (its line verbatim), then frames."""

    def __init__(self, stream: BinaryIO, header: Y4MHeader):
        self.stream, self.header = stream, header
        stream.write((header.line or default_line(header)) + b"\n")

    def write(self, frame: Y4MFrame) -> None:
        shapes = self.header.plane_shapes()
        if [p.shape for p in frame.planes] != shapes:
            raise ValueError(f"frame planes {[p.shape for p in frame.planes]} do not match the header's {shapes}")
        self.stream.write(FRAME + frame.params + b"\n")
        for p in frame.planes:
            self.stream.write(np.ascontiguousarray(p, dtype=np.uint8).tobytes())


def default_line(h: Y4MHeader) -> bytes:
    """A header line for fields given without one (tokens in the usual order)."""
    tokens = [MAGIC.decode(), f"W{h.width}", f"H{h.height}"]
    if h.rate is not None:
        tokens.append(f"F{h.rate[0]}:{h.rate[1]}")
    if h.interlace is not None:
        tokens.append(f"I{h.interlace}")
    if h.aspect is not None:
        tokens.append(f"A{h.aspect[0]}:{h.aspect[1]}")
    tokens.append(f"C{h.colorspace}")
    tokens += [f"X{c}" for c in h.comments]
    return " ".join(tokens).encode("ascii")
