"""Audio sources: each puts mono float32 blocks at its own rate into a queue, from its own thread.

A file played at real time (or as fast as the loop takes it), the synthetic demo stream, or a
PortAudio input stream (``--mic``).
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Any, Iterator

import numpy as np

from acula_edge.cli import quiet_native
from acula_edge.errors import AculaError

END = None  # queue sentinel: the source has no more audio


class DeviceLost(AculaError):
    """The input device stopped delivering audio while the stream was open."""


class Source:
    """Something that puts mono float32 blocks (then :data:`END`) into a queue from its own thread."""

    name = "source"
    rate = 0
    realtime = True  # whether audio arrives at the pace of a clock (stalls then mean a lost device)
    overflows = 0  # input overflows the audio driver reported
    dropped = 0  # blocks lost because the queue was full

    def start(self, q: queue.Queue) -> None:
        """Start delivering blocks into ``q``."""
        raise NotImplementedError

    def stop(self) -> None:
        """Stop delivering (the loop ends or was interrupted)."""

    def ended_normally(self) -> bool:
        """Whether the :data:`END` it sent was the natural end of its audio (not a lost device)."""
        return True


class _ThreadSource(Source):
    """A source whose blocks come from a generator, paced at real time unless ``realtime`` is off; the
    generator may also yield notes (text) for the user."""

    def __init__(self, realtime: bool, duration: float | None):
        self.realtime, self.duration = realtime, duration
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def blocks(self) -> Iterator[np.ndarray | str]:
        """The source's blocks (and notes), as fast as it can make them."""
        raise NotImplementedError

    def _put(self, q: queue.Queue, item) -> None:
        """Wait for room in the queue (nothing is dropped from a file), unless the loop has stopped."""
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def start(self, q: queue.Queue) -> None:
        def work() -> None:
            sent, t0 = 0, time.monotonic()
            limit = None if self.duration is None else int(round(self.duration * self.rate))
            try:
                for b in self.blocks():
                    if isinstance(b, str):
                        self._put(q, b)
                        continue
                    if limit is not None:
                        b = b[:limit - sent]
                    if self.realtime:  # the block is "captured" when its last sample would have been
                        delay = t0 + (sent + b.size) / self.rate - time.monotonic()
                        if delay > 0 and self._stop.wait(delay):
                            break
                    self._put(q, b)
                    sent += b.size
                    if self._stop.is_set() or (limit is not None and sent >= limit):
                        break
            except Exception as e:  # a file that turns out corrupt half-way: the loop reports it
                self._put(q, e)
            self._put(q, END)

        self._thread = threading.Thread(target=work, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)


class FileSource(_ThreadSource):
    """A recording, played at real time (or as fast as the loop takes it)."""

    def __init__(self, path: str, realtime: bool = True, duration: float | None = None, block_s: float = 0.05):
        from acula_edge.device.audio import info

        super().__init__(realtime, duration)
        self.path, self.block_s = path, block_s
        self.rate = info(path).sample_rate  # checks the file: one clear line when it is not audio
        self.name = f"file {path}"

    def blocks(self) -> Iterator[np.ndarray]:
        from acula_edge.device.audio import iter_blocks

        return iter_blocks(self.path, self.block_s)


class DemoSource(_ThreadSource):
    """Synthetic lung, heart, cough and breath clips one after another, with a second of quiet
    between them (synthetic audio: a demonstration, not clinical evidence)."""

    def __init__(self, realtime: bool = True, duration: float | None = None, seed: int = 0, block_s: float = 0.05):
        super().__init__(realtime, duration)
        from acula_edge.data.synth import SynthConfig

        self.rate, self.seed, self.block_s = SynthConfig().sample_rate, seed, block_s
        self.name = "synthetic demo stream"

    def blocks(self) -> Iterator[np.ndarray | str]:
        from acula_edge.data.synth import iter_clips

        step = max(1, int(self.block_s * self.rate))
        n = n_audio = 0
        while True:
            for rec, audio in iter_clips(50, seed=self.seed + n):
                found = ", ".join(f"{k}={v}" for k, v in rec.labels.items() if k != "condition")
                yield f"demo clip {rec.id} from {n_audio / self.rate:.1f} s: {rec.modality} ({found})"
                gap = 1e-3 * np.random.default_rng(n).standard_normal(self.rate).astype(np.float32)
                x = np.concatenate([np.asarray(audio, np.float32), gap])
                for i in range(0, x.size, step):
                    yield x[i:i + step]
                n_audio += x.size
            n += 50


def _sounddevice():
    """The sounddevice module, or one clear line when PortAudio is missing."""
    try:
        with quiet_native((2,)):  # ALSA lists the cards it cannot open while PortAudio starts
            import sounddevice as sd
    except OSError as e:
        raise AculaError("live input needs the PortAudio library, which is not installed "
                         "(Debian/Ubuntu: apt-get install libportaudio2)") from e
    except ImportError as e:
        raise AculaError("live input needs sounddevice: pip install sounddevice") from e
    return sd


def input_devices() -> list[dict[str, Any]]:
    """The input devices PortAudio sees: index, name, host API, channels and native rate."""
    sd = _sounddevice()
    apis = sd.query_hostapis()
    return [{"index": d["index"], "name": d["name"], "hostapi": apis[d["hostapi"]]["name"],
             "channels": d["max_input_channels"], "samplerate": d["default_samplerate"]}
            for d in sd.query_devices() if d["max_input_channels"] > 0]


class MicSource(Source):
    """A PortAudio input stream at the device's native rate (or ``samplerate``): one channel, 16-bit
    (what stethoscopes and microphones deliver; ALSA's own float conversion has lost samples)."""

    def __init__(self, device: str | int | None = None, samplerate: int | None = None,
                 duration: float | None = None, block_s: float = 0.02):
        self.sd = sd = _sounddevice()
        if not input_devices():
            raise AculaError("no audio input device found: connect a microphone (see --list-devices)")
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        try:
            d = sd.query_devices(device, "input")
        except (ValueError, sd.PortAudioError) as e:
            raise AculaError(f"input device {device!r}: {e} (see --list-devices)") from None
        self.device = d["index"]
        self.rate = int(samplerate or d["default_samplerate"])
        self.name = f"microphone {d['name']!r} at {self.rate} Hz"
        self.duration, self.block = duration, max(1, int(block_s * self.rate))
        self.stream = None
        self.limit_reached = False

    def start(self, q: queue.Queue) -> None:
        sd = self.sd
        limit = None if self.duration is None else int(round(self.duration * self.rate))
        got = 0

        def callback(indata, frames, t, status) -> None:
            nonlocal got
            if status.input_overflow:
                self.overflows += 1
            x = indata[:, 0].astype(np.float32) / 32768.0  # 16-bit capture, scaled as PortAudio scales it
            if limit is not None:
                x = x[:limit - got]
            got += x.size
            try:
                q.put_nowait(x)
            except queue.Full:
                self.dropped += 1
            if limit is not None and got >= limit:
                self.limit_reached = True
                raise sd.CallbackStop

        def finished() -> None:
            q.put(END)

        try:
            self.stream = sd.InputStream(device=self.device, samplerate=self.rate, channels=1, dtype="int16",
                                         blocksize=self.block, callback=callback, finished_callback=finished)
            self.stream.start()
        except sd.PortAudioError as e:
            raise AculaError(f"cannot open {self.name}: {e}") from None

    def ended_normally(self) -> bool:
        return self.limit_reached

    def stop(self) -> None:
        """Abort the stream from a helper thread: a driver whose device is gone may never return."""
        if self.stream is None:
            return
        s, self.stream = self.stream, None

        def close() -> None:
            try:
                s.abort()
                s.close()
            except Exception:
                pass

        t = threading.Thread(target=close, daemon=True)
        t.start()
        t.join(timeout=2)
