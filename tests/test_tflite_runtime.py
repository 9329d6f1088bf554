"""The 32-bit ARM path on this machine: every TFLite file the exporter writes runs in
``tflite-runtime`` 2.14 beside numpy 1.x (what 32-bit Raspberry Pi OS has: no ai-edge-litert,
onnxruntime or numpy 2 wheels for armv7), through the device side's fallback, and gives this
machine's LiteRT scores. The environment is ``.venv-tflite-runtime``, which ``make test`` builds;
on ARM itself the same files are checked by ``make check-arm`` (tests/test_devices.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from export.devices import compare, listen_file

LEGACY = ROOT / ".venv-tflite-runtime" / "bin" / "python"
pytestmark = pytest.mark.skipif(not LEGACY.is_file(), reason="needs .venv-tflite-runtime (tflite-runtime 2.14 and "
                                "numpy 1.x), which make test builds where tflite-runtime has a wheel (Python <= 3.11)")
EXAMPLE = ROOT / "acula_edge" / "examples" / "example_lung.flac"


def legacy(*args: str, check: bool = True) -> str:
    """stdout of ``python ARGS`` in the tflite-runtime environment, the checkout on its path."""
    r = subprocess.run([str(LEGACY), *args], capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    assert r.returncode == 0 or not check, r.stderr
    return r.stdout


def host(*args: str, what: str = "") -> str:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_environment_is_the_32_bit_one():
    env = json.loads(legacy("-c", "import json, importlib.util as u, numpy, tflite_runtime; print(json.dumps("
                            "[numpy.__version__, tflite_runtime.__version__, [m for m in ('ai_edge_litert', "
                            "'onnxruntime', 'torch') if u.find_spec(m)]]))"))
    assert env[0].startswith("1.") and env[1] == "2.14.0" and env[2] == []


def test_every_tflite_file_of_an_exported_bundle_passes_its_self_test(distilled_bundles):
    """fp32, int8 and the full-integer pair; the ONNX files have no runtime there."""
    out = legacy("-m", "acula_edge.listen", "--self-test", "--bundle", str(distilled_bundles / "ort"))
    lines = {line.split()[0]: line.split()[1] for line in out.splitlines()[1:-1]}
    assert lines == {"model_fp32.onnx": "skipped", "model_int8.onnx": "skipped", "model_fp32.tflite": "ok",
                     "model_int8.tflite": "ok", "frontend_fp32.tflite+network_int8.tflite": "ok"}, out


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_the_default_bundle_screens_a_recording_as_litert_does(precision):
    from acula_edge.device.bundle import DEFAULT_BUNDLE
    from acula_edge.device.selftest import TOLERANCE

    theirs = listen_file(lambda *a, what: legacy(*a), DEFAULT_BUNDLE, EXAMPLE, "tflite", precision)
    ours = listen_file(host, DEFAULT_BUNDLE, EXAMPLE, "tflite", precision)
    c = compare(ours, theirs)
    assert c["windows"] == len(ours) >= 8 and c["mismatched"] == 0  # 20 s, hop 2.064 s
    assert c["max_abs_diff"] <= TOLERANCE[precision]["scores"]


def test_without_onnxruntime_listen_runs_the_tflite_file_by_default():
    out = legacy("-m", "acula_edge.listen", "--file", str(EXAMPLE), "--no-realtime", "--json", "--duration", "5")
    start = json.loads(out.splitlines()[0])
    assert start["type"] == "start" and start["backend"] == "tflite" and start["model"].endswith(".tflite")
