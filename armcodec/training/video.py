"""Training the temporal model (``python -m armcodec.training.video CLIP... --out CKPT``).

Starts from an image model's float checkpoint (``--warm-start``: the context terms zero, so step 0
is the image model) or resumes ``CKPT``; each step is a batch of grey-plane pairs (Y, U, V of the
clips' 4:2:0 decoding, the loss on channel 0 as the coder codes a plane) or, a third of the time,
RGB pairs (:mod:`armcodec.training.video_data`).  The schedule, checkpoints and quantization-aware
last steps are the image training's (:mod:`armcodec.training.loop`).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from armcodec.models.temporal import TemporalPixelCNN
from armcodec.training.loop import (TrainSettings, apply_regrid, load_checkpoint, lr_at, optimizer_step, report,
                                   save_checkpoint, training_device)
from armcodec.training.video_data import Clip, fixed_pairs, frame_stacks, load_clip, moved_previous, sample_pairs

RGB_FRACTION = 1 / 3
VAL_CROP = 64


def bits(model: TemporalPixelCNN, x: torch.Tensor, cinp: torch.Tensor, grey: bool, qat: bool) -> torch.Tensor:
    """Bits per coded subpixel of a batch: channel 0 of a grey plane, every channel of RGB."""
    nll = model(x, qat=qat, context=cinp)
    return nll[:, :1] if grey else nll


@torch.no_grad()
def evaluate(model, val: dict, qat: bool) -> dict:
    model.eval()
    out, dev = {}, next(model.parameters()).device
    for kind, (x, c) in val.items():
        tot = sum(bits(model, x[k : k + 8].to(dev), c[k : k + 8].to(dev), kind == "grey", qat).sum().item()
                  for k in range(0, len(x), 8))
        out[kind] = tot / (x[:, :1].numel() if kind == "grey" else x.numel())
    model.train()
    return out


def train_temporal(clips: list[Clip], ckpt: Path, s: TrainSettings, warm_start: Path | None = None, reach: int = 2,
                   log=print, trunk_lr: float = 0.0, first_lr: float = 0.1, rgb_fraction: float = RGB_FRACTION,
                   start_from: Path | None = None, regrid: dict | None = None, motion: bool = False) -> TemporalPixelCNN:
    """``trunk_lr``: the image trunk's learning rate as a fraction of ``s.lr`` (0: frozen, only
    the context layers learn: the warm start's image model stays as it is); ``first_lr``: the
    context's first-layer term's (Adam moves every weight of its wide window at about the rate,
    and their sum moves the features: measured in row 40, the full rate wrecks the RGB channels);
    ``rgb_fraction``: the share of steps on RGB pairs (0: a model for grey planes only).
    A new ``ckpt`` starts from an image model (``warm_start``) or from a temporal checkpoint's
    weights (``start_from``: a new schedule and new Adam moments); an existing one resumes.
    ``regrid``: integer grids to change on the starting model (:data:`~armcodec.training.loop.GRID_FIELDS`,
    e.g. a finer head grid before quantization-aware steps).  ``motion``: the previous frames of
    the training and validation pairs moved by the encoder's block search, as the coder moves them."""
    torch.manual_seed(s.seed)
    train, val = zip(*(c.split() for c in clips))
    val_sets = {kind: fixed_pairs(list(val), rgb, VAL_CROP, reach, n, motion) for kind, rgb, n in (("grey", False, 96), ("rgb", True, 48))
                if frame_stacks(list(val), rgb, VAL_CROP)}  # (none where no clip is that large)
    stacks = {"grey": frame_stacks(list(train), False, s.crop),
              "rgb": frame_stacks(list(train), True, s.crop) if rgb_fraction > 0 else None}
    previous = {k: [moved_previous(x) for x in v] if motion and v else None for k, v in stacks.items()}
    step, adam, meta_in = 0, {}, {}
    if ckpt.exists():
        model, meta_in, adam = load_checkpoint(ckpt)
        step = meta_in["step"]
        log(f"resumed {ckpt} at step {step}")
    elif start_from is not None:
        model, meta_from, _ = load_checkpoint(start_from)
        meta_in = {"warm_start": {**meta_from.get("warm_start", {}), "then": {"from": str(start_from),
                                                                                "step": meta_from.get("step")}}}
        log(f"new schedule from {start_from} (step {meta_from.get('step')})")
    else:
        image, meta_image, _ = load_checkpoint(warm_start)
        model = TemporalPixelCNN.from_image_model(image, reach)
        meta_in = {"warm_start": {"from": str(warm_start), "step": meta_image.get("step")}}
        log(f"warm start from {warm_start} (step {meta_image.get('step')})")
    model = apply_regrid(model, regrid, step, meta_in, log)
    dev = training_device(s.device)
    model = model.to(dev)
    named = dict(model.named_parameters())
    trunk = [p for n, p in named.items() if not n.startswith("context_")]
    groups = [{"params": [named["context_skip.weight"]], "scale": 1.0},
              {"params": [named["context_first.weight"]], "scale": first_lr}]
    groups += [{"params": trunk, "scale": trunk_lr}] if trunk_lr > 0 else []
    for p in trunk:
        p.requires_grad_(trunk_lr > 0)
    opt = torch.optim.Adam(groups, lr=s.lr)
    for name, p in model.named_parameters():
        if f"{name}.exp_avg" in adam:
            opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": adam[f"{name}.exp_avg"].to(dev),
                            "exp_avg_sq": adam[f"{name}.exp_avg_sq"].to(dev)}
    meta = {"config": model.cfg.to_dict(), "settings": s.__dict__, "data": [c.name for c in clips],
            **{k: meta_in[k] for k in ("warm_start", "regrid") if k in meta_in}}
    log(f"step {step} val {evaluate(model, val_sets, step >= s.steps - s.qat_steps)}")
    rng = np.random.default_rng(s.seed + step)
    t0, start, run = time.time(), step, None
    while step < s.steps:
        if s.minutes > 0 and step == start + 50:
            per = (time.time() - t0) / 50
            s.steps = step + max(s.qat_steps + 1, int((s.minutes * 60 - (time.time() - t0)) / (per * 1.04)))
            log(f"{per:.3f} s/step: training to step {s.steps}")
        qat = step >= s.steps - s.qat_steps
        for g in opt.param_groups:
            g["lr"] = lr_at(step, s) * g["scale"]
        kind = "rgb" if rng.random() < rgb_fraction else "grey"
        x, c = (t.to(dev) for t in sample_pairs(stacks[kind], s.batch, s.crop, reach, rng, previous=previous[kind]))
        step, run = optimizer_step(model, opt, bits(model, x, c, kind == "grey", qat).mean(), step, run)
        report(step, s, qat, run, t0, log, lambda: evaluate(model, val_sets, qat),
               lambda: save_checkpoint(ckpt, model, opt, {**meta, "step": step, "qat": qat}))
    return model


def export_video(ckpt: Path, weights_dir: Path, name: str, preset: str, tile_size: int = 128,
                 extra: dict | None = None, planes: bool = False) -> dict:
    """Export a temporal checkpoint as weights ``name`` and make the preset ``preset`` use them
    (the video commands' default), replacing that preset's earlier weights (which stay installed
    only if another preset or a weights entry keeps them); with ``planes``, as the preset's
    weights for frames of grey planes only (its own weights stay)."""
    from armcodec.training.export import export_checkpoint

    entry = export_checkpoint(ckpt, weights_dir, name, tile_size, extra)
    man_path = Path(weights_dir) / "manifest.json"
    manifest = json.loads(man_path.read_text())
    made = next(p for p in manifest["presets"] if p["name"] == name)
    old = next((p for p in manifest["presets"] if p["name"] == preset), {})
    manifest["presets"] = [p for p in manifest["presets"] if p["name"] not in (name, preset)]
    kept = {k: v for k, v in old.items() if not (isinstance(v, dict) and "bpsp" in v)}
    if planes:
        kept["encoder"] = {**kept.get("encoder", {}), "planes": entry["sha256"]}
        manifest["presets"].append({**kept, "name": preset})
    else:
        manifest["presets"].append({**kept, **made, "name": preset})
    man_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return entry


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("clips", nargs="*", help="video files or frame folders; PATH@FIRST uses frames from FIRST on "
                    "(none, with --steps 0: only --export)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--warm-start", type=Path, help="an image model's float checkpoint (a new model)")
    ap.add_argument("--from", dest="start_from", type=Path,
                    help="a temporal checkpoint whose weights start a new run (new schedule and Adam moments)")
    ap.add_argument("--reach", type=int, default=2)
    ap.add_argument("--trunk-lr", type=float, default=0.0, help="the image trunk's lr as a fraction of --lr (0: frozen)")
    ap.add_argument("--first-lr", type=float, default=0.1, help="the context's first-layer term's lr as a fraction of --lr")
    ap.add_argument("--rgb-fraction", type=float, default=RGB_FRACTION, help="share of steps on RGB pairs (0: grey planes only)")
    ap.add_argument("--regrid", type=str, default="{}",
                    help='JSON integer grids to change on the starting model, e.g. \'{"head_steps": 128}\'')
    ap.add_argument("--max-frames", type=int, default=200, help="frames per clip at most")
    ap.add_argument("--motion", action="store_true", help="previous frames moved by the encoder's block search (as coded)")
    ap.add_argument("--export", help="after training, export the weights under this name and point --preset at them")
    ap.add_argument("--preset", default="video")
    ap.add_argument("--planes", action="store_true", help="--export as the preset's weights for grey planes only")
    ap.add_argument("--weights-dir", type=Path, default=Path("weights"))
    for k, v in TrainSettings().__dict__.items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    a = ap.parse_args(argv)
    s = TrainSettings(**{k: getattr(a, k) for k in TrainSettings().__dict__})
    if s.steps > 0:
        clips = []
        for spec in a.clips:
            path, _, first = spec.partition("@")
            clips.append(load_clip(Path(path), int(first or 0), a.max_frames))
            print(f"{spec}: {len(clips[-1].planes[0]) if clips[-1].planes else len(clips[-1].rgb)} frames", flush=True)
        train_temporal(clips, a.out, s, a.warm_start, a.reach, log=lambda m: print(m, flush=True), trunk_lr=a.trunk_lr,
                       first_lr=a.first_lr, rgb_fraction=a.rgb_fraction, start_from=a.start_from,
                       regrid=json.loads(a.regrid), motion=a.motion)
    if a.export:
        entry = export_video(a.out, a.weights_dir, a.export, a.preset, planes=a.planes)
        print(json.dumps({"exported": entry["name"], "sha256": entry["sha256"], "preset": a.preset}))


if __name__ == "__main__":
    main()
