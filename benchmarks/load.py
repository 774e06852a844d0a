"""Coding next to a busy program: does armcodec degrade in proportion to the CPU it can get?

    python -m benchmarks.load                      # kodim23's 192x128 top-left crop, 3 decodes each
    python -m benchmarks.load --image x.png --crop 256x192 --repeats 5 --busy 1

In one process with the model loaded: the crop is encoded and decoded ``--repeats`` times each
idle and ``--repeats`` times each while ``--busy`` single-threaded busy loops (other processes) run,
both with the thread budget (:mod:`armcodec.threads`, the default) and with a fixed thread count
(the budget's looks switched off: what 0.2 did).  Every encode gives the same bytes and every
decode the image.  Writes
``benchmarks/results/load/load.json`` and prints the medians and their ratio to the idle median.
Run it alone: another CPU-heavy job is exactly the load it measures.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import armcodec
from armcodec import threads
from benchmarks.bench import DEFAULT_OUT, environment

BUSY_LOOP = "while True: pass"


def times(codec, data: bytes, image: np.ndarray, repeats: int) -> dict[str, list[float]]:
    out = {"encode": [], "decode": []}
    for _ in range(repeats):
        t = time.perf_counter()
        same = codec.encode(image).data == data
        out["encode"].append(time.perf_counter() - t)
        t = time.perf_counter()
        got = codec.decode(data).array
        out["decode"].append(time.perf_counter() - t)
        if not same or not np.array_equal(got.reshape(image.shape), image):
            raise SystemExit("load: an encode or decode changed under load")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", type=Path, default=Path("../shared/data/kodak/kodim23.png"))
    ap.add_argument("--crop", default="192x128", help="WxH from the top-left corner")
    ap.add_argument("--model", default="default")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--busy", type=int, default=1, help="busy single-threaded processes during the loaded decodes")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT / "load")
    a = ap.parse_args(argv)
    w, h = (int(v) for v in a.crop.split("x"))
    with Image.open(a.image) as im:
        image = np.ascontiguousarray(np.asarray(im.convert("RGB"))[:h, :w])
    codec = armcodec.Codec(a.model, "cpu")
    data = codec.encode(image).data
    codec.decode(data)  # warm: weights, lookup tables, allocator
    result = {"image": str(a.image), "crop": a.crop, "model": a.model, "repeats": a.repeats, "busy": a.busy,
              "environment": environment("cpu", torch.get_num_threads()), "modes": {}}
    saved = threads.FIRST_LOOK, threads.INTERVAL
    for mode in ("budget", "fixed"):
        threads.FIRST_LOOK, threads.INTERVAL = saved if mode == "budget" else (float("inf"), float("inf"))
        idle = times(codec, data, image, a.repeats)
        procs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(a.busy)]
        try:
            time.sleep(0.5)
            loaded = times(codec, data, image, a.repeats)
        finally:
            for p in procs:
                p.kill()
                p.wait()
        result["modes"][mode] = {}
        for what in ("encode", "decode"):
            r = {"idle_s": idle[what], "loaded_s": loaded[what], "idle_median_s": statistics.median(idle[what]),
                 "loaded_median_s": statistics.median(loaded[what])}
            r["ratio"] = r["loaded_median_s"] / r["idle_median_s"]
            result["modes"][mode][what] = r
            print(f"{mode:>6} {what}: idle {r['idle_median_s']:.2f} s, next to {a.busy} busy loop(s) "
                  f"{r['loaded_median_s']:.2f} s ({r['ratio']:.2f}x)  [{', '.join(f'{t:.2f}' for t in loaded[what])}]",
                  flush=True)
    threads.FIRST_LOOK, threads.INTERVAL = saved
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "load.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
