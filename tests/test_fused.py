"""The fused elementwise steps (armcodec.exact.fused): the compiled kernels give the torch
operations' integers on random and adversarial values (ties at exactly one half, accumulators
beyond 2**24, every clamp bound), the frequency tables' division included, and files are the same
bytes and decode alike with the kernels on and off."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import armcodec
from armcodec.exact import fused
from armcodec.exact.tables import PRECISION, quantized
from armcodec.models.pixelcnn import GATE_MAX

from armcodec.video import VideoCodec
from conftest import load, moving_frames, y4m_bytes
from test_video import decode_bytes, encode_bytes

pytestmark = pytest.mark.skipif(not fused.enabled("cpu"), reason="numba is not installed")


@pytest.fixture
def reference_only():
    fused.set_enabled(False)
    yield
    fused.set_enabled(True)


def scales(c: int, gen) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel ``m * 2**-shift`` (m odd, below 2**15) as the layers store them, and the shifts."""
    m = (torch.randint(0, 2**14, (c,), generator=gen) * 2 + 1).double()
    shift = torch.randint(8, 23, (c,), generator=gen)
    return m * 2.0 ** -shift.double(), shift


def accumulators(rows: int, c: int, shift: torch.Tensor, gen, dtype) -> torch.Tensor:
    """Random integers below 2**23 (2**36 in float64) and, in rows 0-5, ties: with m odd,
    ``acc = (2k + 1) * 2**(shift - 1)`` makes ``acc * scale + 1/2`` an integer, and one either
    side of them; in float64, row 6 beyond float32's integers."""
    big = 2**23 if dtype == torch.float32 else 2**36
    acc = torch.randint(-big, big, (rows, c), generator=gen).to(dtype)
    half = 2.0 ** (shift.double() - 1)
    for r, k in enumerate((1, -1, 3, -3)):
        acc[r] = (k * half).to(dtype)
    acc[4], acc[5] = acc[0] + 1, acc[0] - 1
    if dtype == torch.float64:
        acc[6] = 2.0**30 + torch.arange(c)
    return acc


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernels_give_the_torch_integers(dtype):
    gen = torch.Generator().manual_seed(3)
    for rows, c in ((1, 8), (7, 96), (300, 96), (2049, 60)):
        scale, shift = scales(c, gen)
        acc = accumulators(max(rows, 8), c, shift, gen, dtype)[:rows]
        add = torch.randint(-600, 601, (rows, c), generator=gen).double()
        resid = torch.randint(-511, 512, (rows, c), generator=gen).float()
        for lo, hi in ((-511, 511), (0, 127), (-2**30, 2**30)):
            want = fused.reference.requant_clamp(acc.clone(), scale, lo, hi)
            assert torch.equal(fused.requant_clamp(acc, scale, lo, hi), want)
            assert torch.equal(fused.requant_clamp(acc, scale, lo, hi, add),
                               fused.reference.requant_clamp(acc.clone(), scale, lo, hi, add))
        assert torch.equal(fused.mix_residual(acc, scale, resid, 511), fused.reference.mix_residual(acc.clone(), scale, resid, 511))
        assert torch.equal(fused.requant_sum(acc, scale, add), fused.reference.requant_sum(acc.clone(), scale, add))
        if c % 2 == 0:
            got, want = fused.gate(acc, scale, GATE_MAX), fused.reference.gate(acc.clone(), scale, GATE_MAX)
            assert got.dtype == want.dtype == torch.float32 and torch.equal(got, want)


@pytest.mark.parametrize("k", [0, 2])
def test_joined_kernels_give_the_torch_integers(k):
    """The gate and the residual add reading an int8 product's int32 halves (``(hi << k) + lo +
    bias`` their accumulators, the ties among them): the integers of the join then the torch steps;
    the gate's int8 output equals its float32 one, and the rows written to a map are the result."""
    gen = torch.Generator().manual_seed(7)
    for rows, f in ((1, 8), (9, 48), (300, 128)):
        scale, shift = scales(2 * f, gen)
        want_acc = accumulators(max(rows, 8), 2 * f, shift, gen, torch.float64)[:rows].clamp(-2**27, 2**27)
        bias = torch.randint(-5000, 5001, (2 * f,), generator=gen).double()
        joined = (want_acc - bias).long()  # the product's sum before the bias: acc = joined + bias
        hi = torch.div(joined, 2**k, rounding_mode="floor")
        prod = torch.cat([hi, joined - hi * 2**k]) if k else joined
        prod = prod.to(torch.int32)
        acc = prod[:rows].double() * 2**k + (prod[rows:].double() if k else 0) + bias
        assert torch.equal(acc, want_acc)
        want = fused.reference.gate(acc.clone(), scale, GATE_MAX)
        for int8 in (False, True):
            got = fused.join_gate(prod, rows, k, bias, scale, GATE_MAX, int8=int8)
            assert got.dtype == (torch.int8 if int8 else torch.float32) and torch.equal(got.float(), want)
        mix = prod[:rows, :f].contiguous()
        resid = torch.randint(-511, 512, (rows, f), generator=gen).float()
        want = fused.reference.mix_residual(mix.double() + bias[:f], scale[:f], resid, 511)
        dest = torch.zeros((rows + 5, f))
        at = torch.randperm(rows + 5, generator=gen)[:rows]
        got = fused.mix_residual_joined(mix, bias[:f], scale[:f], resid, 511, dest, at)
        assert torch.equal(got, want) and torch.equal(dest[at], want)
        assert torch.equal(fused.mix_residual_joined(mix, bias[:f], scale[:f], resid, 511), want)


@pytest.mark.parametrize("channels, features", [(3, 3), (3, 2), (3, 1), (1, 3)])
def test_channel_mixture_and_feedback_loops_give_the_torch_integers(channels, features):
    """The mixture's weights, means and scale indices of every channel (the coupling to earlier
    channels, the adaptation's offsets, every clamp reached) and the residual feedback's expected
    values and moved means: the compiled loops give the torch steps' integers."""
    from types import SimpleNamespace

    from armcodec.coding import feedback
    from armcodec.exact.tables import TableLUTs, channel_mixture

    gen = torch.Generator().manual_seed(11)
    cfg = SimpleNamespace(mixtures=5, image_channels=channels, coef_steps=1024)
    luts = TableLUTs.compute().to("cpu")
    tiles, tile = 2, 8
    n, i, j = (a.ravel() for a in np.meshgrid(np.arange(tiles), np.arange(tile), np.arange(tile), indexing="ij"))
    m = len(n)
    n_params = 3 * channels * 5 + channels * (channels - 1) // 2 * 5
    params = torch.randint(-600, 600, (m, n_params), generator=gen)
    params[:8] *= 40  # far beyond every clamp
    values = torch.randint(0, 256, (m, channels), generator=gen)
    values[:4] = torch.tensor([0, 255, 0, 255]).view(4, 1)
    shifts = torch.randint(-24, 25, (7, channels), generator=gen)
    blocks = torch.randint(0, 7, (m,), generator=gen)
    nb = feedback.neighbours(lambda di, dj: dj + 3 * di < 0)
    width = feedback.n_features(len(nb), channels - 1, channels, features)
    coefs = torch.randint(-128, 128, (tiles * feedback.sets_per_tile(features), channels, width), generator=gen)
    fb = feedback.Feedback(coefs, n, i, j, tile, nb, "cpu", features)
    fb.residuals.copy_(torch.randint(-4000, 4001, fb.residuals.shape, generator=gen))
    if features == 3:
        fb.set_levels(np.array([1, 2]))
    earlier = torch.randint(-4000, 4001, (m, channels), generator=gen)
    a, b = 5, m - 3
    for c in range(channels):
        for adapt in (None, (shifts, blocks[a:b])):
            got = channel_mixture(params[a:b], c, values[a:b], cfg, luts, *(adapt or (None, None)))
            got_fb = fb.move_means(a, b, c, earlier[a:b], got[0], got[1].clone())
            fused.set_enabled(False)
            try:
                want = channel_mixture(params[a:b], c, values[a:b], cfg, luts, *(adapt or (None, None)))
                want_fb = fb.move_means(a, b, c, earlier[a:b], want[0], want[1])
            finally:
                fused.set_enabled(True)
            for x, y in zip(got + got_fb, want + want_fb):
                assert x.dtype == y.dtype == torch.int64 and torch.equal(x, y), (c, adapt is None)
            assert int(got[2].min()) == 0 and int(got[1].max()) > int(got[1].min())


def test_ties_round_up():
    scale = torch.tensor([0.5, 3 * 2.0**-20], dtype=torch.float64)
    acc = torch.tensor([[1.0, 2.0**19], [-1.0, -(2.0**19)], [3.0, 3 * 2.0**19]], dtype=torch.float32)
    got = fused.requant_clamp(acc, scale, -1e9, 1e9)
    # floor(x + 1/2) at x = 0.5, -0.5, 1.5 and 1.5, -1.5, 4.5
    assert got.tolist() == [[1.0, 2.0], [0.0, -1.0], [2.0, 5.0]]
    assert torch.equal(got, fused.reference.requant_clamp(acc.clone(), scale, -1e9, 1e9))


def test_quantized_division():
    gen = torch.Generator().manual_seed(5)
    for one_division, top in ((True, 2**39), (False, 2**50)):
        for n in (16, 17, 256):
            d = torch.sort(torch.randint(0, top, (500, n + 1), generator=gen), dim=1).values
            d[:, 0] = 0
            d[:, -1] = torch.maximum(d[:, -1], d[:, -2] + 1)
            d[:3] = torch.arange(n + 1) * (top // (n + 1))  # equal steps: quotients land on integers
            d[3] = torch.cat([torch.zeros(n, dtype=torch.int64), torch.tensor([top - 1])])  # all mass in the last
            got = fused.quantized(d, 2**PRECISION, one_division)
            fused.set_enabled(False)
            try:
                want = quantized(d, one_division)
            finally:
                fused.set_enabled(True)
            assert torch.equal(got, want) and bool((got >= 1).all()) and bool((got.sum(1) == 2**PRECISION).all())


@pytest.mark.parametrize("model", ["pyramid", "fast"])
def test_files_are_the_same_with_the_kernels_off(model, reference_only):
    img = load("kodim23_rgb_64x48.png")
    codec = armcodec.Codec(model, classic=False)
    off = codec.encode(img).data
    fused.set_enabled(True)
    on = codec.encode(img).data
    assert on == off
    assert np.array_equal(codec.decode(on).array, img)
    fused.set_enabled(False)
    assert np.array_equal(codec.decode(on).array, img)


def test_video_files_are_the_same_with_the_kernels_off(reference_only):
    clip = y4m_bytes(moving_frames(3), [b""] * 3)
    codec = VideoCodec("video", "cpu")
    off = encode_bytes(codec, clip)
    fused.set_enabled(True)
    assert encode_bytes(codec, clip) == off
    assert decode_bytes(codec, off) == clip
    fused.set_enabled(False)
    assert decode_bytes(codec, off) == clip


def test_small_jobs_do_not_start_the_kernels():
    """A small image decodes without starting numba (its 0.2-0.45 s start would be most of the
    decode); a job of MIN_SAMPLES starts it."""
    code = (
        "import numpy as np, armcodec\n"
        "from armcodec.exact import fused\n"
        "c = armcodec.Codec('fast', classic=False)\n"
        "img = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)\n"
        "assert np.array_equal(c.decode(c.encode(img).data).array, img)\n"
        "print(fused._kernels is None)\n"
        "fused.prepare(fused.MIN_SAMPLES)\n"
        "print(fused.active('cpu'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]


def test_a_later_process_loads_the_kernels_from_numbas_cache():
    """The kernels are found in numba's cache by every later process, not compiled again (a
    kernel defined inside a function was compiled in every process: 1.5-2 s of a video decode)."""
    pytest.importorskip("numba")
    code = (
        "import torch\n"
        "from armcodec.exact import fused\n"
        "assert fused.enabled()\n"
        "acc, scale = torch.randn(10, 4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)\n"
        "fused.requant_clamp(acc, scale, -5.0, 5.0)\n"
        "fused.gate(torch.randn(10, 8), torch.ones(8, dtype=torch.float64), 64)\n"
        "k = fused._kernels\n"
        "print(sum(sum(getattr(k, n).stats.cache_misses.values()) for n in ('requant_clamp', 'gate')))\n"
    )
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[-1].stderr
    assert runs[1].stdout.split() == ["0"]  # the first run may have compiled them (a fresh checkout)


def test_a_decode_leaves_no_cycle_holding_its_state():
    """A decode's state and its compiled step (its maps and buffers: at 720p hundreds of MiB a
    frame) are freed when the decode ends, not kept in a reference cycle until the cyclic
    collector happens to run (a 1280x720 clip's decode grew by 150 MiB a frame that way)."""
    import gc

    img = load("kodim23_rgb_64x48.png")
    codec = armcodec.Codec("fast", classic=False)
    data = codec.encode(img).data
    fused.set_enabled(True)
    gc.collect()
    gc.disable()
    try:
        assert np.array_equal(codec.decode(data).array, img)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        left = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert not left & {"WavefrontState", "LeanStep", "StepBuffers", "Tensor"}, left
