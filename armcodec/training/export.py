"""Export: a trained float model -> integer weights (safetensors) and their manifest entries.

This is where float weights become the integers the decoder runs; nothing the decoder runs imports it.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch

from armcodec.exact.layers import MULT_BITS, IntConv
from armcodec.exact.tables import TableLUTs
from armcodec.models.pixelcnn import (
    GATE_MAX,
    GATE_SCALE,
    INPUT_SCALE,
    MaskedConv2d,
    PixelCNN,
    causal_offsets,
    param_scales,
    weight_scale,
)
from armcodec.models.pixelcnn_exact import IntPixelCNN
from armcodec.models.pyramid import Pyramid
from armcodec.models.pyramid_exact import INPUT_MAX, IntPassNet, IntPyramid
from armcodec.models.temporal import TemporalPixelCNN
from armcodec.models.temporal_exact import IntTemporalPixelCNN, window_offsets
from armcodec.training.loop import load_checkpoint
from armcodec.weights import _from_first_layout, export_weights


def export_conv(conv, offsets, in_scale: float, out_scale: torch.Tensor, in_max: int) -> IntConv:
    """Float conv (masked, dense or 1x1) -> IntConv with the QAT model's weight and bias grids."""
    w = conv.weight.detach().double()
    if isinstance(conv, MaskedConv2d):
        w = w * conv.mask.double()
    s_w = weight_scale(w.float()).double()  # (C_out,), as in quantized_weight_bias
    w_int = torch.clamp(torch.round(w / s_w[:, None, None, None]), -127, 127)
    up, left = conv.origin
    rows = [w_int[:, :, di + up, dj + left] for di, dj in offsets]  # each (C_out, C_in)
    weight = torch.cat(rows, 1).t().contiguous().float()  # (n_off*C_in, C_out)
    bias = torch.round(conv.bias.detach().double() / (s_w * in_scale))
    real = s_w * in_scale / out_scale  # acc -> output integer multiplier
    shift = torch.floor(MULT_BITS - 1 - torch.log2(real)).clamp(0, 52)
    mult = torch.round(real * torch.pow(2.0, shift))
    return IntConv(list(offsets), weight, bias, mult, torch.pow(2.0, -shift), in_max)


def export_pixelcnn(model: PixelCNN) -> IntPixelCNN:
    """A trained (QAT) float model -> its integer-exact model, on the QAT model's grids."""
    cfg = model.cfg
    f = cfg.width
    strict = causal_offsets(cfg.first_reach, cfg.slope, strict=True)
    block = causal_offsets(cfg.block_reach, cfg.slope, strict=False)
    full = lambda n, s: torch.full((n,), s, dtype=torch.float64)  # noqa: E731
    rs, rmax = cfg.resid_scale, cfg.resid_max
    first = export_conv(model.first, strict, INPUT_SCALE, full(f, rs), 128)
    gates = [export_conv(g, block, rs, full(2 * f, GATE_SCALE), rmax) for g in model.gate_convs]
    mixes = [export_conv(m, [(0, 0)], GATE_SCALE, full(f, rs), GATE_MAX) for m in model.mix_convs]
    hid = export_conv(model.head_hidden, [(0, 0)], rs, full(cfg.head_width, cfg.head_scale), rmax)
    out = export_conv(model.head_out, [(0, 0)], cfg.head_scale, param_scales(cfg), cfg.head_max)
    skip = export_conv(model.skip, strict, INPUT_SCALE, param_scales(cfg), 128) if cfg.linear_skip else None
    return IntPixelCNN(cfg, first, gates, mixes, hid, out, skip)


def export_pyramid(model: Pyramid) -> IntPyramid:
    """A trained (QAT) pyramid -> its integer-exact model: the base as :func:`export_pixelcnn`, the
    passes' dense layers on the same grids (their input, :func:`~armcodec.models.polyphase_exact.pass_input`,
    is within +-INPUT_MAX)."""
    cfg = model.cfg
    f, rs, rmax = cfg.width, cfg.resid_scale, cfg.resid_max
    full = lambda n, s: torch.full((n,), s, dtype=torch.float64)  # noqa: E731
    passes = []
    for net in model.passes:
        dense = net.first.offsets
        first = export_conv(net.first, dense, INPUT_SCALE, full(f, rs), INPUT_MAX)
        gates = [export_conv(g, g.offsets, rs, full(2 * f, GATE_SCALE), rmax) for g in net.gate_convs]
        mixes = [export_conv(m, [(0, 0)], GATE_SCALE, full(f, rs), GATE_MAX) for m in net.mix_convs]
        hid = export_conv(net.head_hidden, [(0, 0)], rs, full(cfg.head_width, cfg.head_scale), rmax)
        out = export_conv(net.head_out, [(0, 0)], cfg.head_scale, param_scales(cfg), cfg.head_max)
        skip = export_conv(net.skip, dense, INPUT_SCALE, param_scales(cfg), INPUT_MAX)
        passes.append(IntPassNet(cfg, first, gates, mixes, hid, out, skip))
    return IntPyramid(cfg, export_pixelcnn(model.base), passes)


def export_temporal(model: TemporalPixelCNN) -> IntTemporalPixelCNN:
    """A trained (QAT) temporal model -> its integer-exact model: :func:`export_pixelcnn` plus the
    context layers (input: the image input's grid, output: the residual and parameter grids)."""
    cfg = model.cfg
    b = export_pixelcnn(model)
    win = window_offsets(cfg.context_reach)
    cf = export_conv(model.context_first, win, INPUT_SCALE, torch.full((cfg.width,), cfg.resid_scale, dtype=torch.float64), 128)
    skip = copy.deepcopy(model.context_skip)  # the means' rows only (the float model's mask)
    skip.weight.data *= model.skip_mask
    cs = export_conv(skip, win, INPUT_SCALE, param_scales(cfg), 128)
    return IntTemporalPixelCNN(cfg, b.first, b.gates, b.mixes, b.head_hidden, b.head_out, b.skip, cf, cs)


def export_net(model: torch.nn.Module):
    """Any trained float model -> its integer-exact model."""
    if isinstance(model, Pyramid):
        return export_pyramid(model)
    return export_temporal(model) if isinstance(model, TemporalPixelCNN) else export_pixelcnn(model)


def export_checkpoint(ckpt: Path, weights_dir: Path, name: str, tile_size: int, extra: dict | None = None) -> dict:
    """Export a (QAT) checkpoint's integer weights; see :func:`export_model`."""
    model, meta, _ = load_checkpoint(Path(ckpt))
    training = {k: meta.get(k) for k in ("data", "settings", "qat", "warm_start", "regrid") if k in meta}
    training["steps"] = meta.get("step")
    return export_model(model, weights_dir, name, tile_size, {"training": training, **(extra or {})})


def export_model(model: torch.nn.Module, weights_dir: Path, name: str, tile_size: int, extra: dict | None = None) -> dict:
    """Write ``name.safetensors`` (integer weights and lookup tables) into ``weights_dir`` and add
    or replace its weights entry and a preset of the same name (see :func:`write_model`).    """
    net = export_net(model)
    return write_model(net, TableLUTs.compute(), sum(p.numel() for p in model.parameters()),
                       weights_dir, name, tile_size, extra)


def write_model(net, luts: TableLUTs, n_params: int, weights_dir: Path, name: str, tile_size: int,
                extra: dict | None = None) -> dict:
    """Write an integer model (any registered architecture) and its lookup tables as
    ``name.safetensors``, add or replace the weights entry ``name`` (keeping its notes) and a
    preset ``name`` that uses them (keeping its encoder settings, and its measured figures while the
    weights are the same).  Returns the weights entry, with the preset's tile size."""
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    fname = f"{name}.safetensors"
    sha = export_weights(net, luts, weights_dir / fname)
    man_path = weights_dir / "manifest.json"
    manifest = json.loads(man_path.read_text()) if man_path.exists() else {"weights": [], "presets": []}
    if "models" in manifest and "weights" not in manifest:
        manifest = _from_first_layout(manifest["models"])
    old = next((w for w in manifest["weights"] if w["name"] == name), {})
    entry = {
        **{k: v for k, v in old.items() if k not in ("sha256", "config", "architecture", "file")},
        "name": name, "file": fname, "sha256": sha, "architecture": net.architecture,
        "config": net.cfg.to_dict(), "parameters": n_params, **(extra or {}),
    }
    manifest["weights"] = [w for w in manifest["weights"] if w["name"] != name and w["sha256"] != sha] + [entry]
    old_preset = next((p for p in manifest["presets"] if p["name"] == name), {})
    same = old_preset.get("weights") == sha
    preset = {
        # measured figures ({dataset: {"bpsp": ...}}) only while the weights are the same
        **{k: v for k, v in old_preset.items() if same or not (isinstance(v, dict) and "bpsp" in v)},
        "name": name, "weights": sha, "tile_size": tile_size, "encoder": old_preset.get("encoder", {}),
    }
    known = {w["sha256"] for w in manifest["weights"]}
    manifest["presets"] = [p for p in manifest["presets"] if p["name"] != name and p["weights"] in known] + [preset]
    man_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return {**entry, "tile_size": tile_size}
