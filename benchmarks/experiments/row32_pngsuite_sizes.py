"""The PngSuite through the embedding API (`Codec().encode(path)`, then decode): how many images are
accepted, and armcodec's bytes next to the same images saved by Pillow as optimised PNG; each file
decoded and compared.  `python -m benchmarks.experiments.row32_pngsuite_sizes` (writes
results/pngsuite_sizes.json)."""
import glob, io, os, numpy as np, armcodec, json
from PIL import Image
from armcodec.io.image import read_image
c=armcodec.Codec('default')
tot_arm=tot_png=tot_orig=0; n=0; refused=0; coders={}; worse=[]
for p in sorted(glob.glob('../shared/data/pngsuite/*.png')):
    try: arr, info = read_image(p)
    except armcodec.ArmcodecError: refused+=1; continue
    e=c.encode(p); d=c.decode(e.data)
    assert np.array_equal(d.array, arr), p
    im=Image.open(p); b=io.BytesIO(); im.save(b,'PNG',optimize=True); 
    tot_arm+=len(e.data); tot_png+=len(b.getvalue()); tot_orig+=os.path.getsize(p); n+=1
    coders[e.coder]=coders.get(e.coder,0)+1
    if len(e.data) > len(b.getvalue()): worse.append((os.path.basename(p), len(e.data), len(b.getvalue())))
out = {"accepted": n, "refused": refused, "armcodec_bytes": tot_arm, "pillow_optimized_png_bytes": tot_png, "original_png_bytes": tot_orig, "coders": coders, "larger_than_png": worse}
print(json.dumps(out, indent=1))
from pathlib import Path
(Path(__file__).parent / "results" / "pngsuite_sizes.json").write_text(json.dumps(out, indent=1) + "\n")
