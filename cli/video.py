"""The video side of ``armcodec compress`` / ``decompress`` / ``info``: a Y4M file or stream, a video
file, or (``--video``) a folder of frames -> a video .arm file, and back to Y4M, PNG frames or FFV1.
Outputs appear whole or not at all (a temporary file or folder, renamed at the end)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from armcodec.errors import ArmcodecError, OutputExistsError, UnsupportedInputError
from armcodec.io.frames import VIDEO_SUFFIXES

STDIO = "-"
Y4M_MAGIC = b"YUV4MPEG2"


def is_video_input(p: Path, video_flag: bool) -> bool:
    """A Y4M file, a video file, or anything with ``--video`` (a folder of frames)."""
    if video_flag:
        return True
    if str(p) == STDIO:
        return sys.stdin.buffer.peek(len(Y4M_MAGIC))[: len(Y4M_MAGIC)] == Y4M_MAGIC if hasattr(sys.stdin.buffer, "peek") else False
    return p.suffix.lower() in (".y4m", *VIDEO_SUFFIXES) and not p.is_dir()


def open_source(p: Path, video_only: bool):
    from armcodec.io.frames import frames_source, video_source, y4m_source

    if str(p) == STDIO:
        return y4m_source(sys.stdin.buffer, "-"), None
    if p.is_dir() or any(ch in str(p) for ch in "*?["):
        paths = sorted(Path().glob(str(p))) if not p.is_dir() else [p]
        if not paths:
            raise UnsupportedInputError(f"{p}: no frames match")
        return frames_source(paths), None
    if not p.exists():
        raise UnsupportedInputError(f"{p}: no such file")
    if p.suffix.lower() == ".y4m":
        f = open(p, "rb")
        return y4m_source(f, str(p)), f
    return video_source(p, video_only), None


def compressed_name(p: Path) -> Path:
    if p.is_dir():
        return p.parent / (p.resolve().name + ".arm")
    return p.with_name(p.name + ".arm")


def compress_video(codec, inp: Path, out: Path, to_stdout: bool, force: bool, video_only: bool) -> dict:
    """Code one video input to ``out`` (or standard output) -> the record ``compress`` prints."""
    source, handle = open_source(inp, video_only)
    try:
        if to_stdout:
            stats = codec.encode(source, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            if out.exists() and not force:
                raise OutputExistsError(f"{out} exists (use --force to overwrite)")
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
            try:
                with open(tmp, "wb") as f:
                    stats = codec.encode(source, f)
                os.replace(tmp, out)
            finally:
                if tmp.exists():
                    tmp.unlink()
    finally:
        if handle is not None:
            handle.close()
    return {"input": str(inp), "output": str(out), "kind": "video", "source": source.kind, "width": source.width,
            "height": source.height, "frames": stats.frames, "bytes": stats.bytes, "bpsp": stats.bpsp,
            "model_bpsp": stats.model_bpsp, "seconds": stats.seconds,
            "frames_per_second": stats.frames / max(stats.seconds, 1e-9)}


def parse_range(text: str | None) -> slice | None:
    """``A:B`` (0-based, end excluded; either side may be empty) -> slice."""
    if text is None:
        return None
    a, sep, b = text.partition(":")
    try:
        start, stop = int(a) if a else 0, int(b) if b else None
    except ValueError:
        start = stop = -1
    if not sep or start < 0 or (stop is not None and stop < start):
        raise ArmcodecError(f"--frames {text}: give A:B, 0-based, end excluded (like a Python slice)")
    return slice(start, stop)


def output_kind(out: Path, source: str, planes: bool) -> str:
    """What ``-o`` asks for: ``y4m``, ``frames`` (a folder) or ``ffv1`` (.mkv); refuses what cannot
    hold the frames exactly.  ``planes``: the frames are Y4M planes (a Y4M file's, a video file's as
    decoded)."""
    name = str(out)
    slash = name.endswith(("/", os.sep)) or any(a.endswith(("/", os.sep)) and Path(a) == out for a in sys.argv[1:])
    if name == STDIO:
        kind = "y4m"
    elif slash or out.is_dir() or (not out.suffix and source == "frames"):
        kind = "frames"
    elif out.suffix.lower() == ".y4m":
        kind = "y4m"
    elif out.suffix.lower() == ".mkv":
        kind = "ffv1"
    else:
        raise ArmcodecError(f"-o {out}: a video decodes to .y4m, .mkv (FFV1) or a folder of PNG frames (a name ending in /)")
    if kind == "y4m" and not planes:
        raise ArmcodecError(f"-o {out}: this video holds {'RGB' if source == 'video' else 'image'} frames, which a Y4M "
                            "file cannot hold exactly; use .mkv or a folder")
    if kind == "frames" and planes:
        raise ArmcodecError(f"-o {out}: this video holds Y4M planes (Y, U, V), which are not PNG images; use .y4m or .mkv")
    return kind


def default_output(p: Path, source: str) -> Path:
    stem = p.name[: -len(".arm")] if p.name.endswith(".arm") else p.name
    if source == "y4m":
        return p.with_name(stem if stem.lower().endswith(".y4m") else stem + ".y4m")
    if source == "frames":
        return p.with_name(stem + "/")
    return p.with_name(Path(stem).stem + ".mkv")


def decompress_video(inp: Path, output: Path | None, device: str, force: bool, frames: str | None, kernel,
                     max_pixels: int) -> dict:
    from armcodec import container_video as cv
    from armcodec.api import _shipped_manifest
    from armcodec.io.frames import FFV1Writer, write_y4m, y4m_line
    from armcodec.video import VideoCodec

    rng = parse_range(frames)
    stdin = str(inp) == STDIO
    f = sys.stdin.buffer if stdin else open(inp, "rb")
    try:
        header = cv.read_header(f, max_pixels)
        entry = _shipped_manifest().by_prefix(header.weights_sha256)
        codec = VideoCodec(entry.name if entry else header.model, device, kernel=kernel, max_pixels=max_pixels)
        codec._check_weights(header)
        out = output if output is not None else (Path(STDIO) if stdin else default_output(inp, header.source))
        line = y4m_line(header.source, header.description)
        kind = output_kind(out, header.source, line is not None)
        decoded = codec.decode(f, header, rng, seekable=not stdin)
        count = [0]

        def counted():
            for _, frame, _ in decoded:
                count[0] += 1
                yield frame

        if str(out) == STDIO:
            write_y4m(sys.stdout.buffer, line, counted())
            sys.stdout.buffer.flush()
        elif kind == "frames":
            _write_frames(out, header, counted(), force)
        else:
            if out.exists() and not force:
                raise OutputExistsError(f"{out} exists (use --force to overwrite)")
            tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
            try:
                if kind == "y4m":
                    with open(tmp, "wb") as g:
                        write_y4m(g, line, counted())
                else:
                    w = FFV1Writer(tmp, header.source, header.description, header.width, header.height, header.planes)
                    try:
                        for frame in counted():
                            w.write(frame)
                    finally:
                        w.close()
                os.replace(tmp, out)
            finally:
                if tmp.exists():
                    tmp.unlink()
    finally:
        if not stdin:
            f.close()
    return {"input": str(inp), "output": str(out), "kind": "video", "frames": count[0], "width": header.width,
            "height": header.height, "mode": header.source}


def _write_frames(folder: Path, header, frames, force: bool) -> None:
    """PNG frames into ``folder``: first into a temporary folder beside them, then moved in."""
    from armcodec.io.frames import FrameFolderWriter

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".armcodec-{os.getpid()}.tmp"
    tmp.mkdir(exist_ok=True)
    try:
        writer = FrameFolderWriter(tmp, header.source, header.description)
        written = [writer.write(n, fr) for n, fr in enumerate(frames)]
        targets = [folder / p.name for p in written]
        clash = [t for t in targets if t.exists()]
        if clash and not force:
            raise OutputExistsError(f"{clash[0]} exists (use --force to overwrite)")
        for p, t in zip(written, targets):
            os.replace(p, t)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def info_video(inp: Path) -> dict:
    from armcodec.video import read_info

    with open(inp, "rb") as f:
        return {"file": str(inp), **read_info(f)}
