"""Accuracy against latency, size and memory, for every variant of a bundle, measured in one run.

    python -m benchmarks run --bundle runs/export/bundle-ort --bundle runs/export/bundle-inc \\
        --teacher runs/alignment/align-cka/encoder.safetensors \\
        --task sprsound-adventitious --task physionet2016-abnormal --out benchmarks/results/suite

Variants (:mod:`benchmarks.variants`): the teacher in torch, the student in torch, and every model
file of the bundles (ONNX fp32 and int8 by each quantizer, TFLite fp32 and int8, the full-integer
pair). For each one:

- **AUROC per task with a 95% interval** (subject bootstrap), on recordings of subjects that
  neither the student nor the teacher was trained on (their checkpoints list hashed training
  subjects). *Offline*: each recording cut into windows at the bundle's hop, the head's window
  probabilities averaged. *Streaming*: the recording's blocks at its own sample rate through the
  loop ``listen`` runs (streaming resampler, ring buffer, signal-quality gate); windows the gate
  refuses get no score, and a recording with none scored is counted, not scored. The teacher gets
  a logistic head per task on its aligned embedding, fitted on the recordings of the subjects the
  student was trained on (L2 chosen on a fifth of those subjects): no test subject is used to fit
  or choose anything.
- **Cost**: parameters, multiply-accumulates per second of audio (network, and the front end's DFT
  as the exported graphs compute it), bytes shipped, peak resident memory of a process running it.
- **Speed** (:mod:`benchmarks.measure`, one process per measurement, thread count pinned, warm-up
  first, medians of many calls): latency per window at batch 1 on one thread (pinned to one CPU)
  and on all cores, throughput at larger batches, and the real-time factor (compute seconds per
  second of audio at the bundle's hop, one thread).
- **Scaling**: latency and peak memory against window length (1, 2, 4, 8 s; the student re-exported
  to ONNX fp32 and int8 at each length, int8 calibrated on synthetic clips since only speed is
  measured there; a process per length) and batch size (1 to 64, in increasing order in one process
  per variant: the peak memory after each size is that of running batches up to it).

Writes ``OUT/results.json`` (with the machine, library versions and the command),
``OUT/results.md``, ``OUT/pareto.png`` and ``OUT/scaling.png``. ``--quick`` (a test's minute)
scores a subset of the test subjects with fewer timed calls and a smaller grid; its numbers are for
checking the harness, not for quoting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from acula_edge.cli import Parser, describe, guarded
from acula_edge.config import to_dict
from acula_edge.device.windows import long_enough
from acula_edge.errors import AculaError
from acula_edge.progress import progress
from benchmarks.variants import FP32_OF, Spec, Variant
from export.verify import stream_outputs

#: variants measured in the scaling grid (the others run the bundle's fixed window)
GRID = ("teacher", "student-torch", "onnx-fp32", "onnx-int8-onnxruntime")


@dataclass(frozen=True)
class Settings:
    """How much a benchmark run measures (the ``settings`` of its results)."""

    runs: int  # timed calls at batch 1 (fewer at larger batches, the same number of windows)
    warmup: int
    throughput_batches: tuple[int, ...]
    windows_s: tuple[float, ...]
    grid_batches: tuple[int, ...]
    n_boot: int
    max_test_recordings: int | None  # per task; None: every held-out recording
    max_fit_recordings: int | None  # per task, for the teacher's heads


FULL = Settings(200, 20, (8, 32), (1.0, 2.0, 4.0, 8.0), (1, 2, 4, 8, 16, 32, 64), 1000, None, None)
QUICK = Settings(12, 2, (8,), (2.0,), (1, 8), 100, 16, 32)
#: by name (the pipeline's ``bench`` setting)
SETTINGS: dict[str, Settings] = {"full": FULL, "quick": QUICK}


# ----------------------------------------------------------------------------- data


def subject_subset(records: list, limit: int | None) -> list:
    """Whole subjects, in the order of their hashes, until ``limit`` recordings hold both classes."""
    from acula_edge.checkpoint import subject_hash

    if limit is None:
        return records
    by_subject: dict[str, list] = {}
    for r in records:
        by_subject.setdefault(r.subject, []).append(r)
    out: list = []
    for s in sorted(by_subject, key=subject_hash):
        out += by_subject[s]
        if len(out) >= limit and len({r.labels["_task"] for r in out}) == 2:
            break
    return out


def task_data(tasks: dict, overrides: dict[str, str], root: str | None, manifests: list[str], work: Path,
              student_seen: set[str], teacher_seen: set[str], s: Settings, rate: int,
              samples: int) -> dict[str, dict[str, Any]]:
    """Per head (``tasks``: head name -> the task whose labels score it): ``test`` (subjects neither model
    trained on), ``fit`` (the student's training subjects), ``task`` and ``too_short`` (recordings under
    half a window of ``samples`` at ``rate``, left out as ``listen`` gates them), from ``manifests`` when
    given, else from each dataset's folder."""
    from acula_edge.checkpoint import subject_hash
    from acula_edge.data.records import read_manifest
    from acula_edge.data.roots import load_task_records
    from acula_edge.data.tasks import applies, task_records

    listed = [r for m in manifests for r in read_manifest(m)]  # a missing one is one clear error
    out = {}
    for head, task in tasks.items():
        records = (task_records(task, [r for r in listed if applies(task, r)], binary=True) if manifests
                   else load_task_records(task, overrides, root, work, binary=True))
        records, short = long_enough(records, samples / rate)
        test = [r for r in records if subject_hash(r.subject) not in student_seen | teacher_seen]
        fit = [r for r in records if subject_hash(r.subject) in student_seen]
        test = subject_subset(test, s.max_test_recordings)
        if len({r.labels["_task"] for r in test}) < 2:
            raise AculaError(f"task {task.name}: its recordings of subjects neither model was trained on hold fewer "
                             f"than two classes ({len(test)} recordings): give other data with --data")
        out[head] = {"test": test, "fit": subject_subset(fit, s.max_fit_recordings), "task": task, "too_short": short}
    return out


# ----------------------------------------------------------------------------- the teacher's heads


def fit_teacher_heads(teacher: str, data: dict[str, dict[str, list]], heads: list[str], rate: int, samples: int,
                      hop: int, out: Path, threads: int) -> dict[str, Any]:
    """Logistic heads on the teacher's aligned window embeddings (each window labelled with its
    recording's class), fitted on the student's training subjects: L2 chosen by the recording-level
    AUROC on a fifth of them, then refitted on all. Saves ``coef``/``intercept`` to ``out`` (NaN
    for heads without a task here); returns what each head was fitted on."""
    from acula_edge.data.splits import split_subjects
    from acula_edge.metrics import auroc
    from acula_edge.probe import L2_GRID, fit_probe, torch_threads
    from benchmarks.variants import teacher_runner

    run = teacher_runner(teacher, None, threads)
    coef, intercept, info = None, np.full(len(heads), np.nan), {}
    for task, parts in data.items():
        fit = parts["fit"]
        if len({r.labels["_task"] for r in fit}) < 2:
            info[task] = {"missing": "no recordings of the student's training subjects with both classes"}
            continue
        emb = [stream_outputs(r.path, {"teacher": run}, rate, samples, hop)["teacher"]["embedding"].astype(np.float64)
               for r in progress(fit, desc=f"teacher head {task}")]
        y = np.array([int(r.labels["_task"]) for r in fit])
        assign = split_subjects(fit, "_task", {"train": 0.8, "val": 0.2}, 0)
        part = np.array([assign[r.subject] for r in fit])

        def stack(ix):
            return np.concatenate([emb[i] for i in ix]), np.concatenate([[y[i]] * len(emb[i]) for i in ix])

        tr, va = np.flatnonzero(part == "train"), np.flatnonzero(part == "val")
        with torch_threads(1):
            if len(set(y[va])) == 2 and len(set(y[tr])) == 2:
                x, t = stack(tr)
                probes = {l2: fit_probe(x, t, 2, l2) for l2 in L2_GRID}
                val = {l2: auroc(y[va], np.array([probes[l2](emb[i])[:, 1].mean() for i in va])) for l2 in L2_GRID}
                best = max(L2_GRID, key=lambda l2: (val[l2], l2))  # ties: the stronger penalty
            else:
                best, val = 1.0, {1.0: float("nan")}
            probe = fit_probe(*stack(np.arange(len(fit))), 2, best)
        if coef is None:
            coef = np.full((probe.coef.shape[0], len(heads)), np.nan)
        j = heads.index(task)
        coef[:, j] = probe.coef[:, 1] - probe.coef[:, 0]  # two-class softmax = sigmoid of the logit difference
        intercept[j] = probe.intercept[1] - probe.intercept[0]
        info[task] = {"recordings": len(fit), "subjects": len({r.subject for r in fit}),
                      "windows": int(sum(len(e) for e in emb)), "l2": best,
                      "val_auroc": None if val[best] != val[best] else round(float(val[best]), 4)}
    if coef is None:
        raise AculaError("the teacher's heads: no task has recordings of the student's training subjects with both "
                         "classes to fit them on")
    np.savez(out, coef=coef, intercept=intercept)
    return info


# ----------------------------------------------------------------------------- accuracy


def score(variants: list[Variant], runs: dict[str, Any], records: list, bundle, stream: bool) -> dict[str, dict]:
    """Per variant: ``offline [R, H]`` and ``streaming [R, H]`` (NaN rows: every window gated) scores."""
    from acula_edge.device.audio import info, iter_blocks
    from acula_edge.device.listen import Listener
    from acula_edge.device.runtime import Model

    rate, samples = bundle.sample_rate, bundle.window_samples
    hop = int(round(bundle.meta["hop_s"] * rate))
    out = {v.name: {"offline": [], "streaming": []} for v in variants}
    for r in progress(records, desc="scoring"):
        offline = stream_outputs(r.path, {v.name: runs[v.name] for v in variants}, rate, samples, hop)
        source_rate = info(r.path).sample_rate
        for v in variants:
            out[v.name]["offline"].append(offline[v.name]["scores"].mean(0))
            if not stream:
                continue
            kept: list[np.ndarray] = []  # the scores of the windows the gate lets through, unrounded

            def keep(w: np.ndarray, run=runs[v.name]) -> dict[str, np.ndarray]:
                o = run(w)
                kept.append(o["scores"][0])
                return o

            listener = Listener(Model(v.backend, v.name, v.precision, keep), bundle, bundle.meta["hop_s"], [], source_rate)
            for b in iter_blocks(r.path, 0.05):
                list(listener.feed(b))
            list(listener.finish())
            out[v.name]["streaming"].append(np.mean(kept, 0) if kept else np.full(len(bundle.heads), np.nan))
    return {k: {m: np.array(rows, np.float64) for m, rows in d.items() if rows} for k, d in out.items()}


def auroc_of(y: np.ndarray, p: np.ndarray, subjects: np.ndarray, n_boot: int) -> dict[str, Any]:
    from acula_edge.metrics import auroc, bootstrap_ci

    known = ~np.isnan(p)
    if len(set(y[known])) < 2:
        return {"auroc": None, "missing": "fewer than two classes scored", "recordings": int(known.sum())}
    lo, hi = bootstrap_ci(y[known], p[known], subjects[known], n_boot)
    return {"auroc": round(auroc(y[known], p[known]), 4), "ci95": [round(lo, 4), round(hi, 4)],
            "recordings": int(known.sum()), "not_scored": int((~known).sum())}


def accuracy(scores: dict[str, dict], records: list, data: dict[str, dict], heads: list[str],
             n_boot: int) -> dict[str, dict[str, dict]]:
    """``{variant: {task: {"offline": ..., "streaming": ...}}}``."""
    out: dict[str, dict[str, dict]] = {}
    for name, s in scores.items():
        for task, parts in data.items():
            rows, y, subjects = task_arrays(parts["test"], records)
            j = heads.index(task)
            out.setdefault(name, {})[task] = {mode: auroc_of(y, s[mode][rows, j], subjects, n_boot) for mode in s}
    return out


def task_arrays(test: list, records: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A task's test recordings as rows of the scored ``records``, their classes and their subjects."""
    index = {r.id: i for i, r in enumerate(records)}
    return (np.array([index[r.id] for r in test]), np.array([int(r.labels["_task"]) for r in test]),
            np.array([r.subject for r in test]))


def int8_effects(scores: dict[str, dict], doc_variants: dict[str, dict], records: list, data: dict[str, dict],
                 heads: list[str], n_boot: int) -> list[dict[str, Any]]:
    """Each int8 variant against the fp32 file of its format: AUROC change per task (paired subject
    bootstrap interval), speed-up and size ratio, all from this run."""
    from acula_edge.metrics import auroc, paired_delta_ci

    out = []
    for name, ref in FP32_OF.items():
        if name not in scores or ref not in scores:
            continue
        v, f = doc_variants[name], doc_variants[ref]
        row: dict[str, Any] = {"variant": name, "fp32": ref, "int8_by": v["int8_by"], "tasks": {}}
        for key, label in (("threads_1", "speedup_1_thread"), ("threads_all", "speedup_all_cores")):
            a, b = (x["latency"][key].get("p50_ms") for x in (f, v))
            row[label] = round(a / b, 3) if a and b else None
        row["size_ratio"] = round(f["cost"]["bytes"] / v["cost"]["bytes"], 3)
        for task, parts in data.items():
            rows, y, subjects = task_arrays(parts["test"], records)
            j = heads.index(task)
            cell = {}
            for mode in scores[name]:
                p_ref, p = scores[ref][mode][rows, j], scores[name][mode][rows, j]
                known = ~(np.isnan(p_ref) | np.isnan(p))
                if len(set(y[known])) < 2:
                    cell[mode] = None  # not measurable: fewer than two classes scored by both
                    continue
                lo, hi = paired_delta_ci(y[known], p_ref[known], p[known], subjects[known], n_boot)
                cell[mode] = {"delta_auroc": round(auroc(y[known], p[known]) - auroc(y[known], p_ref[known]), 4),
                              "ci95": [round(lo, 4), round(hi, 4)], "recordings": int(known.sum())}
            row["tasks"][task] = cell
        out.append(row)
    return out



@dataclass
class Scored:
    """What :func:`score_bundles` measured."""

    data: dict[str, dict[str, list]]  # per task: "test" and "fit" recordings
    variants: list[Variant]
    records: list  # every test recording scored, once
    scores: dict[str, dict]  # variant -> mode -> [records, heads]
    accuracy: dict[str, dict[str, dict]]  # variant -> task -> mode -> AUROC with its interval
    teacher_heads: dict[str, Any]  # what each of the teacher's heads was fitted on (empty without a teacher)


def score_bundles(bundles: list, ckpt: str, teacher: str | None, tasks: Sequence[str], work: Path, s: Settings,
                  threads: int, stream: bool = True, overrides: dict[str, str] | None = None,
                  data_root: str | None = None, manifests: Sequence[str] = ()) -> Scored:
    """Every variant of ``bundles`` (the student ``ckpt`` in torch, each model file and, with ``teacher``,
    the teacher with its fitted heads) scored on the recordings of ``tasks`` (``TASK`` or ``TASK=HEAD``,
    :func:`acula_edge.data.tasks.head_tasks`) whose subjects neither model was trained on."""
    from acula_edge.checkpoint import read_sidecar
    from acula_edge.data.tasks import head_tasks
    from benchmarks.variants import discover, load_run

    b0 = bundles[0]
    heads = [h["name"] for h in b0.heads]
    mapping = head_tasks(tasks, heads)
    student_seen = set(read_sidecar(ckpt).get("trained_subjects_sha256") or [])
    if not student_seen:
        raise AculaError(f"{ckpt} lists no training subjects: its test subjects cannot be kept apart")
    teacher_seen = set(read_sidecar(teacher).get("trained_subjects_sha256") or []) if teacher else set()
    rate, samples = b0.sample_rate, b0.window_samples
    hop = int(round(float(b0.meta["hop_s"]) * rate))
    data = task_data(mapping, overrides or {}, data_root, list(manifests), work, student_seen, teacher_seen, s,
                     rate, samples)
    teacher_heads, fitted = None, {}
    if teacher:
        teacher_heads = work / "teacher_heads.npz"
        fitted = fit_teacher_heads(teacher, data, heads, rate, samples, hop, teacher_heads, threads)
    variants = discover(bundles, ckpt, teacher, teacher_heads)
    runs = {v.name: load_run(v.spec, threads) for v in variants}
    records = list({r.id: r for parts in data.values() for r in parts["test"]}.values())
    scores = score(variants, runs, records, b0, stream=stream)
    return Scored(data, variants, records, scores, accuracy(scores, records, data, heads, s.n_boot), fitted)


# ----------------------------------------------------------------------------- speed and memory


def child(spec: Spec, threads: int, samples: int, batches: Sequence[int], runs: int, warmup: int,
          pin_cpu: bool) -> dict[str, Any]:
    """Run :mod:`benchmarks.measure` on one variant in a process of its own."""
    job = {"spec": asdict(spec), "threads": threads, "pin_cpu": pin_cpu, "samples": samples, "batches": list(batches),
           "runs": {str(b): max(3, runs // b) for b in batches}, "warmup": warmup}
    r = subprocess.run([sys.executable, "-m", "benchmarks.measure", json.dumps(job)], capture_output=True, text=True,
                       timeout=1800)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {"error": (r.stderr.strip().splitlines() or [f"exit {r.returncode}"])[-1][:300]}
    return json.loads(lines[-1])


def speed(v: Variant, samples: int, hop_s: float, cores: int, s: Settings) -> dict[str, Any]:
    """Latency at batch 1 on one thread and on all cores, throughput, real-time factor, peak memory."""
    one = child(v.spec, 1, samples, [1], s.runs, s.warmup, pin_cpu=True)
    every = child(v.spec, cores, samples, [1, *s.throughput_batches], s.runs, s.warmup, pin_cpu=False)
    missing = {k: m["error"] for k, m in (("threads_1", one), ("threads_all", every)) if "error" in m}

    def lat(m):
        return {k: m["batches"]["1"][k] for k in ("p50_ms", "p95_ms", "mean_ms", "runs")} if "error" not in m else {
            "p50_ms": None, "missing": m["error"]}

    out = {"latency": {"threads_1": lat(one), "threads_all": {**lat(every), "threads": cores}},
           "throughput": {str(b): (every["batches"][str(b)]["windows_per_s"] if "error" not in every else None)
                          for b in s.throughput_batches},
           "real_time_factor": (round(one["batches"]["1"]["p50_ms"] / 1e3 / hop_s, 5) if "error" not in one else None),
           "memory": ({"peak_rss_mib": round(one["rss_kib"]["peak"] / 1024, 1),
                       "loaded_rss_mib": round(one["rss_kib"]["loaded"] / 1024, 1),
                       "runtime_rss_mib": round(one["rss_kib"]["imports"] / 1024, 1)} if "error" not in one else
                      {"peak_rss_mib": None, "missing": one["error"]})}
    if missing:
        out["missing"] = missing
    return out


#: the reference every variant's speed is measured against: the published OPERA-GT encoder size
REFERENCE_ENCODER = "vit-small"


def reference_speed(s: Settings) -> dict[str, Any]:
    """The ``vit-small`` encoder in torch (random weights: timing only; the wide-16k front end and its
    own window) at batch 1 on one thread, per second of audio."""
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models import create_encoder

    fe = FrontendConfig()
    samples = fe.num_samples(create_encoder(REFERENCE_ENCODER).config.input_frames)
    # a call takes seconds: 20 calls give a steady median
    m = child(Spec("teacher", checkpoint=REFERENCE_ENCODER), 1, samples, [1], min(s.runs, 20), 2, pin_cpu=True)
    if "error" in m:
        return {"encoder": REFERENCE_ENCODER, "missing": m["error"]}
    p50 = m["batches"]["1"]["p50_ms"]
    return {"encoder": REFERENCE_ENCODER, "weights": "random (timing only)", "framework": "torch fp32",
            "window_s": round(samples / fe.sample_rate, 3), "p50_ms": p50, "runs": m["batches"]["1"]["runs"],
            "ms_per_s": round(p50 / (samples / fe.sample_rate), 4)}


def speedups(doc_variants: dict[str, dict], reference: dict[str, Any], window_s: float) -> None:
    """Each variant's one-thread milliseconds per second of audio and how many times faster than the reference."""
    for v in doc_variants.values():
        p50 = v["latency"]["threads_1"].get("p50_ms")
        v["ms_per_s"] = round(p50 / window_s, 4) if p50 else None
        v["speedup_vs_reference"] = (round(reference["ms_per_s"] / v["ms_per_s"], 1)
                                     if v["ms_per_s"] and reference.get("ms_per_s") else None)


def grid_specs(variants: dict[str, Variant], checkpoint: str, samples: int, work: Path) -> dict[str, Spec]:
    """The spec of each grid variant at ``samples`` per window (ONNX re-exported at that length)."""
    import torch

    from export.model import edge_model
    from export.onnx import export_onnx, quantize_int8

    out = {k: variants[k].spec for k in ("teacher", "student-torch") if k in variants}
    if not {"onnx-fp32", "onnx-int8-onnxruntime"} & set(variants):
        return out
    model = edge_model(checkpoint)
    fp32 = export_onnx(model, work / f"fp32-{samples}.onnx", torch.zeros(2, samples), "waveform", model.names)
    if "onnx-fp32" in variants:
        out["onnx-fp32"] = Spec("onnx", file=str(fp32))
    if "onnx-int8-onnxruntime" in variants:
        from acula_edge.data.synth import iter_clips

        clips = [a for _, a in iter_clips(32, seed=0)]
        cal = np.stack([np.pad(a, (0, max(0, samples - a.size)))[:samples] for a in clips]).astype(np.float32)
        out["onnx-int8-onnxruntime"] = Spec("onnx", file=str(quantize_int8(fp32, work / f"int8-{samples}.onnx", cal)))
    return out


def scaling(variants: dict[str, Variant], checkpoint: str, fe, window_samples: int, work: Path,
            s: Settings) -> dict[str, Any]:
    """Latency (one thread, batch 1) and peak memory against window length; against batch size at the bundle's window."""
    grid = {k: v for k, v in variants.items() if k in GRID}
    out: dict[str, Any] = {"window": {k: [] for k in grid}, "batch": {k: [] for k in grid},
                           "not_in_grid": {k: "fixed-window TFLite files: converting each length takes minutes; the "
                                           "bundle's window is in the main table" for k in variants if k not in grid}}
    for seconds in s.windows_s:
        frames = max(1, int(round((seconds * fe.sample_rate - fe.n_fft) / fe.hop_length)) + 1)
        samples = fe.num_samples(frames)
        for name, spec in grid_specs(grid, checkpoint, samples, work).items():
            m = child(spec, 1, samples, [1], s.runs, s.warmup, pin_cpu=True)
            out["window"][name].append(_point(m, 1, window_s=round(samples / fe.sample_rate, 3)))
    for name, v in grid.items():  # batch sizes in increasing order in one process: the peak so far is that size's
        m = child(v.spec, 1, window_samples, sorted(s.grid_batches), s.runs, s.warmup, pin_cpu=True)
        out["batch"][name] = [_point(m, b, batch=b) for b in sorted(s.grid_batches)]
    return out


def _point(m: dict[str, Any], b: int, **where: Any) -> dict[str, Any]:
    if "error" in m:
        return {**where, "p50_ms": None, "missing": m["error"]}
    x = m["batches"][str(b)]
    return {**where, "p50_ms": x["p50_ms"], "p95_ms": x["p95_ms"], "windows_per_s": x["windows_per_s"],
            "peak_rss_mib": round(x["peak_rss_kib"] / 1024, 1)}


# ----------------------------------------------------------------------------- CLI


def _parser() -> Parser:
    p = Parser(prog="python -m benchmarks run", description=describe(__doc__))
    p.add_argument("--bundle", action="append", required=True, help="a bundle (repeat: e.g. one per ONNX quantizer; "
                   "all from the same student)")
    p.add_argument("--teacher", help="the aligned teacher checkpoint the student was distilled from")
    p.add_argument("--task", action="append", required=True, metavar="TASK[=HEAD]",
                   help="a registered task that is a head of the bundle, or TASK=HEAD to score a head with another "
                   "task's labels, e.g. csv:MANIFEST:COLUMN=physionet2016-abnormal (repeat)")
    p.add_argument("--checkpoint", help="the bundle's source checkpoint (default: the one its bundle.json names)")
    p.add_argument("--data", action="append", default=[], metavar="FORMAT=PATH", help="where a dataset lives")
    p.add_argument("--data-root", help="a folder holding one folder per dataset format")
    p.add_argument("--manifest", action="append", default=[], help="take the recordings from this manifest instead "
                   "(repeat)")
    p.add_argument("--out", default="benchmarks/results/suite", help="results folder")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="'all cores' for the latency runs")
    p.add_argument("--no-stream", action="store_true", help="skip the streaming-path AUROC")
    p.add_argument("--quick", action="store_true", help="about a minute: a subset of the test subjects, few timed calls")
    return p


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = _parser().parse_args(argv)
    s = SETTINGS["quick" if a.quick else "full"]
    t_start = time.time()
    from acula_edge.device.bundle import load_bundle
    from acula_edge.data.roots import data_overrides
    from acula_edge.data.tasks import head_tasks
    from acula_edge.frontend import FrontendConfig
    from acula_edge.provenance import machine, versions
    from benchmarks.report import REFERENCES, write_report
    from benchmarks.variants import cost

    bundles = [load_bundle(b) for b in a.bundle]
    sources = {b.meta["provenance"].get("checkpoint_sha256") for b in bundles}
    if len(sources) > 1:
        raise AculaError("the bundles come from different checkpoints: compare one student's variants per run")
    b0 = bundles[0]
    heads = [h["name"] for h in b0.heads]
    head_tasks(a.task, heads)  # a head or task that is not there: one clear error
    ckpt = str(b0.source_checkpoint(a.checkpoint, "benchmarks run (the student's torch rows, its training "
                                    "subjects, cost and scaling grid)", "; without it, `python -m export verify "
                                    f"{b0.path} --data MANIFEST --task TASK=HEAD` scores every file of the bundle on "
                                    "recordings it was not trained on"))
    if a.teacher and not Path(a.teacher).is_file():
        raise AculaError(f"teacher checkpoint not found: {a.teacher}")
    if a.threads < 1:
        raise AculaError("--threads must be at least 1")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rate, samples, hop_s = b0.sample_rate, b0.window_samples, float(b0.meta["hop_s"])
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sc = score_bundles(bundles, ckpt, a.teacher, a.task, work, s, a.threads, not a.no_stream,
                           data_overrides(a.data), a.data_root, a.manifest)
        data, variants, records, scores, acc, fitted = (sc.data, sc.variants, sc.records, sc.scores, sc.accuracy,
                                                        sc.teacher_heads)
        doc_variants: dict[str, dict] = {}
        for v in variants:
            print(f"timing {v.name}", file=sys.stderr, flush=True)
            doc_variants[v.name] = {**v.to_dict(), "cost": cost(v, ckpt, samples), **speed(v, samples, hop_s, a.threads, s),
                                    "accuracy": acc[v.name]}
        print(f"timing the reference ({REFERENCE_ENCODER})", file=sys.stderr, flush=True)
        reference = reference_speed(s)
        speedups(doc_variants, reference, samples / rate)
        for v in doc_variants.values():
            if v["speedup_vs_reference"]:
                print(f"{v['label']}: {v['ms_per_s']:.4f} ms per second of audio (1 thread), "
                      f"{v['speedup_vs_reference']:g}x faster than {REFERENCE_ENCODER} "
                      f"({reference['ms_per_s']:.1f} ms/s)", file=sys.stderr, flush=True)
        print("scaling grid", file=sys.stderr, flush=True)
        fe = FrontendConfig.from_dict(b0.meta["frontend"])
        grid = scaling({v.name: v for v in variants}, ckpt, fe, samples, work, s)
    tasks = {}
    for t, parts in data.items():
        test, task = parts["test"], parts["task"]
        y = [int(r.labels["_task"]) for r in test]
        tasks[t] = {"task": task.name, "dataset": task.dataset, "description": task.description,
                    "synthetic": task.dataset == "synthetic",
                    "test": {"recordings": len(test), "subjects": len({r.subject for r in test}),
                             "positives": int(sum(y)), "negatives": len(y) - int(sum(y))},
                    "too_short": parts["too_short"],
                    "teacher_head": fitted.get(t) if a.teacher else None}
    doc = {"schema": 1, "quick": a.quick, "settings": to_dict(s),
           "bundles": [str(b.path) for b in bundles], "checkpoint": ckpt, "teacher": a.teacher,
           "student": b0.meta["name"], "sample_rate": rate, "window_s": round(samples / rate, 3), "hop_s": hop_s,
           "threads_all": a.threads, "tasks": tasks, "variants": list(doc_variants.values()),
           "int8": int8_effects(scores, doc_variants, records, data, heads, s.n_boot), "scaling": grid,
           "reference": reference,
           "references": REFERENCES, "machine": machine(),
           "versions": versions("numpy", "onnxruntime", "ai_edge_litert", "torch", "onnx", "neural_compressor",
                                "ai_edge_quantizer", "matplotlib"),
           "seconds": round(time.time() - t_start, 1)}
    write_report(doc, out, "benchmarks", ["run", *argv])
    return 0


__all__ = ["FULL", "GRID", "QUICK", "REFERENCE_ENCODER", "SETTINGS", "Settings", "accuracy", "fit_teacher_heads",
           "main", "reference_speed", "score", "score_bundles", "speedups"]
