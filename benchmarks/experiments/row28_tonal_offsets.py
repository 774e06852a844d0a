"""Would a log2-scale offset per *intensity band* pay, on top of the per-block offsets and the
residual feedback?  Sensor noise and film grain depend on brightness, and the model, trained on
downscaled photographs, does not know an image's noise curve; the per-32x32-block offsets adapt the
scale by place, not by tone.  Float NLL on the QAT graph of weights/train/default.ckpt.safetensors,
whole images in 512x512 tiles (edge tiles smaller, as the codec codes), feature set 2's mean
feedback (weighted least squares per tile and channel, coefficients on 1/64; the Newton steps are
left out on both sides).  Per pixel the NLL is tabulated for every total offset in 1/8 octave, then:

    blocks   an offset -8..7 per 32x32 block and channel (the codec's profile 2; 4 bits each)
    +tone B  and an offset -8..7 per tile, channel and band of the model's mean (B bands of 256/B
             levels; 4 bits each), chosen alternately with the block offsets (3 rounds)

Prints the change of each against blocks, side information counted.

    python benchmarks/tonal_offsets.py val 8          # the validation split (used to decide)
    python benchmarks/tonal_offsets.py kodak kodim03  # diagnosis only, never to choose
"""
import sys

import numpy as np
import torch

from benchmarks.experiments.row24_feedback_ablation import model, nll_with_shift  # noqa: E402
from benchmarks.experiments.row25_feedback_fit import features, images, solve, rounded, tile_index  # noqa: E402
import feedback_fit  # noqa: E402


T, BLOCK = 512, 32
OFFS = range(-8, 8)


def pick(table, groups, n_groups):
    """table: (O, N) NLL per candidate and pixel; -> per group the argmin of the summed NLL."""
    sums = torch.zeros(table.shape[0], n_groups, dtype=torch.float64)
    for k in range(table.shape[0]):
        sums[k].index_add_(0, groups, table[k])
    return sums.argmin(0), sums.min(0).values.sum().item()


def run(name, im, bands_list=(4, 8, 16)):
    x = torch.from_numpy(im.transpose(2, 0, 1)[None].astype(np.float32))
    H, W = x.shape[-2:]
    feedback_fit.T = T
    with torch.no_grad():
        out = torch.cat([torch.cat([model.features(x[..., y:y + T, xx:xx + T], qat=True) for xx in range(0, W, T)], -1)
                         for y in range(0, H, T)], -2)
        _, E, var = nll_with_shift(out, x, torch.zeros_like(x))
    r = x - E
    tiles, n_tiles = tile_index(H, W, T)
    F2 = [features(r, c, (0, 1), True) for c in range(3)]
    coefs = [rounded(solve(F2[c], r[0, c].flatten().double(), 1 / var[0, c].flatten().double().clamp_min(1e-2),
                           tiles, n_tiles)) for c in range(3)]
    delta = torch.stack([(F2[c] * coefs[c][tiles]).sum(1).view(H, W) for c in range(3)])[None].float()
    with torch.no_grad():  # (totals, 3, N): NLL at every total offset -16..14
        totals = range(-16, 15)
        table = torch.stack([nll_with_shift(out, x, delta, lshift=torch.full_like(x, o / 8))[0][0].flatten(1).double()
                             for o in totals])
    n = 3 * H * W
    bi = torch.arange(H).view(-1, 1) // BLOCK * (-(-W // BLOCK)) + torch.arange(W).view(1, -1) // BLOCK
    bi = bi.flatten()
    n_blocks = int(bi.max()) + 1
    res = [name[:30]]
    base = None
    for bands in (0,) + tuple(bands_list):
        total = 0.0
        for c in range(3):
            tab = table[:, c]  # (31, N)
            band = (tiles * bands + (E[0, c].flatten().clamp(0, 255.99) * bands / 256).long()) if bands else None
            blk = torch.full((n_blocks,), 8, dtype=torch.long)  # index into OFFS (0 offset)
            tone = torch.full((n_tiles * max(bands, 1),), 8, dtype=torch.long)
            for _ in range(3 if bands else 1):
                # block offsets given the tone offsets: candidate o at pixel -> total o + tone
                t_off = (tone[band] - 8) if bands else torch.zeros_like(bi)
                cand = torch.stack([tab[(o + t_off + 16).clamp(0, 30), torch.arange(tab.shape[1])] for o in OFFS])
                blk, nll = pick(cand, bi, n_blocks)
                if bands:
                    b_off = blk[bi] - 8
                    cand = torch.stack([tab[(o + b_off + 16).clamp(0, 30), torch.arange(tab.shape[1])] for o in OFFS])
                    tone, nll = pick(cand, band, n_tiles * bands)
            total += nll
        side = 4 * n_blocks * 3 + (4 * n_tiles * bands * 3)
        bpsp = (total + side) / n
        if base is None:
            base = bpsp
            res.append("blocks %.4f" % bpsp)
        else:
            res.append("+tone%d %+.2f%%" % (bands, 100 * (bpsp / base - 1)))
    print(*res, flush=True)


if __name__ == "__main__":
    torch.set_num_threads(2)
    for name, im in images(sys.argv[1:]):
        run(name, im)
