"""What the ANS coder costs per symbol, and whether independent streams can run on several threads
(the multi-scale issue: "the coder must keep up").

    python -m benchmarks.experiments.row36_coder_cost [--out FILE]

Tables like the model's (discretized logistic mixtures built by ``armcodec.exact.tables`` from
random head integers), coded through ``armcodec.coding.ans`` (constriction 0.5,
``Categorical(perfect=False)`` from (M, 256) float64 rows): encode and decode seconds per symbol
at M = 64 .. 65536 symbols per call, the share of the row conversion, then constriction's
``QuantizedGaussian`` (scalar parameters per symbol; not our tables, a speed reference), and two
streams decoded by two Python threads at once against one after the other (whether constriction
releases the interpreter lock).  Writes ``results/coder_cost.json`` unless ``--out``.
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import constriction
import numpy as np
import torch

from armcodec.coding.ans import StreamDecoder, StreamEncoder, _rows
from armcodec.exact.tables import TableLUTs, component_tables, symbol_counts

HERE = Path(__file__).parent


def model_like_tables(m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(M, 256) int64 tables of 5-component mixtures with spread-out means and scales, and a
    symbol drawn from each."""
    gen = torch.Generator().manual_seed(seed)
    luts = TableLUTs.compute().to("cpu")
    weights = torch.randint(1, 4097, (m, 5), generator=gen)
    means = torch.randint(16 * 10, 16 * 245, (m, 1), generator=gen) + torch.randint(-40, 41, (m, 5), generator=gen)
    scale_idx = torch.randint(20, 60, (m, 5), generator=gen)
    q = component_tables(weights, means, scale_idx, luts)
    cdf = q.double().cumsum(1) / q.sum(1, keepdim=True)
    symbols = torch.searchsorted(cdf, torch.rand(m, 1, generator=gen, dtype=torch.float64)).clamp(max=255).view(-1)
    assert bool((symbol_counts(q, symbols) > 0).all())
    return q.numpy(), symbols.numpy()


def best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def per_call_sizes(total: int = 65536) -> list[dict]:
    q, s = model_like_tables(total)
    out = []
    for m in (64, 256, 1024, 4096, 65536):
        calls = total // m

        def encode():
            enc = StreamEncoder()
            for k in reversed(range(calls)):
                enc.push(s[k * m : (k + 1) * m], q[k * m : (k + 1) * m])
            return enc.finish()

        data = encode()

        def decode():
            dec = StreamDecoder(data)
            for k in range(calls):
                dec.pop(q[k * m : (k + 1) * m])

        def convert():  # each call's rows, dropped as the coder drops them
            for k in range(calls):
                _rows(q[k * m : (k + 1) * m])

        rows = best(convert)
        rec = {"symbols_per_call": m, "encode_us_per_symbol": best(encode) / total * 1e6,
               "decode_us_per_symbol": best(decode) / total * 1e6, "row_conversion_us_per_symbol": rows / total * 1e6,
               "bits_per_symbol": len(data) * 8 / total}
        out.append({k: round(v, 4) if isinstance(v, float) else v for k, v in rec.items()})
        print(out[-1], flush=True)
    return out


def gaussian_reference(total: int = 65536) -> dict:
    rng = np.random.default_rng(0)
    means = rng.uniform(10, 245, total)
    stds = rng.uniform(1, 20, total)
    symbols = np.clip(np.rint(rng.normal(means, stds)), 0, 255).astype(np.int32)
    family = constriction.stream.model.QuantizedGaussian(0, 255)

    def encode():
        c = constriction.stream.stack.AnsCoder()
        c.encode_reverse(symbols, family, means, stds)
        return c

    coder = encode()
    words = coder.get_compressed()
    dec = best(lambda: constriction.stream.stack.AnsCoder(words).decode(family, means, stds))
    return {"encode_us_per_symbol": round(best(encode) / total * 1e6, 4), "decode_us_per_symbol": round(dec / total * 1e6, 4)}


def two_threads(total: int = 131072, m: int = 1024) -> dict:
    q, s = model_like_tables(total, seed=1)
    half = total // 2
    streams = []
    for part in (slice(0, half), slice(half, total)):
        enc = StreamEncoder()
        qq, ss = q[part], s[part]
        for k in reversed(range(half // m)):
            enc.push(ss[k * m : (k + 1) * m], qq[k * m : (k + 1) * m])
        streams.append((enc.finish(), qq))

    def decode(data, qq):
        dec = StreamDecoder(data)
        for k in range(half // m):
            dec.pop(qq[k * m : (k + 1) * m])

    serial = best(lambda: [decode(*st) for st in streams])

    def parallel():
        ts = [threading.Thread(target=decode, args=st) for st in streams]
        [t.start() for t in ts]
        [t.join() for t in ts]

    par = best(parallel)
    return {"symbols": total, "symbols_per_call": m, "serial_s": round(serial, 4), "two_threads_s": round(par, 4),
            "speedup": round(serial / par, 3)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=HERE / "results" / "coder_cost.json")
    a = ap.parse_args(argv)
    result = {"constriction": constriction.__version__ if hasattr(constriction, "__version__") else "0.5.0",
              "per_call": per_call_sizes()}
    result["quantized_gaussian"] = gaussian_reference()
    print(result["quantized_gaussian"], flush=True)
    result["two_streams"] = two_threads()
    print(result["two_streams"], flush=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n")
    print("wrote", a.out)


if __name__ == "__main__":
    main()
