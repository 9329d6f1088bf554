"""The README's main command (``make demo``): the packaged default bundle screens the packaged example
recording; the default bundle is small, verified and documented; and no torch on the edge."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile as sf

from acula_edge.device.bundle import DEFAULT_BUNDLE, EXAMPLE_RECORDING, load_bundle
from acula_edge.frontend import DEFAULT_STUDENT_FRONTEND, get_frontend
from conftest import ROOT, run_module

HEADS = ["sprsound-adventitious", "physionet2016-abnormal"]


def test_demo_screens_the_example_recording_with_the_default_bundle():
    p = run_module("acula_edge.demo", "--no-realtime", "--plain")
    assert p.returncode == 0, p.stderr
    assert "a demonstration model, not a medical device" in p.stdout
    for head in HEADS:
        assert f"head {head}:" in p.stdout and "held-out AUROC" in p.stdout
    screened = [line for line in p.stdout.splitlines() if " ok " in line]  # the lung head, on a lung recording
    assert len(screened) == 8 and all("sprsound-adventitious" in x and "physionet2016-abnormal" not in x
                                      for x in screened)
    precision = load_bundle(DEFAULT_BUNDLE).default_precision("onnx")
    assert f"{EXAMPLE_RECORDING} with acula-edge-demo-mn-xs (onnx {precision}" in p.stdout
    assert "summary: 8 windows (8 scored; routed: lung 8; gated: none)" in p.stderr and "Traceback" not in p.stderr
    assert "FINDING crackle-like sound" in p.stdout  # the example's second half holds coarse crackles


def test_listen_uses_the_default_bundle_without_bundle():
    p = run_module("acula_edge.listen", "--file", str(EXAMPLE_RECORDING), "--no-realtime", "--json")
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stdout.splitlines()]
    start = events[0]
    assert start["type"] == "start" and start["bundle"] == str(DEFAULT_BUNDLE)
    assert start["precision"] == load_bundle(DEFAULT_BUNDLE).meta["default_precision"]["onnx"]  # the faster file
    windows = [e for e in events if e["type"] == "window"]
    # the modality head routes the example's windows to lung: only the lung head scores them
    assert start["routing"] == "auto" and len(windows) >= 8
    assert all(w["modality"] == "lung" and set(w["scores"]) == {HEADS[0]} for w in windows)


def test_the_default_bundle_is_small_verified_and_documented():
    b = load_bundle(DEFAULT_BUNDLE)  # checksums and schema
    files = {name: f["bytes"] for name, f in b.meta["files"].items()}
    assert sum(files.values()) + (DEFAULT_BUNDLE / "bundle.json").stat().st_size < 2_500_000
    assert {"model_fp32.onnx", "model_int8.onnx", "prompts.npy"} <= set(files)
    assert [h["name"] for h in b.heads] == HEADS
    # the students' front end (4 kHz, 50-2000 Hz) and the precision its exporter measured faster
    assert b.meta["frontend"] == get_frontend(DEFAULT_STUDENT_FRONTEND).to_dict() and b.sample_rate == 4000
    timing = b.meta["provenance"]["precision_timing"]["onnx"]["ms_per_window"]
    assert b.meta["default_precision"]["onnx"] == ("int8" if timing["int8"] < 0.95 * timing["fp32"] else "fp32")
    texts, vectors = b.prompts()
    assert len(texts) == vectors.shape[0] >= 4
    metrics = b.meta["metrics"]["heads"]
    for h in b.heads:
        op, m = h["operating_point"], metrics[h["name"]]
        assert 0 < h["threshold"] < 1 and op["sensitivity"] >= 0.9  # chosen on validation subjects
        assert m["auroc_ci95"][0] <= m["auroc"] <= m["auroc_ci95"][1] and m["subjects"] >= 10
    card = (DEFAULT_BUNDLE / "MODEL_CARD.md").read_text()
    for text in ("Not a medical device", "demonstration model", "GPL-3.0", "ODC-By 1.0", "Apache-2.0",
                 "95% CI", "sensitivity", "## Limitations", "Routing: a modality head tells heart, lung recordings apart",
                 "Findings: the probability of wheeze-like and crackle-like sounds", "The modality head learnt only "
                 "heart, lung recordings", "python -m benchmarks events"):
        assert text in card, text
    # the generalisation benchmark measured the recipe before the modality and event heads: not this one
    assert "## The recipe on sites and children it never saw" not in card


def test_the_example_recording_is_the_synthetic_one_the_demo_describes():
    from acula_edge.data.synth import to_pcm16
    from acula_edge.demo import example_audio

    audio, rate = example_audio()
    got, got_rate = sf.read(EXAMPLE_RECORDING, dtype="int16")
    want = to_pcm16(audio)
    assert got_rate == rate and got.shape == want.shape
    # regenerated on another CPU, a few samples at rounding boundaries differ by one step (AVX-512: 475 of 320,000)
    diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
    assert diff.max() <= 1 and np.count_nonzero(diff) < 0.01 * diff.size


def test_device_side_modules_import_without_torch():
    code = ("import sys; import acula_edge.device.audio, acula_edge.data.cli, acula_edge.datasets, "
            "acula_edge.data.splits, acula_edge.data.synth, acula_edge.data.tasks, acula_edge.demo, acula_edge.frontend, "
            "acula_edge.cli, acula_edge.pipeline, acula_edge.reports, acula_edge.reports.cli, acula_edge.reports.llm, "
            "acula_edge.text; from acula_edge.datasets import get_dataset, list_datasets, load, list_formats; "
            "[get_dataset(n) for n in list_datasets()]; "
            "print(sorted(m for m in ('torch', 'scipy', 'librosa') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
