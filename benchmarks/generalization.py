"""Do the models hold up on hospitals, stethoscopes and children they never saw?

    python -m benchmarks generalization [--preset demo] [--work runs/generalization] [--set FIELD=VALUE ...]
        [--data physionet2016=PATH --data sprsound=PATH] [--out benchmarks/results/generalization]
    python -m benchmarks generalization --work runs/gen-events --from runs/generalization \
        --set event_labels=true --out benchmarks/results/ablations/event-labels   # an ablation

Two trainings of the whole recipe, each ``python -m acula_edge.pipeline`` up to ``verify`` in
``WORK/FOLD`` (skipped when up to date, resumed when killed):

- ``site-a``: PhysioNet 2016 ``training-a`` split into train and val, every record of ``training-b``
  (another hospital and stethoscope) the test part; ``site-b``: the reverse.
- In both, SPRSound's children are split once (seed 0, stratified on the adventitious label) into
  train, val and test: the lung rows are on the test children, whom neither training saw.

For each fold and task, AUROC with a subject-bootstrap 95% interval, on the test part and on the val
part, of: log-mel statistics, the MSM-only encoder and the aligned encoder, each with a linear probe
(the pipeline's ``evaluate`` stage: fitted on train, its L2 chosen on val); the distilled student's
own heads in torch and every model file of its bundle (ONNX and TFLite, fp32 and int8; window
probabilities averaged per recording).

What chose what: the encoders, the student and the probes are fitted on train; the probes' L2 and
the heads' thresholds are chosen on val; training runs a fixed number of epochs (no early
stopping); a recipe may be compared on the val columns only. No recording of a test site or a test
child is used for any of these. Output: ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from acula_edge.cli import Parser, describe, guarded
from acula_edge.errors import AculaError

#: fold -> (hold-out rule, the heart site trained on, the heart site tested on)
FOLDS = {"site-a": ("physionet2016:database=training-b", "training-a", "training-b"),
         "site-b": ("physionet2016:database=training-a", "training-b", "training-a")}
TASKS = {"physionet2016-abnormal": "heart", "sprsound-adventitious": "lung"}
PROBES = {"logmel-stats": "log-mel statistics + probe", "msm": "MSM only + probe", "teacher": "aligned + probe"}
TARGETS = {"heart": 0.85, "lung": 0.90}  # AUROC of the int8 student, mean over folds
ALIGN_GAIN = 0.03  # aligned over MSM only, mean of the real tasks
INT8_KEEP = 0.97  # int8 AUROC over fp32 AUROC, every task
SELECTION = {
    "training": "encoders, student and probes fitted on the train part of the training site and of the train children",
    "early_stopping": "none: each training stage runs the preset's fixed number of epochs",
    "probe_l2": "chosen on the val part (records of the training site; val children)",
    "head_thresholds": "chosen on the val part at 0.9 sensitivity (distill --calibrate-split val)",
    "recipe": "compared on the val columns only; the test columns are reported, never used to choose",
}


def fold_command(preset: str, out: Path, data: dict[str, Path], rule: str, threads: int,
                 sets: Sequence[str]) -> list[str]:
    """The pipeline command that trains one fold (stages up to ``verify``)."""
    cmd = [sys.executable, "-m", "acula_edge.pipeline", "--preset", preset, "--out", str(out),
           *(x for f, p in data.items() for x in ("--data", f"{f}={p}")), "--hold-out", rule, "--until", "verify",
           "--threads", str(threads)]
    return cmd + [x for s in sets for x in ("--set", s)]


def train_fold(cmd: list[str], out: Path) -> None:
    """Run the pipeline for one fold; its progress goes to stderr, a failing stage is one clear error."""
    print(f"generalization: training {out.name} (logs in {out / 'logs'})", file=sys.stderr, flush=True)
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    if r.returncode not in (0, 1) or not (out / "bundle" / "bundle.json").is_file():
        raise AculaError(f"the pipeline for {out.name} failed (exit {r.returncode}); see {out / 'logs'}")


def probe_rows(run: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """``{task: {encoder: {"test": ..., "val": ...}}}`` from the fold's ``evaluate`` stage (whose encoders
    may be named by the paths of the fold it was copied from, with ``--from``)."""
    def name(encoder: str) -> str | None:
        path = Path(encoder)
        return encoder if encoder == "logmel-stats" else (
            path.parent.name if path.name == "encoder.safetensors" and path.parent.name in PROBES else None)

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for x in json.loads((run / "evaluate" / "results.json").read_text())["results"]:
        if x["task"] in TASKS and name(x["encoder"]):
            seed = x["seeds"][0]
            out.setdefault(x["task"], {})[name(x["encoder"])] = {
                "test": {"auroc": x["auroc_mean"], "ci95": x["ci95"], "recordings": seed["n"]["test"]},
                "val": {"auroc": seed["val_auroc"], "recordings": seed["n"]["val"]}}
    return out


SCORES = "generalization-{part}.json"  # in the fold's run folder: every recording's scores per model


def model_rows(run: Path, threads: int, n_boot: int) -> tuple[dict[str, dict[str, dict[str, Any]]], dict[str, str]]:
    """``{task: {variant: {"test": ..., "val": ...}}}`` of the student in torch and every bundle file, and the
    variants' labels. Each part's recording scores go to ``RUN/`` :data:`SCORES` (for paired comparisons)."""
    import dataclasses

    from acula_edge.data.records import atomic_write_text
    from acula_edge.device.bundle import load_bundle
    from benchmarks.harness import FULL, score_bundles, task_arrays

    bundle = load_bundle(run / "bundle")
    heads = [h["name"] for h in bundle.heads]
    ckpt = str(bundle.source_checkpoint(None, "the student's rows"))
    s = dataclasses.replace(FULL, n_boot=n_boot)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    labels: dict[str, str] = {}
    for part in ("test", "val"):
        with tempfile.TemporaryDirectory() as tmp:
            sc = score_bundles([bundle], ckpt, None, list(TASKS), Path(tmp), s, threads, stream=False,
                               manifests=[str(run / "data" / f"{part}.jsonl")])
        saved: dict[str, Any] = {}
        for task, parts in sc.data.items():
            rows, y, subjects = task_arrays(parts["test"], sc.records)
            j = heads.index(task)
            saved[task] = {"ids": [sc.records[i].id for i in rows], "subjects": subjects.tolist(), "y": y.tolist(),
                           "scores": {v.name: [round(float(x), 6) for x in sc.scores[v.name]["offline"][rows, j]]
                                      for v in sc.variants}}
        atomic_write_text(run / SCORES.format(part=part), json.dumps(saved) + "\n")
        for v in sc.variants:
            labels[v.name] = v.label
            for task, cell in sc.accuracy[v.name].items():
                out.setdefault(task, {}).setdefault(v.name, {})[part] = cell["offline"]
    return out, labels


def evaluation_name(fold: str, task: str) -> str:
    _, train_site, test_site = FOLDS[fold]
    if TASKS[task] == "heart":
        return f"heart, {train_site} → {test_site}"
    return f"lung, unseen children (model of {fold})"


def targets(folds: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each with the measured value and whether it is met."""
    def test(fold: str, task: str, model: str) -> float | None:
        return (((folds[fold]["tasks"].get(task) or {}).get("models", {}).get(model) or {}).get("test") or {}).get("auroc")

    def mean(xs: list) -> float | None:
        return round(float(np.mean(xs)), 4) if xs and None not in xs else None

    out = []
    int8 = sorted({m for f in folds.values() for t in f["tasks"].values() for m in t["models"] if "int8" in m})
    for kind, goal in TARGETS.items():
        task = next(t for t, k in TASKS.items() if k == kind)
        for m in int8:
            v = mean([test(f, task, m) for f in folds])
            out.append({"target": f"{kind}: {m} AUROC, mean over folds", "goal": f">= {goal}", "value": v,
                        "met": v is not None and v >= goal})
    for f in folds:
        for task in TASKS:
            s, floor = test(f, task, "student-torch"), test(f, task, "logmel-stats")
            out.append({"target": f"{evaluation_name(f, task)}: student (torch) >= log-mel probe",
                        "goal": f">= {floor}", "value": s, "met": None not in (s, floor) and s >= floor})
    gain = mean([test(f, t, "teacher") - test(f, t, "msm") for f in folds for t in TASKS
                 if None not in (test(f, t, "teacher"), test(f, t, "msm"))])
    out.append({"target": "aligned - MSM only, mean of the real tasks", "goal": f">= {ALIGN_GAIN}", "value": gain,
                "met": gain is not None and gain >= ALIGN_GAIN})
    for f in folds:
        for task in TASKS:
            for m in int8:
                ref = "tflite-fp32" if m.startswith("tflite") else "onnx-fp32"
                a, b = test(f, task, m), test(f, task, ref)
                if None in (a, b):
                    continue
                keep = round(a / b, 4)
                out.append({"target": f"{evaluation_name(f, task)}: {m} / {ref}", "goal": f">= {INT8_KEEP}",
                            "value": keep, "met": keep >= INT8_KEEP})
    return out


def cell(c: dict[str, Any] | None) -> str:
    """An AUROC with its interval, as text."""
    if not c or c.get("auroc") is None:
        return "-"
    return f"{c['auroc']:.3f} [{c['ci95'][0]:.2f}, {c['ci95'][1]:.2f}]" if c.get("ci95") else f"{c['auroc']:.3f}"


def card_results(doc: dict[str, Any]) -> dict[str, Any]:
    """The section a bundle of this recipe carries in its model card (``pipeline --card-results``): test
    AUROC of the log-mel floor, the aligned probe, the student and each of its files, per evaluation."""
    models = list(dict.fromkeys(m for f in doc["folds"].values() for t in f["tasks"].values() for m in t["models"]
                                if m != "msm"))
    label = {**PROBES, **doc["labels"]}
    rows = [[evaluation_name(fold, task), f"{t['test']['recordings']} ({t['test']['subjects']} subjects)",
             *(cell(t["models"].get(m, {}).get("test")) for m in models)]
            for fold, f in doc["folds"].items() for task, t in f["tasks"].items()]
    return {"title": "The recipe on sites and children it never saw",
            "note": (f"AUROC [95% subject-bootstrap interval] of models trained with this bundle's recipe (preset "
                     f"`{doc['preset']}`) by `python -m benchmarks generalization`: heart trained on one PhysioNet "
                     "2016 site and tested on the other; lung tested on SPRSound children no training saw. They are "
                     "models of the same recipe on part of the data, not this bundle; its own test figures are "
                     "under Metrics."),
            "columns": ["evaluation", "test recordings", *(label.get(m, m) for m in models)], "rows": rows}


def table(doc: dict[str, Any]) -> str:
    """The results as Markdown."""
    models = list(dict.fromkeys(m for f in doc["folds"].values() for t in f["tasks"].values() for m in t["models"]))
    label = {**PROBES, **doc["labels"]}
    lines = []
    for part, title in (("test", "Test (sites and children never trained on): AUROC [95% subject-bootstrap interval]"),
                        ("val", "Validation (what a recipe may be chosen on): AUROC")):
        lines += [f"{title}", "", f"| evaluation | {part} recordings | " + " | ".join(label.get(m, m) for m in models)
                  + " |", "|---|---|" + "---|" * len(models)]
        for fold, f in doc["folds"].items():
            for task, t in f["tasks"].items():
                n = t[part]
                lines.append(f"| {evaluation_name(fold, task)} | {n['recordings']} ({n['positives']} pos) | "
                             + " | ".join(cell(t["models"].get(m, {}).get(part)) for m in models) + " |")
        lines.append("")
    lines += ["| target | goal | measured | met |", "|---|---|---|---|"]
    lines += [f"| {t['target']} | {t['goal']} | {t['value']} | {'yes' if t['met'] else 'no'} |" for t in doc["targets"]]
    lines += ["", "What chose what: " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in SELECTION.items()) + ".",
              "", f"Preset `{doc['preset']}`" + (f" with {', '.join(doc['set'])}" if doc["set"] else "") + "."]
    return "\n".join(lines) + "\n"


def part_counts(run: Path, task: str, part: str) -> dict[str, int]:
    """Recordings, subjects and positives of ``task`` in the fold's ``part`` (test or val)."""
    from acula_edge.data.records import read_manifest
    from acula_edge.data.tasks import get_task

    t = get_task(task)
    recs = [(r, t.label(r)) for r in read_manifest(run / "data" / f"{part}.jsonl") if r.dataset == t.dataset]
    recs = [(r, y) for r, y in recs if y in (0, 1)]
    return {"recordings": len(recs), "subjects": len({r.subject for r, _ in recs}),
            "positives": sum(int(y) for _, y in recs)}


def _parser() -> Parser:
    p = Parser(prog="python -m benchmarks generalization", description=describe(__doc__))
    p.add_argument("--preset", default="demo", help="the pipeline preset both folds train with (default demo)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="a preset override (repeat)")
    p.add_argument("--work", default="runs/generalization", help="where the folds' runs live (default runs/generalization)")
    p.add_argument("--from", dest="start_from", metavar="WORK",
                   help="start each fold that WORK lacks from a copy of another work folder's (an ablation: the "
                   "stages that the --set overrides leave unchanged, such as the teacher, are kept)")
    p.add_argument("--data", action="append", default=[], metavar="FORMAT=PATH",
                   help="physionet2016 and sprsound folders (default: ./data/FORMAT or ../shared/data/FORMAT)")
    p.add_argument("--fold", action="append", choices=list(FOLDS), help="only this fold (repeat; default both)")
    p.add_argument("--threads", type=int, help="CPU threads (default: every core)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples per interval")
    p.add_argument("--out", default="benchmarks/results/generalization", help="OUT.json and OUT.md")
    return p


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    import os

    from acula_edge.data.roots import data_overrides, data_root
    from acula_edge.provenance import machine, versions
    from benchmarks.common import save_with_table

    argv = list(sys.argv[1:] if argv is None else argv)
    a = _parser().parse_args(argv)
    threads = a.threads or os.cpu_count() or 1
    if threads < 1 or a.bootstrap < 10:
        raise AculaError("--threads must be at least 1 and --bootstrap at least 10")
    overrides = data_overrides(a.data)
    unknown = sorted(set(overrides) - {"physionet2016", "sprsound"})
    if unknown:
        raise AculaError(f"--data {unknown[0]}: this benchmark takes physionet2016 and sprsound")
    data = {}
    for fmt in ("physionet2016", "sprsound"):
        where = Path(overrides[fmt]) if fmt in overrides else data_root(fmt, {})
        if where is None or not where.is_dir():
            raise AculaError(f"no {fmt} data{f' at {where}' if where else ''}: give --data {fmt}=PATH "
                             "(its publisher's layout)")
        data[fmt] = where.resolve()
    work = Path(a.work)
    folds: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for fold in a.fold or list(FOLDS):
        rule, train_site, test_site = FOLDS[fold]
        run = work / fold
        if a.start_from and not run.exists():
            source = Path(a.start_from) / fold
            if not (source / ".pipeline").is_dir():
                raise AculaError(f"--from {a.start_from}: {source} is not a fold's run folder")
            shutil.copytree(source, run, symlinks=True, ignore=shutil.ignore_patterns("lock"))
        cmd = fold_command(a.preset, run, data, rule, threads, a.set)
        train_fold(cmd, run)
        probes = probe_rows(run)
        models, names = model_rows(run, threads, a.bootstrap)
        labels.update(names)
        verify = json.loads((run / "verify" / "report.json").read_text()) if (run / "verify" / "report.json").is_file() else {}
        folds[fold] = {"run": str(run), "command": cmd[1:], "hold_out": rule, "heart_trained_on": train_site,
                       "heart_tested_on": test_site, "verified": verify.get("ok"),
                       "splits": json.loads((run / "data" / "splits.json").read_text()),
                       "tasks": {t: {"evaluation": evaluation_name(fold, t),
                                     **{part: part_counts(run, t, part) for part in ("test", "val")},
                                     "models": {**probes.get(t, {}), **models.get(t, {})}} for t in TASKS}}
    settings = json.loads((Path(next(iter(folds.values()))["run"]) / "config.json").read_text())["settings"]
    doc = {"schema": 1, "preset": a.preset, "set": a.set, "settings": settings, "folds": folds, "labels": labels,
           "selection": SELECTION, "machine": machine(), "versions": versions("numpy", "torch", "onnxruntime",
                                                                                "ai_edge_litert")}
    doc["targets"] = targets(folds)
    doc["card"] = card_results(doc)
    save_with_table(doc, a.out, "benchmarks.generalization", argv, table(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
