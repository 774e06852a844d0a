"""The model's integer products: the int8 kernel gives the float kernel's integers on every layer of
every shipped model (worst cases included), the same tables and the same files, and is picked only
where a check found it exact."""
import numpy as np
import pytest
import torch
from PIL import Image

import armcodec
from armcodec.errors import ArmcodecError
from armcodec.exact import fused, kernels
from armcodec.exact.layers import IntConv
from armcodec.models.pixelcnn import GATE_MAX
from armcodec.weights import get_weights, read_manifest

from conftest import load

pytestmark = pytest.mark.skipif(not kernels.int8_exact("cpu"), reason="torch._int_mm is not exact on this CPU")


def shipped_layers():
    manifest = read_manifest()
    for sha, entry in sorted(manifest.weights.items()):
        net = get_weights(entry, torch.device("cpu"), manifest.directory).net
        for name, layer in net.layers().items():
            yield f"{entry.name}.{name}", layer


def extreme_inputs(layer: IntConv, rows: int = 24) -> torch.Tensor:
    """Inputs in [-in_max, in_max] that reach every column's worst case (+-in_max against the
    weights' signs), the extremes on their own, and random values."""
    w = layer.weight
    gen = torch.Generator().manual_seed(1)
    cols = torch.randint(0, w.shape[1], (rows // 3,), generator=gen)
    worst = torch.sign(w[:, cols]).t() * layer.in_max
    edges = torch.tensor([[layer.in_max], [-layer.in_max], [1], [-1]], dtype=torch.float32).expand(-1, w.shape[0])
    rand = torch.randint(-layer.in_max, layer.in_max + 1, (rows, w.shape[0]), generator=gen).float()
    return torch.cat([worst, -worst, edges, rand]).contiguous()


@pytest.mark.parametrize("in_max", [1, 64, 127, 128, 129, 255, 256, 511, 1000, 4095])
def test_split_covers_the_input_range(in_max):
    k = kernels.split_bits(in_max)
    x = torch.arange(-in_max, in_max + 1, dtype=torch.float32)
    hi = torch.floor(x / 2**k)
    lo = x - hi * 2**k
    x16 = x.to(torch.int16)  # the kernel's own arithmetic: an arithmetic shift, the rest
    assert torch.equal((x16 >> k).float(), hi) and torch.equal((x16 - ((x16 >> k) << k)).float(), lo)
    assert hi.min() >= -128 and hi.max() <= 127 and lo.min() >= 0 and lo.max() < 2**k
    if k and k <= 7 and fused.enabled("cpu"):  # the compiled split (the int8 kernel's, where numba is)
        halves = fused.split_int8(x.view(1, -1), k)
        assert halves.dtype == torch.int8 and torch.equal(halves.float(), torch.stack([hi, lo]))
    assert k == 0 or (in_max >> (k - 1)) > 127 or -((-in_max) >> (k - 1)) > 128  # the smallest such k


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled split and join", "torch split and join"])
def test_every_shipped_layer_gives_the_float_integers(compiled):
    """The int8 kernel's inputs split into int8 halves and its int32 products joined by the
    compiled loops (:mod:`armcodec.exact.fused`) or by torch steps: the float product's integers."""
    if compiled and not fused.enabled("cpu"):
        pytest.skip("numba is not installed")
    layers = list(shipped_layers())
    assert len(layers) >= 2 * 12
    fused.set_enabled(compiled)
    try:
        for name, layer in layers:
            x = extreme_inputs(layer)
            with kernels.using("float"):
                want = layer.acc(x)
            with kernels.using("int8"):
                for rows in (0, 1, 3, len(x)):
                    got = layer.acc(x[:rows])
                    assert got.dtype == torch.float64 and torch.equal(got, want[:rows].double()), (name, rows)
                # gathered from a map (its rows in another order), the gather and the split one loop
                n_off = len(layer.offsets)
                perm = torch.randperm(len(x) * n_off, generator=torch.Generator().manual_seed(4))
                src = x.reshape(len(x) * n_off, -1)[perm].contiguous()
                idx = torch.argsort(perm)
                got = layer.gathered_acc(src, idx, len(x))
                assert got.dtype == torch.float64 and torch.equal(got, want.double()), name
                assert layer.gathered_acc(src, idx[:0], 0).shape == (0, layer.weight.shape[1])  # a step of no pixels
            assert torch.equal(layer(x), torch.addcmul(layer._half, want, layer.scale).floor_()), name
    finally:
        fused.set_enabled(True)


@pytest.mark.parametrize("mix_int8", [True, False], ids=["int8 mix", "float mix"])
def test_every_shipped_block_gives_the_float_integers_on_the_compiled_path(mix_int8, monkeypatch):
    """A residual block gathered from a map (its rows in another order) on the compiled path, the
    gate layer's product left split and joined inside the gate's loop, the mix layer's product
    from the gate's int8 rows (or float32 ones) joined inside the residual add, the result also
    written to the next map: the float kernel's integers, at 0, 1, 3 and all rows."""
    from armcodec.models.pixelcnn_exact import gathered_block

    if not fused.enabled("cpu"):
        pytest.skip("numba is not installed")
    manifest = read_manifest()
    pairs = []
    for sha, entry in sorted(manifest.weights.items()):
        net = get_weights(entry, torch.device("cpu"), manifest.directory).net
        pairs += [(entry.name, g, m, net.cfg.resid_max) for g, m in zip(getattr(net, "gates", []), getattr(net, "mixes", []))
                  if g.weight.shape[1] == 2 * m.weight.shape[0]]
    assert len(pairs) >= 8
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "cpu_has_int8_dot", lambda: True)
    monkeypatch.setattr(kernels, "_faster", {})
    monkeypatch.setattr(kernels, "_int8_faster", lambda rows, k, n, in_max, raw=False: in_max != GATE_MAX or mix_int8)
    for name, gate, mix, rmax in pairs:
        x = extreme_inputs(gate)
        n_off = len(gate.offsets)
        perm = torch.randperm(len(x) * n_off, generator=torch.Generator().manual_seed(4))
        src = x.reshape(len(x) * n_off, -1)[perm].contiguous()
        idx = torch.argsort(perm)
        resid = torch.randint(-rmax, rmax + 1, (len(x), mix.weight.shape[1]), generator=torch.Generator().manual_seed(5)).float()
        resid[:2] = torch.tensor([rmax, -rmax]).view(2, 1).float()
        for rows in (0, 1, 3, len(x)):
            with kernels.using("float"):
                want = gathered_block(gate, mix, src, idx[: rows * n_off], rows, resid[:rows], rmax)
            dest = torch.zeros((50, mix.weight.shape[1]))
            at = torch.randperm(50, generator=torch.Generator().manual_seed(6))[:rows]
            assert (gate.lean_int8(rows) is not None) == (rows > 0)
            assert (mix.lean_int8(rows) is not None) == (rows > 0 and mix_int8)
            got = gathered_block(gate, mix, src, idx[: rows * n_off], rows, resid[:rows], rmax, dest, at)
            assert got.dtype == torch.float32 and torch.equal(got, want), (name, rows)
            assert torch.equal(dest[at], want) and int(dest.abs().sum()) == int(want.abs().sum()), (name, rows)


def test_int8_tables_equal_float_tables_at_every_layer(monkeypatch):
    """The default model on a real crop: every layer's accumulators and the parameters are the
    same numbers with either kernel."""
    from test_model import params_full_pass
    from armcodec.coding.scan import tile_grid

    from armcodec.models import pixelcnn_exact

    codec = armcodec.Codec(device="cpu")
    net = codec.model.net
    img = load("kodim23_rgb_64x48.png")[:12, :16]
    tiles = tile_grid(12, 16, 16)
    seen: dict[str, list] = {"float": [], "int8": []}
    call, block_call = IntConv.acc, pixelcnn_exact.gathered_block
    inside = []  # a block's own products (the float kernel's way: accumulators) are recorded as its output

    def recording(self, x):
        out = call(self, x)
        if not inside:
            seen[kernels.requested()].append(out.clone())
        return out

    def recording_block(*args, **kwargs):
        inside.append(1)
        try:
            out = block_call(*args, **kwargs)
        finally:
            inside.pop()
        seen[kernels.requested()].append(out.clone())
        return out

    monkeypatch.setattr(IntConv, "acc", recording)
    monkeypatch.setattr(pixelcnn_exact, "gathered_block", recording_block)
    results = {}
    for name in ("float", "int8"):
        with kernels.using(name):
            results[name] = params_full_pass(net, img, tiles, 16)[3]
    assert len(seen["float"]) == len(seen["int8"]) >= 2 + len(net.gates) + 1
    for a, b in zip(seen["float"], seen["int8"]):
        assert torch.equal(a, b)
    assert torch.equal(results["float"], results["int8"])


@pytest.mark.parametrize("name", ["kodim05_rgb_130x70.png", "kodim03_rgba_32x24.png", "usc_sipi_6.1_gray_40x33.png"])
def test_files_are_the_same_with_either_kernel(tiny_dir, name):
    img = load(name)
    img = img[:20, :28] if img.ndim == 2 else img[:20, :28, :]
    f = armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir, kernel="float")
    i = armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir, kernel="int8")
    assert i.kernel_in_use == "int8" and f.kernel_in_use == "float"
    data = f.compress(img)
    assert i.compress(img) == data
    assert np.array_equal(i.decompress(data).reshape(img.shape), img)


def test_default_model_file_crosses_kernels():
    img = load("kodim23_rgb_64x48.png")[:16, :20]
    f, i = armcodec.Codec(device="cpu", kernel="float"), armcodec.Codec(device="cpu", kernel="int8")
    data = i.compress(img)
    assert data == f.compress(img)
    assert np.array_equal(f.decompress(data).reshape(img.shape), img)


def test_auto_takes_int8_only_with_integer_dot_products_and_a_passed_check(monkeypatch):
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "cpu_has_int8_dot", lambda: False)
    assert kernels.kernel_for("cpu") == "float"
    monkeypatch.setattr(kernels, "cpu_has_int8_dot", lambda: True)
    assert kernels.kernel_for("cpu") == "int8"
    monkeypatch.setitem(kernels._exact, "cpu", False)  # a backend that failed the check
    assert kernels.kernel_for("cpu") == "float"
    with kernels.using("int8"), pytest.raises(kernels.KernelError, match="not compute exact"):
        kernels.kernel_for("cpu")
    monkeypatch.setenv(kernels.ENV, "float")
    monkeypatch.setattr(kernels, "cpu_has_int8_dot", lambda: True)
    assert kernels.kernel_for("cpu") == "float"


def test_int8_product_refuses_a_layer_whose_int32_join_could_overflow():
    """The join (hi @ W) * 2**k + lo @ W stays in int32: a column sum whose products fit (128 *
    sum|w| < 2**31) but whose split input's join could not ((511 + 4) * sum|w| >= 2**31) is refused."""
    w = torch.full((40000, 1), 127.0)  # sum|w| = 5.08M: 650M as one int8 product, 2.6G joined
    kernels.Int8Product(w, torch.zeros(1), 127)
    with pytest.raises(ValueError, match="exceeds 2\\*\\*31"):
        kernels.Int8Product(w, torch.zeros(1), 511)


def test_auto_on_a_cpu_keeps_small_products_on_float(monkeypatch):
    """Under auto a CPU product runs on int8 only from the sizes where it pays (split inputs
    later); asked for, int8 runs every product; float asked for, none."""
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "cpu_has_int8_dot", lambda: True)
    monkeypatch.setitem(kernels._exact, "cpu", True)
    monkeypatch.setattr(kernels, "_faster", {})
    monkeypatch.setattr(kernels, "_int8_faster", lambda *shape: True)  # the calibration's say, below
    small, large = kernels.CPU_INT8_MIN_MACS // (64 * 64) - 1, kernels.CPU_INT8_MIN_MACS // (64 * 64)
    assert not kernels.use_int8("cpu", small, 64, 64, 127) and kernels.use_int8("cpu", large, 64, 64, 127)
    assert not kernels.use_int8("cpu", large, 64, 64, 511)  # split: the larger threshold
    assert kernels.use_int8("cpu", kernels.CPU_INT8_MIN_MACS_SPLIT // (64 * 64), 64, 64, 511)
    with kernels.using("int8"):
        assert kernels.use_int8("cpu", 1, 8, 8, 511)
    with kernels.using("float"):
        assert not kernels.use_int8("cpu", 1 << 20, 640, 256, 127)
    layer = next(layer for _, layer in shipped_layers() if layer.in_max == 127)
    x = extreme_inputs(layer)
    calls = []
    monkeypatch.setattr(torch, "_int_mm", lambda a, b, f=torch._int_mm: calls.append(len(a)) or f(a, b))
    want = layer.acc(x[:2])  # auto, two rows: float
    assert not calls
    with kernels.using("int8"):
        assert torch.equal(layer.acc(x[:2]), want) and calls


def test_auto_on_a_cpu_runs_each_shape_on_the_kernel_its_calibration_found_faster(monkeypatch):
    """Above the minimum sizes, the first product of a shape (K, N, split, rows within a factor 2)
    times both kernels once; later products of that shape reuse the answer, whichever it is."""
    monkeypatch.delenv(kernels.ENV, raising=False)
    monkeypatch.setattr(kernels, "cpu_has_int8_dot", lambda: True)
    monkeypatch.setitem(kernels._exact, "cpu", True)
    monkeypatch.setattr(kernels, "_faster", {})
    rows = kernels.CPU_INT8_MIN_MACS_SPLIT // (640 * 256) + 1
    answer = kernels.use_int8("cpu", rows, 640, 256, 511)  # a real calibration: either answer is valid
    assert kernels._faster == {(640, 256, 2, rows.bit_length(), False): answer}
    asked = []
    monkeypatch.setattr(kernels, "_int8_faster", lambda *shape: asked.append(shape) or not answer)
    assert kernels.use_int8("cpu", rows + 1, 640, 256, 511) == answer and not asked  # same shape: no new timing
    assert kernels.use_int8("cpu", 4 * rows, 640, 256, 511) != answer and asked == [(4 * rows, 640, 256, 511, False)]
    assert kernels.use_int8("cpu", 4 * rows, 640, 256, 127) != answer  # unsplit input: another shape
    layer = next(layer for _, layer in shipped_layers() if layer.in_max == 127)
    x = extreme_inputs(layer)
    x = x.repeat(-(-4096 // len(x)), 1)[:4096]
    with kernels.using("float"):
        want = layer.acc(x)
    for faster in (True, False):  # the same integers from either choice
        monkeypatch.setattr(kernels, "_faster", {})
        monkeypatch.setattr(kernels, "_int8_faster", lambda *shape, f=faster: f)
        assert torch.equal(layer.acc(x), want)


def test_forced_int8_where_inexact_is_a_clean_error(tiny_dir, monkeypatch):
    monkeypatch.setitem(kernels._exact, "cpu", False)
    codec = armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir, kernel="int8")
    with pytest.raises(ArmcodecError, match="int8 kernel does not compute exact products"):
        codec.compress(load("kodim03_rgba_32x24.png"))
    with pytest.raises(ArmcodecError, match="unknown kernel"):
        armcodec.Codec("tiny", device="cpu", weights_dir=tiny_dir, kernel="int4")


def test_the_check_catches_a_saturating_backend(monkeypatch):
    """A product that saturates 16-bit partial sums (fbgemm's AVX2 path without VNNI, PyTorch
    #44939) or rounds like float32 fails the check, so ``auto`` never codes with it."""
    real = torch._int_mm

    def saturating(a, b):  # pairs of products summed in int16, as vpmaddubsw does
        p = a.long().unsqueeze(2) * b.long().unsqueeze(0)
        p = p[:, : p.shape[1] // 2 * 2].view(a.shape[0], -1, 2, b.shape[1]).sum(2).clamp(-32768, 32767)
        return p.sum(1).to(torch.int32)

    def float32(a, b):
        return (a.float() @ b.float()).to(torch.int32)

    assert kernels._probe(torch.device("cpu"))
    for fake in (saturating, float32):
        monkeypatch.setattr(torch, "_int_mm", fake)
        assert not kernels._probe(torch.device("cpu"))
    monkeypatch.setattr(torch, "_int_mm", real)


def test_cublas_padding_adds_nothing():
    """The zero rows and columns that give cuBLAS its shapes (M > 16, K and N multiples of 8),
    run here on the CPU: the same integers for every row count from 1."""
    gen = torch.Generator().manual_seed(2)
    odd = IntConv([(0, 0)], torch.randint(-128, 128, (13, 7), generator=gen).float(),
                  torch.randint(-1000, 1000, (7,), generator=gen).double(), torch.full((7,), 3.0, dtype=torch.float64),
                  torch.full((7,), 2.0**-12, dtype=torch.float64), 511)
    for name, layer in [*shipped_layers(), ("K 13, N 7", odd)]:
        if name.endswith(("first", "head_out", "skip", "N 7")):  # K or N not a multiple of 8
            padded = kernels.Int8Product(layer.weight, layer.bias, layer.in_max, pad=True)
            assert padded.w8.shape[0] % 8 == 0 and padded.w8.shape[1] % 8 == 0
            x = extreme_inputs(layer)
            with kernels.using("float"):
                want = layer.acc(x)
            for m in (1, 5, 17, len(x)):
                assert torch.equal(padded(x[:m]), want[:m]), (name, m)


def test_cli_kernel_option(tmp_path, tiny_dir, monkeypatch):
    from typer.testing import CliRunner

    from armcodec_cli.main import app
    from conftest import DATA

    monkeypatch.setenv("ARMCODEC_WEIGHTS_DIR", str(tiny_dir))
    runner = CliRunner()
    src = tmp_path / "a.png"
    src.write_bytes((DATA / "kodim03_rgba_32x24.png").read_bytes())
    r = runner.invoke(app, ["compress", str(src), "--model", "tiny", "--kernel", "int8", "--no-classic"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["decompress", str(src) + ".arm", "-o", str(tmp_path / "b.png"), "--kernel", "float"])
    assert r.exit_code == 0, r.output
    assert np.array_equal(load("kodim03_rgba_32x24.png"), np.asarray(Image.open(tmp_path / "b.png")))
    r = runner.invoke(app, ["compress", str(src), "--model", "tiny", "--kernel", "int4", "-f"])
    assert r.exit_code == 1 and "unknown kernel 'int4'" in r.stderr


@pytest.mark.parametrize("in_max", [1, 127, 128, 255, 256, 511, 1000])
def test_conv_split_covers_the_input_range(in_max):
    """The int8 convolution's split x = 2**s * (hi - 128) + lo: hi a uint8, 0 <= lo < 2**s, by
    its own int16 arithmetic, with the smallest such s."""
    s = kernels.split_bits(in_max)
    x16 = torch.arange(-in_max, in_max + 1, dtype=torch.int16) + (128 << s)
    hi, lo = x16 >> s, x16 & (2**s - 1)
    assert hi.min() >= 0 and hi.max() <= 255 and lo.min() >= 0 and lo.max() < 2**s
    assert torch.equal((hi.long() - 128) * 2**s + lo.long(), torch.arange(-in_max, in_max + 1))
    assert s == 0 or in_max >= 128 << (s - 1)  # the smallest


def _saturating_conv(self, x, zero_point, bias):
    """oneDNN's int8 convolution as a CPU without VNNI would compute it: products of adjacent
    input channels summed in pairs into saturating 16-bit integers (vpmaddubsw)."""
    w = self.w8.double()
    xp = torch.nn.functional.pad(x.double(), (self.padding,) * 4, value=zero_point)
    cols = torch.nn.functional.unfold(xp, w.shape[2:])  # (N, C*k*k, L), channel-major
    n, _, length = cols.shape
    c, kk = w.shape[1], w.shape[2] * w.shape[3]
    prod = cols.view(n, 1, c, kk, length) * w.view(1, -1, c, kk, 1)
    pairs = prod.view(n, w.shape[0], c // 2, 2, kk, length).sum(3).clamp(-32768, 32767)
    acc = pairs.sum((2, 3)) - zero_point * w.sum((1, 2, 3)).view(1, -1, 1)
    acc = acc + (bias.double().view(1, -1, 1) if bias is not None else 0)
    h, wd = x.shape[2:]
    return acc.view(n, -1, h, wd).float()


@pytest.mark.skipif(not kernels.int8_conv_exact(), reason="oneDNN's int8 convolution is not exact on this CPU")
def test_the_conv_check_catches_a_saturating_backend(monkeypatch):
    """The int8 convolution's check passes here, and fails for a backend that saturates 16-bit
    pair sums (oneDNN's int8 path on a CPU without VNNI), so ``auto`` never codes with one."""
    assert kernels._probe_conv()
    gen = torch.Generator().manual_seed(4)
    conv = kernels.Int8Conv(torch.randint(-8, 9, (6, 16, 3, 3), generator=gen).float(), torch.arange(6.0), 511)
    small = torch.randint(100, 156, (2, 16, 5, 7), generator=gen).to(torch.uint8)  # no pair sum saturates
    for zp in (128, 0):
        assert torch.equal(_saturating_conv(conv, small, zp, conv.bias), conv.run(small, zp, conv.bias))
    monkeypatch.setattr(kernels.Int8Conv, "run", _saturating_conv)
    assert not kernels._probe_conv()


@pytest.mark.skipif(not kernels.int8_conv_exact(), reason="oneDNN's int8 convolution is not exact on this CPU")
def test_int8_conv_refuses_a_layer_whose_halves_could_round_and_dense_then_gathers():
    """A layer whose high half's sums could pass 2**24 (128 * sum|w|) is not run on the int8
    convolution: ``dense`` under ``int8`` declines (None) and the caller gathers."""
    gen = torch.Generator().manual_seed(3)
    offsets = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    big = IntConv(offsets, torch.full((9 * 128, 4), 127.0), torch.zeros(4, dtype=torch.float64),
                  torch.full((4,), 3.0, dtype=torch.float64), torch.full((4,), 2.0**-20, dtype=torch.float64), 100)
    assert big.exact_f32  # 127 * 1152 * 100 < 2**24, but 128 * 127 * 1152 is not
    with pytest.raises(ValueError, match="2\\*\\*24"):
        kernels.Int8Conv(torch.full((4, 128, 3, 3), 127.0), torch.zeros(4), 100)
    x = torch.randint(-100, 101, (1, 4, 5, 128), generator=gen).float()
    with kernels.using("int8"):
        assert big.dense(x) is None
