"""Real-time screening on the device: ``python -m acula_edge.listen``.

    python -m acula_edge.listen --mic [--device NAME] [--samplerate HZ] [--bundle BUNDLE]
    python -m acula_edge.listen --file REC.wav [--no-realtime] [--bundle BUNDLE] [--json]
    python -m acula_edge.listen --demo [--bundle BUNDLE]        (a synthetic stream, in real time)

Without ``--bundle`` the package's default bundle is used: a demonstration model (lung adventitious
sounds, abnormal heart sounds, zero-shot prompts; see its MODEL_CARD.md), not a medical device.

Audio flows from a source (a PortAudio input stream's callback, a file played at real time, or
the synthetic demo stream) into a bounded queue; the loop here resamples it to the bundle's rate,
keeps the last window in a ring buffer and, every ``--hop`` seconds, checks the window's signal
quality and, when it is usable, runs the bundle's model (``--backend onnx|tflite|torch``,
``--precision int8|fp32``). Each head's probability is smoothed over windows and compared with its
threshold (from the bundle, or ``--threshold HEAD=P``) with hysteresis and a refractory period, so
that one sustained finding gives one event. A window that is silent, too quiet, clipped or
overloaded gets no score, only its quality.

numpy, soundfile, sounddevice (for ``--mic``) and a runtime only: no torch on the device.
"""

from __future__ import annotations

import json
import math
import os
import queue
import resource
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from acula_edge.cli import Parser, guarded, quiet_native
from acula_edge.errors import AculaError
from acula_edge.device.zeroshot import DEFAULT_TEMPERATURE, zero_shot_probabilities

#: ``embed(checkpoint, texts) -> [K, D]`` prompt embeddings in the checkpoint's aligned space
PromptEmbedder = Callable[[str, list[str]], np.ndarray]
END = None  # queue sentinel: the source has no more audio
QUALITY = ("ok", "silence", "low", "clipping", "overload")


class DeviceLost(AculaError):
    """The input device stopped delivering audio while the stream was open."""


# ---------------------------------------------------------------------------------------------
# signal quality


@dataclass(frozen=True)
class QualityConfig:
    """Per-window signal-quality gate (levels in dB relative to full scale)."""

    silence_db: float = -80.0  # below: no signal at all (a muted or disconnected input)
    low_db: float = -65.0  # below: too quiet to score (quieter than almost every stethoscope recording)
    clip_level: float = 0.99  # |x| at or above this is at the converter's rail
    clip_fraction: float = 0.001  # more samples than this at a rail (or stuck at the peak): clipping
    overload_fraction: float = 0.05  # more than this, or an RMS above overload_db: overload
    overload_db: float = -3.0


def signal_quality(x: np.ndarray, cfg: QualityConfig = QualityConfig()) -> dict[str, Any]:
    """``{"status", "rms_db", "peak_db", "clipped"}`` of one window; ``status`` is one of :data:`QUALITY`.

    Clipped samples are those at the converter's rail, or, when many samples share the window's peak
    magnitude exactly, those at it (an analogue stage that clips below full scale).
    """
    x = np.asarray(x, np.float32)
    a = np.abs(x)
    peak = float(a.max()) if a.size else 0.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if a.size else 0.0
    rms_db = 20 * math.log10(rms) if rms > 0 else -150.0
    clipped = a >= cfg.clip_level
    if peak >= 0.1:
        at_peak = a == peak
        if at_peak.sum() >= 8:  # natural audio reaches its peak magnitude once or a few times
            clipped |= at_peak
    frac = float(clipped.mean()) if a.size else 0.0
    if rms_db < cfg.silence_db:
        status = "silence"
    elif frac > cfg.overload_fraction or rms_db > cfg.overload_db:
        status = "overload"
    elif frac > cfg.clip_fraction:
        status = "clipping"
    elif rms_db < cfg.low_db:
        status = "low"
    else:
        status = "ok"
    return {"status": status, "rms_db": round(rms_db, 1),
            "peak_db": round(20 * math.log10(peak), 1) if peak > 0 else -150.0, "clipped": round(frac, 5)}


# ---------------------------------------------------------------------------------------------
# windows and decisions


class Windower:
    """Ring buffer over a stream: a window of ``window`` samples every ``hop`` samples.

    The first window ends at sample ``window``, the k-th at ``window + k * hop``: the same windows
    as cutting the whole recording at starts ``0, hop, 2 hop, ...``.
    """

    def __init__(self, window: int, hop: int):
        if window <= 0 or hop <= 0:
            raise AculaError("window and hop must be positive")
        self.window, self.hop = window, hop
        self.ring = np.zeros(window, np.float32)
        self.total = 0  # samples received
        self.next_end = window

    def _write(self, x: np.ndarray) -> None:
        pos = self.total % self.window
        first = min(x.size, self.window - pos)
        self.ring[pos:pos + first] = x[:first]
        if x.size > first:
            self.ring[:x.size - first] = x[first:]
        self.total += x.size

    def push(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Feed samples; return ``(end sample, window)`` for every window they complete."""
        x = np.asarray(x, np.float32).ravel()
        out = []
        while x.size:
            take = min(self.next_end - self.total, x.size, self.window)
            self._write(x[:take])
            x = x[take:]
            if self.total == self.next_end:
                pos = self.total % self.window
                out.append((self.total, np.concatenate([self.ring[pos:], self.ring[:pos]])))
                self.next_end += self.hop
        return out

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """At the end of a stream shorter than one window: that stream, zero-padded, as one window."""
        if self.next_end > self.window or not self.total:  # a window was cut already, or nothing came
            return []
        w = np.zeros(self.window, np.float32)
        w[:self.total] = self.ring[:self.total]
        return [(self.total, w)]


@dataclass
class Decider:
    """One head's decision: smoothed probability, threshold with hysteresis, refractory period."""

    name: str
    threshold: float
    smooth: int = 2
    hysteresis: float = 0.05
    refractory_s: float = 5.0
    history: deque = field(default_factory=deque)
    active: bool = False
    last_event: float | None = None

    def update(self, t: float, p: float | None) -> tuple[float | None, bool]:
        """Feed a window's probability (None: the window was gated); ``(smoothed, event starts)``.

        A gated window clears the smoothing and ends an active finding: the signal it rested on is gone.
        """
        if p is None:
            self.history.clear()
            self.active = False
            return None, False
        self.history.append(float(p))
        while len(self.history) > self.smooth:
            self.history.popleft()
        s = float(np.mean(self.history))
        if self.active:
            self.active = s >= self.threshold - self.hysteresis
            return s, False
        if s >= self.threshold and (self.last_event is None or t - self.last_event >= self.refractory_s):
            self.active, self.last_event = True, t
            return s, True
        return s, False


# ---------------------------------------------------------------------------------------------
# sources: each delivers mono float32 blocks at its own rate into a queue


class Source:
    """Something that puts mono float32 blocks (then :data:`END`) into a queue from its own thread."""

    name = "source"
    rate = 0
    realtime = True  # whether audio arrives at the pace of a clock (stalls then mean a lost device)
    overflows = 0  # input overflows the audio driver reported
    dropped = 0  # blocks lost because the queue was full

    def start(self, q: queue.Queue) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        pass

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


# ---------------------------------------------------------------------------------------------
# output


def _fmt_p(p: float | None) -> str:
    return "  -  " if p is None else f"{p:5.3f}"


class Output:
    """Where window results and events go: JSON lines, plain lines, or a live terminal view."""

    def __init__(self, mode: str, heads: list[str], thresholds: dict[str, float], stream=None):
        self.mode, self.heads, self.thresholds = mode, heads, thresholds
        self.out = stream or sys.stdout
        self.events: deque = deque(maxlen=5)
        self.drawn = 0

    def emit(self, obj: dict[str, Any]) -> None:
        if self.mode == "json":
            self.out.write(json.dumps(obj) + "\n")
            self.out.flush()
        elif obj["type"] == "window":
            self._live(obj) if self.mode == "live" else self._line(obj)
        elif obj["type"] == "event":
            msg = (f"EVENT {obj['head']} at {obj['time_s']:.1f} s (smoothed {obj['score']:.3f} >= "
                   f"{obj['threshold']:.3f})")
            if self.mode == "live":
                self.events.append(msg)
            else:
                print(msg, file=self.out, flush=True)
        elif obj["type"] == "note":
            self._clear()
            print(obj["text"], file=self.out, flush=True)

    def _line(self, w: dict[str, Any]) -> None:
        q = w["quality"]
        head = f"{w['end_s']:8.2f} s  {q['status']:<8} {q['rms_db']:6.1f} dBFS"
        if w["scores"] is None:
            print(f"{head}  (no score)  {w['latency_ms']:.1f} ms", file=self.out, flush=True)
            return
        parts = "  ".join(f"{h} {_fmt_p(w['smoothed'][h])}{'*' if w['smoothed'][h] >= self.thresholds[h] else ' '}"
                          for h in self.heads)
        print(f"{head}  {parts}  {w['latency_ms']:.1f} ms", file=self.out, flush=True)

    def _clear(self) -> None:
        if self.mode == "live" and self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _live(self, w: dict[str, Any]) -> None:
        q, width = w["quality"], 30
        name_w = max(len(h) for h in self.heads) if self.heads else 4
        lines = [f"t = {w['end_s']:.1f} s   signal: {q['status']} ({q['rms_db']:.0f} dBFS, peak {q['peak_db']:.0f}, "
                 f"clipped {100 * q['clipped']:.2f}%)   latency {w['latency_ms']:.1f} ms"]
        for h in self.heads:
            p = None if w["smoothed"] is None else w["smoothed"][h]
            fill = 0 if p is None else int(round(p * width))
            mark = int(round(self.thresholds[h] * width))
            bar = "".join("#" if i < fill else ("|" if i == mark else ".") for i in range(width + 1))
            flag = "  ALERT" if p is not None and p >= self.thresholds[h] else ""
            lines.append(f"  {h:<{name_w}} [{bar}] {_fmt_p(p)}{flag}")
        lines += [f"  {e}" for e in self.events]
        self._clear()
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)


# ---------------------------------------------------------------------------------------------
# the loop


@dataclass
class Stats:
    """What the summary reports."""

    windows: int = 0
    scored: int = 0
    gated: dict[str, int] = field(default_factory=dict)
    events: int = 0
    audio_s: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def summary(self, wall_s: float, cpu_s: float, source: Source) -> dict[str, Any]:
        lat = np.asarray(self.latencies) * 1e3
        pct = (lambda q: round(float(np.percentile(lat, q)), 3)) if lat.size else (lambda q: None)
        return {"type": "summary", "windows": self.windows, "scored": self.scored, "gated": dict(self.gated),
                "events": self.events, "audio_s": round(self.audio_s, 3), "wall_s": round(wall_s, 3),
                "latency_ms": {"p50": pct(50), "p95": pct(95), "max": round(float(lat.max()), 3) if lat.size else None},
                "real_time_factor": round(float(lat.sum() / 1e3 / self.audio_s), 5) if self.audio_s and lat.size else None,
                "input_overflows": source.overflows, "dropped_blocks": source.dropped,
                "cpu_percent": round(100 * cpu_s / wall_s, 1) if wall_s > 0 else None}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Listener:
    """The streaming engine: source blocks in, window results and events out."""

    def __init__(self, model, bundle, hop_s: float, deciders: list[Decider], source_rate: int,
                 quality: QualityConfig = QualityConfig(), prompts: tuple[list[str], np.ndarray] | None = None,
                 temperature: float = DEFAULT_TEMPERATURE):
        from acula_edge.device.audio import Resampler

        self.model, self.bundle, self.quality = model, bundle, quality
        self.rate = bundle.sample_rate
        hop = int(round(hop_s * self.rate))
        self.windower = Windower(bundle.window_samples, hop)
        self.resampler = None if source_rate == self.rate else Resampler(source_rate, self.rate)
        self.heads = [h["name"] for h in bundle.heads]
        self.deciders = deciders
        self.prompts, self.temperature = prompts, temperature
        self.stats = Stats()

    def warm_up(self, n: int = 2) -> None:
        """Run the model on a few windows of quiet noise before the first report (first calls are slow)."""
        x = 1e-3 * np.random.default_rng(0).standard_normal((1, self.bundle.window_samples)).astype(np.float32)
        with quiet_native():  # runtimes announce their delegates on the first call
            for _ in range(n):
                self.model.run(x)

    def feed(self, block: np.ndarray) -> Iterator[dict[str, Any]]:
        x = self.resampler.process(block) if self.resampler else block
        for end, w in self.windower.push(x):
            yield from self._window(end, w)

    def finish(self) -> Iterator[dict[str, Any]]:
        if self.resampler:
            tail = self.resampler.flush()
            for end, w in self.windower.push(tail):
                yield from self._window(end, w)
        for end, w in self.windower.finish():
            yield from self._window(end, w)

    def _window(self, end: int, w: np.ndarray) -> Iterator[dict[str, Any]]:
        t0 = time.perf_counter()
        q = signal_quality(w, self.quality)
        scores = None
        if q["status"] == "ok":
            emb, s = self.model.run(w[None])
            scores = {h: float(v) for h, v in zip(self.heads, s[0])}
            if self.prompts is not None:
                p = zero_shot_probabilities(emb, self.prompts[1], self.temperature)[0]
                scores.update({f"prompt:{t}": float(v) for t, v in zip(self.prompts[0], p)})
        latency = time.perf_counter() - t0
        st = self.stats
        st.windows += 1
        st.latencies.append(latency)
        t_end = end / self.rate
        if scores is None:
            st.gated[q["status"]] = st.gated.get(q["status"], 0) + 1
        else:
            st.scored += 1
        smoothed, events = {}, []
        for d in self.deciders:
            s, fired = d.update(t_end, None if scores is None else scores[d.name])
            smoothed[d.name] = s
            if fired:
                events.append({"type": "event", "head": d.name, "time_s": round(t_end, 3), "score": round(s, 4),
                               "threshold": d.threshold})
        yield {"type": "window", "index": st.windows - 1, "start_s": round(t_end - w.size / self.rate, 3),
               "end_s": round(t_end, 3), "quality": q,
               "scores": None if scores is None else {k: round(v, 5) for k, v in scores.items()},
               "smoothed": None if scores is None else {k: round(v, 5) for k, v in smoothed.items()},
               "latency_ms": round(latency * 1e3, 3)}
        st.events += len(events)
        yield from events


class Recorder:
    """Keeps the captured audio (as captured, at the source's rate) in a WAV file written atomically."""

    def __init__(self, path: str, rate: int, overwrite: bool = False):
        import soundfile as sf

        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise AculaError(f"{path} exists: choose another --record file or add --overwrite")
        if not self.path.parent.is_dir():
            raise AculaError(f"{self.path.parent}: no such folder for --record")
        self.tmp = self.path.with_name(f".{self.path.name}.part")
        self.f = sf.SoundFile(str(self.tmp), "w", samplerate=rate, channels=1, subtype="PCM_16", format="WAV")

    def write(self, x: np.ndarray) -> None:
        """16-bit samples scaled by 32768, as PortAudio scales them: a 16-bit device's audio is kept exactly."""
        self.f.write(np.clip(np.round(x * 32768.0), -32768, 32767).astype(np.int16))

    def close(self) -> None:
        self.f.close()
        os.replace(self.tmp, self.path)


def _thresholds(bundle, overrides: Sequence[str], extra: Sequence[str], chosen: Sequence[str] = ()) -> dict[str, float]:
    """Each head's threshold: the bundle's (0.5 where it has none), then ``HEAD=P`` overrides; only the
    ``chosen`` heads when any are named."""
    names = [h["name"] for h in bundle.heads]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise AculaError(f"--head {unknown[0]}: the bundle's heads are {', '.join(names) or '(none)'}")
    out = {h["name"]: float(h.get("threshold") if h.get("threshold") is not None else 0.5) for h in bundle.heads
           if not chosen or h["name"] in chosen}
    out.update({h: 0.5 for h in extra})
    for item in overrides:
        name, sep, value = item.rpartition("=")
        try:
            p = float(value)
        except ValueError:
            p = float("nan")
        if not sep or name not in out or not 0.0 <= p <= 1.0:
            raise AculaError(f"--threshold {item!r}: give HEAD=P with P in [0, 1] and HEAD one of {', '.join(out)}")
        out[name] = p
    return out


def _prompts(bundle, texts: Sequence[str], checkpoint: str | None,
             embed: PromptEmbedder | None) -> tuple[list[str], np.ndarray] | None:
    """Zero-shot prompt embeddings: the bundle's own, or new ones from ``embed`` (a text model, where installed)."""
    if not texts:
        return None
    held = bundle.prompts()
    known = dict(zip(held[0], held[1])) if held else {}
    texts = list(dict.fromkeys(texts))
    if all(t in known for t in texts) and len(texts) >= 2:
        return texts, np.stack([known[t] for t in texts])
    if held and all(t in known for t in texts):  # one answer: the bundle's other prompts are the alternatives
        return held
    if embed is None:
        have = "; it carries: " + "; ".join(known) if known else " and carries none"
        raise AculaError("new --prompt texts need the text model (pip install 'acula-edge[text]'): "
                         f"the bundle cannot embed them{have}")
    if len(texts) < 2:
        raise AculaError("a zero-shot question needs at least two --prompt answers, or prompts the bundle carries")
    return texts, embed(str(bundle.source_checkpoint(checkpoint, "embedding new prompts")), texts)


def run(listener: Listener, source: Source, output: Output, recorder: Recorder | None = None,
        queue_s: float = 30.0, stall_s: float = 3.0) -> tuple[dict[str, Any], BaseException | None]:
    """Stream ``source`` through ``listener`` until it ends, the device is lost, or Ctrl-C; the summary
    and what ended it (None for the normal end)."""
    q: queue.Queue = queue.Queue(maxsize=max(8, int(queue_s / 0.02)))
    t0, c0 = time.monotonic(), _cpu_s()
    ended: BaseException | None = None
    try:
        with quiet_native((2,)):  # the audio driver's own complaints (a device gone mid-stream) are not ours
            try:
                source.start(q)
                _loop(listener, source, output, recorder, q, stall_s)
            finally:
                source.stop()
    except (KeyboardInterrupt, AculaError) as e:
        ended = e
    finally:
        if recorder:
            recorder.close()
    return listener.stats.summary(time.monotonic() - t0, _cpu_s() - c0, source), ended


def _loop(listener: Listener, source: Source, output: Output, recorder: Recorder | None, q: queue.Queue,
          stall_s: float) -> None:
    last = time.monotonic()
    while True:
        try:
            block = q.get(timeout=0.2)
        except queue.Empty:
            if source.realtime and time.monotonic() - last > stall_s:
                raise DeviceLost(f"{source.name} delivered no audio for {stall_s:g} s: the device was "
                                 "disconnected or stopped") from None
            continue
        last = time.monotonic()
        if block is END:
            if not source.ended_normally():
                raise DeviceLost(f"{source.name} stopped: the device was disconnected or closed")
            for obj in listener.finish():
                output.emit(obj)
            return
        if isinstance(block, BaseException):
            raise block
        if isinstance(block, str):
            output.emit({"type": "note", "text": block})
            continue
        if recorder:
            recorder.write(block)
        listener.stats.audio_s += block.size / source.rate
        for obj in listener.feed(block):
            output.emit(obj)


def _print_summary(s: dict[str, Any], mode: str, out) -> None:
    if mode == "json":
        out.write(json.dumps(s) + "\n")
        out.flush()
        return
    lat = s["latency_ms"]
    gated = ", ".join(f"{k} {v}" for k, v in s["gated"].items()) or "none"
    rtf = "-" if s["real_time_factor"] is None else f"{s['real_time_factor']:.4f}"
    print(f"summary: {s['windows']} windows ({s['scored']} scored; gated: {gated}), {s['events']} events, "
          f"{s['audio_s']:.1f} s of audio in {s['wall_s']:.1f} s; latency per window p50 {lat['p50']} ms, "
          f"p95 {lat['p95']} ms, max {lat['max']} ms; real-time factor {rtf}; input overflows "
          f"{s['input_overflows']}, dropped blocks {s['dropped_blocks']}; CPU {s['cpu_percent']}%", file=out, flush=True)


def _parser() -> Parser:
    p = Parser(prog="python -m acula_edge.listen", description=__doc__.splitlines()[0])
    src = p.add_argument_group("source (one of)")
    src.add_argument("--mic", action="store_true", help="live audio from an input device")
    src.add_argument("--file", metavar="PATH", help="a recording, played at real time")
    src.add_argument("--demo", action="store_true", help="a synthetic stream of lung, heart, cough and breath clips")
    src.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    src.add_argument("--device", help="input device name or index (default: the system's default input)")
    src.add_argument("--samplerate", type=int, help="capture rate in Hz (default: the device's native rate)")
    src.add_argument("--no-realtime", action="store_true", help="--file/--demo: as fast as the loop takes it")
    src.add_argument("--duration", type=float, help="stop after this many seconds of audio")
    m = p.add_argument_group("model")
    m.add_argument("--bundle", help="the bundle folder (default: the package's demonstration bundle)")
    m.add_argument("--backend", default="onnx", help="onnx (default), tflite or torch")
    m.add_argument("--precision", choices=("int8", "fp32"), help="default: int8 when the bundle holds it")
    m.add_argument("--checkpoint", help="the torch backend's checkpoint (default: the bundle's source)")
    m.add_argument("--threads", type=int, default=1, help="inference threads (default 1)")
    m.add_argument("--warmup", type=int, default=2, help="model runs before the first report (default 2)")
    d = p.add_argument_group("decisions")
    d.add_argument("--hop", type=float, help="seconds between windows (default: the bundle's)")
    d.add_argument("--head", action="append", default=[], metavar="NAME", help="decide and show only these heads "
                   "(repeat; default every head of the bundle)")
    d.add_argument("--threshold", action="append", default=[], metavar="HEAD=P", help="override a head's threshold")
    d.add_argument("--smooth", type=int, default=2, help="windows averaged per decision (default 2)")
    d.add_argument("--hysteresis", type=float, default=0.05, help="drop below threshold minus this to re-arm")
    d.add_argument("--refractory", type=float, default=5.0, help="seconds after an event before the next")
    d.add_argument("--prompt", action="append", default=[], metavar="TEXT", help="a zero-shot answer; repeat")
    g = p.add_argument_group("signal quality (dBFS)")
    qc = QualityConfig()
    g.add_argument("--silence-db", type=float, default=qc.silence_db)
    g.add_argument("--low-db", type=float, default=qc.low_db)
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="one JSON object per window, event and the summary")
    o.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    o.add_argument("--record", metavar="OUT.wav", help="keep the captured audio")
    o.add_argument("--overwrite", action="store_true", help="--record may replace an existing file")
    return p


def _check_args(a, p: Parser) -> None:
    sources = [n for n in ("mic", "file", "demo") if getattr(a, n)]
    if a.list_devices:
        return
    if len(sources) != 1:
        p.error("choose one source: --mic, --file PATH or --demo")
    for name in ("threads", "warmup", "smooth"):
        if getattr(a, name) < (1 if name != "warmup" else 0):
            p.error(f"--{name} must be at least {1 if name != 'warmup' else 0}")
    for name in ("hop", "duration", "samplerate"):
        v = getattr(a, name)
        if v is not None and not v > 0:
            p.error(f"--{name} must be positive")
    if a.refractory < 0 or not 0 <= a.hysteresis < 1:
        p.error("--refractory must be >= 0 and --hysteresis in [0, 1)")


@guarded
def main(argv: Sequence[str] | None = None, embed_prompts: PromptEmbedder | None = None) -> int:
    """The screening CLI; ``embed_prompts(checkpoint, texts)`` embeds ``--prompt`` texts the bundle lacks."""
    from acula_edge.device.bundle import default_bundle, load_bundle
    from acula_edge.device.runtime import load_model

    p = _parser()
    a = p.parse_args(argv)
    _check_args(a, p)
    if a.list_devices:
        devices = input_devices()
        for d in devices:
            print(f"{d['index']:3d}  {d['name']}  ({d['hostapi']}, {d['channels']} ch, {d['samplerate']:g} Hz)")
        if not devices:
            raise AculaError("no audio input device found")
        return 0
    mode = "json" if a.json else ("live" if sys.stdout.isatty() and not a.plain else "plain")

    source: Source
    if a.mic:
        source = MicSource(a.device, a.samplerate, a.duration)
    elif a.file:
        if not Path(a.file).is_file():
            raise AculaError(f"{a.file}: no such file")
        source = FileSource(a.file, not a.no_realtime, a.duration)
    else:
        source = DemoSource(not a.no_realtime, a.duration)
    bundle = load_bundle(a.bundle or default_bundle())
    model = load_model(bundle, a.backend, a.precision, a.threads, a.checkpoint)
    prompts = _prompts(bundle, a.prompt, a.checkpoint, embed_prompts)
    extra = [f"prompt:{t}" for t in prompts[0]] if prompts else []
    thresholds = _thresholds(bundle, a.threshold, extra, a.head)
    deciders = [Decider(h, thresholds[h], a.smooth, a.hysteresis, a.refractory) for h in thresholds]
    temperature = float((bundle.meta.get("prompts") or {}).get("temperature", DEFAULT_TEMPERATURE))
    listener = Listener(model, bundle, a.hop or bundle.meta["hop_s"], deciders, source.rate,
                        QualityConfig(silence_db=a.silence_db, low_db=a.low_db), prompts, temperature)
    output = Output(mode, list(thresholds), thresholds)

    listener.warm_up(a.warmup)
    recorder = Recorder(a.record, source.rate, a.overwrite) if a.record else None
    output.emit({"type": "start", "bundle": str(bundle.path), "name": bundle.meta["name"], "backend": model.backend,
                 "model": model.file, "precision": model.precision, "source": source.name,
                 "source_rate": source.rate, "sample_rate": bundle.sample_rate, "window_s": bundle.meta["window_s"],
                 "hop_s": listener.windower.hop / bundle.sample_rate, "thresholds": thresholds}
                if mode == "json" else
                {"type": "note", "text": f"listening to {source.name} with {bundle.meta['name']} "
                 f"({model.backend} {model.precision}, {model.file}); window {bundle.meta['window_s']:g} s, hop "
                 f"{listener.windower.hop / bundle.sample_rate:g} s; Ctrl-C stops"})

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        summary, ended = run(listener, source, output, recorder)
    finally:
        signal.signal(signal.SIGTERM, previous)
    _print_summary(summary, mode, sys.stdout if mode == "json" else sys.stderr)
    if isinstance(ended, KeyboardInterrupt):
        print("stopped (interrupted)", file=sys.stderr)
        return 130
    if isinstance(ended, AculaError):
        print(f"error: {ended}", file=sys.stderr)
        return 1 if isinstance(ended, DeviceLost) else 2
    return 0


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
