"""What the integer grids cost: one float checkpoint evaluated on the validation crops in float
and through the QAT graph (= the integer-exact model) on several residual / coupling grids.

    python benchmarks/grid_cost.py ../shared/data/train runs/cont3_float26000.safetensors

No retraining: the same parameters, only ``resid_steps`` and ``coef_steps`` change
(:func:`armcodec.train.regrid_model`).  Prints one line per grid and writes
``benchmarks/results/grid_cost.json``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from armcodec.training.data import fixed_val_crops, list_images, load_rgb, split_train_val
from armcodec.training.loop import evaluate, load_checkpoint, regrid_model

GRIDS = [(32, 64), (32, 1024), (64, 64), (128, 64), (64, 256), (128, 256), (128, 1024), (128, 4096)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("train_data", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "grid_cost.json")
    a = ap.parse_args()
    _, va = split_train_val(list_images(a.train_data))
    val = fixed_val_crops([im for im in load_rgb(va) if min(im.shape[1:]) >= 128])
    model, meta, _ = load_checkpoint(a.checkpoint)
    t0 = time.time()
    rows = {"float": evaluate(model, val, False)}
    print(f"float (no quantization): {rows['float']:.4f} bpsp", flush=True)
    for resid, coef in GRIDS:
        bpsp = evaluate(regrid_model(model, {"resid_steps": resid, "coef_steps": coef}), val, True)
        rows[f"resid 1/{resid}, coef 1/{coef}"] = bpsp
        print(f"resid 1/{resid:<4} coef 1/{coef:<5} integer-exact graph {bpsp:.4f} bpsp "
              f"(+{100 * (bpsp / rows['float'] - 1):.2f}% over float)", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({
        "checkpoint": str(a.checkpoint), "step": meta.get("step"), "val_crops": len(val),
        "bpsp": rows, "seconds": round(time.time() - t0, 1)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
