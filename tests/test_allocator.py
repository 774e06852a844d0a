"""The allocator settings around coding: set once, freed memory returned after the outermost
encode or decode, nothing touched with ARMCODEC_MALLOC_TUNE=0."""
import numpy as np

from armcodec import allocator


class FakeLibc:
    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("trim", pad))
        return 1


def test_trim_after_the_outermost_call_only(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(allocator, "_libc", fake)
    with allocator.coding():
        with allocator.coding():
            pass
        assert fake.calls == []
    assert fake.calls == [("trim", 0)]


def test_opt_out_leaves_the_allocator_alone(monkeypatch):
    monkeypatch.setattr(allocator, "_libc", None)
    monkeypatch.setenv("ARMCODEC_MALLOC_TUNE", "0")
    with allocator.coding():
        a = np.ones(1 << 20)
    assert allocator._libc is False and a.sum() == 1 << 20


def test_thresholds_are_set_once_on_glibc(monkeypatch):
    fake = FakeLibc()
    monkeypatch.setattr(allocator, "_libc", None)
    monkeypatch.setattr(allocator.sys, "platform", "linux")
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: fake)
    for _ in range(2):
        with allocator.coding():
            pass
    sets = [c for c in fake.calls if c[0] == "mallopt"]
    assert sets == [("mallopt", allocator.M_MMAP_THRESHOLD, 256 << 20), ("mallopt", allocator.M_TRIM_THRESHOLD, 1 << 30)]
    assert fake.calls.count(("trim", 0)) == 2
