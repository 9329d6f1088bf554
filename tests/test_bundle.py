"""The bundle folder: written atomically, loaded only when its schema and every checksum hold.

These tests exercise the container: the model files' bytes are arbitrary (nothing here runs them),
so any change to them must be caught by the checksums alone."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

from acula_edge.device.bundle import load_bundle, write_bundle
from acula_edge.errors import AculaError


def meta() -> dict:
    return {"name": "mn-s lung and heart", "sample_rate": 16000, "window_s": 4.128, "hop_s": 2.0,
            "frontend": {"sample_rate": 16000, "n_mels": 64}, "input": {"name": "waveform", "shape": ["batch", 66048]},
            "outputs": {"embedding": {"shape": ["batch", 512]}, "scores": {"shape": ["batch", 1]}},
            "heads": [{"name": "sprsound-adventitious", "meaning": "adventitious lung sounds", "threshold": 0.31,
                       "operating_point": {"sensitivity": 0.91, "specificity": 0.7, "positives": 11, "negatives": 23}}],
            "prompts": {"texts": ["normal", "wheezes"], "file": "prompts.npy"},
            "metrics": {"sprsound-adventitious": {"auroc": 0.83, "ci95": [0.72, 0.92]}},
            "provenance": {"teacher": "runs/teacher/encoder.safetensors", "code_version": "0.0.0"}}


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


EVENTS = {"shape": ["batch", 16, 2], "kinds": ["wheeze", "crackle"], "modality": "lung", "step_s": 0.256,
          "offset_s": 0.016, "on": 0.5, "off": 0.3, "min_s": 0.25}


def test_a_bundle_says_which_outputs_its_graph_has(tmp_path):
    files = {"model_fp32.onnx": b"fp32 model bytes", "prompts.npy": npy(np.eye(2, 512, dtype=np.float32))}
    plain = write_bundle(tmp_path / "plain", meta(), files)
    assert plain.outputs == ("embedding", "scores") and plain.modalities == [] and plain.events is None
    d = meta()
    d["outputs"].update(events=EVENTS, modality={"shape": ["batch", 2], "classes": ["heart", "lung"],
                                                 "min_confidence": 0.8})
    b = write_bundle(tmp_path / "routed", d, files)
    assert b.outputs == ("embedding", "scores", "modality", "events")  # the graphs' order, whatever the JSON's
    assert b.modalities == ["heart", "lung"] and b.events["kinds"] == ["wheeze", "crackle"]


@pytest.fixture
def bundle(tmp_path):
    files = {"model_fp32.onnx": b"fp32 model bytes", "model_int8.onnx": b"int8 model bytes",
             "prompts.npy": npy(np.eye(2, 512, dtype=np.float32))}
    return write_bundle(tmp_path / "b", meta(), files)


def test_round_trip_and_model_card(bundle):
    b = load_bundle(bundle.path)
    assert b.sample_rate == 16000 and b.window_samples == 66048 and b.heads[0]["threshold"] == 0.31
    assert b.models() == {"model_fp32.onnx": ("onnx", "fp32"), "model_int8.onnx": ("onnx", "int8")}
    assert b.model_path("onnx", "int8").name == "model_int8.onnx"
    texts, vectors = b.prompts()
    assert texts == ["normal", "wheezes"] and vectors.shape == (2, 512)
    card = (b.path / "MODEL_CARD.md").read_text()
    assert "Not a medical device" in card and "threshold 0.3100: sensitivity 0.91, specificity 0.7" in card
    assert b.meta["files"]["model_int8.onnx"]["bytes"] == len(b"int8 model bytes")
    with pytest.raises(AculaError, match="no fp32 tflite"):
        b.model_path("tflite")
    assert sorted(p.name for p in b.path.parent.iterdir()) == ["b"]  # no temporary folder left


def test_the_default_precision_is_the_bundles_choice_else_int8(tmp_path):
    files = {"model_fp32.onnx": b"fp32", "model_int8.onnx": b"int8", "model_fp32.tflite": b"tflite",
             "prompts.npy": npy(np.eye(2, 512, dtype=np.float32))}
    old = write_bundle(tmp_path / "old", meta(), files)  # a bundle from before default_precision
    assert old.default_precision("onnx") == "int8" and old.default_precision("tflite") == "fp32"
    assert old.default_precision("coreml") is None
    new = load_bundle(write_bundle(tmp_path / "new", {**meta(), "default_precision": {"onnx": "fp32"}}, files).path)
    assert new.default_precision("onnx") == "fp32"
    with pytest.raises(AculaError, match="default_precision must name, per format, a precision the bundle holds"):
        write_bundle(tmp_path / "bad", {**meta(), "default_precision": {"tflite": "int8"}}, files)


def test_a_file_changed_after_export_is_refused(bundle):
    p = bundle.path / "model_int8.onnx"
    p.write_bytes(p.read_bytes()[:-1] + b"X")
    with pytest.raises(AculaError, match="model_int8.onnx was changed after export"):
        load_bundle(bundle.path)


@pytest.mark.parametrize("edit, expect", [
    (lambda d: "{not json", "not a valid bundle.json"),
    (lambda d: {k: v for k, v in d.items() if k != "heads"}, "'heads' is missing"),
    (lambda d: {**d, "schema": 99}, "schema 99 is not the supported 1"),
    (lambda d: {**d, "input": {"name": "logmel"}}, "the input must be 'waveform'"),
    (lambda d: {**d, "files": {**d["files"], "../escape.onnx": d["files"]["model_fp32.onnx"]}}, "not a plain name"),
    (lambda d: {**d, "files": {**d["files"], "model_fp32.tflite": d["files"]["model_fp32.onnx"]}},
     "format and precision"),
    (lambda d: {**d, "heads": [{"name": "x", "threshold": 3.0}]}, "threshold is not a number in"),
    (lambda d: {**d, "heads": [{"name": "x", "threshold": "high"}]}, "threshold is not a number in"),
    (lambda d: {**d, "heads": [{"name": "x", "modality": "chest"}]}, "modality 'chest' is not one of lung, heart"),
    (lambda d: {**d, "prompts": {"texts": ["a", "b"], "file": ["prompts.npy"]}}, "prompts need"),
    (lambda d: {**d, "outputs": {"embedding": d["outputs"]["embedding"]}}, "the outputs must be embedding and scores"),
    (lambda d: {**d, "outputs": {**d["outputs"], "logits": {"shape": [1]}}}, "the outputs must be"),
    (lambda d: {**d, "outputs": {**d["outputs"], "modality": {"shape": ["batch", 2], "classes": ["lung", "chest"],
                                                              "min_confidence": 0.8}}}, "output modality needs 'classes'"),
    (lambda d: {**d, "outputs": {**d["outputs"], "modality": {"shape": ["batch", 3], "classes": ["lung", "heart"],
                                                              "min_confidence": 0.8}}}, "output modality needs 'classes'"),
    (lambda d: {**d, "outputs": {**d["outputs"], "modality": {"shape": ["batch", 2], "classes": ["lung", "heart"]}}},
     "min_confidence"),
    (lambda d: {**d, "outputs": {**d["outputs"], "events": {"shape": ["batch", 16, 2], "kinds": ["wheeze"]}}},
     "output events needs 'kinds'"),
    (lambda d: {**d, "outputs": {**d["outputs"], "events": {**EVENTS, "on": 0.2}}}, "off <= on"),
    (lambda d: {**d, "files": {**d["files"], "network_int8.tflite": {**d["files"]["model_fp32.onnx"], "format": "tflite",
                                                                      "precision": "int8", "part": "network"}}},
     "the full-integer pair needs both"),
    (lambda d: {**d, "self_test": {"file": "selftest.npz", "tolerance": {"fp32": {"embedding": 1e-4, "scores": 1e-3},
                                                                       "int8": {"embedding": 0.02, "scores": 0.02}}}},
     "self_test needs a listed 'file'"),  # the file is not in the bundle
    (lambda d: {**d, "self_test": {"file": ["prompts.npy"], "tolerance": {}}}, "self_test needs"),
    (lambda d: {**d, "self_test": {"file": "prompts.npy", "tolerance": {"fp32": {"embedding": 1e-4, "scores": 1e-3}}}},
     "self_test needs"),  # no int8 tolerance, and the bundle holds an int8 file
])
def test_a_broken_bundle_json_is_refused_with_the_reason(bundle, edit, expect):
    doc = bundle.path / "bundle.json"
    new = edit(json.loads(doc.read_text()))
    doc.write_text(new if isinstance(new, str) else json.dumps(new))
    with pytest.raises(AculaError, match=expect):
        load_bundle(bundle.path)


def test_a_listed_file_that_is_missing_is_named(bundle):
    (bundle.path / "prompts.npy").unlink()
    with pytest.raises(AculaError, match="prompts.npy is listed in bundle.json but missing"):
        load_bundle(bundle.path)


def test_bundle_files_are_regular_files_in_its_folder(bundle, tmp_path):
    """A link to a model elsewhere, or a name that leaves the folder, is refused even with a matching sha256."""
    outside = tmp_path / "elsewhere.onnx"
    outside.write_bytes((bundle.path / "model_int8.onnx").read_bytes())
    (bundle.path / "model_int8.onnx").unlink()
    (bundle.path / "model_int8.onnx").symlink_to(outside)
    with pytest.raises(AculaError, match="model_int8.onnx is a symbolic link; a bundle holds its own files"):
        load_bundle(bundle.path)
    (bundle.path / "model_int8.onnx").unlink()
    (bundle.path / "model_int8.onnx").write_bytes(outside.read_bytes())
    doc = json.loads((bundle.path / "bundle.json").read_text())
    doc["files"]["../elsewhere.onnx"] = doc["files"].pop("model_int8.onnx")
    (bundle.path / "bundle.json").write_text(json.dumps(doc))
    with pytest.raises(AculaError, match="is not a plain name in the bundle folder"):
        load_bundle(bundle.path)


def test_a_bad_prompts_file_is_one_error_not_a_memory_error(bundle):
    """A header that claims more than the file holds, or pickled Python objects (its sha256 updated with it)."""
    import hashlib

    data = npy(np.eye(2, 512, dtype=np.float32))
    huge = data.replace(b"(2, 512)", b"(2000000000, 512)")
    objects = io.BytesIO()
    np.save(objects, np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
    for bad in (huge, objects.getvalue()):
        (bundle.path / "prompts.npy").write_bytes(bad)
        doc = json.loads((bundle.path / "bundle.json").read_text())
        doc["files"]["prompts.npy"]["sha256"] = hashlib.sha256(bad).hexdigest()
        doc["files"]["prompts.npy"]["bytes"] = len(bad)
        (bundle.path / "bundle.json").write_text(json.dumps(doc))
        with pytest.raises(AculaError, match="prompts.npy: not an array of prompt embeddings"):
            load_bundle(bundle.path).prompts()


def test_a_failed_write_leaves_the_previous_bundle_whole(bundle, tmp_path):
    with pytest.raises(AculaError, match="exists"):
        write_bundle(bundle.path, meta(), {"model_fp32.onnx": b"new"})
    with pytest.raises(AculaError, match="not found"):
        write_bundle(bundle.path, meta(), {"model_fp32.onnx": tmp_path / "missing.onnx"}, overwrite=True)
    with pytest.raises(AculaError, match="prompts need"):
        write_bundle(bundle.path, meta(), {"model_fp32.onnx": b"new"}, overwrite=True)  # prompts.npy not given
    assert load_bundle(bundle.path).meta["files"]["model_fp32.onnx"]["bytes"] == len(b"fp32 model bytes")
    assert sorted(p.name for p in bundle.path.parent.iterdir()) == ["b"]
    m = {k: v for k, v in meta().items() if k != "prompts"}
    assert write_bundle(bundle.path, m, {"model_fp32.onnx": b"new"}, overwrite=True).models() == {
        "model_fp32.onnx": ("onnx", "fp32")}
    with pytest.raises(AculaError, match="not a bundle"):
        load_bundle(tmp_path)


def test_the_bundle_module_needs_no_torch():
    code = "import sys, acula_edge.device.bundle; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_failed_rename_puts_the_previous_bundle_back(bundle, monkeypatch):
    from pathlib import Path

    rename = Path.rename

    def failing(self, target):
        if Path(target) == bundle.path and self.name != ".b.old":  # the new bundle cannot move into place
            raise OSError("disk full")
        return rename(self, target)

    monkeypatch.setattr(Path, "rename", failing)
    with pytest.raises(OSError):
        write_bundle(bundle.path, meta(), {"model_fp32.onnx": b"new", "prompts.npy": bundle.path / "prompts.npy"},
                     overwrite=True)
    monkeypatch.undo()
    assert load_bundle(bundle.path).meta["files"]["model_fp32.onnx"]["bytes"] == len(b"fp32 model bytes")
    assert sorted(p.name for p in bundle.path.parent.iterdir()) == ["b"]


def test_a_failed_write_never_brings_back_a_stale_folder(tmp_path):
    stale = tmp_path / ".b.old"  # left by a crash long ago
    stale.mkdir()
    (stale / "bundle.json").write_text("{}")
    with pytest.raises(AculaError, match="bad bundle description"):
        write_bundle(tmp_path / "b", {"name": "x"}, {"model_fp32.onnx": b"x"})
    assert not (tmp_path / "b").exists()
