"""Decoder processes: the tiles of one decode split between this process and forked workers.

Each tile is an independent stream, so which process decodes it, and beside which other tiles,
changes no output bit (the decoder's integers do not depend on the batch: docs/DESIGN.md).  At a
wavefront step's few hundred rows the decoder's small products and elementwise steps gain little
from a second thread (a foreman frame 1.17x faster with 2 threads than with 1: the second thread
mostly waits at the barriers), while two processes, one thread each on half the tiles, decode it
1.3x faster than two threads, a `fast` Kodak image 1.5x, a `pyramid` one 1.55x (docs/PROFILE.md).
So on a CPU with ``threads`` cores a decode that holds :class:`DecodeWorkers` runs ``threads - 1``
workers beside itself, each process on one thread.

The workers are forked when the pool is made, inside a decode: they share the model's weights,
tables and compiled kernels with this process and get each request's plane groups (streams,
previous frames) through a pipe.  Fewer are used while other programs hold cores
(:func:`armcodec.threads.free_helpers`); none off Linux's ``fork``, off a CPU, or with
``ARMCODEC_WORKERS=0``.  A worker's error (a damaged stream, a CRC) is raised here as it was raised
there; a worker that dies is a :class:`armcodec.errors.ArmcodecError`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
import warnings

import numpy as np
import torch

from armcodec import allocator, threads
from armcodec.coding.planes import GroupJob, decode_tiles, tile_samples
from armcodec.coding.scan import Tile, tile_grid
from armcodec.errors import ArmcodecError
from armcodec.exact import fused

ENV = "ARMCODEC_WORKERS"
MIN_SAMPLES = 1 << 16  # an image decode from this size forks workers (a 128x256 RGB image: 1.2x faster with one)


def available() -> bool:
    """Whether this process can fork decoder workers (Linux-style ``fork``, not switched off)."""
    return os.environ.get(ENV, "1") != "0" and "fork" in mp.get_all_start_methods()


def balance(todo: list[tuple[int, int, Tile]], parts: int) -> list[list[tuple[int, int, Tile]]]:
    """``todo`` in ``parts`` lists of about equal samples (largest tile first to the least loaded
    part; a decode's time follows its rows), each in ``todo``'s order."""
    load, owner = [0] * parts, [0] * len(todo)
    for n in sorted(range(len(todo)), key=lambda n: (-todo[n][2].h * todo[n][2].w, n)):
        p = min(range(parts), key=lambda q: (load[q], q))
        owner[n] = p
        load[p] += todo[n][2].h * todo[n][2].w
    return [[item for item, p in zip(todo, owner) if p == q] for q in range(parts)]


class DecodeWorkers:
    """``count`` worker processes decoding tiles with ``model`` (its ``luts``) on ``device``; a
    context manager (the workers end with it).  ``decode`` is what :func:`decode_groups` calls."""

    def __init__(self, model, luts, device, count: int):
        self.model, self.luts, self.device = model, luts, torch.device(device)
        self._procs: list = []
        self._conns: list = []
        if count < 1 or self.device.type != "cpu" or not available() or threading.active_count() > 1:
            return  # (other Python threads might hold a lock at the fork that a worker then waits for)
        ctx = mp.get_context("fork")
        with warnings.catch_warnings():
            # Python 3.12+ warns of a fork while the process has other OS threads: here torch's idle
            # OpenMP pool, which the workers never use (one thread each, no parallel region)
            warnings.simplefilter("ignore", DeprecationWarning)
            for _ in range(count):
                here, there = ctx.Pipe()
                proc = ctx.Process(target=_serve, args=(there, model, luts, self.device), name="armcodec-decoder",
                                   daemon=True)
                proc.start()
                there.close()
                self._procs.append(proc)
                self._conns.append(here)
        threads.set_helpers([p.pid for p in self._procs])

    @classmethod
    def for_decode(cls, groups: list[tuple[int, int, int]], tile: int, model, luts, device, clip: bool = False
                   ) -> "DecodeWorkers":
        """Workers for a decode of plane groups of these (height, width, channels) (a video clip's:
        one frame's): as many as this decode's thread budget has cores beyond this process's, if
        the groups have more than one tile and (unless a ``clip``: many such decodes) at least
        :data:`MIN_SAMPLES` samples; else none (the fork and the workers' first steps would cost
        more than they save)."""
        samples = sum(h * w * ch for h, w, ch in groups)
        tiles = sum(len(tile_grid(h, w, tile)) for h, w, _ in groups)
        worth = tiles > 1 and (clip or samples >= MIN_SAMPLES)
        fused.prepare(fused.MIN_SAMPLES if clip else samples)  # before the fork: the workers inherit the kernels
        return cls(model, luts, device, threads.cap() - 1 if worth else 0)

    @property
    def count(self) -> int:
        return len(self._procs)

    def __enter__(self) -> "DecodeWorkers":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """End the workers; their peak memory (:func:`peak_bytes`) is recorded."""
        threads.set_helpers([])
        peak = 0
        for conn in self._conns:
            try:
                conn.send(None)
                peak += conn.recv() if conn.poll(5) else 0  # the worker's VmHWM, its last message
            except (OSError, EOFError):
                pass
            conn.close()
        if self._procs:
            _peaks.append(peak)
        for proc in self._procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        self._procs, self._conns = [], []

    def decode(self, jobs: list[GroupJob], todo: list[tuple[int, int, Tile]], outs: list[np.ndarray],
               bits: list[float], tile: int, tools, max_batch_bytes: int, progress=None) -> None:
        """:func:`decode_tiles` of ``todo``, part in the workers (as many as the free cores allow)."""
        helpers = min(self.count, threads.free_helpers(), len(todo) - 1)
        if helpers < 1:
            decode_tiles(jobs, todo, outs, bits, self.model, self.luts, tile, self.device, tools, max_batch_bytes, progress)
            return
        mine, *theirs = balance(todo, helpers + 1)
        max_batch_bytes //= helpers + 1  # the decode's memory budget is shared: each process its part
        sent = []
        for conn, part in zip(self._conns, theirs):
            used = sorted({j for j, _, _ in part})  # only the plane groups the part needs
            at = {j: n for n, j in enumerate(used)}
            try:
                conn.send(([jobs[j] for j in used], [(at[j], k, t) for j, k, t in part], tile, tools, max_batch_bytes))
            except OSError:  # the worker is gone
                self.close()
                raise ArmcodecError("a decoder worker process ended unexpectedly") from None
            sent.append((conn, part, used))
        failure = None
        try:
            # one thread while the workers decode, the budget's count once they all have answered
            with threads.pinned(1, until=lambda: all(conn.poll() for conn, _, _ in sent)):
                decode_tiles(jobs, mine, outs, bits, self.model, self.luts, tile, self.device, tools, max_batch_bytes,
                             progress)
        except BaseException as e:  # the workers' answers are still read: the pipes stay in step
            failure = e
        for conn, part, used in sent:
            try:
                reply = conn.recv()
            except (EOFError, OSError):  # killed, or interrupted with this process (Ctrl-C)
                self.close()
                if failure is not None:
                    raise failure from None
                raise ArmcodecError("a decoder worker process ended unexpectedly") from None
            if reply[0] == "error":
                failure = failure or reply[1]
                continue
            _, samples, part_bits = reply
            for (j, _, t), arr in zip(part, samples):
                outs[j][t.y : t.y + t.h, t.x : t.x + t.w] = arr
            for n, j in enumerate(used):
                bits[j] += part_bits[n]
            if progress:
                progress(len(part))
        if failure is not None:
            raise failure


_peaks: list[int] = []  # per pool that ended in this process: its workers' peak memory, summed


def peak_bytes() -> int:
    """The largest sum of the workers' peak resident memory (VmHWM) of any pool that ended in this
    process (0 if none ran): what a memory benchmark adds to this process's own peak.  A worker's
    peak counts the pages it shares with this process since the fork, so the sum is an upper bound."""
    return max(_peaks, default=0)


def _peak_rss() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _serve(conn, model, luts, device) -> None:
    """A worker: decode the requested tiles until told to stop (None) or the pipe closes."""
    threads.forget()  # the parent's budget and its thread count are not this process's
    torch.set_num_threads(1)
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if request is None:
            try:
                conn.send(_peak_rss())
            except OSError:
                pass
            return
        jobs, todo, tile, tools, max_batch_bytes = request
        try:
            outs = [np.zeros((job.height, job.width, job.channels), np.uint8) for job in jobs]
            bits = [0.0] * len(jobs)
            decode_tiles(jobs, todo, outs, bits, model, luts, tile, device, tools, max_batch_bytes)
            reply = ("done", [tile_samples(outs[j], t) for j, _, t in todo], bits)  # (a view pickles as its samples)
        except KeyboardInterrupt:
            return
        except BaseException as e:
            reply = ("error", e)
        allocator.release()
        try:
            conn.send(reply)
        except Exception as e:  # an error that does not pickle: its type and message
            conn.send(("error", ArmcodecError(f"{type(reply[1]).__name__}: {reply[1]} ({e})")))
