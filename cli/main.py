"""The ``armcodec`` command: thin commands over the library; errors become one stderr line and an exit code."""
from __future__ import annotations

import dataclasses
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from armcodec.container import DEFAULT_MAX_PIXELS

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Lossless image compression with an integer-exact autoregressive model and ANS.")

ARM_SUFFIX = ".arm"
KERNEL_HELP = ("The model's integer products: auto (int8 on CUDA and on CPUs with VNNI/AMX once checked exact, else "
               "float), float or int8 (refused where not exact). Default: $ARMCODEC_KERNEL or auto. The output does not depend on it.")


def _named(path, error: Exception) -> str:
    """The error's message, after the file's name unless the message starts with it already."""
    msg = str(error)
    return msg if msg.startswith(f"{path}:") else f"{path}: {msg}"


def _fail(msg: str, code: int) -> None:
    typer.echo(f"armcodec: error: {msg}", err=True)
    raise typer.Exit(code)


def _set_threads(threads: int) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _outputs(inputs: list[Path], output: Optional[Path], name_for) -> list[Path]:
    """Output path per input: next to it by default, in DIR for -o DIR, or -o FILE for one input."""
    if output is None:
        return [name_for(p) for p in inputs]
    if output.is_dir() or len(inputs) > 1 or str(output).endswith(("/", "\\")):
        if output.exists() and not output.is_dir():
            _fail(f"-o {output}: several inputs need an output directory", 2)
        output.mkdir(parents=True, exist_ok=True)
        return [output / name_for(p).name for p in inputs]
    return [output]


STDIO = "-"


def _is_stdio(p) -> bool:
    return p is not None and str(p) == STDIO


def _read_input(p: Path) -> bytes:
    from armcodec.errors import ArmcodecError

    if _is_stdio(p):
        return sys.stdin.buffer.read()
    try:
        return p.read_bytes()
    except OSError as e:
        raise ArmcodecError(f"cannot read: {e.strerror}") from None


def _write_stdout(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


def _stdio_plan(inputs: list[Path], output: Optional[Path]) -> bool:
    """Whether the (one) output goes to standard output: ``-o -``, or ``-`` in without ``-o``.
    Refuses ``-`` among several inputs, several inputs to ``-``, and binary data to a terminal."""
    if any(_is_stdio(p) for p in inputs) and len(inputs) > 1:
        _fail("- (standard input) must be the only input", 2)
    to_stdout = _is_stdio(output) or (output is None and any(_is_stdio(p) for p in inputs))
    if to_stdout and len(inputs) > 1:
        _fail("-o -: standard output takes one input", 2)
    if to_stdout and sys.stdout.isatty():
        _fail("refusing to write binary data to a terminal: redirect standard output or use -o FILE", 2)
    return to_stdout


class _Batch:
    """Progress bar, per-file records and failures of a batch: one bad file does not stop the
    others; the exit code says whether any failed (theirs if they agree)."""

    def __init__(self, n: int, as_json: bool, records_to_stderr: bool = False, human=None):
        from rich.progress import Progress

        self.n, self.as_json, self.err, self.human = n, as_json, records_to_stderr, human or _human
        self.failed: list[tuple[Path, int]] = []
        # redrawn after each file, not by a refresh thread: a decode forks its workers only where
        # no other Python thread runs (armcodec.coding.workers)
        self.bar = Progress(transient=True, auto_refresh=False, disable=not (n > 1 and sys.stderr.isatty()))
        self.task = self.bar.add_task("coding", total=n)

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        self.bar.__exit__(*exc)

    def done(self, inp: Path, rec: dict | None, error: Exception | None = None) -> None:
        if error is None:
            typer.echo(json.dumps(rec) if self.as_json else self.human(rec), err=self.err)
        else:
            typer.echo(f"armcodec: error: {_named(inp, error)}", err=True)
            self.failed.append((inp, getattr(error, "exit_code", 1)))
        self.bar.advance(self.task)
        self.bar.refresh()

    def finish(self) -> None:
        if self.failed:
            if self.n > 1:
                typer.echo(f"armcodec: {len(self.failed)} of {self.n} files failed: "
                           f"{', '.join(str(p) for p, _ in self.failed)}", err=True)
            codes = {c for _, c in self.failed}
            raise typer.Exit(codes.pop() if len(codes) == 1 else 1)


def _run_batch(inputs, outputs, work, as_json: bool, records_to_stderr: bool = False, human=None) -> None:
    """Run work(inp, out) -> dict per file; one bad file does not stop the others.  The records
    go to stdout, or to stderr when stdout carries the data."""
    from armcodec.errors import ArmcodecError

    with _Batch(len(inputs), as_json, records_to_stderr, human) as batch:
        for inp, out in zip(inputs, outputs):
            try:
                rec = work(inp, out)
            except ArmcodecError as e:
                batch.done(inp, None, e)
                continue
            except KeyboardInterrupt:
                typer.echo(f"armcodec: interrupted at {inp}; no partial output was left", err=True)
                raise typer.Exit(130)
            batch.done(inp, rec)
    batch.finish()


def _human(rec: dict) -> str:
    if "bpsp" in rec:
        return (f"{rec['input']} -> {rec['output']}: {rec['width']}x{rec['height']}x{rec['channels']}, "
                f"{rec['bytes']} bytes, {rec['bpsp']:.4f} bpsp (model {rec['model_bpsp']:.4f}), {rec['seconds']:.2f} s")
    return f"{rec['input']} -> {rec['output']}: {rec['width']}x{rec['height']} {rec['mode']}, {rec['seconds']:.2f} s"


@app.command()
def compress(
    inputs: Annotated[list[Path], typer.Argument(help="Images to compress (PNG, TIFF, BMP, PPM/PGM, lossless WebP); videos: Y4M files, video files (mp4, mkv, avi, ...: their decoded frames), a folder or glob of frames with --video; - reads one image or Y4M stream from standard input.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output file (one input) or directory; - writes to standard output (the default for input -).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Preset: weights plus encoder settings (default, fast, max, pyramid; video for videos; see `armcodec models`).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    tile_size: Annotated[Optional[int], typer.Option("--tile-size", help="Tile size in pixels (default: the preset's).")] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Decode each file and compare before writing it.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per file.")] = False,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Refuse images with more pixels than this.")] = DEFAULT_MAX_PIXELS,
    threads: Annotated[int, typer.Option("--threads", help="At most this many CPU threads (0: every core this process may use); fewer while other programs hold cores. The output does not depend on it.")] = 0,
    batch_mb: Annotated[int, typer.Option("--batch-mb", help="Memory budget (MiB) for one batch of tiles coded together (0: the library default, 2560). The output does not depend on it.")] = 0,
    adapt: Annotated[bool, typer.Option("--adapt/--no-adapt", help="Coder tool: choose a scale offset per 32x32 block and channel and send it (smaller files, slower encode, same decode speed); --no-adapt turns off the orientation and feedback too.")] = True,
    orient: Annotated[Optional[bool], typer.Option("--orient/--no-orient", help="Coder tool: also choose per tile whether it is coded mirrored (about 0.2% smaller, same decode speed; the encoder scores the mirrorings with the preset's orientation weights: for default the 9x smaller pixelcnn-s, about 15% slower encode; for max the model itself, about 2.4x). Default: the preset's setting (on for default and max).")] = None,
    classic: Annotated[Optional[bool], typer.Option("--classic/--no-classic", help="Also try a classic lossless coding (PNG's zlib stream, lossless WebP) and keep it where it is smaller than the model's (small, flat or synthetic images; video: each frame's plane groups as one lossless WebP of their samples or of their residual to the moved previous frame, 0.15: screen content, flat graphics; default on); decoding reads which from the file.")] = None,
    scheduler: Annotated[Optional[str], typer.Option("--scheduler", help="Run the batch on a Dask distributed cluster: the scheduler's address (tcp://HOST:PORT). Files are identical to a serial run. Needs the cluster extra.")] = None,
    workers: Annotated[int, typer.Option("--workers", help="Run the batch on N local worker processes (a Dask cluster started for it). Needs the cluster extra.")] = 0,
    feedback: Annotated[bool, typer.Option("--feedback/--no-feedback", help="Coder tool: also fit and send per tile and channel a linear prediction of the model's residual from the residuals around it (about 1.7% smaller on the validation photographs, 4% on Kodak; decode about 7% slower).")] = True,
    kernel: Annotated[Optional[str], typer.Option("--kernel", help=KERNEL_HELP)] = None,
    strip: Annotated[bool, typer.Option("--strip", help="Leave out EXIF, XMP, text and the PNG chunks that do not change how the pixels look (time, physical size, suggested palettes, ...); pixels, palette, transparency, ICC profile and gamma/colour chunks stay exact. Default: everything is kept.")] = False,
    video: Annotated[bool, typer.Option("--video", help="Code the inputs (folders or globs of same-size frames, in natural name order) as one video each, not as images.")] = False,
    key_interval: Annotated[int, typer.Option("--key-interval", min=1, help="Video: a key frame (coded without the previous frame; decoding can start there) every N frames.")] = 60,
    video_only: Annotated[bool, typer.Option("--video-only", help="Video files: code the video stream even when the file also holds audio or subtitles, which are then not stored.")] = False,
    copy_blocks: Annotated[bool, typer.Option("--copy-blocks/--no-copy-blocks", help="Video: take the blocks (4x4 to 32x32 samples) that equal the moved previous frame from it instead of coding them (static backgrounds, the unchanged blocks of a lossy source, screen content; default on).")] = True,
    binned: Annotated[bool, typer.Option("--binned/--no-binned", help="Coder tool (0.11): code each sample the model predicts as its bin of 16 values, then its place in the bin (the coder's tables about 8x cheaper; the same size within a few bytes). --no-binned writes one table of 256 per sample: files armcodec 0.10 reads.")] = True,
    predictor: Annotated[bool, typer.Option("--predictor/--no-predictor", help="Video (0.13): motion vectors in quarter pixels, and each tile of a grey plane (Y, U, V; since 0.15 also of R, G, B frames) coded by the model mixed with the previous-frame predictor (noisy still or slowly moving scenes: 5-20% smaller). --no-predictor --no-classic writes files armcodec 0.12 reads.")] = True,
    long_motion: Annotated[bool, typer.Option("--long-motion/--no-long-motion", help="Video (0.17): motion vectors up to 64 pixels instead of 16, found on frames shrunk by 4 first (a shaking camera, fast motion), sent as their differences from their neighbours' median. --no-long-motion writes files armcodec 0.16 reads.")] = True,
) -> None:
    """Compress images (or videos) to .arm files (default: INPUT.arm next to each input)."""
    _set_threads(threads)
    from armcodec.api import Codec
    from armcodec.errors import ArmcodecError
    from armcodec.io.files import write_atomic

    from armcodec_cli import video as cli_video

    to_stdout = _stdio_plan(inputs, output)
    if any(cli_video.is_video_input(p, video) for p in inputs):
        return _compress_videos(inputs, output, to_stdout, model or "video", device, tile_size, max_pixels, adapt, feedback, kernel,
                                key_interval, video, video_only, force, as_json, copy_blocks, binned, predictor,
                                classic is not False, long_motion)
    model = model or "default"
    try:
        codec = Codec(model, device, tile_size, max_pixels=max_pixels, batch_bytes=batch_mb << 20 or None,
                      adaptive=adapt, orient=orient, feedback=feedback, classic=classic, kernel=kernel, strip=strip,
                      binned=binned)
    except ArmcodecError as e:
        _fail(str(e), e.exit_code)
    outs = [Path(STDIO)] if to_stdout else _outputs(inputs, output, lambda p: p.with_name(p.name + ARM_SUFFIX))
    if scheduler or workers:
        if to_stdout:
            _fail("--scheduler / --workers write files, not standard output", 2)
        settings = dict(model=model, device=device, tile_size=tile_size, max_pixels=max_pixels,
                        batch_bytes=batch_mb << 20 or None, adaptive=adapt, orient=orient, feedback=feedback,
                        classic=codec.classic, kernel=kernel, strip=strip, binned=binned)  # this process's choice, not the workers' default
        _compress_on_cluster(inputs, outs, settings, scheduler, workers, verify, force, as_json)
        return

    def work(inp: Path, out: Path) -> dict:
        if not to_stdout and out.exists() and not force:
            from armcodec.errors import OutputExistsError

            raise OutputExistsError(f"{out} exists (use --force to overwrite)")
        from armcodec.cluster import encode_record

        data, rec = encode_record(codec, _read_input(inp) if _is_stdio(inp) else inp, str(out), verify)
        if to_stdout:
            _write_stdout(data)
        else:
            write_atomic(out, data, force=force)
        return {"input": str(inp), "output": str(out), **rec, "model": model}

    _run_batch(inputs, outs, work, as_json, records_to_stderr=to_stdout)


def _compress_videos(inputs, output, to_stdout, model, device, tile_size, max_pixels, adapt, feedback, kernel, key_interval, video,
                     video_only, force, as_json, copy_blocks=True, binned=True, predictor=True, classic=True,
                     long_motion=True) -> None:
    from armcodec.errors import ArmcodecError
    from armcodec.video import VideoCodec

    from armcodec_cli import video as cli_video

    if not all(cli_video.is_video_input(p, video) for p in inputs):
        _fail("give videos and images in separate commands", 2)
    try:
        codec = VideoCodec(model, device, key_interval, tile_size, adapt, kernel=kernel, feedback=feedback,
                           copy_blocks=copy_blocks, binned=binned, predictor=predictor, classic_groups=classic,
                           long_motion=long_motion,
                           **({"max_pixels": max_pixels} if max_pixels != DEFAULT_MAX_PIXELS else {}))
    except ArmcodecError as e:
        _fail(str(e), e.exit_code)
    outs = [Path(STDIO)] if to_stdout else _outputs(inputs, output, cli_video.compressed_name)

    def work(inp: Path, out: Path) -> dict:
        return {**cli_video.compress_video(codec, inp, out, to_stdout, force, video_only), "model": model}

    _run_batch(inputs, outs, work, as_json, records_to_stderr=to_stdout, human=_human_video)


def _human_video(rec: dict) -> str:
    if "bpsp" in rec:
        return (f"{rec['input']} -> {rec['output']}: {rec['frames']} frames of {rec['width']}x{rec['height']} "
                f"({rec['source']}), {rec['bytes']} bytes, {rec['bpsp']:.4f} bpsp (model {rec['model_bpsp']:.4f}), "
                f"{rec['seconds']:.2f} s, {rec['frames_per_second']:.2f} frames/s")
    return f"{rec['input']} -> {rec['output']}: {rec['frames']} frames of {rec['width']}x{rec['height']} ({rec['mode']})"


def _compress_on_cluster(inputs, outs, settings, scheduler, workers, verify, force, as_json) -> None:
    from armcodec import cluster
    from armcodec.errors import ArmcodecError, OutputExistsError
    from armcodec.io.files import write_atomic

    try:
        client = cluster.connect(scheduler, workers)
    except ArmcodecError as e:
        _fail(str(e), e.exit_code)
    with _Batch(len(inputs), as_json) as batch:
        jobs = []
        for inp, out in zip(inputs, outs):
            if out.exists() and not force:
                batch.done(inp, None, OutputExistsError(f"{out} exists (use --force to overwrite)"))
            else:
                jobs.append((inp, out))

        def done(inp, out, data, rec, error):
            if error is None:
                try:
                    write_atomic(out, data, force=force)
                except ArmcodecError as e:
                    error = e
            if error is not None:
                return batch.done(inp, None, error)
            batch.done(inp, {"input": str(inp), "output": str(out), **rec, "model": settings["model"]})

        try:
            cluster.run(client, jobs, settings, verify, done)
        except KeyboardInterrupt:
            typer.echo("armcodec: interrupted; the files not reported were not written", err=True)
            raise typer.Exit(130)
        finally:
            local = client.cluster if not scheduler else None
            client.close()
            if local is not None:
                local.close()
    batch.finish()


def _decoded_name(p: Path, suffix: str | None = None) -> Path:
    from armcodec.io.image import LOSSLESS_OUTPUTS

    stem = p.name[: -len(ARM_SUFFIX)] if p.name.endswith(ARM_SUFFIX) else p.name
    if suffix is not None:
        stem = (stem[: -len(Path(stem).suffix)] if Path(stem).suffix.lower() in LOSSLESS_OUTPUTS else stem) + suffix
    elif Path(stem).suffix.lower() not in LOSSLESS_OUTPUTS:
        stem += ".png"
    return p.with_name(stem)


@app.command()
def decompress(
    inputs: Annotated[list[Path], typer.Argument(help=".arm files to decompress; - reads one from standard input.")],
    output: Annotated[Optional[Path], typer.Option("-o", "--output", help="Output file (one input) or directory; the suffix picks a lossless format (PNG default); - writes to standard output (the default for input -).")] = None,
    fmt: Annotated[Optional[str], typer.Option("--format", help="Output format where no file name gives one (standard output, default names): png, tiff, bmp, ppm, pgm, pnm, webp.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing outputs.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per file.")] = False,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Refuse files declaring more pixels than this.")] = DEFAULT_MAX_PIXELS,
    threads: Annotated[int, typer.Option("--threads", help="At most this many CPU threads (0: every core this process may use); fewer while other programs hold cores. The output does not depend on it.")] = 0,
    batch_mb: Annotated[int, typer.Option("--batch-mb", help="Memory budget (MiB) for one batch of tiles coded together (0: the library default, 2560). The output does not depend on it.")] = 0,
    kernel: Annotated[Optional[str], typer.Option("--kernel", help=KERNEL_HELP)] = None,
    together: Annotated[int, typer.Option("--together", min=1, help="Decode up to N files at once (at most 64 megapixels): their tiles share the model's steps, about twice the files per second on 2 cores; 1: one at a time. The output does not depend on it.")] = 8,
    frames: Annotated[Optional[str], typer.Option("--frames", help="Video: decode frames A:B only (0-based, end excluded, like a Python slice), starting from the key frame at or before A.")] = None,
) -> None:
    """Decompress .arm files to images (default: strip .arm; PNG unless that names another lossless format).
    A video file decodes to a Y4M file (a Y4M input's), a folder of PNG frames (-o DIR/) or FFV1 (-o NAME.mkv)."""
    _set_threads(threads)
    from armcodec_cli import video as cli_video

    if _video_files(inputs):
        return _decompress_videos(inputs, output, device, force, frames, kernel, max_pixels, as_json)
    if frames is not None:
        _fail("--frames applies to video files", 2)
    from armcodec.api import Codec, decoding_model
    from armcodec.weights import read_manifest
    from armcodec.container import parse
    from armcodec.errors import ArmcodecError, OutputExistsError
    from armcodec.io.files import write_atomic
    from armcodec.io.image import check_output_format, write_image

    to_stdout = _stdio_plan(inputs, output)
    suffix = None if fmt is None else "." + fmt.lower().lstrip(".")
    if suffix == ".tif":
        suffix = ".tiff"
    from armcodec.io.image import LOSSLESS_OUTPUTS

    if suffix is not None and suffix not in LOSSLESS_OUTPUTS:
        _fail(f"--format {fmt}: not a lossless output format; use one of {', '.join(s[1:] for s in LOSSLESS_OUTPUTS)}", 2)
    outs = [Path(STDIO)] if to_stdout else _outputs(inputs, output, lambda p: _decoded_name(p, suffix))
    codecs: dict[str, Codec] = {}
    try:
        manifest = read_manifest()  # once for the batch
    except ArmcodecError as e:
        _fail(str(e), e.exit_code)

    out_suffix = (suffix or ".png") if to_stdout else None

    def prepare(inp: Path, out: Path):
        """The file's bytes, parsed, its output checked; raises what makes the file fail."""
        if not to_stdout and out.exists() and not force:
            raise OutputExistsError(f"{out} exists (use --force to overwrite)")
        data = _read_input(inp)
        header, streams = parse(data, max_pixels)
        check_output_format(out, header.mode, out_suffix, header.metadata, header.bits)  # refuse before spending time decoding
        name = decoding_model(header, manifest)
        if name not in codecs:
            codecs[name] = Codec(name, device, max_pixels=max_pixels, batch_bytes=batch_mb << 20 or None, kernel=kernel)
        return data, header, streams, codecs[name]

    ahead: dict[int, tuple] = {}  # input index -> (what prepare gave, its DecodedImage), decoded with the files after it
    position = [0]

    def decode_ahead(k: int) -> None:
        """Decode file k together with the files after it (up to --together, 64 megapixels) in one
        call; any failure leaves them to be decoded one by one, so each error names its file."""
        group, pixels = [], 0
        for n in range(k, min(len(inputs), k + together)):
            if _is_stdio(inputs[n]):
                break
            try:
                prepared = prepare(inputs[n], outs[n])
            except ArmcodecError:
                break
            header = prepared[1]
            if group and pixels + header.width * header.height > BATCH_PIXELS:
                break
            pixels += header.width * header.height
            group.append((n, prepared))
        if len(group) < 2:
            return
        try:
            decoded = group[0][1][3].decode_parsed_many([(p[1], p[2]) for _, p in group])
        except ArmcodecError:
            return
        for (n, p), d in zip(group, decoded):  # each file's share of the call's time, by its pixels
            ahead[n] = (p, dataclasses.replace(d, seconds=d.seconds * p[1].width * p[1].height / pixels))

    def work(inp: Path, out: Path) -> dict:
        k = position[0]
        position[0] += 1
        if together > 1 and k not in ahead:
            decode_ahead(k)
        if k in ahead:  # read, checked and decoded with the files after it (write_atomic checks the output again)
            (data, header, streams, codec), dec = ahead.pop(k)
        else:
            data, header, streams, codec = prepare(inp, out)
            dec = codec.decode_parsed(header, streams)
        if to_stdout:  # whole, then written: TIFF needs a seekable file
            buf = io.BytesIO()
            write_image(buf, dec.array, dec.info, out_suffix)
            _write_stdout(buf.getvalue())
        else:
            write_atomic(out, writer=lambda tmp: write_image(tmp, dec.array, dec.info), force=force)
        return {
            "input": str(inp), "output": str(out), "width": header.width, "height": header.height,
            "channels": header.channels, "mode": dec.mode, "bytes": len(data), "model_bits": dec.model_bits,
            "seconds": dec.seconds,
        }

    _run_batch(inputs, outs, work, as_json, records_to_stderr=to_stdout)


def _video_files(inputs: list[Path]) -> bool:
    """Whether the inputs are video .arm files (all of them; a mix is refused)."""
    from armcodec.container_video import is_video

    kinds = set()
    for p in inputs:
        if _is_stdio(p):
            head = sys.stdin.buffer.peek(11)[:11] if hasattr(sys.stdin.buffer, "peek") else b""
        else:
            try:
                with open(p, "rb") as f:
                    head = f.read(11)
            except OSError:
                head = b""
        kinds.add(is_video(head))
    if len(kinds) > 1:
        _fail("give video and image files in separate commands", 2)
    return kinds == {True}


def _decompress_videos(inputs, output, device, force, frames, kernel, max_pixels, as_json) -> None:
    from armcodec_cli import video as cli_video

    if output is not None and len(inputs) > 1:
        _fail("-o names the output of one video; decode several videos one by one", 2)
    to_stdout = _is_stdio(output) or (output is None and _is_stdio(inputs[0]))
    if to_stdout and sys.stdout.isatty():
        _fail("refusing to write binary data to a terminal: redirect standard output or use -o FILE", 2)

    def work(inp: Path, out) -> dict:
        return cli_video.decompress_video(inp, output, device, force, frames, kernel,
                                          min(max_pixels, 1 << 28))

    _run_batch(inputs, [output] * len(inputs), work, as_json, records_to_stderr=to_stdout, human=_human_video)


BATCH_PIXELS = 64_000_000  # decompress --together: at most this many pixels decoded in one call

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".pnm", ".webp")


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; a folder becomes its images (by suffix, sorted by name)."""
    out = []
    for p in paths:
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        else:
            out.append(p)
    return out


@app.command("eval")
def evaluate(
    inputs: Annotated[list[Path], typer.Argument(help="Images or folders of images; - reads one from standard input.")],
    model: Annotated[str, typer.Option("--model", help="Preset (see `armcodec models`).")] = "default",
    adapt: Annotated[bool, typer.Option("--adapt/--no-adapt", help="Include the encoder's searches (adaptation, orientation, feedback: the preset's tools) and their side information; default: the model alone.")] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    tile_size: Annotated[Optional[int], typer.Option("--tile-size", help="Tile size in pixels (default: the preset's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per image on stdout; the mean as a JSON object on stderr.")] = False,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Refuse images with more pixels than this.")] = DEFAULT_MAX_PIXELS,
    threads: Annotated[int, typer.Option("--threads", help="At most this many CPU threads (0: every core this process may use).")] = 0,
) -> None:
    """The model's bits per subpixel (bits/dim) of images, without writing files: the integer
    tables' -log2 likelihood, no ANS.  Without --adapt it equals the model_bits of
    `armcodec compress --no-adapt`; with --adapt those of `armcodec compress`."""
    _set_threads(threads)
    from armcodec.api import Codec
    from armcodec.errors import ArmcodecError

    if any(_is_stdio(p) for p in inputs) and len(inputs) > 1:
        _fail("- (standard input) must be the only input", 2)
    try:
        codec = Codec(model, device, tile_size, max_pixels=max_pixels, adaptive=adapt)
    except ArmcodecError as e:
        _fail(str(e), e.exit_code)
    files = _expand(inputs)
    if not files:
        _fail("no images found", 5)
    done: list[dict] = []

    def work(inp: Path, _out) -> dict:
        ev = codec.evaluate(_read_input(inp) if _is_stdio(inp) else inp)
        rec = {"input": str(inp), "bpsp": ev.bpsp, "model_bits": ev.model_bits, "width": ev.width,
               "height": ev.height, "channels": ev.channels, "mode": ev.mode, "model": model,
               "weights": codec.model.entry.name, "adapt": adapt, "seconds": ev.seconds}
        done.append(rec)
        return rec

    try:
        _run_batch(files, files, work, as_json, human=lambda r: f"{r['input']}: {r['bpsp']:.4f} bpsp "
                   f"({r['model_bits']:.1f} bits, {r['width']}x{r['height']}x{r['channels']}), {r['seconds']:.2f} s")
    finally:
        if done:
            subpixels = sum(r["width"] * r["height"] * r["channels"] for r in done)
            mean = {"images": len(done), "mean_bpsp": sum(r["bpsp"] for r in done) / len(done),
                    "bpsp_all_subpixels": sum(r["model_bits"] for r in done) / subpixels, "model": model, "adapt": adapt}
            typer.echo(json.dumps(mean) if as_json else
                       f"mean over {len(done)} images: {mean['mean_bpsp']:.4f} bpsp (all subpixels together: "
                       f"{mean['bpsp_all_subpixels']:.4f})", err=True)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        _fail(f"--size {text}: expected WIDTHxHEIGHT, for example 64x64", 2)
    return w, h


@app.command()
def sample(
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory for the samples (created if needed).")],
    model: Annotated[str, typer.Option("--model", help="Preset whose model draws (see `armcodec models`).")] = "default",
    size: Annotated[str, typer.Option("--size", help="WIDTHxHEIGHT of each sample.")] = "64x64",
    n: Annotated[int, typer.Option("-n", help="Number of samples.")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="Sample k is drawn with the seed (SEED, k): the same images on any machine.")] = 0,
    grid: Annotated[Optional[Path], typer.Option("--grid", help="Also write every sample side by side in one PNG.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite existing files.")] = False,
    threads: Annotated[int, typer.Option("--threads", help="At most this many CPU threads (0: every core this process may use).")] = 0,
) -> None:
    """Draw images from a model (the generative side of an autoregressive model): each value from
    the exact table the decoder would read it with.  Writes MODEL_SEED_K.png into the directory."""
    _set_threads(threads)
    from rich.progress import Progress

    from armcodec.api import Codec
    from armcodec.errors import ArmcodecError
    from armcodec.io.files import write_atomic
    from armcodec.io.image import CHANNEL_MODES, ImageInfo, write_image

    w, h = _size(size)
    if n < 1:
        _fail("-n must be at least 1", 2)
    try:
        codec = Codec(model, device)
    except ArmcodecError as e:
        _fail(str(e), e.exit_code)
    names = [output / f"{model}_{seed}_{k:03d}.png" for k in range(n)]
    existing = [p for p in names + ([grid] if grid else []) if p.exists()]
    if existing and not force:
        _fail(f"{existing[0]} exists (use --force to overwrite)", 8)
    output.mkdir(parents=True, exist_ok=True)
    samples = []
    try:
        with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("sampling", total=n)
            for k, path in enumerate(names):
                a = codec.sample(w, h, seed=(seed, k))
                write_atomic(path, writer=lambda tmp: write_image(tmp, a, ImageInfo(CHANNEL_MODES[a.shape[2]])), force=True)
                samples.append(a)
                typer.echo(str(path))
                bar.advance(task)
    except ArmcodecError as e:
        _fail(str(e), e.exit_code)
    if grid:
        gap = 2
        sheet = np.full((h, n * (w + gap) - gap, samples[0].shape[2]), 255, np.uint8)
        for k, a in enumerate(samples):
            sheet[:, k * (w + gap) : k * (w + gap) + w] = a
        write_atomic(grid, writer=lambda tmp: write_image(tmp, sheet, ImageInfo(CHANNEL_MODES[sheet.shape[2]])), force=True)
        typer.echo(str(grid))


@app.command()
def info(
    files: Annotated[list[Path], typer.Argument(help=".arm files; - reads one from standard input.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the validated header of .arm files."""
    from armcodec.container import parse
    from armcodec.errors import ArmcodecError

    def work(inp: Path, _out) -> dict:
        if not _is_stdio(inp) and _video_files([inp]):
            from armcodec_cli import video as cli_video

            return cli_video.info_video(inp)
        data = _read_input(inp)
        header, _ = parse(data)
        return {"file": str(inp), "bytes": len(data), **header.describe()}

    failed = []
    for f in files:
        try:
            rec = work(f, None)
        except ArmcodecError as e:
            typer.echo(f"armcodec: error: {_named(f, e)}", err=True)
            failed.append(e.exit_code)
            continue
        typer.echo(json.dumps(rec) if as_json else "\n".join(f"{k:>22}: {v}" for k, v in rec.items()))
    if failed:
        raise typer.Exit(failed[0])


@app.command()
def models(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List the presets (``--model``): weights, tile size, encoder search, measured Kodak rate."""
    from armcodec.api import list_models
    from armcodec.errors import ArmcodecError

    try:
        presets = list_models()
    except ArmcodecError as e:
        _fail(str(e), e.exit_code)
    for p in presets:
        w = p.weights
        rec = {"name": p.name, "weights": w.name, "aliases": list(w.aliases), "file": w.file, "sha256": w.sha256,
               "architecture": w.architecture, "tile_size": p.tile_size, "orient": p.orient,
               "orient_proxy": p.orient_proxy.name if p.orient_proxy else None,
               "planes": p.planes.name if p.planes else None, "config": w.config,
               "parameters": w.meta.get("parameters"), **p.meta}
        if as_json:
            typer.echo(json.dumps(rec))
        else:
            k = p.meta.get("kodak", {})
            c = w.config
            figure = f"Kodak {k['bpsp']} bpsp" if "bpsp" in k else "Kodak not measured"
            v = p.meta.get("video", {})
            if "bpsp" in v:  # a video preset: its mean over the benchmark's clips
                figure = (f"video clips {v['bpsp']} bpsp (mean of {v['clips']} clips, first {v['frames']} frames; "
                          f"encode {v['encode_fps']} frames/s, decode {v['decode_fps']} frames/s, 2 threads)")
            if "decode_s_mean" in k and "encode_s_mean" in k:
                figure += f" (per image: encode {k['encode_s_mean']} s, decode {k['decode_s_mean']} s, {k.get('threads', '?')} threads)"
            if "model_only_bpsp" in k:
                figure += (f"; without the PNG/WebP fallback {k['model_only_bpsp']} bpsp, encode {k['model_only_encode_s_mean']} s, "
                           f"decode {k['model_only_decode_s_mean']} s")
            orient = (", orientation search by " + (p.orient_proxy.name if p.orient_proxy else w.name)) if p.orient else ""
            levels = f"{c['levels']} levels, " if "levels" in c else ""
            levels += f"previous frame's {2 * c['context_reach'] + 1}x{2 * c['context_reach'] + 1} window, " \
                if "context_reach" in c else ""
            planes = f", grey planes (YUV, grey frames) by weights {p.planes.name} (sha256 {p.planes.sha256[:16]})" \
                if p.planes else ""
            typer.echo(f"{p.name}: weights {w.name} ({w.architecture}, {levels}width {c['width']}, {c['blocks']} blocks, "
                       f"{c['mixtures']} mixtures, sha256 {w.sha256[:16]}){planes}, tile {p.tile_size}{orient}, {figure}")


@app.command()
def bench(
    inputs: Annotated[list[Path], typer.Argument(help="Images, or folders of images.")],
    codecs: Annotated[Optional[str], typer.Option("--codecs", help="Comma-separated: armcodec,png,webp,jpegls,jpeg2000,jxl-e7,jxl-e9 (also armcodec-noadapt: without adaptation; armcodec-noorient / armcodec-orient: without / with the orientation search; armcodec-nofeedback: without the residual feedback; armcodec-noclassic: the model's path only, never PNG or WebP; with --video: armcodec,ffv1,x264,x265,jxl-e7,png).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Results root (default: benchmarks/results).")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="Dataset name: results go to OUT/NAME (default: the folder's name).")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="armcodec preset (default; video with --video).")] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    threads: Annotated[int, typer.Option("--threads", help="At most this many threads for armcodec, and as many for JPEG-XL (0: the cores).")] = 0,
    limit: Annotated[int, typer.Option("--limit", help="Only the first N images.")] = 0,
    together: Annotated[int, typer.Option("--together", min=1, help="Also decode armcodec's files N at a time in one call, as decompress --together does (1: not).")] = 6,
    video: Annotated[bool, typer.Option("--video", help="The inputs are video clips (Y4M files, folders of frames, video files): armcodec's video preset next to FFV1, x264 and x265 lossless, JPEG-XL e7 and PNG per frame (benchmarks/video_bench.py).")] = False,
    frames: Annotated[int, typer.Option("--frames", help="Video: the first N frames of each clip.")] = 60,
) -> None:
    """Compress, decompress and verify every image with armcodec and the reference codecs; write
    per-codec JSON, a Markdown table and a plot (reference codecs need the package's bench extra, for imagecodecs)."""
    if video:
        from armcodec_benchmarks.video_bench import run as run_video

        run_video(inputs, frames, codecs or "armcodec,ffv1,x264,x265,jxl-e7,png", model or "video", out, name or "video",
                  log=typer.echo)
        return
    from armcodec_benchmarks.bench import ALL_CODECS, run

    run(inputs, name, codecs or ALL_CODECS, model or "default", device, threads, limit, out, log=typer.echo, together=together)


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Folder of training photographs (e.g. ../shared/data/train).")],
    out: Annotated[Path, typer.Option("--out", help="Checkpoint (safetensors); resumed if it exists.")],
    architecture: Annotated[str, typer.Option(help="Model family of a new model: wavefront-pixelcnn or polyphase-pyramid.")] = "wavefront-pixelcnn",
    config: Annotated[str, typer.Option("--config", help="JSON overrides of its config (PixelCNNConfig, PyramidConfig).")] = "{}",
    steps: Annotated[int, typer.Option(help="Total steps (float, then QAT).")] = 10000,
    qat_steps: Annotated[int, typer.Option(help="Final quantization-aware steps.")] = 500,
    batch: Annotated[int, typer.Option(help="Crops per step.")] = 16,
    crop: Annotated[int, typer.Option(help="Crop size in pixels.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate (cosine decay to 3% of it).")] = 2e-3,
    device: Annotated[str, typer.Option(help="cpu or cuda (training numerics only; exported models are integer-exact).")] = "cpu",
    minutes: Annotated[float, typer.Option(help="If > 0: after warm-up, fix --steps to what fits in this wall time.")] = 0.0,
    export: Annotated[Optional[str], typer.Option(help="After training, export to weights/ under this model name.")] = None,
    weights_dir: Annotated[Path, typer.Option(help="Where --export writes.")] = Path("weights"),
    tile_size: Annotated[int, typer.Option(help="Tile size recorded for the exported model.")] = 128,
) -> None:
    """Train a model (float, then quantization-aware) and optionally export its integer weights."""
    import json as _json

    from armcodec.training.export import export_checkpoint
    from armcodec.training.loop import FLOAT_MODELS, TrainSettings
    from armcodec.training.loop import train as run_training

    if architecture not in FLOAT_MODELS:
        _fail(f"--architecture: {architecture!r} is not one of {', '.join(sorted(FLOAT_MODELS))}", 2)
    config_class = FLOAT_MODELS[architecture][1]
    try:
        cfg = config_class.from_dict({**config_class().to_dict(), **_json.loads(config)})
    except (ValueError, TypeError) as e:
        _fail(f"--config: {e}", 2)
    settings = TrainSettings(steps=steps, qat_steps=qat_steps, batch=batch, crop=crop, lr=lr, device=device, minutes=minutes)
    run_training(data, out, cfg, settings, log=lambda m: typer.echo(m))
    if export:
        entry = export_checkpoint(out, weights_dir, export, tile_size)
        typer.echo(f"exported {entry['name']} -> {weights_dir / entry['file']} sha256 {entry['sha256']}")


def main() -> None:
    import signal

    def _terminate(signum, frame):  # clean up like Ctrl-C: temporary outputs are removed
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    app()


if __name__ == "__main__":
    main()
