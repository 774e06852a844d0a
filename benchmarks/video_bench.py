"""Lossless video benchmark: armcodec next to FFV1, x264 and x265 lossless, and JPEG-XL e7 and PNG per frame.

    python benchmarks/video_bench.py ../shared/data/video/y4m/*.y4m ../shared/data/video/usc_sipi_* \\
        ../shared/data/video/vtest.avi ../shared/data/video/cockatoo.mp4 --frames 60
    armcodec bench --video CLIPS...           # the same

Each clip (a Y4M file, a folder of PNG frames, a video file: its decoded RGB frames), its first
``--frames`` frames: every codec encodes them to a file, the size is taken from the file on disk,
the file is decoded and the frames compared exactly (a mismatch aborts the run).  Rates are bits
per sample: per Y/U/V sample for Y4M (what the file holds), per subpixel for RGB and grey frames.
References: FFV1 level 3, x264 ``-qp 0 -preset veryslow`` (libx264rgb for RGB), x265 lossless
(``-preset medium``), through the ffmpeg that imageio-ffmpeg ships; JPEG-XL e7 (imagecodecs, 2 threads)
and PNG (Pillow, level 9, optimize) per frame (per plane for YUV).  armcodec runs the ``video``
preset in one process (model loaded once), frames per second from its encode and decode.
Writes ``benchmarks/results/video/<clip>.json`` and ``table.md`` (``--out``, ``--name``).
"""
from __future__ import annotations

import argparse
import io
import itertools
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" if (ROOT / "pyproject.toml").exists() else Path("benchmarks") / "results"


def load_clip(path: Path, frames: int):
    """-> (kind, description, groups shapes, list of frames (each a list of (h, w, c) arrays))."""
    from armcodec.io.frames import frames_source, video_source, y4m_source

    if path.is_dir():
        src = frames_source([path])
    elif path.suffix.lower() == ".y4m":
        src = y4m_source(open(path, "rb"), str(path))
    else:
        src = video_source(path, video_only=True)
    return src, [f for f in itertools.islice(src.frames, frames)]


def _ffmpeg():
    from armcodec.io.frames import ffmpeg_exe

    return ffmpeg_exe()


def raw_input_args(src, tmp: Path, frames) -> tuple[list[str], bytes, str]:
    """ffmpeg input arguments, the raw bytes to compare against, and the raw pix_fmt."""
    from armcodec.io.frames import write_y4m, y4m_line
    from armcodec.io.y4m import Y4MHeader

    line = y4m_line(src.kind, src.description)
    if line is not None:  # Y4M planes (a Y4M file's, a video file's as decoded)
        f = tmp / "in.y4m"
        with open(f, "wb") as g:
            write_y4m(g, line, frames)
        raw = b"".join(b"".join(np.ascontiguousarray(p).tobytes() for p in fr.groups) for fr in frames)
        return ["-i", str(f)], raw, Y4MHeader.parse(line).pix_fmt
    arrs = [np.concatenate(fr.groups, 2) for fr in frames]
    pix = {1: "gray", 3: "rgb24", 4: "rgba", 2: "ya8"}[arrs[0].shape[2]]
    f = tmp / "in.raw"
    raw = b"".join(a.tobytes() for a in arrs)
    f.write_bytes(raw)
    return ["-f", "rawvideo", "-pix_fmt", pix, "-s", f"{src.width}x{src.height}", "-r", "25", "-i", str(f)], raw, pix


def ffmpeg_codecs(pix: str) -> dict:
    rgb = pix in ("rgb24", "rgba")
    return {
        "ffv1": ["-c:v", "ffv1", "-level", "3"],
        "x264": ["-c:v", "libx264rgb" if rgb else "libx264", "-qp", "0", "-preset", "veryslow"],
        "x265": ["-c:v", "libx265", "-x265-params", "lossless=1:log-level=error", "-preset", "medium"]
        + (["-pix_fmt", "gbrp"] if rgb else []),
    }


def run_ffmpeg(name, args, inp, raw, pix, tmp: Path) -> dict:
    out = tmp / f"{name}.mkv"
    t0 = time.perf_counter()
    subprocess.run([_ffmpeg(), "-v", "error", "-y", *inp, *args, str(out)], check=True, capture_output=True)
    t1 = time.perf_counter()
    back = subprocess.run([_ffmpeg(), "-v", "error", "-i", str(out), "-f", "rawvideo", "-pix_fmt", pix, "-"],
                          check=True, capture_output=True).stdout
    t2 = time.perf_counter()
    if back != raw:
        raise SystemExit(f"{name}: did not decode exactly")
    return {"bytes": out.stat().st_size, "encode_s": t1 - t0, "decode_s": t2 - t1}


def run_per_frame(name, frames, tmp: Path) -> dict:
    """JPEG-XL e7 / PNG of every frame (every plane of a YUV frame; RGB(A) or grey frames whole)."""
    from PIL import Image

    if name == "png":
        def enc(a):
            buf = io.BytesIO()
            Image.fromarray(a[:, :, 0] if a.shape[2] == 1 else a).save(buf, "PNG", compress_level=9, optimize=True)
            return buf.getvalue()

        def dec(b):
            return np.asarray(Image.open(io.BytesIO(b)))
    else:
        import imagecodecs as ic

        def enc(a):
            return ic.jpegxl_encode(a[:, :, 0] if a.shape[2] == 1 else a, lossless=True, effort=7, numthreads=2)

        def dec(b):
            return ic.jpegxl_decode(b, numthreads=2)
    total = enc_s = dec_s = 0.0
    for k, fr in enumerate(frames):
        parts = fr.groups if len(fr.groups) == 3 and fr.groups[0].shape[2] == 1 else [np.concatenate(fr.groups, 2)]
        for j, a in enumerate(parts):
            t0 = time.perf_counter()
            data = enc(np.ascontiguousarray(a))
            t1 = time.perf_counter()
            f = tmp / f"{name}_{k}_{j}"
            f.write_bytes(data)
            total += f.stat().st_size
            back = dec(f.read_bytes())
            t2 = time.perf_counter()
            if not np.array_equal(np.asarray(back).reshape(a.shape), a):
                raise SystemExit(f"{name}: frame {k} did not decode exactly")
            enc_s += t1 - t0
            dec_s += t2 - t1
    return {"bytes": int(total), "encode_s": enc_s, "decode_s": dec_s}


def run_armcodec(codec, src, frames, tmp: Path) -> dict:
    from armcodec.io.frames import VideoSource
    from armcodec.video import read_info

    f = tmp / "clip.arm"
    source = VideoSource(src.kind, src.width, src.height, src.groups, src.description, iter(frames), src.name)
    t0 = time.perf_counter()
    with open(f, "wb") as g:
        stats = codec.encode(source, g)
    t1 = time.perf_counter()
    with open(f, "rb") as g:
        header = codec.open(g)
        got = list(codec.decode(g, header, seekable=True))
    t2 = time.perf_counter()
    if len(got) != len(frames) or any(not all(np.array_equal(a, b) for a, b in zip(d.groups, fr.groups))
                                      for (_, d, _), fr in zip(got, frames)):
        raise SystemExit("armcodec: did not decode exactly")
    with open(f, "rb") as g:
        keys = read_info(g)["key_frames"]
    return {"bytes": f.stat().st_size, "encode_s": t1 - t0, "decode_s": t2 - t1, "model_bits": stats.model_bits,
            "key_frames": keys}


def run(clips: list[Path], frames: int = 60, codecs: str = "armcodec,ffv1,x264,x265,jxl-e7,png", model: str = "video",
        out: Path | None = None, name: str = "video", log=print) -> Path:
    import torch

    from armcodec.video import VideoCodec

    torch.set_num_threads(2)
    folder = (out or DEFAULT_OUT) / name
    folder.mkdir(parents=True, exist_ok=True)
    wanted = codecs.split(",")
    codec = VideoCodec(model, "cpu") if "armcodec" in wanted else None
    from armcodec_benchmarks.bench import environment

    env = environment("cpu", 2)
    for clip in map(Path, clips):
        src, frs = load_clip(clip, frames)
        samples = len(frs) * sum(w * h * c for w, h, c in src.groups)
        rows = {}
        with tempfile.TemporaryDirectory() as t:
            tmp = Path(t)
            inp, raw, pix = raw_input_args(src, tmp, frs)
            for c in wanted:
                if c == "armcodec":
                    r = run_armcodec(codec, src, frs, tmp)
                elif c in ("ffv1", "x264", "x265"):
                    r = run_ffmpeg(c, ffmpeg_codecs(pix)[c], inp, raw, pix, tmp)
                else:
                    r = run_per_frame("png" if c == "png" else "jxl", frs, tmp)
                r["bpsp"] = 8 * r["bytes"] / samples
                r["encode_fps"], r["decode_fps"] = len(frs) / r["encode_s"], len(frs) / r["decode_s"]
                rows[c] = r
                log(f"{clip.name} {c}: {r['bpsp']:.4f} bpsp, encode {r['encode_fps']:.2f} fps, decode {r['decode_fps']:.2f} fps")
        rec = {"clip": clip.name, "kind": src.kind, "width": src.width, "height": src.height, "frames": len(frs),
               "samples": samples, "model": model, "codecs": rows, "environment": env}
        (folder / f"{clip.name}.json").write_text(json.dumps(rec, indent=1) + "\n")
    log(write_table(folder))
    write_plot(folder)
    return folder


def write_table(folder: Path) -> str:
    recs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    names = [c for c in ("armcodec", "ffv1", "x264", "x265", "jxl-e7", "png") if any(c in r["codecs"] for r in recs)]
    lines = ["| clip | frames | " + " | ".join(names) + " | best reference | armcodec enc / dec fps |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for r in recs:
        cs = r["codecs"]
        refs = {k: v["bpsp"] for k, v in cs.items() if k != "armcodec"}
        best = min(refs, key=refs.get) if refs else "-"
        fps = f"{cs['armcodec']['encode_fps']:.2f} / {cs['armcodec']['decode_fps']:.2f}" if "armcodec" in cs else "-"
        lines.append(f"| {r['clip']} ({r['width']}x{r['height']} {r['kind']}) | {r['frames']} | "
                     + " | ".join(f"{cs[c]['bpsp']:.3f}" if c in cs else "-" for c in names)
                     + f" | {best} {refs.get(best, 0):.3f} | {fps} |")
    text = "\n".join(lines) + "\n"
    (folder / "table.md").write_text(text)
    return text


def write_plot(folder: Path) -> None:
    """plot.png: every codec's rate on every clip relative to the best reference's (below 1:
    smaller than all of them), when matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    recs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    names = [c for c in ("armcodec", "ffv1", "x264", "x265", "jxl-e7", "png") if any(c in r["codecs"] for r in recs)]
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(names)
    for k, c in enumerate(names):
        xs, ys = [], []
        for i, r in enumerate(recs):
            refs = [v["bpsp"] for n, v in r["codecs"].items() if n != "armcodec"]
            if c in r["codecs"] and refs:
                xs.append(i + (k - (len(names) - 1) / 2) * width)
                ys.append(r["codecs"][c]["bpsp"] / min(refs))
        ax.bar(xs, ys, width, label=c, color="black" if c == "armcodec" else None)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(recs)), [r["clip"].removesuffix(".y4m")[:20] for r in recs], rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0.6, 1.9)
    ax.set_ylabel("bpsp / best reference's")
    ax.set_title(f"{folder.name}: lossless rate per clip (below 1: smaller than every reference)")
    ax.legend(fontsize=7, ncol=len(names))
    fig.tight_layout()
    fig.savefig(folder / "plot.png", dpi=120)


def record(folder: Path, preset: str = "video", weights_dir: Path = ROOT / "weights") -> dict:
    """Copy a run's armcodec figures (mean over its clips) into the preset's ``video`` entry of the
    manifest, which ``armcodec models`` prints."""
    recs = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    rows = [r["codecs"]["armcodec"] for r in recs if "armcodec" in r["codecs"]]
    fig = {"bpsp": round(float(np.mean([r["bpsp"] for r in rows])), 4), "clips": len(rows),
           "frames": "-".join(sorted({str(min(r["frames"] for r in recs)), str(max(r["frames"] for r in recs))}, key=int)), "encode_fps": round(float(np.mean([r["encode_fps"] for r in rows])), 3),
           "decode_fps": round(float(np.mean([r["decode_fps"] for r in rows])), 3),
           "commit": recs[0]["environment"].get("commit"), "results": str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder)}
    man = weights_dir / "manifest.json"
    m = json.loads(man.read_text())
    next(p for p in m["presets"] if p["name"] == preset)["video"] = fig
    man.write_text(json.dumps(m, indent=2) + "\n")
    return fig


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=60, help="the first N frames of each clip")
    ap.add_argument("--codecs", default="armcodec,ffv1,x264,x265,jxl-e7,png")
    ap.add_argument("--model", default="video")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--name", default="video")
    ap.add_argument("--record", action="store_true", help="only copy the results folder's figures into the preset")
    a = ap.parse_args(argv)
    if a.record:
        print(json.dumps(record((a.out or DEFAULT_OUT) / a.name, a.model)))
        return
    run(a.clips, a.frames, a.codecs, a.model, a.out, a.name)


if __name__ == "__main__":
    main()
