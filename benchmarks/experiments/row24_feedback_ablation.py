"""Before building the residual feedback (coder profiles 4 and 5): how much of the shipped
model's residual is linearly predictable from the residuals around a pixel, measured in float on
the QAT graph of weights/train/default.ckpt.safetensors (128x128 tiles), with in-sample least
squares fits (coefficients rounded to 1/64) and the best per-channel log2-scale offset in 1/8
applied to both sides of each comparison.  Prints, per image, the base bpsp and the change for:
all nine causal neighbours plus the pixel's earlier channels fitted per image; the earlier
channels only; the neighbours only; four neighbours plus the channels; all fitted per 128x128 tile
(before the cost of sending the coefficients).

    python benchmarks/feedback_ablation.py val 8                    # the validation split (used to decide)
    python benchmarks/feedback_ablation.py kodak kodim03 kodim12    # diagnosis only, never to choose

Paths are relative to the repository root and ../shared/data.  The codec's own figure (real files,
coefficients included) is benchmarks/feedback_gain.py.
"""
import sys, math, numpy as np, torch
import torch.nn.functional as F
from armcodec.training.data import list_images, split_train_val, load_rgb
from armcodec.training.loop import load_checkpoint
from armcodec.models import pixelcnn as P
from armcodec.coding.feedback import CANDIDATES
from PIL import Image
torch.set_num_threads(2)
model, _, _ = load_checkpoint('weights/train/default.ckpt.safetensors'); model.eval()
cfg = model.cfg
NB = list(CANDIDATES)  # the codec's neighbours, nearest first

def nll_with_shift(out, x, delta, loff=None, lshift=None):
    # delta: (B,C,H,W) added to every component mean (after coupling)
    logits, means, logs, coefs = P.split_params(out, cfg)
    means = torch.round(means*P.MEAN_GAIN*16)/16
    logits = torch.round(logits*8)/8; logs=torch.round(logs*8)/8; coefs=torch.round(coefs*cfg.coef_steps)/cfg.coef_steps
    coefs = coefs.clamp(-1,1)
    if loff is not None: logs = logs + loff.view(1,3,1,1,1)
    if lshift is not None: logs = logs + lshift.unsqueeze(2)  # (B,C,H,W) log2-scale shift per subpixel
    logs = logs.clamp(P.LOG2_SCALE_MIN, P.LOG2_SCALE_MAX)
    xc = x-128; mus=[]; pair=0
    for c in range(3):
        mu = 128+means[:,c]
        for p in range(c):
            mu = mu + torch.floor(coefs[:,pair]*xc[:,p:p+1]*16)/16; pair+=1
        mus.append(mu)
    mu = torch.stack(mus,1)
    w = torch.softmax(logits*math.log(2), 2)
    E = (w*mu.clamp(-2,258)).sum(2)
    var = (w*((math.pi**2/3)*torch.exp2(2*logs) + (mu.clamp(-2,258)-E.unsqueeze(2))**2)).sum(2)  # the mixture's variance
    mu = (mu + delta.unsqueeze(2)).clamp(-2,258)
    inv_s = torch.exp2(-logs); xv=x.unsqueeze(2); cen=xv-mu
    pi=inv_s*(cen+.5); mi=inv_s*(cen-.5)
    lcp = pi-F.softplus(pi); l1m=-F.softplus(mi)
    cd = torch.sigmoid(pi)-torch.sigmoid(mi)
    mid = inv_s*cen; lpm = mid - logs*math.log(2) - 2*F.softplus(mid)
    lm = torch.where(cd>1e-5, torch.log(cd.clamp_min(1e-12)), lpm)
    lp = torch.where(xv<.5, lcp, torch.where(xv>254.5, l1m, lm))
    nll = -torch.logsumexp(lp+torch.log_softmax(logits*math.log(2),2),2)/math.log(2)
    return nll, E, var

def shifted(r, di, dj):
    # value of r at (i+di, j+dj), zero outside
    out = torch.zeros_like(r)
    H, W = r.shape[-2:]
    ys = slice(max(0,-di), H-max(0,di)); xs = slice(max(0,-dj), W-max(0,dj))
    yd = slice(max(0,di), H-max(0,-di)) ; xd = slice(max(0,dj), W-max(0,-dj))
    out[..., ys, xs] = r[..., yd, xd]
    return out

def best_off(out, x, delta, lshift=None):
    per = []
    for o in [-0.5,-0.375,-0.25,-0.125,0,0.125,0.25]:
        nll = nll_with_shift(out, x, delta, torch.full((3,),o), lshift)[0]
        per.append(nll.mean((0,2,3)))
    per = torch.stack(per)  # (O, C)
    return per.min(0).values.mean().item(), per.argmin(0).tolist()

def fit(r, c, feats_idx):
    # feats_idx: (own-channel neighbours, earlier channels at the pixel[, other channels'
    # neighbours, extra own-channel offsets, constant])
    own, earlier = feats_idx[0], feats_idx[1]
    cross, extra, const = (feats_idx[2:] + ([], [], False))[:3] if len(feats_idx) > 2 else ([], [], False)
    feats = [shifted(r[:,c], di, dj) for di,dj in [NB[k] for k in own]] + [r[:,p] for p in range(c) if earlier]
    feats += [shifted(r[:,q], di, dj) for q in range(3) if q != c for di,dj in [NB[k] for k in cross]]
    feats += [shifted(r[:,c], di, dj) for di,dj in extra]
    if const: feats.append(torch.full_like(r[:,c], 16.0))
    if not feats: return torch.zeros_like(r[:,c])
    A = torch.stack([f.flatten() for f in feats],1).double(); b = r[:,c].flatten().double()
    coef = torch.linalg.lstsq(A, b).solution
    coef = torch.round(coef*64).clamp(-128,128)/64
    return (A@coef).reshape(r[:,c].shape).float()

def run(name, im):
    x = torch.from_numpy(im.transpose(2,0,1)[None].astype(np.float32))
    H, W = x.shape[-2:]
    H -= H%128; W -= W%128
    x = x[..., :H, :W]
    with torch.no_grad():
        outs = []
        for y in range(0,H,128):
            row=[]
            for xx in range(0,W,128):
                row.append(model.features(x[..., y:y+128, xx:xx+128], qat=True))
            outs.append(torch.cat(row,-1))
        out = torch.cat(outs,-2)
        base, E, _ = nll_with_shift(out, x, torch.zeros_like(x))
        r = x - E
        b0 = base.mean().item()
        bo, _ = best_off(out, x, torch.zeros_like(x))
        res = [name[:30], 'base %.4f' % b0, 'base+off %.4f' % bo]
        allsp = list(range(len(NB)))
        variants = [('img all', (allsp, True), False), ('img cross', ([], True), False), ('img spatial', (allsp, False), False), ('img 4nb+cross', ([0,1,2,3], True), False), ('tile128 all', (allsp, True), True)]
        if EXTENDED:  # the candidates for a second version of the feedback, all per 128x128 tile
            variants = [('tile128 all', (allsp, True), True),
                        ('+xnb2', (allsp, True, [0, 1], [], False), True),
                        ('+xnb4', (allsp, True, [0, 1, 2, 3], [], False), True),
                        ('+xnb9', (allsp, True, allsp, [], False), True),
                        ('+ring3', (allsp, True, [], RING3, False), True),
                        ('+const', (allsp, True, [], [], True), True),
                        ('+xnb4+ring3', (allsp, True, [0, 1, 2, 3], RING3, False), True)]
        for label, fi, tiled in variants:
            delta = torch.zeros_like(x)
            for c in range(3):
                if not tiled:
                    delta[:,c] = fit(r, c, fi)
                else:
                    for y in range(0,H,128):
                        for xx in range(0,W,128):
                            sub = r[..., y:y+128, xx:xx+128]
                            delta[:, c, y:y+128, xx:xx+128] = fit(sub, c, fi)
            n, _ = best_off(out, x, delta)
            res.append('%s %+.2f%%' % (label, 100*(n/bo-1)))
    print(*res, flush=True)

if __name__ == '__main__':
    EXTENDED = '--extended' in sys.argv
    if EXTENDED: sys.argv.remove('--extended')
    RING3 = [(-2, -2), (-2, 2), (0, -3), (-3, 0), (-1, -3), (-3, 1)]  # causal for slope 3
    which = sys.argv[1]
    if which == 'kodak':
        for n in sys.argv[2:]:
            run(n, np.asarray(Image.open(f'../shared/data/kodak/{n}.png').convert('RGB')))
    else:
        _, val = split_train_val(list_images('../shared/data/train'))
        for p, im in zip(val[:int(sys.argv[2])], load_rgb(val[:int(sys.argv[2])])):
            run(p.name, im.transpose(1,2,0))
