"""Does int8 pay? Every int8 variant of one student against its fp32 file, timed in one process.

    python -m benchmarks.int8 --checkpoint runs/demo/student/student.safetensors \\
        --calibration runs/demo/data/train.jsonl --data runs/demo/data/test.jsonl

The student's whole graph (waveform in) as ONNX fp32 and as onnxruntime int8 in both formats (QDQ,
QOperator), with per-channel and per-tensor weight scales, quantizing every op it can or only the
convolutions (the front end, the input normalisation and what follows the last convolution stay
fp32 in all of them, as in a bundle); and as TFLite fp32 and ai-edge-quantizer int8. For each
file: its size, its median latency at batch 1 on one thread (calls taken in turns, so that every
file sees the same machine), the speed-up against the fp32 file of its format, and how far it
moves from that file on windows of ``--data``: the centred embedding cosine (how windows differ,
kept or not) and the largest change of a head's score. Output: ``OUT.json`` and ``OUT.md``
(default ``benchmarks/results/int8``).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from acula_edge.cli import Parser, describe, guarded

#: onnxruntime int8 variants: name -> quantize_int8 options
ONNX_VARIANTS = {
    "qdq-per-channel": {"fmt": "qdq", "per_channel": True},  # what bundles ship
    "qdq-per-tensor": {"fmt": "qdq", "per_channel": False},
    "qdq-per-channel-conv": {"fmt": "qdq", "per_channel": True, "op_types": ["Conv"]},
    "qoperator-per-channel": {"fmt": "qoperator", "per_channel": True},
    "qoperator-per-tensor": {"fmt": "qoperator", "per_channel": False},
    "qoperator-per-tensor-conv": {"fmt": "qoperator", "per_channel": False, "op_types": ["Conv"]},
}


def build(model, calibration: np.ndarray, calibrator: str, work: Path, tflite: bool) -> dict[str, Path]:
    """Every file of an :class:`export.model.EdgeModel`, by name (``onnx-fp32``, ``onnx-int8-VARIANT``,
    ``tflite-fp32``, ``tflite-int8``)."""
    import torch

    from export.onnx import export_onnx, quantize_int8

    fp32 = export_onnx(model, work / "fp32.onnx", torch.zeros(2, model.samples), "waveform", model.names)
    files = {"onnx-fp32": fp32}
    for name, opts in ONNX_VARIANTS.items():
        print(f"quantizing {name}", file=sys.stderr, flush=True)
        files[f"onnx-int8-{name}"] = quantize_int8(fp32, work / f"{name}.onnx", calibration, calibrator=calibrator, **opts)
    if tflite:
        from export.tflite import NETWORK_SCOPE, convert, quantize

        files["tflite-fp32"] = convert(model, work / "fp32.tflite", torch.zeros(1, model.samples), "waveform", model.names)
        files["tflite-int8"] = quantize(files["tflite-fp32"], work / "int8.tflite", calibration, NETWORK_SCOPE)
    return files


def runs(files: dict[str, Path]) -> dict[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]:
    """One-thread run functions of the files."""
    from acula_edge.device.runtime import session, tflite_runner

    out = {}
    for name, path in files.items():
        if name.startswith("onnx"):
            s = session(path, 1)
            out[name] = lambda w, s=s: tuple(s.run(None, {"waveform": w}))
        else:
            out[name] = tflite_runner(path, 1)
    return out


def fidelity(fp32: tuple[np.ndarray, np.ndarray], other: tuple[np.ndarray, np.ndarray]) -> dict[str, float]:
    """Centred embedding cosine and the largest score change of ``other`` against ``fp32`` on the same windows."""
    from acula_edge.metrics import mean_cosine

    return {"embedding_centred_cosine": round(mean_cosine(fp32[0], other[0], centred=True), 4),
            "max_score_change": round(float(np.abs(fp32[1] - other[1]).max()), 4)}


def markdown(doc: dict[str, Any]) -> str:
    """The README's int8 table."""
    lines = [f"`{doc['checkpoint']}` ({doc['frontend']}), {doc['windows']} windows of `{doc['data']}`; one thread, "
             f"batch 1, median of {doc['calls_each']} calls per file ({doc['machine']['cpu_model']}).", "",
             "| file | KiB | ms per window | speed-up vs fp32 | centred cosine to fp32 | largest score change |",
             "|---|---|---|---|---|---|"]
    for name, f in doc["files"].items():
        lines.append(f"| {name} | {f['kib']:.0f} | {f['ms']:.3f} | {f['speedup']:.2f}x | "
                     f"{f.get('embedding_centred_cosine', 1.0):.3f} | {f.get('max_score_change', 0.0):.3f} |")
    return "\n".join(lines) + "\n"


def _parser() -> Parser:
    p = Parser(prog="python -m benchmarks.int8", description=describe(__doc__))
    p.add_argument("--checkpoint", required=True, help="a student checkpoint")
    p.add_argument("--calibration", required=True, help="recordings to calibrate int8 on (a manifest)")
    p.add_argument("--data", required=True, help="recordings whose windows the files are compared on (a manifest)")
    p.add_argument("--calibrator", default="percentile", help="onnxruntime's activation ranges: minmax or percentile")
    p.add_argument("--windows", type=int, default=256, help="windows of --data to compare on")
    p.add_argument("--no-tflite", action="store_true", help="skip the TFLite files")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--calls", type=int, default=30, help="calls per file per round")
    p.add_argument("--out", default="benchmarks/results/int8", help="results prefix (.json and .md)")
    return p


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = _parser().parse_args(argv)
    from acula_edge.data.records import read_manifest
    from acula_edge.device.runtime import median_latency
    from acula_edge.frontend import frontend_name
    from benchmarks.common import machine, save_with_table, versions
    from export.model import edge_model
    from export.onnx import waveform_windows

    model = edge_model(a.checkpoint)  # the student's own window and front end
    fe, samples = model.fe, model.samples
    with tempfile.TemporaryDirectory() as tmp:
        cal = waveform_windows(read_manifest(a.calibration), fe.sample_rate, samples, limit=256)
        files = build(model, cal, a.calibrator, Path(tmp), tflite=not a.no_tflite)
        test = waveform_windows(read_manifest(a.data), fe.sample_rate, samples, limit=a.windows, seed=1)
        fns = runs(files)
        outputs = {n: tuple(np.concatenate(parts) for parts in zip(*(f(test[i:i + 1]) for i in range(len(test)))))
                   for n, f in fns.items()}
        print("timing", file=sys.stderr, flush=True)
        one = test[:1]
        ms = median_latency({n: (lambda f=f: f(one)) for n, f in fns.items()}, rounds=a.rounds, each=a.calls)
        doc: dict[str, Any] = {"checkpoint": a.checkpoint, "frontend": frontend_name(fe) or "custom",
                               "data": a.data, "windows": len(test), "calibration": a.calibration,
                               "calibrator": a.calibrator, "calls_each": a.rounds * a.calls, "files": {}}
        for name, path in files.items():
            base = "onnx-fp32" if name.startswith("onnx") else "tflite-fp32"
            row = {"kib": round(path.stat().st_size / 1024, 1), "ms": ms[name], "speedup": round(ms[base] / ms[name], 3)}
            if name != base:
                row.update(fidelity(outputs[base], outputs[name]))
            doc["files"][name] = row
    doc.update(machine=machine(), versions=versions("onnxruntime", "ai_edge_litert", "ai_edge_quantizer", "torch"))
    save_with_table(doc, a.out, "benchmarks.int8", argv, markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
