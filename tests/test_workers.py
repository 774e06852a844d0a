"""Decoder worker processes: the tiles of a decode split between processes give what one process
gives; a worker's error is raised where the decode was asked; no worker outlives its decode."""
from __future__ import annotations

import io
import multiprocessing
import os

import numpy as np
import pytest

from armcodec import Codec, threads
from armcodec.coding import workers
from armcodec.coding.scan import Tile
from armcodec.errors import ArmcodecError, ChecksumError
from armcodec.io.frames import write_y4m, y4m_source
from conftest import load, moving_frames, y4m_bytes

pytestmark = pytest.mark.skipif(not workers.available(), reason="no fork on this platform")


def test_balance_splits_the_samples_evenly_in_order():
    sizes = [(128, 128), (128, 96), (32, 128), (32, 96), (128, 128), (16, 48), (128, 48), (128, 128)]
    todo = [(n % 3, n, Tile(0, 0, h, w)) for n, (h, w) in enumerate(sizes)]
    parts = workers.balance(todo, 2)
    assert sorted(item for part in parts for item in part) == sorted(todo)
    assert all(part == sorted(part, key=todo.index) for part in parts)  # each in the order given
    loads = [sum(t.h * t.w for _, _, t in part) for part in parts]
    assert abs(loads[0] - loads[1]) <= 128 * 128
    assert workers.balance(todo[:1], 3)[1:] == [[], []]


@pytest.fixture
def split(monkeypatch):
    """Every decode forks one worker and hands it about half its tiles, whatever its size, the free
    cores and the other threads; yields the list of the parts the workers were sent (their tile counts)."""
    monkeypatch.setattr(workers, "MIN_SAMPLES", 0)
    monkeypatch.setattr(threads, "cap", lambda: 2)
    monkeypatch.setattr(threads, "free_helpers", lambda: 1)
    monkeypatch.setattr(workers.threading, "active_count", lambda: 1)  # threads earlier tests left (Dask's)
    sent = []
    balance = workers.balance

    def spy(todo, parts):
        out = balance(todo, parts)
        sent.append([len(p) for p in out[1:]])
        return out

    monkeypatch.setattr(workers, "balance", spy)
    yield sent
    assert not multiprocessing.active_children()  # every worker ended with its decode


@pytest.fixture(scope="module")
def image_file(tiny_dir):
    codec = Codec("tiny", device="cpu", tile_size=16, weights_dir=tiny_dir, classic=False)
    img = load("kodim23_rgb_64x48.png")
    return codec, img, codec.encode(img).data


def test_an_image_decodes_the_same_in_two_processes(image_file, split, monkeypatch):
    codec, img, data = image_file
    monkeypatch.setenv(workers.ENV, "0")
    alone = codec.decode(data)
    assert split == []
    monkeypatch.setenv(workers.ENV, "1")
    together = codec.decode(data)
    assert split and split[0][0] > 0  # a worker decoded some of the 12 tiles
    assert np.array_equal(together.array, img) and np.array_equal(alone.array, img)
    assert together.model_bits == alone.model_bits


def test_the_decodes_memory_budget_is_shared_between_the_processes(image_file, split, monkeypatch):
    """Each process decodes its tiles in batches of its share of ``batch_bytes``: two processes
    hold what one would (a 720p clip's decode with a worker peaked 2.5 GiB with the whole budget each)."""
    codec, img, data = image_file
    budgets = []
    decode_tiles = workers.decode_tiles

    def spy(*args):
        budgets.append(args[9])  # max_batch_bytes (in the worker too, where this list is its own)
        return decode_tiles(*args)

    monkeypatch.setattr(workers, "decode_tiles", spy)
    assert np.array_equal(codec.decode(data).array, img)
    assert split and budgets == [codec.batch_bytes // 2]


def test_batches_are_as_few_as_fit_and_of_about_equal_counts():
    from armcodec.coding.planes import tile_batches

    class Model:
        def tile_bytes(self, tile, decoding):
            return 10

    tiles = [Tile(0, 0, 8, 8)] * 60
    for budget, counts in ((510, [30, 30]), (600, [60]), (290, [20, 20, 20]), (5, [1] * 60)):
        batches = tile_batches(tiles, Model(), 8, budget)
        assert [len(b) for b in batches] == counts and sum(batches, []) == list(range(60))
    assert tile_batches([], Model(), 8, 100) == []


def test_a_clip_decodes_the_same_in_two_processes(vcodec, split):
    clip = y4m_bytes(moving_frames(4, 40, 48))  # 9 luma and 2 x 4 chroma tiles a frame
    out = io.BytesIO()
    vcodec.encode(y4m_source(io.BytesIO(clip)), out)
    f = io.BytesIO(out.getvalue())
    header = vcodec.open(f)
    got = io.BytesIO()
    write_y4m(got, header.description, (fr for _, fr, _ in vcodec.decode(f, header, seekable=True)))
    assert got.getvalue() == clip
    assert len(split) >= 4 and all(n[0] > 0 for n in split)  # every frame (a frame: a call per kind of group)


def test_a_workers_error_is_raised_here(image_file, split, monkeypatch):
    """A damaged tile decoded by a worker fails there; the error (its type and message) is raised
    in the decoding process, and the next decode works."""
    codec, img, data = image_file
    parent = os.getpid()
    decode_tiles = workers.decode_tiles

    def damaged_there(*args, **kwargs):
        if os.getpid() != parent:
            raise ChecksumError("stream 5 fails its CRC32: the file is corrupted")
        return decode_tiles(*args, **kwargs)

    monkeypatch.setattr(workers, "decode_tiles", damaged_there)
    with pytest.raises(ChecksumError, match="stream 5 fails its CRC32"):
        codec.decode(data)
    monkeypatch.setattr(workers, "decode_tiles", decode_tiles)
    assert np.array_equal(codec.decode(data).array, img)


def test_a_worker_that_dies_is_an_error(image_file, split, monkeypatch):
    codec, _, data = image_file
    parent = os.getpid()
    decode_tiles = workers.decode_tiles

    def dies_there(*args, **kwargs):
        if os.getpid() != parent:
            os._exit(9)
        return decode_tiles(*args, **kwargs)

    monkeypatch.setattr(workers, "decode_tiles", dies_there)
    with pytest.raises(ArmcodecError, match="worker process ended unexpectedly"):
        codec.decode(data)


def test_no_workers_when_switched_off_or_given_one_thread(image_file, monkeypatch):
    import torch

    codec, img, data = image_file
    monkeypatch.setattr(workers, "MIN_SAMPLES", 0)
    pools = []
    enter = workers.DecodeWorkers.__enter__
    monkeypatch.setattr(workers.DecodeWorkers, "__enter__", lambda self: pools.append(self.count) or enter(self))
    before = torch.get_num_threads()
    try:
        for env, n in (("0", 2), ("1", 1), ("1", 2)):
            monkeypatch.setenv(workers.ENV, env)
            torch.set_num_threads(n)
            assert np.array_equal(codec.decode(data).array, img)
    finally:
        torch.set_num_threads(before)
    assert pools[:2] == [0, 0]
    assert pools[2] == (1 if len(threads.allowed_cpus()) > 1 and workers.threading.active_count() == 1 else 0)


def test_pinned_holds_the_thread_count_and_restores_it():
    import torch

    before = torch.get_num_threads()
    with threads.pinned(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_the_workers_run_the_compiled_kernels_the_decode_starts(image_file, split, monkeypatch):
    """A decode large enough for the fused kernels starts them before the fork, so its workers
    run them too (forked first, a worker ran the torch steps: a CLI decode 8% slower)."""
    pytest.importorskip("numba")
    from armcodec.exact import fused

    codec, _, data = image_file
    monkeypatch.setattr(fused, "MIN_SAMPLES", 0)
    monkeypatch.setattr(fused, "_kernels", None)  # not started in this process yet
    parent = os.getpid()
    decode_tiles = workers.decode_tiles

    def report_there(*args, **kwargs):
        if os.getpid() != parent:
            raise ChecksumError(f"kernels active: {fused.active('cpu')}")
        return decode_tiles(*args, **kwargs)

    monkeypatch.setattr(workers, "decode_tiles", report_there)
    with pytest.raises(ChecksumError, match="kernels active: True"):
        codec.decode(data)


def test_the_clis_progress_bar_starts_no_thread(monkeypatch):
    """A batch's progress bar on a terminal is redrawn after each file, not by a thread of its
    own, so the decodes of a batch still fork their workers."""
    import sys
    import threading

    from armcodec_cli.main import _Batch

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    before = threading.active_count()
    with _Batch(3, as_json=True, human=str) as batch:
        assert not batch.bar.disable
        assert threading.active_count() == before
