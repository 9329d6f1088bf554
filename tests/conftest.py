"""Shared test helpers: paths to the real recordings beside the checkout, and audio writers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ACULA_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared(name: str) -> Path:
    """Path of a dataset in ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real recordings not present at {p} (they live beside the checkout in CI)")
    return p


def write_tone(path: Path, rate: int = 16000, seconds: float = 1.0, freq: float = 440.0,
               channels: int = 1, subtype: str = "PCM_16", fmt: str | None = None) -> np.ndarray:
    """Write a sine tone and return the float samples written (frames x channels)."""
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    x = np.stack([x * (0.5 + 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(str(path), x, rate, subtype=subtype, format=fmt)
    return x


def run_module(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` in a subprocess, capturing text output."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


def kill_after_steps(module_args: list[str], run_dir: Path, steps: int, timeout: float = 240) -> None:
    """Start ``python -m <module_args>``, SIGKILL it once ``run_dir/metrics.jsonl`` has ``steps`` lines,
    and check that it was killed (not finished)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", *module_args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = run_dir / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= steps:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
