"""Row 38: row 37's float pyramid as a training checkpoint of the shipped architecture
(``polyphase-pyramid``, :class:`armcodec.models.pyramid.Pyramid`), so that ``armcodec train``
continues it (float, then quantization-aware) and exports the integer-exact model.

    python -m benchmarks.experiments.row38_pyramid_warm_start /tmp/pyramid.safetensors runs/pyramid.safetensors
    python -m armcodec.training ../shared/data/train --architecture polyphase-pyramid \\
        --out runs/pyramid.safetensors --steps 100000 --minutes 80 --qat-steps 700 --lr 1e-3 --warmup 100 --val-every 500

Row 37's modules map one to one (``gates`` -> ``gate_convs``, ``mixes`` -> ``mix_convs``); its
level input was ``level / levels``, the shipped graph's is ``level / 4`` (an integer on the input
grid, :data:`armcodec.models.polyphase_exact.LEVEL_VALUE`), so that channel's weights are scaled by
``4 / levels``: the same function (the script checks the validation bpsp before and after).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from armcodec.models.polyphase_exact import LEVEL_VALUE
from armcodec.models.pyramid import Pyramid, PyramidConfig
from armcodec.training.data import fixed_val_crops, list_images, load_rgb, split_train_val
from armcodec.training.loop import evaluate, save_checkpoint


def convert(row37: Path) -> Pyramid:
    with safe_open(str(row37), "pt") as f:
        record = json.loads(f.metadata()["record"])
    st = record["settings"]
    base = record["base"]
    cfg = PyramidConfig(levels=st["levels"], width=st["width"], blocks=st["blocks"], head_width=st["head"],
                        mixtures=base["mixtures"], base_width=base["width"], base_blocks=base["blocks"],
                        base_head_width=base["head_width"])
    model = Pyramid(cfg)
    state = {}
    for k, v in load_file(str(row37)).items():
        k = k.replace(".gates.", ".gate_convs.").replace(".mixes.", ".mix_convs.")
        if k.startswith("passes.") and (k.endswith(".first.weight") or k.endswith(".skip.weight")):
            v = v.clone()
            v[:, -1] *= (32 / LEVEL_VALUE) / cfg.levels  # level / levels -> level * LEVEL_VALUE / 32
        state[k] = v
    model.load_state_dict(state, strict=True)
    return model, record


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("row37", type=Path, help="row 37's float checkpoint")
    ap.add_argument("out", type=Path, help="the training checkpoint to write")
    ap.add_argument("--data", type=Path, default=Path("../shared/data/train"))
    a = ap.parse_args(argv)
    model, record = convert(a.row37)
    _, va = split_train_val(list_images(a.data))
    val = fixed_val_crops([im for im in load_rgb(va) if min(im.shape[1:]) >= 128])
    last = max(record["validation_bpsp"], key=int)
    print(f"row 37 at step {last}: {record['validation_bpsp'][last]} bpsp; converted: {evaluate(model, val, False):.4f}")
    save_checkpoint(a.out, model, torch.optim.Adam(model.parameters()), {
        "config": model.cfg.to_dict(), "step": 0,
        "warm_start": {"from": f"row 37's float pyramid at step {last} (benchmarks/experiments/row37_pyramid.py)",
                       "row37_validation_bpsp": record["validation_bpsp"][last]}})


if __name__ == "__main__":
    main()
