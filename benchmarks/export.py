"""Bundles of a distilled student, verified on held-out real recordings.

    python -m benchmarks.export --checkpoint runs/distill/mn-s/student.safetensors \\
        --calibration runs/distill/students.jsonl --data runs/export/shared.jsonl

Exports the student twice (``python -m export``): ONNX and TFLite with onnxruntime's and
ai-edge-quantizer's int8 (and the full-integer TFLite pair), and ONNX with Neural Compressor's int8;
runs ``python -m export verify`` on each against ``--data`` (the subjects the student was trained on
are left out by the verifier) and saves per file: size, largest difference to torch, centred
embedding cosine to torch and each head's AUROC, with the held-out metrics of the torch model.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from benchmarks.common import machine, run, save_result, versions

VARIANTS = {"ort": "onnx,tflite", "inc": "onnx"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.export", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="runs/distill/mn-s/student.safetensors")
    p.add_argument("--calibration", default="runs/distill/students.jsonl", help="recordings to calibrate int8 on")
    p.add_argument("--data", default="runs/export/shared.jsonl", help="recordings to verify on (held-out subjects)")
    p.add_argument("--work", default="runs/export", help="where the bundles go")
    p.add_argument("--out", default="benchmarks/results/export", help="results prefix (.json and .md)")
    a = p.parse_args(argv)
    from acula_edge.data.records import atomic_write_text

    py, commands = [sys.executable, "-m"], []
    doc: dict[str, Any] = {"checkpoint": a.checkpoint, "calibration": a.calibration, "data": a.data, "bundles": {}}
    for quantizer, formats in VARIANTS.items():
        bundle = Path(a.work) / f"bundle-{quantizer}"
        run(py + ["export", "--checkpoint", a.checkpoint, "--out", str(bundle), "--formats", formats, "--int8",
                  "--quantizer", quantizer, "--calibration", a.calibration, "--evaluate", a.data, "--overwrite"],
            commands)
        cmd = py + ["export", "verify", str(bundle), "--data", a.data, "--json"]
        commands.append(shlex.join(["python", *cmd[1:]]))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode not in (0, 1):
            raise SystemExit(f"error: verify failed: {r.stderr.strip()}")
        report = json.loads(r.stdout)
        meta = json.loads((bundle / "bundle.json").read_text())
        for name, f in report["files"].items():
            f["bytes"] = {part: meta["files"][part]["bytes"] for part in name.split("+")}
        doc["bundles"][quantizer] = {"verify": report, "metrics": meta["metrics"]}
    doc.update(commands=commands, machine=machine(), versions=versions())
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_result(doc, str(out.with_suffix(".json")), "benchmarks.export", list(sys.argv[1:] if argv is None else argv))
    atomic_write_text(out.with_suffix(".md"), markdown(doc))
    print(markdown(doc))
    return 0


def markdown(doc: dict[str, Any]) -> str:
    """The per-file table of the README."""
    first = doc["bundles"]["ort"]["verify"]
    heads = list(first["torch"]["auroc"])
    lines = [f"Verified on {first['recordings']} recordings of `{doc['data']}` "
             f"({first['trained_subjects_left_out']} subjects seen in training left out).", "",
             "| file | int8 by | KiB | max abs diff (embedding, scores) | centred cosine | "
             + " | ".join(f"{h} AUROC" for h in heads) + " |",
             "|---|---|---|---|---|" + "---|" * len(heads),
             "| torch (source) | | | | | " + " | ".join(f"{first['torch']['auroc'][h]:.3f}" for h in heads) + " |"]
    for quantizer, b in doc["bundles"].items():
        for name, f in b["verify"]["files"].items():
            if quantizer == "inc" and f["precision"] == "fp32":
                continue  # the same fp32 file as the other bundle
            by = {"fp32": "", "int8": "Neural Compressor" if quantizer == "inc" else
                  ("ai-edge-quantizer" if name.endswith(".tflite") else "onnxruntime")}[f["precision"]]
            if "error" in f:  # verify reports a file that does not run, and so does the table
                lines.append(f"| {name} | {by} | | does not run: {f['error']} | |" + " |" * len(heads))
                continue
            d = f["max_abs_diff"]
            size = " + ".join(f"{n / 1024:.0f}" for n in f["bytes"].values())
            lines.append(f"| {name} | {by} | {size} | {d['embedding']:.1e}, {d['scores']:.1e} | "
                         f"{f['embedding_centred_cosine']:.4f} | " + " | ".join(f"{f['auroc'][h]:.3f}" for h in heads) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
