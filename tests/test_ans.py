"""constriction hand-over: the 24-bit model it builds from q - 1 is exactly q."""
import numpy as np
import pytest
import constriction

from armcodec.coding.ans import CONSTRICTION_VERSION, StreamDecoder, StreamEncoder, _rows
from armcodec.errors import FormatError
from armcodec.exact.tables import PRECISION


def random_tables(m, seed):
    rng = np.random.default_rng(seed)
    mass = rng.integers(0, 2**20, size=(m, 256)).astype(np.int64)
    mass[:, rng.integers(0, 256, 120)] = 0  # many minimal bins
    mass[0] = 0
    mass[0, 17] = 5  # one dominant symbol
    q = 1 + mass * (2**PRECISION - 256) // mass.sum(1, keepdims=True)
    q[np.arange(m), q.argmax(1)] += 2**PRECISION - q.sum(1)
    return q


def test_pinned_constriction_version():
    from importlib.metadata import version

    assert version("constriction") == CONSTRICTION_VERSION


@pytest.mark.parametrize("row", range(4))
def test_categorical_reproduces_table_exactly(row):
    """Decode from crafted states: the low word of the state is the quantile, so a symbol
    boundary cdf[s] must decode to s and cdf[s] - 1 to s - 1: this pins every frequency."""
    q = random_tables(4, 7)[row]
    cdf = np.concatenate([[0], np.cumsum(q)])
    fam = constriction.stream.model.Categorical(perfect=False)

    def symbol_at(x):
        c = constriction.stream.stack.AnsCoder(np.array([x, 1 << 20], dtype=np.uint32))
        return int(c.decode(fam, _rows(q[None]))[0])

    for s in range(256):
        assert symbol_at(int(cdf[s])) == s
        if s:
            assert symbol_at(int(cdf[s]) - 1) == s - 1


def test_stream_round_trip_and_rate():
    q = random_tables(3000, 1)
    rng = np.random.default_rng(2)
    cdf = np.cumsum(q, 1)
    sym = np.array([np.searchsorted(c, rng.integers(0, 2**PRECISION), side="right") for c in cdf])
    enc = StreamEncoder()
    enc.push(sym[2000:], q[2000:])  # pushed last-first, popped first-first
    enc.push(sym[:2000], q[:2000])
    data = enc.finish()
    info = -np.log2(q[np.arange(3000), sym] / 2**PRECISION).sum()
    assert info <= len(data) * 8 <= info * 1.005 + 64
    dec = StreamDecoder(data)
    assert np.array_equal(dec.pop(q[:2000]), sym[:2000])
    assert np.array_equal(dec.pop(q[2000:]), sym[2000:])
    assert dec.exhausted()


def test_bad_streams_raise_format_error():
    with pytest.raises(FormatError):
        StreamDecoder(b"\x01\x02\x03")
    with pytest.raises(FormatError):
        StreamDecoder(b"\x01\x00\x00\x00\x00\x00\x00\x00")  # ends in a zero word
