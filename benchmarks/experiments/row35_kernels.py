"""Which integer products should run where: the float kernel (integer-valued float32 ``addmm``)
against the int8 kernel (``torch._int_mm``, inputs split into int8 halves where wider), both
computing the same integers (tests/test_kernels.py), at the default model's decoder shapes and over
a whole encoder pass.

    python -m benchmarks.experiments.row35_kernels [--device cpu|cuda] [--out FILE] [--every-layer]

Per layer kind of pixelcnn-l (gate: 5 offsets x 128 -> 256 from the 10-bit residual stream, split
in two int8 products; mix 128 -> 128 and head_out 192 -> 75 from int8-range inputs; head_hidden 128
-> 192, 10-bit) and rows M (a decoder step is 86-257 pixels of a 512 tile, the encoder's chunks
1024): the median time of ``IntConv.acc`` with each kernel, conversions included.  Then the
parameters of one encoder pass over a 96x96 crop of kodim23 (kodim01 on the device machine) with each kernel (checked equal).
Writes the JSON next to this script (``results/kernels_<device>.json``) unless ``--out``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import armcodec
from armcodec.coding.scan import Schedule, tile_grid
from armcodec.exact import kernels
from armcodec.models.pixelcnn_exact import WavefrontState

HERE = Path(__file__).parent


def timed(fn, sync, repeats: int) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def layer_table(net, device, sync, rows=(96, 256, 1024, 4096), repeats=7) -> list[dict]:
    out = []
    for kind, layer in (("gate", net.gates[0]), ("mix", net.mixes[0]), ("head_hidden", net.head_hidden), ("head_out", net.head_out)):
        for m in rows:
            x = torch.randint(-layer.in_max, layer.in_max + 1, (m, layer.weight.shape[0]), device=device).float()
            rec = {"layer": kind, "M": m, "K": layer.weight.shape[0], "N": layer.weight.shape[1], "in_max": layer.in_max}
            for name in ("float", "int8"):
                with kernels.using(name):
                    rec[f"{name}_us"] = round(timed(lambda: layer.acc(x), sync, repeats) * 1e6, 1)
            rec["int8_speedup"] = round(rec["float_us"] / rec["int8_us"], 3)
            out.append(rec)
            print(rec, flush=True)
    return out


def every_layer(device, sync, rows=(32, 96, 256, 700, 2048), repeats=15) -> list[dict]:
    """Every distinct layer shape of the image presets (default, fast, pyramid) at decoder-like
    rows, float against int8 asked for, and what ``auto`` picks (the thresholds of
    :func:`armcodec.exact.kernels.use_int8`)."""
    out = []
    for preset in ("default", "fast", "pyramid"):
        seen = set()
        for name, layer in armcodec.Codec(preset, device=device).model.net.layers().items():
            k, n = layer.weight.shape
            if (k, n, layer.in_max) in seen:
                continue
            seen.add((k, n, layer.in_max))
            for m in rows:
                x = torch.randint(-layer.in_max, layer.in_max + 1, (m, k), device=device).float()
                rec = {"preset": preset, "layer": name, "M": m, "K": k, "N": n, "in_max": layer.in_max}
                for kern in ("float", "int8"):
                    with kernels.using(kern):
                        rec[f"{kern}_us"] = round(timed(lambda: layer.acc(x), sync, repeats) * 1e6, 1)
                rec["int8_speedup"] = round(rec["float_us"] / rec["int8_us"], 3)
                rec["auto_int8"] = kernels.use_int8(device, m, k, n, layer.in_max)
                out.append(rec)
                print(rec, flush=True)
    return out


def encoder_pass(net, device, sync, size=96) -> dict:
    root = Path(__file__).resolve().parents[2]
    found = [p for p in (root.parent / "shared/data/kodak/kodim23.png", root / "benchmarks/gpu_images/kodim01.png") if p.exists()]
    img = np.asarray(Image.open(found[0]).convert("RGB"))[:size, :size]  # the device machine has no ../shared
    tiles = tile_grid(size, size, size)
    sched = Schedule(tiles, net, size)
    ys = np.array([t.y for t in tiles])[sched.n] + sched.i
    xs = np.array([t.x for t in tiles])[sched.n] + sched.j
    vals = torch.from_numpy(img[ys, xs].astype(np.int64)).to(device)
    rec, params = {"pixels": size * size}, {}
    for name in ("float", "int8"):
        with kernels.using(name):
            def run():
                state = WavefrontState(net, len(tiles), size, device)
                pos = state.flat_index(sched.n, sched.i, sched.j)
                state.write_pixels(pos, vals)
                params[name] = net.run(state, pos, single_pass=True)
            rec[f"{name}_s"] = round(timed(run, sync, 3), 4)
    rec["same_parameters"] = bool(torch.equal(params["float"], params["int8"]))
    print(rec, flush=True)
    return rec


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--every-layer", action="store_true", help="also every layer shape of default, fast and pyramid")
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    net = armcodec.Codec(device=device).model.net
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cpu_int8_dot": kernels.cpu_has_int8_dot(),
        "int8_exact": kernels.int8_exact(device), "threads": torch.get_num_threads(), "torch": torch.__version__,
        "auto_picks": kernels.kernel_for(device),
    }
    print(result, flush=True)
    result["layers"] = layer_table(net, device, sync)
    result["encoder_pass"] = encoder_pass(net, device, sync)
    if a.every_layer:
        result["every_layer"] = every_layer(device, sync)
    out = a.out or HERE / "results" / f"kernels_{device.type}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", out)


if __name__ == "__main__":
    main()
