"""The training loop: a wall-time budget fixes the step count, checkpoints resume."""
from conftest import TINY_CFG, training_folder

from armcodec.training.loop import TrainSettings, load_checkpoint, train


def test_minutes_fix_the_step_count_and_the_checkpoint_resumes(tmp_path):
    data = training_folder(tmp_path)
    ckpt = tmp_path / "ckpt.safetensors"
    s = TrainSettings(steps=10**6, qat_steps=2, batch=2, crop=16, warmup=3, minutes=0.02,
                      val_every=10**6, checkpoint_every=10**6)
    train(data, ckpt, TINY_CFG, s, log=lambda m: None)
    _, meta, adam = load_checkpoint(ckpt)
    assert 3 + 50 < meta["step"] < 10**6 and meta["settings"]["steps"] == meta["step"]
    assert meta["qat"] and adam  # the last steps were quantization-aware; Adam moments saved
    more = TrainSettings(steps=meta["step"] + 3, qat_steps=2, batch=2, crop=16, warmup=3, val_every=10**6, checkpoint_every=10**6)
    train(data, ckpt, TINY_CFG, more, log=lambda m: None)
    assert load_checkpoint(ckpt)[1]["step"] == meta["step"] + 3
