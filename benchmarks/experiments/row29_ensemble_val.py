"""Validation bpsp of checkpoints alone and of their equal mixture (what ``export_ensemble``
builds: every channel's distribution is the mean of the members'), on the validation crops,
through the QAT graph (= the integer-exact models).

    python benchmarks/ensemble_val.py ../shared/data/train runs/a.safetensors runs/b.safetensors [...]

Float checkpoints are evaluated on their configured integer grids, as an export would code them.
"""
from __future__ import annotations

import argparse
import itertools
import math
from pathlib import Path

import torch

from armcodec.training.data import fixed_val_crops, list_images, load_rgb, split_train_val
from armcodec.training.loop import load_checkpoint


@torch.no_grad()
def subpixel_bits(model, crops: torch.Tensor) -> torch.Tensor:
    model.eval()
    return torch.cat([model(crops[k : k + 8], qat=True) for k in range(0, len(crops), 8)])


def mixture_bpsp(bits: list[torch.Tensor]) -> float:
    """-log2 of the mean of the members' probabilities, per subpixel, averaged."""
    stacked = -torch.stack(bits) * math.log(2)  # natural log-probabilities
    mixed = -(torch.logsumexp(stacked, 0) - math.log(len(bits))) / math.log(2)
    return float(mixed.mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train_data", type=Path)
    ap.add_argument("checkpoints", type=Path, nargs="+")
    a = ap.parse_args()
    _, va = split_train_val(list_images(a.train_data))
    val = fixed_val_crops([im for im in load_rgb(va) if min(im.shape[1:]) >= 128])
    bits = {}
    for c in a.checkpoints:
        model, meta, _ = load_checkpoint(c)
        bits[c] = subpixel_bits(model, val)
        print(f"{c} (step {meta.get('step')}, grids 1/{model.cfg.resid_steps} 1/{model.cfg.coef_steps}): "
              f"{float(bits[c].mean()):.4f} bpsp", flush=True)
    for n in range(2, len(bits) + 1):
        for combo in itertools.combinations(bits, n):
            print(" + ".join(str(c) for c in combo), f"{mixture_bpsp([bits[c] for c in combo]):.4f} bpsp", flush=True)


if __name__ == "__main__":
    main()
