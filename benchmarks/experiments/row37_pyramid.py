"""A first look at the multi-scale family (the multi-scale issue): a polyphase pyramid trained in
float on the CPU, its validation bits per subpixel against the wavefront PixelCNN's at the same
recipe (rows 1-3: batch 16 crops of 64x64, lr 2e-3, Adam).

    python -m benchmarks.experiments.row37_pyramid ../shared/data/train --steps 3000 --out /tmp/pyramid.safetensors

The model (float only; no integer export yet): an image ``x`` of level 0 has levels
``x_l = x[::2**l, ::2**l]``.  The coarsest level ``L`` is coded by a small wavefront PixelCNN
(:class:`armcodec.models.pixelcnn.PixelCNN`).  Each finer level ``l`` is the 2x2 polyphase split
of ``x_l``: its phase (0, 0) is ``x_{l+1}`` (known), and its three other phases are coded in three
passes, (1, 1) from (0, 0), then (0, 1) from both, then (1, 0) from all three, each pass a dense
(non-causal) gated network over the coarse grid of that level, one network per phase shared by
all levels (a constant input channel says which level), with the same hard activations, mixture
head and R -> G -> B coupling as the PixelCNN, so that the integer-exact export of
:mod:`armcodec.models.pixelcnn_exact` carries over.  Decoding would take (base wavefront steps) +
3 * L dense passes.  Prints and writes the validation bpsp (44 fixed 128x128 crops of the held-out
photographs, as ``armcodec.training.evaluate``) every ``--val-every`` steps.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from armcodec.models.pixelcnn import INPUT_SCALE, PixelCNN, PixelCNNConfig, mixture_nll_bits
from armcodec.training.data import fixed_val_crops, list_images, load_rgb, random_crops, split_train_val

HERE = Path(__file__).parent
PHASES = ((1, 1), (0, 1), (1, 0))  # coded in this order; (0, 0) is the coarser level


def phase(x: torch.Tensor, p: tuple[int, int]) -> torch.Tensor:
    return x[:, :, p[0] :: 2, p[1] :: 2]


class PassNet(nn.Module):
    """Dense gated network on a level's coarse grid: known phases -> the target phase's mixture
    parameters (the PixelCNN's block and head, with 3x3 kernels that see every side)."""

    def __init__(self, known: int, cfg: PixelCNNConfig, width: int, blocks: int, head: int):
        super().__init__()
        c_in = 3 * known + 2  # the known phases, "inside the image", the level
        self.cfg, self.width = cfg, width
        self.first = nn.Conv2d(c_in, width, 3, padding=1)
        self.gates = nn.ModuleList(nn.Conv2d(width, 2 * width, 3, padding=1) for _ in range(blocks))
        self.mixes = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(blocks))
        for m in self.mixes:
            m.weight.data *= 0.3
        self.head_hidden = nn.Conv2d(width, head, 1)
        self.head_out = nn.Conv2d(head, cfg.n_params, 1)
        self.head_out.weight.data *= 0.1
        self.skip = nn.Conv2d(c_in, cfg.n_params, 3, padding=1)  # linear prediction from the known pixels
        nn.init.zeros_(self.skip.weight)
        nn.init.zeros_(self.skip.bias)
        k, c = cfg.mixtures, cfg.image_channels
        with torch.no_grad():
            self.head_out.bias[2 * k * c : 3 * k * c] = 3.0

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        r = 4.0  # the residual stream's range (resid_max on its grid)
        h = torch.clamp(self.first(inp), -r, r)
        f = self.width
        for gate, mix in zip(self.gates, self.mixes):
            u = gate(h)
            g = torch.clamp(u[:, :f], -1, 1) * torch.clamp(u[:, f:] + 0.5, 0, 1)
            h = torch.clamp(h + torch.clamp(mix(g), -r, r), -r, r)
        z = torch.clamp(self.head_hidden(h), 0, 127 / 32)
        return self.head_out(z) + self.skip(inp)


class Pyramid(nn.Module):
    def __init__(self, levels: int, width: int, blocks: int, head: int, base: dict):
        super().__init__()
        self.levels = levels
        self.cfg = PixelCNNConfig(mixtures=5)  # the head layout the tables read
        self.base = PixelCNN(PixelCNNConfig(**base))
        self.passes = nn.ModuleList(PassNet(n + 1, self.cfg, width, blocks, head) for n in range(3))

    def bits(self, x: torch.Tensor) -> torch.Tensor:
        """Total -log2 likelihood of the batch x (B, 3, H, W), H and W multiples of 2**levels."""
        total = self.base(x[:, :, :: 2**self.levels, :: 2**self.levels]).sum()
        for level in range(self.levels):
            xl = x[:, :, :: 2**level, :: 2**level]
            known = [phase(xl, (0, 0))]
            ones = torch.ones_like(known[0][:, :1])
            for net, p in zip(self.passes, PHASES):
                inp = torch.cat([(k - 128) * INPUT_SCALE for k in known] + [ones, ones * (level / self.levels)], 1)
                target = phase(xl, p)
                total = total + mixture_nll_bits(net(inp), target, self.cfg, qat=False).sum()
                known.append(target)
        return total

    def macs_per_pixel(self) -> float:
        """Multiply-adds per full-resolution pixel of the passes (the base adds ~1/4**levels of its own)."""
        per_position = sum(sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Conv2d)) for net in self.passes)
        return per_position * sum(0.25 ** (lv + 1) for lv in range(self.levels))


@torch.no_grad()
def evaluate(model: Pyramid, crops: torch.Tensor) -> float:
    model.eval()
    tot = sum(model.bits(crops[k : k + 8]).item() for k in range(0, len(crops), 8))
    model.train()
    return tot / crops.numel()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--levels", type=int, default=3)
    ap.add_argument("--width", type=int, default=48)
    ap.add_argument("--blocks", type=int, default=3)
    ap.add_argument("--head", type=int, default=96)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--minutes", type=float, default=0.0, help="stop after this long (the cosine still aims at --steps)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--val-every", type=int, default=250)
    ap.add_argument("--results", type=Path, default=HERE / "results" / "pyramid.json")
    a = ap.parse_args(argv)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tr, va = split_train_val(list_images(a.data))
    train_imgs = [im for im in load_rgb(tr) if min(im.shape[1:]) >= a.crop]
    val = fixed_val_crops([im for im in load_rgb(va) if min(im.shape[1:]) >= 128])
    base = dict(width=32, blocks=3, head_width=64, mixtures=5)
    model = Pyramid(a.levels, a.width, a.blocks, a.head, base)
    params = sum(p.numel() for p in model.parameters())
    record = {"settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()}, "base": base,
              "parameters": params, "pass_macs_per_pixel": model.macs_per_pixel(), "validation_bpsp": {}}
    print(f"parameters {params}, pass multiply-adds per pixel {record['pass_macs_per_pixel']:.0f}, "
          f"validation crops {len(val)}", flush=True)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    t0, run = time.time(), None
    for step in range(1, a.steps + 1):
        warm = min(1.0, step / 200)
        lr = a.lr * warm * (0.03 + 0.97 * 0.5 * (1 + math.cos(math.pi * min(1.0, step / a.steps))))
        for g in opt.param_groups:
            g["lr"] = lr
        x = random_crops(train_imgs, a.batch, a.crop, rng)
        loss = model.bits(x) / x.numel()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run = loss.item() if run is None else 0.98 * run + 0.02 * loss.item()
        stop = a.minutes > 0 and time.time() - t0 > a.minutes * 60
        if step % 25 == 0:
            print(f"step {step} lr {lr:.2e} train {run:.4f} bpsp {time.time() - t0:.0f}s", flush=True)
        if step % a.val_every == 0 or step == a.steps or stop:
            v = evaluate(model, val)
            record["validation_bpsp"][str(step)] = round(v, 4)
            record["seconds"] = round(time.time() - t0)
            print(f"step {step} val {v:.4f} bpsp", flush=True)
            save_file({k: t.detach().contiguous() for k, t in model.state_dict().items()}, str(a.out),
                      metadata={"record": json.dumps(record)})
            a.results.write_text(json.dumps(record, indent=1) + "\n")
        if stop:
            break


if __name__ == "__main__":
    main()
