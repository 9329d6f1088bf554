"""``python -m export``: a student checkpoint becomes a bundle whose ONNX and TFLite files match the
torch graph; ``export verify`` reports every file and fails on a quantized front end; bad input is
one clear line and leaves no bundle behind."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from acula_edge.device.bundle import load_bundle
from acula_edge.device.runtime import SPLIT
from conftest import EXPORT_HEAD as HEAD
from conftest import call_main, run_module


def test_export_writes_a_verified_bundle_that_matches_torch(student_ckpt, exported):
    import onnxruntime as ort

    from acula_edge.device.audio import load
    from acula_edge.data.synth import generate
    from acula_edge.frontend import FrontendConfig, dft_basis
    from export.model import edge_model

    root, ckpt = student_ckpt
    r = exported
    assert "calibrating on 64 synthetic clips" in r.stderr
    b = load_bundle(root / "bundle")
    assert set(b.models()) == {"model_fp32.onnx", "model_int8.onnx", "model_fp32.tflite", "model_int8.tflite"}
    assert b.split() == (b.path / "frontend_fp32.tflite", b.path / "network_int8.tflite")
    assert b.meta["split"]["between"]["shape"] == [1, 64, 128]
    assert b.heads == [{"name": HEAD, "meaning": "synthetic lung clips with wheezes or crackles", "modality": "lung",
                        "threshold": 0.42,
                        "operating_point": {"sensitivity": 0.9, "specificity": 0.5, "positives": 10, "negatives": 20,
                                            "auroc": 0.8}}]
    assert b.meta["provenance"]["int8_calibration"]["windows"] > 0
    size = {name: f["bytes"] for name, f in b.meta["files"].items()}
    # the ONNX files make the DFT basis (1016 x 1024 floats, 4.2 MB) from a few nodes; the TFLite file stores it
    basis = dft_basis(FrontendConfig.from_dict(b.meta["frontend"])).nbytes
    assert basis > 4_000_000 and size["model_fp32.onnx"] < size["model_fp32.tflite"] - 0.9 * basis
    assert size["model_int8.onnx"] < 600_000
    import onnx

    for name in ("model_fp32.onnx", "model_int8.onnx"):  # no exporter notes on the nodes: bytes for nothing
        graph = onnx.load(str(b.path / name)).graph
        assert not any(n.metadata_props or n.doc_string for n in graph.node) and not graph.value_info, name
    assert b.meta["provenance"]["int8_calibration"]["quantizer"] == {"onnx": "onnxruntime", "tflite": "ai-edge-quantizer"}
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == [
        "model_fp32.onnx", "model_int8.onnx", "model_fp32.tflite", "model_int8.tflite", "frontend_fp32.tflite",
        "network_int8.tflite", "selftest.npz"]
    # the self-test: every model file (the full-integer pair as one) on the reference windows, checked by listen
    assert b.meta["self_test"]["files"] == sorted([*b.models(), SPLIT]) and b.meta["self_test"]["windows"] == 2
    st = run_module("acula_edge.listen", "--self-test", "--bundle", str(b.path))
    assert st.returncode == 0 and st.stdout.count(" ok ") == 5 and "self-test passed: 5 of 5 files" in st.stdout, st.stdout
    assert r.stderr.count("\n") == 2, r.stderr  # the calibration note and the bundle's path: no converter noise
    model = edge_model(str(ckpt))
    assert b.window_samples == model.samples
    records = generate(root / "clips", 2, seed=9)
    waves = np.stack([np.resize(load(x.path, sample_rate=b.sample_rate)[0], b.window_samples) for x in records])
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(waves))]
    for name in ("model_fp32.onnx", "model_int8.onnx"):
        got = ort.InferenceSession(str(b.path / name), providers=["CPUExecutionProvider"]).run(None, {"waveform": waves})
        assert got[0].shape == (2, 512) and got[1].shape == (2, 1)
        if name == "model_fp32.onnx":
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)
    from ai_edge_litert.interpreter import Interpreter

    run = Interpreter(str(b.path / "model_fp32.tflite")).get_signature_runner()
    got = run(waveform=waves[:1])
    np.testing.assert_allclose(got["embedding"], want[0][:1], atol=1e-4)
    np.testing.assert_allclose(got["scores"], want[1][:1], atol=1e-4)
    card = (b.path / "MODEL_CARD.md").read_text()
    assert "Not a medical device" in card and "threshold 0.4200" in card
    m = b.meta["metrics"]
    assert m["recordings"] == 24 and m["trained_subjects_left_out"] == 0 and set(m["heads"]) == {HEAD}
    h = m["heads"][HEAD]
    assert h["auroc_ci95"][0] <= h["auroc"] <= h["auroc_ci95"][1]
    assert h["positives"] + h["negatives"] == h["recordings"] < 24  # the lung clips: those its task labels
    assert h["sensitivity_ci95"][0] <= h["sensitivity"] <= h["sensitivity_ci95"][1]
    assert f"`{HEAD}`: AUROC {h['auroc']:.3f} (95% CI" in card and f"on {h['recordings']} recordings" in card


def test_verify_reports_every_file_and_bites_on_a_quantized_front_end(student_ckpt, exported, tmp_path):
    from acula_edge.device.bundle import write_bundle
    from acula_edge.data.records import write_manifest
    from acula_edge.data.synth import generate
    from export.onnx import quantize_int8, waveform_windows

    root, ckpt = student_ckpt
    records = generate(tmp_path / "corpus", 24, seed=3)
    write_manifest(records, tmp_path / "data.jsonl")
    r = run_module("export", "verify", str(root / "bundle"), "--data", str(tmp_path / "data.jsonl"), "--json")
    assert r.returncode in (0, 1), r.stderr
    report = json.loads(r.stdout)
    assert not report["training_subjects_only"] and report["trained_subjects_left_out"] == 0
    assert report["recordings"] == 24 and set(report["files"]) == {
        "model_fp32.onnx", "model_int8.onnx", "model_fp32.tflite", "model_int8.tflite",
        "frontend_fp32.tflite+network_int8.tflite"}
    for name in ("model_fp32.onnx", "model_fp32.tflite"):
        fp32 = report["files"][name]
        diff = fp32["max_abs_diff"]
        assert diff["embedding"] <= 1e-4 and diff["scores"] <= 1e-3 and set(fp32["auroc"]) == {HEAD}
        assert fp32["auroc"][HEAD] == pytest.approx(report["torch"]["auroc"][HEAD], abs=1e-3)
    assert all(set(f["auroc"]) == {HEAD} for f in report["files"].values())
    assert r.returncode == (0 if report["ok"] else 1) and report["ok"] == (not report["failures"])
    # the same network with its front end quantized, passed off as fp32: the verifier refuses it
    b = load_bundle(root / "bundle")
    waves = waveform_windows(records, b.sample_rate, b.window_samples, limit=32)
    bad = quantize_int8(b.path / "model_fp32.onnx", tmp_path / "frontend_int8.onnx", waves, exclude=[])
    write_bundle(tmp_path / "bad", {k: v for k, v in b.meta.items() if k not in ("default_precision", "self_test")},
                 {"model_fp32.onnx": bad})
    r = run_module("export", "verify", str(tmp_path / "bad"), "--data", str(tmp_path / "data.jsonl"))
    assert r.returncode == 1 and re.search(r"FAIL model_fp32\.onnx: (embedding|scores) differs from torch by", r.stderr)
    assert "model_fp32.onnx: max |diff| embedding" in r.stdout


def test_verify_fails_an_int8_file_whose_head_is_shifted_though_its_auroc_holds(student_ckpt, exported, tmp_path):
    """A head's bias raised by 3 keeps every ranking (and so the AUROC) but not one decision at the threshold."""
    import onnx
    from onnx import numpy_helper

    from acula_edge.device.bundle import write_bundle
    from export.verify import against_fp32, tolerance_used

    root, _ = student_ckpt
    b = load_bundle(root / "bundle")
    model = onnx.load(str(b.path / "model_fp32.onnx"))
    bias = next(i for i in model.graph.initializer if i.name.endswith("heads.bias"))
    bias.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(bias) + 3.0, bias.name))
    onnx.save(model, str(tmp_path / "shifted.onnx"))
    write_bundle(tmp_path / "shifted", {k: v for k, v in b.meta.items() if k not in ("default_precision", "self_test")},
                 {"model_fp32.onnx": b.path / "model_fp32.onnx", "model_int8.onnx": tmp_path / "shifted.onnx"})
    r = run_module("export", "verify", str(tmp_path / "shifted"), "--json")
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    f = report["files"]["model_int8.onnx"]
    assert f["auroc"][HEAD] == pytest.approx(report["files"]["model_fp32.onnx"]["auroc"][HEAD], abs=1e-6)
    assert f["against_fp32"][HEAD]["mean_abs_drift"] > 0.05
    assert any("scores drift from model_fp32.onnx" in x for x in report["failures"])
    # the measures themselves
    heads = [{"name": "h", "threshold": 0.5}]
    d = against_fp32(np.array([[0.4], [0.6], [0.55]]), np.array([[0.45], [0.45], [0.6]]), heads)["h"]
    assert d["decisions_differ"] == pytest.approx(1 / 3, abs=1e-4) and d["max_abs_drift"] == pytest.approx(0.15)
    assert tolerance_used([np.array([1.0008])], [np.array([1.0])], 1e-4) < 1 < tolerance_used(
        [np.array([0.0008])], [np.array([0.0])], 1e-4)


def test_no_full_integer_leaves_the_pair_out(student_ckpt, tmp_path):
    root, ckpt = student_ckpt
    r = run_module("export", "--checkpoint", str(ckpt), "--out", str(tmp_path / "b"), "--formats", "tflite", "--int8",
                   "--no-full-integer")
    assert r.returncode == 0, r.stderr
    b = load_bundle(tmp_path / "b")
    assert set(b.meta["files"]) == {"model_fp32.tflite", "model_int8.tflite", "selftest.npz"} and b.split() is None
    assert "split" not in b.meta


def test_export_bad_input_is_one_line_and_leaves_no_bundle(student_ckpt, exported, tmp_path):
    root, ckpt = student_ckpt
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text(json.dumps({"id": "x", "path": str(tmp_path / "missing.wav"), "dataset": "d", "subject": "s",
                                    "modality": "lung"}) + "\n")
    (tmp_path / "p.txt").write_text("normal\nwheezes\n")
    enc = tmp_path / "enc"
    r = run_module("acula_edge.align", "pretrain", "--data", f"synthetic={root / 'held-out'}", "--max-steps", "1",
                   "--batch-size", "2", "--out", str(enc), "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "b"
    ragged = tmp_path / "ragged.json"  # a results table whose row is shorter than its columns
    ragged.write_text(json.dumps({"results": {"title": "t", "note": "n", "columns": ["a", "b"], "rows": [["1"]]}}))
    cases = [
        (["--checkpoint", str(enc / "encoder.safetensors")], "not a student checkpoint"),
        (["--checkpoint", str(tmp_path / "none.safetensors")], "checkpoint not found"),
        (["--checkpoint", str(ckpt), "--formats", "onnx,coreml"], "unknown format(s) coreml"),
        (["--checkpoint", str(ckpt), "--int8", "--quantizer", "tvm"], "unknown quantizer 'tvm'"),
        (["--checkpoint", str(ckpt), "--int8", "--quantizer", "inc", "--formats", "tflite"], "add onnx to --formats"),
        (["--checkpoint", str(ckpt), "--int8", "--calibration", str(manifest)], "could be read"),
        (["--checkpoint", str(ckpt), "--evaluate", str(tmp_path / "none.jsonl")], "--evaluate: manifest not found"),
        (["--checkpoint", str(ckpt), "--prompts", str(tmp_path / "p.txt")], "no text projection"),
        (["--checkpoint", str(ckpt), "--out", str(root / "bundle")], "exists"),
        (["--checkpoint", str(ckpt), "--card", str(tmp_path / "p.txt")], "is not JSON"),
        (["--checkpoint", str(ckpt), "--int8", "--calibrator", "kl"], "unknown calibrator 'kl'"),
        (["--checkpoint", str(ckpt), "--card", str(manifest)], "must hold summary (text), data"),
        (["--checkpoint", str(ckpt), "--card", str(tmp_path / "none.json")], "--card: file not found"),
        (["--checkpoint", str(ckpt), "--card", str(ragged)], "optionally results (title, note, columns, rows)"),
    ]
    for args, expect in cases:
        r = call_main("export.cli", *(args if "--out" in args else [*args, "--out", str(out)]))
        assert r.returncode == 2 and expect in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def _own_csv(records, path, column: str, values: tuple) -> None:
    """A user's CSV manifest of ``records`` with a label ``column`` holding ``values[adventitious]``."""
    rows = ["path,subject," + column] + [f"{r.path},{r.subject},{values[int(r.labels['adventitious'])]}"
                                         for r in records if r.labels.get("adventitious") in (0, 1)]
    path.write_text("\n".join(rows) + "\n")


def test_verify_scores_a_head_with_a_label_column_of_ones_own_csv_without_the_source_checkpoint(
        student_ckpt, exported, tmp_path):
    """A bundle away from where it was built (its source checkpoint is not on the machine) scored on the
    user's own labelled recordings: --task csv:MANIFEST:COLUMN=HEAD maps their no/yes column to the
    head, and every file reports AUROC, sensitivity and specificity at the head's threshold."""
    import shutil

    from acula_edge.data.synth import generate

    root, _ = student_ckpt
    away = tmp_path / "away"
    shutil.copytree(root / "bundle", away)
    meta = json.loads((away / "bundle.json").read_text())
    meta["provenance"]["checkpoint"] = str(tmp_path / "elsewhere" / "student.safetensors")
    (away / "bundle.json").write_text(json.dumps(meta))
    records = generate(tmp_path / "corpus", 24, seed=3)
    mine = tmp_path / "mine.csv"
    _own_csv(records, mine, "finding", ("no", "yes"))
    r = run_module("export", "verify", str(away), "--data", str(mine))
    assert r.returncode == 0 and "no head is labelled by these recordings" in r.stdout, r.stdout + r.stderr
    r = run_module("export", "verify", str(away), "--data", str(mine), "--task", f"csv:{mine}:finding={HEAD}", "--json")
    report = json.loads(r.stdout)
    # the untrained student's scores hardly differ between clips, so how its int8 files rank these few
    # labelled ones against fp32 depends on the CPU's int8 kernels: only such comparisons may fail here
    int8_checks = ("below fp32", "decides otherwise", "drift from")
    assert all(f.startswith(("model_int8", "frontend_fp32.tflite+")) and any(c in f for c in int8_checks)
               for f in report["failures"]), report["failures"]
    assert r.returncode == (1 if report["failures"] else 0), r.stderr
    assert not report["compared_with_source"] and report["torch"] is None and report["checkpoint"] is None
    assert report["labelled_heads"] == {HEAD: f"csv:{mine}:finding"}
    positives = sum(int(x.split(",")[-1] == "yes") for x in mine.read_text().split()[1:])
    assert set(report["files"]) == {"model_fp32.onnx", "model_int8.onnx", "model_fp32.tflite", "model_int8.tflite",
                                    "frontend_fp32.tflite+network_int8.tflite"}
    for f in report["files"].values():
        m = f["heads"][HEAD]
        assert m["positives"] == positives and m["negatives"] == m["recordings"] - positives > 0
        assert 0 <= m["sensitivity"] <= 1 and 0 <= m["specificity"] <= 1 and "max_abs_diff" not in f
        assert m["auroc_ci95"][0] <= m["auroc"] <= m["auroc_ci95"][1] and f["auroc"][HEAD] == m["auroc"]
    r = run_module("export", "verify", str(away), "--data", str(mine), "--task", f"csv:{mine}:finding={HEAD}")
    assert f"model_fp32.onnx: {HEAD} AUROC" in r.stdout and "specificity" in r.stdout
    assert "its source checkpoint is not on this machine" in r.stdout
    # a label column that is not binary, a head the bundle lacks: one line each
    _own_csv(records, tmp_path / "odd.csv", "finding", ("maybe", "banana"))
    for task, message in ((f"csv:{tmp_path / 'odd.csv'}:finding={HEAD}", "its labels are not binary (values: banana, maybe)"),
                          (f"csv:{mine}:finding=heart", "the bundle has no head 'heart'")):
        r = call_main("export.verify", str(away), "--data", str(tmp_path / "odd.csv"), "--task", task)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
