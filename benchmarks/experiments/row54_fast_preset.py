"""Which model the ``fast`` preset should use: the wavefront pixelcnn-s (``fast`` until 0.11) or the
multi-scale pyramid (the ``pyramid`` preset), decided on the validation split of the training folder
(every tenth photograph: never Kodak or eval).

    python -m benchmarks.experiments.row54_fast_preset ../shared/data/train --presets fast pyramid

Each preset codes each validation photograph as it ships (its tile size, coder tools and the classic
fallback), every file is decoded and compared; prints per image and in total the file bpsp, the
model's -log2 likelihood and the encode / decode seconds (2 threads, one process, the model loaded
once per preset), and writes ``benchmarks/experiments/results/fast_preset.json`` (or ``--out``).
``--presets`` also takes installed weights names (their own tile size, no search): new weights against a preset's.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import armcodec
from armcodec.training.data import list_images, load_rgb, split_train_val


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--presets", nargs="+", default=["fast", "pyramid"])
    ap.add_argument("--limit", type=int, default=0, help="validation images to use (0: all)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fast_preset.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    _, val = split_train_val(list_images(a.data))
    val = val[: a.limit] if a.limit else val
    codecs = {p: armcodec.Codec(p, device="cpu") for p in a.presets}
    for codec in codecs.values():  # first-use costs (kernel calibration) outside the timings
        codec.decode(codec.encode(np.zeros((64, 64, 3), np.uint8) + 7).data)
    totals = {p: {"bits": 0, "model_bits": 0.0, "encode_s": 0.0, "decode_s": 0.0, "classic": 0} for p in a.presets}
    rows, subpixels = [], 0
    for path, chw in zip(val, load_rgb(val)):
        img = np.ascontiguousarray(chw.transpose(1, 2, 0))
        row = {"image": path.name, "shape": list(img.shape)}
        for p, codec in codecs.items():
            t0 = time.perf_counter()
            enc = codec.encode(img)
            t1 = time.perf_counter()
            if not np.array_equal(codec.decode(enc.data).array, img):
                raise SystemExit(f"{path.name}: {p} did not round-trip")
            t2 = time.perf_counter()
            bits = len(enc.data) * 8
            row[p] = {"bpsp": bits / img.size, "model_bpsp": enc.model_bits / img.size, "coder": enc.coder,
                      "encode_s": t1 - t0, "decode_s": t2 - t1}
            t = totals[p]
            t["bits"] += bits
            t["model_bits"] += enc.model_bits
            t["encode_s"] += t1 - t0
            t["decode_s"] += t2 - t1
            t["classic"] += enc.coder != "model"
        subpixels += img.size
        rows.append(row)
        print(f"{path.name[:36]:36} " + " ".join(f"{p} {row[p]['bpsp']:.4f} ({row[p]['coder']}, {row[p]['encode_s']:.1f}/"
                                                 f"{row[p]['decode_s']:.1f} s)" for p in a.presets), flush=True)
    base = totals[a.presets[0]]["bits"]
    mp = subpixels / 3e6
    summary = {p: {"bpsp": t["bits"] / subpixels, "model_bpsp": t["model_bits"] / subpixels,
                   "vs_first_percent": 100 * (t["bits"] / base - 1), "classic_files": t["classic"],
                   "encode_s_per_mp": t["encode_s"] / mp, "decode_s_per_mp": t["decode_s"] / mp}
               for p, t in totals.items()}
    print(f"total ({len(rows)} images, {mp:.2f} MP) " + " ".join(
        f"{p} {s['bpsp']:.4f} (model {s['model_bpsp']:.4f}, {s['vs_first_percent']:+.2f}%, {s['encode_s_per_mp']:.1f}/"
        f"{s['decode_s_per_mp']:.1f} s/MP)" for p, s in summary.items()))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"presets": a.presets, "threads": a.threads, "images": rows, "total": summary},
                                indent=1) + "\n")


if __name__ == "__main__":
    main()
