"""Row 43: where the temporal model's quantization-aware graph loses against float, on row 40's
grey validation pairs: the QAT graph with each group of activation grids left unrounded (the
weights stay int8: the checkpoint was tuned for them).

`python -m benchmarks.experiments.row43_qat_gap runs/temporal_yuv.ckpt.safetensors`
(or weights/train/temporal-planes.ckpt.safetensors; prints one line per variant)."""
import glob
import sys
from pathlib import Path

import torch

import armcodec.models.pixelcnn as P
from armcodec.training.loop import load_checkpoint
from armcodec.training.video import VAL_CROP, evaluate
from armcodec.training.video_data import fixed_pairs, load_clip

HEAD_SCALE = 1 / 32  # the head grid of the models row 43 measured (before head_steps)
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CLIPS = [(Path(p), 0) for p in sorted(glob.glob(str(SHARED / "video-train" / "*")))] + [
    (SHARED / "video" / "vtest.avi", 60), (SHARED / "video" / "cockatoo.mp4", 60),
    (SHARED / "video" / "y4m" / "carphone_qcif_120f.y4m", 60)]


def grey_pairs_and_model(ckpt: str):
    """Row 40's 96 grey validation pairs and the checkpoint's model (eval mode)."""
    val = [load_clip(p, first, 120).split()[1] for p, first in CLIPS]
    return {"grey": fixed_pairs(val, False, VAL_CROP, 2, 96)}, load_checkpoint(Path(ckpt))[0].eval()


def main():
    pairs, model = grey_pairs_and_model(sys.argv[1])
    rounded = P.activation
    print("float", evaluate(model, pairs, False), flush=True)
    print("qat", evaluate(model, pairs, True), flush=True)
    for name, unrounded in (("every activation", lambda s: True), ("gates", lambda s: s == P.GATE_SCALE),
                            ("head hidden layer", lambda s: s == HEAD_SCALE),
                            ("residual stream", lambda s: s not in (P.GATE_SCALE, HEAD_SCALE))):
        P.activation = lambda x, qat, scale, lo, hi, u=unrounded: rounded(x, qat and not u(scale), scale, lo, hi)
        print(f"qat, {name} unrounded", evaluate(model, pairs, True), flush=True)
    P.activation = rounded


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
