"""Palette images: how armcodec codes them, measured.  Kodak crops (256x256 from the centre of
kodim01, 04, 09, 16, 20, 23) quantized by Pillow to 256 and to 16 colours, with and without
Floyd-Steinberg dithering, saved as PNG; armcodec (default preset) with its choice (the model on
the palette colours, the classic PNG stream of the indices, or WebP of the colours), the model
alone, next to Pillow's optimised PNG and lossless WebP of the same image.  Each armcodec file
decoded and compared (indices, palette).
`python -m benchmarks.experiments.row34_palette` (writes results/palette.json)."""
import collections
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

import armcodec

NAMES = ["kodim01", "kodim04", "kodim09", "kodim16", "kodim20", "kodim23"]


def main() -> None:
    auto, model = armcodec.Codec("default", "cpu"), armcodec.Codec("default", "cpu", classic=False)
    rows = []
    for name in NAMES:
        im = Image.open(f"../shared/data/kodak/{name}.png").convert("RGB")
        w, h = im.size
        crop = im.crop((w // 2 - 128, h // 2 - 128, w // 2 + 128, h // 2 + 128))
        for colours in (256, 16):
            for dither in (Image.Dither.NONE, Image.Dither.FLOYDSTEINBERG):
                palette = crop.quantize(colours)  # Pillow dithers only towards a given palette
                p = crop.quantize(palette=palette, dither=dither)
                buf = io.BytesIO()
                p.save(buf, "PNG", optimize=True)
                png = buf.getvalue()
                webp = io.BytesIO()
                p.convert("RGB").save(webp, "WEBP", lossless=True, method=6, quality=100)
                row = {"image": name, "colours": colours, "dither": dither != Image.Dither.NONE,
                       "pillow_png": len(png), "webp_m6": len(webp.getvalue())}
                for label, codec in (("armcodec", auto), ("armcodec_model_only", model)):
                    enc = codec.encode(png)
                    dec = codec.decode(enc.data)
                    assert np.array_equal(dec.array[:, :, 0], np.asarray(p)) and dec.palette == bytes(p.getpalette("RGB"))
                    row[label], row[f"{label}_coder"] = len(enc.data), enc.coder
                rows.append(row)
                print(json.dumps(row))
    groups = collections.defaultdict(list)
    for r in rows:
        groups[f"{r['colours']} colours, {'dithered' if r['dither'] else 'not dithered'}"].append(r)
    summary = {g: {k: sum(r[k] for r in rs) for k in ("armcodec", "armcodec_model_only", "pillow_png", "webp_m6")} |
               {"coders": dict(collections.Counter(r["armcodec_coder"] for r in rs))} for g, rs in groups.items()}
    print(json.dumps(summary, indent=1))
    (Path(__file__).parent / "results" / "palette.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
