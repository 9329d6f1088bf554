"""Distillation: the aligned teacher against each student preset, on the same tasks and subjects.

    python -m benchmarks.distill [--alignment-work runs/alignment] [--work runs/distill] [--epochs 8]
                                 [--students mn-xs,mn-s,mn-m,mn-l] [--relu mn-s] [--out benchmarks/results/distill]

1. Teacher: ``MSM + align (--teacher-loss, default cka, the product default)`` from
   ``python -m benchmarks.alignment`` (run first, into ``--alignment-work``, when not there yet). It
   was trained on half of the subjects of each dataset (synthetic corpus, SPRSound, PhysioNet 2016).
2. Students: each preset (and ``--relu`` presets again with ReLU) is distilled with ``python -m
   distill`` on those same subjects, split 80/20 into training and calibration subjects (each
   head's threshold for sensitivity >= ``--sensitivity`` is chosen on the calibration subjects).
3. Scores, all on the other half (subjects neither teacher nor student saw):
   - probe AUROC (``acula_edge.evaluate --unseen-only``: frozen embedding, logistic probe, seeds, interval);
   - head AUROC (the student's head; for the teacher, a logistic head on its aligned embedding fitted
     on the students' training recordings, L2 chosen on the calibration ones), with the sensitivity and
     specificity reached at the threshold chosen on the calibration subjects;
   - zero-shot AUROC (the task's registered prompts, ``acula_edge.zeroshot``);
   - int8: each student exported to ONNX and quantized (static QDQ, calibrated on training windows);
     cosine of int8 to fp32 embeddings and the int8 head AUROC.
4. Cost: parameters, multiply-accumulates per second of audio, retention (student / teacher AUROC).
5. Zero-shot AUROC of the encoders aligned with each loss of ``benchmarks.alignment``: CKA matches the
   two spaces' geometry but not their coordinates, InfoNCE matches pairs.

Writes ``OUT.json`` and ``OUT.md``. Synthetic tasks test the machinery, not clinical value.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from acula_edge.data.records import Recording, atomic_write_text, read_manifest, write_manifest
from acula_edge.provenance import machine, versions
from benchmarks.alignment import REAL, SYNTHETIC_TASKS
from acula_edge.stages import Runner, Step, locked
from benchmarks.common import subject_parts, trained
from benchmarks.variants import network_cost

CALIBRATION_WINDOWS = 256


def split_for_students(records: list[Recording], seed: int = 0) -> list[Recording]:
    """The teacher's training records with ``split`` = train (80% of each dataset's subjects) or val."""
    out = []
    for fmt in sorted({r.dataset for r in records}):
        part = [r for r in records if r.dataset == fmt]
        assign = subject_parts(part, REAL[fmt][0] if fmt in REAL else None, {"train": 0.8, "val": 0.2}, seed)
        out += [Recording(**{**r.to_dict(), "split": assign[r.subject]}) for r in part]
    return out


def with_ci(y: np.ndarray, p: np.ndarray, subjects: np.ndarray) -> dict[str, Any]:
    from acula_edge.metrics import auroc, bootstrap_ci

    lo, hi = bootstrap_ci(y, p, subjects)
    return {"auroc": round(auroc(y, p), 4), "ci95": [round(lo, 4), round(hi, 4)]}


def at_threshold(y: np.ndarray, p: np.ndarray, threshold: float | None) -> dict[str, Any]:
    from acula_edge.metrics import rates_at

    if threshold is None:
        return {}
    sens, spec = rates_at(y, p, threshold)
    return {"threshold": round(float(threshold), 4), "test_sensitivity": round(sens, 4), "test_specificity": round(spec, 4)}


def relabelled(records: list[Recording], task: str) -> list[Recording]:
    """The records with the task's label under ``_task`` (what zero-shot scoring reads)."""
    from acula_edge.data.tasks import get_task

    t = get_task(task)
    return [Recording(**{**r.to_dict(), "labels": {**r.labels, "_task": t.label(r)}}) for r in records]


def labelled(records: list[Recording], task: str) -> tuple[list[Recording], np.ndarray]:
    from acula_edge.data.tasks import get_task

    t = get_task(task)
    keep = [r for r in records if r.dataset == t.dataset and t.label(r) in (0, 1)]
    return keep, np.array([t.label(r) for r in keep])


def teacher_head(teacher: str, train: list[Recording], val: list[Recording], test: list[Recording], task: str,
                 sensitivity: float, threads: int) -> dict[str, Any]:
    """A logistic head on the teacher's aligned embedding: fitted on ``train``, L2 and threshold chosen on ``val``."""
    from acula_edge.encoders import make_encoder
    from acula_edge.metrics import auroc
    from acula_edge.probe import L2_GRID, fit_probe, torch_threads
    from acula_edge.metrics import operating_point

    enc = make_encoder(teacher, threads, aligned=True)
    (tr, ytr), (va, yva), (te, yte) = (labelled(rs, task) for rs in (train, val, test))
    xtr, xva, xte = (enc.embed(rs).astype(np.float64) for rs in (tr, va, te))
    with torch_threads(1):
        probes = {l2: fit_probe(xtr, ytr, 2, l2) for l2 in L2_GRID}
    best = max(L2_GRID, key=lambda l2: (auroc(yva, probes[l2](xva)[:, 1]), l2))
    pva, pte = probes[best](xva)[:, 1], probes[best](xte)[:, 1]
    op = operating_point(yva, pva, sensitivity)
    return {**with_ci(yte, pte, np.array([r.subject for r in te])), **at_threshold(yte, pte, op["threshold"]),
            "l2": best, "calibration": {k: op[k] for k in ("sensitivity", "specificity")}}


def student_heads(ckpt: str, test: list[Recording], tasks: list[str], threads: int) -> dict[str, dict[str, Any]]:
    from acula_edge.checkpoint import read_sidecar
    from acula_edge.encoders import make_encoder

    enc = make_encoder(ckpt, threads)
    meta = read_sidecar(ckpt)
    names = [h["name"] for h in meta["heads"]]
    out = {}
    for task in tasks:
        te, y = labelled(test, task)
        j = names.index(task)
        p = enc.run(te, enc.model.stream_scores)[:, j]
        head = meta["heads"][j]
        out[task] = {**with_ci(y, p, np.array([r.subject for r in te])), **at_threshold(y, p, head["threshold"]),
                     "calibration": {k: head["calibration"][k] for k in ("sensitivity", "specificity")}
                     if isinstance(head.get("calibration"), dict) else head.get("calibration")}
    return out


def int8_effect(ckpt: str, train: list[Recording], test: list[Recording], tasks: list[str]) -> dict[str, Any]:
    """Export the student to ONNX, quantize it to int8 and compare the two on the test recordings."""
    from acula_edge.models.students import load_student
    from acula_edge.metrics import mean_cosine
    from export.onnx import export_student, logmel_windows, quantize_int8
    from acula_edge.device.runtime import session

    student, meta = load_student(ckpt)
    frames = student.config.window_frames
    rng = np.random.default_rng(0)
    pick = [train[i] for i in rng.choice(len(train), min(len(train), CALIBRATION_WINDOWS), replace=False)]
    cal = np.concatenate(logmel_windows(pick, meta["frontend"], frames))
    cal = cal[rng.choice(len(cal), min(len(cal), CALIBRATION_WINDOWS), replace=False)]
    names = [h["name"] for h in meta["heads"]]
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_student(student, fp32)
        quantize_int8(fp32, int8, cal)
        sizes = {"fp32_bytes": fp32.stat().st_size, "int8_bytes": int8.stat().st_size}
        runs = {k: session(p) for k, p in (("fp32", fp32), ("int8", int8))}
        out: dict[str, Any] = {**sizes, "tasks": {}}
        emb: dict[str, list[np.ndarray]] = {"fp32": [], "int8": []}
        for task in tasks:
            te, y = labelled(test, task)
            scores: dict[str, list[float]] = {"fp32": [], "int8": []}
            for w in logmel_windows(te, meta["frontend"], frames):
                for k, s in runs.items():
                    e, logits = s.run(None, {"logmel": w})
                    emb[k].append(e)
                    scores[k].append(float((1 / (1 + np.exp(-logits[:, names.index(task)]))).mean()))
            subjects = np.array([r.subject for r in te])
            out["tasks"][task] = {k: with_ci(y, np.array(v), subjects)["auroc"] for k, v in scores.items()}
        out["embedding_centred_cosine_int8_vs_fp32"] = round(mean_cosine(*(np.concatenate(emb[k])
                                                                             for k in ("fp32", "int8"))), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.distill", description=__doc__.splitlines()[0])
    p.add_argument("--alignment-work", default="runs/alignment", help="work folder of benchmarks.alignment")
    p.add_argument("--teacher-loss", default="cka", choices=("cka", "cka-feature", "infonce"))
    p.add_argument("--work", default="runs/distill", help="working folder (student runs, evaluation)")
    p.add_argument("--students", default="mn-xs,mn-s,mn-m,mn-l")
    p.add_argument("--relu", default="mn-s", help="presets distilled again with ReLU (comma-separated; '' for none)")
    p.add_argument("--tasks", help="comma-separated tasks scored (default: every task of the data; heads for all)")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--hop", type=float, default=2.0, help="seconds between teacher windows")
    p.add_argument("--sensitivity", type=float, default=0.9)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/distill", help="results prefix (.json and .md)")
    a = p.parse_args(argv)
    from acula_edge.checkpoint import read_sidecar
    from acula_edge.data.roots import data_root, load_task_records
    from acula_edge.data.tasks import get_task
    from acula_edge.encoders import unseen
    from acula_edge.zeroshot import task_auroc

    t0 = time.perf_counter()
    aw, work = Path(a.alignment_work), Path(a.work)
    teacher = aw / f"align-{a.teacher_loss}" / "encoder.safetensors"
    runner = Runner(work)
    with locked(work / runner.state, "benchmark"):
        runner.run([("alignment", Step(["benchmarks.alignment", "--work", str(aw), "--out", str(aw / "results")],
                                       outputs=[teacher, aw / "encoder_train.jsonl"]))])
    records = split_for_students(read_manifest(aw / "encoder_train.jsonl"))
    work.mkdir(parents=True, exist_ok=True)
    manifest = work / "students.jsonl"
    write_manifest(records, manifest)
    train = [r for r in records if r.split == "train"]
    val = [r for r in records if r.split == "val"]
    datasets = {"synthetic": aw / "synthetic"}
    for fmt in REAL:
        where = data_root(fmt, {})
        if where is not None and any(r.dataset == fmt for r in records):
            datasets[fmt] = where
    heads = [t for t in SYNTHETIC_TASKS + [REAL[f][1][0] for f in REAL] if get_task(t).dataset in datasets]
    tasks = a.tasks.split(",") if a.tasks else heads
    if not set(tasks) <= set(heads):
        raise SystemExit(f"error: --tasks must be among {', '.join(heads)}")

    variants = [(s, s, None) for s in a.students.split(",") if s] + \
               [(f"{s}-relu", s, "relu") for s in a.relu.split(",") if s]
    students, stages = {}, []
    for name, preset, act in variants:
        out = work / name
        cmd = ["distill", "--teacher", str(teacher), "--student", preset, *(["--act", act] if act else []),
               "--manifest", str(manifest), "--split", "train", "--calibrate-split", "val",
               *[x for t in heads for x in ("--head", t)], "--sensitivity", str(a.sensitivity),
               "--epochs", str(a.epochs), "--hop", str(a.hop), "--threads", str(a.threads), "--quiet", "--out", str(out)]
        stages.append((name, Step(cmd, inputs=[teacher, manifest], outputs=trained(out, "student"), resumable=out)))
        students[name] = str(out / "student.safetensors")

    ev = work / "evaluate"
    encoders = [str(teacher), *students.values()]
    cmd = ["acula_edge.evaluate", "--unseen-only", "--threads", str(a.threads), "--seeds", str(a.seeds),
           "--out", str(ev), *[x for f, w in datasets.items() for x in ("--data", f"{f}={w}")],
           *[x for e in encoders for x in ("--encoder", e)], *[x for t in tasks for x in ("--task", t)]]
    stages.append(("evaluate", Step(cmd, inputs=[Path(e) for e in encoders] + list(datasets.values()),
                                    outputs=[ev / "results.json"])))
    with locked(work / runner.state, "benchmark"):
        runner.run(stages)
    commands = runner.commands
    done = ev / "results.json"
    label = {str(teacher): "teacher", **{v: k for k, v in students.items()}}
    probe = {(r["task"], label[r["encoder"]]): r for r in json.loads(done.read_text())["results"]}

    overrides = {f: str(w) for f, w in datasets.items()}
    test: list[Recording] = []
    seen = set().union(*(read_sidecar(e).get("trained_subjects_sha256") or [] for e in encoders))
    ids: set[str] = set()
    for t in tasks:
        new = [r for r in unseen(load_task_records(get_task(t), overrides, None, work), seen, t) if r.id not in ids]
        test += new
        ids.update(r.id for r in new)
    rows: dict[str, dict[str, Any]] = {}
    for ckpt in encoders:
        name = label[ckpt]
        print(f"scoring {name}", file=sys.stderr, flush=True)
        head_scores = (student_heads(ckpt, test, tasks, a.threads) if name != "teacher" else
                       {t: teacher_head(ckpt, train, val, test, t, a.sensitivity, a.threads) for t in tasks})
        row: dict[str, Any] = {"checkpoint": ckpt, **network_cost(ckpt), "tasks": {}}
        for t in tasks:
            te, _ = labelled(test, t)
            zs = task_auroc(ckpt, t, relabelled(te, t), threads=a.threads)
            pr = probe[t, name]
            row["tasks"][t] = {"probe": {"auroc": pr["auroc_mean"], "std": pr["auroc_std"], "ci95": pr["ci95"]},
                               "head": head_scores[t], "zero_shot": {"auroc": zs["auroc"], "ci95": zs["ci95"]},
                               "test_recordings": len(te), "test_subjects": len({r.subject for r in te})}
        if name != "teacher":
            row["int8"] = int8_effect(ckpt, train, test, tasks)
            meta = read_sidecar(ckpt)
            row["student"] = {"preset": meta["student"]["name"], "act": meta["student"]["act"]}
        rows[name] = row
    # zero-shot needs coordinates shared by audio and text: compare the encoders of every alignment loss
    zero_shot_by_loss = {}
    for loss in ("cka", "cka-feature", "infonce"):
        ckpt = aw / f"align-{loss}" / "encoder.safetensors"
        if ckpt.exists():
            zero_shot_by_loss[loss] = {}
            for t in tasks:
                te, _ = labelled(test, t)
                zs = task_auroc(str(ckpt), t, relabelled(te, t), threads=a.threads)
                zero_shot_by_loss[loss][t] = {"auroc": zs["auroc"], "ci95": zs["ci95"]}
    for name, row in rows.items():
        for t, cell in row["tasks"].items():
            cell["retention"] = {k: round(cell[k]["auroc"] / rows["teacher"]["tasks"][t][k]["auroc"], 3)
                                 for k in ("probe", "head", "zero_shot")}
    from acula_edge.models import create_encoder

    vit_small = create_encoder("vit-small").num_parameters("encoder")
    for row in rows.values():
        row["times_fewer_parameters_than_vit_small"] = round(vit_small / row["parameters"], 1)
        row["times_fewer_parameters_than_teacher"] = round(rows["teacher"]["parameters"] / row["parameters"], 1)
    v = np.load(work / variants[0][0] / "teacher-targets" / "targets.npy")
    total = v.sum(0)
    spread = float((total @ total - len(v)) / (len(v) * (len(v) - 1)))  # mean cosine over distinct pairs
    real = [t for t in tasks if not t.startswith("synthetic")]
    target = {name: all(rows[name]["tasks"][t]["retention"]["probe"] >= 0.95 for t in real) and
              rows[name]["times_fewer_parameters_than_vit_small"] >= 20 for name in students}
    doc = {"question": "how much of the aligned teacher's AUROC do students of 56k to 1M parameters keep?",
           "protocol": f"teacher = benchmarks.alignment's MSM + align ({a.teacher_loss}) encoder, trained on half of "
                       "each dataset's subjects; students distilled on the same subjects (80% train, 20% calibration "
                       f"of head thresholds at sensitivity >= {a.sensitivity}); every score on the other half "
                       f"(unseen subjects): probe AUROC (evaluate --unseen-only, {a.seeds} seeds, mean ± std, "
                       "subject-bootstrap 95% interval), head and zero-shot AUROC (one model each, subject-bootstrap "
                       "95% interval), int8 = onnxruntime static QDQ calibrated on training windows",
           "target": "a student with >= 20x fewer parameters than vit-small and >= 95% of the teacher's probe AUROC "
                     "on each ../shared/data task", "target_met": target,
           "synthetic_note": "synthetic-* tasks are on generated audio: they test the machinery, not clinical value",
           "physionet_note": "PhysioNet 2016 publishes no patient ids: each recording counts as its own subject",
           "teacher_windows_mean_pairwise_cosine": round(spread, 4),
           "tasks": tasks, "students_training": {n: {k: json.loads((work / n / "result.json").read_text()).get(k)
                                                     for k in ("steps", "epochs", "seconds", "windows_per_s")}
                                                 for n in students},
           "rows": rows, "zero_shot_by_alignment_loss": zero_shot_by_loss, "vit_small_parameters": vit_small, "commands": commands,
           "seconds": {"students_training": round(sum(json.loads((work / n / "result.json").read_text())["seconds"]
                                                      for n in students), 1),
                       "this_run": round(time.perf_counter() - t0, 1)}, "machine": machine(), "versions": versions("torch", "onnxruntime"),
           "command": shlex.join(["python", "-m", "benchmarks.distill", *argv])}
    out = Path(a.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(doc, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(doc))
    print(markdown(doc))
    return 0


def _auc(cell: dict[str, Any]) -> str:
    return f"{cell['auroc']:.3f} [{cell['ci95'][0]:.2f}, {cell['ci95'][1]:.2f}]"


def markdown(doc: dict[str, Any]) -> str:
    """Cost table, then per task: probe, head and zero-shot AUROC with retention, and int8."""
    rows = doc["rows"]
    names = list(rows)
    lines = [f"# Distillation at toy scale\n\n{doc['question']}\n\nProtocol: {doc['protocol']}.\n\n"
             f"Note: {doc['synthetic_note']}. {doc['physionet_note']}.\n\nMade by `{doc['command']}` (students' "
             f"training {doc['seconds']['students_training'] / 60:.0f} min in all, this run "
             f"{doc['seconds']['this_run'] / 60:.0f} min, on {doc['machine']['logical_cores']} cores).\n",
             "| model | parameters | fewer than vit-small | fewer than the teacher | M MACs per s of audio | "
             "int8 centred cosine to fp32 | ONNX fp32 / int8 KiB |", "|---|---|---|---|---|---|---|"]
    for n in names:
        r = rows[n]
        q = r.get("int8")
        lines.append(f"| {n} | {r['parameters']:,} | {r['times_fewer_parameters_than_vit_small']}× | "
                     f"{r['times_fewer_parameters_than_teacher']}× | {r['macs_per_s'] / 1e6:.2f} | "
                     + (f"{q['embedding_centred_cosine_int8_vs_fp32']:.3f} | {q['fp32_bytes'] / 1024:.0f} / "
                        f"{q['int8_bytes'] / 1024:.0f} |" if q else "– | – |"))
    for t in doc["tasks"]:
        cell = rows["teacher"]["tasks"][t]
        lines += ["", f"## {t} ({cell['test_recordings']} recordings of {cell['test_subjects']} unseen subjects)", "",
                  "| model | probe AUROC | head AUROC | sens / spec at the calibrated threshold | zero-shot AUROC | "
                  "retention probe / head / zero-shot | int8 head AUROC |", "|---|---|---|---|---|---|---|"]
        for n in names:
            c = rows[n]["tasks"][t]
            pr, hd = c["probe"], c["head"]
            at = (f"{hd['test_sensitivity']:.2f} / {hd['test_specificity']:.2f}" if "test_sensitivity" in hd else "–")
            ret = c.get("retention", {})
            q = rows[n].get("int8")
            lines.append(f"| {n} | {pr['auroc']:.3f} ± {pr['std']:.3f} [{pr['ci95'][0]:.2f}, {pr['ci95'][1]:.2f}] | "
                         f"{_auc(hd)} | {at} | {_auc(c['zero_shot'])} | "
                         + (" / ".join(f"{ret[k]:.2f}" for k in ("probe", "head", "zero_shot")) if n != "teacher" else "–")
                         + " | " + (f"{q['tasks'][t]['int8']:.3f} (fp32 {q['tasks'][t]['fp32']:.3f})" if q else "–") + " |")
    zs = doc["zero_shot_by_alignment_loss"]
    lines += ["", "## Zero-shot AUROC of the aligned encoders by alignment loss (same unseen subjects)", "",
              "| task | " + " | ".join(f"MSM + align ({loss})" for loss in zs) + " |", "|---|" + "---|" * len(zs)]
    for t in doc["tasks"]:
        lines.append(f"| {t} | " + " | ".join(_auc(zs[loss][t]) for loss in zs) + " |")
    met = [n for n, ok in doc["target_met"].items() if ok]
    lines += ["", "Target (" + doc["target"] + "): " + (", ".join(met) + " meet it." if met else "no student meets it.")]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
