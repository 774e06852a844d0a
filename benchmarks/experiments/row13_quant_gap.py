"""Cost of integer-exact inference: float vs QAT vs exported integer NLL, on the same tiles.

    python benchmarks/quant_gap.py ../shared/data/kodak weights/train/default.ckpt.safetensors \
        benchmarks/results/kodak/armcodec-default-noadapt.json --float-checkpoint runs/default_float.safetensors

``float`` is the shipped (QAT-tuned) weights run in float without fake quantization,
``pre_qat_float`` the float model before quantization-aware fine-tuning (optional).
The float checkpoints are evaluated on exactly the tiles the codec codes (each tile zero
padded on its own, as in the codec); the integer figure is the model_bits of the benchmark
run without adaptation (``--codecs armcodec-noadapt``: exact tables of the shipped weights, whose
sha256 must match an export of this checkpoint).  Writes ``benchmarks/results/<dataset>/quantization.json``.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from armcodec.coding.scan import tile_grid
from armcodec.training.export import export_model
from armcodec.training.loop import load_checkpoint


@torch.no_grad()
def tiled_bits(model, img: np.ndarray, tile: int, qat: bool) -> float:
    x = torch.from_numpy(img.transpose(2, 0, 1).copy()).float()[None]
    bits = 0.0
    for t in tile_grid(img.shape[0], img.shape[1], tile):
        bits += model(x[:, :, t.y : t.y + t.h, t.x : t.x + t.w], qat=qat).sum().item()
    return bits


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("bench_json", type=Path)
    ap.add_argument("--float-checkpoint", type=Path, help="also the float model before QAT (e.g. weights/train/default.float.safetensors)")
    a = ap.parse_args(argv)
    pre = load_checkpoint(a.float_checkpoint)[0].eval() if a.float_checkpoint else None
    model, meta, _ = load_checkpoint(a.checkpoint)
    model.eval()
    bench = json.loads(a.bench_json.read_text())
    if bench.get("adaptive"):
        raise SystemExit("pass the results of armcodec-noadapt: adaptive model_bits include the per-block offsets")
    with tempfile.TemporaryDirectory() as d:
        entry = export_model(model, Path(d), "check", bench["tile_size"])
    if entry["sha256"] != bench["weights_sha256"]:
        raise SystemExit("the benchmark was run with other weights than an export of this checkpoint")
    rows = []
    for r in bench["images"]:
        img = np.asarray(Image.open(a.data / r["image"]))
        n = img.size
        f = tiled_bits(model, img, bench["tile_size"], qat=False) / n
        q = tiled_bits(model, img, bench["tile_size"], qat=True) / n
        extra = {"pre_qat_float_bpsp": tiled_bits(pre, img, bench["tile_size"], qat=False) / n} if pre is not None else {}
        rows.append({"image": r["image"], **extra, "float_bpsp": f, "qat_float_bpsp": q, "integer_bpsp": r["model_bits"] / n, "file_bpsp": r["bpsp"]})
        print(rows[-1], flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k.endswith("bpsp")}
    mean["integer_over_float_percent"] = 100 * (mean["integer_bpsp"] / mean["float_bpsp"] - 1)
    if pre is not None:
        mean["integer_over_pre_qat_float_percent"] = 100 * (mean["integer_bpsp"] / mean["pre_qat_float_bpsp"] - 1)
    out = a.bench_json.parent / "quantization.json"
    out.write_text(json.dumps({"checkpoint_step": meta.get("step"), "weights_sha256": entry["sha256"], "mean": mean, "images": rows}, indent=1) + "\n")
    print(json.dumps(mean, indent=1))


if __name__ == "__main__":
    main()
