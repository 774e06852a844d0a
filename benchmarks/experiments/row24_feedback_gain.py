"""What the residual feedback (coder profile 4) gains over profile 2, in real file bits, on the
validation split of the training folder (never Kodak or eval).

    python benchmarks/feedback_gain.py ../shared/data/train --limit 6

Encodes each validation image with the shipped model twice (feedback off and on) and prints the
file bpsp of both; writes benchmarks/results/feedback_gain.json.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import armcodec
from armcodec.training.data import list_images, load_rgb, split_train_val


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--limit", type=int, default=6, help="validation images to use")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    _, val = split_train_val(list_images(a.data))
    val = val[: a.limit]
    codecs = {fb: armcodec.Codec(a.model, device="cpu", feedback=fb) for fb in (False, True)}
    rows, bits, subpixels = [], {False: 0, True: 0}, 0
    for path, chw in zip(val, load_rgb(val)):
        img = np.ascontiguousarray(chw.transpose(1, 2, 0))
        row = {"image": path.name, "shape": list(img.shape)}
        for fb, codec in codecs.items():
            enc = codec.encode(img)
            assert np.array_equal(codec.decode(enc.data).array, img)
            row["feedback" if fb else "no_feedback"] = len(enc.data) * 8 / img.size
            bits[fb] += len(enc.data) * 8
        subpixels += img.size
        rows.append(row)
        print(f"{path.name[:40]:40} {row['no_feedback']:.4f} -> {row['feedback']:.4f} "
              f"({100 * (row['feedback'] / row['no_feedback'] - 1):+.2f}%)", flush=True)
    total = {"no_feedback": bits[False] / subpixels, "feedback": bits[True] / subpixels}
    total["gain_percent"] = 100 * (1 - bits[True] / bits[False])
    print(f"total {total['no_feedback']:.4f} -> {total['feedback']:.4f} (-{total['gain_percent']:.2f}%)")
    out = Path(__file__).parent / "results" / "feedback_gain.json"
    out.write_text(json.dumps({"model": a.model, "images": rows, "total_bpsp": total}, indent=1) + "\n")


if __name__ == "__main__":
    main()
