"""``python -m acula_edge.evaluate``: frozen encoders judged by linear probes, AUROC with intervals.

The OPERA protocol: one embedding per recording from a frozen encoder; subject-grouped,
label-stratified train/val/test splits; a logistic-regression probe whose L2 strength is chosen
on validation AUROC only; 5 seeds; test AUROC as mean ± std over seeds, with a subject-level
bootstrap 95% interval. Several encoders run side by side on the same splits, on the same
recordings: those shorter than half of the longest encoder window are too short to score and left
out. A recording is decoded block by block, so memory does not grow with its length.

With ``--manifest`` files whose recordings all carry a ``split`` (train/val/test, as written by
``python -m acula_edge.data split`` or the pipeline), that split is used as it is: the probe is
fitted on train, chosen on val and scored on test, once (the probe's fit is deterministic).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from acula_edge.cli import Parser, describe, guarded
from acula_edge.data.records import atomic_write_text, read_manifest
from acula_edge.data.roots import data_overrides, load_task_records
from acula_edge.data.tasks import applies, get_task, list_tasks, task_records
from acula_edge.device.windows import MIN_FILL, long_enough
from acula_edge.encoders import make_encoder, unseen
from acula_edge.errors import AculaError
from acula_edge.probe import probe_task


def _table(results: list[dict[str, Any]], encoders: list[str], tasks: list[str]) -> str:
    lines = ["| task | " + " | ".join(encoders) + " |", "|---|" + "---|" * len(encoders)]
    for t in tasks:
        cells = []
        for e in encoders:
            r = next(x for x in results if x["task"] == t and x["encoder"] == e)
            cells.append(f"{r['auroc_mean']:.3f} ± {r['auroc_std']:.3f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m acula_edge.evaluate``."""
    p = Parser(prog="python -m acula_edge.evaluate", description=describe(__doc__))
    p.add_argument("--encoder", action="append", default=[], help="checkpoint or baseline (random-init, logmel-stats); repeat")
    p.add_argument("--task", action="append", default=[], help="task name or csv:MANIFEST:COLUMN; repeat")
    p.add_argument("--out", default="runs/evaluate", help="output folder (default runs/evaluate)")
    p.add_argument("--data", action="append", default=[], metavar="FORMAT=PATH", help="where a dataset lives; repeat")
    p.add_argument("--data-root", help="folder holding datasets in subfolders named by format (else $ACULA_DATA)")
    p.add_argument("--manifest", action="append", default=[], help="take the recordings from this manifest instead "
                   "(repeat); when each carries a train/val/test split, that split is used")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the interval")
    p.add_argument("--allow-overlap", action="store_true", help="score even when the encoder saw test subjects")
    p.add_argument("--unseen-only", action="store_true",
                   help="score only subjects that none of the encoders was trained on (the same recordings for all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for embedding (default 1)")
    p.add_argument("--list-tasks", action="store_true")
    a = p.parse_args(argv)
    if a.list_tasks:
        for name in list_tasks():
            print(f"{name:<26} {get_task(name).description}")
        return 0
    if not a.encoder or not a.task:
        raise AculaError("give at least one --encoder and one --task (see --list-tasks)")
    if a.seeds < 1 or a.bootstrap < 1:
        raise AculaError("--seeds and --bootstrap must be positive")
    overrides = data_overrides(a.data)
    out = Path(a.out)
    tasks = [get_task(t) for t in a.task]
    encoders = [make_encoder(e, a.threads) for e in a.encoder]
    t0 = time.perf_counter()
    results = []
    listed = [r for m in a.manifest for r in read_manifest(m)]  # a missing one is one clear error
    for task in tasks:
        records = (task_records(task, [r for r in listed if applies(task, r)]) if a.manifest
                   else load_task_records(task, overrides, a.data_root, out))
        longest = max((e.window_s for e in encoders if e.window_s), default=None)
        if longest:  # the same recordings for every encoder: none shorter than half of the longest window
            records, short = long_enough(records, longest)
            if short:
                print(f"{task.name}: {short} recordings too short to score (under {MIN_FILL:.0%} of a {longest:.2f} s "
                      "window) left out", file=sys.stderr)
        if a.unseen_only:
            records = unseen(records, set().union(*(e.trained_subjects for e in encoders)), task.name)
        for enc in encoders:
            emb = enc.embed(records)
            r = probe_task(emb, records, a.seeds, a.bootstrap, enc.trained_subjects, a.allow_overlap)
            results.append({"task": task.name, "encoder": enc.name, "allow_overlap": a.allow_overlap,
                            "unseen_only": a.unseen_only, **r})
            print(f"{task.name} | {enc.name}: AUROC {r['auroc_mean']:.3f} ± {r['auroc_std']:.3f} "
                  f"(95% CI {r['ci95'][0]:.2f}–{r['ci95'][1]:.2f}; {r['recordings']} recordings, "
                  f"{r['subjects']} subjects, " + ("the given split)" if r["fixed_split"] else f"{a.seeds} seeds)") + (" [test subjects overlap training]" if r["test_subject_overlap"] else ""))
    table = _table(results, [e.name for e in encoders], [t.name for t in tasks])
    from acula_edge.provenance import machine, versions

    doc = {"command": " ".join(["python -m acula_edge.evaluate", *(argv if argv is not None else sys.argv[1:])]),
           "protocol": ("frozen encoder, the manifests' own subject split, L2 logistic-regression probe fitted on "
                        "train and chosen on validation AUROC, test AUROC with a subject-bootstrap percentile interval"
                        if results and all(r["fixed_split"] for r in results) else
                        "frozen encoder, subject-grouped stratified 60/20/20 splits, L2 logistic-regression probe "
                        "chosen on validation AUROC, test AUROC mean ± std over seeds, 95% CI = mean of per-seed "
                        "subject-bootstrap percentile intervals"),
           "seconds": round(time.perf_counter() - t0, 1), "results": results, "machine": machine(),
           "versions": versions("numpy", "torch")}
    atomic_write_text(out / "results.json", json.dumps(doc, indent=2) + "\n")
    atomic_write_text(out / "results.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
