"""Residual feedback (coder profiles 4 and 5): exact round trips in every mode and with every
orientation, the encoder's all-at-once residuals and shifts equal the decoder's step by step, the
coefficients travel after the offsets and are counted in model_bits, corrupted or relabelled
streams are refused, and on a real photograph with the shipped model it makes the file smaller."""
import numpy as np
import pytest
import torch

import armcodec
from armcodec import container
from armcodec.coding import feedback, planes
from armcodec.coding.scan import Schedule, tile_grid
from armcodec.errors import ArmcodecError, FormatError

from conftest import REAL_IMAGES, load, relabel_profile


@pytest.mark.parametrize("name", REAL_IMAGES)
@pytest.mark.parametrize("orient", [False, True])
def test_round_trip_exact(tiny_dir, name, orient):
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, orient=orient)
    assert codec.profile == (container.PROFILE_ORIENTED_FED_BACK if orient else container.PROFILE_FED_BACK)
    img = load(name)
    enc = codec.encode(img)
    assert container.parse(enc.data)[0].profile == codec.profile
    dec = codec.decode(enc.data)
    assert np.array_equal(dec.array.reshape(img.shape), img)
    assert dec.model_bits == pytest.approx(enc.model_bits, rel=1e-12)
    streams = container.parse(enc.data)[1]
    overhead = len(enc.data) - sum(len(s) for s in streams)  # header, lengths and CRCs
    assert enc.model_bits <= len(enc.data) * 8 <= enc.model_bits * 1.005 + 8 * overhead + 64 * len(streams)


def test_decoder_steps_reproduce_the_encoders_residuals_and_shifts(tiny_dir):
    """The encoder computes every residual and mean shift in one pass; the wavefront, step by
    step from the pixels it has decoded, must get the same integers (else files would not decode)."""
    codec = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir)
    net, luts = codec.model.net, codec.model.luts
    img = load("kodim05_rgb_37x29.png")
    tiles = tile_grid(img.shape[0], img.shape[1], 16)
    sched = Schedule(tiles, net.cfg.slope)
    ys = np.array([t.y for t in tiles])[sched.n] + sched.i
    xs = np.array([t.x for t in tiles])[sched.n] + sched.j
    values = torch.from_numpy(img[ys, xs].astype(np.int64))
    state = net.new_state(len(tiles), 16, "cpu")
    pos = state.flat_index(sched.n, sched.i, sched.j)
    params = planes._FullPass(net, state, pos, values).params.long()
    fb = planes._feedback(tiles, sched, 3, net, 16, "cpu")
    residuals = feedback.all_residuals(params, values, net.cfg, luts)
    feedback.fit(fb, residuals)
    assert int(fb.coefs.abs().sum()) > 0
    shifts = feedback.all_mean_shifts(fb, residuals)
    step_fb = planes._feedback(tiles, sched, 3, net, 16, "cpu")
    step_fb.coefs = fb.coefs.clone()
    for t in range(sched.n_steps):
        a, b = int(sched.starts[t]), int(sched.starts[t + 1])
        res = torch.empty((b - a, 3), dtype=torch.int64)
        for c in range(3):
            assert torch.equal(step_fb.mean_shift(a, b, c, res), shifts[a:b, c])
            res[:, c] = 16 * values[a:b, c] - feedback.expected_means(params[a:b], c, values[a:b, :c], net.cfg, luts)
            step_fb.write(a, b, c, res[:, c])
        assert torch.equal(res, residuals[a:b])


@pytest.mark.parametrize("slope", [1, 2, 3, 4])
def test_neighbours_are_coded_before_the_pixel(slope):
    for di, dj in feedback.neighbours(slope):
        assert dj + slope * di < 0 and -feedback.PAD <= di <= 0 and abs(dj) <= feedback.PAD
    assert len(feedback.neighbours(3)) == len(feedback.CANDIDATES)


def test_coefficient_symbols_round_trip_and_bad_symbols_are_refused():
    coefs = torch.tensor([[5, -128, 127, 0, 1, 2, 3, 4, 5, 0, 0], [1] * 10 + [0], [-1] * 11])
    fb = feedback.Feedback(coefs[None], np.zeros(1, np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), 16, 3, "cpu")
    symbols = fb.tile_symbols(0)
    assert len(symbols) == feedback.coefs_per_tile(3, 3) == 30
    assert torch.equal(feedback.coefs_from_symbols(symbols, 3, 3), coefs)
    symbols[4] = feedback.N_COEF_VALUES
    with pytest.raises(FormatError, match="feedback"):
        feedback.coefs_from_symbols(symbols, 3, 3)


def test_model_bits_count_eight_bits_per_coefficient(tiny_dir, monkeypatch):
    """With the fit forced to zero coefficients, profile 4 codes exactly profile 2's pixels plus
    8 bits per coefficient."""
    img = load("kodim05_rgb_37x29.png")
    monkeypatch.setattr(feedback, "fit", lambda fb, residuals: [fb.write(0, len(residuals), c, residuals[:, c])
                                                                for c in range(residuals.shape[1])])
    fed = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir).encode(img)
    plain = armcodec.Codec("tiny", "cpu", weights_dir=tiny_dir, feedback=False).encode(img)
    n_tiles = len(container.parse(fed.data)[1])
    assert fed.model_bits - plain.model_bits == pytest.approx(8 * 30 * n_tiles, abs=1e-6)


@pytest.mark.parametrize("claimed", [container.PROFILE_ADAPTIVE, container.PROFILE_ORIENTED, container.PROFILE_ORIENTED_FED_BACK])
def test_profile_4_read_as_another_profile_is_caught(tiny_codec, claimed):
    data = relabel_profile(tiny_codec.compress(load("kodim05_rgb_37x29.png")), claimed)
    with pytest.raises(ArmcodecError):
        tiny_codec.decode(data)


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
