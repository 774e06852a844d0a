"""How the integer tables' cost per row depends on how many rows one call builds, and whether
summing the weighted CDF windows with ``embedding_bag`` (from an overlapping rows view of the
lookup table, nothing copied) beats gathering the (M, K, 255) windows and ``bmm``.

    python -m benchmarks.experiments.row50_table_rows [--out FILE]

Random mixtures of 5 components (the shipped models' K) on a CPU with 2 threads: microseconds per
row of the windows' weighted sum either way, and of the whole ``component_tables`` when one call
gets M rows (M up to 16,384: a pyramid pass's part, :data:`armcodec.coding.scan.CHUNK_PIXELS` is
8,192) as it is (parts of ``TABLE_ROWS``) and as it was (one gather over all M rows).  Every
variant gives the same integers (checked here; tests/test_tables.py checks the parts).  Writes
``results/table_rows.json`` unless ``--out``.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from armcodec.exact import tables as T

HERE = Path(__file__).parent


def inputs(m: int, k: int = 5, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    luts = LUTS
    w = T.mixture_weights(torch.randint(-40, 40, (m, k), generator=g), None, luts)
    means = torch.randint(T.MEAN_MIN_Q, T.MEAN_MAX_Q + 1, (m, k), generator=g)
    scale_idx = torch.randint(0, T.SCALE_MAX_IDX - T.SCALE_MIN_IDX + 1, (m, k), generator=g)
    return w, means, scale_idx


def per_row_us(fn, m: int, total: int = 40_000) -> float:
    fn()
    reps = max(3, total // m)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t) / reps)
    return round(best / m * 1e6, 3)


def as_it_was(w, means, scale_idx):
    """component_tables before row 50: one call, the gather over every row at once."""
    saved = T.TABLE_ROWS, T.SUMMED_WINDOWS_MIN_ROWS
    T.TABLE_ROWS = T.SUMMED_WINDOWS_MIN_ROWS = 1 << 30
    try:
        return T.component_tables(w, means, scale_idx, LUTS)
    finally:
        T.TABLE_ROWS, T.SUMMED_WINDOWS_MIN_ROWS = saved


LUTS = T.TableLUTs.compute().to("cpu")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=HERE / "results" / "table_rows.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for m in (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384):
        w, means, scale_idx = inputs(m)
        wd = w.double()
        assert torch.equal(T.mix_windows(wd, means, scale_idx, LUTS, gather=True), T.mix_windows(wd, means, scale_idx, LUTS, gather=False))
        assert torch.equal(T.component_tables(w, means, scale_idx, LUTS), as_it_was(w, means, scale_idx))
        rec = {
            "rows": m,
            "mix_gather_us": per_row_us(lambda: T.mix_windows(wd, means, scale_idx, LUTS, gather=True), m),
            "mix_embedding_bag_us": per_row_us(lambda: T.mix_windows(wd, means, scale_idx, LUTS, gather=False), m),
            "tables_before_us": per_row_us(lambda: as_it_was(w, means, scale_idx), m),
            "tables_now_us": per_row_us(lambda: T.component_tables(w, means, scale_idx, LUTS), m),
        }
        rows.append(rec)
        print(rec, flush=True)
    out = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__, "threads": 2,
           "table_rows": T.TABLE_ROWS, "summed_windows_min_rows": T.SUMMED_WINDOWS_MIN_ROWS, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
