"""The students' front end: what each registered front end costs and what it keeps, in one run.

    python -m benchmarks.frontend --run runs/demo [--frontend NAME ...] [--cost-only]

For every front end (:mod:`acula_edge.frontend`), a student distilled with it: the run's own
``distill`` stage (same teacher, training subjects, recipe and seed; the run's student where its
front end is the run's) with only ``--frontend`` changed, written to ``RUN/frontends/NAME/`` and
skipped when up to date. Then, measured here in one process:

- cost: multiply-accumulates per second of audio of the front end (the DFT as the exported graph
  computes it) and of the network; the bytes of the exported ONNX fp32 (compact front end) and
  int8 (onnxruntime, the run's calibrator) files and of the TFLite fp32 file; their latency at
  batch 1 on one thread (median over calls taken in turns, so that every file sees the same
  machine);
- accuracy: each student's AUROC per task on the run's test subjects (window scores averaged per
  recording) with a subject-bootstrap interval, and the paired interval of its difference from the
  reference front end (``wide-16k``) on the same recordings. Nothing here chooses anything on
  these numbers; they are the comparison the README reports.

``--cost-only`` trains nothing: the run's own network behind each front end, for the cost columns.

Output: ``OUT.json`` and ``OUT.md`` (default ``benchmarks/results/frontend``).
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from acula_edge.cli import Parser, describe, guarded
from acula_edge.errors import AculaError

REFERENCE = "wide-16k"


def run_config(run: Path):
    """The pipeline settings the run was made with (``RUN/config.json``)."""
    from acula_edge.config import read_config
    from acula_edge.pipeline import CONFIG_NAME, RunConfig

    if not (run / CONFIG_NAME).is_file():
        raise AculaError(f"--run {run}: not a pipeline run folder (it has no {CONFIG_NAME})")
    return read_config(run / CONFIG_NAME, RunConfig, "pipeline")


def students(run: Path, cfg, names: Sequence[str]) -> dict[str, Path]:
    """Each front end's student checkpoint, distilled by the run's distill stage (its command exactly,
    threads included, so that a rerun finds it up to date) when missing."""
    from acula_edge.checkpoint import read_sidecar
    from acula_edge.frontend import get_frontend
    from acula_edge.pipeline import Run, stage_distill
    from acula_edge.stages import Runner

    own = run / "student" / "student.safetensors"
    out: dict[str, Path] = {}
    stages = []
    own_frontend = read_sidecar(own)["frontend"] if own.is_file() else None  # none yet: every student is made here
    for name in names:
        if get_frontend(name).to_dict() == own_frontend:
            out[name] = own
            continue
        r = Run(run, dataclasses.replace(cfg, settings=dataclasses.replace(cfg.settings, frontend=name)), 1)
        step = stage_distill(r)
        folder = run / "frontends" / name
        step.command[step.command.index("--out") + 1] = str(folder)
        step.outputs = [folder / "student.safetensors", folder / "student.json"]
        step.resumable = folder
        step.progress = (folder / "metrics.jsonl", cfg.settings.distill_epochs)
        stages.append((f"distill-{name}", step))
        out[name] = step.outputs[0]
    if stages:
        Runner(run, 1, cfg.settings.max_steps, state=".frontends").run(stages)
    return out


def cost(student, fe) -> dict[str, Any]:
    """Multiply-accumulates per second of audio of the front end and of the network."""
    import torch

    from acula_edge.frontend import LogMel, used_bins
    from acula_edge.models import count_macs

    samples = fe.num_samples(student.config.window_frames)
    per_s = fe.sample_rate / samples
    first, stop = used_bins(fe)
    return {"sample_rate": fe.sample_rate, "n_fft": fe.n_fft, "hop_length": fe.hop_length,
            "band_hz": [fe.f_min, fe.f_max], "bins": [first, stop], "window_samples": samples,
            "frontend_macs_per_s": int(count_macs(LogMel(fe), torch.zeros(1, samples)) * per_s),
            "network_macs_per_s": int(student.macs_per_window() * per_s)}


def export_files(model, work: Path, calibration: list, calibrator: str, tflite: bool) -> dict[str, Path]:
    """An :class:`export.model.EdgeModel` as ONNX fp32 (compact front end) and int8, and TFLite fp32."""
    import torch

    from export.onnx import compact_front_end, export_onnx, quantize_int8, waveform_windows

    work.mkdir(parents=True, exist_ok=True)
    fp32 = export_onnx(model, work / "model_fp32.onnx", torch.zeros(2, model.samples), "waveform", model.names)
    cal = waveform_windows(calibration, model.fe.sample_rate, model.samples, limit=64)
    files = {"onnx-fp32": fp32, "onnx-int8": quantize_int8(fp32, work / "model_int8.onnx", cal, calibrator=calibrator)}
    compact_front_end(fp32, model.fe.to_dict())
    if tflite:
        from export.tflite import convert

        files["tflite-fp32"] = convert(model, work / "model_fp32.tflite", torch.zeros(1, model.samples), "waveform",
                                       model.names)
    return files


def latencies(files: dict[str, dict[str, Path]], rounds: int, calls: int) -> dict[str, dict[str, float]]:
    """Median ms per call at batch 1, one thread, of every file; ``rounds`` turns of ``calls`` calls each."""
    from acula_edge.device.runtime import median_latency, session, tflite_runner

    rng = np.random.default_rng(0)
    runs: dict[str, Callable[[], Any]] = {}
    for name, by_kind in files.items():
        for kind, path in by_kind.items():
            if kind.startswith("onnx"):
                s = session(path, 1)
                x = rng.uniform(-0.3, 0.3, (1, s.get_inputs()[0].shape[1])).astype(np.float32)
                runs[f"{name}/{kind}"] = lambda s=s, x=x: s.run(None, {"waveform": x})
            else:
                r = tflite_runner(path, 1)
                x = rng.uniform(-0.3, 0.3, (1, int(np.prod(tflite_input_shape(path))))).astype(np.float32)
                runs[f"{name}/{kind}"] = lambda r=r, x=x: r(x)
    out: dict[str, dict[str, float]] = {}
    for key, ms in median_latency(runs, rounds, calls).items():
        name, kind = key.split("/")
        out.setdefault(name, {})[kind] = ms
    return out


def tflite_input_shape(path: Path) -> list[int]:
    """The input shape of a .tflite file's serving signature."""
    from acula_edge.device.runtime import signature

    r, name = signature(path, 1)
    return [int(n) for n in r.get_input_details()[name]["shape"]]


def accuracy(checkpoints: dict[str, Path], test: list, reference: str, n_boot: int,
             threads: int) -> dict[str, dict[str, Any]]:
    """Each student's AUROC per head on ``test`` with intervals, and the paired difference from ``reference``."""
    from acula_edge.encoders import TorchEncoder
    from acula_edge.metrics import auroc, bootstrap_ci, paired_delta_ci
    from acula_edge.models.students import WindowedStudent, load_student
    from distill.trainer import head_labels

    scores, heads = {}, None
    for name, ckpt in checkpoints.items():
        student, meta = load_student(str(ckpt))
        names = [h["name"] for h in meta.get("heads") or []]
        if heads is None:
            heads = names
        elif names != heads:
            raise AculaError(f"{ckpt}: heads {names} differ from {heads}")
        enc = TorchEncoder(name, WindowedStudent(student), meta["frontend"], threads=threads)
        scores[name] = enc.run(test, enc.model.stream_scores)
    y = head_labels(test, tuple(heads or ()), need_both=False)
    subjects = np.array([r.subject for r in test])
    out: dict[str, dict[str, Any]] = {n: {} for n in checkpoints}
    for j, head in enumerate(heads or []):
        known = ~np.isnan(y[:, j])
        yk, gk = y[known, j].astype(int), subjects[known]
        for name, p in scores.items():
            cell = {"auroc": round(auroc(yk, p[known, j]), 4),
                    "ci": [round(v, 4) for v in bootstrap_ci(yk, p[known, j], gk, n_boot)],
                    "recordings": int(known.sum()), "subjects": int(np.unique(gk).size), "positives": int(yk.sum())}
            if reference in scores and name != reference:
                ref = scores[reference][known, j]
                cell["delta"] = round(cell["auroc"] - auroc(yk, ref), 4)
                cell["delta_ci"] = [round(v, 4) for v in paired_delta_ci(yk, ref, p[known, j], gk, n_boot)]
            out[name][head] = cell
    return out


def markdown(doc: dict[str, Any]) -> str:
    """The README's front-end table."""
    heads = sorted({h for row in doc["frontends"].values() for h in row.get("accuracy", {})})
    cols = ["front end", "rate / DFT / hop", "band", "front end M MAC/s", "network M MAC/s", "ONNX fp32 ms/s",
            "ONNX int8 ms/s", "TFLite fp32 ms/s", "ONNX fp32 KiB", *(f"{h} AUROC [95% CI]; vs {doc['reference']}"
                                                                      for h in heads)]
    what = ("the run's network behind each front end (cost only)" if doc["cost_only"]
            else f"AUROC on {doc.get('test_recordings', 0)} test recordings")
    lines = [f"Run `{doc['run']}`, one thread, batch 1, median of {doc['calls_each']} calls per file "
             f"({doc['machine'].get('cpu_model', '')}); {what}.", "",
             "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, row in doc["frontends"].items():
        c, ms, kib = row["cost"], row.get("ms_per_s", {}), row.get("kib", {})
        cells = [f"`{name}`", f"{c['sample_rate'] / 1000:g} kHz / {c['n_fft']} / {c['hop_length']}",
                 f"{c['band_hz'][0]:g}-{c['band_hz'][1]:g} Hz", f"{c['frontend_macs_per_s'] / 1e6:.2f}",
                 f"{c['network_macs_per_s'] / 1e6:.2f}", *(f"{ms[k]:.3f}" if k in ms else "" for k in
                                                          ("onnx-fp32", "onnx-int8", "tflite-fp32")),
                 f"{kib['onnx-fp32']:.0f}" if "onnx-fp32" in kib else ""]
        for h in heads:
            a = row.get("accuracy", {}).get(h)
            if not a:
                cells.append("")
                continue
            d = (f"; {a['delta']:+.3f} [{a['delta_ci'][0]:+.3f}, {a['delta_ci'][1]:+.3f}]" if "delta" in a else "")
            cells.append(f"{a['auroc']:.3f} [{a['ci'][0]:.2f}, {a['ci'][1]:.2f}]{d}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _parser() -> Parser:
    p = Parser(prog="python -m benchmarks.frontend", description=describe(__doc__))
    p.add_argument("--run", required=True, help="a pipeline run folder (its teacher, splits and recipe)")
    p.add_argument("--frontend", action="append", default=[], help="a registered front end (repeat; default all)")
    p.add_argument("--reference", default=REFERENCE, help=f"the front end the others are compared with (default {REFERENCE})")
    p.add_argument("--cost-only", action="store_true", help="no training and no accuracy: the run's student's "
                   "network under each front end, for the cost columns")
    p.add_argument("--no-tflite", action="store_true", help="skip the TFLite files (no 'tflite' extra)")
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--calls", type=int, default=30, help="calls per file per round")
    p.add_argument("--threads", type=int, help="CPU threads for scoring (default 1; training uses the run's)")
    p.add_argument("--out", default="benchmarks/results/frontend", help="results prefix (.json and .md)")
    return p


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = _parser().parse_args(argv)
    from acula_edge.data.records import read_manifest
    from acula_edge.frontend import FrontendConfig, get_frontend, list_frontends
    from acula_edge.data.tasks import get_task
    from acula_edge.models.students import load_student
    from benchmarks.common import machine, save_with_table, versions
    from export.model import EdgeModel

    run = Path(a.run)
    names = a.frontend or list_frontends()
    for n in [*names, a.reference]:
        get_frontend(n)
    if a.reference not in names:
        names = [a.reference, *names]
    threads = a.threads or 1
    cfg = run_config(run)
    if a.cost_only:
        own = run / "student" / "student.safetensors"
        if not own.is_file():
            raise AculaError(f"{run}: no student checkpoint at {own}")
        checkpoints = {n: own for n in names}
    else:
        checkpoints = students(run, cfg, names)
    train = read_manifest(run / "data" / "train.jsonl")
    test = read_manifest(run / "data" / "test.jsonl")
    doc: dict[str, Any] = {"run": str(run), "reference": a.reference, "cost_only": a.cost_only, "frontends": {}}
    files: dict[str, dict[str, Path]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            student, meta = load_student(str(checkpoints[name]))
            # with --cost-only, the run's network under each front end: only the cost columns mean anything
            fe = get_frontend(name) if a.cost_only else FrontendConfig.from_dict(meta["frontend"])
            print(f"exporting {name}", file=sys.stderr, flush=True)
            files[name] = export_files(EdgeModel(student, fe.to_dict()).eval(), Path(tmp) / name, train,
                                       cfg.settings.calibrator, tflite=not a.no_tflite)
            doc["frontends"][name] = {"checkpoint": str(checkpoints[name]), "cost": cost(student, fe),
                                      "kib": {k: round(p.stat().st_size / 1024, 1) for k, p in files[name].items()}}
        print("timing", file=sys.stderr, flush=True)
        ms = latencies(files, a.rounds, a.calls)
    for name, row in doc["frontends"].items():
        seconds = row["cost"]["window_samples"] / row["cost"]["sample_rate"]
        row["ms_per_window"] = ms[name]
        row["ms_per_s"] = {k: round(v / seconds, 4) for k, v in ms[name].items()}
    if not a.cost_only:
        tasks = sorted({h["name"] for p in checkpoints.values() for h in load_student(str(p))[1].get("heads") or []})
        test = [r for r in test if r.dataset in {get_task(t).dataset for t in tasks}]
        acc = accuracy(checkpoints, test, a.reference, 1000, threads)
        for name in names:
            doc["frontends"][name]["accuracy"] = acc[name]
        doc["test_recordings"] = len(test)
    doc.update(calls_each=a.rounds * a.calls, machine=machine(), versions=versions("torch", "onnxruntime", "ai_edge_litert"))
    save_with_table(doc, a.out, "benchmarks.frontend", argv, markdown(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
