"""The PngSuite through the embedding API (`Codec().encode(path)`, then decode): how many images are
accepted, armcodec's bytes next to the same images saved by Pillow as optimised PNG (what the
issue measures against: Pillow drops text, sPLT, gAMA and other chunks armcodec keeps, and writes
16-bit RGB, LA and RGBA as 8 bits) and next to the original files; each file decoded and compared
natively (16-bit samples, palette, metadata).  Also armcodec without the metadata (pixels,
palette and transparency only), the like-for-like comparison with Pillow's output, and with
`--strip` (`Codec(strip=True)`: EXIF, XMP, text and the chunks that do not change how the pixels
look left out; gamma and colour chunks kept).  Where the file holds text or EXIF, also Pillow's
optimised PNG told to keep them (each text chunk compressed, the EXIF block as eXIf): what a PNG
that loses none of them costs next to armcodec's file, which keeps them all.
`python -m benchmarks.experiments.row32_pngsuite_sizes [preset]` (writes results/pngsuite_sizes.json)."""
import collections
import glob
import io
import json
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

import armcodec
from armcodec.api import strip_metadata
from armcodec.io import png
from armcodec.io.image import read_image

codec = armcodec.Codec(sys.argv[1] if len(sys.argv) > 1 else "default")
stripping = armcodec.Codec(codec.preset.name, strip=True)
rows, refused = [], []
for p in sorted(glob.glob("../shared/data/pngsuite/*.png")):
    name = os.path.basename(p)
    try:
        arr, info = read_image(p)
    except armcodec.ArmcodecError as e:
        refused.append((name, str(e)))
        continue
    enc = codec.encode(p)
    dec = codec.decode(enc.data)
    assert np.array_equal(dec.array, arr) and (dec.bits, dec.palette, dec.metadata) == (info.bits, info.palette, info.metadata), name
    trns = [(k, key, v) for k, key, v in info.metadata if k == "transparency"]
    bare = png.write(arr, info.bits, png.COLOUR_TYPES[info.mode], palette=info.palette,
                     trns=png.parse(Path(p).read_bytes()).trns)  # the pixels, palette and tRNS alone
    enc_bare = codec.encode(bare)
    enc_strip = stripping.encode(p)
    dec = stripping.decode(enc_strip.data)
    assert np.array_equal(dec.array, arr) and dec.metadata == strip_metadata(info.metadata), name
    im = Image.open(p)
    im.load()
    buf = io.BytesIO()
    im.save(buf, "PNG", optimize=True)
    kept = None
    if im.text or "exif" in im.info:  # Pillow's PNG with the same text and EXIF, each text chunk compressed
        text = PngImagePlugin.PngInfo()
        for key, value in im.text.items():
            latin = all(ord(c) < 256 for c in key + value)
            text.add_text(key, value, zip=True) if latin else text.add_itxt(key, value, zip=True)
        kept_buf = io.BytesIO()
        im.save(kept_buf, "PNG", optimize=True, pnginfo=text, exif=im.info.get("exif", b""))
        kept = len(kept_buf.getvalue())
    rows.append({"file": name, "layout": f"{info.mode}{info.bits}", "armcodec": len(enc.data), "coder": enc.coder,
                 "armcodec_pixels_only": len(enc_bare.data), "armcodec_strip": len(enc_strip.data),
                 "pillow_optimized_png": len(buf.getvalue()), "pillow_optimized_png_with_text_and_exif": kept,
                 "original": os.path.getsize(p), "metadata_items": len(info.metadata) - len(trns)})
tot = lambda k, rs=rows: sum(r[k] for r in rs)  # noqa: E731
eight = [r for r in rows if not r["layout"].endswith("16")]
out = {
    "preset": codec.preset.name, "accepted": len(rows), "refused": [n for n, _ in refused],
    "armcodec_bytes": tot("armcodec"), "armcodec_pixels_only_bytes": tot("armcodec_pixels_only"),
    "armcodec_strip_bytes": tot("armcodec_strip"),
    "pillow_optimized_png_bytes": tot("pillow_optimized_png"), "original_png_bytes": tot("original"),
    "up_to_8_bits": {"files": len(eight), "armcodec_pixels_only": tot("armcodec_pixels_only", eight),
                     "pillow_optimized_png": tot("pillow_optimized_png", eight),
                     "worst_excess_pixels_only": max(r["armcodec_pixels_only"] - r["pillow_optimized_png"] for r in eight)},
    "coders": dict(collections.Counter(r["coder"] for r in rows)),
    "larger_than_pillow_png_by_over_64": [(r["file"], r["armcodec"], r["pillow_optimized_png"]) for r in rows
                                          if r["armcodec"] > r["pillow_optimized_png"] + 64],
    "larger_than_pillow_png_with_text_and_exif_by_over_64": [
        (r["file"], r["armcodec"], r["pillow_optimized_png_with_text_and_exif"]) for r in rows
        if r["pillow_optimized_png_with_text_and_exif"] is not None
        and r["armcodec"] > r["pillow_optimized_png_with_text_and_exif"] + 64],
    "strip_larger_than_pillow_png_by_over_64": [(r["file"], r["armcodec_strip"], r["pillow_optimized_png"]) for r in rows
                                                if r["armcodec_strip"] > r["pillow_optimized_png"] + 64],
    "strip_worst_excess": max(r["armcodec_strip"] - r["pillow_optimized_png"] for r in rows),
    "larger_than_original": [(r["file"], r["armcodec"], r["original"]) for r in rows if r["armcodec"] > r["original"]],
    "rows": rows,
}
print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))
(Path(__file__).parent / "results" / "pngsuite_sizes.json").write_text(json.dumps(out, indent=1) + "\n")
