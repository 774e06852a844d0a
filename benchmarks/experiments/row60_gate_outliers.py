"""Whether the split of the gate layers' int8 products could shrink to a second product over a few
columns: where the decoder's gathered stream values lie beyond int8 ([-128, 127]), per step, in how
many rows and in how many of the K = n_offsets x width columns.  Decodes one file in this process
on one thread (``fused_kernels.gather_int8`` wrapped to count; the decode is otherwise as
shipped).

    python -m benchmarks.experiments.row60_gate_outliers FILE.arm [--model default]

A file from ``armcodec compress`` of kodim01's top-left 512x512 crop was row 60's.
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("file")
    ap.add_argument("--model", default="default")
    a = ap.parse_args()
    os.environ["ARMCODEC_WORKERS"] = "0"
    torch.set_num_threads(1)
    import armcodec
    from armcodec.exact import fused, fused_kernels

    fused.prepare(1 << 62)
    gather = fused_kernels.gather_int8
    stats = []  # per product: rows, K, share of values beyond int8, of rows with one, of columns with one, max |x|

    def counting(src, idx, n_off, k, out):
        x = src[idx].reshape(len(idx) // n_off, -1)
        beyond = (x < -128) | (x > 127)
        stats.append((x.shape[0], x.shape[1], beyond.mean(), beyond.any(1).mean(), beyond.any(0).mean(), np.abs(x).max()))
        return gather(src, idx, n_off, k, out)

    fused_kernels.gather_int8 = counting
    armcodec.Codec(a.model).decode(open(a.file, "rb").read())
    s = np.array(stats)
    big = s[s[:, 0] >= 64]
    print(f"{len(s)} products, K {sorted(set(s[:, 1].astype(int)))}, stream values up to {s[:, 5].max():.0f}")
    print(f"beyond int8: values {s[:, 2].mean():.4f}, rows with one {s[:, 3].mean():.3f}, columns with one {s[:, 4].mean():.3f}")
    if len(big):
        print("columns with one, steps of 64 rows or more, 10/50/90%:", np.round(np.quantile(big[:, 4], [0.1, 0.5, 0.9]), 3))


if __name__ == "__main__":
    main()
