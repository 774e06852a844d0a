"""Row 39: the tables' last division in int64 (0.3) against float64 (0.4), the same integers.

    python -m benchmarks.experiments.row39_table_division

Random 5-component head integers (weights from the lookup table, means and scales over their
whole ranges), 1K-16K rows, one and two threads, the allocator set as when coding
(:mod:`armcodec.allocator`); best of 5, the two versions interleaved.  Writes
``results/table_division.json``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from armcodec import allocator
from armcodec.exact import tables
from armcodec.exact.tables import (CDF_BITS, CDF_OFFSET, MEAN_MAX_Q, MEAN_MIN_Q, MEAN_STEPS, N_SYMBOLS, PRECISION,
                                   SCALE_MAX_IDX, SCALE_MIN_IDX, TableLUTs)


def int64_division(weights, means, scale_idx, luts):
    """``component_tables`` as 0.3 had it."""
    m = weights.shape[0]
    first = CDF_OFFSET + MEAN_STEPS // 2 - means
    cdf_inner = luts.windows[scale_idx, first % MEAN_STEPS, torch.div(first, MEAN_STEPS, rounding_mode="floor")]
    mixed = torch.bmm(weights.double().unsqueeze(1), cdf_inner).squeeze(1).long()
    total = weights.sum(1, keepdim=True) * 2**CDF_BITS
    mass = torch.diff(torch.cat([torch.zeros_like(total), mixed, total], 1), dim=1)
    q = 1 + torch.div(mass * (2**PRECISION - N_SYMBOLS), total, rounding_mode="floor")
    q[torch.arange(m), q.argmax(1)] += 2**PRECISION - q.sum(1)
    return q


def main() -> None:
    luts = TableLUTs.compute().to("cpu")
    g = torch.Generator().manual_seed(1)
    rows = []
    with allocator.coding():
        for threads in (2, 1):
            torch.set_num_threads(threads)
            for m in (1024, 4096, 16384):
                w = luts.weight[torch.randint(0, 97, (m, 5), generator=g)]
                w[:, 0] = 4096
                mu = torch.randint(MEAN_MIN_Q, MEAN_MAX_Q + 1, (m, 5), generator=g)
                s = torch.randint(0, SCALE_MAX_IDX - SCALE_MIN_IDX + 1, (m, 5), generator=g)
                if not torch.equal(int64_division(w, mu, s, luts), tables.component_tables(w, mu, s, luts)):
                    raise SystemExit("the two divisions differ")
                best = {"int64": [], "float64": []}
                for _ in range(5):
                    for name, f in (("int64", int64_division), ("float64", tables.component_tables)):
                        t = time.perf_counter()
                        f(w, mu, s, luts)
                        best[name].append(time.perf_counter() - t)
                row = {"threads": threads, "rows": m, **{f"{k}_us_per_row": round(min(v) / m * 1e6, 2) for k, v in best.items()}}
                print(row, flush=True)
                rows.append(row)
    (Path(__file__).parent / "results" / "table_division.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
