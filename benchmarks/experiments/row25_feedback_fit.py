"""How the encoder should choose the residual feedback's coefficients (an encoder-only choice: the
format and the decoder stay as they are).  Least squares weighs every residual alike, but the
rate is the model's NLL, which cares little about a residual where the model's own mixture is
wide.  Measured in float on the QAT graph of weights/train/default.ckpt.safetensors, features and
tiles as in the codec (9 causal neighbours + the pixel's earlier channels, per 128x128 tile and
channel), coefficients rounded to 1/64, the best per-channel log2-scale offset applied to every
row (as ``benchmarks/feedback_ablation.py``).  Prints per image the change against no feedback:

    ls       least squares (what the codec did first)
    wls      weighted least squares, weight 1 / the mixture's variance at the pixel
    irls     iteratively reweighted: the logistic loss's weights psi(u)/u / s^2 (u = r/s), 3 rounds
    nll      the coefficients that minimise the NLL itself (Adam from wls, float)

    python benchmarks/feedback_fit.py val 8        # the validation split (used to decide)
    python benchmarks/feedback_fit.py kodak kodim03 kodim05    # diagnosis only, never to choose
    python benchmarks/feedback_fit.py --extended --tile 256 --block 128 val 8   # more features, tile, block
"""
import math
import sys

import numpy as np
import torch

from benchmarks.experiments.row24_feedback_ablation import NB, best_off, model, nll_with_shift, shifted  # noqa: E402

from armcodec.training.data import list_images, load_rgb, split_train_val  # noqa: E402

T = 128  # tile side (--tile N)


def tile_index(H, W, block=None):
    """Each pixel's coefficient block (``block`` side, default the tile) and the block count."""
    b = block or T
    across = -(-W // b)  # edge tiles are smaller, as in the codec
    ti = torch.arange(H).view(-1, 1) // b * across + torch.arange(W).view(1, -1) // b
    return ti.flatten(), -(-H // b) * across


RING = ((-1, -2), (-2, -2), (-2, 2), (0, -3), (-3, 0))  # --more: own-channel offsets beyond the codec's 9 (causal at slope 3)
PX4 = ((0, -1), (-1, 0), (-1, -1), (-1, 1))  # --more: a neighbour's value minus the model's mean here


def features(r, c, cross=(), const=False, ring=False, px=None):
    f = [shifted(r[:, c], di, dj) for di, dj in NB + (list(RING) if ring else [])] + [r[:, p] for p in range(c)]
    f += [] if px is None else [shifted(px[0][:, c], di, dj) - px[1][:, c] for di, dj in PX4]
    f += [shifted(r[:, q], di, dj) for q in range(3) if q != c for di, dj in [NB[k] for k in cross]]
    f += [torch.full_like(r[:, c], 16.0)] if const else []
    return torch.stack([t.flatten() for t in f], 1).double()  # (N, k)


def solve(F, y, w, tiles, n_tiles):
    k = F.shape[1]
    ata = torch.zeros(n_tiles, k, k, dtype=torch.float64).index_add_(0, tiles, (w.view(-1, 1, 1) * F.unsqueeze(2) * F.unsqueeze(1)))
    aty = torch.zeros(n_tiles, k, dtype=torch.float64).index_add_(0, tiles, w.view(-1, 1) * F * y.view(-1, 1))
    ata += 1e-3 * ata.diagonal(dim1=1, dim2=2).mean(1).view(-1, 1, 1) * torch.eye(k, dtype=torch.float64)
    return torch.linalg.solve(ata, aty.unsqueeze(2)).squeeze(2)  # (n_tiles, k)


def rounded(a):
    return torch.round(a * 64).clamp(-128, 127) / 64


def run(name, im):
    x = torch.from_numpy(im.transpose(2, 0, 1)[None].astype(np.float32))
    H, W = x.shape[-2:]
    if not (SCALE or MORE or CHOICE):  # (the earlier measurements cropped to whole tiles; --scale and --more code edge tiles as the codec does)
        H -= H % T
        W -= W % T
        x = x[..., :H, :W]
    with torch.no_grad():
        out = torch.cat([torch.cat([model.features(x[..., y:y + T, xx:xx + T], qat=True) for xx in range(0, W, T)], -1)
                         for y in range(0, H, T)], -2)
        _, E, var = nll_with_shift(out, x, torch.zeros_like(x))
        r = x - E
        bo, _ = best_off(out, x, torch.zeros_like(x))
    tiles, n_tiles = tile_index(H, W)
    Fs = [features(r, c) for c in range(3)]
    ys = [r[0, c].flatten().double() for c in range(3)]
    vs = [var[0, c].flatten().double().clamp_min(1e-2) for c in range(3)]

    def delta_of(coefs):
        return torch.stack([(Fs[c] * coefs[c][tiles]).sum(1).view(H, W) for c in range(3)])[None].float()

    def score(coefs):
        with torch.no_grad():
            return best_off(out, x, delta_of([rounded(a) for a in coefs]))[0]

    fits = {}
    if SCALE:  # after the mean feedback (feature set 2: wls + xnb2 + const, per tile): a log2-scale
        # shift per pixel from the residual energy the feedback leaves around it, s = a * g + b per
        # tile and channel (fitted on the NLL, rounded to 1/8), s rounded to 1/8 octave
        F2 = [features(r, c, (0, 1), True) for c in range(3)]
        coefs = [rounded(solve(F2[c], ys[c], 1 / vs[c], tiles, n_tiles)) for c in range(3)]
        delta = torch.stack([(F2[c] * coefs[c][tiles]).sum(1).view(H, W) for c in range(3)])[None].float()
        with torch.no_grad():
            fb2 = best_off(out, x, delta)[0] + 8 * n_tiles * sum(f.shape[1] for f in F2) / (3 * H * W)
        r2 = (r - delta)[0].abs()  # (3,H,W) what the feedback leaves
        sig = var[0].sqrt()
        nb4 = [(0, -1), (-1, 0), (-1, -1), (-1, 1)]
        act = sum(shifted(r2, di, dj) for di, dj in nb4) / 4
        gs = {"nb4": torch.log2(1 + act) - torch.log2(1 + sig)}
        with torch.no_grad():  # integer-shaped: floor(8 log2(64 + 16 sum4 |r|)) / 8 - the mixture's mean log2-scale
            logits, _, logs, _ = __import__("armcodec.models.pixelcnn", fromlist=["x"]).split_params(out, model.cfg)
            w = torch.softmax(torch.round(logits * 8) / 8 * math.log(2), 2)
            mlog = torch.floor(8 * (w * torch.round(logs * 8) / 8).sum(2)) / 8  # (1,3,H,W)
        e16 = torch.floor(16 * 4 * act)
        gs["int4"] = torch.floor(8 * torch.log2(64 + e16)) / 8 - mlog[0]
        e16b = torch.stack([e16[0], e16[1] + torch.floor(16 * 2 * r2[0]), e16[2] + torch.floor(16 * (r2[0] + r2[1]))])
        gs["int4+earlier"] = torch.floor(8 * torch.log2(64 + e16b)) / 8 - mlog[0]
        res = [name[:30], "base+off %.4f" % bo, "fb2 %+.2f%%" % (100 * (fb2 / bo - 1))]
        for label, g in gs.items():
            ab = torch.zeros(n_tiles, 3, 2, requires_grad=True)
            opt = torch.optim.Adam([ab], lr=0.02)
            idx = tiles.view(H, W)
            for _ in range(80):
                opt.zero_grad()
                p = ab[idx]  # (H,W,3,2)
                ls = (p[..., 1].permute(2, 0, 1) * g + p[..., 0].permute(2, 0, 1))[None]
                loss = nll_with_shift(out.detach(), x, delta, lshift=ls)[0].mean()
                loss.backward()
                opt.step()
            with torch.no_grad():
                p = (torch.round(ab * 8) / 8)[idx]
                ls = (p[..., 1].permute(2, 0, 1) * g + p[..., 0].permute(2, 0, 1))[None]
                n = best_off(out, x, delta, lshift=torch.floor(ls * 8) / 8)[0] + 8 * n_tiles * sum(f.shape[1] + 2 for f in F2) / (3 * H * W)
            res.append("%s %+.2f%%" % (label, 100 * (n / bo - 1)))
        print(*res, flush=True)
        return
    if EXTENDED:  # wls with more features (a format change): other channels' neighbours, a constant;
        # with --block B also the coefficients per BxB block of the tile; the change includes the
        # coefficients' 8 bits each
        variants = [("wls", (), False, T), ("wls+xnb2", (0, 1), False, T), ("wls+xnb4", (0, 1, 2, 3), False, T),
                    ("wls+const", (), True, T), ("wls+xnb2+const", (0, 1), True, T)]
        if MORE:
            variants = [("fb2", (0, 1), True, T), ("fb2+xnb4", (0, 1, 2, 3), True, T), ("fb2+ring5", (0, 1), True, T, True),
                        ("fb2+px4", (0, 1), True, T, False, True)]
        if BLOCK:
            variants += [(f"wls/{BLOCK}", (), False, BLOCK), (f"wls+xnb2+const/{BLOCK}", (0, 1), True, BLOCK)]
        if CHOICE:  # feature set 2 per tile, per BLOCK quarter, and the cheaper of the two per tile (1 bit each)
            variants = [("fb2", (0, 1), True, T), (f"fb2/{BLOCK}", (0, 1), True, BLOCK)]
        deltas = {}
        for label, cross, const, block, *more in variants:
            ring, px = (more + [False, False])[:2]
            blocks, n_blocks = tile_index(H, W, block)
            F2 = [features(r, c, cross, const, ring, (x, x - r) if px else None) for c in range(3)]
            coefs = [rounded(solve(F2[c], ys[c], 1 / vs[c], blocks, n_blocks)) for c in range(3)]
            delta = torch.stack([(F2[c] * coefs[c][blocks]).sum(1).view(H, W) for c in range(3)])[None].float()
            side = 8 * n_blocks * sum(F2[c].shape[1] for c in range(3)) / (3 * H * W)
            deltas[label] = (delta, blocks, 8 * sum(F2[c].shape[1] for c in range(3)))
            with torch.no_grad():
                fits[label] = best_off(out, x, delta)[0] + side
        if CHOICE:
            with torch.no_grad():
                costs = []  # per tile: (NLL bits at offset 0, coefficient bits) of each form
                for label in ("fb2", f"fb2/{BLOCK}"):
                    delta, blocks, bits_per_block = deltas[label]
                    nll = nll_with_shift(out, x, delta)[0][0].sum(0).flatten().double()
                    first = torch.from_numpy(np.unique(blocks.numpy(), return_index=True)[1])  # a pixel of each block
                    n_blk = torch.zeros(n_tiles, dtype=torch.float64).index_add_(
                        0, tiles[first], torch.ones(len(first), dtype=torch.float64))
                    costs.append((torch.zeros(n_tiles, dtype=torch.float64).index_add_(0, tiles, nll), bits_per_block * n_blk))
                split = costs[1][0] + costs[1][1] < costs[0][0] + costs[0][1]
                delta = torch.where(split[tiles].view(1, 1, H, W), deltas[f"fb2/{BLOCK}"][0], deltas["fb2"][0])
                side = (torch.where(split, costs[1][1], costs[0][1]).sum().item() + n_tiles) / (3 * H * W)
                fits["choice"] = best_off(out, x, delta)[0] + side
                fits[f"choice({int(split.sum())}/{n_tiles} split)"] = fits.pop("choice")
        print(name[:30], "base+off %.4f" % bo, *["%s %+.2f%%" % (k, 100 * (v / bo - 1)) for k, v in fits.items()], flush=True)
        return
    fits["ls"] = [solve(Fs[c], ys[c], torch.ones_like(ys[c]), tiles, n_tiles) for c in range(3)]
    fits["wls"] = [solve(Fs[c], ys[c], 1 / vs[c], tiles, n_tiles) for c in range(3)]
    irls = [a.clone() for a in fits["wls"]]
    for _ in range(3):
        for c in range(3):
            s = (3 * vs[c]).sqrt() / math.pi
            u = (ys[c] - (Fs[c] * irls[c][tiles]).sum(1)) / s
            w = torch.where(u.abs() < 1e-3, torch.full_like(u, 0.5), torch.tanh(u / 2) / u) / s ** 2
            irls[c] = solve(Fs[c], ys[c], w, tiles, n_tiles)
    fits["irls"] = irls
    params = [a.clone().float().requires_grad_(True) for a in fits["wls"]]
    opt = torch.optim.Adam(params, lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        delta = torch.stack([(Fs[c].float() * params[c][tiles]).sum(1).view(H, W) for c in range(3)])[None]
        loss = nll_with_shift(out.detach(), x, delta)[0].mean()
        loss.backward()
        opt.step()
    fits["nll"] = [p.detach().double() for p in params]
    res = [name[:30], "base+off %.4f" % bo] + ["%s %+.2f%%" % (k, 100 * (score(v) / bo - 1)) for k, v in fits.items()]
    print(*res, flush=True)


def images(args):
    """(name, uint8 (H, W, 3)) of ``val N`` (the first N validation photographs) or ``kodak NAME...``."""
    if args[0] == "kodak":
        from PIL import Image
        for n in args[1:]:
            yield n, np.asarray(Image.open(f"../shared/data/kodak/{n}.png").convert("RGB"))
    else:
        _, val = split_train_val(list_images("../shared/data/train"))
        k = int(args[1])
        for p, im in zip(val[:k], load_rgb(val[:k])):
            yield p.name, im.transpose(1, 2, 0)


EXTENDED = "--extended" in sys.argv or "--more" in sys.argv or "--choice" in sys.argv
MORE = "--more" in sys.argv
CHOICE = "--choice" in sys.argv  # with --block B: per tile the cheaper of per-tile and per-block coefficients  # with the extended fit: feature set 2 against more own neighbours, 4 cross neighbours, neighbours' values
SCALE = "--scale" in sys.argv
BLOCK = None  # --block B: also fit the coefficients per BxB block

if __name__ == "__main__":
    torch.set_num_threads(2)
    for flag in ("--extended", "--scale", "--more", "--choice"):
        if flag in sys.argv:
            sys.argv.remove(flag)
    for opt in ("--tile", "--block"):
        if opt in sys.argv:
            k = sys.argv.index(opt)
            globals()[opt[2:].upper() if opt == "--block" else "T"] = int(sys.argv[k + 1])
            del sys.argv[k:k + 2]
    for name, im in images(sys.argv[1:]):
        run(name, im)
