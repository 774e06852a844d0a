"""Copy measured figures from benchmark results into a preset of weights/manifest.json (the
manifest's figures are always a benchmark run's, never typed in).

    python benchmarks/record.py default benchmarks/results/kodak
    python benchmarks/record.py pyramid benchmarks/results/kodak_pyramid kodak   # under another set's name
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(name: str, folder: Path, dataset: str | None = None) -> None:
    man_path = ROOT / "weights" / "manifest.json"
    manifest = json.loads(man_path.read_text())
    entry = next(p for p in manifest["presets"] if p["name"] == name)
    entry["sha256"] = entry["weights"]  # the preset pins its weights by sha256
    bench = json.loads((folder / f"armcodec-{name}.json").read_text())
    if bench["weights_sha256"] != entry["sha256"]:
        raise SystemExit("benchmark results are for other weights")
    s = bench["summary"]
    rec = {"bpsp": round(s["bpsp_mean"], 4), "model_bpsp": round(s["model_bpsp_mean"], 4),
           "decode_s_mean": round(s["decode_s_mean"], 2), "decode_s_max": round(s["decode_s_max"], 2),
           "threads": bench["environment"]["torch_threads"], "commit": bench["environment"]["commit"]}
    rec["encode_s_mean"] = round(s["encode_s_mean"], 2)
    rec["adaptive"] = bench.get("adaptive", False)
    rec["orient"] = bench.get("orient", False)
    if bench.get("orient_proxy"):
        rec["orient_proxy"] = bench["orient_proxy"]
    rec["feedback"] = bench.get("feedback", False)
    rec["coder_profile"] = bench.get("coder_profile")
    rec["tile_size"] = bench["tile_size"]
    def variant(suffix: str) -> dict | None:
        """The run of a variant (armcodec-NAME-SUFFIX.json) with the same weights and tiles."""
        path = folder / f"armcodec-{name}-{suffix}.json"
        run = json.loads(path.read_text()) if path.exists() else None
        ok = run is not None and run["weights_sha256"] == entry["sha256"] and run["tile_size"] == bench["tile_size"]
        return run if ok else None

    if (plain := variant("noadapt")) is not None:
        ps = plain["summary"]
        rec.update({"no_adaptation_bpsp": round(ps["bpsp_mean"], 4), "no_adaptation_encode_s_mean": round(ps["encode_s_mean"], 2),
                    "adaptation_gain_percent": round(100 * (1 - s["bpsp_mean"] / ps["bpsp_mean"]), 2)})
    if (alone := variant("noclassic")) is not None:
        a = alone["summary"]
        rec.update({"model_only_bpsp": round(a["bpsp_mean"], 4), "model_only_encode_s_mean": round(a["encode_s_mean"], 2),
                    "model_only_decode_s_mean": round(a["decode_s_mean"], 2), "model_only_commit": alone["environment"]["commit"]})
    q = folder / "quantization.json"
    if q.exists():
        qm = json.loads(q.read_text())
        if qm["weights_sha256"] == entry["sha256"]:
            rec.update({k: round(v, 4) for k, v in qm["mean"].items() if k.endswith("bpsp") or k.endswith("percent")})
    entry[dataset or folder.name] = rec
    del entry["sha256"]
    man_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(rec, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]), *sys.argv[3:4])
