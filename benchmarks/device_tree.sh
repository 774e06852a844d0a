#!/usr/bin/env bash
# What travels to the device machine: at most 64 MiB (tracked files, untracked files git does not
# ignore, the carried paths), and the tracked tree alone is ~77 MiB (weights/ 66 MiB, of which the
# training checkpoints weights/train/ 29 MiB).  Before a call of the device tool, move aside what the
# device check and the training runs do not read; after it, put it back:
#
#   bash benchmarks/device_tree.sh aside [KEEP...]   # KEEP: checkpoints under weights/train/ a run starts from
#   bash benchmarks/device_tree.sh size .pack benchmarks/wheels benchmarks/gpu_images   # MiB that would travel
#   bash benchmarks/device_tree.sh back
#
# Aside: weights/train/* but KEEP (default: pyramid5.ckpt.safetensors, what benchmarks/gpu_train.sh's
# pyramid run starts from), the golden tiny model and the golden video files (tests/test_cuda.py and
# tests/test_kernels.py, the device check's tests, read neither).  Every shipped weights file stays:
# tests/test_cuda.py checks each shipped layer's int8 products.
set -euo pipefail
cd "$(dirname "$0")/.."
STORE=${STORE:-/tmp/armcodec-device-aside}
case "${1:-}" in
aside)
    shift
    keep=("${@:-pyramid5.ckpt.safetensors}")
    mkdir -p "$STORE/weights/train" "$STORE/tests/data/golden"
    for f in weights/train/*; do
        [[ " ${keep[*]} " == *" $(basename "$f") "* ]] || mv "$f" "$STORE/weights/train/"
    done
    mv tests/data/golden/golden-tiny.safetensors tests/data/golden/video "$STORE/tests/data/golden/"
    echo "aside in $STORE; put back with: bash benchmarks/device_tree.sh back" ;;
back)
    cp -a "$STORE/weights/train/." weights/train/
    cp -a "$STORE/tests/data/golden/." tests/data/golden/
    rm -rf "$STORE"
    git status --short ;;
size)
    shift
    python3 - "$@" <<'PY'
import os, subprocess, sys
files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True, check=True).stdout.split(b"\0")
tree = sum(os.path.getsize(f) for f in files if f and os.path.isfile(f))
carried = sum(os.path.getsize(os.path.join(r, f)) for d in sys.argv[1:] for r, _, fs in os.walk(d) for f in fs)
print(f"tree {tree / 2**20:.1f} MiB + carried {carried / 2**20:.1f} MiB = {(tree + carried) / 2**20:.1f} MiB (limit 64)")
PY
    ;;
*)
    echo "usage: $0 aside [KEEP...] | back | size [CARRIED...]" >&2; exit 2 ;;
esac
