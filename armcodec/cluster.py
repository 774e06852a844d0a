"""Batch compression on a Dask distributed cluster (``armcodec compress --scheduler`` / ``--workers``).

Files travel as bytes: the client reads each input and submits it; a worker encodes it with a
:class:`~armcodec.api.Codec` it builds once per settings and keeps (the model loads once per
worker), and sends back the ``.arm`` bytes and the record; the client writes the files and reports
each result as it arrives.  Encoding is deterministic, so every file is byte for byte what a serial
run writes.  At most ``2 * workers`` files are in flight, so the client never holds the whole batch.
Needs the ``cluster`` extra (``pip install -e ".[cluster]"``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from armcodec.errors import ArmcodecError

_codecs: dict = {}


def encode_bytes(name: str, data: bytes, settings: dict, verify: bool = False) -> tuple[bytes, dict]:
    """On a worker: an image file's bytes -> (.arm bytes, record); raises ArmcodecError."""
    from armcodec.api import Codec

    key = tuple(sorted(settings.items()))
    if key not in _codecs:
        _codecs[key] = Codec(**settings)
    return encode_record(_codecs[key], data, name, verify)


def encode_record(codec, source, label: str, verify: bool = False) -> tuple[bytes, dict]:
    """Encode ``source`` (a path or an image file's bytes) -> (.arm bytes, the record ``armcodec
    compress`` prints, without input and output); with ``verify`` decode and compare first
    (ChecksumError naming ``label`` if they differ).  The serial CLI and the workers both use it."""
    from armcodec.io.image import read_image

    enc = codec.encode(source)
    if verify and not np.array_equal(codec.decode(enc.data).array, read_image(source)[0]):
        from armcodec.errors import ChecksumError

        raise ChecksumError(f"verification failed: {label} would not decode to the input (nothing written)")
    n = enc.width * enc.height * enc.channels
    rec = {"width": enc.width, "height": enc.height, "channels": enc.channels, "mode": enc.mode,
           "bytes": len(enc.data), "bpsp": enc.bpsp, "model_bits": enc.model_bits, "model_bpsp": enc.model_bits / n,
           "seconds": enc.seconds, "weights": codec.model.entry.name, "device": str(codec.device), "verified": verify,
           "coder": enc.coder}
    return enc.data, rec


def connect(scheduler: str | None = None, workers: int = 0):
    """A distributed Client: to the scheduler at ``scheduler`` (tcp://HOST:PORT), or to a local
    cluster of ``workers`` processes (one thread each) started for this batch."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ArmcodecError('cluster mode needs Dask distributed: pip install -e ".[cluster]"') from None
    if scheduler:
        try:
            return Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as e:
            raise ArmcodecError(f"cannot reach the Dask scheduler at {scheduler}: {e}") from None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)


def run(client, jobs: Iterable[tuple[Path, Path]], settings: dict, verify: bool,
        on_done: Callable[[Path, Path, bytes | None, dict | None, Exception | None], None]) -> None:
    """Encode every (input, output) job on the cluster; ``on_done(inp, out, data, record, error)``
    runs on the client as each result arrives (error: the ArmcodecError a worker raised, or one
    reading the input).  Every worker thread keeps two files in flight."""
    from distributed import as_completed

    nthreads = sum(client.nthreads().values()) or 1
    todo = iter(jobs)
    pending = as_completed()
    where = {}

    def submit_next() -> bool:
        for inp, out in todo:
            try:
                data = inp.read_bytes()
            except OSError as e:
                on_done(inp, out, None, None, ArmcodecError(f"cannot read: {e.strerror}"))
                continue
            fut = client.submit(encode_bytes, str(inp), data, settings, verify, pure=False)
            where[fut.key] = (inp, out)
            pending.add(fut)
            return True
        return False

    for _ in range(2 * nthreads):
        if not submit_next():
            break
    try:
        for fut in pending:
            inp, out = where.pop(fut.key)
            try:
                data, rec = fut.result()
            except ArmcodecError as e:
                on_done(inp, out, None, None, e)
            else:
                on_done(inp, out, data, rec, None)
            fut.release()
            submit_next()
    except BaseException:
        for fut in list(pending.futures):
            fut.cancel()
        raise
