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
    # --from: the weights start a new run at step 0 (warm-up, new Adam moments), the history kept
    logs = []
    fresh = TrainSettings(steps=4, qat_steps=2, batch=2, crop=16, warmup=3, val_every=10**6, checkpoint_every=10**6)
    model = train(data, tmp_path / "new.safetensors", TINY_CFG, fresh, log=logs.append, start_from=ckpt)
    _, new_meta, _ = load_checkpoint(tmp_path / "new.safetensors")
    assert new_meta["step"] == 4 and new_meta["warm_start"]["then"] == {"from": str(ckpt), "step": meta["step"] + 3}
    assert any("new schedule" in m for m in logs) and model.cfg == load_checkpoint(ckpt)[0].cfg


def test_temporal_training_for_grey_planes_exports_as_a_presets_planes_weights(tmp_path):
    """``armcodec.training.video`` on a grey clip with the trunk learning (``--trunk-lr``) and no RGB
    steps (``--rgb-fraction 0``): the trunk moves, the checkpoint resumes, and ``--planes`` exports
    the weights as a preset's weights for grey planes (the preset's own weights stay)."""
    import json

    import torch
    from conftest import make_tiny_temporal, moving_frames
    from PIL import Image

    from armcodec.models.pixelcnn import PixelCNN
    from armcodec.training.export import export_model
    from armcodec.training.loop import save_checkpoint
    from armcodec.training.video import export_video, train_temporal
    from armcodec.training.video_data import load_clip
    from armcodec.video import VideoCodec

    frames = tmp_path / "frames"
    frames.mkdir()
    for k, f in enumerate(moving_frames(12, 20, 20)):
        Image.fromarray(f).save(frames / f"f{k}.png")
    image = PixelCNN(TINY_CFG)
    warm = tmp_path / "image.safetensors"
    save_checkpoint(warm, image, torch.optim.Adam(image.parameters()), {"config": image.cfg.to_dict(), "step": 0})
    ckpt = tmp_path / "t.safetensors"
    s = TrainSettings(steps=3, qat_steps=1, batch=2, crop=16, warmup=1, val_every=10**6, checkpoint_every=10**6)
    model = train_temporal([load_clip(frames)], ckpt, s, warm, reach=2, log=lambda m: None, trunk_lr=0.5, rgb_fraction=0.0)
    assert not torch.equal(model.first.weight, image.first.weight)  # the trunk learnt
    assert load_checkpoint(ckpt)[1]["step"] == 3
    again = tmp_path / "t2.safetensors"  # --from: its weights, a new schedule
    train_temporal([load_clip(frames)], again, s, reach=2, log=lambda m: None, rgb_fraction=0.0, start_from=ckpt)
    meta = load_checkpoint(again)[1]
    assert meta["step"] == 3 and meta["warm_start"]["then"] == {"from": str(ckpt), "step": 3}
    d = tmp_path / "w"
    export_model(make_tiny_temporal(), d, "tiny-temporal", tile_size=16)
    entry = export_video(ckpt, d, "tiny-planes", "tiny-temporal", tile_size=16, planes=True)
    man = json.loads((d / "manifest.json").read_text())
    preset = next(p for p in man["presets"] if p["name"] == "tiny-temporal")
    assert preset["encoder"]["planes"] == entry["sha256"] and preset["weights"] != entry["sha256"]
    codec = VideoCodec("tiny-temporal", "cpu", weights_dir=d)
    assert codec.codec_for([(20, 20, 1)]).model.entry.name == "tiny-planes"
    assert codec.codec_for([(20, 20, 3)]).model.entry.name == "tiny-temporal"


def test_motion_pairs_show_the_model_the_previous_frame_as_the_coder_moves_it():
    """``--motion``: the training pairs' previous frame is moved as the video encoder moves it, so
    for a pan it lines up with the current frame (the raw previous frame does not), and the
    sampled context is that moved frame."""
    import numpy as np
    from conftest import moving_frames

    from armcodec.coding.motion import MAX_LONG_VECTOR
    from armcodec.encoder.motion import moved_previous as as_coded
    from armcodec.training.video_data import moved_previous, sample_pairs

    frames = moving_frames(4, 48, 48)
    stack = np.stack(frames)[:, None]  # (n, 1, H, W)
    moved = moved_previous(stack)
    for t in range(1, 4):
        cur, prev = stack[t, 0, :, :40].astype(int), stack[t - 1, 0, :, :40].astype(int)
        assert np.abs(moved[t, 0, :, :40].astype(int) - cur).mean() < np.abs(prev - cur).mean() / 4
        want, _, _ = as_coded(stack[t].transpose(1, 2, 0), stack[t - 1].transpose(1, 2, 0), reach=MAX_LONG_VECTOR)
        assert np.array_equal(moved[t], want.transpose(2, 0, 1))
    rng = np.random.default_rng(0)
    _, c = sample_pairs([stack], 4, 16, 2, rng, key_fraction=0.0, previous=[moved])
    raw = sample_pairs([stack], 4, 16, 2, np.random.default_rng(0), key_fraction=0.0)[1]
    assert c.shape == raw.shape and not np.array_equal(c.numpy(), raw.numpy())
