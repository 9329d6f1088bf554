"""``python -m export check-device`` without its downloads: comparing two runs' windows, the report,
and its one-line errors. The check itself (Debian roots for arm64 and armhf, the device side from
the package index, qemu-user) is ``make check-arm``, outside the suite because it downloads
packages; its result for the default bundle is benchmarks/results/devices.md."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import ROOT
from export.devices import ARCHES, CPUS, compare, markdown, verdict


def window(i: int, scores: dict | None, status: str = "ok") -> dict:
    return {"type": "window", "index": i, "quality": {"status": status}, **({"scores": scores} if scores else {})}


def test_compare_finds_the_largest_score_difference_and_windows_that_differ():
    ours = [window(0, {"a": 0.5, "b": 0.1}), window(1, None, "silence"), window(2, {"a": 0.2, "b": 0.9})]
    same = compare(ours, [window(0, {"a": 0.5, "b": 0.1}), window(1, None, "silence"), window(2, {"a": 0.23, "b": 0.9})])
    assert same["windows"] == 3 and same["mismatched"] == 0 and abs(same["max_abs_diff"] - 0.03) < 1e-9
    gated = compare(ours, [window(0, {"a": 0.5, "b": 0.1}), window(1, {"a": 0.1, "b": 0.1}), window(2, None, "clipping")])
    assert gated["mismatched"] == 2 and gated["max_abs_diff"] == 0.0
    assert compare(ours, ours[:2]) == {"windows": 2, "mismatched": 1, "max_abs_diff": None}


def test_a_file_passes_only_with_every_window_alike_and_within_its_tolerance():
    rec = {"recording": "r.wav", "windows": 4, "mismatched": 0, "max_abs_diff": 0.01}
    assert verdict("m.tflite", "int8", [rec, {**rec, "max_abs_diff": 0.03}], 0.05)["status"] == "ok"
    failed = verdict("m.tflite", "int8", [rec, {**rec, "max_abs_diff": 0.06}], 0.05)
    assert failed["status"] == "FAIL" and failed["max_abs_diff"] == 0.06 and failed["windows"] == 8
    assert verdict("m.tflite", "int8", [rec, {**rec, "mismatched": 1}], 0.05)["status"] == "FAIL"
    assert verdict("m.tflite", "int8", [{**rec, "max_abs_diff": None}], 0.05)["status"] == "FAIL"


def test_the_report_has_a_row_per_file_and_the_self_test_lines():
    env = {"machine": "armv7l", "python": "3.11.2", "packages": {"numpy": "1.24.2", "tflite-runtime": "2.14.0"}}
    files = [{"file": "model_fp32.onnx", "precision": "fp32", "status": "not run", "reason": "no onnx runtime for armv7"},
             {"file": "model_int8.tflite", "precision": "int8", "status": "FAIL", "windows": 12, "max_abs_diff": 0.4,
              "allowed": 0.05, "recordings": []}]
    doc = {"bundle": "b", "name": "demo", "files": {"model_int8.tflite": "ab" * 32}, "recordings": ["a0001.wav"],
           "host": "x86", "results": [
        {"arch": "armv7", "debian": "bookworm armhf", "passed": False, "cpus": {"cortex-a7": {
            "board": CPUS["cortex-a7"][0], "environment": env, "files": files,
            "self_test": {"passed": False, "lines": ["model_int8.tflite FAIL does not run"]}}}}]}
    text = markdown(doc)
    assert "| model_fp32.onnx | fp32 | | | | not run: no onnx runtime for armv7 |" in text
    assert "| model_int8.tflite | int8 | 12 | 4.0e-01 | 0.05 | FAIL |" in text
    assert "model_int8.tflite FAIL does not run" in text and text.endswith("Result: FAILED.\n")
    assert "numpy 1.24.2, tflite-runtime 2.14.0" in text and "(demo: `model_int8.tflite` abababababab" in text


def test_every_architecture_emulates_raspberry_pi_cpus_of_its_own_width():
    assert {c for a in ARCHES.values() for c in a.cpus} <= set(CPUS)
    assert all(CPUS[c][1] == "8" for c in ARCHES["aarch64"].cpus) and all(CPUS[c][1] == "7" for c in ARCHES["armv7"].cpus)
    assert "onnxruntime" in ARCHES["aarch64"].wheels and "onnxruntime" not in ARCHES["armv7"].wheels


def check_device(*args: str, path: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, **({"PATH": path} if path is not None else {})}
    return subprocess.run([sys.executable, "-m", "export", "check-device", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_bad_input_and_missing_tools_are_one_line(tmp_path):
    r = check_device("--recording", str(tmp_path / "nothing.wav"))
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [f"error: --recording {tmp_path / 'nothing.wav'}: no such file"]
    r = check_device("--arch", "armv7", path=str(tmp_path))  # neither mmdebstrap nor qemu on PATH
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == ["error: check-device needs mmdebstrap, qemu-arm-static: apt-get install "
                                             "mmdebstrap qemu-user-static (make check-arm does)"]
