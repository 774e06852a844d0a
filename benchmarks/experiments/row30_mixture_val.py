"""Float estimate of a fixed-weight mixture of two shipped models on the validation crops (what
an ensemble with ``shares`` would code, before the coder's adaptation and feedback):

    python benchmarks/mixture_val.py ../shared/data/train --models default fast --weights 0.05 0.1 0.2 0.5

Each model runs as its dequantized float copy (``IntPixelCNN.to_float``) through the QAT graph;
prints each model's bpsp and, per weight w of the second, that of (1 - w) p_first + w p_second.
(EXPERIMENTS row 30; ``benchmarks/ensemble_val.py`` does the same for training checkpoints.)
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from armcodec.training.data import fixed_val_crops, list_images, load_rgb, split_train_val
from armcodec.weights import load_weights, read_manifest


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train_data", type=Path)
    ap.add_argument("--models", nargs=2, default=["default", "fast"])
    ap.add_argument("--weights", nargs="+", type=float, default=[0.05, 0.1, 0.15, 0.2, 0.3, 0.5])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    _, va = split_train_val(list_images(a.train_data))
    val = fixed_val_crops([im for im in load_rgb(va) if min(im.shape[1:]) >= 128])
    entries = read_manifest()
    nats = []
    with torch.no_grad():
        for name in a.models:
            f = load_weights(entries[name], torch.device("cpu")).net.to_float().eval()
            bits = torch.cat([f(val[k : k + 8], qat=True) for k in range(0, len(val), 8)])
            print(f"{name} {float(bits.mean()):.4f} bpsp", flush=True)
            nats.append(-bits * math.log(2))
    for w in a.weights:
        mix = torch.logaddexp(nats[0] + math.log(1 - w), nats[1] + math.log(w))
        print(f"w {w}: {float((-mix / math.log(2)).mean()):.4f} bpsp")


if __name__ == "__main__":
    main()
