"""Lossless benchmark: armcodec next to PNG, WebP lossless, JPEG-LS, JPEG 2000 and JPEG-XL.

    armcodec bench ../shared/data/kodak                 # = python benchmarks/bench.py ../shared/data/kodak
    armcodec bench ../shared/data/eval --codecs armcodec,png,webp,jxl-e9
    armcodec bench ../shared/data/kodak --codecs armcodec,armcodec-noadapt   # the gain of adaptation
    armcodec bench photos/*.png --name mine --out /tmp/results

For every image and codec: encode, write the file, take the size from the file on disk,
read it back, decode, and require exact equality (a mismatch aborts the run).  The codecs take
turns image by image, so every codec's times come from the same minutes.  Writes
``benchmarks/results/<name>/<codec>.json`` (per image and totals, with commit, versions,
device and threads), ``table.md`` for all codecs in that folder (bpsp, seconds per image and per
megapixel), and ``plot.png`` (bpsp against decode time) when matplotlib is installed.  JPEG-XL
runs with as many threads as armcodec.  Reference codecs need the ``bench``
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
# results go to the checkout's benchmarks/results when run from a checkout, else ./benchmarks/results
DEFAULT_OUT = ROOT / "benchmarks" / "results" if (ROOT / "pyproject.toml").exists() else Path("benchmarks") / "results"


def _pil_codec(fmt: str, **opts):
    def enc(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format=fmt, **opts)
        return buf.getvalue()

    def dec(b: bytes) -> np.ndarray:
        return np.asarray(Image.open(io.BytesIO(b)))

    return enc, dec


def reference_codecs(threads: int = 1) -> dict:
    """The reference codecs; JPEG-XL with ``threads`` threads (the same as armcodec's in a run)."""
    codecs = {
        "png": (*_pil_codec("PNG", compress_level=9, optimize=True), "PNG (Pillow, level 9, optimize)"),
        "webp": (*_pil_codec("WEBP", lossless=True, quality=100, method=6, exact=True), "WebP lossless (m6, q100)"),
    }
    try:
        import imagecodecs as ic
    except ImportError:
        return codecs
    codecs["jpegls"] = (ic.jpegls_encode, ic.jpegls_decode, "JPEG-LS (CharLS, no colour transform)")
    codecs["jpeg2000"] = (lambda a: ic.jpeg2k_encode(a, level=0, reversible=True), ic.jpeg2k_decode, "JPEG 2000 reversible (OpenJPEG)")
    for e in (7, 9):
        codecs[f"jxl-e{e}"] = (lambda a, e=e: ic.jpegxl_encode(a, lossless=True, effort=e, numthreads=threads),
                               lambda b: ic.jpegxl_decode(b, numthreads=threads),
                               f"JPEG-XL lossless e{e} (libjxl, {threads} thread{'s' if threads > 1 else ''})")
    return codecs


def environment(device: str, threads: int) -> dict:
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
        "versions": {p: ver(p) for p in ("armcodec", "torch", "numpy", "numba", "constriction", "pillow", "imagecodecs")},
    }


def run_codec(name, encode, decode, images, tmp: Path, progress) -> list[dict]:
    rows = []
    for path, img in images:
        t0 = time.perf_counter()
        enc = encode(img)
        t1 = time.perf_counter()
        data, extra = (enc.data, {"model_bits": enc.model_bits, "coder": enc.coder}) if hasattr(enc, "data") else (enc, {})
        f = tmp / f"{path.stem}.{name}"
        f.write_bytes(data)
        size = f.stat().st_size
        back = f.read_bytes()
        t2 = time.perf_counter()
        out = decode(back)
        t3 = time.perf_counter()
        out = np.asarray(out)
        if img.ndim == 2 and out.ndim == 3 and np.all(out == out[:, :, :1]):
            out = out[:, :, 0]  # a grey image that the format stores as RGB (WebP)
        if out.shape != img.shape and out.size == img.size:
            out = out.reshape(img.shape)
        if out.shape != img.shape or not np.array_equal(out, img):
            raise SystemExit(f"{name}: {path.name} did not decode exactly")
        rows.append({"image": path.name, "width": img.shape[1], "height": img.shape[0], "channels": img.shape[2] if img.ndim == 3 else 1,
                     "bytes": size, "bpsp": size * 8 / img.size, "encode_s": t1 - t0, "decode_s": t3 - t2, **extra})
        progress(name, path.name, rows[-1])
    return rows


def decode_together(codec, name: str, images, tmp: Path, together: int) -> dict:
    """The files run_codec wrote, read back and decoded ``together`` at a time in one call each
    (``Codec.decode_many``: their tiles share the model's steps), compared exactly."""
    seconds = 0.0
    for k in range(0, len(images), together):
        chunk = images[k : k + together]
        files = [(tmp / f"{path.stem}.{name}").read_bytes() for path, _ in chunk]
        t = time.perf_counter()
        out = codec.decode_many(files)
        seconds += time.perf_counter() - t
        for (path, img), dec in zip(chunk, out):
            if not np.array_equal(dec.array.reshape(img.shape), img):
                raise SystemExit(f"{name}: {path.name} did not decode exactly with {together} files at a time")
    return {"decode_together": together, "decode_together_s_mean": seconds / len(images)}


def summarize(rows: list[dict]) -> dict:
    n = sum(r["width"] * r["height"] * r["channels"] for r in rows)
    tot = {"images": len(rows), "bytes": sum(r["bytes"] for r in rows), "subpixels": n,
           "bpsp_total": sum(r["bytes"] for r in rows) * 8 / n, "bpsp_mean": float(np.mean([r["bpsp"] for r in rows])),
           "encode_s_mean": float(np.mean([r["encode_s"] for r in rows])), "decode_s_mean": float(np.mean([r["decode_s"] for r in rows])),
           "decode_s_max": float(np.max([r["decode_s"] for r in rows]))}
    megapixels = sum(r["width"] * r["height"] for r in rows) / 1e6
    tot["encode_s_per_mp"] = sum(r["encode_s"] for r in rows) / megapixels
    tot["decode_s_per_mp"] = sum(r["decode_s"] for r in rows) / megapixels
    if all("model_bits" in r for r in rows):
        tot["model_bpsp_mean"] = float(np.mean([r["model_bits"] / (r["width"] * r["height"] * r["channels"]) for r in rows]))
        tot["max_file_over_model"] = float(max(r["bytes"] * 8 / r["model_bits"] for r in rows))
    return tot


def codec_results(folder: Path) -> list[dict]:
    """The per-codec result files of a folder (other JSON there, e.g. quantization.json, is skipped)."""
    out = []
    for p in sorted(folder.glob("*.json")):
        r = json.loads(p.read_text())
        if isinstance(r, dict) and "summary" in r and "codec" in r:
            out.append(r)
    return out


def write_table(folder: Path) -> str:
    results = codec_results(folder)
    results.sort(key=lambda r: r["summary"]["bpsp_mean"])
    lines = ["| codec | mean bpsp | total bpsp | mean encode s | mean decode s | encode s/MP | decode s/MP | decode s, files decoded together |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["summary"]
        per_mp = (f"{s['encode_s_per_mp']:.3g} | {s['decode_s_per_mp']:.3g}" if "encode_s_per_mp" in s else "- | -")
        together = f"{s['decode_together_s_mean']:.2f} ({s['decode_together']} at a time)" if "decode_together" in s else "-"
        lines.append(f"| {r['description']} | {s['bpsp_mean']:.3f} | {s['bpsp_total']:.3f} | {s['encode_s_mean']:.2f} | "
                     f"{s['decode_s_mean']:.2f} | {per_mp} | {together} |")
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
    results = codec_results(folder)
    fig, ax = plt.subplots(figsize=(6, 4))
    rates = sorted(r["summary"]["bpsp_mean"] for r in results)
    for r in results:
        s = r["summary"]
        label = f"{r['codec']} {r['model']}" if "model" in r else r["codec"]
        # the label goes on the side (above or below) with more room to the next rate, and in the
        # point's colour, so that two close points keep their labels apart and unambiguous
        below = max((x for x in rates if x < s["bpsp_mean"]), default=float("-inf"))
        above = min((x for x in rates if x > s["bpsp_mean"]), default=float("inf"))
        up = above - s["bpsp_mean"] > s["bpsp_mean"] - below
        dots = ax.scatter(s["decode_s_mean"], s["bpsp_mean"])
        ax.annotate(label, (s["decode_s_mean"], s["bpsp_mean"]), textcoords="offset points",
                    xytext=(4, 4 if up else -10), fontsize=8, color=dots.get_facecolor()[0])
    ax.set_xscale("log")
    ax.set_xlabel("mean decode time per image (s, log scale)")
    ax.set_ylabel("mean bits per subpixel")
    ax.set_title(f"{folder.name}: lossless rate vs decode time")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "plot.png", dpi=120)


IMAGE_SUFFIXES = (".png", ".ppm", ".pgm", ".bmp", ".tif", ".tiff")
ALL_CODECS = "armcodec,png,webp,jpegls,jpeg2000,jxl-e7,jxl-e9"
# name -> Codec options: the model's own settings; no coder tools; without / with the
# orientation search; without the residual feedback; the model only (no classic path)
ARMCODEC_VARIANTS = {"armcodec": {}, "armcodec-noadapt": {"adaptive": False}, "armcodec-noorient": {"orient": False},
                     "armcodec-orient": {"orient": True}, "armcodec-nofeedback": {"feedback": False},
                     "armcodec-noclassic": {"classic": False}}


def collect_images(inputs: list[Path]) -> list[Path]:
    """Image files given directly or found (non-recursively) in the given folders, sorted per folder."""
    out = []
    for p in map(Path, inputs):
        if p.is_dir():
            out += sorted(q for q in p.iterdir() if q.suffix.lower() in IMAGE_SUFFIXES)
        elif p.is_file():
            out.append(p)
        else:
            raise SystemExit(f"bench: {p}: no such file or folder")
    if not out:
        raise SystemExit("bench: no images found")
    return out


def run(inputs: list[Path], name: str | None = None, codecs: str = ALL_CODECS, model: str = "default",
        device: str = "cpu", threads: int = 0, limit: int = 0, out: Path | None = None, log=print, together: int = 6) -> Path:
    """Benchmark the codecs on the images; write <out>/<name>/<codec>.json, table.md and plot.png.

    name: the dataset (default: the folder's name when one folder is given); together: armcodec's
    files are also decoded this many at a time (``decode_together_s_mean``; 1: not).  Returns the folder."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import armcodec

    if threads:
        torch.set_num_threads(threads)
    paths = collect_images(inputs)[: limit or None]
    if name is None:
        name = Path(inputs[0]).resolve().name if len(inputs) == 1 and Path(inputs[0]).is_dir() else "custom"
    images = []
    for p in paths:
        with Image.open(p) as im:
            images.append((p, np.asarray(im)))
    folder = Path(out or DEFAULT_OUT) / name
    folder.mkdir(parents=True, exist_ok=True)
    refs = reference_codecs(torch.get_num_threads())
    env = environment(device, torch.get_num_threads())
    wanted = [c for c in codecs.split(",") if c]
    for c in wanted:
        if c not in ARMCODEC_VARIANTS and c not in refs:
            log(f"bench: skipping {c}: not available (pip install 'armcodec[bench]' for imagecodecs)")
    wanted = [c for c in wanted if c in ARMCODEC_VARIANTS or c in refs]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  disable=not sys.stderr.isatty(), transient=True) as bar:
        task = bar.add_task("bench", total=len(wanted) * len(images))

        def progress(codec, image, row):
            bar.advance(task)
            bar.update(task, description=f"{codec} {image}")
            if not sys.stderr.isatty():
                log(f"{codec:>10} {image:>16} {row['bpsp']:.4f} bpsp  enc {row['encode_s']:.2f}s dec {row['decode_s']:.2f}s")

        setups = {}  # codec -> (encode, decode, description, extra fields, the armcodec Codec or None)
        for c in wanted:
            if c in ARMCODEC_VARIANTS:
                codec = armcodec.Codec(model, device, **ARMCODEC_VARIANTS[c])
                what = "" if codec.adaptive else ", no adaptation"
                what += f", orientation search (picked by {codec.orient_proxy or model})" if codec.orient else ""
                what += "" if codec.feedback or not codec.adaptive else ", no residual feedback"
                what += "" if codec.classic else ", the model only (no PNG or WebP)"
                desc = f"armcodec {model}{what} ({device}, {torch.get_num_threads()} threads)"
                extra = {"model": model, "weights_sha256": codec.model.entry.sha256, "tile_size": codec.tile_size,
                         "adaptive": codec.adaptive, "orient": codec.orient, "orient_proxy": codec.orient_proxy,
                         "feedback": codec.feedback, "classic": codec.classic,
                         "coder_profile": codec.profile, "coder_tools": codec.tools.describe(),
                         "weights": codec.model.entry.name, "kernel": codec.kernel_in_use}
                setups[c] = (codec.encode, codec.decompress, desc, extra, codec)
            else:
                enc, dec, desc = refs[c]
                setups[c] = (enc, dec, desc, {}, None)

        with tempfile.TemporaryDirectory() as tmp:
            # image by image, every codec in turn: each codec's times come from the same minutes as
            # the others' (a machine whose speed drifts by the hour moves them all alike)
            rows = {c: [] for c in wanted}
            for image in images:
                for c in wanted:
                    enc, dec = setups[c][:2]
                    rows[c] += run_codec(c, enc, dec, [image], Path(tmp), progress)
            for c in wanted:
                desc, extra, codec = setups[c][2:]
                summary = summarize(rows[c])
                if codec is not None and together > 1:
                    summary.update(decode_together(codec, c, images, Path(tmp), together))
                    log(f"{c}: decoded {together} at a time: {summary['decode_together_s_mean']:.2f} s per image")
                result = {"codec": c, "description": desc, "dataset": name, "inputs": [str(i) for i in inputs],
                          "environment": env, **extra, "summary": summary, "images": rows[c]}
                fname = f"armcodec-{model}{c[len('armcodec'):]}.json" if c in ARMCODEC_VARIANTS else f"{c}.json"
                (folder / fname).write_text(json.dumps(result, indent=1) + "\n")
                s = result["summary"]
                log(f"{desc}: {s['bpsp_mean']:.4f} bpsp mean over {s['images']} images, decode {s['decode_s_mean']:.2f} s mean")
    log(write_table(folder))
    write_plot(folder)
    return folder


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", type=Path, nargs="+", help="images, or folders of images")
    ap.add_argument("--name", help="dataset name for the results folder (default: the folder's name)")
    ap.add_argument("--codecs", default=ALL_CODECS)
    ap.add_argument("--model", default="default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="threads for armcodec (a cap) and JPEG-XL (0: torch's default, the cores)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--together", type=int, default=6, help="also decode armcodec's files N at a time in one call (1: not)")
    a = ap.parse_args(argv)
    run(a.inputs, a.name, a.codecs, a.model, a.device, a.threads, a.limit, a.out, log=lambda m: print(m, flush=True),
        together=a.together)


if __name__ == "__main__":
    main()
