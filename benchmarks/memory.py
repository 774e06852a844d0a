"""Peak memory of decoding (and encoding) as the image grows: bounded by tile size and batch.

    python benchmarks/memory.py --megapixels 0.4 4 24 --threads 2
    python benchmarks/memory.py --megapixels 24 --batch-mb 256
    python benchmarks/memory.py --video-frames 2 8 1000 --model video    # 1280x720 4:2:0 clips, streamed

Video: a 1280x720 4:2:0 clip of N frames made by tiling and shifting the frames of
``../shared/data/video/y4m/foreman_cif_60f.y4m`` is streamed into the video encoder (never held
whole) and the file decoded frame by frame; a peak that does not grow with N is what bounds a
clip of any length.  Results go to benchmarks/results/memory_video.json.

The test image of each size is a mosaic of real photographs (``--data``, default
../shared/data/train), so the coded streams are realistic.  Each encode and each decode runs in
a fresh process; it reports the resident set size after loading the model and the peak
after the work: its own (``VmHWM``) plus its decoder worker processes' (armcodec.coding.workers),
an upper bound.  Results go to benchmarks/results/memory.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def mosaic(folder: Path, height: int, width: int) -> np.ndarray:
    """Fill (height, width, 3) with real photographs laid side by side (cropped at the edges)."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".ppm", ".bmp", ".tif", ".tiff"))
    out = np.zeros((height, width, 3), np.uint8)
    k, y = 0, 0
    while y < height:
        x, row_h = 0, 0
        while x < width:
            with Image.open(paths[k % len(paths)]) as im:
                a = np.asarray(im.convert("RGB"))
            k += 1
            h, w = min(a.shape[0], height - y), min(a.shape[1], width - x)
            out[y : y + h, x : x + w] = a[:h, :w]
            x += w
            row_h = max(row_h, h)
        y += row_h
    return out


def _status_kb(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process in KiB; ru_maxrss would include the parent's
    peak inherited at fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(args: list[str]) -> None:
    """In a fresh process: load the model, then encode (src .npy -> dst .arm) or decode (src .arm)."""
    if args[0].startswith("video-"):
        return video_child([args[0][6:], *args[1:]])
    what, src, model, threads, batch_mb = args[0], args[1], args[3], int(args[4]), int(args[5])
    import torch

    import armcodec

    torch.set_num_threads(threads)
    codec = armcodec.Codec(model, device="cpu", batch_bytes=batch_mb << 20)
    base = _status_kb("VmRSS") * 1024
    t0 = time.perf_counter()
    if what == "encode":
        Path(args[2]).write_bytes(codec.compress(np.load(src)))
    else:
        codec.decode(Path(src).read_bytes())
    own, helpers = _status_kb("VmHWM") * 1024, worker_peak()
    print(json.dumps({"rss_after_load_mb": base / 2**20, "peak_rss_mb": (own + helpers) / 2**20,
                      "workers_peak_rss_mb": helpers / 2**20, "seconds": time.perf_counter() - t0}))


def worker_peak() -> int:
    """The decoder's worker processes' peak memory, summed (armcodec.coding.workers; 0 if none
    ran): added to this process's, it counts the pages they share since the fork twice (an upper bound)."""
    from armcodec.coding import workers

    return workers.peak_bytes()


def clip_frames(n: int, width: int = 1280, height: int = 720):
    """VideoFrames of a 4:2:0 clip: the shared foreman frames tiled over the frame (each tile a
    different frame of it, every other one mirrored, so that the frame does not repeat itself and
    the model, not a lossless WebP of the group, codes it), shifted a pixel a frame."""
    from armcodec.io.frames import VideoFrame, y4m_source

    src = list(y4m_source(open(ROOT.parent / "shared" / "data" / "video" / "y4m" / "foreman_cif_60f.y4m", "rb")).frames)
    for k in range(n):
        planes = []
        for g, (h, w) in enumerate([(height, width), (height // 2, width // 2), (height // 2, width // 2)]):
            th, tw = src[0].groups[g].shape[:2]
            rows = []
            for ty in range(-(-h // th) + 1):
                tiles = [src[(k + 7 * ty + 3 * tx) % len(src)].groups[g] for tx in range(-(-w // tw) + 1)]
                rows.append(np.concatenate([t[:, ::-1] if (ty + tx) % 2 else t for tx, t in enumerate(tiles)], 1))
            planes.append(np.ascontiguousarray(np.concatenate(rows, 0)[:h, k % 16 : k % 16 + w]))
        yield VideoFrame(planes)


def video_child(args: list[str]) -> None:
    """In a fresh process: encode a streamed clip of N frames to a file, or decode one frame by frame."""
    what, n, path, model, threads = args[0], int(args[1]), Path(args[2]), args[3], int(args[4])
    import torch

    from armcodec.io.frames import VideoSource
    from armcodec.video import VideoCodec

    torch.set_num_threads(threads)
    codec = VideoCodec(model, "cpu")
    base = _status_kb("VmRSS") * 1024
    t0 = time.perf_counter()
    frames = 0
    if what == "encode":
        src = VideoSource("y4m", 1280, 720, [(1280, 720, 1), (640, 360, 1), (640, 360, 1)],
                          b"YUV4MPEG2 W1280 H720 F30:1 Ip A1:1 C420jpeg", clip_frames(n))
        with open(path, "wb") as f:
            frames = codec.encode(src, f).frames
    else:
        with open(path, "rb") as f:
            header = codec.open(f)
            for _ in codec.decode(f, header, seekable=True):
                frames += 1
    own, helpers = _status_kb("VmHWM") * 1024, worker_peak()
    print(json.dumps({"frames": frames, "rss_after_load_mb": base / 2**20, "peak_rss_mb": (own + helpers) / 2**20,
                      "workers_peak_rss_mb": helpers / 2**20, "seconds": time.perf_counter() - t0}))


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux's /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for kids in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(k) for k in kids.read_text().split()]
            except OSError:
                pass
    return out


def tree_pss_kb(pid: int) -> int:
    """The proportional set size of ``pid`` and its descendants, summed (KiB): a page the decoder
    shares with its forked workers counts once in all, unlike the VmHWM sum."""
    total = 0
    for p in _tree(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
                    break
        except OSError:
            pass  # the process ended between the listing and the read
    return total


def run_child(*args, interval: float = 0.1) -> dict:
    """Run one measurement in a fresh process; besides what it reports of itself, sample the
    summed PSS of it and its workers every ``interval`` seconds (``peak_pss_mb``: the largest
    sample, a lower bound of the true peak that misses only spikes shorter than the interval)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()

    def sample():
        while not stop.wait(interval):
            peak[0] = max(peak[0], tree_pss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    if Path(f"/proc/{proc.pid}/smaps_rollup").exists():
        sampler.start()
    out, err = proc.communicate()
    stop.set()
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, out, err)
    result = json.loads(out.strip().splitlines()[-1])
    if peak[0]:
        result["peak_pss_mb"] = peak[0] / 1024
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--megapixels", type=float, nargs="+", default=[0.4, 4, 24])
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "train")
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-mb", type=int, default=0, help="batch budget (MiB; 0: the library default)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "memory.json")
    ap.add_argument("--video-frames", type=int, nargs="+", help="video clips of these frame counts instead of images")
    a = ap.parse_args(argv)
    import torch

    if a.video_frames:
        out = a.out.with_name("memory_video.json") if a.out.name == "memory.json" else a.out
        rows = []
        with tempfile.TemporaryDirectory() as tmp:
            for n in a.video_frames:
                arm = Path(tmp) / "clip.arm"
                enc = run_child("video-encode", n, arm, a.model, a.threads)
                dec = run_child("video-decode", n, arm, a.model, a.threads)
                rows.append({"frames": n, "width": 1280, "height": 720, "file_mb": arm.stat().st_size / 2**20,
                             "encode": enc, "decode": dec})
                print(json.dumps(rows[-1]), flush=True)
                out.write_text(json.dumps({"model": a.model, "threads": a.threads, "torch": torch.__version__,
                                           "cpu_count": os.cpu_count(), "rows": rows}, indent=1) + "\n")
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mp in a.megapixels:
            h = int(round((mp * 1e6 * 2 / 3) ** 0.5))
            w = int(round(mp * 1e6 / h))
            img = mosaic(a.data, h, w)
            src, arm = Path(tmp) / "img.npy", Path(tmp) / "img.arm"
            np.save(src, img)
            enc = run_child("encode", src, arm, a.model, a.threads, a.batch_mb)
            dec = run_child("decode", arm, "-", a.model, a.threads, a.batch_mb)
            row = {"megapixels": h * w / 1e6, "width": w, "height": h, "file_mb": arm.stat().st_size / 2**20,
                   "image_mb": img.nbytes / 2**20, "encode": enc, "decode": dec}
            rows.append(row)
            print(json.dumps(row), flush=True)
            result = {"model": a.model, "threads": a.threads, "batch_mb": a.batch_mb, "torch": torch.__version__,
                      "cpu_count": os.cpu_count(), "rows": rows}
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(result, indent=1) + "\n")  # after every size: a long run keeps what it measured


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
