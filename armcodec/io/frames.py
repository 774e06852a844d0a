"""Video inputs and outputs, frame by frame: Y4M streams, folders of image frames, and video files
through the ffmpeg that imageio-ffmpeg ships.  Nothing holds more than the frame at hand.

Every source gives a :class:`VideoSource`: the frame size, the coded plane groups (each (width,
height, channels): a Y4M file's Y, U, V (and alpha) planes, one channel each; image frames' RGB and
alpha, or grey and alpha; a video file's planes as decoded (like a Y4M file's) or its RGB), the
source's description (stored verbatim in the file) and an iterator of :class:`VideoFrame`.  Every sink takes them back:
:func:`write_y4m` (the same header line and FRAME parameters), :class:`FrameFolderWriter` (PNG
frames under their stored names) and :class:`FFV1Writer` (an FFV1 .mkv through ffmpeg).
"""
from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from armcodec.errors import UnsupportedInputError
from armcodec.io.y4m import Y4MFrame, Y4MHeader, Y4MReader, Y4MWriter

FRAME_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".pnm", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts", ".264", ".h264", ".hevc",
                  ".265", ".flv", ".wmv", ".ogv", ".nut")
FRAME_MODES = {"L": ((1,)), "LA": (1, 1), "RGB": (3,), "RGBA": (3, 1)}  # image frames: coded groups per mode


def natural_key(name: str) -> list:
    """Sort key: digit runs compare as numbers (``f2`` before ``f10``), the rest as text."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


@dataclass
class VideoFrame:
    """One frame: its coded plane groups (uint8 (height, width, channels) each) and its own bytes
    (a Y4M FRAME line's parameters, an image frame's file name)."""

    groups: list[np.ndarray]
    extra: bytes = b""


@dataclass
class VideoSource:
    kind: str  # "y4m", "frames" or "video"
    width: int
    height: int
    groups: list[tuple[int, int, int]]  # (width, height, channels) per coded group
    description: bytes
    frames: Iterator[VideoFrame] = field(repr=False)
    name: str = ""


# --- Y4M -----------------------------------------------------------------------------------
def y4m_source(stream: BinaryIO, name: str = "-") -> VideoSource:
    reader = Y4MReader(stream)
    h = reader.header
    shapes = h.plane_shapes()
    frames = (VideoFrame([p[:, :, None] for p in f.planes], f.params) for f in reader)
    return VideoSource("y4m", h.width, h.height, [(c, r, 1) for r, c in shapes], h.line, frames, name)


def write_y4m(stream: BinaryIO, line: bytes, frames) -> int:
    """Y4M stream of decoded frames under the stored header ``line`` (:func:`y4m_line`); -> frames written."""
    writer = Y4MWriter(stream, Y4MHeader.parse(line))
    n = 0
    for f in frames:
        writer.write(Y4MFrame([g[:, :, 0] for g in f.groups], f.extra))
        n += 1
    return n


# --- folders of image frames -------------------------------------------------------------------
def frame_files(paths: list[Path]) -> list[Path]:
    """The frames of folders (their image files) and files given, in natural name order per folder."""
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted((q for q in p.iterdir() if q.suffix.lower() in FRAME_SUFFIXES and q.is_file()),
                          key=lambda q: natural_key(q.name))
        else:
            out.append(p)
    if not out:
        raise UnsupportedInputError(f"no image frames in {', '.join(map(str, paths))}")
    return out


def _frame_groups(arr: np.ndarray, mode: str) -> list[np.ndarray]:
    if mode in ("L", "RGB"):
        return [arr]
    return [arr[:, :, :-1], arr[:, :, -1:]]


def frames_source(paths: list[Path]) -> VideoSource:
    """Same-size 8-bit L, LA, RGB or RGBA image frames, exactly as the image path reads them; a
    frame with an ICC profile or other metadata, of another mode or size, is refused by name."""
    from armcodec.io.image import read_image

    files = frame_files(paths)
    arr, info = read_image(files[0])
    mode, (h, w) = info.mode, arr.shape[:2]
    if mode not in FRAME_MODES or info.bits != 8:
        raise UnsupportedInputError(f"{files[0]}: a {info.bits}-bit {mode} image; video frames are 8-bit L, LA, RGB or RGBA")
    groups = [(w, h, c) for c in FRAME_MODES[mode]]

    def frames():
        for k, p in enumerate(files):
            a, inf = (arr, info) if k == 0 else read_image(p)
            if inf.mode != mode or inf.bits != 8 or a.shape[:2] != (h, w):
                raise UnsupportedInputError(f"{p}: a {a.shape[1]}x{a.shape[0]} {inf.bits}-bit {inf.mode} frame in a "
                                            f"sequence of {w}x{h} 8-bit {mode} frames")
            if inf.icc_profile or inf.metadata:
                raise UnsupportedInputError(f"{p}: the frame carries an ICC profile or metadata, which a video file "
                                            "does not keep; compress the frames as images instead")
            yield VideoFrame(_frame_groups(a, mode), p.name.encode("utf-8"))

    return VideoSource("frames", w, h, groups, mode.encode("ascii"), frames(), str(paths[0]))


class FrameFolderWriter:
    """PNG frames into a folder: under their stored names (with a .png suffix where the name had
    another), or ``frame_000000.png`` where none was stored."""

    def __init__(self, folder: Path, kind: str, description: bytes):
        self.folder = Path(folder)
        self.mode = description.decode("ascii") if kind == "frames" else None  # else by the channels
        self.folder.mkdir(parents=True, exist_ok=True)

    def name(self, number: int, extra: bytes) -> str:
        name = Path(extra.decode("utf-8", "replace")).name if extra else f"frame_{number:06d}.png"
        return name if name.lower().endswith(".png") else Path(name).stem + ".png"

    def write(self, number: int, frame: VideoFrame, atomic=None) -> Path:
        from PIL import Image

        arr = np.concatenate(frame.groups, axis=2) if len(frame.groups) > 1 else frame.groups[0]
        mode = self.mode or {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
        out = self.folder / self.name(number, frame.extra)
        im = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode)
        if atomic is not None:
            atomic(out, lambda tmp: im.save(tmp, "PNG"))
        else:
            im.save(out, "PNG")
        return out


# --- video files through ffmpeg ------------------------------------------------------------------
def ffmpeg_exe() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UnsupportedInputError("video files need imageio-ffmpeg (pip install imageio-ffmpeg)") from None
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclass
class Probe:
    width: int
    height: int
    rate: str | None
    pix_fmt: str
    codec: str
    other_streams: list[str]  # "Audio: aac ...", "Subtitle: ..."


def probe(path: Path) -> Probe:
    """What ffmpeg reports of a file's streams (the first video stream; every other stream)."""
    err = subprocess.run([ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True,
                         errors="replace").stderr
    video = None
    others = []
    for line in err.splitlines():
        m = re.match(r"\s*Stream #\S+(?:\(\w+\))?: (\w+): (.*)", line)
        if not m:
            continue
        if m.group(1) == "Video" and video is None:
            video = m.group(2)
        else:
            others.append(f"{m.group(1)}: {m.group(2).split(',')[0]}")
    if video is None:
        raise UnsupportedInputError(f"{path}: no video stream that ffmpeg can read")
    size = re.search(r",\s*(\d{1,5})x(\d{1,5})\b", video)  # not the codec tag's hex (0x31637661)
    rate = re.search(r"([\d.]+) (?:fps|tbr)", video)
    pix = re.match(r"(\w+)[^,]*, (\w+)", video)
    return Probe(int(size.group(1)), int(size.group(2)), rate.group(1) if rate else None,
                 pix.group(2) if pix else "?", pix.group(1) if pix else "?", others)


# A video decoder's pixel formats that are stored exactly: those a Y4M stream holds as they are (8-bit
# planes; NV12/NV21 are 4:2:0 planes interleaved), and 8-bit RGB ones (as RGB).  Any other (more
# than 8 bits, alpha, ...) is refused: its frames would not come back as decoded.
Y4M_PIX_FMTS = {"gray": "gray", "yuv420p": "yuv420p", "yuvj420p": "yuvj420p", "nv12": "yuv420p", "nv21": "yuv420p",
                "yuv422p": "yuv422p", "yuvj422p": "yuvj422p", "yuv444p": "yuv444p", "yuvj444p": "yuvj444p"}
RGB_PIX_FMTS = ("rgb24", "bgr24", "rgb0", "bgr0", "0rgb", "0bgr", "gbrp", "pal8")


def y4m_line(kind: str, description: bytes) -> bytes | None:
    """The Y4M header line of a source whose frames are Y4M planes (a Y4M file; a video file decoded
    in its own pixel format), else None (image frames; RGB frames of a video file)."""
    if kind == "y4m":
        return description
    if kind == "video":
        line = json.loads(description).get("y4m")
        return line.encode() if line else None
    return None


def describe_source(kind: str, description: bytes) -> dict:
    """What ``armcodec info`` shows of a stored source description: frame rate, pixel format and,
    for a video file, its codec and the streams not stored."""
    line = y4m_line(kind, description)
    out: dict = {}
    if line is not None:
        h = Y4MHeader.parse(line)
        out.update(rate=f"{h.rate[0]}/{h.rate[1]}" if h.rate else None, pixel_format=f"{h.pix_fmt} (Y4M C{h.colorspace})")
    if kind == "video":
        d = json.loads(description)
        out.update(rate=d.get("rate"), source_codec=d.get("source_codec"), source_pixel_format=d.get("source_pix_fmt"),
                   dropped=d.get("dropped", []))
        out.setdefault("pixel_format", "rgb24")
    elif kind == "frames":
        out.update(pixel_format=description.decode("ascii", "replace"))
    return out


def _decode_command(path: Path, output: list[str]) -> list[str]:
    """ffmpeg decoding the first video stream to stdout, every frame as it comes (frame times to stderr)."""
    return [ffmpeg_exe(), "-hide_banner", "-nostats", "-i", str(path), "-map", "0:v:0", "-vf", "showinfo", *output,
            "-fps_mode", "passthrough", "-"]


def video_source(path: Path, video_only: bool = False) -> VideoSource:
    """A video file's decoded frames, stored exactly, with the stream's frame rate: 8-bit grey and
    YUV (4:2:0, 4:2:2, 4:4:4, either range) as the planes the decoder gave, read through ffmpeg's
    Y4M output (the header line kept); 8-bit RGB and palette frames as RGB; other pixel formats
    (more than 8 bits, alpha) refused.
    Audio, subtitle and data streams, and frame times that are not evenly spaced (variable frame
    rate), are refused by name unless ``video_only`` (then the description lists what was not stored)."""
    p = probe(path)
    if p.other_streams and not video_only:
        raise UnsupportedInputError(f"{path} also holds {'; '.join(p.other_streams)}, which armcodec does not store: "
                                    "use --video-only to code the video stream alone")
    info = {"rate": p.rate, "source_pix_fmt": p.pix_fmt, "source_codec": p.codec, "dropped": p.other_streams}
    w, h = p.width, p.height
    if p.pix_fmt in Y4M_PIX_FMTS:
        output = ["-f", "yuv4mpegpipe", "-pix_fmt", Y4M_PIX_FMTS[p.pix_fmt], "-strict", "-1"]
        first = subprocess.run(_decode_command(path, ["-frames:v", "1", *output]), capture_output=True)
        line = first.stdout.split(b"\n", 1)[0]
        if first.returncode != 0 or not line.startswith(b"YUV4MPEG2 "):
            raise UnsupportedInputError(f"{path}: ffmpeg could not decode it as {p.pix_fmt}")
        header = Y4MHeader.parse(line)
        info["y4m"] = line.decode("ascii")
        groups = [(c, r, 1) for r, c in header.plane_shapes()]

        def read(stdout):
            reader = Y4MReader(stdout)
            if reader.header.line != line:
                raise UnsupportedInputError(f"{path}: ffmpeg's Y4M header changed between two runs")
            for f in reader:
                yield VideoFrame([q[:, :, None] for q in f.planes], f.params)
    elif p.pix_fmt in RGB_PIX_FMTS:
        output = ["-f", "rawvideo", "-pix_fmt", "rgb24"]
        groups = [(w, h, 3)]

        def read(stdout):
            size = w * h * 3
            while data := stdout.read(size):
                if len(data) != size:
                    raise UnsupportedInputError(f"{path}: ffmpeg's output ends inside a frame")
                yield VideoFrame([np.frombuffer(data, np.uint8).reshape(h, w, 3)])
    else:
        raise UnsupportedInputError(f"{path}: its frames are {p.pix_fmt}, which armcodec cannot store as decoded "
                                    f"(8-bit grey, YUV and RGB only); convert it first, e.g. ffmpeg -i {path.name} "
                                    "-pix_fmt yuv420p (not lossless)")

    def frames():
        import tempfile

        with tempfile.TemporaryFile() as log:  # showinfo's frame times (a pipe could fill and stall ffmpeg)
            proc = subprocess.Popen(_decode_command(path, output), stdout=subprocess.PIPE, stderr=log)
            try:
                yield from read(proc.stdout)
            finally:
                proc.stdout.close()
                code = proc.wait()
            log.seek(0)
            err = log.read().decode("utf-8", "replace")
        if code != 0:
            last = [line for line in err.splitlines() if line.strip()]
            raise UnsupportedInputError(f"{path}: ffmpeg could not decode it: {last[-1] if last else '?'}")
        times = [float(t) for t in re.findall(r"pts_time:\s*(-?[\d.]+)", err)]
        steps = np.diff(times)
        if len(steps) >= 2 and not video_only and (steps.max() - steps.min()) > 0.25 * np.median(steps):
            raise UnsupportedInputError(f"{path}: its frames are not evenly spaced in time (variable frame rate, "
                                        f"{steps.min():.4f} to {steps.max():.4f} s apart), which armcodec does not "
                                        "store: use --video-only to code the frames at the stream's rate")

    return VideoSource("video", w, h, groups, json.dumps(info, sort_keys=True).encode(), frames(), str(path))


class FFV1Writer:
    """An FFV1 (level 3) .mkv through ffmpeg: frames piped in as Y4M (Y4M planes: a Y4M file's, a
    video file's as decoded; planes and colour range unchanged) or raw RGB / grey (image frames, a
    video file's RGB frames), at the stored rate.
    :meth:`close` decodes the written file again and compares it with what went in (a CRC32 of the
    raw frames): an FFV1 file that would not give the frames back is an error, never an output."""

    def __init__(self, path: Path, kind: str, description: bytes, width: int, height: int, groups):
        import zlib

        self.path, self.kind, self.desc, self.crc, self._zlib = Path(path), kind, description, 0, zlib
        rate = "25"
        if kind == "video":
            rate = json.loads(description).get("rate") or rate
        out = []
        line = y4m_line(kind, description)
        if line is not None:
            h = Y4MHeader.parse(line)
            inp = ["-f", "yuv4mpegpipe", "-i", "-"]
            self.pix = h.pix_fmt
            rng = next((c.split("=", 1)[1] for c in h.comments if c.startswith("COLORRANGE=")), None)
            out = ["-color_range", {"FULL": "pc", "LIMITED": "tv"}[rng]] if rng in ("FULL", "LIMITED") else []
        else:
            chans = sum(c for _, _, c in groups)
            self.pix = {1: "gray", 2: "ya8", 3: "rgb24", 4: "rgba"}[chans]
            inp = ["-f", "rawvideo", "-pix_fmt", self.pix, "-s", f"{width}x{height}", "-r", rate, "-i", "-"]
        self.proc = subprocess.Popen([ffmpeg_exe(), "-v", "error", "-y", *inp, "-c:v", "ffv1", "-level", "3", *out,
                                      str(self.path)], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        self.y4m = Y4MWriter(self.proc.stdin, h) if line is not None else None

    def write(self, frame: VideoFrame) -> None:
        if self.y4m is not None:
            self.y4m.write(Y4MFrame([g[:, :, 0] for g in frame.groups], frame.extra))
            for g in frame.groups:
                self.crc = self._zlib.crc32(np.ascontiguousarray(g).tobytes(), self.crc)
        else:
            arr = np.concatenate(frame.groups, axis=2) if len(frame.groups) > 1 else frame.groups[0]
            data = np.ascontiguousarray(arr).tobytes()
            self.proc.stdin.write(data)
            self.crc = self._zlib.crc32(data, self.crc)

    def close(self) -> None:
        self.proc.stdin.close()
        err = self.proc.stderr.read().decode("utf-8", "replace").strip()
        if self.proc.wait() != 0:
            raise UnsupportedInputError(f"ffmpeg could not write {self.path}: {err.splitlines()[-1] if err else '?'}")
        back = subprocess.Popen([ffmpeg_exe(), "-v", "error", "-i", str(self.path), "-f", "rawvideo", "-pix_fmt", self.pix, "-"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        crc = 0
        while chunk := back.stdout.read(1 << 20):
            crc = self._zlib.crc32(chunk, crc)
        if back.wait() != 0 or crc != self.crc:
            raise UnsupportedInputError(f"the FFV1 file ffmpeg wrote does not decode to the frames ({self.path}); "
                                        "write Y4M or PNG frames instead")
