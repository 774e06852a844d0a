"""Export into a weights folder: a weights entry and a preset of the same name; the preset keeps its
notes and encoder settings, and its measured figures only while the weights they were measured on
stay the same; a manifest of the first layout is converted, not lost."""
import json

import armcodec
from armcodec.training.export import export_model

from conftest import DATA, make_tiny_model


def test_measured_figures_are_dropped_when_the_weights_change(tmp_path):
    export_model(make_tiny_model(0), tmp_path, "m", tile_size=16)
    man = tmp_path / "manifest.json"
    d = json.loads(man.read_text())
    d["presets"][0].update({"kodak": {"bpsp": 3.0, "commit": "x"}, "note": "kept", "encoder": {"orient": True}})
    man.write_text(json.dumps(d))
    export_model(make_tiny_model(0), tmp_path, "m", tile_size=16)  # same weights
    preset = json.loads(man.read_text())["presets"][0]
    assert preset["kodak"]["bpsp"] == 3.0 and preset["note"] == "kept" and preset["encoder"] == {"orient": True}
    export_model(make_tiny_model(1), tmp_path, "m", tile_size=16)  # other weights
    d = json.loads(man.read_text())
    assert "kodak" not in d["presets"][0] and d["presets"][0]["note"] == "kept"
    assert len(d["weights"]) == 1 and d["presets"][0]["weights"] == d["weights"][0]["sha256"]
    assert armcodec.Codec("m", "cpu", weights_dir=tmp_path).orient


def test_first_layout_manifests_are_read_and_converted_on_export(tmp_path):
    """tests/data/golden's manifest has the first layout (one entry per name): it is read as weights
    and presets, and an export into such a folder keeps its entries."""
    golden = armcodec.list_models(DATA / "golden")
    assert [p.name for p in golden] == ["golden-tiny"] and golden[0].weights.name == "golden-tiny"
    (tmp_path / "manifest.json").write_text(json.dumps({"models": [
        {"name": "a", "file": "a.safetensors", "sha256": "ab" * 32, "architecture": "wavefront-pixelcnn", "config": {},
         "tile_size": 64, "orient": True, "orient_proxy": "b"},
        {"name": "b", "file": "b.safetensors", "sha256": "cd" * 32, "architecture": "wavefront-pixelcnn", "config": {},
         "tile_size": 32},
        {"name": "c", "file": "a.safetensors", "sha256": "ab" * 32, "architecture": "wavefront-pixelcnn", "config": {},
         "tile_size": 64}]}))
    presets = {p.name: p for p in armcodec.list_models(tmp_path)}
    assert presets["a"].orient_proxy.name == "b" and presets["c"].weights.aliases == ("c",)
    export_model(make_tiny_model(0), tmp_path, "m", tile_size=16)
    d = json.loads((tmp_path / "manifest.json").read_text())
    assert {w["name"] for w in d["weights"]} == {"a", "b", "m"} and {p["name"] for p in d["presets"]} == {"a", "b", "c", "m"}
