"""Training: float training, then quantization-aware fine-tuning, on real photographs.

``armcodec train DATA_DIR --out CKPT`` (or ``python -m armcodec.train``) trains a
:class:`~armcodec.models.pixelcnn.PixelCNN` on random crops of the images in
``DATA_DIR`` and checkpoints to ``CKPT`` (safetensors: weights, Adam moments, step and
config in the metadata), resuming from it when it exists.  The last ``--qat-steps``
steps fake-quantize weights and activations onto the integer grids of the exported
model.  Every tenth image (sorted by name) is held out for validation.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from armcodec.models.pixelcnn import PixelCNN, PixelCNNConfig

IMAGE_SUFFIXES = {".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp", ".jpg", ".jpeg"}


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


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def split_train_val(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """Every tenth image (by sorted name) is the validation split."""
    return [p for i, p in enumerate(paths) if i % 10], [p for i, p in enumerate(paths) if i % 10 == 0]


def load_rgb(paths: list[Path]) -> list[np.ndarray]:
    """uint8 (3, H, W) arrays; training only ever reads RGB photographs."""
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append(np.ascontiguousarray(np.asarray(im.convert("RGB")).transpose(2, 0, 1)))
    return out


def random_crops(images: list[np.ndarray], n: int, size: int, rng: np.random.Generator,
                 device: str | torch.device = "cpu") -> torch.Tensor:
    """(n, 3, size, size) float crops on ``device`` with random horizontal flips, images weighted by area."""
    areas = np.array([im.shape[1] * im.shape[2] for im in images], dtype=np.float64)
    idx = rng.choice(len(images), size=n, p=areas / areas.sum())
    batch = np.empty((n, 3, size, size), dtype=np.uint8)
    for b, k in enumerate(idx):
        im = images[k]
        i = rng.integers(0, im.shape[1] - size + 1)
        j = rng.integers(0, im.shape[2] - size + 1)
        crop = im[:, i : i + size, j : j + size]
        batch[b] = crop[:, :, ::-1] if rng.random() < 0.5 else crop
    return torch.from_numpy(batch).to(device).float()


def fixed_val_crops(images: list[np.ndarray], size: int = 128, per_image: int = 2) -> torch.Tensor:
    rng = np.random.default_rng(12345)
    crops = []
    for im in images:
        for _ in range(per_image):
            i = rng.integers(0, im.shape[1] - size + 1)
            j = rng.integers(0, im.shape[2] - size + 1)
            crops.append(im[:, i : i + size, j : j + size])
    if not crops:
        return torch.empty((0, 3, size, size))
    return torch.from_numpy(np.stack(crops)).float()


@torch.no_grad()
def evaluate(model: PixelCNN, crops: torch.Tensor, qat: bool) -> float:
    if len(crops) == 0:  # no validation image is large enough
        return float("nan")
    model.eval()
    tot = 0.0
    dev = next(model.parameters()).device
    for k in range(0, len(crops), 8):
        tot += model(crops[k : k + 8].to(dev), qat=qat).sum().item()
    model.train()
    return tot / crops.numel()


def save_checkpoint(path: Path, model: PixelCNN, opt: torch.optim.Optimizer, meta: dict) -> None:
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    names = dict(model.named_parameters())
    for name, p in names.items():
        st = opt.state.get(p)
        if st:
            tensors[f"adam.{name}.exp_avg"] = st["exp_avg"].cpu().contiguous()
            tensors[f"adam.{name}.exp_avg_sq"] = st["exp_avg_sq"].cpu().contiguous()
    meta = {k: json.dumps(v) for k, v in meta.items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    tmp.replace(path)


def load_checkpoint(path: Path) -> tuple[PixelCNN, dict, dict]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    tensors = load_file(str(path))
    model = PixelCNN(PixelCNNConfig.from_dict(meta["config"]))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    adam = {k[5:]: v for k, v in tensors.items() if k.startswith("adam.")}
    return model, meta, adam


def lr_at(step: int, s: TrainSettings) -> float:
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    prog = min(1.0, (step - s.warmup) / max(1, s.steps - s.warmup))
    return s.lr * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * prog)))


GRID_FIELDS = ("resid_steps", "coef_steps")


def regrid_model(model: PixelCNN, fields: dict) -> PixelCNN:
    """The same parameters on other integer grids (``GRID_FIELDS`` of the config only)."""
    if set(fields) - set(GRID_FIELDS):
        raise ValueError(f"only {GRID_FIELDS} can change on a trained model, not {sorted(set(fields) - set(GRID_FIELDS))}")
    out = PixelCNN(PixelCNNConfig.from_dict({**model.cfg.to_dict(), **fields}))
    out.load_state_dict(model.state_dict())
    return out


def train(data_dir: Path, ckpt: Path, cfg: PixelCNNConfig, s: TrainSettings, log=print,
          regrid: dict | None = None) -> PixelCNN:
    """Train (or resume ``ckpt``) to step ``s.steps``.  ``regrid``: config fields to change on a
    resumed model that keep its parameters' shapes (the integer grids ``resid_steps``, ``coef_steps``)."""
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
        if regrid:  # same parameters, other integer grids (e.g. before quantization-aware steps)
            regridded = regrid_model(model, regrid)
            if regridded.cfg != model.cfg:
                model = regridded
                history["regrid"] = history.get("regrid", []) + [{"step": step, **regrid}]
                log(f"grids changed at step {step}: {regrid}")
    else:
        model = PixelCNN(cfg)
    dev = torch.device(s.device)
    if dev.type == "cuda":  # training numerics only: the shipped model is integer-exact
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
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
        loss = model(x, qat=qat).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run_loss = loss.item() if run_loss is None else 0.98 * run_loss + 0.02 * loss.item()
        if step % 25 == 0:
            log(f"step {step} qat={int(qat)} lr {lr_at(step, s):.2e} train {run_loss:.4f} bpsp {time.time() - t0:.0f}s")
        if step % s.val_every == 0 or step == s.steps:
            log(f"step {step} val {evaluate(model, val, qat):.4f} bpsp (qat={int(qat)})")
        if step % s.checkpoint_every == 0 or step == s.steps:
            save_checkpoint(ckpt, model, opt, {**meta, "step": step, "qat": qat})
    return model


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--config", type=str, default="{}", help="JSON overrides of PixelCNNConfig (new model)")
    ap.add_argument("--regrid", type=str, default="{}",
                    help='on resume: JSON config fields that keep the parameters, e.g. \'{"resid_steps": 128, "coef_steps": 1024}\'')
    for k, v in TrainSettings().__dict__.items():
        ap.add_argument(f"--{k.replace('_', '-')}", type=type(v), default=v)
    a = ap.parse_args(argv)
    cfg = PixelCNNConfig.from_dict({**PixelCNNConfig().to_dict(), **json.loads(a.config)})
    s = TrainSettings(**{k: getattr(a, k) for k in TrainSettings().__dict__})
    train(a.data, a.out, cfg, s, log=lambda m: print(m, flush=True), regrid=json.loads(a.regrid))


if __name__ == "__main__":
    main()


def export_checkpoint(ckpt: Path, weights_dir: Path, name: str, tile_size: int, extra: dict | None = None) -> dict:
    """Export a (QAT) checkpoint's integer weights; see :func:`export_model`."""
    model, meta, _ = load_checkpoint(Path(ckpt))
    training = {k: meta.get(k) for k in ("data", "settings", "qat", "warm_start", "regrid") if k in meta}
    training["steps"] = meta.get("step")
    return export_model(model, weights_dir, name, tile_size, {"training": training, **(extra or {})})


def export_ensemble(ckpts: list[Path], weights_dir: Path, name: str, tile_size: int, extra: dict | None = None) -> dict:
    """Export (QAT) checkpoints as one ensemble model (:mod:`armcodec.ensemble`)."""
    loaded = [load_checkpoint(Path(c)) for c in ckpts]
    training = {"members": [{"checkpoint": str(c), "steps": meta.get("step"), "qat": meta.get("qat")}
                            for c, (_, meta, _) in zip(ckpts, loaded)]}
    return export_model([m for m, _, _ in loaded], weights_dir, name, tile_size, {"training": training, **(extra or {})})


def export_model(model: PixelCNN | list[PixelCNN], weights_dir: Path, name: str, tile_size: int,
                 extra: dict | None = None, shares: tuple[int, ...] | None = None) -> dict:
    """Write ``name.safetensors`` (integer weights and lookup tables) into ``weights_dir`` and add
    or replace its manifest entry; other entries are kept, and this one's notes and (if the
    weights did not change) its measured figures.
    A list of models is exported as an ensemble (their mixture: equal, or in ``shares``)."""
    from armcodec.ensemble import IntEnsemble
    from armcodec.quant import IntPixelCNN
    from armcodec.tables import TableLUTs

    models = model if isinstance(model, list) else [model]
    net = (IntEnsemble([IntPixelCNN.from_float(m) for m in models], shares) if len(models) > 1
           else IntPixelCNN.from_float(models[0]))
    return write_model(net, TableLUTs.compute(), sum(p.numel() for m in models for p in m.parameters()),
                       weights_dir, name, tile_size, extra)


def export_shipped_ensemble(members: list[str], shares: tuple[int, ...] | None, weights_dir: Path, name: str,
                            tile_size: int, extra: dict | None = None) -> dict:
    """Export models already in ``weights_dir`` (by manifest name, their integer weights as they
    are) as one ensemble model ``name``, mixed in ``shares``."""
    from armcodec.ensemble import IntEnsemble
    from armcodec.weights import load_weights, read_manifest

    entries = read_manifest(weights_dir)
    loaded = [load_weights(entries[m], torch.device("cpu"), weights_dir) for m in members]
    net = IntEnsemble([lm.net for lm in loaded], shares)
    params = sum(int(entries[m].meta.get("parameters", 0)) for m in members)
    info = {"members": [{"model": m, "sha256": entries[m].sha256} for m in members], "shares": list(net.cfg.member_shares)}
    return write_model(net, loaded[0].luts, params, weights_dir, name, tile_size, {"ensemble_of": info, **(extra or {})})


def write_model(net, luts, n_params: int, weights_dir: Path, name: str, tile_size: int, extra: dict | None = None) -> dict:
    """Write an integer model (:class:`IntPixelCNN` or :class:`IntEnsemble`) and its lookup tables
    as ``name.safetensors`` and its manifest entry (see :func:`export_model`)."""
    from armcodec.ensemble import IntEnsemble
    from armcodec.weights import ARCHITECTURE, ENSEMBLE_ARCHITECTURE, export_weights

    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    fname = f"{name}.safetensors"
    sha = export_weights(net, luts, weights_dir / fname)
    man_path = weights_dir / "manifest.json"
    manifest = json.loads(man_path.read_text()) if man_path.exists() else {"models": []}
    old = next((m for m in manifest["models"] if m["name"] == name), {})
    entry = {
        # measured figures (benchmarks/record.py: {dataset: {"bpsp": ...}}) only while the weights are the same
        **{k: v for k, v in old.items() if k not in ("sha256", "config")
           and not (isinstance(v, dict) and "bpsp" in v and old.get("sha256") != sha)},
        "name": name, "file": fname, "sha256": sha,
        "architecture": ENSEMBLE_ARCHITECTURE if isinstance(net, IntEnsemble) else ARCHITECTURE,
        "config": net.cfg.to_dict(), "tile_size": tile_size, "parameters": n_params,
        **(extra or {}),
    }
    manifest["models"] = [m for m in manifest["models"] if m["name"] != name] + [entry]
    man_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return entry
