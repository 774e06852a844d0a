"""16-bit images: armcodec (default preset: the model on high and low bytes, or the classic PNG
stream, whichever is smaller) next to PNG (libpng level 9), JPEG-XL lossless (e7, e9), JPEG 2000
reversible and JPEG-LS, all through imagecodecs on the same uint16 arrays; every file decoded and
compared.  bpsp: bits per 16-bit sample, whole files.

The images are real scientific and medical 16-bit images that ship inside Python packages (no
download at run time; `pip install pydicom==3.0.2 nibabel==5.4.2`): pydicom's test files CT_small
(128x128 CT), MR_small (64x64 MR) and examples_overlay (484x300 MR, 12 bits stored), and nibabel's
test data example4d (an fMRI volume, slice 12 of frame 0, 128x96) and anatomical.nii (a T1 MR
volume, its middle slice).  Signed samples are shifted by their minimum into uint16, as a PNG
export would.  `python -m benchmarks.experiments.row33_sixteen_bit` (writes results/sixteen_bit.json)."""
import json
import os
import time
from pathlib import Path

import imagecodecs
import numpy as np

import armcodec


def images() -> dict:
    import nibabel
    import pydicom
    from pydicom.data import get_testdata_file

    out = {}
    for name in ("CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm"):
        out[name] = pydicom.dcmread(get_testdata_file(name)).pixel_array
    data = Path(os.path.dirname(nibabel.__file__)) / "tests" / "data"
    out["example4d.nii.gz[:, :, 12, 0]"] = np.asarray(nibabel.load(data / "example4d.nii.gz").dataobj)[:, :, 12, 0]
    vol = np.asarray(nibabel.load(data / "anatomical.nii").dataobj)
    out["anatomical.nii (middle slice)"] = vol[:, :, vol.shape[2] // 2]
    for k, a in out.items():
        a = np.asarray(a).astype(np.int64)
        out[k] = np.ascontiguousarray((a - min(a.min(), 0)).astype(np.uint16))
    return out


CODECS = {
    "PNG (libpng level 9)": (lambda a: imagecodecs.png_encode(a, level=9), imagecodecs.png_decode),
    "JPEG-XL lossless e7": (lambda a: imagecodecs.jpegxl_encode(a, lossless=True, effort=7), imagecodecs.jpegxl_decode),
    "JPEG-XL lossless e9": (lambda a: imagecodecs.jpegxl_encode(a, lossless=True, effort=9), imagecodecs.jpegxl_decode),
    "JPEG 2000 reversible": (lambda a: imagecodecs.jpeg2k_encode(a, level=0, reversible=True), imagecodecs.jpeg2k_decode),
    "JPEG-LS": (lambda a: imagecodecs.jpegls_encode(a, level=0), imagecodecs.jpegls_decode),
}


def main() -> None:
    codec = armcodec.Codec("default", "cpu")
    rows = []
    for name, a in images().items():
        row = {"image": name, "size": f"{a.shape[1]}x{a.shape[0]}", "max": int(a.max())}
        t = time.perf_counter()
        enc = codec.encode(a)
        assert np.array_equal(codec.decompress(enc.data), a), name
        row["armcodec default"] = {"bytes": len(enc.data), "coder": enc.coder, "seconds": round(time.perf_counter() - t, 2)}
        for cname, (encode, decode) in CODECS.items():
            data = encode(a)
            assert np.array_equal(np.asarray(decode(data)).reshape(a.shape), a), (name, cname)
            row[cname] = {"bytes": len(data)}
        rows.append(row)
        print(json.dumps(row))
    names = ["armcodec default"] + list(CODECS)
    n = sum(int(np.prod(images()[r["image"]].shape)) for r in rows)
    total = {c: sum(r[c]["bytes"] for r in rows) for c in names}
    summary = {c: {"bytes": total[c], "bpsp": round(8 * total[c] / n, 3)} for c in names}
    print(json.dumps(summary, indent=1))
    out = Path(__file__).parent / "results" / "sixteen_bit.json"
    out.write_text(json.dumps({"samples": n, "summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
