"""Long fuzz run of the decode path (the bounded one is tests/test_fuzz.py).

    python tests/fuzz_decode.py --cases 20000                 # tiny random model, seconds per 1000 cases
    python tests/fuzz_decode.py --model default --cases 2000  # the shipped model, through armcodec.decompress
    python tests/fuzz_decode.py --atheris -- -runs=100000     # coverage-guided (pip install atheris)

Corpus: the small real images of tests/data (RGB, L, LA, RGBA), compressed.  Every case is a
damaged file (tests/mutations.py); the oracle is that decoding raises an ArmcodecError or
returns exactly the original image, within --max-seconds.  Any other outcome is written to
--crashes and makes the exit status 1.  The summary (JSON) counts cases by outcome.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

import armcodec  # noqa: E402
from conftest import DATA, export_tiny, load  # noqa: E402
from mutations import random_mutation, structured_cases  # noqa: E402

SOURCES = ["kodim05_rgb_37x29.png", "usc_sipi_6.1_gray_40x33.png", "kodim03_rgba_32x24.png", "usc_sipi_6.1_la_28x21.png"]


def make_codec(model: str) -> armcodec.Codec:
    if model == "tiny":
        return armcodec.Codec("tiny", device="cpu", weights_dir=export_tiny(Path(tempfile.mkdtemp(prefix="armcodec-fuzz-"))))
    return armcodec.Codec(model, device="cpu")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=5000, help="random mutations (after all structured cases)")
    ap.add_argument("--model", default="tiny", help="'tiny' (random model, fast) or a shipped model name")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"))
    ap.add_argument("--atheris", action="store_true", help="coverage-guided fuzzing with atheris; rest of argv to libFuzzer")
    a, rest = ap.parse_known_args(argv)
    codec = make_codec(a.model)
    corpus = []
    for name in SOURCES:
        img = load(name)
        corpus.append((name, codec.compress(DATA / name), img if img.ndim == 3 else img[:, :, None]))

    def check(data: bytes, expected=None):
        """-> outcome label, or raises AssertionError for a wrong image (expected: the source
        image; None, for atheris's inputs: any image of the corpus)."""
        try:
            out = codec.decode(data).array
        except armcodec.ArmcodecError as e:
            return type(e).__name__
        if any(np.array_equal(out, img) for img in ([expected] if expected is not None else [c[2] for c in corpus])):
            return "exact"
        raise AssertionError("decoded to an image that is not the original")

    if a.atheris:
        return run_atheris(check, corpus, rest)

    counts: collections.Counter = collections.Counter()
    failures, slowest = [], 0.0
    rng = np.random.default_rng(a.seed)

    def cases():
        for name, data, img in corpus:
            for label, bad in structured_cases(data):
                yield name, label, bad, data, img
        for _ in range(a.cases):
            name, data, img = corpus[rng.integers(len(corpus))]
            label, bad = random_mutation(data, rng)
            yield name, label, bad, data, img

    t_start = time.perf_counter()
    for k, (name, label, bad, good, img) in enumerate(cases()):
        t0 = time.perf_counter()
        try:
            outcome = check(bad, img)
            if outcome == "exact" and bad != good:
                outcome = "exact (damage was harmless)"
        except Exception as e:  # noqa: BLE001 - anything else is a finding
            outcome = f"FAIL {type(e).__name__}: {e}"
        dt = time.perf_counter() - t0
        slowest = max(slowest, dt)
        if dt > a.max_seconds:
            outcome = f"FAIL slow ({dt:.1f} s)"
        counts[outcome.split(":")[0]] += 1
        if outcome.startswith("FAIL"):
            a.crashes.mkdir(parents=True, exist_ok=True)
            f = a.crashes / f"case{k:06d}.arm"
            f.write_bytes(bad)
            failures.append({"case": k, "source": name, "mutation": label, "outcome": outcome, "file": str(f)})
    summary = {"model": a.model, "seed": a.seed, "cases": sum(counts.values()), "outcomes": dict(counts),
               "slowest_case_s": round(slowest, 3), "total_s": round(time.perf_counter() - t_start, 1),
               "failures": failures[:50]}
    print(json.dumps(summary, indent=1))
    return 1 if failures else 0


def run_atheris(check, corpus, libfuzzer_args) -> int:
    import atheris

    seeds = Path(tempfile.mkdtemp(prefix="armcodec-fuzz-corpus-"))
    for name, data, _ in corpus:
        (seeds / f"{name}.arm").write_bytes(data)

    def one_input(data: bytes) -> None:
        check(data)  # an ArmcodecError is an outcome; anything else propagates to libFuzzer

    atheris.instrument_all()  # coverage feedback from every loaded Python function (armcodec included)
    atheris.Setup([sys.argv[0], *[x for x in libfuzzer_args if x != "--"], str(seeds)], one_input)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
