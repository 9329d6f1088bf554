"""The plain install is the device side: a fresh venv with `pip install .` has no torch and runs the
demo on the default bundle and example recording it ships."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_plain_install_is_device_side_only_and_runs_the_demo(tmp_path):
    venv = tmp_path / "edge"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    src = tmp_path / "src"  # build from a copy, so that no build/ folder is left in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "demo-out", "*.egg-info",
                                                             "__pycache__", ".pytest_cache"))
    p = subprocess.run([str(py), "-m", "pip", "install", "-q", "-c", str(ROOT / "constraints.txt"), str(src)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    listed = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True).stdout
    names = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert {"numpy", "soundfile", "sounddevice", "onnxruntime", "acula-edge"} <= names
    assert not names & {"torch", "scipy", "librosa", "onnx", "transformers"}, names
    demo = subprocess.run([str(venv / "bin" / "acula-edge"), "synth", "--out", str(tmp_path / "s"), "--n", "8"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    demo = subprocess.run([str(py), "-m", "acula_edge.demo", "--no-realtime", "--plain"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    # the default bundle and the example recording came with the package, not from the checkout
    assert demo.stdout.startswith("default bundle: acula-edge-demo-mn-xs (") and str(venv) in demo.stdout.splitlines()[0]
    assert "example_lung.flac" in demo.stdout and "summary: 8 windows" in demo.stderr
