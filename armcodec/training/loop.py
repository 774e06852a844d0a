"""Training: float training, then quantization-aware fine-tuning, on real photographs.

``armcodec train DATA_DIR --out CKPT`` (or ``python -m armcodec.training``) trains a float model
of any architecture in :data:`FLOAT_MODELS` (``--architecture``: the wavefront
:class:`~armcodec.models.pixelcnn.PixelCNN`, the default, or the multi-scale
:class:`~armcodec.models.pyramid.Pyramid`) on random crops of the images in ``DATA_DIR`` and
checkpoints to ``CKPT`` (safetensors: weights, Adam moments, step and config in the metadata),
resuming from it when it exists.  The last ``qat_steps`` steps fake-quantize weights and
activations onto the integer grids of the exported model.  Every tenth image (sorted by name) is
held out for validation.  docs/TRAINING.md has the recipes of the shipped weights.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from armcodec.models.pixelcnn import PixelCNN, PixelCNNConfig
from armcodec.models.pyramid import Pyramid, PyramidConfig
from armcodec.models.temporal import TemporalConfig, TemporalPixelCNN
from armcodec.training.data import fixed_val_crops, list_images, load_rgb, random_crops, split_train_val


# registered architecture name -> (float model, config): what training and export build
FLOAT_MODELS = {"wavefront-pixelcnn": (PixelCNN, PixelCNNConfig), "polyphase-pyramid": (Pyramid, PyramidConfig),
                "temporal-pixelcnn": (TemporalPixelCNN, TemporalConfig)}


def architecture_of(model: torch.nn.Module) -> str:
    return next(name for name, (cls, _) in FLOAT_MODELS.items() if type(model) is cls)


@dataclass
class TrainSettings:
    steps: int = 10000
    qat_steps: int = 500
    batch: int = 16
    crop: int = 64
    lr: float = 2e-3
    warmup: int = 200
    seed: int = 0
    val_every: int = 250
    checkpoint_every: int = 50
    minutes: float = 0.0  # > 0: at the end of warm-up, fix ``steps`` to what fits in this wall time
    device: str = "cpu"


def training_device(name: str) -> torch.device:
    """The device to train on; on CUDA with TF32 products (training numerics only: the shipped
    model is integer-exact)."""
    dev = torch.device(name)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return dev


@torch.no_grad()
def evaluate(model: torch.nn.Module, crops: torch.Tensor, qat: bool) -> float:
    if len(crops) == 0:  # no validation image is large enough
        return float("nan")
    model.eval()
    tot = 0.0
    dev = next(model.parameters()).device
    for k in range(0, len(crops), 8):
        tot += model(crops[k : k + 8].to(dev), qat=qat).sum().item()
    model.train()
    return tot / crops.numel()


def save_checkpoint(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer, meta: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    names = dict(model.named_parameters())
    for name, p in names.items():
        st = opt.state.get(p)
        if st:
            tensors[f"adam.{name}.exp_avg"] = st["exp_avg"].cpu().contiguous()
            tensors[f"adam.{name}.exp_avg_sq"] = st["exp_avg_sq"].cpu().contiguous()
    meta = {k: json.dumps(v) for k, v in {**meta, "architecture": architecture_of(model)}.items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[torch.nn.Module, dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    tensors = load_file(str(path))
    cls, config = FLOAT_MODELS[meta.get("architecture", "wavefront-pixelcnn")]
    model = cls(config.from_dict(meta["config"]))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    adam = {k[5:]: v for k, v in tensors.items() if k.startswith("adam.")}
    return model, meta, adam


def lr_at(step: int, s: TrainSettings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    prog = min(1.0, (step - s.warmup) / max(1, s.steps - s.warmup))
    return s.lr * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * prog)))


GRID_FIELDS = ("resid_steps", "coef_steps", "head_steps")


def regrid_model(model: torch.nn.Module, fields: dict) -> torch.nn.Module:
    """The same parameters on other integer grids (``GRID_FIELDS`` of the config only)."""
    if set(fields) - set(GRID_FIELDS):
        raise ValueError(f"only {GRID_FIELDS} can change on a trained model, not {sorted(set(fields) - set(GRID_FIELDS))}")
    out = type(model)(type(model.cfg).from_dict({**model.cfg.to_dict(), **fields}))
    out.load_state_dict(model.state_dict())
    return out


def apply_regrid(model: torch.nn.Module, regrid: dict | None, step: int, history: dict, log=print) -> torch.nn.Module:
    """``model`` on the grids ``regrid`` (:func:`regrid_model`), the change recorded in
    ``history["regrid"]`` (a checkpoint's metadata) when it changes anything."""
    if not regrid:
        return model
    regridded = regrid_model(model, regrid)
    if regridded.cfg == model.cfg:
        return model
    history["regrid"] = history.get("regrid", []) + [{"step": step, **regrid}]
    log(f"grids changed at step {step}: {regrid}")
    return regridded


def train(data_dir: Path, ckpt: Path, cfg, s: TrainSettings, log=print,
          regrid: dict | None = None, start_from: Path | None = None) -> torch.nn.Module:
    """Train (or resume ``ckpt``) to step ``s.steps``.  ``regrid``: config fields to change on a
    resumed model that keep its parameters' shapes (the integer grids :data:`GRID_FIELDS`).
    ``start_from``: a new ``ckpt`` starts from this checkpoint's weights on a new schedule (step 0,
    the warm-up, new Adam moments) instead of a new model."""
    torch.manual_seed(s.seed)
    paths = list_images(Path(data_dir))
    tr_paths, va_paths = split_train_val(paths)
    train_imgs = [im for im in load_rgb(tr_paths) if min(im.shape[1:]) >= s.crop]
    val = fixed_val_crops([im for im in load_rgb(va_paths) if min(im.shape[1:]) >= 128])
    log(f"train images {len(train_imgs)}, validation crops {len(val)} from {len(va_paths)} images")
    step = 0
    adam_state: dict = {}
    history: dict = {}
    if ckpt.exists():
        model, loaded, adam_state = load_checkpoint(ckpt)
        step = loaded["step"]
        history = {k: loaded[k] for k in ("warm_start", "regrid") if k in loaded}
        log(f"resumed {ckpt} at step {step}")
        # same parameters, other integer grids (e.g. before quantization-aware steps)
        model = apply_regrid(model, regrid, step, history, log)
    elif start_from is not None:
        model, loaded, _ = load_checkpoint(start_from)
        history = {k: loaded[k] for k in ("warm_start", "regrid") if k in loaded}
        history["warm_start"] = {**history.get("warm_start", {}), "then": {"from": str(start_from), "step": loaded.get("step")}}
        log(f"new schedule from {start_from} (step {loaded.get('step')})")
        model = apply_regrid(model, regrid, step, history, log)
    else:
        model = next(cls for cls, config in FLOAT_MODELS.values() if type(cfg) is config)(cfg)
    dev = training_device(s.device)
    model = model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr)
    for name, p in model.named_parameters():
        if f"{name}.exp_avg" in adam_state:
            opt.state[p] = {
                "step": torch.tensor(float(step)),
                "exp_avg": adam_state[f"{name}.exp_avg"].to(dev),
                "exp_avg_sq": adam_state[f"{name}.exp_avg_sq"].to(dev),
            }
    rng = np.random.default_rng(s.seed + step)
    meta = {"config": model.cfg.to_dict(), "settings": s.__dict__, "data": str(data_dir), **history}
    log(f"step {step} val {evaluate(model, val, step >= s.steps - s.qat_steps):.4f} bpsp (start)")
    t0 = time.time()
    start_step = step
    run_loss = None
    while step < s.steps:
        if s.minutes > 0 and step == max(start_step, s.warmup) + 50:  # measured speed -> step count
            if dev.type == "cuda":
                torch.cuda.synchronize()
            per_step = (time.time() - t0) / (step - start_step)
            s.steps = step + max(s.qat_steps + 1, int((s.minutes * 60 - (time.time() - t0)) / (per_step * 1.04)))
            log(f"{per_step:.3f} s/step: training to step {s.steps} in {s.minutes} minutes")
        qat = step >= s.steps - s.qat_steps
        for g in opt.param_groups:
            g["lr"] = lr_at(step, s)
        x = random_crops(train_imgs, s.batch, s.crop, rng, dev)
        step, run_loss = optimizer_step(model, opt, model(x, qat=qat).mean(), step, run_loss)
        report(step, s, qat, run_loss, t0, log, lambda: f"{evaluate(model, val, qat):.4f} bpsp",
               lambda: save_checkpoint(ckpt, model, opt, {**meta, "step": step, "qat": qat}))
    return model


def optimizer_step(model, opt, loss, step: int, run_loss: float | None) -> tuple[int, float]:
    """Backward, clip the trained parameters' gradient norm at 1, step -> (step + 1, running loss)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
    opt.step()
    return step + 1, loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()


def report(step: int, s: TrainSettings, qat: bool, run_loss: float, t0: float, log, validate, checkpoint) -> None:
    """The training log every 25 steps, ``validate()`` (a text) and ``checkpoint()`` on their schedules."""
    if step % 25 == 0:
        log(f"step {step} qat={int(qat)} lr {lr_at(step, s):.2e} train {run_loss:.4f} bpsp {time.time() - t0:.0f}s")
    if step % s.val_every == 0 or step == s.steps:
        log(f"step {step} val {validate()} (qat={int(qat)})")
    if step % s.checkpoint_every == 0 or step == s.steps:
        checkpoint()


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--architecture", choices=sorted(FLOAT_MODELS), default="wavefront-pixelcnn",
                    help="the model family of a new model")
    ap.add_argument("--config", type=str, default="{}", help="JSON overrides of its config (PixelCNNConfig, PyramidConfig)")
    ap.add_argument("--regrid", type=str, default="{}",
                    help='on resume: JSON config fields that keep the parameters, e.g. \'{"resid_steps": 128, "coef_steps": 1024}\'')
    ap.add_argument("--from", dest="start_from", type=Path,
                    help="a checkpoint whose weights start a new run (new schedule and Adam moments; --out must not exist)")
    for k, v in TrainSettings().__dict__.items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    a = ap.parse_args(argv)
    config = FLOAT_MODELS[a.architecture][1]
    cfg = config.from_dict({**config().to_dict(), **json.loads(a.config)})
    s = TrainSettings(**{k: getattr(a, k) for k in TrainSettings().__dict__})
    train(a.data, a.out, cfg, s, log=lambda m: print(m, flush=True), regrid=json.loads(a.regrid), start_from=a.start_from)
