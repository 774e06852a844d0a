"""The polyphase pyramid (the multi-scale family): its schedule, a context that reads only earlier
steps, integer inference that gives the encoder's pass and the decoder's steps the same numbers
whatever the batch, and files that round-trip through the one codec."""
import numpy as np
import pytest
import torch

import armcodec
from armcodec.coding.feedback import usable
from armcodec.coding.planes import image_coords
from armcodec.coding.scan import CountingCoder, Schedule, scan, tile_grid
from armcodec.exact.tables import TableLUTs
from armcodec.errors import FormatError
from armcodec.models.polyphase_exact import PHASES
from armcodec.models.pyramid import Pyramid, PyramidConfig
from armcodec.training.export import export_model, export_pyramid
from armcodec.training.loop import TrainSettings, load_checkpoint, train

from conftest import load, retool, training_folder

TINY = PyramidConfig(width=8, blocks=2, head_width=8, mixtures=2, levels=2, base_width=8, base_blocks=1, base_head_width=8)


def make_tiny_pyramid(seed: int = 0, cfg: PyramidConfig = TINY) -> Pyramid:
    """A small random pyramid whose distributions are far from uniform (sharp, off-centre)."""
    torch.manual_seed(seed)
    m = Pyramid(cfg)
    k, c = cfg.mixtures, cfg.image_channels
    with torch.no_grad():
        for net in [m.base, *m.passes]:
            net.head_out.weight.mul_(20.0)
            net.head_out.bias[2 * k * c : 3 * k * c] = 1.0
            net.skip.weight.normal_(0, 0.05)
    return m.eval()


@pytest.fixture(scope="module")
def pyramid_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pyramid")
    export_model(make_tiny_pyramid(), d, "tiny-pyramid", tile_size=16)
    return d


def steps_of(net, h, w, tile):
    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return net.step_of(i, j, tile)


def test_the_schedule_is_the_base_then_one_step_per_level_and_phase():
    net = export_pyramid(make_tiny_pyramid())
    tile, lv = 16, TINY.levels
    steps = steps_of(net, tile, tile, tile)
    base = net.base_steps(tile)
    tc = tile >> lv
    assert base == tc + TINY.base_slope * (tc - 1)
    coarse = np.zeros_like(steps, dtype=bool)
    coarse[:: 2**lv, :: 2**lv] = True
    assert (steps[coarse] < base).all() and (steps[~coarse] >= base).all()
    assert steps.max() == base + 3 * lv - 1
    for level in range(lv):
        s = 2**level
        for k, (pi, pj) in enumerate(PHASES):
            step = base + 3 * (lv - 1 - level) + k
            want = np.zeros_like(coarse)
            want[pi * s :: 2 * s, pj * s :: 2 * s] = True
            assert np.array_equal(steps == step, want), (level, k)
            assert net.pass_of(step, tile) == (level, k)
    # a tile size that is not a multiple of 2**levels is padded: same steps on the pixels it has
    assert np.array_equal(steps_of(net, 14, 14, 14), steps[:14, :14])


@pytest.mark.parametrize("shape", [(13, 11), (16, 16)])
def test_every_pixel_depends_only_on_pixels_of_earlier_steps(shape):
    """Autograd through the float model: a pixel's bits read only pixels the schedule codes before
    it (besides its own value and the earlier channels of it); and some pixels of every pass read a
    coarser one."""
    h, w = shape
    model = make_tiny_pyramid()
    net = export_pyramid(model)
    steps = steps_of(net, h, w, max(h, w))
    x = (torch.rand(1, 3, h, w) * 255).requires_grad_(True)
    bits = model(x)
    seen = 0
    for i in range(h):
        for j in range(w):
            (g,) = torch.autograd.grad(bits[0, :, i, j].sum(), x, retain_graph=True)
            dep = g.abs().sum((0, 1)) > 0
            dep[i, j] = False
            assert (steps[dep.numpy()] < steps[i, j]).all(), (i, j)
            seen += int(dep.any())
    assert seen > h * w // 2


def _setup(net, img, tile):
    tiles = tile_grid(img.shape[0], img.shape[1], tile)
    sched = Schedule(tiles, net, tile)
    ys, xs = image_coords(tiles, sched, None)
    return tiles, sched, torch.from_numpy(img[ys, xs].astype(np.int64)).reshape(len(ys), -1)


@pytest.mark.parametrize("channels, grids", [(3, {}), (1, {}), (3, {"head_steps": 128})])
def test_encoder_pass_and_decoder_steps_give_the_same_integers(channels, grids):
    net = export_pyramid(make_tiny_pyramid(cfg=PyramidConfig.from_dict({**TINY.to_dict(), **grids})))
    img = load("kodim05_rgb_37x29.png")
    img = img if channels == 3 else img[:, :, :1]
    tiles, sched, vals = _setup(net, img, 16)
    enc = net.encoder_pass(tiles, sched, 16, "cpu", vals)
    dec = net.decoder_steps(tiles, sched, 16, "cpu", channels)
    for t in range(sched.n_steps):
        a, b = int(sched.starts[t]), int(sched.starts[t + 1])
        if a < b:
            assert torch.equal(dec(a, b), enc(a, b)), t
            dec.observe(a, b, vals[a:b])
    assert enc.params.abs().max() > 0


def test_a_tile_gets_the_same_integers_alone_and_in_a_batch():
    net = export_pyramid(make_tiny_pyramid())
    img = load("kodim05_rgb_37x29.png")
    tiles, sched, vals = _setup(net, img, 16)
    together = net.encoder_pass(tiles, sched, 16, "cpu", vals).params
    for k, t in enumerate(tiles):
        one = Schedule([t], net, 16)
        ys, xs = image_coords([t], one, None)
        alone = net.encoder_pass([t], one, 16, "cpu", torch.from_numpy(img[ys, xs].astype(np.int64))).params
        mine = np.flatnonzero(sched.n == k)
        assert torch.equal(together[mine], alone), k


@pytest.mark.parametrize("grids", [{}, {"head_steps": 128}])
def test_the_exact_model_tracks_the_quantization_aware_float_model(grids):
    model = make_tiny_pyramid(cfg=PyramidConfig.from_dict({**TINY.to_dict(), **grids}))
    net = export_pyramid(model)
    img = load("kodim05_rgb_130x70.png")[:64, :64]
    with torch.no_grad():
        float_bits = model(torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float(), qat=True).sum().item()
    tiles, sched, vals = _setup(net, img, 64)
    source = net.encoder_pass(tiles, sched, 64, "cpu", vals)
    codec_bits = float(scan(sched, source, CountingCoder(vals), 3, net.cfg, TableLUTs.compute().to("cpu")).sum())
    assert abs(codec_bits - float_bits) < 0.03 * float_bits, (codec_bits, float_bits)


@pytest.mark.parametrize("name", ["kodim05_rgb_37x29.png", "kodim03_rgba_32x24.png", "kodim23_rgb_1x1.png",
                                  "usc_sipi_6.1_gray_40x33.png", "usc_sipi_6.1_la_28x21.png"])
def test_files_round_trip(pyramid_dir, name):
    img = load(name)
    codec = armcodec.Codec("tiny-pyramid", device="cpu", weights_dir=pyramid_dir, classic=False)
    enc = codec.encode(img)
    assert enc.coder == "model"
    assert np.array_equal(codec.decompress(enc.data), img)
    assert len(enc.data) * 8 < enc.model_bits * 1.05 + 8 * 400  # the tables' bits, plus the header


def test_the_same_bytes_for_any_batch_and_thread_count_and_tile_sizes(pyramid_dir):
    img = load("kodim05_rgb_130x70.png")
    codec = armcodec.Codec("tiny-pyramid", device="cpu", weights_dir=pyramid_dir, classic=False)
    small = armcodec.Codec("tiny-pyramid", device="cpu", weights_dir=pyramid_dir, classic=False, batch_bytes=1)
    data = codec.compress(img)
    assert small.compress(img) == data
    before = torch.get_num_threads()
    try:
        for n in (1, 2):  # ARMCODEC's thread budget follows the free cores; pin the count to compare
            torch.set_num_threads(n)
            assert codec.compress(img) == data
    finally:
        torch.set_num_threads(before)
    for tile in (20, 33):  # tile sizes that are not multiples of 2**levels
        c = armcodec.Codec("tiny-pyramid", device="cpu", weights_dir=pyramid_dir, classic=False, tile_size=tile)
        assert np.array_equal(c.decompress(c.compress(img)), img)
    files = [codec.compress(load(n)) for n in ("kodim05_rgb_37x29.png", "kodim23_rgb_64x48.png")] + [data]
    got = codec.decode_many(files)
    assert all(np.array_equal(g.array, codec.decode(f).array) for g, f in zip(got, files))


def test_the_orientation_search_runs_on_the_float_copy(pyramid_dir):
    img = load("kodim05_rgb_130x70.png")
    codec = armcodec.Codec("tiny-pyramid", device="cpu", weights_dir=pyramid_dir, classic=False, orient=True)
    assert codec.orient
    assert np.array_equal(codec.decompress(codec.compress(img)), img)


def test_feedback_is_off_for_the_pyramid_and_a_file_that_asks_for_it_is_refused(pyramid_dir):
    codec = armcodec.Codec("tiny-pyramid", device="cpu", weights_dir=pyramid_dir, classic=False, feedback=True)
    assert not codec.feedback and not usable(codec.model.net.precedes)
    data = codec.compress(load("kodim05_rgb_37x29.png"))
    import dataclasses

    from armcodec import container

    tools = dataclasses.replace(container.parse(data)[0].tools, feedback=3)
    with pytest.raises(FormatError):
        codec.decode(retool(data, tools))


def test_training_and_resuming_a_pyramid(tmp_path):
    data = training_folder(tmp_path)
    ckpt = tmp_path / "ckpt.safetensors"
    train(data, ckpt, TINY, TrainSettings(steps=3, qat_steps=1, batch=2, crop=16, warmup=1, val_every=10**6), log=lambda m: None)
    model, meta, adam = load_checkpoint(ckpt)
    assert isinstance(model, Pyramid) and meta["architecture"] == "polyphase-pyramid" and adam
    train(data, ckpt, TINY, TrainSettings(steps=5, qat_steps=1, batch=2, crop=16, warmup=1, val_every=10**6), log=lambda m: None)
    assert load_checkpoint(ckpt)[1]["step"] == 5
    export_model(load_checkpoint(ckpt)[0], tmp_path / "w", "trained", tile_size=16)
    codec = armcodec.Codec("trained", device="cpu", weights_dir=tmp_path / "w", classic=False)
    img = load("kodim23_rgb_64x48.png")
    assert np.array_equal(codec.decompress(codec.compress(img)), img)


@pytest.mark.parametrize("model", ["tiny-pyramid", "tiny"])
def test_a_large_step_coded_in_parts_of_whole_tiles_gives_the_same_files(pyramid_dir, tiny_dir, monkeypatch, model):
    """A step's tables are built in parts of whole tiles when it is large (a pass covers a quarter
    of the batch): the same bytes, decoded the same, whatever the part size."""
    from armcodec.coding import scan as scan_module

    img = load("kodim05_rgb_130x70.png")
    wd = pyramid_dir if model == "tiny-pyramid" else tiny_dir
    codec = armcodec.Codec(model, device="cpu", weights_dir=wd, classic=False)
    data = codec.compress(img)
    for limit in (1, 7, 40):
        monkeypatch.setattr(scan_module, "CHUNK_PIXELS", limit)
        assert codec.compress(img) == data
        assert np.array_equal(codec.decompress(data), img)


def test_tile_parts_split_a_step_between_tiles():
    from armcodec.coding.scan import tile_parts

    runs = [(0, 0, 4), (1, 4, 10), (2, 10, 11), (3, 11, 20)]
    assert tile_parts([(0, runs)], 20, 0) == [(0, 20, [(0, runs)])]
    parts = tile_parts([(0, runs)], 20, 7)  # a part closes before a tile that would take it past 7
    assert [(lo, hi) for lo, hi, _ in parts] == [(0, 4), (4, 11), (11, 20)]  # a larger tile alone
    assert parts[1][2] == [(0, [(1, 0, 6), (2, 6, 7)])]
    assert [(lo, hi) for lo, hi, _ in tile_parts([(0, runs)], 20, 6)] == [(0, 4), (4, 10), (10, 11), (11, 20)]


def test_a_large_tile_runs_its_passes_in_bands_of_rows_with_the_same_integers(monkeypatch):
    """Bands of rows (a tile whose grid exceeds CHUNK_POSITIONS): each band reads halo rows on
    either side, so the integers are the whole grid's."""
    from armcodec.models import pyramid_exact

    net = export_pyramid(make_tiny_pyramid())
    img = load("kodim05_rgb_130x70.png")[:64, :64]
    tiles, sched, vals = _setup(net, img, 64)
    whole = net.encoder_pass(tiles, sched, 64, "cpu", vals).params
    for limit in (16, 100, 200):  # bands of 1, 3 and 6 rows of the 32-wide level-0 grid
        monkeypatch.setattr(pyramid_exact, "CHUNK_POSITIONS", limit)
        assert torch.equal(net.encoder_pass(tiles, sched, 64, "cpu", vals).params, whole), limit


def _worst_windows(layer, n_cols: int = 6) -> torch.Tensor:
    """(2 n_cols + 2, 3, 3, C_in) grids whose centre window reaches a column's worst case (+-in_max
    against the weights' signs), its negation, and two random grids."""
    k = len(layer.offsets)
    c = layer.weight.shape[0] // k
    gen = torch.Generator().manual_seed(3)
    cols = torch.randint(0, layer.weight.shape[1], (n_cols,), generator=gen)
    grids = []
    for o in cols:
        g = torch.zeros(3, 3, c)
        for i, (di, dj) in enumerate(layer.offsets):
            g[1 + di, 1 + dj] = torch.sign(layer.weight[i * c : (i + 1) * c, o]) * layer.in_max
        grids += [g, -g]
    grids += [torch.randint(-layer.in_max, layer.in_max + 1, (3, 3, c), generator=gen).float() for _ in range(2)]
    return torch.stack(grids)


@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")  # torch.backends.mkldnn.flags' own
@pytest.mark.parametrize("kernel", ["float", "int8", "auto"])
@pytest.mark.parametrize("shape", [(1, 3, 3), (2, 7, 5), (16, 4, 4), (4, 40, 36)])
def test_dense_layers_as_one_convolution_give_the_gathered_integers(shape, kernel, monkeypatch):
    """Every dense layer of the shipped pyramid: where :meth:`IntConv.dense` runs it as one
    convolution (a CPU: float32, or oneDNN's int8 one where it is exact), the integers equal those
    of the gathered windows' float product, on grids of the worst cases and random ones of
    several shapes (torch picks oneDNN or im2col by shape); ``auto`` whichever its timing picks
    for a shape.  With oneDNN switched off torch would take NNPACK's transforms for float32, and
    ``dense`` declines (None): the caller gathers."""
    from armcodec.exact import kernels
    from armcodec.models.pyramid_exact import gather

    if kernel == "int8" and not kernels.int8_conv_exact():
        pytest.skip("oneDNN's int8 convolution is not exact on this CPU")
    net = armcodec.Codec("pyramid", device="cpu").model.net
    used = 0
    for p, pas in enumerate(net.passes):
        for name, layer in [("first", pas.first), ("skip", pas.skip)] + [(f"gate.{b}", g) for b, g in enumerate(pas.gates)]:
            worst = _worst_windows(layer)
            n, h, w = shape
            gen = torch.Generator().manual_seed(p)
            x = torch.randint(-layer.in_max, layer.in_max + 1, (n, h, w, worst.shape[-1]), generator=gen).float()
            for grid in (worst, x):
                with kernels.using("float"):
                    want = layer(gather(grid, layer.offsets))
                with kernels.using(kernel):
                    got = layer.dense(grid.contiguous())
                if got is not None:
                    used += 1
                    assert torch.equal(got, want), (p, name, shape)
            with torch.backends.mkldnn.flags(enabled=False), kernels.using(kernel):
                off = layer.dense(x.contiguous())
            with kernels.using("float"):
                assert off is None or torch.equal(off, layer(gather(x, layer.offsets)))
    assert used > 0


def test_the_pyramids_pass_with_and_without_convolutions_gives_the_same_integers(monkeypatch):
    """The shipped pyramid's encoder pass on a real crop: its dense layers as float32
    convolutions, as int8 ones (where oneDNN's are exact), and every layer on gathered windows,
    give every pixel the same integers."""
    from armcodec.exact import kernels

    net = armcodec.Codec("pyramid", device="cpu").model.net
    img = load("kodim05_rgb_130x70.png")
    tiles, sched, vals = _setup(net, img, 64)
    monkeypatch.setattr(kernels, "_faster", {})
    monkeypatch.setattr(kernels, "_int8_conv_faster", lambda *a: False)
    conv = net.encoder_pass(tiles, sched, 64, "cpu", vals).params
    if kernels.int8_conv_exact() and kernels.cpu_has_int8_dot():
        monkeypatch.setattr(kernels, "_faster", {})
        monkeypatch.setattr(kernels, "_int8_conv_faster", lambda *a: True)
        built = []
        monkeypatch.setattr(kernels.Int8Conv, "run", lambda self, *a, run=kernels.Int8Conv.run: built.append(1) or run(self, *a))
        assert torch.equal(net.encoder_pass(tiles, sched, 64, "cpu", vals).params, conv) and built
    monkeypatch.setattr(kernels, "conv_kernel", lambda x, w, in_max: None)
    assert torch.equal(net.encoder_pass(tiles, sched, 64, "cpu", vals).params, conv)


def test_what_a_codec_call_caches_on_the_model_serves_calls_outside_inference_mode():
    """Every encode and decode runs in torch's inference mode, so what it caches on the model (a
    layer's convolution weight, the int8 convolution's packed weights) is an inference tensor: the
    model's own methods called outside that mode afterwards read it and give the same integers."""
    codec = armcodec.Codec("pyramid", device="cpu")
    img = load("kodim05_rgb_130x70.png")
    data = codec.compress(img)
    net = codec.model.net
    assert any(getattr(layer, "_conv_w", None) is not None for layer in net.layers().values())
    tiles, sched, vals = _setup(net, img, 64)
    outside = net.encoder_pass(tiles, sched, 64, "cpu", vals).params
    with torch.inference_mode():
        inside = net.encoder_pass(tiles, sched, 64, "cpu", vals).params
    assert torch.equal(outside, inside)
    assert np.array_equal(codec.decompress(data).reshape(img.shape), img)
