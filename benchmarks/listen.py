"""What ``python -m acula_edge.listen`` costs on this machine, per backend and precision of a bundle.

    python -m benchmarks.listen --bundle runs/export/bundle-ort

For each model file, two runs of the listen CLI itself on the synthetic demo stream, one inference
thread, the bundle's default hop:
- as fast as possible (``--no-realtime``, ``--duration`` of audio): per-window processing time
  (signal-quality gate and inference) p50, p95 and max, and the real-time factor;
- in real time (``--realtime-s`` of audio): the loop's CPU use, in percent of one core, with the
  dropped blocks.

With ``--data MANIFEST`` (real recordings), it also counts how the signal-quality gate classes
their windows at the bundle's rate, window and hop, per dataset: how often the default levels
refuse real recordings.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import machine, save_result, versions

VARIANTS = [("onnx", "int8"), ("onnx", "fp32"), ("tflite", "int8"), ("tflite", "fp32")]


def listen(bundle: str, backend: str, precision: str, *flags: str) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "acula_edge.listen", "--demo", "--bundle", bundle, "--backend", backend,
           "--precision", precision, "--threads", "1", "--json", *flags]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed: {r.stderr.strip()[-500:]}")
    return [json.loads(line) for line in r.stdout.splitlines() if '"summary"' in line][-1]


def gate_counts(manifest: str, bundle) -> dict[str, dict[str, int]]:
    """Signal-quality statuses of every window of the manifest's recordings, per dataset."""
    from acula_edge.device.audio import load
    from acula_edge.data.records import read_manifest
    from acula_edge.device.listen import signal_quality
    from acula_edge.device.windows import cut_windows

    out: dict[str, dict[str, int]] = {}
    hop = int(round(bundle.meta["hop_s"] * bundle.sample_rate))
    for r in read_manifest(manifest):
        x, _ = load(r.path, sample_rate=bundle.sample_rate)
        counts = out.setdefault(r.dataset, {})
        for window in cut_windows(x, bundle.window_samples, hop)[1]:  # the windows listen cuts from a stream
            status = signal_quality(window)["status"]
            counts[status] = counts.get(status, 0) + 1
    return out


def markdown(doc: dict[str, Any]) -> str:
    rows = ["| model | windows | p50 ms | p95 ms | max ms | real-time factor | CPU % (real time) | dropped |",
            "|---|---|---|---|---|---|---|---|"]
    for v in doc["variants"]:
        f, r = v["fast"], v["realtime"]
        rows.append(f"| {v['backend']} {v['precision']} | {f['windows']} | {f['latency_ms']['p50']:.2f} | "
                    f"{f['latency_ms']['p95']:.2f} | {f['latency_ms']['max']:.2f} | {f['real_time_factor']:.4f} | "
                    f"{r['cpu_percent']:.1f} | {r['dropped_blocks']} |")
    text = (f"# listen: per-window cost of `{doc['bundle_name']}` on {doc['machine']['cpu_model']}\n\n"
            f"One inference thread; window {doc['window_s']} s, hop {doc['hop_s']} s; the synthetic demo stream "
            f"({doc['fast_audio_s']:g} s as fast as possible, {doc['realtime_s']:g} s in real time).\n\n"
            + "\n".join(rows) + "\n")
    if doc.get("gate"):
        statuses = ["ok", "silence", "low", "clipping", "overload"]
        text += (f"\nSignal-quality gate on the windows of `{doc['data']}`, default levels:\n\n"
                 "| dataset | windows | " + " | ".join(statuses) + " |\n|---|---|" + "---|" * len(statuses) + "\n")
        for name, counts in doc["gate"].items():
            n = sum(counts.values())
            text += f"| {name} | {n} | " + " | ".join(f"{100 * counts.get(s, 0) / n:.1f}%" for s in statuses) + " |\n"
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.listen", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="runs/export/bundle-ort")
    p.add_argument("--duration", type=float, default=600.0, help="seconds of audio for the latency runs")
    p.add_argument("--realtime-s", type=float, default=30.0, help="seconds of audio for the CPU-use runs")
    p.add_argument("--data", default="runs/export/shared.jsonl", help="real recordings for the gate counts "
                   "(a manifest; '' to skip)")
    p.add_argument("--out", default="benchmarks/results/listen", help="results prefix (.json and .md)")
    a = p.parse_args(argv)
    from acula_edge.device.bundle import load_bundle
    from acula_edge.data.records import atomic_write_text

    b = load_bundle(a.bundle)
    doc: dict[str, Any] = {"bundle": a.bundle, "bundle_name": b.meta["name"], "window_s": b.meta["window_s"],
                           "hop_s": b.meta["hop_s"], "fast_audio_s": a.duration, "realtime_s": a.realtime_s,
                           "threads": 1, "machine": machine(),
                           "versions": versions("numpy", "onnxruntime", "ai_edge_litert", "sounddevice"), "variants": [],
                           "data": a.data or None, "gate": gate_counts(a.data, b) if a.data else None}
    for backend, precision in VARIANTS:
        fast = listen(a.bundle, backend, precision, "--no-realtime", "--duration", str(a.duration))
        realtime = listen(a.bundle, backend, precision, "--duration", str(a.realtime_s))
        doc["variants"].append({"backend": backend, "precision": precision, "fast": fast, "realtime": realtime})
        print(f"{backend} {precision}: p95 {fast['latency_ms']['p95']} ms, CPU {realtime['cpu_percent']}%",
              file=sys.stderr)
    out = Path(a.out)
    save_result(doc, str(out.with_suffix(".json")), "benchmarks.listen", list(sys.argv[1:] if argv is None else argv))
    atomic_write_text(out.with_suffix(".md"), markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
