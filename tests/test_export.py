"""Export into a weights folder: the manifest keeps notes, and keeps measured figures only while
the weights they were measured on stay the same."""
import json

from armcodec.train import export_model

from conftest import make_tiny_model


def test_measured_figures_are_dropped_when_the_weights_change(tmp_path):
    export_model(make_tiny_model(0), tmp_path, "m", tile_size=16)
    man = tmp_path / "manifest.json"
    d = json.loads(man.read_text())
    d["models"][0].update({"kodak": {"bpsp": 3.0, "commit": "x"}, "note": "kept"})
    man.write_text(json.dumps(d))
    export_model(make_tiny_model(0), tmp_path, "m", tile_size=16)  # same weights
    entry = json.loads(man.read_text())["models"][0]
    assert entry["kodak"]["bpsp"] == 3.0 and entry["note"] == "kept"
    export_model(make_tiny_model(1), tmp_path, "m", tile_size=16)  # other weights
    entry = json.loads(man.read_text())["models"][0]
    assert "kodak" not in entry and entry["note"] == "kept"
