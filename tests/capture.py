"""Real PortAudio capture devices without sound hardware, for the listen tests.

* :func:`alsa_file_device`: an ALSA ``file`` plugin declared in a private ALSA config reads a raw
  16-bit file as a capture device: bit-exact, but not paced in real time.
* :class:`PulseDaemon`: a user-space PulseAudio daemon with ``module-pipe-source``; audio written
  into its FIFO at real time (:meth:`PulseDaemon.feed`) reaches PortAudio's ``pulse`` device.

Both are real drivers (ALSA, PulseAudio, PortAudio): nothing here imitates a device.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ALSA_NAME = "aculafile"


def pcm16(x: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as the 16-bit samples a device delivers."""
    return np.clip(np.round(np.asarray(x, np.float64) * 32768), -32768, 32767).astype(np.int16)


def alsa_file_device(tmp: Path, audio: np.ndarray, rate: int = 16000) -> dict[str, str]:
    """The environment under which PortAudio lists ``aculafile``, a capture device that delivers
    ``audio`` (16-bit, mono, at ``rate``) sample for sample when opened at ``rate``."""
    if not Path("/usr/share/alsa/alsa.conf").is_file():
        pytest.skip("ALSA's configuration is not installed (libasound2)")
    raw = tmp / "capture.raw"
    pcm16(audio).tofile(raw)
    conf = tmp / "asound.conf"
    conf.write_text(f"""pcm.{ALSA_NAME} {{
  type plug
  slave {{
    pcm {{ type file  file "/dev/null"  infile "{raw}"  format "raw"  slave.pcm "null" }}
    format S16_LE  channels 1  rate {rate}
  }}
}}
""")
    return {**os.environ, "ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{conf}"}


class PulseDaemon:
    """A private PulseAudio daemon whose default source is a FIFO at ``rate`` Hz, 16-bit mono."""

    def __init__(self, tmp: Path, rate: int = 16000):
        if not shutil.which("pulseaudio"):
            pytest.skip("pulseaudio is not installed (make test installs pulseaudio and libasound2-plugins)")
        if not list(Path("/usr/lib").glob("*/alsa-lib/libasound_module_pcm_pulse.so")):
            pytest.skip("ALSA's PulseAudio plugin is not installed (libasound2-plugins)")
        self.rate, self.tmp = rate, tmp
        self.runtime = tmp / "runtime"
        self.runtime.mkdir(mode=0o700)
        self.fifo = tmp / "source.fifo"
        script = tmp / "default.pa"
        script.write_text(f"""load-module module-native-protocol-unix
load-module module-pipe-source source_name=capture file={self.fifo} format=s16le rate={rate} channels=1
load-module module-null-sink
set-default-source capture
""")
        self.env = {**os.environ, "XDG_RUNTIME_DIR": str(self.runtime), "HOME": str(tmp),
                    "PULSE_SERVER": f"unix:{self.runtime}/pulse/native"}
        self.proc = subprocess.Popen(["pulseaudio", "-n", "-F", str(script), "--daemonize=no", "--exit-idle-time=-1",
                                      "--use-pid-file=no", "--disable-shm=yes", "--log-target=stderr"],
                                     env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while not (self.runtime / "pulse" / "native").exists() or not self.fifo.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.poll() is not None else ""
                self.stop()
                pytest.fail(f"PulseAudio did not start: {err}")
            time.sleep(0.05)
        self.feeding = threading.Event()

    def feed(self, audio: np.ndarray) -> threading.Thread:
        """Write ``audio`` into the FIFO at real time from a thread (then quiet noise until
        :meth:`stop_feeding`, so that the stream never starves)."""
        samples = pcm16(audio)
        quiet = pcm16(1e-3 * np.random.default_rng(0).standard_normal(self.rate // 50))
        self.feeding.set()

        def work() -> None:
            block = self.rate // 50
            try:
                with open(self.fifo, "wb") as f:
                    t0, n = time.monotonic(), 0
                    while self.feeding.is_set():
                        chunk = samples[n:n + block] if n < samples.size else quiet
                        f.write(chunk.tobytes())
                        f.flush()
                        n += chunk.size
                        delay = t0 + n / self.rate - time.monotonic()
                        if delay > 0:
                            time.sleep(delay)
            except (BrokenPipeError, OSError):  # the daemon went away (a test stops it on purpose)
                pass

        t = threading.Thread(target=work, daemon=True)
        t.start()
        return t

    def stop_feeding(self) -> None:
        self.feeding.clear()

    def stop(self) -> None:
        self.stop_feeding()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
