"""The wavefront PixelCNN: causality, the tight slope, and integer inference that gives the
same numbers for the encoder's parallel pass and the decoder's steps, whatever the batch,
thread count or accumulation dtype."""
import numpy as np
import pytest
import torch

from armcodec import threads
from armcodec.exact import fused
from armcodec.coding.scan import Schedule, tile_grid
from armcodec.models.pixelcnn import PixelCNNConfig, causal_offsets
from armcodec.models.pixelcnn_exact import IntPixelCNN, WavefrontState  # noqa: F401
from armcodec.training.export import export_pixelcnn

from conftest import TINY_CFG, load, make_tiny_model


def dependencies(model, h=20, w=20, i=11, j=9):
    x = (torch.rand(1, 3, h, w) * 255).requires_grad_(True)
    out = model.features(x)
    (g,) = torch.autograd.grad(out[0, :, i, j].abs().sum(), x)
    return [(a - i, b - j) for a, b in (g.abs().sum(1)[0] > 0).nonzero().tolist()]


@pytest.mark.parametrize("cfg", [TINY_CFG, PixelCNNConfig(width=8, blocks=3, head_width=8, mixtures=2, slope=2,
                                                           first_reach=(1, 1, 1), block_reach=(1, 1, 1))])
def test_context_is_causal_in_wavefront_order(cfg):
    deps = dependencies(make_tiny_model(cfg=cfg))
    assert deps, "the model must see some context"
    assert all(dj + cfg.slope * di < 0 for di, dj in deps)  # only earlier wavefront steps
    # the slope is tight: some dependency lies on the previous step line, so slope - 1 would break
    assert any(dj + (cfg.slope - 1) * di >= 0 for di, dj in deps)


def test_no_blind_spot_inside_the_cone():
    """Every pixel the wavefront allows within the receptive radius is seen (no gaps)."""
    cfg = PixelCNNConfig(width=8, blocks=4, head_width=8, mixtures=2)
    deps = set(dependencies(make_tiny_model(cfg=cfg)))
    for di, dj in [(0, -1), (0, -2), (-1, -2), (-1, 0), (-1, 1), (-1, 2), (-2, 0), (-2, 3), (-3, -4), (-2, -5)]:
        assert (di, dj) in deps


def test_offsets_follow_the_half_plane():
    assert causal_offsets((1, 1, 1), 3, strict=True) == [(-1, -1), (-1, 0), (-1, 1), (0, -1)]
    assert (0, 0) in causal_offsets((1, 1, 1), 3, strict=False)


def _setup(net, img, tiles, tile, columns=None):
    """Schedule, empty state, map positions and pixel values of a tile batch."""
    sched = Schedule(tiles, net, tile)
    state = WavefrontState(net, len(tiles), tile, "cpu", columns)
    pos = state.flat_index(sched.n, sched.i, sched.j)
    ys = np.array([t.y for t in tiles])[sched.n] + sched.i
    xs = np.array([t.x for t in tiles])[sched.n] + sched.j
    return sched, state, pos, ys, xs, torch.from_numpy(img[ys, xs].astype(np.int64))


def params_full_pass(net, img, tiles, tile, single_pass=False):
    sched, state, pos, ys, xs, vals = _setup(net, img, tiles, tile)
    state.write_pixels(pos, vals)
    return sched, ys, xs, net.run(state, pos, single_pass=single_pass), vals


def params_by_steps(net, img, tiles, tile, columns=None):
    sched, state, pos, ys, xs, vals = _setup(net, img, tiles, tile, columns)
    last = torch.from_numpy(sched.j == np.array([t.w for t in tiles])[sched.n] - 1)
    out = []
    for t in range(sched.n_steps):
        a, b = sched.starts[t], sched.starts[t + 1]
        state.clear_right(pos[a:b][last[a:b]])
        out.append(net.run(state, pos[a:b]))
        state.write_pixels(pos[a:b], vals[a:b])
    return ys, xs, torch.cat(out)


def as_image(ys, xs, params, shape):
    out = torch.zeros(shape + (params.shape[1],), dtype=torch.int64)
    out[torch.from_numpy(ys), torch.from_numpy(xs)] = params
    return out


@pytest.fixture(scope="module")
def net():
    return export_pixelcnn(make_tiny_model(3))


def test_encoder_pass_equals_decoder_steps_across_batches_and_threads(net):
    img = load("kodim05_rgb_130x70.png")[:40, :50]
    tile = 16
    tiles = tile_grid(40, 50, tile)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _, ys, xs, full, _ = params_full_pass(net, img, tiles, tile)
        reference = as_image(ys, xs, full, (40, 50))
        # the encoder's single pass frees each residual map once read: the same numbers
        assert torch.equal(params_full_pass(net, img, tiles, tile, single_pass=True)[3], full)
        torch.set_num_threads(1)
        ys1, xs1, steps = params_by_steps(net, img, tiles, tile)
        assert torch.equal(as_image(ys1, xs1, steps, (40, 50)), reference)
        # other tile batches: every tile alone, and the tiles in reverse order
        for batch in [[t] for t in tiles] + [tiles[::-1]]:
            _, ys2, xs2, p2, _ = params_full_pass(net, img, batch, tile)
            got = as_image(ys2, xs2, p2, (40, 50))
            mask = torch.zeros((40, 50), dtype=torch.bool)
            mask[torch.from_numpy(ys2), torch.from_numpy(xs2)] = True
            assert torch.equal(got[mask], reference[mask])
    finally:
        torch.set_num_threads(old)


def test_encoder_pass_in_lanes_equals_one_lane(net, monkeypatch):
    """The encoder's pass runs each stage's chunks in lanes (threads.lanes): many small chunks,
    two lanes, give the numbers of one lane."""
    img = load("kodim05_rgb_130x70.png")[:40, :50]
    tiles = tile_grid(40, 50, 16)
    sched, state, pos, _, _, vals = _setup(net, img, tiles, 16)
    state.write_pixels(pos, vals)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = net.run(state, pos, chunk=37)
        torch.set_num_threads(2)
        calls = []
        real = threads.lanes
        monkeypatch.setattr(threads, "lanes", lambda n: calls.append(n) or real(n))
        assert torch.equal(net.run(state, pos, chunk=37), one)
        assert calls and all(n == -(-len(pos) // 37) for n in calls)
    finally:
        torch.set_num_threads(old)


def test_single_pass_reusing_freed_maps_gives_the_full_maps_numbers():
    """With 4 blocks the encoder's single pass hands each freed residual map's buffer to the map
    two blocks on (no fresh zeros): the rows it never computes (edge tiles shorter and narrower
    than the tile, and the padding) must still read as zero."""
    net4 = export_pixelcnn(make_tiny_model(5, cfg=PixelCNNConfig(width=8, blocks=4, head_width=8, mixtures=2)))
    img = load("kodim05_rgb_130x70.png")[:40, :50]
    tiles = tile_grid(40, 50, 16)
    full = params_full_pass(net4, img, tiles, 16)[3]
    assert torch.equal(params_full_pass(net4, img, tiles, 16, single_pass=True)[3], full)
    ys, xs, steps = params_by_steps(net4, img, tiles, 16)
    assert torch.equal(as_image(ys, xs, steps, (40, 50)), as_image(*params_full_pass(net4, img, tiles, 16)[1:4], (40, 50)))


@pytest.mark.parametrize("cfg", [None, PixelCNNConfig(width=8, blocks=3, head_width=8, mixtures=2, slope=2,
                                                       first_reach=(1, 1, 1), block_reach=(1, 2, 2))])
def test_decoder_ring_of_columns_gives_the_full_maps_numbers(net, cfg):
    """The decoder keeps a ring of columns per tile row: every step's parameters equal the
    encoder's pass over whole maps, with edge tiles narrower than the ring (2 columns) and
    shorter than the tile, in one batch."""
    net = net if cfg is None else export_pixelcnn(make_tiny_model(4, cfg=cfg))
    img = load("kodim05_rgb_130x70.png")[:40, :50]
    tile = 16
    tiles = tile_grid(40, 50, tile)  # edge tiles 16x2, 8x16 and 8x2
    _, ys, xs, full, _ = params_full_pass(net, img, tiles, tile)
    ys1, xs1, steps = params_by_steps(net, img, tiles, tile, columns=net.ring_columns)
    assert torch.equal(as_image(ys1, xs1, steps, (40, 50)), as_image(ys, xs, full, (40, 50)))
    # one column less breaks it: the ring is as narrow as it can be
    ys2, xs2, short = params_by_steps(net, img, tiles, tile, columns=net.ring_columns - 1)
    assert not torch.equal(as_image(ys2, xs2, short, (40, 50)), as_image(ys, xs, full, (40, 50)))
    ring = WavefrontState(net, 1, 512, "cpu", net.ring_columns)
    whole = WavefrontState(net, 1, 512, "cpu")
    assert sum(ring.map(k).numel() for k in range(len(ring.maps))) * 40 < sum(
        whole.map(k).numel() for k in range(len(whole.maps)))


def test_float32_accumulation_is_exact(net):
    """Layers run in float32 only where the worst case stays below 2**24; float64 gives the same."""
    img = load("kodim23_rgb_64x48.png")[:20, :20]
    tiles = tile_grid(20, 20, 20)
    _, _, _, p32, _ = params_full_pass(net, img, tiles, 20)
    layers = [net.first, *net.gates, *net.mixes, net.head_hidden, net.head_out]
    assert all(layer.exact_f32 for layer in layers)
    for layer in layers:
        layer.exact_f32, layer._w64 = False, layer.weight.double()
    try:
        _, _, _, p64, _ = params_full_pass(net, img, tiles, 20)
    finally:
        for layer in layers:
            layer.exact_f32, layer._w64 = True, None
    assert torch.equal(p32, p64)


@pytest.mark.parametrize("reach, strict", [((2, 2, 2), True), ((1, 1, 1), False), ((1, 2, 1), False)])
def test_masked_conv_pads_as_the_explicitly_padded_input(reach, strict):
    """A masked conv with as many columns left as right pads with the conv's own zero padding and
    drops the rows below: the same function as the input padded above, left and right."""
    from armcodec.models.pixelcnn import MaskedConv2d

    torch.manual_seed(1)
    conv = MaskedConv2d(5, 7, reach, 3, strict)
    x = torch.randn(2, 5, 13, 17)
    up, left, right = reach
    want = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (left, right, up, 0)), conv.weight * conv.mask, conv.bias)
    with torch.no_grad():
        for inp in (x, x.contiguous(memory_format=torch.channels_last)):
            got = conv(inp, False, 1.0)
            assert got.shape == want.shape and torch.allclose(got, want, rtol=1e-5, atol=1e-5)


def test_float_inference_in_place_gives_the_autograd_graphs_numbers():
    """Without autograd the float graph clamps and sums in place (the orientation search's proxy):
    the same numbers as with autograd, for the wavefront model, the temporal model with its
    previous-frame terms and the pyramid's passes, with the gate's and the residual add's compiled
    loops and without."""
    from armcodec.models.temporal import TemporalPixelCNN, context_input

    from test_pyramid import make_tiny_pyramid

    torch.manual_seed(3)
    x = torch.randint(0, 256, (2, 3, 19, 23)).float()
    image = make_tiny_model()
    temporal = TemporalPixelCNN.from_image_model(image, context_reach=1)
    with torch.no_grad():
        for conv in (temporal.context_first, temporal.context_skip):
            conv.weight.normal_(0, 0.05)
    ctx = torch.nn.functional.pad(context_input(torch.randint(0, 256, (2, 3, 19, 23)).float()), (1, 1, 1, 1))
    channels_last = x.contiguous(memory_format=torch.channels_last)
    pyramid = make_tiny_pyramid().to(memory_format=torch.channels_last)
    runs = [lambda: image(x), lambda: image(channels_last), lambda: temporal(x, context=ctx),
            lambda: temporal(channels_last, context=ctx), lambda: make_tiny_pyramid()(x), lambda: pyramid(channels_last)]
    for loops in (False, True) if fused.enabled("cpu") else (False,):  # the compiled loops (channels-last tensors)
        fused.set_enabled(loops)
        try:
            for run in runs:
                with torch.enable_grad():
                    graph = run()
                with torch.no_grad():
                    in_place = run()
                assert torch.equal(graph, in_place)
        finally:
            fused.set_enabled(True)


@pytest.mark.parametrize("grids", [{}, {"resid_steps": 32, "coef_steps": 64}, {"head_steps": 128}])
def test_integer_model_tracks_the_qat_model(grids):
    """Integer inference is the QAT graph, on the default grids, on the coarse grids of models
    stored before grids were per model and on the finer head grid: the -log2 likelihoods agree
    closely."""
    from armcodec.exact.tables import TableLUTs, channel_tables, symbol_bits
    from armcodec.training.loop import regrid_model

    fm = regrid_model(make_tiny_model(5), grids)
    net = export_pixelcnn(fm)
    img = load("kodim23_rgb_64x48.png")
    tiles = tile_grid(48, 64, 64)
    _, _, _, params, vals = params_full_pass(net, img, tiles, 64)
    luts = TableLUTs.compute().to("cpu")
    bits = sum(symbol_bits(channel_tables(params, c, vals[:, :c], net.cfg, luts), vals[:, c]) for c in range(3))
    with torch.no_grad():
        qat_bits = fm(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float(), qat=True).sum().item()
    assert abs(bits - qat_bits) / qat_bits < 0.01


def test_configs_stored_before_per_model_grids_keep_the_coarse_grids():
    stored = {k: v for k, v in TINY_CFG.to_dict().items() if k not in ("resid_steps", "coef_steps")}
    old = PixelCNNConfig.from_dict(stored)
    assert (old.resid_steps, old.coef_steps) == (32, 64)
    assert old.resid_max == 127
    new = PixelCNNConfig.from_dict(TINY_CFG.to_dict())
    assert (new.resid_steps, new.coef_steps, new.resid_max) == (128, 1024, 511)
    # the head's grid: every model stored before head_steps (and every shipped one until
    # temporal-planes-s2) has 1/32 in [0, 127]
    assert (old.head_steps, old.head_max, new.head_steps, new.head_scale) == (32, 127, 32, 1 / 32)
    assert PixelCNNConfig(head_steps=128).head_max == 511
    with pytest.raises(ValueError, match="head_steps"):
        PixelCNNConfig(head_steps=48)
    with pytest.raises(ValueError, match="resid_steps"):
        PixelCNNConfig(resid_steps=100)
    with pytest.raises(ValueError, match="coef_steps"):
        PixelCNNConfig(coef_steps=1000)


def test_regrid_keeps_the_parameters_and_changes_only_grids():
    from armcodec.training.loop import regrid_model

    m = make_tiny_model(2)
    r = regrid_model(m, {"resid_steps": 32, "coef_steps": 64})
    assert (r.cfg.resid_steps, r.cfg.coef_steps) == (32, 64)
    assert all(torch.equal(a, b) for a, b in zip(m.state_dict().values(), r.state_dict().values()))
    with pytest.raises(ValueError, match="only"):
        regrid_model(m, {"width": 16})


def test_gated_block_in_float32_equals_the_float64_chain():
    """gated_block clamps its requantized integers in float32: the same as clamping them in
    float64, also for outputs beyond 2**24 (which float32 rounds) and at every clamp bound."""
    from armcodec.exact.layers import IntConv
    from armcodec.models.pixelcnn import GATE_MAX
    from armcodec.models.pixelcnn_exact import gated_block

    g = torch.Generator().manual_seed(3)
    f, n_off, rmax = 16, 5, 511
    offsets = [(0, -k) for k in range(n_off)]

    def layer(offs, c_in, c_out, in_max, mult):  # shift 0: outputs up to ~2**38 with mult 2**14 + 1
        w = torch.randint(-128, 128, (len(offs) * c_in, c_out), generator=g).float()
        return IntConv(offs, w, torch.randint(-999, 1000, (c_out,), generator=g).double(),
                       torch.full((c_out,), float(mult), dtype=torch.float64), torch.ones(c_out, dtype=torch.float64), in_max)

    for mult in (1, 2**14 + 1):  # small outputs (every clamp bound reached) and huge ones
        gate, mix = layer(offsets, f, 2 * f, rmax, mult), layer([(0, 0)], f, f, GATE_MAX, mult)
        gathered = torch.randint(-rmax, rmax + 1, (300, n_off * f), generator=g).float()
        gathered[:20] = 0  # outputs at the bias alone: near the bounds
        resid = torch.randint(-rmax, rmax + 1, (300, f), generator=g).float()
        u = gate(gathered)  # the float64 chain gated_block replaced
        a, s = u[:, :f].clamp(-GATE_MAX, GATE_MAX), (u[:, f:] + GATE_MAX // 2).clamp(0, GATE_MAX)
        want = (mix((a * s / GATE_MAX).floor().float()).clamp(-rmax, rmax) + resid).clamp(-rmax, rmax).float()
        assert bool((u.abs() > 2**24).any()) == (mult > 1)
        assert torch.equal(gated_block(gate, mix, gathered, resid, rmax), want)


@pytest.mark.parametrize("name", ["default", "pyramid"])
@pytest.mark.parametrize("h, w, tile", [(37, 53, 16), (130, 70, 64), (5, 300, 32), (1, 1, 16), (200, 9, 64)])
def test_schedule_orders_pixels_by_step_tile_row_column(name, h, w, tile):
    """The schedule (built once per tile shape) is every pixel of the batch sorted by (step,
    tile, row, column), as one sort of all of them gives it, with partial tiles at the edges."""
    import armcodec

    net = armcodec.Codec(name, device="cpu").model.net
    tiles = tile_grid(h, w, tile)
    sched = Schedule(tiles, net, tile)
    n = np.concatenate([np.full(t.h * t.w, k) for k, t in enumerate(tiles)])
    i = np.concatenate([np.repeat(np.arange(t.h), t.w) for t in tiles])
    j = np.concatenate([np.tile(np.arange(t.w), t.h) for t in tiles])
    step = net.step_of(i, j, tile)
    order = np.lexsort((j, i, n, step))
    assert np.array_equal(sched.n, n[order]) and np.array_equal(sched.i, i[order]) and np.array_equal(sched.j, j[order])
    assert np.array_equal(sched.starts, np.searchsorted(step[order], np.arange(sched.n_steps + 1)))


@pytest.mark.parametrize("lean", [True, False], ids=["lean blocks", "wrapped blocks"])
def test_decoder_steps_on_numpy_operands_give_the_encoders_integers(net, lean, monkeypatch):
    """The decoder's steps in a ring (:meth:`IntPixelCNN.decoder_steps`) with every block on the
    compiled int8 path, run by :class:`LeanStep` on numpy operands and kept buffers (rows
    growing and shrinking over the wavefront), or by :func:`gathered_block` (every step's plan
    refused): the encoder's pass's integers at every step; and the encoder's pass in chunks of 37
    (the residual add reading the stream from its map) its one chunk's integers."""
    from armcodec.exact import kernels
    from armcodec.models import pixelcnn_exact

    if not fused.enabled("cpu") or not kernels.int8_exact("cpu"):
        pytest.skip("needs numba and exact int8 products")
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "cpu_has_int8_dot", lambda: True)
    monkeypatch.setattr(kernels, "_faster", {})
    monkeypatch.setattr(kernels, "_int8_faster", lambda rows, k, n, in_max, raw=False: True)
    if not lean:
        monkeypatch.setattr(pixelcnn_exact.LeanStep, "plan", lambda self, m: None)
    img = load("kodim05_rgb_130x70.png")[:40, :50]
    tiles = tile_grid(40, 50, 16)
    sched, state, pos, _, _, vals = _setup(net, img, tiles, 16)
    enc = net.encoder_pass(tiles, sched, 16, "cpu", vals)
    # the encoder's pass in several chunks: each block's stream read from its map inside the loop
    state.write_pixels(pos, vals)
    assert torch.equal(net.run(state, pos, chunk=37, single_pass=True), enc.params.long())
    dec = net.decoder_steps(tiles, sched, 16, "cpu", 3)
    sizes = set()
    for t in range(sched.n_steps):
        a, b = int(sched.starts[t]), int(sched.starts[t + 1])
        if a < b:
            assert torch.equal(dec(a, b), enc(a, b)), t
            dec.observe(a, b, vals[a:b])
            sizes.add(b - a)
    assert bool(dec.state.lean is not None and dec.state.lean._plans and all(dec.state.lean._plans.values())) == lean
    assert len(sizes) > 3 and enc.params.abs().max() > 0
