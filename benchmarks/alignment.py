"""Does alignment help? MSM-only against MSM + alignment (each loss), random-init and log-mel statistics.

    python -m benchmarks.alignment [--work runs/alignment] [--synthetic 1200] [--pretrain-epochs 30]
                                   [--align-epochs 15] [--out benchmarks/results/alignment]

1. Data: a synthetic corpus (``--synthetic`` clips, seed 0) and, when present, the real recordings
   in ``../shared/data`` (SPRSound, PhysioNet 2016; or ``--data FORMAT=PATH``). Each dataset's
   subjects are split in half (stratified on the task label for the real datasets): encoders train
   on one half only.
2. Training, with the CLIs: ``acula_edge.align pretrain`` (MSM from random weights, the "before"
   encoder), then ``acula_edge.align train`` from it with each alignment loss (template reports
   from the metadata, the packaged all-MiniLM-L6-v2 teacher).
3. Evaluation: ``acula_edge.evaluate --unseen-only``, so every encoder is probed on the same
   subjects, none of which any encoder was trained on.

Writes ``OUT.json`` (every result, the commands, training summaries, machine) and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from acula_edge.data.records import Recording, atomic_write_text, write_manifest
from acula_edge.datasets import get_dataset
from acula_edge.provenance import machine, versions
from acula_edge.stages import Runner, Step, locked
from benchmarks.common import subject_parts, trained

LOSSES = ("cka", "cka-feature", "infonce")
# dataset -> (task whose label stratifies the subject split, tasks scored)
REAL = {"sprsound": ("sprsound-adventitious", ["sprsound-adventitious"]),
        "physionet2016": ("physionet2016-abnormal", ["physionet2016-abnormal"])}
SYNTHETIC_TASKS = list(get_dataset("synthetic").pipeline_tasks)


def encoder_half(records: list[Recording], task: str | None, seed: int) -> list[Recording]:
    """The records of half the subjects (stratified on ``task``'s label where given)."""
    assign = subject_parts(records, task, {"encoder": 0.5, "held_out": 0.5}, seed)
    return [r for r in records if assign[r.subject] == "encoder"]


def variance_share(x, groups) -> float:
    """Share of the total variance of rows ``x`` that lies between the groups' means (eta squared)."""
    import numpy as np

    mu = x.mean(0)
    total = float(((x - mu) ** 2).sum())
    between = sum(float(((x[groups == g].mean(0) - mu) ** 2).sum()) * int((groups == g).sum())
                  for g in np.unique(groups))
    return between / total if total > 0 else 0.0


def report_variance(records: list[Recording], tasks: dict[str, list[str]]) -> dict[str, float]:
    """What the teacher's embeddings of the training reports vary with: the source dataset over the
    whole mix, and each task's label within its dataset (share of variance between group means)."""
    import numpy as np

    from acula_edge.text_source import report_texts
    from acula_edge.data.tasks import get_task
    from acula_edge.text import EmbeddingCache, TextTeacher, default_cache_path, embed_with_cache

    with EmbeddingCache(default_cache_path()) as cache:
        emb = embed_with_cache(TextTeacher(), report_texts(records), cache)
    out = {"dataset": round(variance_share(emb, np.array([r.dataset for r in records])), 3)}
    for fmt, names in tasks.items():
        for name in names:
            idx = [i for i, r in enumerate(records) if r.dataset == fmt and get_task(name).label(r) is not None]
            labels = np.array([str(get_task(name).label(records[i])) for i in idx])
            out[name] = round(variance_share(emb[idx], labels), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.alignment", description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/alignment", help="working folder (corpus, runs, evaluation)")
    p.add_argument("--synthetic", type=int, default=1200, help="synthetic clips (default 1200)")
    p.add_argument("--data", action="append", default=[], metavar="FORMAT=PATH",
                   help="real dataset (default: sprsound and physionet2016 from ../shared/data when present)")
    p.add_argument("--pretrain-epochs", type=int, default=30)
    p.add_argument("--align-epochs", type=int, default=15)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/alignment", help="results prefix (.json and .md)")
    a = p.parse_args(argv)
    from acula_edge.data.roots import data_root
    from acula_edge.data.synth import generate
    from acula_edge.datasets import load

    work = Path(a.work)
    t0 = time.perf_counter()
    corpus = work / "synthetic"
    if not (corpus / "manifest.jsonl").exists():
        generate(corpus, a.synthetic, seed=0)
    elif len(load("synthetic", corpus)) != a.synthetic:
        raise SystemExit(f"error: {work} was made with another --synthetic; give a fresh --work")
    sources = {"synthetic": (corpus, None, SYNTHETIC_TASKS)}
    given = dict(d.split("=", 1) for d in a.data)
    for fmt, (strat, tasks) in REAL.items():
        where = Path(given[fmt]) if fmt in given else data_root(fmt, {})
        if where is not None:
            sources[fmt] = (where, strat, tasks)
    train_records: list[Recording] = []
    data_summary = {}
    for fmt, (where, strat, _) in sources.items():
        recs = load(fmt, where)
        half = encoder_half(recs, strat, seed=0)
        train_records += half
        data_summary[fmt] = {"path": str(where), "recordings": len(recs), "subjects": len({r.subject for r in recs}),
                             "encoder_recordings": len(half), "encoder_subjects": len({r.subject for r in half})}
    manifest = work / "encoder_train.jsonl"
    write_manifest(train_records, manifest)

    common = ["--manifest", str(manifest), "--threads", str(a.threads), "--quiet"]
    msm = work / "msm"
    runner = Runner(work)
    stages = [("msm", Step(["acula_edge.align", "pretrain", *common, "--out", str(msm), "--epochs",
                            str(a.pretrain_epochs)], inputs=[manifest], outputs=trained(msm), resumable=msm))]
    encoders = ["random-init", "logmel-stats", str(msm / "encoder.safetensors")]
    names = {"random-init": "random-init", "logmel-stats": "logmel-stats", encoders[2]: "MSM only"}
    for loss in LOSSES:
        run_dir = work / f"align-{loss}"
        stages.append((f"align-{loss}", Step(["acula_edge.align", "train", *common, "--init", encoders[2],
                                              "--loss", loss, "--out", str(run_dir), "--epochs", str(a.align_epochs)],
                                             inputs=[manifest, Path(encoders[2])], outputs=trained(run_dir),
                                             resumable=run_dir)))
        encoders.append(str(run_dir / "encoder.safetensors"))
        names[encoders[-1]] = f"MSM + align ({loss})"
    tasks = [t for _, _, ts in sources.values() for t in ts]
    ev = work / "evaluate"
    cmd = ["acula_edge.evaluate", "--unseen-only", "--threads", str(a.threads), "--seeds", str(a.seeds),
           "--out", str(ev), "--data", f"synthetic={corpus}"]
    cmd += [x for fmt, (where, _, _) in sources.items() if fmt != "synthetic" for x in ("--data", f"{fmt}={where}")]
    cmd += [x for e in encoders for x in ("--encoder", e)] + [x for t in tasks for x in ("--task", t)]
    stages.append(("evaluate", Step(cmd, inputs=[Path(e) for e in encoders[2:]] + [Path(w) for w, _, _ in sources.values()],
                                    outputs=[ev / "results.json"])))
    with locked(work / runner.state, "benchmark"):
        runner.run(stages)
    commands = runner.commands
    done = ev / "results.json"

    results = json.loads((ev / "results.json").read_text())["results"]
    for r in results:
        r["encoder"] = names[r["encoder"]]
    training = {}
    for run_dir in [msm] + [work / f"align-{loss}" for loss in LOSSES]:
        res = json.loads((run_dir / "result.json").read_text())
        training[run_dir.name] = {k: res.get(k) for k in ("steps", "epochs", "seconds", "clips_per_s", "final")}
    doc = {"question": "does alignment with a frozen text teacher improve linear-probe AUROC over MSM alone?",
           "protocol": "encoders trained on half of each dataset's subjects (stratified on the label for the real "
                       "datasets); every encoder probed on "
                       "the other half only (evaluate --unseen-only): subject-grouped 60/20/20 splits, L2 logistic "
                       f"probe chosen on validation, {a.seeds} seeds, mean ± std and a subject-bootstrap 95% interval",
           "scale": "vit-tiny (cpu-tiny preset), template reports, all-MiniLM-L6-v2 teacher, 2 CPU cores",
           "synthetic_note": "synthetic-* tasks are on generated audio: they test the machinery, not clinical value",
           "physionet_note": "PhysioNet 2016 publishes no patient ids: each recording counts as its own subject, so "
                             "'unseen' there means unseen recordings, possibly of patients seen in training",
           "report_variance": report_variance(train_records, {f: ts for f, (_, _, ts) in sources.items()}),
           "data": data_summary, "training": training, "results": results, "commands": commands,
           "seconds": {"training": round(sum(t["seconds"] for t in training.values()), 1),
                       "evaluation": json.loads(done.read_text())["seconds"],
                       "this_run": round(time.perf_counter() - t0, 1)},
           "machine": machine(), "versions": versions("torch", "numpy"),
           "command": shlex.join(["python", "-m", "benchmarks.alignment", *argv])}
    out = Path(a.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(doc, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(doc, [names[e] for e in encoders], tasks))
    print(markdown(doc, [names[e] for e in encoders], tasks))
    return 0


def markdown(doc: dict, encoders: list[str], tasks: list[str]) -> str:
    """The results table (AUROC mean ± std [95% CI]) and each aligned encoder's difference to MSM only."""
    cell = {(r["task"], r["encoder"]): r for r in doc["results"]}
    lines = [f"# Alignment at toy scale\n\n{doc['question']}\n\nProtocol: {doc['protocol']}.\n\nScale: {doc['scale']}. "
             f"Note: {doc['synthetic_note']}. {doc['physionet_note']}.\n\nMade by `{doc['command']}` (training "
             f"{doc['seconds']['training'] / 60:.0f} min, evaluation {doc['seconds']['evaluation'] / 60:.0f} min on "
             f"{doc['machine']['logical_cores']} cores).\n",
             "| task | subjects scored | " + " | ".join(encoders) + " |", "|---|---|" + "---|" * len(encoders)]
    for t in tasks:
        row = [f"{cell[t, e]['auroc_mean']:.3f} ± {cell[t, e]['auroc_std']:.3f} [{cell[t, e]['ci95'][0]:.2f}, "
               f"{cell[t, e]['ci95'][1]:.2f}]" for e in encoders]
        lines.append(f"| {t} | {cell[t, encoders[0]]['subjects']} | " + " | ".join(row) + " |")
    rv = doc["report_variance"]
    lines += ["", "Share of the variance of the training reports' teacher embeddings between group means: "
              f"source dataset {rv['dataset']:.2f} (whole mix); " +
              ", ".join(f"{t} label {rv[t]:.2f}" for t in tasks) + " (within each dataset).",
              "", "Aligned minus MSM only (mean AUROC over seeds):", ""]
    for e in encoders:
        if e.startswith("MSM + align"):
            diffs = [cell[t, e]["auroc_mean"] - cell[t, "MSM only"]["auroc_mean"] for t in tasks]
            lines.append(f"- {e}: " + ", ".join(f"{t} {d:+.3f}" for t, d in zip(tasks, diffs)))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
