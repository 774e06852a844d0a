"""Integer tables: the fast path equals a direct reference, and every table is a valid 24-bit pmf."""
import numpy as np
import pytest
import torch

from armcodec.models.pixelcnn import PixelCNNConfig
from armcodec.exact import fused, tables
from armcodec.exact.tables import (
    CDF_BITS, CDF_OFFSET, MEAN_STEPS, N_SYMBOLS, PRECISION, TableLUTs, channel_tables, mix_windows,
    mixture_params, mixture_weights, symbol_bits,
)

CFG = PixelCNNConfig(mixtures=3)
LUTS = TableLUTs.compute().to("cpu")


def reference_tables(params, channel, known, cfg, luts):
    """Direct per-component formula: pmf_k[v] = cdf(v + 1/2) - cdf(v - 1/2), weights from the LUT."""
    logits, means, scale_idx = mixture_params(params, channel, known, cfg)
    out = []
    for r in range(params.shape[0]):
        mass = np.zeros(N_SYMBOLS, dtype=np.int64)
        top = int(logits[r].max())
        for k in range(cfg.mixtures):
            w = int(luts.weight[min(top - int(logits[r, k]), luts.weight.numel() - 1)])
            cdf = [0] + [int(luts.cdf[scale_idx[r, k], 16 * v - 8 - int(means[r, k]) + CDF_OFFSET]) for v in range(1, 256)] + [2**CDF_BITS]
            mass += w * np.diff(np.array(cdf, dtype=np.int64))
        q = 1 + mass * (2**PRECISION - N_SYMBOLS) // mass.sum()
        q[np.argmax(q)] += 2**PRECISION - q.sum()
        out.append(q)
    return torch.from_numpy(np.stack(out))


def random_params(n, seed, spread=3000):
    g = torch.Generator().manual_seed(seed)
    p = torch.randint(-200, 200, (n, CFG.n_params), generator=g)
    k, c = CFG.mixtures, CFG.image_channels
    p[:, k * c : 2 * k * c] = torch.randint(-spread, spread, (n, k * c), generator=g)  # means
    p[:, 2 * k * c : 3 * k * c] = torch.randint(-60, 70, (n, k * c), generator=g)  # beyond both scale ends
    return p


def extreme_params(mixtures, n):
    """(config, head integers (n, n_params), known channels (n, 3)) with the sharpest and flattest
    components, means beyond both ends and, in row 0, every component at the largest weight."""
    cfg = PixelCNNConfig(mixtures=mixtures)
    g = torch.Generator().manual_seed(mixtures)
    k, c = mixtures, cfg.image_channels
    params = torch.randint(-400, 400, (n, cfg.n_params), generator=g)
    params[:, k * c : 2 * k * c] = torch.randint(-3000, 3000, (n, k * c), generator=g)
    params[:, 2 * k * c : 3 * k * c] = torch.randint(-60, 70, (n, k * c), generator=g)
    params[0, :k] = 0  # every component the largest weight: the largest sums
    return cfg, params, torch.randint(0, 256, (n, 3), generator=g)


@pytest.mark.parametrize("channel", [0, 1, 2])
def test_fast_tables_equal_reference(channel):
    params = random_params(40, channel)
    known = torch.randint(0, 256, (40, 3), generator=torch.Generator().manual_seed(9))
    fast = channel_tables(params, channel, known, CFG, LUTS)
    assert torch.equal(fast, reference_tables(params, channel, known, CFG, LUTS))


@pytest.mark.parametrize("mixtures", [1, 5, 127, 128, 256])
def test_both_divisions_equal_reference_up_to_the_largest_mixture(mixtures):
    """The float64 division (below FLOAT_DIVISION_MIXTURES components) and the int64 one give the
    reference's integers, with the sharpest and the flattest components and the extreme means."""
    cfg, params, known = extreme_params(mixtures, 6)
    assert torch.equal(channel_tables(params, 0, known, cfg, LUTS), reference_tables(params, 0, known, cfg, LUTS))


def test_summed_windows_equal_the_gathered_product():
    """mix_windows on a CPU: embedding_bag over the overlapping rows view and the gather + bmm give
    the same integers, at the sharpest and flattest scales, the extreme means and the largest
    weights (every component at the top logit)."""
    params = random_params(3000, 5, spread=10**6)
    params[:50, : CFG.mixtures] = 0
    logits, means, scale_idx = mixture_params(params, 0, torch.zeros((3000, 0), dtype=torch.int64), CFG)
    w = mixture_weights(logits, CFG, LUTS).double()
    summed = mix_windows(w, means, scale_idx, LUTS, gather=False)
    assert torch.equal(summed, mix_windows(w, means, scale_idx, LUTS, gather=True))
    assert float(summed.max()) == CFG.mixtures * 2**tables.WEIGHT_BITS * 2**CDF_BITS  # the largest sums are reached


def test_large_batches_give_the_tables_of_their_rows():
    """component_tables in parts of TABLE_ROWS rows (embedding_bag on a CPU) equals the tables of
    small slices (the gather) and the direct reference on a sample of rows."""
    n = tables.TABLE_ROWS + 700
    params = random_params(n, 11)
    known = torch.randint(0, 256, (n, 3), generator=torch.Generator().manual_seed(12))
    for c in range(3):
        big = channel_tables(params, c, known, CFG, LUTS)
        small = torch.cat([channel_tables(params[a : a + 100], c, known[a : a + 100], CFG, LUTS) for a in range(0, n, 100)])
        assert torch.equal(big, small)
    rows = torch.arange(0, n, 97)
    assert torch.equal(big[rows], reference_tables(params[rows], 2, known[rows], CFG, LUTS))


def test_tables_are_valid_pmfs_even_for_extreme_parameters():
    params = random_params(2000, 1, spread=10**6)
    params[:100] = torch.randint(-(2**40), 2**40, (100, CFG.n_params))
    known = torch.randint(0, 256, (2000, 3))
    for c in range(3):
        q = channel_tables(params, c, known, CFG, LUTS)
        assert q.shape == (2000, 256)
        assert int(q.min()) >= 1
        assert bool((q.sum(1) == 2**PRECISION).all())


def test_sharp_distribution_costs_almost_nothing():
    """A narrow component centred on a value gives that value nearly all the mass."""
    params = torch.zeros((1, CFG.n_params), dtype=torch.int64)
    k, c = CFG.mixtures, CFG.image_channels
    params[0, k * c : 2 * k * c] = (200 - 128) * MEAN_STEPS
    params[0, 2 * k * c : 3 * k * c] = -32  # smallest scale
    q = channel_tables(params, 0, torch.zeros((1, 0), dtype=torch.int64), CFG, LUTS)
    assert symbol_bits(q, torch.tensor([200])) < 0.01
    assert symbol_bits(q, torch.tensor([10])) == pytest.approx(PRECISION, abs=0.01)


def test_lookup_tables_validate_and_reject_tampering():
    luts = TableLUTs.compute()
    luts.validate()
    bad = luts.cdf.clone()
    bad[3, 100] = bad[3, 99] - 1
    with pytest.raises(ValueError):
        TableLUTs(bad, luts.weight).validate()


# coder tool 5: binned symbols (a sample's bin of BIN values, then its place in the bin)

def reference_binned(params, channel, known, cfg, luts, values):
    """Direct formula of BinnedTables for each row's sample ``values``: (first table, second table
    of the value's bin), from D(v) = 64 C(v) + v (W >> FLOOR_SHIFT), C(v) = sum_k w_k cdf(16 v - 8 - mean_k),
    C(0) = 0, C(256) = W 2**18, W = sum_k w_k (Python integers: no overflow to hide)."""
    logits, means, scale_idx = mixture_params(params, channel, known, cfg)
    firsts, seconds = [], []

    def quantize(c):
        n = len(c) - 1
        span = c[-1] - c[0]
        cum = [j + (c[j] - c[0]) * (2**PRECISION - n) // span for j in range(n + 1)]
        assert cum[-1] == 2**PRECISION
        return np.diff(np.array(cum, dtype=np.int64))

    for r in range(params.shape[0]):
        top = int(logits[r].max())
        ws = [int(luts.weight[min(top - int(logits[r, k]), luts.weight.numel() - 1)]) for k in range(cfg.mixtures)]

        def C(v):
            if v == 0:
                return 0
            if v == 256:
                return sum(ws) * 2**CDF_BITS
            return sum(w * int(luts.cdf[scale_idx[r, k], 16 * v - 8 - int(means[r, k]) + CDF_OFFSET]) for k, w in enumerate(ws))

        def D(v):
            return 2 ** (PRECISION - CDF_BITS) * C(v) + v * (sum(ws) >> tables.FLOOR_SHIFT)

        b = int(values[r]) // tables.BIN
        firsts.append(quantize([D(tables.BIN * j) for j in range(tables.N_BINS + 1)]))
        seconds.append(quantize([D(tables.BIN * b + j) for j in range(tables.BIN + 1)]))
    return torch.from_numpy(np.stack(firsts)), torch.from_numpy(np.stack(seconds))


@pytest.mark.parametrize("mixtures", [1, 3, 5, 256])
def test_binned_tables_equal_the_reference_on_both_paths(mixtures):
    """BinnedTables (the compiled loop of armcodec.exact.fused where numba runs, embedding_bag on a
    CPU, and the gather + bmm other devices use) equals the direct formula, with the sharpest and flattest scales, the extreme means, every bin (the first
    and last take C(0) = 0 and C(256) = the total) and the largest weights."""
    n = 48
    cfg, params, known = extreme_params(mixtures, n)
    values = torch.arange(n) * 255 // (n - 1)  # every bin, 0 and 255 included
    want_first, want_second = reference_binned(params, 1, known, cfg, LUTS, values)
    logits, means, scale_idx = mixture_params(params, 1, known, cfg)
    w = mixture_weights(logits, cfg, LUTS)
    started = fused.enabled("cpu")  # the compiled path where numba runs
    for gather in (None, False, True):
        t = tables.BinnedTables(w, means, scale_idx, LUTS, gather=gather)
        assert (t._kernel_args is not None) == (gather is None and started)
        bins, inside = t.split(values)
        assert torch.equal(t.first(), want_first)
        assert torch.equal(t.second(bins), want_second)
        assert torch.equal(t.join((bins, inside)), values)
        counts = t.counts(values)
        assert torch.equal(counts, want_first.gather(1, bins.view(-1, 1)).view(-1) * want_second.gather(1, inside.view(-1, 1)).view(-1))


def test_binned_tables_are_valid_and_cost_what_the_flat_tables_cost():
    """Every table of both levels is a valid 24-bit pmf for extreme parameters, and the bits of
    samples drawn from the flat tables differ by less than 0.001% between the two layouts."""
    params = random_params(3000, 21, spread=10**6)
    params[:100] = torch.randint(-(2**40), 2**40, (100, CFG.n_params))
    known = torch.randint(0, 256, (3000, 3), generator=torch.Generator().manual_seed(2))
    logits, means, scale_idx = mixture_params(params, 0, known[:, :0], CFG)
    w = mixture_weights(logits, CFG, LUTS)
    t = tables.BinnedTables(w, means, scale_idx, LUTS)
    assert t.first().shape == (3000, tables.N_BINS)
    for b in range(tables.N_BINS):
        q = t.second(torch.full((3000,), b))
        assert q.shape == (3000, tables.BIN) and int(q.min()) >= 1 and bool((q.sum(1) == 2**PRECISION).all())
    assert int(t.first().min()) >= 1 and bool((t.first().sum(1) == 2**PRECISION).all())
    q = channel_tables(params, 0, known, CFG, LUTS)
    values = torch.multinomial(q.double(), 1, generator=torch.Generator().manual_seed(3)).view(-1)
    flat = symbol_bits(q, values)
    binned = float((2 * PRECISION - torch.log2(t.counts(values).double())).sum())
    assert abs(binned - flat) < 1e-5 * flat


def test_binned_quantization_gives_the_same_integers_with_one_division_and_split():
    """Up to ONE_DIVISION_MIXTURES components the tables divide once; the split division (more
    components) gives the same integers where both apply, at the largest D a 7-component mixture has."""
    g = torch.Generator().manual_seed(4)
    w = 7 * 2**12 * 2**PRECISION + N_SYMBOLS * (7 * 2**12 >> tables.FLOOR_SHIFT)
    d = torch.sort(torch.randint(0, w, (500, 17), generator=g), 1).values + torch.arange(17)  # increasing
    d[:5, 0], d[:5, -1] = 0, w
    assert torch.equal(tables.quantized(d, True), tables.quantized(d, False))


def test_the_coupling_divides_with_a_floor_on_every_grid():
    """The means' coupling to earlier channels: ``floor(coef * x / coef_steps)`` (an arithmetic
    shift: every grid is a power of two) on every grid, negative products and the clamped
    coefficients at both ends included."""
    params, known = random_params(500, 9, spread=600), torch.randint(0, 256, (500, 3), generator=torch.Generator().manual_seed(9))
    k, c = CFG.mixtures, CFG.image_channels
    params[:, 3 * k * c :] = torch.randint(-1500, 1500, (500, params.shape[1] - 3 * k * c), generator=torch.Generator().manual_seed(10))
    for steps in (64, 256, 1024, 4096):
        cfg = PixelCNNConfig(mixtures=3, coef_steps=steps)
        for channel in (1, 2):
            _, means, _ = mixture_params(params, channel, known, cfg)
            want = params[:, (c + channel) * k : (c + channel + 1) * k] + 128 * MEAN_STEPS
            pair0 = 3 * c * k + channel * (channel - 1) // 2 * k
            for prev in range(channel):
                coef = params[:, pair0 + prev * k : pair0 + (prev + 1) * k].clamp(-steps, steps)
                prod = coef * ((known[:, prev : prev + 1] - 128) * MEAN_STEPS)
                want = want + torch.from_numpy(np.floor_divide(prod.numpy(), steps))
            assert torch.equal(means, want.clamp(tables.MEAN_MIN_Q, tables.MEAN_MAX_Q)), (steps, channel)


def test_mixture_weights_of_int32_and_int64_logits_agree():
    """The encoder's pass hands int32 head integers, the decoder's steps int64: the same weights."""
    logits = torch.randint(-200, 1, (300, 5), generator=torch.Generator().manual_seed(11))
    want = mixture_weights(logits, CFG, LUTS)
    assert torch.equal(mixture_weights(logits.int(), CFG, LUTS), want) and int(want.max()) == 2**tables.WEIGHT_BITS
