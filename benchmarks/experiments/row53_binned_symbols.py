"""Row 53: binned symbols (coder tool 5) against the flat tables.

1. The tables and ANS of one channel's samples, per call of M rows (5 components, means and scales
   of a trained model's spread): ``component_tables`` + one constriction pop of (M, 256) rows,
   against ``BinnedTables`` + a pop of (M, 16) bins, the second tables, a pop of (M, 16) values.
2. ``--floors``: the 6 speed images' file bytes with the `default` preset, flat and binned with
   each value's floor ``W >> s`` (s in 0, 1, 2, 4; 0.11 ships s = 1), and the tiny random model's
   golden sources (a model that is often wrong).

``python -m benchmarks.experiments.row53_binned_symbols [--floors]`` (writes
results/binned_symbols.json; the speed images in /tmp/k6: kodim01, 04, 09, 16, 20, 23)."""
import glob
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.utils.benchmark as tb

import armcodec
from armcodec.coding.ans import StreamDecoder, StreamEncoder
from armcodec.exact import tables as T

OUT = Path(__file__).parent / "results" / "binned_symbols.json"


def table_costs() -> list[dict]:
    torch.set_num_threads(2)
    luts = T.TableLUTs.compute().to("cpu")
    g = torch.Generator().manual_seed(0)
    rows = []
    for m in (128, 512, 2048, 8192):
        logits = torch.randint(-30, 1, (m, 5), generator=g)
        means = torch.randint(60 * 16, 200 * 16, (m, 5), generator=g)
        scales = torch.randint(10, 50, (m, 5), generator=g)
        w = T.mixture_weights(logits, None, luts)
        q = T.component_tables(w, means, scales, luts)
        x = torch.multinomial(q.double(), 1, generator=g).view(-1)
        binned = T.BinnedTables(w, means, scales, luts)
        bins, inside = binned.split(x)
        enc = StreamEncoder()
        enc.push(x.numpy(), q.numpy())
        flat_data = enc.finish()
        enc = StreamEncoder()
        enc.push(inside.numpy(), binned.second(bins).numpy())
        enc.push(bins.numpy(), binned.first().numpy())
        binned_data = enc.finish()

        def flat():
            return StreamDecoder(flat_data).pop(T.component_tables(w, means, scales, luts).numpy())

        def two():
            t, d = T.BinnedTables(w, means, scales, luts), StreamDecoder(binned_data)
            b = torch.from_numpy(d.pop(t.first().numpy()))
            return t.join((b, torch.from_numpy(d.pop(t.second(b).numpy()))))

        assert np.array_equal(flat(), x.numpy()) and torch.equal(two(), x)
        a = tb.Timer("flat()", globals={"flat": flat}).blocked_autorange(min_run_time=0.5).median
        b = tb.Timer("two()", globals={"two": two}).blocked_autorange(min_run_time=0.5).median
        rows.append({"rows": m, "flat_us": round(a * 1e6, 1), "binned_us": round(b * 1e6, 1),
                     "flat_bytes": len(flat_data), "binned_bytes": len(binned_data)})
        print(rows[-1], flush=True)
    return rows


def floors() -> dict:
    from PIL import Image

    images = [np.asarray(Image.open(p)) for p in sorted(glob.glob("/tmp/k6/*.png"))]
    tests = Path(__file__).resolve().parents[2] / "tests" / "data"
    tiny = [tests / f"{s}.png" for s in ("kodim05_rgb_37x29", "usc_sipi_6.1_gray_40x33", "kodim03_rgba_32x24",
                                          "usc_sipi_6.1_la_28x21")]
    out, shipped = {}, T.FLOOR_SHIFT
    for variant in ("flat", 0, 1, 2, 4):
        if variant != "flat":
            T.FLOOR_SHIFT = variant
        codec = armcodec.Codec("default", device="cpu", classic=False, binned=variant != "flat")
        small = armcodec.Codec("golden-tiny", device="cpu", weights_dir=tests / "golden", classic=False,
                               binned=variant != "flat")
        out[str(variant)] = {"speed_images_bytes": sum(len(codec.compress(im)) for im in images),
                             "golden_tiny_bytes": sum(len(small.compress(p)) for p in tiny)}
        print(variant, out[str(variant)], flush=True)
    T.FLOOR_SHIFT = shipped
    return out


if __name__ == "__main__":
    result = json.loads(OUT.read_text()) if OUT.exists() else {}
    result["table_and_ans_per_call"] = table_costs()
    if "--floors" in sys.argv:
        result["floors"] = floors()
    OUT.write_text(json.dumps(result, indent=1))
