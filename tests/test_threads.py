"""The thread budget: a cap that follows what other processes leave free, and never changes bits."""
import numpy as np
import pytest
import torch

import armcodec
from armcodec import threads


class FakeCpu:
    """/proc/stat and /proc/self/stat as tick counters the test advances."""

    def __init__(self, monkeypatch, cpus=2):
        self.now, self.busy, self.own, self.helper = 0.0, 0, 0, 0
        monkeypatch.setattr(threads, "allowed_cpus", lambda: list(range(cpus)))
        monkeypatch.setattr(threads, "_busy_ticks",
                            lambda cpus, helpers=(): (self.busy, self.own + (self.helper if helpers else 0)))
        monkeypatch.setattr(threads.time, "monotonic", lambda: self.now)
        monkeypatch.setattr(threads, "_TICK", 100)

    def run(self, seconds, others, ours, helper=0.0):
        """Advance time; ``others``, ``ours`` and our ``helper`` process's: cores' worth of CPU used meanwhile."""
        self.now += seconds
        self.own += int(ours * seconds * 100)
        self.helper += int(helper * seconds * 100)
        self.busy += int((others + ours + helper) * seconds * 100)


@pytest.fixture
def user_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield 2
    torch.set_num_threads(before)


def test_a_busy_core_takes_a_thread_away_and_gives_it_back(monkeypatch, user_threads):
    cpu = FakeCpu(monkeypatch)
    budget = threads.ThreadBudget(cap=2)
    assert budget.threads == 2
    cpu.run(0.3, others=1.0, ours=1.0)  # another program holds a core
    budget.poll()
    assert budget.threads == 1 and torch.get_num_threads() == 1
    cpu.run(0.3, others=0.0, ours=1.0)  # it went away
    budget.poll()
    assert budget.threads == 2 and torch.get_num_threads() == 2


def test_a_decoders_worker_process_is_not_another_program(monkeypatch, user_threads):
    """A decode that runs a worker process (armcodec.coding.workers) counts its CPU time as its
    own: one thread here and one there keep both cores; an unregistered process would take one."""
    cpu = FakeCpu(monkeypatch)
    with threads.managed() as budget:
        threads.set_helpers([12345])
        with threads.pinned(1):
            cpu.run(0.3, others=0.0, ours=1.0, helper=1.0)
            assert threads.free_helpers() == 1 and torch.get_num_threads() == 1  # pinned while split
        threads.set_helpers([])
        cpu.run(0.3, others=0.0, ours=1.0, helper=1.0)
        budget.poll()
        assert budget.threads == 1 and threads.free_helpers() == 0


def test_a_pin_ends_when_the_workers_are_done(monkeypatch, user_threads):
    """While the workers decode, one thread here; once its ``until`` holds (every worker answered)
    the budget's count applies inside the block too, and a busy core still takes a thread away."""
    cpu = FakeCpu(monkeypatch)
    done = []
    with threads.managed() as budget:
        threads.set_helpers([12345])
        with threads.pinned(1, until=lambda: bool(done)):
            cpu.run(0.3, others=0.0, ours=1.0, helper=1.0)
            budget.poll()
            assert torch.get_num_threads() == 1 and budget.pin == 1  # the worker still decodes
            done.append(1)
            cpu.run(0.3, others=0.0, ours=1.0)
            budget.poll()
            assert torch.get_num_threads() == 2 and budget.pin is None
            cpu.run(0.3, others=1.0, ours=1.0)  # another program takes a core
            budget.poll()
            assert torch.get_num_threads() == 1
        assert budget.pin is None and budget.until is None and torch.get_num_threads() == budget.threads == 1


def test_little_load_keeps_every_thread_and_looks_are_rate_limited(monkeypatch, user_threads):
    cpu = FakeCpu(monkeypatch)
    budget = threads.ThreadBudget(cap=2)
    cpu.run(0.3, others=0.2, ours=2.0)  # background noise: a core still counts as free
    budget.poll()
    assert budget.threads == 2
    cpu.run(0.01, others=1.0, ours=1.0)  # too soon after the last look: nothing read
    budget.poll()
    assert budget.threads == 2


def test_the_setting_is_a_cap_and_is_restored(monkeypatch):
    before = torch.get_num_threads()
    try:
        cpu = FakeCpu(monkeypatch, cpus=4)
        torch.set_num_threads(1)
        with threads.managed("cpu") as budget:
            assert budget.cap == 1
            cpu.run(0.3, others=0.0, ours=1.0)
            threads.poll()
            assert torch.get_num_threads() == 1  # four idle cores do not raise an explicit 1
        torch.set_num_threads(3)
        with threads.managed("cpu") as budget:
            cpu.run(0.3, others=2.0, ours=2.0)
            threads.poll()
            assert torch.get_num_threads() == 2
        assert torch.get_num_threads() == 3  # the user's setting, back
    finally:
        torch.set_num_threads(before)


def test_without_proc_the_cap_is_used(monkeypatch, user_threads):
    monkeypatch.setattr(threads, "_busy_ticks", lambda cpus, helpers=(): None)
    budget = threads.ThreadBudget(cap=2)
    monkeypatch.setattr(threads.time, "monotonic", lambda: 1e9)
    budget.poll()
    assert budget.threads == 2


def test_the_real_proc_files_read(user_threads):
    t = threads._busy_ticks(threads.allowed_cpus())
    if t is None:
        pytest.skip("no /proc here")
    assert t[0] >= t[1] >= 0


def test_thread_changes_during_a_decode_change_no_bit(monkeypatch, user_threads):
    """Looks every step, and the verdict flips every look: same bytes and pixels as one thread."""
    monkeypatch.setattr(threads, "INTERVAL", 0.0)
    monkeypatch.setattr(threads, "FIRST_LOOK", 0.0)
    flip = iter(range(10**9))
    monkeypatch.setattr(threads.ThreadBudget, "free_cores", lambda self: 2.0 if next(flip) % 2 else 1.0)
    img = np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    codec = armcodec.Codec(tile_size=16)
    flipping = codec.encode(img).data
    assert np.array_equal(codec.decode(flipping).array, img)
    torch.set_num_threads(1)
    monkeypatch.setattr(threads.ThreadBudget, "free_cores", lambda self: 1.0)
    assert codec.encode(img).data == flipping


def test_lanes_follow_the_budget_keep_the_modes_and_give_the_threads_back(monkeypatch, user_threads):
    """A pool of lanes, one per thread the budget gives (at most one per task), each with one
    intra-op thread and the caller's inference mode; results in order; the count back after."""
    seen = []

    def work(k):
        seen.append((torch.get_num_threads(), torch.is_inference_mode_enabled()))
        return k * k

    with torch.inference_mode():
        with threads.lanes(5) as in_lanes:
            assert torch.get_num_threads() == 1
            assert in_lanes(work, range(5)) == [k * k for k in range(5)]
    assert seen == [(1, True)] * 5 and torch.get_num_threads() == 2
    with threads.lanes(1) as in_lanes:  # one task: no pool
        assert in_lanes is None
    FakeCpu(monkeypatch)
    with threads.managed() as budget:
        budget.threads = 1
        torch.set_num_threads(1)  # what a look finding one free core does
        with threads.lanes(5) as in_lanes:
            assert in_lanes is None
    with pytest.raises(ZeroDivisionError):  # an error in a lane reaches the caller
        with threads.lanes(2) as in_lanes:
            in_lanes(lambda k: 1 // k, range(2))
    assert torch.get_num_threads() == 2
