#!/usr/bin/env bash
# The device check: one call of the device tool on a lent GPU machine, at most about 8 minutes.
#
# Prepare here (the machine has PyTorch but not constriction, and no network):
#   python -m pip download constriction==0.5.0 --python-version 3.12 --only-binary=:all: \
#       --platform manylinux_2_17_x86_64 --no-deps -d benchmarks/wheels
#   mkdir -p benchmarks/gpu_images && cp ../shared/data/kodak/kodim0[1-4].png benchmarks/gpu_images/
# then `bash benchmarks/device_tree.sh aside` (the tracked tree is over the 64 MiB a call carries;
# `... back` after the call) and run with carry ["benchmarks/wheels", "benchmarks/gpu_images"]
# (both ignored by git; benchmarks/gpu_train.sh has the one call that runs this and a training run):
#   bash benchmarks/device_check.sh
# and copy $OUT/device_check.json to benchmarks/results/gpu/.  DEVICE=cpu runs the same steps on
# the CPU (a dry run of this script; small images from tests/data when gpu_images is missing;
# CORPUS=1 runs the corpus step too, CPU against CPU).
#
# Steps: (1) the CUDA tests (tests/test_cuda.py: int8 and float kernels on the GPU) and the
# exactness tests; (2) encode and decode throughput of the default and fast presets, the model
# loaded, every decode compared, with the kernel auto picks (int8 on CUDA) and a float-kernel
# decode of the first image beside it; (3) a cross-device corpus: every file written on the device
# decodes on the CPU bit for bit, every file written on the CPU decodes on the device, and both
# write the same bytes; (4) the kernel study (benchmarks/experiments/row35_kernels.py) on the GPU
# and on the machine's CPU (VNNI/AMX or not: the project's own CPU differs between sessions; row 46).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device_check}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD ARMCODEC_WEIGHTS_DIR=$PWD/weights
if [ -d benchmarks/wheels ]; then
    python3 -m pip install -q --no-deps --no-index benchmarks/wheels/*.whl 2>&1 | tail -2
fi
python3 -c "import torch, constriction; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" | tee "$OUT/env.txt"

if [ "$DEVICE" = cuda ]; then
    timeout 150 python3 -m pytest -q tests/test_cuda.py tests/test_kernels.py -p no:cacheprovider 2>&1 | tee "$OUT/pytest.log" | tail -5
fi

timeout ${THROUGHPUT_S:-240} python3 - "$OUT" "$DEVICE" <<'EOF'
import glob, json, os, subprocess, sys, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import armcodec

out, device = Path(sys.argv[1]), sys.argv[2]
paths = sorted(glob.glob("benchmarks/gpu_images/*.png")) or sorted(glob.glob("tests/data/*.png"))[:6]
images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
mp = sum(a.shape[0] * a.shape[1] for a in images) / 1e6
sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
result = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "commit": commit,
          "torch": torch.__version__, "images": paths, "megapixels": mp, "presets": {}, "corpus": {}}
for preset in [p for p in ("fast", "pyramid", "default") if p in {m.name for m in armcodec.list_models()}]:
    dev, cpu = armcodec.Codec(preset, device), armcodec.Codec(preset, "cpu")
    dev.decode(dev.encode(images[0][:64, :64]).data)  # warm: weights, kernels
    sync(); t = time.perf_counter()
    files = [dev.encode(a).data for a in images]
    sync(); enc = time.perf_counter() - t
    back, times = [], []
    for f in files:
        t = time.perf_counter()
        back.append(dev.decode(f).array)
        sync(); times.append(time.perf_counter() - t)
    dec = sum(times)
    exact = all(np.array_equal(b.reshape(a.shape), a) for a, b in zip(images, back))
    bpsp = sum(len(f) * 8 for f in files) / sum(a.size for a in images)
    result["presets"][preset] = {"kernel": dev.kernel_in_use, "encode_s": enc, "decode_s": dec, "encode_mp_per_s": mp / enc,
                                 "decode_mp_per_s": mp / dec, "bpsp": bpsp, "exact": exact}
    if device != "cpu":  # the first image again with the float kernel
        flt = armcodec.Codec(preset, device, kernel="float")
        t = time.perf_counter()
        same = np.array_equal(flt.decode(files[0]).array.reshape(images[0].shape), images[0])
        sync(); result["presets"][preset]["first_image_decode_s"] = {dev.kernel_in_use: times[0], "float": time.perf_counter() - t,
                                                                     "float_exact": same}
    print(preset, result["presets"][preset], flush=True)
    if device != "cpu" or os.environ.get("CORPUS"):  # the cross-device corpus on 128x128 crops (CPU: the slow side)
        mismatches = 0
        for a in images:
            a = np.ascontiguousarray(a[:128, :128])
            f, g = dev.encode(a).data, cpu.encode(a).data
            mismatches += (g != f) + (not np.array_equal(cpu.decode(f).array.reshape(a.shape), a))
            mismatches += not np.array_equal(dev.decode(g).array.reshape(a.shape), a)
        result["corpus"][preset] = {"files": len(files), "mismatches": int(mismatches)}
        print(preset, "corpus", result["corpus"][preset], flush=True)
    (out / "device_check.json").write_text(json.dumps(result, indent=1) + "\n")
EOF
timeout 60 python3 -m benchmarks.experiments.row35_kernels --device "$DEVICE" --out "$OUT/kernels_$DEVICE.json" 2>&1 | tail -3
if [ "$DEVICE" != cpu ] && python3 -c "import sys; from armcodec.exact import kernels; sys.exit(not kernels.cpu_has_int8_dot())"; then
    timeout 60 python3 -m benchmarks.experiments.row35_kernels --device cpu --out "$OUT/kernels_cpu.json" 2>&1 | tail -3
fi
echo "device check done: $OUT/device_check.json"
