"""The README's main command, and the device-side promise: no torch on the edge."""

from __future__ import annotations

import subprocess
import sys

from acula_edge.demo import spectrogram_text
from conftest import ROOT, run_module

import numpy as np


def test_demo_runs_on_its_own_data(tmp_path):
    p = run_module("acula_edge.demo", "--out", str(tmp_path), "--n", "12")
    assert p.returncode == 0, p.stderr
    assert "12 recordings" in p.stdout and "not clinical evidence" in p.stdout
    views = [line for line in p.stdout.splitlines() if line.strip().startswith("|")]
    assert len(views) >= 10 * 2  # at least two modalities drawn, ten rows each
    assert (tmp_path / "synth" / "manifest.jsonl").is_file()


def test_spectrogram_text_puts_energy_where_it_is():
    mel = np.full((64, 100), -80.0)
    mel[:8, 50:] = 0.0  # loud low bands in the second half
    rows = spectrogram_text(mel, width=10, height=8)
    assert rows[-1] == "     @@@@@" and set(rows[0]) == {" "}


def test_device_side_modules_import_without_torch():
    code = ("import sys; import acula_edge.audio, acula_edge.data.cli, acula_edge.data.loaders, "
            "acula_edge.data.splits, acula_edge.data.synth, acula_edge.demo, acula_edge.frontend, acula_edge.cli, "
            "acula_edge.reports, acula_edge.reports.cli, acula_edge.reports.llm, acula_edge.text; "
            "from acula_edge.data.loaders import load, list_formats; [__import__('acula_edge.data.loaders.' + m) "
            "for m in ('sprsound', 'physionet2016', 'icbhi', 'circor', 'coswara', 'coughvid', 'kauh', 'generic_csv', 'synthetic')]; "
            "print(sorted(m for m in ('torch', 'scipy', 'librosa') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"
