"""Residual feedback (coder tool 3, all three feature sets: set 3 is written, sets 1 and 2 are still read, so
their coding paths are exercised through the encoder's internals): exact round trips in every mode and with every
orientation, the encoder's all-at-once residuals and shifts equal the decoder's step by step, the
coefficients travel after the offsets and are counted in model_bits, corrupted or relabelled
streams are refused, and on a real photograph with the shipped model it makes the file smaller."""
import numpy as np
import pytest
import torch

import armcodec
from armcodec import container
from armcodec.exact import fused, tables
from armcodec.coding import feedback, planes, side
from armcodec.encoder import feedback_fit, search
from armcodec.coding.scan import Schedule, tile_grid
from armcodec.errors import ArmcodecError, FormatError

from armcodec.container import CoderTools
from conftest import REAL_IMAGES, load, retool

# (feature set, orientation) -> the version-1 profile with those tools
PROFILES = {(1, False): 4, (1, True): 5, (2, False): 6, (2, True): 7, (3, False): 8, (3, True): 9}
SLOPE3 = lambda di, dj: dj + 3 * di < 0  # noqa: E731  (the tiny model's schedule)


def codec_with_set(tiny_dir, features, orient=False, **kw):
    """A codec writing feedback feature set ``features`` (sets 1 and 2 only through this, as the files
    of armcodec 0.1 have them)."""
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=orient, **kw)
    codec.tools = CoderTools(True, orient, features, binned=codec.tools.binned)
    return codec


def forced_choice(level=None, scales=None):
    """A stand-in for feedback_fit.choose: the fit at a forced level (None: no fit, coefficients 0)."""
    def choose(fb, residuals, precisions, *args):
        levels = np.full(fb.n_tiles, level or 0)
        coefs = torch.zeros_like(fb.coefs) if level is None else feedback_fit.fit(fb, residuals, precisions, fb.rows_for(levels))
        return feedback_fit.FeedbackChoice(coefs, levels, np.zeros(fb.n_tiles, np.int64) if scales is None else scales(fb))
    return choose


@pytest.mark.parametrize("name", REAL_IMAGES)
@pytest.mark.parametrize("orient", [False, True])
@pytest.mark.parametrize("features", feedback.FEATURE_SETS)
def test_round_trip_exact(tiny_dir, name, orient, features):
    codec = codec_with_set(tiny_dir, features, orient)
    assert codec.profile == PROFILES[features, orient]
    img = load(name)
    enc = codec.encode(img)
    assert container.parse(enc.data)[0].tools == CoderTools(True, orient, features, binned=True)
    dec = codec.decode(enc.data)
    assert np.array_equal(dec.array.reshape(img.shape), img)
    assert dec.model_bits == pytest.approx(enc.model_bits, rel=1e-12)
    streams = container.parse(enc.data)[1]
    overhead = len(enc.data) - sum(len(s) for s in streams)  # header, lengths and CRCs
    assert enc.model_bits <= len(enc.data) * 8 <= enc.model_bits * 1.005 + 8 * overhead + 64 * len(streams)


@pytest.mark.parametrize("features", [1, 2, 4])
def test_new_files_use_the_latest_feature_set_and_others_are_refused(tiny_dir, features):
    assert armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir).tools.feedback == feedback.LATEST == 3
    with pytest.raises(ArmcodecError, match="feature set"):
        armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, feedback_features=features)


def _batch(codec, img, tile=16, features=1):
    """One batch of every tile of ``img`` in schedule order: its Feedback, values and head outputs."""
    net = codec.model.net
    tiles = tile_grid(img.shape[0], img.shape[1], tile)
    sched = Schedule(tiles, net, tile)
    ys = np.array([t.y for t in tiles])[sched.n] + sched.i
    xs = np.array([t.x for t in tiles])[sched.n] + sched.j
    values = torch.from_numpy(img[ys, xs].astype(np.int64))
    params = net.encoder_pass(tiles, sched, tile, "cpu", values).params.long()
    return planes.new_feedback(tiles, sched, 3, net, tile, "cpu", features), sched, values, params


@pytest.mark.parametrize("features", feedback.FEATURE_SETS)
def test_decoder_steps_reproduce_the_encoders_residuals_and_shifts(tiny_dir, features):
    """The encoder computes every residual and mean shift in one pass; the wavefront, step by
    step from the pixels it has decoded, must get the same integers (else files would not decode).
    Feature set 2 also reads the other channels' residuals at the neighbours; with set 3 every
    tiles take their coefficients per tile, per quarter and per sixteenth in turn (edge tiles
    have fewer blocks)."""
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir)
    net, luts = codec.model.net, codec.model.luts
    img = load("kodim05_rgb_37x29.png")
    fb, sched, values, params = _batch(codec, img, features=features)
    tiles = tile_grid(img.shape[0], img.shape[1], 16)
    residuals, precisions = feedback_fit.all_residuals(params, values, net.cfg, luts)
    levels = np.arange(len(tiles)) % feedback.LEVELS if features == 3 else np.zeros(len(tiles), np.int64)
    fb.fill(residuals)
    fb.assign(feedback_fit.fit(fb, residuals, precisions, fb.rows_for(levels)), levels, np.zeros(len(tiles), np.int64))
    if features == 3:
        assert len(set(fb.set_of.tolist())) > len(tiles)
    assert int(fb.coefs.abs().sum()) > 0
    shifts = feedback_fit.mean_shifts(fb, residuals)
    if features >= 2:  # the cross-channel and constant coefficients are in use
        assert int(fb.coefs[:, :, -5:].abs().sum()) > 0
    step_fb = planes.new_feedback(tiles, sched, 3, net, 16, "cpu", features)
    step_fb.coefs = fb.coefs.clone()
    step_fb.set_levels(fb.levels)
    for t in range(sched.n_steps):
        a, b = int(sched.starts[t]), int(sched.starts[t + 1])
        res = torch.empty((b - a, 3), dtype=torch.int64)
        for c in range(3):
            assert torch.equal(step_fb.mean_shift(a, b, c, res), shifts[a:b, c])
            res[:, c] = 16 * values[a:b, c] - feedback.expected_means(params[a:b], c, values[a:b, :c], net.cfg, luts)
            step_fb.write(a, b, c, res[:, c])
        assert torch.equal(res, residuals[a:b])


def test_the_refinements_float_nll_is_the_tables_rate():
    """refine() steers the coefficients by a float copy of the mixture: with the shipped model on
    a real crop its NLL must agree with the exact integer tables' bits (with a mean shift applied)."""
    codec = armcodec.Codec(device="cpu")
    img = load("kodim05_rgb_130x70.png")[:48, :64]
    fb, _, values, params = _batch(codec, img, tile=32)
    cfg, luts = codec.model.net.cfg, codec.model.luts
    for c in range(3):
        shift = torch.randint(-24, 25, (len(values),))
        mix = feedback_fit.float_mixture(params, values, c, cfg, luts)
        float_bits = float(feedback_fit._nll(shift.double(), mix).sum()) / np.log(2)
        q = tables.channel_tables(params, c, values[:, :c], cfg, luts, mean_shift=shift)
        exact = tables.symbol_bits(q, values[:, c])
        assert float_bits == pytest.approx(exact, rel=2e-3)


def test_the_refinements_closed_form_derivatives_are_autograds():
    """The Newton steps' gradient and curvature of the NLL in the mean shift (closed form) equal
    autograd's, including values at the ends of the range and shifts far off."""
    codec = armcodec.Codec(device="cpu")
    img = load("kodim05_rgb_130x70.png")[:32, :48].copy()
    img[:4, :8] = 0
    img[4:8, :8] = 255
    fb, _, values, params = _batch(codec, img, tile=32)
    cfg, luts = codec.model.net.cfg, codec.model.luts
    gen = torch.Generator().manual_seed(0)
    for c in range(3):
        mix = feedback_fit.float_mixture(params, values, c, cfg, luts)
        delta = torch.randint(-400, 401, (len(values),), generator=gen).double().requires_grad_(True)
        (grad,) = torch.autograd.grad(feedback_fit._nll(delta, mix).sum(), delta, create_graph=True)
        (hess,) = torch.autograd.grad(grad.sum(), delta)
        g, h = feedback_fit.nll_derivatives(delta.detach(), mix)
        assert torch.allclose(g, grad.detach(), rtol=1e-9, atol=1e-12)
        assert torch.allclose(h, hess, rtol=1e-7, atol=1e-10)


def test_the_fits_row_sums_are_the_outer_products_added_per_row():
    gen = torch.Generator().manual_seed(1)
    f = torch.randn(500, 6, generator=gen, dtype=torch.float64)
    wt = torch.rand(500, generator=gen, dtype=torch.float64)
    y = torch.randn(500, generator=gen, dtype=torch.float64)
    set_of = torch.randint(0, 7, (500,), generator=gen)
    set_of[set_of == 3] = 4  # a row without pixels
    rows = feedback_fit.Rows(set_of, 7)
    got = rows.solve(rows.take(f * wt[:, None]), rows.take(f), rows.take(f * (wt * y)[:, None]))
    for r in range(7):
        a = (f[set_of == r] * wt[set_of == r, None]).t() @ f[set_of == r]
        b = (f[set_of == r] * (wt * y)[set_of == r, None]).sum(0)
        a += (feedback_fit.RIDGE * a.diagonal().mean() + 1e-9) * torch.eye(6, dtype=torch.float64)
        assert torch.allclose(got[r], torch.linalg.solve(a, b), rtol=1e-9, atol=1e-12)


def _fitted_crop():
    """The default model on a real crop in 32x32 tiles: its feedback filled with every residual,
    and the least squares coefficients before any Newton step."""
    codec = armcodec.Codec(device="cpu")
    fb, _, values, params = _batch(codec, load("kodim05_rgb_130x70.png"), tile=32)
    cfg, luts = codec.model.net.cfg, codec.model.luts
    residuals, precisions = feedback_fit.all_residuals(params, values, cfg, luts)
    fb.fill(residuals)
    return fb, values, params, cfg, luts, residuals, feedback_fit.fit(fb, residuals, precisions, fb.set_of)


def test_refine_lowers_every_tiles_nll_or_keeps_its_coefficients(tiny_dir):
    """After the weighted least squares fit, the Newton steps on the NLL change a tile's
    coefficients only where that lowers its NLL, and lower it somewhere on a real image."""
    fb, values, params, cfg, luts, residuals, before = _fitted_crop()
    after, _ = feedback_fit.refine(fb, before, fb.set_of, residuals, params, values, cfg, luts)
    changed = 0
    for c in range(3):
        mix = feedback_fit.float_mixture(params, values, c, cfg, luts)
        f = fb.features(0, len(values), c, residuals)
        k = f.shape[1]
        n_tiles = fb.coefs.shape[0]
        old = feedback_fit._tile_nll(feedback_fit._shift(f, before[:, c, :k], fb.set_of), mix, fb.set_of, n_tiles)
        new = feedback_fit._tile_nll(feedback_fit._shift(f, after[:, c, :k], fb.set_of), mix, fb.set_of, n_tiles)
        moved = (after[:, c] != before[:, c]).any(1)
        assert bool((new[moved] < old[moved]).all()) and torch.equal(new[~moved], old[~moved])
        changed += int(moved.sum())
    assert changed > 0


def test_refine_with_cached_bounds_equals_recomputing_them(tiny_dir):
    """The Newton steps reuse each candidate's mixture bounds (the derivatives at the kept
    coefficients take them pixel by pixel): the coefficients and NLLs equal, bit for bit, those of
    steps that recompute every bound from the shift (what the encoder did up to 0.12.0)."""
    fb, values, params, cfg, luts, residuals, start = _fitted_crop()
    rows = feedback_fit.Rows(fb.set_of, fb.coefs.shape[0])
    for c in range(3):
        mix = feedback_fit.float_mixture(params, values, c, cfg, luts)
        f = fb.features(0, len(values), c, residuals)
        k = f.shape[1]
        row = start[:, c, :k]
        best = rows.sum(feedback_fit._nll(feedback_fit._shift(f, row, rows.set_of), mix))
        for _ in range(3):  # the steps, every bound recomputed
            grad, hess = feedback_fit.nll_derivatives(feedback_fit._shift(f, row, rows.set_of), mix)
            fd, hess, grad = rows.take(f.double()), rows.take(hess), rows.take(grad)
            step = rows.solve(fd * hess.clamp_min(1e-6).unsqueeze(1), fd, fd * grad.unsqueeze(1))
            trial = torch.round((row.double() / feedback.COEF_STEPS - step) * feedback.COEF_STEPS).clamp(
                feedback.COEF_MIN, feedback.COEF_MAX).long()
            nll = rows.sum(feedback_fit._nll(feedback_fit._shift(f, trial, rows.set_of), mix))
            row = torch.where((nll < best).view(-1, 1), trial, row)
            best = torch.where(nll < best, nll, best)
        got, got_nll = feedback_fit._refine_channel(f, rows.take(f.double()), start[:, c, :k], rows, mix, rounds=3)
        assert torch.equal(got, row) and torch.equal(got_nll, best)


@pytest.mark.parametrize("slope", [1, 2, 3, 4])
def test_neighbours_are_coded_before_the_pixel(slope):
    for di, dj in feedback.neighbours(lambda di, dj: dj + slope * di < 0):
        assert dj + slope * di < 0 and -feedback.PAD <= di <= 0 and abs(dj) <= feedback.PAD
    assert len(feedback.neighbours(SLOPE3)) == len(feedback.CANDIDATES) == 9


@pytest.mark.parametrize("features, n", [(1, 30), (2, 45), (3, 45)])
def test_coefficient_symbols_round_trip_and_bad_symbols_are_refused(features, n):
    width = feedback.n_features(9, 2, 3, features)
    coefs = torch.zeros((3, width), dtype=torch.int64)
    for c in range(3):
        k = feedback.n_features(9, c, 3, features)
        coefs[c, :k] = torch.arange(k) * 37 % 256 - 128
    rows = coefs[None].repeat(feedback.sets_per_tile(features), 1, 1)
    fb = feedback.Feedback(rows, np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), 16,
                           feedback.neighbours(SLOPE3), "cpu", features)
    symbols = fb.tile_symbols(0)
    assert len(symbols) == feedback.coefs_per_tile(9, 3, features) == n
    assert torch.equal(feedback.coefs_from_symbols(symbols, 9, 3, features), coefs)
    symbols[4] = feedback.N_COEF_VALUES
    with pytest.raises(FormatError, match="feedback"):
        feedback.coefs_from_symbols(symbols, 9, 3, features)


def _zero_set_bits(features):
    """Bits of one tile's coefficients, all zero, in one set (set 3: at spread 0, with the level
    and spread symbols)."""
    if features < 3:
        return side.side_bits(feedback.coefs_per_tile(9, 3, features), feedback.N_COEF_VALUES)
    zero = np.full(45, -feedback.COEF_MIN)
    return feedback.coef_bits(zero, 0) + side.side_bits(1, feedback.LEVELS) + side.side_bits(1, feedback.N_SCALES)


@pytest.mark.parametrize("features, bits", [(1, 8 * 30), (2, 8 * 45), (3, 45 * 0.393 + np.log2(3) + 3)])
def test_model_bits_count_the_coefficients(tiny_dir, monkeypatch, features, bits):
    """With the coefficients forced to zero (one set per tile), feature sets 1, 2 and 3 code exactly
    the adaptation's pixels plus the coefficients' bits: 8 per coefficient with sets 1 and 2; with set
    3 about 0.39 (a zero at the narrowest spread) and log2(3) + 3 bits per tile for the level and
    the spread."""
    img = load("kodim05_rgb_37x29.png")
    monkeypatch.setattr(feedback_fit, "choose", forced_choice())
    fed = codec_with_set(tiny_dir, features).encode(img)
    plain = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=False, feedback=False).encode(img)
    n_tiles = len(container.parse(fed.data)[1])
    assert _zero_set_bits(features) == pytest.approx(bits, abs=0.05)
    assert fed.model_bits - plain.model_bits == pytest.approx(_zero_set_bits(features) * n_tiles, abs=1e-3)


@pytest.mark.parametrize("level, blocks", [(1, [4, 4, 2, 4, 4, 2]), (2, [16, 16, 8, 16, 16, 8])])
def test_coefficients_per_quarter_or_sixteenth_round_trip_and_are_counted(tiny_dir, monkeypatch, level, blocks):
    """Feature set 3 with every tile forced to a level: one coefficient set per block of the level
    that holds pixels (the 37x29 image's tiles 5 pixels wide have half of them), exact round
    trip, the decoder's model bits equal the encoder's; each tile codes its coefficients at a
    spread of its own (forced: a different one per tile, every spread in one of the two runs) and
    a zero coefficient costs what :func:`feedback.coef_bits` says."""
    img = load("kodim05_rgb_37x29.png")
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=False)
    one = codec.encode(img)
    seen = []

    def scales(fb):
        seen.append([len(fb.tile_sets(t, level)) for t in range(fb.n_tiles)])
        return (np.arange(fb.n_tiles) + 2 * (level - 1)) % feedback.N_SCALES

    monkeypatch.setattr(feedback_fit, "choose", forced_choice(level, scales))
    forced = codec.encode(img)
    assert seen == [blocks]  # tiles of 16: 16x16, 16x16, 16x5, then 13 rows high
    assert forced.data != one.data
    dec = codec.decode(forced.data)
    assert np.array_equal(dec.array, img)
    assert dec.model_bits == pytest.approx(forced.model_bits, rel=1e-12)
    tiles = tile_grid(29, 37, 16)
    fb = planes.new_feedback(tiles, Schedule(tiles, codec.model.net, 16), 3, codec.model.net, 16, "cpu", 3)
    fb.set_levels(np.full(6, level))
    per_tile = side.side_bits(1, feedback.LEVELS) + side.side_bits(1, feedback.N_SCALES)
    zero_set = feedback.coef_bits(np.full(45, -feedback.COEF_MIN), 0)
    assert fb.side_bits() == pytest.approx(zero_set * sum(blocks) + 6 * per_tile, abs=1e-3)


@pytest.mark.parametrize("tile", [9, 13])
@pytest.mark.parametrize("level", [1, 2])
def test_levels_cover_tiles_of_odd_size(tiny_dir, monkeypatch, tile, level):
    """A tile size that 2 or 4 does not divide: the blocks of a level are ceil(tile / 2**level)
    wide, so every pixel lands in one of the level's 4**level blocks and the file round-trips."""
    img = load("kodim05_rgb_37x29.png")
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, tile_size=tile)
    monkeypatch.setattr(feedback_fit, "choose", forced_choice(level))
    enc = codec.encode(img)
    dec = codec.decode(enc.data)
    assert np.array_equal(dec.array, img)
    assert dec.model_bits == pytest.approx(enc.model_bits, rel=1e-12)


def test_coefficient_tables_are_integer_geometric_distributions():
    """Every spread's table sums to 2**24 with every symbol possible (a coefficient of -128 or 127
    still codes), peaks at 0 and falls with the distance from it, symmetric up to the rounding;
    wider spreads put less on 0; best_scale picks a narrow spread for small coefficients and a
    wide one for large ones, and its bits are coef_bits'."""
    centre = -feedback.COEF_MIN
    for s in range(feedback.N_SCALES):
        q = feedback.coef_table(s)
        assert q.dtype == np.int64 and int(q.sum()) == 2**24 and int(q.min()) >= 1
        assert int(q.argmax()) == centre
        assert np.all(np.diff(q[centre:]) <= 0) and np.all(np.diff(q[: centre + 1]) >= 0)
        assert np.all(np.abs(q[centre + 1 : 2 * centre] - q[centre - 1 : 0 : -1]) <= 1)
        if s:
            assert q[centre] < feedback.coef_table(s - 1)[centre]
    rng = np.random.default_rng(0)
    small = centre + rng.integers(-2, 3, 200)
    large = centre + rng.integers(-100, 100, 200)
    assert feedback_fit.best_scale(small)[0] <= 1
    assert feedback_fit.best_scale(large)[0] == feedback.N_SCALES - 1
    scale, bits = feedback_fit.best_scale(large)
    assert bits == feedback.coef_bits(large, scale) < 8 * len(large)


@pytest.mark.parametrize("scale", range(feedback.N_SCALES))
def test_extreme_coefficients_round_trip_at_every_spread(scale):
    from armcodec.coding.ans import StreamDecoder, StreamEncoder

    symbols = np.array([0, 255, 128, 127, 129, 0, 255], dtype=np.int64)
    enc = StreamEncoder()
    enc.push(symbols, feedback.coef_tables(len(symbols), scale))
    assert np.array_equal(StreamDecoder(enc.finish()).pop(feedback.coef_tables(len(symbols), scale)), symbols)


@pytest.mark.parametrize("header, message", [((feedback.LEVELS, 0), "feedback level"),
                                             ((0, feedback.N_SCALES), "feedback coefficient spread")])
def test_invalid_feedback_header_is_refused(tiny_dir, header, message):
    """A level or spread symbol out of range (a corrupted stream can decode one: every symbol has
    a frequency) is refused before any coefficient is read."""
    from armcodec.coding.ans import StreamEncoder
    from armcodec.coding.side import side_tables
    from armcodec.coding.scan import DecodeCoder

    net = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir).model.net
    tiles = tile_grid(8, 8, 16)
    fb = planes.new_feedback(tiles, Schedule(tiles, net, 16), 3, net, 16, "cpu", 3)
    enc = StreamEncoder()
    enc.push(np.array([header[1]]), side_tables(1, feedback.N_SCALES))
    enc.push(np.array([header[0]]), side_tables(1, feedback.LEVELS))
    enc.push(np.zeros(3, np.int64), side_tables(3))
    with pytest.raises(FormatError, match=message):
        DecodeCoder([enc.finish()], "cpu", channels=3, blocks=(np.zeros(0, np.int64), [1]), fb=fb)


@pytest.mark.parametrize("features, claimed",
                         [(f, c) for f in (2, 3) for c in container.PROFILE_TOOLS.values() if c != CoderTools(True, False, f)])
def test_streams_read_with_other_tools_are_caught(tiny_dir, features, claimed):
    codec = codec_with_set(tiny_dir, features)
    data = codec.compress(load("kodim05_rgb_37x29.png"))
    assert container.parse(data)[0].tools == CoderTools(True, False, features, binned=True)
    with pytest.raises(ArmcodecError):
        codec.decode(retool(data, claimed))


def test_feedback_makes_a_real_photograph_smaller():
    """The shipped default on a real photograph (Kodak crop, film grain): the coefficients pay
    for themselves; the model's own bits and the file agree within 0.5%."""
    img = load("kodim05_rgb_130x70.png")
    fed = armcodec.Codec(device="cpu", tile_size=64).encode(img)
    plain = armcodec.Codec(device="cpu", tile_size=64, feedback=False).encode(img)
    assert len(fed.data) < len(plain.data) * 0.99
    streams = container.parse(fed.data)[1]
    overhead = len(fed.data) - sum(len(s) for s in streams)
    assert len(fed.data) * 8 <= fed.model_bits * 1.005 + 8 * overhead + 64 * len(streams)
    assert np.array_equal(armcodec.Codec(device="cpu").decode(fed.data).array, img)


@pytest.mark.skipif(not fused.enabled("cpu"), reason="numba is not installed")
def test_the_fits_compiled_loops_give_the_torch_steps_choices():
    """The fit's compiled loops (armcodec/encoder/fit_kernels.py): the feedback shifts and the
    row sums are the torch steps' numbers bit for bit, the NLL's derivatives the same to rounding,
    and on a real crop (feature set 3: every level's rows fitted) the coefficients, levels and
    spreads chosen are the same with them and without."""
    codec = armcodec.Codec(device="cpu")
    cfg, luts = codec.model.net.cfg, codec.model.luts
    fb, _, values, params = _batch(codec, load("kodim05_rgb_130x70.png"), tile=32, features=3)
    residuals, precisions = feedback_fit.all_residuals(params, values, cfg, luts)
    fb.fill(residuals)
    gen = torch.Generator().manual_seed(5)
    f = fb.features(0, len(values), 2, residuals)
    coefs = torch.randint(-128, 128, (fb.coefs.shape[0], f.shape[1]), generator=gen)
    x = torch.randn(len(values), 4, generator=gen, dtype=torch.float64) * 1e3
    mix = feedback_fit.float_mixture(params, values, 2, cfg, luts)
    delta = torch.randint(-300, 301, (len(values),), generator=gen)
    runs = []
    for on in (True, False):
        fused.set_enabled(on)
        try:
            assert (feedback_fit._kernels(f) is not None) == on
            runs.append((feedback_fit._shift(f, coefs, fb.set_of), feedback_fit._add_rows(x, fb.set_of, fb.coefs.shape[0]),
                         feedback_fit.nll_derivatives(delta, mix),
                         feedback_fit.choose(fb, residuals, precisions, params, values, cfg, luts)))
        finally:
            fused.set_enabled(True)
    (s1, a1, (g1, h1), c1), (s0, a0, (g0, h0), c0) = runs
    assert torch.equal(s1, s0) and torch.equal(a1, a0)
    assert torch.allclose(g1, g0, rtol=1e-12, atol=1e-15) and torch.allclose(h1, h0, rtol=1e-12, atol=1e-15)
    assert torch.equal(c1.coefs, c0.coefs) and np.array_equal(c1.levels, c0.levels)
    assert np.array_equal(c1.scales, c0.scales)  # (coefs: every level's rows, chosen or not)
