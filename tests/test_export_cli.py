"""``python -m export``: a student checkpoint becomes a bundle whose ONNX files match the torch
graph; bad input is one clear line and leaves no bundle behind."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from acula_edge.bundle import load_bundle
from conftest import run_module

HEAD = "synthetic-adventitious"


@pytest.fixture(scope="module")
def student_ckpt(tmp_path_factory):
    """An untrained mn-xs student saved as `python -m distill` saves one (export does not care how
    well it was trained)."""
    from acula_edge.checkpoint import save_checkpoint
    from acula_edge.frontend import FrontendConfig
    from distill.students import create_student

    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    student = create_student("mn-xs", heads=(HEAD,))
    calib = {"sensitivity": 0.9, "specificity": 0.5, "positives": 10, "negatives": 20, "auroc": 0.8}
    path = save_checkpoint(root / "student.safetensors", student, FrontendConfig().to_dict(), kind="student",
                           extra={"heads": [{"name": HEAD, "task": HEAD, "threshold": 0.42, "calibration": calib}],
                                  "parameters": student.num_parameters()})
    return root, path


def test_export_writes_a_verified_bundle_that_matches_torch(student_ckpt):
    import onnxruntime as ort

    from acula_edge.audio import load
    from acula_edge.data.synth import generate
    from export.model import edge_model

    root, ckpt = student_ckpt
    r = run_module("export", "--checkpoint", str(ckpt), "--out", str(root / "bundle"), "--int8")
    assert r.returncode == 0, r.stderr
    assert "calibrating on 64 synthetic clips" in r.stderr
    b = load_bundle(root / "bundle")
    assert set(b.models()) == {"model_fp32.onnx", "model_int8.onnx"}
    assert b.heads == [{"name": HEAD, "meaning": "synthetic lung clips with wheezes or crackles", "threshold": 0.42,
                        "operating_point": {"sensitivity": 0.9, "specificity": 0.5, "positives": 10, "negatives": 20,
                                            "auroc": 0.8}}]
    assert b.meta["provenance"]["int8_calibration"]["windows"] > 0
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == ["model_fp32.onnx", "model_int8.onnx"]
    model = edge_model(str(ckpt))
    assert b.window_samples == model.samples
    records = generate(root / "clips", 2, seed=9)
    waves = np.stack([np.resize(load(x.path, sample_rate=b.sample_rate)[0], b.window_samples) for x in records])
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(waves))]
    for name in b.models():
        got = ort.InferenceSession(str(b.path / name), providers=["CPUExecutionProvider"]).run(None, {"waveform": waves})
        assert got[0].shape == (2, 512) and got[1].shape == (2, 1)
        if name == "model_fp32.onnx":
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)
    card = (b.path / "MODEL_CARD.md").read_text()
    assert "Not a medical device" in card and "threshold 0.4200" in card


def test_export_bad_input_is_one_line_and_leaves_no_bundle(student_ckpt, tmp_path):
    root, ckpt = student_ckpt
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text(json.dumps({"id": "x", "path": str(tmp_path / "missing.wav"), "dataset": "d", "subject": "s",
                                    "modality": "lung"}) + "\n")
    (tmp_path / "p.txt").write_text("normal\nwheezes\n")
    enc = tmp_path / "enc"
    r = run_module("acula_edge.align", "pretrain", "--data", f"synthetic={root / 'clips'}", "--max-steps", "1",
                   "--batch-size", "2", "--out", str(enc), "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "b"
    cases = [
        (["--checkpoint", str(enc / "encoder.safetensors")], "not a student checkpoint"),
        (["--checkpoint", str(tmp_path / "none.safetensors")], "checkpoint not found"),
        (["--checkpoint", str(ckpt), "--formats", "onnx,coreml"], "unknown format(s) coreml"),
        (["--checkpoint", str(ckpt), "--int8", "--calibration", str(manifest)], "could be read"),
        (["--checkpoint", str(ckpt), "--prompts", str(tmp_path / "p.txt")], "no text projection"),
        (["--checkpoint", str(ckpt), "--out", str(root / "bundle")], "exists"),
    ]
    for args, expect in cases:
        r = run_module("export", *(args if "--out" in args else [*args, "--out", str(out)]))
        assert r.returncode == 2 and expect in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
