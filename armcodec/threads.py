"""Intra-op threads that follow the CPU this process can really get (never changes an output bit).

The decoder runs thousands of small wavefront steps, each a few dozen parallel regions that end
in a barrier.  When another program keeps one of the cores busy, the OS parks one of our threads
for whole time slices and every barrier waits for it: on 2 cores a decode with 2 threads took
4-5x its idle time next to a single busy loop (and 29x next to ffmpeg), while 1 thread took
1.07x.  So the thread count is not a fixed demand but a cap:

- the cap is what the user set (``torch.set_num_threads``, ``--threads``) or torch's default,
  never more than the cores in this process's affinity mask;
- every :data:`INTERVAL` seconds :func:`poll` reads how much of those cores *other* processes
  used since the last look (``/proc/stat`` per CPU minus this process's own ``/proc/self/stat``
  time) and uses one thread per core that was at least ``1 - SLACK`` free, at least one.

:func:`managed` wraps one encode or decode (the scan loops call :func:`poll`), and restores the
user's setting afterwards.  Where ``/proc`` is missing (not Linux) the cap is used as is.  A decode
that splits its tiles between processes (:mod:`armcodec.coding.workers`) uses one thread in each,
as many processes as :func:`free_helpers` allows, and counts its workers' CPU time as its own.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

from armcodec import allocator

INTERVAL = 0.25  # seconds between looks at the CPU
FIRST_LOOK = 0.05  # the first decision of a run, after this long
SLACK = 0.25  # a core counts as free if others used at most this fraction of it
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def allowed_cpus() -> list[int]:
    """The CPUs this process may run on."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return list(range(os.cpu_count() or 1))


def _process_ticks(pid: int | str) -> int:
    """User and system ticks of a process so far (fields 14 and 15 of /proc/PID/stat: the 12th
    and 13th after the command name)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        fields = f.read().rsplit(b")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _busy_ticks(cpus: list[int], helpers: list[int] = ()) -> tuple[int, int] | None:
    """(busy ticks of ``cpus`` in total, the ticks of this process and its ``helpers``' (the
    decoder's worker processes)), or None without /proc."""
    try:
        with open("/proc/stat", "rb") as f:
            lines = f.read().split(b"\n")
        own = _process_ticks("self")
    except OSError:
        return None
    for pid in helpers:
        try:
            own += _process_ticks(pid)
        except (OSError, IndexError, ValueError):
            pass  # ended
    wanted = {b"cpu%d" % c for c in cpus}
    busy = 0
    for line in lines:
        if line.startswith(b"cpu") and not line.startswith(b"cpu "):
            parts = line.split()
            if parts[0] in wanted:
                v = [int(x) for x in parts[1:9]]  # user nice system idle iowait irq softirq steal
                busy += sum(v) - v[3] - v[4]
    return busy, own


class ThreadBudget:
    """Threads for one run: ``cap`` at most, fewer while other processes hold cores."""

    def __init__(self, cap: int):
        self.cpus = allowed_cpus()
        self.cap = max(1, min(cap, len(self.cpus)))
        self.threads = self.cap
        self.helpers: list[int] = []  # worker processes whose CPU time is this run's (armcodec.coding.workers)
        self.pin: int | None = None  # while set, the thread count stays at it (the estimate still moves)
        self.until = None  # with a pin: a check that ends it early (pinned's ``until``)
        self._last = _busy_ticks(self.cpus)
        self._t = time.monotonic()
        self._next = self._t + FIRST_LOOK
        if torch.get_num_threads() != self.cap:
            torch.set_num_threads(self.cap)

    def free_cores(self) -> float | None:
        """Cores of the affinity mask that other processes left free since the last look."""
        now, ticks = time.monotonic(), _busy_ticks(self.cpus, self.helpers)
        if ticks is None or self._last is None:
            return None
        elapsed = (now - self._t) * _TICK
        others = (ticks[0] - self._last[0]) - (ticks[1] - self._last[1])
        self._last, self._t = ticks, now
        if elapsed <= 0:
            return None
        return len(self.cpus) - max(others, 0) / elapsed

    def poll(self) -> None:
        if time.monotonic() < self._next:
            return
        self._next = time.monotonic() + INTERVAL
        if self.pin is not None and self.until is not None and self.until():
            self.pin = self.until = None
            torch.set_num_threads(self.threads)  # the count of the last look; this one may change it
        free = self.free_cores()
        if free is None:
            return
        threads = max(1, min(self.cap, int(free + SLACK)))
        if threads != self.threads:
            self.threads = threads
            if self.pin is None:
                torch.set_num_threads(threads)


_active: ThreadBudget | None = None


def poll() -> None:
    """Adjust the thread count if a look at the CPU is due (cheap otherwise); no-op outside :func:`managed`."""
    if _active is not None:
        _active.poll()


def cap() -> int:
    """The most cores this run may use (:func:`managed`'s cap; outside it torch's thread count,
    at most the cores of the affinity mask)."""
    if _active is not None:
        return _active.cap
    return max(1, min(torch.get_num_threads(), len(allowed_cpus())))


def free_helpers() -> int:
    """How many processes besides this one may work now: the free cores at the last look, less
    this process's (outside :func:`managed`: the cap's)."""
    if _active is None:
        return cap() - 1
    _active.poll()
    return _active.threads - 1


def set_helpers(pids: list[int]) -> None:
    """The worker processes whose CPU time counts as this run's, not as other programs'."""
    if _active is not None:
        _active.helpers = list(pids)
        _active._last, _active._t = _busy_ticks(_active.cpus, _active.helpers), time.monotonic()  # a fresh look


@contextmanager
def pinned(n: int, until=None):
    """``n`` threads inside the block, whatever the looks at the CPU find (while worker processes
    take the other cores); then the budget's count again.  ``until``: a check (no arguments, cheap)
    made at the looks at the CPU: once it holds, the budget's count applies inside the block too
    (the workers are done: their cores are this process's again)."""
    if _active is None:
        old = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(old)
        return
    outer, outer_until = _active.pin, _active.until
    _active.pin, _active.until = n, until
    torch.set_num_threads(n)
    try:
        yield
    finally:
        _active.pin, _active.until = outer, outer_until
        torch.set_num_threads(outer if outer is not None else _active.threads)


@contextmanager
def lanes(tasks: int):
    """``map(work, items)`` (results in order) for ``tasks`` independent pieces of work whose
    arithmetic releases the GIL (torch's products, the compiled loops): the encoder's pass over a
    stage's chunks.  One Python thread (lane) per thread the budget gives now, at most ``tasks``,
    each running torch on one intra-op thread (:func:`pinned` to 1, so the looks at the CPU leave
    it so) in the caller's grad and inference modes (torch keeps them per thread); the loops
    between torch's products, one thread in torch, then run on every lane's core.  Yields None
    where there would be one lane (the caller runs the work itself).  Lanes share no barrier
    inside a piece: a lane the OS parks holds back one piece, not every step.  What the lanes
    freed is returned at the end (:func:`armcodec.allocator.release`): it stays in their threads'
    glibc arenas, which the caller's thread does not use (kodim01's encode peaked at 1,955 MiB
    with it kept, 1,515 MiB without; 0.12.6: 1,631 MiB)."""
    n = max(1, min(tasks, torch.get_num_threads()))
    if n == 1:
        yield None
        return
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def in_modes(work):
        def run(item):
            with torch.inference_mode(inference), torch.set_grad_enabled(grad):
                return work(item)
        return run

    try:
        with pinned(1), ThreadPoolExecutor(n, thread_name_prefix="armcodec-lane") as pool:
            yield lambda work, items: list(pool.map(in_modes(work), items))
    finally:  # what the lanes freed stays in their threads' glibc arenas, out of the caller's reach
        allocator.release()


def forget() -> None:
    """In a forked worker: the parent's budget is not this process's."""
    global _active
    _active = None


@contextmanager
def managed(device=None):
    """One encode or decode with :class:`ThreadBudget` (CPU only; nested calls share the outer one)."""
    global _active
    if _active is not None or (device is not None and torch.device(device).type != "cpu"):
        yield _active
        return
    user = torch.get_num_threads()
    _active = ThreadBudget(user)
    try:
        yield _active
    finally:
        _active = None
        if torch.get_num_threads() != user:
            torch.set_num_threads(user)
