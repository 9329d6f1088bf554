"""What ``python -m acula_edge.listen`` costs on this machine, per backend and precision of a bundle.

    python -m benchmarks.listen --bundle runs/export/bundle-ort

For each model file, two runs of the listen CLI itself on the synthetic demo stream, one inference
thread, the bundle's default hop:
- as fast as possible (``--no-realtime``, ``--duration`` of audio): per-window processing time
  (signal-quality gate and inference) p50, p95 and max, and the real-time factor;
- in real time (``--realtime-s`` of audio): the loop's CPU use, in percent of one core, with the
  dropped blocks.
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


def markdown(doc: dict[str, Any]) -> str:
    rows = ["| model | windows | p50 ms | p95 ms | max ms | real-time factor | CPU % (real time) | dropped |",
            "|---|---|---|---|---|---|---|---|"]
    for v in doc["variants"]:
        f, r = v["fast"], v["realtime"]
        rows.append(f"| {v['backend']} {v['precision']} | {f['windows']} | {f['latency_ms']['p50']:.2f} | "
                    f"{f['latency_ms']['p95']:.2f} | {f['latency_ms']['max']:.2f} | {f['real_time_factor']:.4f} | "
                    f"{r['cpu_percent']:.1f} | {r['dropped_blocks']} |")
    return (f"# listen: per-window cost of `{doc['bundle_name']}` on {doc['machine']['cpu_model']}\n\n"
            f"One inference thread; window {doc['window_s']} s, hop {doc['hop_s']} s; the synthetic demo stream "
            f"({doc['fast_audio_s']:g} s as fast as possible, {doc['realtime_s']:g} s in real time).\n\n"
            + "\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.listen", description=__doc__.splitlines()[0])
    p.add_argument("--bundle", default="runs/export/bundle-ort")
    p.add_argument("--duration", type=float, default=600.0, help="seconds of audio for the latency runs")
    p.add_argument("--realtime-s", type=float, default=30.0, help="seconds of audio for the CPU-use runs")
    p.add_argument("--out", default="benchmarks/results/listen", help="results prefix (.json and .md)")
    a = p.parse_args(argv)
    from acula_edge.bundle import load_bundle
    from acula_edge.data.records import atomic_write_text

    b = load_bundle(a.bundle)
    doc: dict[str, Any] = {"bundle": a.bundle, "bundle_name": b.meta["name"], "window_s": b.meta["window_s"],
                           "hop_s": b.meta["hop_s"], "fast_audio_s": a.duration, "realtime_s": a.realtime_s,
                           "threads": 1, "machine": machine(), "versions": versions("numpy", "onnxruntime", "ai_edge_litert", "sounddevice"), "variants": []}
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
