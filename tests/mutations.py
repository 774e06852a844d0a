"""Ways to damage an .arm file, shared by the bounded fuzz tests and the long fuzz run.

Two families:

* :func:`structured_cases`: deterministic, structure-aware damage built from the file's own
  layout (read with :func:`armcodec.container.parse`): truncation at every field and stream
  boundary, huge and off-by-one length fields, changed header fields with the header CRC
  recomputed (so validation *after* the CRC is reached), swapped and duplicated tile streams
  (with and without their table entries), flipped payload bytes, foreign files.
* :func:`random_mutation`: one random mutation (truncate, bit flips, u32 overwrite, append,
  block move, header field with fixed-up CRC, stream swap) drawn from a ``numpy`` generator.

The oracle for every case is the same: decoding raises an ``armcodec.ArmcodecError`` or returns
exactly the original image.
"""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

from armcodec import container

HUGE = (0, 1, 3, 4, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFC, 0xFFFFFFFF, 1 << 20)


def layout(data: bytes) -> dict:
    """Offsets of the fields of a valid file (the writer's layout, see container.py), either version;
    ``varints``: the fields stored as varints (version 2) and their byte lengths."""
    _, version, _, hlen = container.PREAMBLE.unpack_from(data, 0)
    h, streams = container.parse(data)
    pos = container.PREAMBLE.size
    fields, varints = {"kind": pos, "mode": pos + 1, "bits": pos + 2}, {}
    pos += 3

    def skip_varint(name):
        nonlocal pos
        start = pos
        while data[pos] & 0x80:
            pos += 1
        pos += 1
        fields[name], varints[name] = start, pos - start

    if version == 1:
        fields.update(width=pos, height=pos + 4, frames=pos + 8, tile=pos + 12)
        pos += 14
    else:
        for name in ("width", "height", "frames"):
            skip_varint(name)
        fields["tile"] = pos
        pos += 2
    if tuple(h.replication) != (1, 1):
        fields["replication"] = pos
        pos += 2
    fields["name_len"] = pos
    pos += 1 + len(h.model.encode())
    fields["sha"] = pos
    pos += 16
    if version == 1:
        fields["icc_len"] = pos
        pos += 4 + len(h.icc_profile)
        fields["n_streams"] = pos
        table = pos + 4
    else:
        fields["tools"] = pos
        count = data[pos]
        pos += 1
        for _ in range(count):
            pos += 2 + data[pos + 1]
        skip_varint("icc_len")
        pos += len(h.icc_profile)
        skip_varint("n_streams")
        table = pos
    hend = container.PREAMBLE.size + hlen
    starts = np.concatenate([[hend + 4], hend + 4 + np.cumsum(h.stream_lengths)]).astype(int).tolist()
    return {"fields": fields, "varints": varints, "table": table, "header_end": hend, "stream_starts": starts,
            "header": h, "version": version}


def splice_header(data: bytes, pos: int, old_len: int, new: bytes) -> bytes:
    """Replace ``old_len`` header bytes at ``pos`` with ``new``; header length and CRC fixed up."""
    _, _, _, hlen = container.PREAMBLE.unpack_from(data, 0)
    out = bytearray(data[:pos] + new + data[pos + old_len :])
    hlen += len(new) - old_len
    struct.pack_into("<I", out, 6, hlen)
    return fix_header_crc(out, container.PREAMBLE.size + hlen)


def fix_header_crc(b: bytearray, hend: int) -> bytes:
    """Recompute the header CRC so that damage to the header fields is seen by later checks."""
    b = bytearray(b)
    if hend + 4 <= len(b):
        b[hend : hend + 4] = struct.pack("<I", zlib.crc32(bytes(b[:hend])) & 0xFFFFFFFF)
    return bytes(b)


def _put(b: bytes, pos: int, fmt: str, value) -> bytearray:
    out = bytearray(b)
    struct.pack_into(fmt, out, pos, value)
    return out


def foreign_files() -> list[tuple[str, bytes]]:
    """Files that are not .arm at all, or only look like one."""
    a = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    out = []
    for fmt in ("PNG", "JPEG", "BMP", "TIFF", "WEBP"):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format=fmt)
        out.append((f"foreign {fmt}", buf.getvalue()))
    out += [("empty", b""), ("magic only", b"ARMC"), ("zip", b"PK\x03\x04" + bytes(60)),
            ("zeros", bytes(4096)), ("text", b"hello, world\n" * 10),
            ("preamble only", container.PREAMBLE.pack(container.MAGIC, 1, 1, 0)),
            ("preamble only v2", container.PREAMBLE.pack(container.MAGIC, 2, 0, 0))]
    return out


def structured_cases(data: bytes):
    """Yield (label, damaged bytes) for a valid .arm file."""
    lay = layout(data)
    f, hend, starts = lay["fields"], lay["header_end"], lay["stream_starts"]
    h = lay["header"]
    n = len(h.stream_lengths)
    # truncation at every boundary, and one byte either side
    bounds = sorted({0, 4, 5, 6, 10, *f.values(), lay["table"], hend, hend + 4, *starts})
    for p in bounds:
        for q in (p - 1, p, p + 1):
            if 0 <= q < len(data):
                yield f"truncate at {q}", data[:q]
    # header fields changed, header CRC fixed up
    changes = [("kind", "<B", 1), ("mode", "<B", 0), ("mode", "<B", 9), ("bits", "<B", 16), ("frames", "<I", 2),
               ("tile", "<H", 0), ("tile", "<H", 7), ("tile", "<H", 65535), ("tile", "<H", h.tile * 2),
               ("mode", "<B", 1 if h.mode != "L" else 3), ("name_len", "<B", 255), ("name_len", "<B", 0)]
    changes += [(k, "<I", v) for k in ("width", "height", "icc_len", "n_streams") for v in HUGE]
    changes += [("width", "<I", h.width + 1), ("height", "<I", h.height - 1), ("width", "<I", h.height),
                ("height", "<I", h.width)]
    for name, fmt, v in changes:
        if name in lay["varints"]:  # version 2: the field is a varint
            yield f"{name}={v} (crc fixed)", splice_header(data, f[name], lay["varints"][name], container.varint(v))
        else:
            yield f"{name}={v} (crc fixed)", fix_header_crc(_put(data, f[name], fmt, v), hend)
    for name, size in lay["varints"].items():  # overlong and unterminated varints (``n`` stays the stream count)
        yield f"{name} overlong varint", splice_header(data, f[name], size, b"\x80" * 5 + b"\x01")
        yield f"{name} varint with a zero continuation", splice_header(
            data, f[name], size, data[f[name] : f[name] + size - 1] + bytes([data[f[name] + size - 1] | 0x80, 0]))
    if "tools" in f:  # version 2: the coder tool list
        t, old = f["tools"], data[f["tools"]]
        k, old_len = t + 1, 1
        for _ in range(old):
            old_len += 2 + data[k + 1]
            k += 2 + data[k + 1]
        for label, tools in (("none", b"\x00"), ("unknown tool 5", b"\x01\x05\x00"), ("classic tiles without a map", b"\x01\x04\x00"), ("family tool 200", b"\x01\xc8\x01\x07"),
                             ("orientation alone", b"\x01\x02\x00"), ("feedback alone", b"\x01\x03\x01\x03"),
                             ("feedback set 0", b"\x02\x01\x00\x03\x01\x00"), ("feedback set 9", b"\x02\x01\x00\x03\x01\x09"),
                             ("descending", b"\x02\x02\x00\x01\x00"), ("twice", b"\x02\x01\x00\x01\x00"),
                             ("value too long", b"\x01\x01\x01\x00"), ("count past the header", b"\xff"),
                             ("adaptation only", b"\x01\x01\x00"), ("all set 1", b"\x03\x01\x00\x02\x00\x03\x01\x01")):
            yield f"tools {label}", splice_header(data, t, old_len, tools)
    yield "model sha changed (crc fixed)", fix_header_crc(_put(data, f["sha"], "<I", 0xDEADBEEF), hend)
    yield "header length huge", _put(data, 6, "<I", 0xFFFFFFFF)
    yield "header length off by 4", _put(data, 6, "<I", hend - container.PREAMBLE.size + 4)
    for k in range(n):
        e = lay["table"] + 8 * k
        for v in HUGE:
            yield f"stream {k} length={v} (crc fixed)", fix_header_crc(_put(data, e, "<I", v), hend)
        yield f"stream {k} crc changed (crc fixed)", fix_header_crc(_put(data, e + 4, "<I", h.stream_crcs[k] ^ 1), hend)
    # tile streams moved around
    streams = [data[starts[k] : starts[k + 1]] for k in range(n)]
    body = data[: hend + 4]
    for a in range(n):
        for b in range(a + 1, min(n, a + 3)):
            s = list(streams)
            s[a], s[b] = s[b], s[a]
            yield f"streams {a},{b} swapped", body + b"".join(s)
            ha = container.ArmHeader(**{**h.__dict__})
            ha.stream_crcs = list(h.stream_crcs)
            ha.stream_crcs[a], ha.stream_crcs[b] = ha.stream_crcs[b], ha.stream_crcs[a]
            yield f"streams {a},{b} swapped with their table entries", container.write(ha, s)
        if n > 1:
            s = list(streams)
            s[(a + 1) % n] = s[a]
            hd = container.ArmHeader(**{**h.__dict__})
            yield f"stream {a} duplicated (table rewritten)", container.write(hd, s)
    # payload damage: flip bytes at the start, middle and end of each stream
    for k in range(n):
        for p in {starts[k], (starts[k] + starts[k + 1]) // 2, starts[k + 1] - 1}:
            if starts[k] <= p < starts[k + 1]:
                for bit in (0, 7):
                    b = bytearray(data)
                    b[p] ^= 1 << bit
                    yield f"stream {k} byte {p} bit {bit} flipped", bytes(b)
    yield "stream emptied (table rewritten)", container.write(
        container.ArmHeader(**{**h.__dict__}), [b""] + streams[1:]) if n else data
    yield from foreign_files()


def random_mutation(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random mutation of a valid file."""
    b = bytearray(data)
    kind = rng.choice(["truncate", "flip", "u32", "append", "move", "field", "swap", "payload"])
    if kind == "truncate":
        return kind, bytes(b[: rng.integers(0, len(b))])
    if kind == "flip":
        for _ in range(rng.integers(1, 5)):
            b[rng.integers(0, len(b))] ^= 1 << int(rng.integers(0, 8))
        return kind, bytes(b)
    if kind == "u32":
        p = int(rng.integers(0, len(b) - 3))
        b[p : p + 4] = struct.pack("<I", int(rng.choice(HUGE)))
        return kind, bytes(b)
    if kind == "append":
        return kind, bytes(b) + rng.bytes(int(rng.integers(1, 64)))
    if kind == "move":
        a, c = sorted(rng.integers(0, len(b), size=2))
        return kind, bytes(b[:a] + b[c:] + b[a:c])
    lay = layout(data)
    hend, starts = lay["header_end"], lay["stream_starts"]
    if kind == "field":  # any header byte(s), CRC fixed so later validation runs
        for _ in range(rng.integers(1, 3)):
            b[rng.integers(container.PREAMBLE.size, hend)] = int(rng.integers(0, 256))
        return kind, fix_header_crc(b, hend)
    if kind == "payload":
        p = int(rng.integers(starts[0], len(b))) if len(b) > starts[0] else 0
        if p < len(b):
            b[p] ^= int(rng.integers(1, 256))
        return kind, bytes(b)
    n = len(starts) - 1  # swap two streams' bytes
    if n < 2:
        return kind, bytes(b)
    i, j = sorted(rng.choice(n, size=2, replace=False))
    s = [bytes(b[starts[k] : starts[k + 1]]) for k in range(n)]
    s[i], s[j] = s[j], s[i]
    return kind, bytes(b[: hend + 4]) + b"".join(s)
