"""Lossless benchmark: armcodec next to PNG, WebP lossless, JPEG-LS, JPEG 2000 and JPEG-XL.

    python benchmarks/bench.py ../shared/data/kodak --name kodak
    python benchmarks/bench.py ../shared/data/eval --name eval --codecs armcodec,png,webp,jxl-e9

For every image and codec: encode, write the file, take the size from the file on disk,
read it back, decode, and require exact equality (a mismatch aborts the run).  Writes
``benchmarks/results/<name>/<codec>.json`` (per image and totals, with commit, versions,
device and threads), ``table.md`` for all codecs in that folder, and ``plot.png`` (bpsp
against decode time) when matplotlib is installed.  Reference codecs need the ``bench``
extra (imagecodecs).
"""
from __future__ import annotations

import argparse
import io
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _pil_codec(fmt: str, **opts):
    def enc(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format=fmt, **opts)
        return buf.getvalue()

    def dec(b: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(b)))

    return enc, dec


def reference_codecs() -> dict:
    codecs = {
        "png": (*_pil_codec("PNG", compress_level=9, optimize=True), "PNG (Pillow, level 9, optimize)"),
        "webp": (*_pil_codec("WEBP", lossless=True, quality=100, method=6, exact=True), "WebP lossless (m6, q100)"),
    }
    try:
        import imagecodecs as ic
    except ImportError:
        return codecs
    codecs["jpegls"] = (ic.jpegls_encode, ic.jpegls_decode, "JPEG-LS (CharLS)")
    codecs["jpeg2000"] = (lambda a: ic.jpeg2k_encode(a, level=0, reversible=True), ic.jpeg2k_decode, "JPEG 2000 reversible (OpenJPEG)")
    for e in (7, 9):
        codecs[f"jxl-e{e}"] = (lambda a, e=e: ic.jpegxl_encode(a, lossless=True, effort=e, numthreads=1), ic.jpegxl_decode,
                               f"JPEG-XL lossless e{e} (libjxl, 1 thread)")
    return codecs


def environment(device: str, threads: int) -> dict:
    import torch

    def ver(p):
        try:
            from importlib.metadata import version

            return version(p)
        except Exception:
            return None

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "armcodec", "weights"], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    except OSError:
        commit, dirty = None, None
    return {
        "commit": commit, "dirty": dirty, "python": platform.python_version(), "platform": platform.platform(),
        "cpu_count": __import__("os").cpu_count(), "torch_threads": threads, "device": device,
        "versions": {p: ver(p) for p in ("armcodec", "torch", "numpy", "constriction", "pillow", "imagecodecs")},
    }


def run_codec(name, encode, decode, images, tmp: Path, progress) -> list[dict]:
    rows = []
    for path, img in images:
        t0 = time.perf_counter()
        enc = encode(img)
        t1 = time.perf_counter()
        data, extra = (enc.data, {"model_bits": enc.model_bits}) if hasattr(enc, "data") else (enc, {})
        f = tmp / f"{path.stem}.{name}"
        f.write_bytes(data)
        size = f.stat().st_size
        back = f.read_bytes()
        t2 = time.perf_counter()
        out = decode(back)
        t3 = time.perf_counter()
        out = np.asarray(out)
        if out.shape != img.shape:
            out = out.reshape(img.shape)
        if not np.array_equal(out, img):
            raise SystemExit(f"{name}: {path.name} did not decode exactly")
        rows.append({"image": path.name, "width": img.shape[1], "height": img.shape[0], "channels": img.shape[2] if img.ndim == 3 else 1,
                     "bytes": size, "bpsp": size * 8 / img.size, "encode_s": t1 - t0, "decode_s": t3 - t2, **extra})
        progress(name, path.name, rows[-1])
    return rows


def summarize(rows: list[dict]) -> dict:
    n = sum(r["width"] * r["height"] * r["channels"] for r in rows)
    tot = {"images": len(rows), "bytes": sum(r["bytes"] for r in rows), "subpixels": n,
           "bpsp_total": sum(r["bytes"] for r in rows) * 8 / n, "bpsp_mean": float(np.mean([r["bpsp"] for r in rows])),
           "encode_s_mean": float(np.mean([r["encode_s"] for r in rows])), "decode_s_mean": float(np.mean([r["decode_s"] for r in rows])),
           "decode_s_max": float(np.max([r["decode_s"] for r in rows]))}
    if all("model_bits" in r for r in rows):
        tot["model_bpsp_mean"] = float(np.mean([r["model_bits"] / (r["width"] * r["height"] * r["channels"]) for r in rows]))
        tot["max_file_over_model"] = float(max(r["bytes"] * 8 / r["model_bits"] for r in rows))
    return tot


def write_table(folder: Path) -> str:
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    results.sort(key=lambda r: r["summary"]["bpsp_mean"])
    lines = ["| codec | mean bpsp | total bpsp | mean encode s | mean decode s |", "|---|---|---|---|---|"]
    for r in results:
        s = r["summary"]
        lines.append(f"| {r['description']} | {s['bpsp_mean']:.3f} | {s['bpsp_total']:.3f} | {s['encode_s_mean']:.2f} | {s['decode_s_mean']:.2f} |")
    text = "\n".join(lines) + "\n"
    (folder / "table.md").write_text(text)
    return text


def write_plot(folder: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    results = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in results:
        s = r["summary"]
        ax.scatter(s["decode_s_mean"], s["bpsp_mean"])
        ax.annotate(r["codec"], (s["decode_s_mean"], s["bpsp_mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("mean decode time per image (s, log scale)")
    ax.set_ylabel("mean bits per subpixel")
    ax.set_title(f"{folder.name}: lossless rate vs decode time")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "plot.png", dpi=120)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path, help="folder of images")
    ap.add_argument("--name", help="dataset name for the results folder (default: folder name)")
    ap.add_argument("--codecs", default="armcodec,png,webp,jpegls,jpeg2000,jxl-e7,jxl-e9")
    ap.add_argument("--model", default="default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    a = ap.parse_args(argv)

    import torch

    import armcodec

    if a.threads:
        torch.set_num_threads(a.threads)
    paths = sorted(p for p in a.data.iterdir() if p.suffix.lower() in (".png", ".ppm", ".bmp", ".tif", ".tiff"))
    if a.limit:
        paths = paths[: a.limit]
    images = [(p, np.asarray(Image.open(p))) for p in paths]
    folder = a.out / (a.name or a.data.name)
    folder.mkdir(parents=True, exist_ok=True)
    refs = reference_codecs()
    env = environment(a.device, torch.get_num_threads())

    def progress(codec, image, row):
        print(f"{codec:>10} {image:>16} {row['bpsp']:.4f} bpsp  enc {row['encode_s']:.2f}s dec {row['decode_s']:.2f}s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        for name in a.codecs.split(","):
            if name == "armcodec":
                codec = armcodec.Codec(a.model, a.device)
                enc, dec = codec.encode, codec.decompress
                entry = codec.model.entry
                desc = f"armcodec {a.model} ({a.device}, {torch.get_num_threads()} threads)"
                extra = {"model": a.model, "weights_sha256": entry.sha256, "tile_size": codec.tile_size}
            elif name in refs:
                enc, dec, desc = refs[name]
                extra = {}
            else:
                print(f"skipping {name}: not available (install the [bench] extra)", file=sys.stderr)
                continue
            rows = run_codec(name, enc, dec, images, Path(tmp), progress)
            result = {"codec": name, "description": desc, "dataset": str(a.data), "environment": env, **extra,
                      "summary": summarize(rows), "images": rows}
            (folder / f"{name if name != 'armcodec' else 'armcodec-' + a.model}.json").write_text(json.dumps(result, indent=1) + "\n")
            print(f"{name}: {result['summary']}", flush=True)
    print(write_table(folder))
    write_plot(folder)


if __name__ == "__main__":
    main()
