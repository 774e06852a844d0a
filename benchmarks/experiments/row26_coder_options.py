"""What the coder's options (tile size, orientation search, residual feedback) buy in real file
bits on the validation split of the training folder (never Kodak or eval), with one set of weights.

    python benchmarks/coder_options.py ../shared/data/train --limit 6 --variants 128 256 256+orient

A variant is a tile size, optionally followed by ``+orient`` (search each tile's mirroring, picked
by the model entry's orientation proxy), ``+orient:NAME`` (picked by the float copy of model NAME)
and/or ``+nofb`` (residual feedback off), ``+noadapt`` (no adaptation offsets: no orientation or feedback either), ``+fb1`` or ``+fb2`` (the feedback's first or second
feature set, profiles 4 and 5 or 6 and 7, instead of the latest).  Every file is decoded and compared; prints file bpsp and
encode/decode seconds per image and variant, and writes benchmarks/results/coder_options.json
(or ``--out``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import armcodec
from armcodec.training.data import list_images, load_rgb, split_train_val


def codec_for(variant: str, model: str) -> armcodec.Codec:
    tile, *flags = variant.split("+")
    proxies = [f.partition(":")[2] for f in flags if f.startswith("orient")]
    unknown = {f for f in flags if not f.startswith("orient")} - {"nofb", "fb1", "fb2", "noadapt"}
    if unknown:
        raise SystemExit(f"unknown variant flags {sorted(unknown)}")
    return armcodec.Codec(model, device="cpu", tile_size=int(tile), orient=bool(proxies), adaptive="noadapt" not in flags,
                          orient_proxy=(proxies or [None])[0] or None, feedback="nofb" not in flags,
                          feedback_features=next((int(f[2]) for f in flags if f in ("fb1", "fb2")),
                                                 armcodec.api.FEEDBACK_FEATURES))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--model", default="default")
    ap.add_argument("--limit", type=int, default=6, help="validation images to use")
    ap.add_argument("--variants", nargs="+", default=["128", "256", "256+orient"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "coder_options.json")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    _, val = split_train_val(list_images(a.data))
    val = val[: a.limit]
    codecs = {v: codec_for(v, a.model) for v in a.variants}
    totals = {v: {"bits": 0, "encode_s": 0.0, "decode_s": 0.0} for v in a.variants}
    rows, subpixels = [], 0
    for path, chw in zip(val, load_rgb(val)):
        img = np.ascontiguousarray(chw.transpose(1, 2, 0))
        row = {"image": path.name, "shape": list(img.shape)}
        for v, codec in codecs.items():
            t0 = time.perf_counter()
            enc = codec.encode(img)
            t1 = time.perf_counter()
            assert np.array_equal(codec.decode(enc.data).array, img), f"{path.name}: {v} did not round-trip"
            t2 = time.perf_counter()
            row[v] = {"bpsp": len(enc.data) * 8 / img.size, "encode_s": t1 - t0, "decode_s": t2 - t1}
            for k, x in (("bits", len(enc.data) * 8), ("encode_s", t1 - t0), ("decode_s", t2 - t1)):
                totals[v][k] += x
        subpixels += img.size
        rows.append(row)
        print(f"{path.name[:36]:36} " + " ".join(f"{v} {row[v]['bpsp']:.4f} ({row[v]['encode_s']:.0f}/"
                                                 f"{row[v]['decode_s']:.0f} s)" for v in a.variants), flush=True)
    base = totals[a.variants[0]]["bits"]
    summary = {v: {"bpsp": t["bits"] / subpixels, "vs_first_percent": 100 * (t["bits"] / base - 1),
                   "encode_s": t["encode_s"], "decode_s": t["decode_s"]} for v, t in totals.items()}
    print("total " + " ".join(f"{v} {s['bpsp']:.4f} ({s['vs_first_percent']:+.2f}%, {s['encode_s']:.0f}/"
                              f"{s['decode_s']:.0f} s)" for v, s in summary.items()))
    a.out.write_text(json.dumps({"model": a.model, "images": rows, "total": summary}, indent=1) + "\n")


if __name__ == "__main__":
    main()
