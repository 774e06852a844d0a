#!/usr/bin/env bash
# GPU training for the open issues, after the device check (benchmarks/device_check.sh), in one
# call of the device tool: two runs side by side on the one GPU, MINUTES of training each, every
# checkpoint and log written to $OUT as it goes (a call cut short still brings them back).
#
#   temporal: the video preset's weights for grey planes (YUV planes, grey frames), trunk and
#             context layers learning, grey pairs only, from the shipped checkpoint
#             (weights/train/temporal-planes-motion2.ckpt.safetensors: temporal-planes-s4, trained on
#             motion-compensated pairs, rows 49 and 61; head grid 1/128) on a new schedule, the pairs' previous
#             frames moved by the encoder's block search (--motion) as the coder moves them (issue: video)
#   pyramid:  the multi-scale family from weights/train/pyramid5.ckpt.safetensors's weights on a
#             new schedule (--from: warm-up, new Adam moments; CPU-trained about 6 hours in six
#             runs, -0.5% in the last, 128x128 crops as here)                   (issue: multi-scale)
#
# What travels is at most 64 MiB and the tracked tree alone is ~77 MiB: first
# `bash benchmarks/device_tree.sh aside [CKPT...]` (the training checkpoints a run does not start
# from and the golden files the device tests do not read, ~31 MiB), `... back` after the call.
# The tree is then 44.2 MiB (0.18: pyramid-s5 added 3.1 MiB), which leaves ~19 MiB to carry: the
# 4 Kodak images (2.3 MiB), the wheel and the image pack at --area 0.10 (15.4 MiB: 61.9 MiB
# before the wheel; at 0.12 16.6 MiB; check with `device_tree.sh size`); the video clips (14 MB,
# and imageio-ffmpeg's 30 MB wheel to read them there) do not fit beside it, so RUNS=pyramid alone
# in that call.
#   python benchmarks/pack_train.py ../shared/data/train .pack --area 0.10   # echo .pack/ >> .git/info/exclude
#   mkdir -p .pack/video && cp ../shared/data/video-train/* ../shared/data/video/vtest.avi \
#       ../shared/data/video/cockatoo.mp4 ../shared/data/video/y4m/carphone_qcif_120f.y4m .pack/video/  # temporal
# The device check and then the pyramid run in the time left, one call (carry [".pack",
# "benchmarks/wheels", "benchmarks/gpu_images"], timeout 600):
#   S=$SECONDS; bash benchmarks/device_check.sh; E=$((SECONDS-S))
#   M=$(python3 -c "print(round(max(1.0,(580-$E-110)/60),2))")
#   RUNS=pyramid MINUTES=$M LIMIT=$((585-E)) BATCH=64 bash benchmarks/gpu_train.sh
# (LIMIT: the runs' timeout, default MINUTES * 60 + 300 s: loading, evaluations, the minutes; the
# temporal run first moves every training frame's previous frame by the block search, about 2
# minutes on one core). DEVICE=cpu MINUTES=0.1 is a dry run here: the pyramid run loads, starts
# and takes steps; on 2 shared cores the temporal run is still moving frames when the limit comes
# (alone it resumes in ~4 minutes: row 49's log).
# Back here: export with `python -m armcodec.training.video --steps 0 --out CKPT --export NAME
# --planes` and `armcodec export` (docs/TRAINING.md); new weights get new names.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_train}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-4}
PACK=${PACK:-.pack}
RUNS=${RUNS:-"temporal pyramid"}  # which runs (RUNS=pyramid: the image pack alone, when the video clips do not fit the call)
BATCH=${BATCH:-32}
LR=${LR:-2e-4}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD ARMCODEC_WEIGHTS_DIR=$PWD/weights
if [ -d benchmarks/wheels ]; then
    python3 -m pip install -q --no-deps --no-index benchmarks/wheels/*.whl 2>&1 | tail -2
fi
LIMIT=${LIMIT:-$(python3 -c "print(int($MINUTES * 60 + 300))")}  # the runs' budget: loading the data, evaluations, the minutes

if [[ " $RUNS " == *" temporal "* ]]; then
V=$PACK/video
[ -d "$V" ] || V=../shared/data/video-train  # the dry run here
CLIPS=$(ls "$V"/* | grep -v -e vtest -e cockatoo -e carphone)
for c in vtest.avi cockatoo.mp4 carphone_qcif_120f.y4m; do
    for d in "$V" ../shared/data/video ../shared/data/video/y4m; do
        [ -f "$d/$c" ] && { CLIPS="$CLIPS $d/$c@60"; break; }
    done
done
timeout "$LIMIT" python3 -m armcodec.training.video $CLIPS --max-frames 120 \
    --from weights/train/temporal-planes-motion2.ckpt.safetensors --motion --out "$OUT/temporal-planes.ckpt.safetensors" \
    --steps 1000000 --minutes "$MINUTES" --qat-steps 300 --batch 32 --crop 96 --lr 1e-4 --warmup 50 \
    --trunk-lr 0.1 --first-lr 0.1 --rgb-fraction 0 --val-every 250 --checkpoint-every 100 --device "$DEVICE" \
    > "$OUT/temporal-planes.log" 2>&1 &
fi

if [[ " $RUNS " == *" pyramid "* ]]; then
IMAGES=$PACK
[ -d "$IMAGES" ] && ls "$IMAGES"/*.webp > /dev/null 2>&1 || IMAGES=../shared/data/train
rm -f "$OUT/pyramid.ckpt.safetensors"
timeout "$LIMIT" python3 -m armcodec.training "$IMAGES" --from weights/train/pyramid5.ckpt.safetensors \
    --out "$OUT/pyramid.ckpt.safetensors" --steps 60000 --minutes "$MINUTES" --qat-steps 500 --batch "$BATCH" --crop 128 \
    --lr "$LR" --warmup 100 --val-every 500 --checkpoint-every 250 --device "$DEVICE" > "$OUT/pyramid.log" 2>&1 &
fi
wait
tail -n 3 "$OUT"/*.log
echo "gpu training done: $OUT"
