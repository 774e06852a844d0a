"""From what job size starting numba's compiled kernels pays (``fused.MIN_SAMPLES``): each image
is encoded then decoded in a fresh process, with the kernels started for any job (``on``) or never
(``off``), alternating; a fresh process pays the kernels' start (numba's import and cache load)
as a user's one-file ``armcodec`` call does.  Crops of kodim01 at several sizes and one eval
photograph by default.

    python -m benchmarks.experiments.row59_kernel_start ../shared/data [--model default] [--rounds 2]

Prints each run and writes ``benchmarks/experiments/results/kernel_start.json`` (or ``--out``).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

CHILD = """
import sys, time
import armcodec
from armcodec.exact import fused
fused.MIN_SAMPLES = 0 if sys.argv[2] == "on" else 1 << 62
codec = armcodec.Codec(sys.argv[3])
t = time.perf_counter(); data = codec.encode(sys.argv[1]).data; t1 = time.perf_counter()
out = codec.decode(data); t2 = time.perf_counter()
print(len(data), t1 - t, t2 - t1)
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "kernel_start.json")
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = Image.open(a.data / "kodak" / "kodim01.png").convert("RGB")
        images = []
        for s in (64, 96, 128, 256):
            p = Path(tmp) / f"kodim01_{s}.png"
            src.crop((100, 100, 100 + s, 100 + s)).save(p)
            images.append(p)
        images.append(a.data / "eval" / "cbsd68_101085.png")
        for p in images:
            w, h = Image.open(p).size
            row = {"image": p.name, "samples": w * h * 3, "on": [], "off": []}
            for r in range(a.rounds):
                for mode in (("on", "off") if r % 2 == 0 else ("off", "on")):
                    out = subprocess.run([sys.executable, "-c", CHILD, str(p), mode, a.model], capture_output=True,
                                         text=True, check=True).stdout.split()
                    size, enc, dec = int(out[0]), float(out[1]), float(out[2])
                    row[mode].append({"bytes": size, "encode_s": round(enc, 3), "decode_s": round(dec, 3)})
                    print(p.name, mode, size, f"encode {enc:.2f} s decode {dec:.2f} s", flush=True)
            rows.append(row)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"model": a.model, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
