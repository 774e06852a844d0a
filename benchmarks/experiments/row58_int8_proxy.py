"""The orientation search's proxy in int8 (``armcodec/encoder/int8_proxy.py``) against the float
proxy it replaces on a CPU whose int8 convolution is exact: per tile of the `default` preset
(512x512), each proxy's estimated bits under the four orientations, its pick and its seconds (one
thread); where the picks differ, the tile coded alone by `default` (no orientation search) under
each orientation, so the bytes each pick costs are real.  Kodak and the validation photographs
(every tenth of the training folder).

    python -m benchmarks.experiments.row58_int8_proxy ../shared/data

writes ``benchmarks/experiments/results/int8_proxy.json`` (or ``--out``).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import armcodec
from armcodec.coding.scan import tile_grid
from armcodec.encoder import search
from armcodec.encoder.int8_proxy import int8_proxy
from armcodec.exact import fused
from armcodec.io.image import read_image
from armcodec.training.data import list_images, split_train_val


def tile_rows(paths, proxies, coder) -> list[dict]:
    rows = []
    for path in paths:
        img, _ = read_image(path)
        if img.ndim != 3 or img.shape[2] != 3:
            continue
        for t in tile_grid(img.shape[0], img.shape[1], coder.tile_size):
            tile = np.ascontiguousarray(img[t.y : t.y + t.h, t.x : t.x + t.w])
            x = torch.from_numpy(tile.copy()[None]).permute(0, 3, 1, 2).float()
            row = {"image": path.name, "y": t.y, "x": t.x}
            for name, proxy in proxies.items():
                start = time.perf_counter()
                bits = [float(search.proxy_bits(proxy, search.orient(x, o), 3)) for o in range(4)]
                row[name] = {"bits": bits, "pick": int(np.argmin(np.round(np.array(bits) * 8))),
                             "seconds": time.perf_counter() - start}
            if row["float"]["pick"] != row["int8"]["pick"]:
                row["bytes"] = [len(coder.encode(np.ascontiguousarray(search.orient(
                    torch.from_numpy(tile).permute(2, 0, 1), o).permute(1, 2, 0).numpy())).data) for o in range(4)]
            rows.append(row)
            print(path.name, t.y, t.x, row["float"]["pick"], row["int8"]["pick"], row.get("bytes", ""), flush=True)
    return rows


def summary(rows: list[dict]) -> dict:
    differ = [r for r in rows if "bytes" in r]
    return {
        "tiles": len(rows), "same_pick": len(rows) - len(differ),
        "float_seconds": sum(r["float"]["seconds"] for r in rows), "int8_seconds": sum(r["int8"]["seconds"] for r in rows),
        "int8_bits_over_float_mean": float(np.mean([r["int8"]["bits"][r["float"]["pick"]] / r["float"]["bits"][r["float"]["pick"]] - 1
                                                    for r in rows])),
        "differing_tiles_bytes": {"float_pick": sum(r["bytes"][r["float"]["pick"]] for r in differ),
                                  "int8_pick": sum(r["bytes"][r["int8"]["pick"]] for r in differ),
                                  "best": sum(min(r["bytes"]) for r in differ)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path, help="the shared data folder (kodak/, train/)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "int8_proxy.json")
    args = ap.parse_args()
    fused.set_enabled(True)
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    coder = armcodec.Codec("default", orient=False)
    float_proxy = armcodec.Codec("default")._proxy_net().to(memory_format=torch.channels_last)
    proxies = {"float": float_proxy, "int8": int8_proxy(float_proxy, "cpu")}
    if proxies["int8"] is None:
        raise SystemExit("no int8 proxy here (a CPU whose int8 convolution is exact is needed)")
    sets = {"kodak": list_images(args.data / "kodak"), "validation": split_train_val(list_images(args.data / "train"))[1]}
    out = {}
    for name, paths in sets.items():
        rows = tile_rows(paths, proxies, coder)
        out[name] = {"summary": summary(rows), "rows": rows}
        print(name, json.dumps(out[name]["summary"]), flush=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
