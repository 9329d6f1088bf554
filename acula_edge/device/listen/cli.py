"""``python -m acula_edge.listen``: screen live audio, a recording or a demo stream with a bundle, in
real time, on the device.

    python -m acula_edge.listen --mic [--device NAME] [--samplerate HZ] [--bundle BUNDLE]
    python -m acula_edge.listen --file REC.wav [--no-realtime] [--bundle BUNDLE] [--json]
    python -m acula_edge.listen --demo [--bundle BUNDLE]        (a synthetic stream, in real time)
    python -m acula_edge.listen --self-test [--bundle BUNDLE]   (every model file against its exporter's outputs)

Without ``--bundle`` the package's default bundle is used: a demonstration model (lung adventitious
sounds, abnormal heart sounds, zero-shot prompts; see its MODEL_CARD.md), not a medical device.

Audio flows from a source (a PortAudio input stream's callback, a file played at real time, or
the synthetic demo stream) into a bounded queue; the engine resamples it to the bundle's rate,
keeps the last window in a ring buffer and, every ``--hop`` seconds, checks the window's signal
quality and, when it is usable, runs the bundle's model (``--backend onnx|tflite|torch``,
``--precision int8|fp32``). Each head's probability is smoothed over windows and compared with its
threshold (from the bundle, or ``--threshold HEAD=P``) with hysteresis and a refractory period, so
that one sustained finding gives one event. A window that is silent, too quiet, clipped or
overloaded gets no score, only its quality.

Heads score only what they screen: ``--modality`` says what is listened to; else a bundle whose model
has a modality head routes each window to lung, heart, ... when it is sure enough, and a window of no
known modality gets no score. Where the model gives frame-level event probabilities, the windows'
steps are averaged on the stream's timeline and each wheeze-like or crackle-like sound is reported
once, as a finding with its start and end (hysteresis; ``--no-events`` turns this off).

numpy, soundfile, sounddevice (for ``--mic``) and a runtime only: no torch on the device.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from acula_edge.cli import Parser, describe, guarded
from acula_edge.device.bundle import MODALITIES, default_bundle, load_bundle
from acula_edge.device.listen.decisions import Decider
from acula_edge.device.listen.engine import Listener, Recorder, run
from acula_edge.device.listen.output import Output, print_summary
from acula_edge.device.listen.quality import QualityConfig
from acula_edge.device.listen.sources import DemoSource, DeviceLost, FileSource, MicSource, Source, input_devices
from acula_edge.device.runtime import list_backends, load_model
from acula_edge.device.zeroshot import DEFAULT_TEMPERATURE
from acula_edge.errors import AculaError

#: ``embed(checkpoint, texts) -> [K, D]`` prompt embeddings in the checkpoint's aligned space
PromptEmbedder = Callable[[str, list[str]], np.ndarray]


def _thresholds(bundle, overrides: Sequence[str], extra: Sequence[str], chosen: Sequence[str] = (),
                modality: str | None = None) -> dict[str, float]:
    """Each head's threshold: the bundle's (0.5 where it has none), then ``HEAD=P`` overrides; only the
    ``chosen`` heads when any are named, and only those that screen ``modality`` when it is given."""
    names = [h["name"] for h in bundle.heads]
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise AculaError(f"--head {unknown[0]}: the bundle's heads are {', '.join(names) or '(none)'}")
    heads = bundle.screening(modality)
    if not heads:
        held = sorted({h.get("modality") or "any" for h in bundle.heads})
        raise AculaError(f"--modality {modality}: no head of this bundle screens {modality} recordings "
                         f"(they screen {', '.join(held) or 'nothing'})")
    other = [c for c in chosen if c not in {h["name"] for h in heads}]
    if other:
        raise AculaError(f"--head {other[0]} does not screen {modality} recordings (see --modality)")
    out = {h["name"]: float(h.get("threshold") if h.get("threshold") is not None else 0.5) for h in heads
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


def _parser() -> Parser:
    p = Parser(prog="python -m acula_edge.listen", description=describe(__doc__))
    src = p.add_argument_group("source (one of)")
    src.add_argument("--mic", action="store_true", help="live audio from an input device")
    src.add_argument("--file", metavar="PATH", help="a recording, played at real time")
    src.add_argument("--demo", action="store_true", help="a synthetic stream of lung, heart, cough and breath clips")
    src.add_argument("--list-devices", action="store_true", help="list input devices and exit")
    src.add_argument("--self-test", action="store_true", help="run every model file of the bundle that this machine "
                     "has a runtime for on the bundle's reference windows, compare with its exporter's outputs (one "
                     "line per file) and exit, non-zero on a failure")
    src.add_argument("--device", help="input device name or index (default: the system's default input)")
    src.add_argument("--samplerate", type=int, metavar="HZ",
                     help="capture rate in Hz (default: the device's native rate)")
    src.add_argument("--no-realtime", action="store_true", help="--file/--demo: as fast as the loop takes it")
    src.add_argument("--duration", type=float, metavar="S",
                     help="stop after this many seconds of audio (default: until the source ends or Ctrl-C)")
    m = p.add_argument_group("model")
    m.add_argument("--bundle", help="the bundle folder (default: the package's demonstration bundle)")
    m.add_argument("--backend", help=f"inference backend: {', '.join(list_backends())} (default: onnx where "
                   "onnxruntime is installed, else tflite)")
    m.add_argument("--precision", choices=("int8", "fp32"),
                   help="the model file's precision (default: the bundle's default_precision, the file its exporter "
                   "measured faster; int8 when an older bundle holds one)")
    m.add_argument("--trusted-key", metavar="PUB.pem", help="refuse a bundle that this Ed25519 public key did not sign "
                   "(python -m export sign), or that changed after signing")
    m.add_argument("--checkpoint", help="the torch backend's checkpoint (default: the bundle's source)")
    m.add_argument("--threads", type=int, default=1, help="inference threads (default: %(default)s)")
    m.add_argument("--warmup", type=int, default=2, help="model runs before the first report (default: %(default)s)")
    d = p.add_argument_group("decisions")
    d.add_argument("--hop", type=float, metavar="S", help="seconds between windows (default: the bundle's)")
    d.add_argument("--head", action="append", default=[], metavar="NAME", help="decide and show only these heads "
                   "(repeat; default: every head of the bundle)")
    d.add_argument("--modality", choices=MODALITIES, help="what is being listened to: score only the heads that "
                   "screen it (a lung recording gets no heart head's score; default: a bundle with a modality head "
                   "routes each window by it, and windows of no known modality get no score; else every head)")
    d.add_argument("--no-events", action="store_true", help="do not report event findings (wheeze-like or "
                   "crackle-like sounds with their time spans), where the bundle's model gives them")
    d.add_argument("--threshold", action="append", default=[], metavar="HEAD=P",
                   help="override a head's threshold (repeat; default: the bundle's, 0.5 where it has none)")
    d.add_argument("--smooth", type=int, default=Decider.smooth, metavar="N",
                   help="windows averaged per decision (default: %(default)s)")
    d.add_argument("--hysteresis", type=float, default=Decider.hysteresis, metavar="P",
                   help="after an event, the smoothed score must drop below the threshold minus this to re-arm "
                   "(default: %(default)s)")
    d.add_argument("--refractory", type=float, default=Decider.refractory_s, metavar="S",
                   help="seconds after an event before the same head's next (default: %(default)s)")
    d.add_argument("--prompt", action="append", default=[], metavar="TEXT",
                   help="a zero-shot answer (repeat; default: none, no zero-shot question)")
    g = p.add_argument_group("signal quality (dBFS)")
    qc = QualityConfig()
    g.add_argument("--silence-db", type=float, default=qc.silence_db, metavar="DB",
                   help="a window below this RMS level is silence and gets no score (default: %(default)s)")
    g.add_argument("--low-db", type=float, default=qc.low_db, metavar="DB",
                   help="a window below this RMS level is too quiet to score (default: %(default)s)")
    o = p.add_argument_group("output")
    o.add_argument("--json", action="store_true", help="one JSON object per window, event and the summary")
    o.add_argument("--plain", action="store_true", help="plain lines even on a terminal (default: a live view "
                   "on a terminal, plain lines otherwise)")
    o.add_argument("--record", metavar="OUT.wav", help="keep the captured audio (16-bit WAV at the source's rate)")
    o.add_argument("--overwrite", action="store_true", help="--record may replace an existing file")
    return p


def _check_args(a, p: Parser) -> None:
    sources = [n for n in ("mic", "file", "demo") if getattr(a, n)]
    if a.list_devices or a.self_test:
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
    bundle_path = a.bundle or default_bundle()
    if a.trusted_key:
        from acula_edge.device.signing import check_signature

        check_signature(bundle_path, a.trusted_key)
    if a.self_test:
        return _self_test(load_bundle(bundle_path), a.threads)
    mode = "json" if a.json else ("live" if sys.stdout.isatty() and not a.plain else "plain")

    source: Source
    if a.mic:
        source = MicSource(a.device, a.samplerate, a.duration)
    elif a.file:
        if Path(a.file).is_dir():
            raise AculaError(f"{a.file}: is a folder, not an audio file")
        if not Path(a.file).is_file():
            raise AculaError(f"{a.file}: no such file")
        source = FileSource(a.file, not a.no_realtime, a.duration)
    else:
        source = DemoSource(not a.no_realtime, a.duration)
    bundle = load_bundle(bundle_path)
    model = load_model(bundle, a.backend, a.precision, a.threads, a.checkpoint)
    prompts = _prompts(bundle, a.prompt, a.checkpoint, embed_prompts)
    extra = [f"prompt:{t}" for t in prompts[0]] if prompts else []
    thresholds = _thresholds(bundle, a.threshold, extra, a.head, a.modality)
    deciders = [Decider(h, thresholds[h], a.smooth, a.hysteresis, a.refractory) for h in thresholds]
    temperature = float((bundle.meta.get("prompts") or {}).get("temperature", DEFAULT_TEMPERATURE))
    listener = Listener(model, bundle, a.hop or bundle.meta["hop_s"], deciders, source.rate,
                        QualityConfig(silence_db=a.silence_db, low_db=a.low_db), prompts, temperature, a.modality,
                        events=not a.no_events)
    routing = "forced" if a.modality else ("auto" if bundle.modalities else "none")
    kinds = listener.timeline.kinds if listener.timeline else []
    output = Output(mode, list(thresholds), thresholds)

    listener.warm_up(a.warmup)
    recorder = Recorder(a.record, source.rate, a.overwrite) if a.record else None
    output.emit({"type": "start", "bundle": str(bundle.path), "name": bundle.meta["name"], "backend": model.backend,
                 "model": model.file, "precision": model.precision, "source": source.name,
                 "source_rate": source.rate, "sample_rate": bundle.sample_rate, "window_s": bundle.meta["window_s"],
                 "hop_s": listener.windower.hop / bundle.sample_rate, "thresholds": thresholds,
                 "modality": a.modality, "routing": routing, "event_kinds": list(kinds)}
                if mode == "json" else
                {"type": "note", "text": f"listening to {source.name} with {bundle.meta['name']} "
                 f"({model.backend} {model.precision}, {model.file})"
                 + (f", {a.modality} heads only" if a.modality else "")
                 + (f", routing each window to {' or '.join(bundle.modalities)}" if routing == "auto" else "")
                 + (f", finding {' and '.join(k + '-like' for k in kinds)} sounds" if kinds else "")
                 + f"; window {bundle.meta['window_s']:g} s, hop "
                 f"{listener.windower.hop / bundle.sample_rate:g} s; Ctrl-C stops"})

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        summary, ended = run(listener, source, output, recorder)
    finally:
        signal.signal(signal.SIGTERM, previous)
    print_summary(summary, mode, sys.stdout if mode == "json" else sys.stderr)
    if isinstance(ended, KeyboardInterrupt):
        print("stopped (interrupted)", file=sys.stderr)
        return 130
    if isinstance(ended, AculaError):
        print(f"error: {ended}", file=sys.stderr)
        return 1 if isinstance(ended, DeviceLost) else 2
    return 0


def _self_test(bundle, threads: int) -> int:
    """``--self-test``: one line per model file; 1 when one fails or none could run."""
    from acula_edge.device.selftest import describe, run_self_test

    results = run_self_test(bundle, threads)
    tol = bundle.meta["self_test"]["tolerance"]
    print(f"self-test of {bundle.meta['name']} ({bundle.path}): {bundle.meta['self_test']['windows']} reference windows; "
          "largest difference allowed " + ", ".join(f"{p} {t['embedding']:g} (embedding) / {t['scores']:g} (scores)"
                                                    for p, t in sorted(tol.items())))
    for r in results:
        print(describe(r))
    failed = [r["file"] for r in results if r["status"] == "FAIL"]
    passed = sum(r["status"] == "ok" for r in results)
    if failed or not passed:
        print(f"error: self-test failed: {', '.join(failed)}" if failed else
              "error: self-test: no model file could run here (install onnxruntime or ai-edge-litert)", file=sys.stderr)
        return 1
    print(f"self-test passed: {passed} of {len(results)} files"
          + (f" ({len(results) - passed} skipped: no runtime here)" if passed < len(results) else ""))
    return 0


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
