"""Row 44 (images): the head hidden layer's grid on the image models' QAT graph, with their
checkpoints' weights as they are: validation bpsp (the image training's fixed crops of the
validation split of ../shared/data/train) on the head's 1/32 grid and on 1/128.

`python -m benchmarks.experiments.row44_image_head_grid weights/train/fast.ckpt.safetensors [...]`"""
import sys
from pathlib import Path

import torch

from armcodec.training.data import fixed_val_crops, list_images, load_rgb, split_train_val
from armcodec.training.loop import evaluate, load_checkpoint, regrid_model

TRAIN = Path(__file__).resolve().parents[3] / "shared" / "data" / "train"


def main():
    _, va_paths = split_train_val(list_images(TRAIN))
    val = fixed_val_crops([im for im in load_rgb(va_paths) if min(im.shape[1:]) >= 128])
    for ckpt in sys.argv[1:]:
        model = load_checkpoint(Path(ckpt))[0]
        print(ckpt, "float", round(evaluate(model, val, False), 4), flush=True)
        for steps in (32, 64, 128):
            m = regrid_model(model, {"head_steps": steps})
            print(ckpt, f"qat, head 1/{steps}", round(evaluate(m, val, True), 4), flush=True)


if __name__ == "__main__":
    torch.set_num_threads(1)  # beside a training run
    main()
