"""Row 44: which grid for the head's hidden layer closes the temporal model's QAT gap (row 43),
measured on row 40's grey validation pairs with the checkpoint's weights as they are: the QAT
graph with the head's hidden activations on ``1/steps`` in ``[0, hi]`` instead of 1/32 in [0, 127].

`python -m benchmarks.experiments.row44_head_grid weights/train/temporal-planes.ckpt.safetensors`"""
import sys

import torch

import armcodec.models.pixelcnn as P
from armcodec.training.video import evaluate
from benchmarks.experiments.row43_qat_gap import HEAD_SCALE, grey_pairs_and_model


def main():
    pairs, model = grey_pairs_and_model(sys.argv[1])
    rounded = P.activation
    print("qat (1/32, [0, 127])", evaluate(model, pairs, True), flush=True)
    for steps, hi in ((64, 127), (64, 255), (128, 511)):
        def act(x, qat, scale, lo, top, steps=steps, hi=hi):
            if scale == HEAD_SCALE:
                return rounded(x, qat, 1 / steps, 0, hi)
            return rounded(x, qat, scale, lo, top)
        P.activation = act
        print(f"qat, head (1/{steps}, [0, {hi}])", evaluate(model, pairs, True), flush=True)
    P.activation = rounded


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
