"""Ensembles: exact round trips, the mixture the tables build, and the shipped `max` preset."""
import numpy as np
import pytest
import torch

import armcodec
from armcodec.ensemble import EnsembleConfig, IntEnsemble, interleave_order
from armcodec.models.pixelcnn import PixelCNNConfig
from armcodec.quant import IntPixelCNN
from armcodec.tables import PRECISION, TableLUTs, channel_tables
from armcodec.train import export_model

from conftest import DATA, TINY_CFG, load, make_tiny_model


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ens_weights")
    a, b = make_tiny_model(0), make_tiny_model(1, PixelCNNConfig(width=8, blocks=1, head_width=8, mixtures=3))
    export_model(a, d, "a", tile_size=16)
    export_model(b, d, "b", tile_size=16)
    export_model([a, b], d, "ab", tile_size=16)
    return d


@pytest.mark.parametrize("name", ["kodim05_rgb_130x70.png", "usc_sipi_6.1_la_28x21.png", "kodim03_rgba_32x24.png"])
@pytest.mark.parametrize("adaptive", [False, True])
def test_ensemble_round_trips_exactly(ensemble_dir, name, adaptive):
    codec = armcodec.Codec("ab", device="cpu", weights_dir=ensemble_dir, adaptive=adaptive)
    img = load(name)
    enc = codec.encode(DATA / name)
    dec = codec.decode(enc.data)
    assert np.array_equal(dec.array, img if img.ndim == 3 else img[:, :, None])
    assert dec.model_bits == pytest.approx(enc.model_bits, rel=1e-12)
    assert len(enc.data) * 8 <= enc.model_bits * 1.005 + 8 * 200 + 64 * 40


def _params(cfg: PixelCNNConfig, m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.randint(-40, 40, (m, cfg.n_params), generator=g)
    k, c = cfg.mixtures, cfg.image_channels
    p[:, k * c : 2 * k * c] = torch.randint(-1500, 1500, (m, k * c), generator=g)  # means
    return p


@pytest.mark.parametrize("shares", [None, (15, 1), (1, 3)])
def test_tables_are_the_mixture_of_the_members(shares):
    """The integer tables of the ensemble match (s_a p_a + s_b p_b) / (s_a + s_b) of the members'
    own tables (equal shares by default)."""
    ca, cb = TINY_CFG, PixelCNNConfig(width=8, blocks=1, head_width=8, mixtures=3)
    cfg = EnsembleConfig((ca, cb), shares)
    sa, sb = shares or (1, 1)
    luts = TableLUTs.compute().to("cpu")
    pa, pb = _params(ca, 500, 1), _params(cb, 500, 2)
    joint = torch.cat([pa, pb], 1)[:, interleave_order(cfg)]
    known = torch.randint(0, 256, (500, 2))
    for c in range(3):
        q = channel_tables(joint, c, known[:, :c], cfg, luts)
        assert bool((q >= 1).all()) and bool((q.sum(1) == 2**PRECISION).all())
        qa = channel_tables(pa, c, known[:, :c], ca, luts).double()
        qb = channel_tables(pb, c, known[:, :c], cb, luts).double()
        want = (sa * qa + sb * qb) / (sa + sb) / 2**PRECISION
        assert float((q.double() / 2**PRECISION - want).abs().max()) < 2e-3


def test_interleave_order_is_a_permutation_grouping_each_run():
    cfg = EnsembleConfig((TINY_CFG, PixelCNNConfig(width=8, blocks=1, head_width=8, mixtures=3)))
    order = interleave_order(cfg)
    assert sorted(order.tolist()) == list(range(cfg.n_params))
    # the first run (channel 0 logits): member a's 2 logits, then member b's 3
    assert order[:5].tolist() == [0, 1, TINY_CFG.n_params, TINY_CFG.n_params + 1, TINY_CFG.n_params + 2]


def test_members_must_share_the_wavefront():
    with pytest.raises(ValueError, match="share"):
        EnsembleConfig((TINY_CFG, PixelCNNConfig(width=8, blocks=1, head_width=8, mixtures=2, slope=2)))
    with pytest.raises(ValueError, match="coef_steps"):
        EnsembleConfig((TINY_CFG, PixelCNNConfig(width=8, blocks=1, head_width=8, mixtures=3, coef_steps=64)))
    with pytest.raises(ValueError, match="two"):
        EnsembleConfig((TINY_CFG,))


@pytest.mark.parametrize("shares", [(1,), (0, 1), (1, -1), (60, 5), (1.5, 1)])
def test_invalid_shares_are_refused(shares):
    with pytest.raises(ValueError, match="shares"):
        EnsembleConfig((TINY_CFG, TINY_CFG), shares)


def test_shares_survive_the_config_dict_and_equal_ensembles_keep_theirs():
    cfg = EnsembleConfig((TINY_CFG, TINY_CFG), (7, 1))
    assert EnsembleConfig.from_dict(cfg.to_dict()) == cfg and cfg.member_shares == (7, 1)
    equal = EnsembleConfig((TINY_CFG, TINY_CFG))
    assert "shares" not in equal.to_dict() and equal.member_shares == (1, 1)


def test_ensemble_of_shipped_weights_round_trips_in_its_shares(ensemble_dir, tmp_path):
    """export_shipped_ensemble mixes models already exported (their integer weights as stored)."""
    import shutil

    from armcodec.models.registry import get_model
    from armcodec.train import export_shipped_ensemble

    for f in ensemble_dir.iterdir():
        shutil.copy(f, tmp_path / f.name)
    entry = export_shipped_ensemble(["a", "b"], (3, 1), tmp_path, "a3b1", tile_size=16)
    assert entry["config"]["shares"] == [3, 1] and [m["model"] for m in entry["ensemble_of"]["members"]] == ["a", "b"]
    m = get_model("a3b1", "cpu", tmp_path)
    assert m.net.cfg.member_shares == (3, 1)
    a = get_model("a", "cpu", tmp_path).net
    assert all(torch.equal(x, y) for x, y in zip(m.net.members[0].tensors().values(), a.tensors().values()))
    img = load("kodim05_rgb_130x70.png")
    codec = armcodec.Codec("a3b1", device="cpu", weights_dir=tmp_path)
    enc = codec.encode(img)
    assert np.array_equal(codec.decode(enc.data).array, img)
    equal = armcodec.Codec("ab", device="cpu", weights_dir=tmp_path).encode(img)
    assert enc.model_bits != equal.model_bits  # the shares change the tables


def test_ensemble_weights_reload_identically(ensemble_dir):
    from armcodec.models.registry import get_model

    m = get_model("ab", "cpu", ensemble_dir)
    assert isinstance(m.net, IntEnsemble) and all(isinstance(x, IntPixelCNN) for x in m.net.members)
    assert m.net.cfg.member_mixtures == (2, 3)


def test_shipped_max_preset_round_trips():
    """The shipped `max` preset: exact, and its files name it."""
    img = load("kodim23_rgb_64x48.png")
    enc = armcodec.Codec("max", device="cpu").encode(img)
    assert armcodec.read_info(enc.data)["model"] == "max"
    assert np.array_equal(armcodec.decompress(enc.data, device="cpu"), img)
