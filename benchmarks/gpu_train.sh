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
#   pyramid:  the multi-scale family resumed from weights/train/pyramid4.ckpt.safetensors
#             (CPU-trained about 5 hours in five runs; flat on the CPU)             (issue: multi-scale)
#
# Prepare here (.pack is ignored by git; about 40 MB; carry [".pack", "benchmarks/wheels"]):
#   python benchmarks/pack_train.py ../shared/data/train .pack --area 0.5
#   mkdir -p .pack/video && cp ../shared/data/video-train/* ../shared/data/video/vtest.avi \
#       ../shared/data/video/cockatoo.mp4 ../shared/data/video/y4m/carphone_qcif_120f.y4m .pack/video/
# There: MINUTES=4 bash benchmarks/gpu_train.sh, a call of its own (the runs stop after MINUTES * 60
# + 300 s: one call is at most 600 s; the temporal run first moves every training frame's
# previous frame by the block search, about 2 minutes on one core). DEVICE=cpu MINUTES=0.1 is a dry
# run here: the pyramid run loads, resumes and takes steps; on 2 shared cores the temporal run is
# still moving frames when the limit comes (alone it resumes in ~4 minutes: row 49's log).
# Back here: export with `python -m armcodec.training.video --steps 0 --out CKPT --export NAME
# --planes` and `armcodec export` (docs/TRAINING.md); new weights get new names.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_train}
DEVICE=${DEVICE:-cuda}
MINUTES=${MINUTES:-4}
PACK=${PACK:-.pack}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD ARMCODEC_WEIGHTS_DIR=$PWD/weights
if [ -d benchmarks/wheels ]; then
    python3 -m pip install -q --no-deps --no-index benchmarks/wheels/*.whl 2>&1 | tail -2
fi
LIMIT=$(python3 -c "print(int($MINUTES * 60 + 300))")  # the runs' budget: loading the data, evaluations, the minutes

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

IMAGES=$PACK
[ -d "$IMAGES" ] && ls "$IMAGES"/*.webp > /dev/null 2>&1 || IMAGES=../shared/data/train
cp weights/train/pyramid4.ckpt.safetensors "$OUT/pyramid.ckpt.safetensors"
timeout "$LIMIT" python3 -m armcodec.training "$IMAGES" --architecture polyphase-pyramid \
    --out "$OUT/pyramid.ckpt.safetensors" --steps 60000 --minutes "$MINUTES" --qat-steps 500 --batch 32 --crop 128 \
    --lr 5e-4 --warmup 100 --val-every 500 --checkpoint-every 250 --device "$DEVICE" > "$OUT/pyramid.log" 2>&1 &
wait
tail -n 3 "$OUT"/*.log
echo "gpu training done: $OUT"
