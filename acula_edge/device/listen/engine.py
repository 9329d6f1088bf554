"""The streaming engine: source blocks in, window results and events out.

Audio flows from a source into a bounded queue; the loop here resamples it to the bundle's rate,
cuts windows (:class:`acula_edge.device.windows.Windower`, the same windows as cutting the whole
recording) and, for each, checks its signal quality and, when it is usable, runs the bundle's model,
routes the window to a modality (``--modality``, else the graph's modality head where it has one),
scores the heads that screen it and runs their decisions, and places its event probabilities on the
stream's timeline, whose spans become findings (:mod:`acula_edge.device.findings`).
"""

from __future__ import annotations

import os
import queue
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from acula_edge.cli import quiet_native
from acula_edge.device.audio import Resampler
from acula_edge.device.findings import UNKNOWN, EventTimeline, Span, route
from acula_edge.device.listen.decisions import Decider
from acula_edge.device.listen.output import Output
from acula_edge.device.listen.quality import QualityConfig, signal_quality
from acula_edge.device.listen.sources import END, DeviceLost, Source
from acula_edge.device.windows import Windower
from acula_edge.device.zeroshot import DEFAULT_TEMPERATURE, zero_shot_probabilities
from acula_edge.errors import AculaError


@dataclass
class Stats:
    """What the summary reports."""

    windows: int = 0
    scored: int = 0
    gated: dict[str, int] = field(default_factory=dict)
    events: int = 0
    findings: int = 0
    routed: dict[str, int] = field(default_factory=dict)
    audio_s: float = 0.0
    latencies: list[float] = field(default_factory=list)

    def summary(self, wall_s: float, cpu_s: float, source: Source) -> dict[str, Any]:
        """The summary object (``"type": "summary"``) of a run that took ``wall_s`` and ``cpu_s`` seconds."""
        lat = np.asarray(self.latencies) * 1e3
        pct = (lambda q: round(float(np.percentile(lat, q)), 3)) if lat.size else (lambda q: None)
        return {"type": "summary", "windows": self.windows, "scored": self.scored, "gated": dict(self.gated),
                "events": self.events, "findings": self.findings, "routed": dict(self.routed),
                "audio_s": round(self.audio_s, 3), "wall_s": round(wall_s, 3),
                "latency_ms": {"p50": pct(50), "p95": pct(95), "max": round(float(lat.max()), 3) if lat.size else None},
                "real_time_factor": round(float(lat.sum() / 1e3 / self.audio_s), 5) if self.audio_s and lat.size else None,
                "input_overflows": source.overflows, "dropped_blocks": source.dropped,
                "cpu_percent": round(100 * cpu_s / wall_s, 1) if wall_s > 0 else None}


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Listener:
    """The streaming engine: source blocks in, window results, events and findings out.

    ``modality`` forces what is listened to; else a bundle with a modality head routes each window
    (a window of no known modality is ``unknown`` and scored by no head), and a bundle without one
    scores every head. ``events``: report the event output's spans (where the bundle has it)."""

    def __init__(self, model, bundle, hop_s: float, deciders: list[Decider], source_rate: int,
                 quality: QualityConfig = QualityConfig(), prompts: tuple[list[str], np.ndarray] | None = None,
                 temperature: float = DEFAULT_TEMPERATURE, modality: str | None = None, events: bool = True):
        self.model, self.bundle, self.quality = model, bundle, quality
        self.rate = bundle.sample_rate
        hop = int(round(hop_s * self.rate))
        self.windower = Windower(bundle.window_samples, hop)
        self.resampler = None if source_rate == self.rate else Resampler(source_rate, self.rate)
        self.heads = [h["name"] for h in bundle.heads]
        # what is listened to (None: not said): only the heads that screen it are scored
        self.modality = modality
        self.classes = bundle.modalities
        self.min_confidence = float((bundle.meta["outputs"].get("modality") or {}).get("min_confidence", 1.0))
        self.screened = {m: {h["name"] for h in bundle.screening(m)} for m in {modality, *self.classes}}
        spec = bundle.events if events else None
        self.timeline = EventTimeline.of(spec) if spec else None
        self.event_modality = (spec or {}).get("modality")
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
        """Feed one block at the source's rate; the results and events of the windows it completes."""
        x = self.resampler.process(block) if self.resampler else block
        for end, w in self.windower.push(x):
            yield from self._window(end, w)

    def finish(self) -> Iterator[dict[str, Any]]:
        """At the natural end of the source: the results and events of the windows its end completes."""
        if self.resampler:
            tail = self.resampler.flush()
            for end, w in self.windower.push(tail):
                yield from self._window(end, w)
        for end, w in self.windower.finish():
            yield from self._window(end, w)

    def _window(self, end: int, w: np.ndarray) -> Iterator[dict[str, Any]]:
        t0 = time.perf_counter()
        # a window that ends before one window of audio is a short recording's, zero-padded after `end` samples
        q = signal_quality(w, self.quality, end if end < w.size else None)
        scores, modality, confidence, steps = None, self.modality, None, None
        if q["status"] == "ok":
            o = self.model.run(w[None])
            if "modality" in o:
                probs = o["modality"][0]
                if modality is None:
                    modality, confidence = route(probs, self.classes, self.min_confidence)
                elif modality in self.classes:
                    confidence = float(probs[self.classes.index(modality)])
            heads = self.screened.get(modality, set())
            scores = {h: float(v) for h, v in zip(self.heads, o["scores"][0]) if h in heads}
            if self.prompts is not None and modality != UNKNOWN:
                p = zero_shot_probabilities(o["embedding"], self.prompts[1], self.temperature)[0]
                scores.update({f"prompt:{t}": float(v) for t, v in zip(self.prompts[0], p)})
            if "events" in o and modality in (None, self.event_modality):
                steps = o["events"][0]
        latency = time.perf_counter() - t0
        st = self.stats
        st.windows += 1
        st.latencies.append(latency)
        t_end = end / self.rate
        if scores is None:
            st.gated[q["status"]] = st.gated.get(q["status"], 0) + 1
        else:
            st.scored += 1
            if modality is not None:
                st.routed[modality] = st.routed.get(modality, 0) + 1
        smoothed, events = {}, []
        for d in self.deciders:
            s, fired = d.update(t_end, None if scores is None else scores.get(d.name))
            smoothed[d.name] = s
            if fired:
                events.append({"type": "event", "head": d.name, "time_s": round(t_end, 3), "score": round(s, 4),
                               "threshold": d.threshold})
        said = {}
        if modality is not None and scores is not None:
            said = {"modality": modality, "routing": "forced" if self.modality else "auto",
                    **({"modality_confidence": round(confidence, 4)} if confidence is not None else {})}
        elif self.modality:
            said = {"modality": self.modality, "routing": "forced"}
        yield {"type": "window", "index": st.windows - 1, "start_s": round(t_end - w.size / self.rate, 3),
               "end_s": round(t_end, 3), "quality": q, **said,
               "scores": None if scores is None else {k: round(v, 5) for k, v in scores.items()},
               "smoothed": None if scores is None else {k: round(v, 5) for k, v in smoothed.items() if v is not None},
               "latency_ms": round(latency * 1e3, 3)}
        st.events += len(events)
        yield from events
        if self.timeline is not None:
            yield from self._findings(self.timeline.add(max(0, end - w.size) / self.rate, steps))

    def _findings(self, spans: list[Span]) -> Iterator[dict[str, Any]]:
        self.stats.findings += len(spans)
        for s in spans:
            yield {"type": "finding", **s.to_dict()}

    def close(self) -> Iterator[dict[str, Any]]:
        """The findings still open when the stream stops (its end, a lost device or Ctrl-C)."""
        if self.timeline is not None:
            yield from self._findings(self.timeline.finish())


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
        """Finish the file and put it in place."""
        self.f.close()
        os.replace(self.tmp, self.path)


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
    for obj in listener.close():  # the findings open when the stream stopped, however it stopped
        output.emit(obj)
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
