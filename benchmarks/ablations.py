"""What each change of the recipe does, against a baseline, on the generalisation benchmark's folds.

    python -m benchmarks.ablations --baseline runs/generalization \\
        --recipe "event labels=runs/gen-events" --recipe "EQ augmentation=runs/gen-eq" \\
        [--variant student-torch] [--out benchmarks/results/ablations]

Each work folder is one ``python -m benchmarks generalization`` run (the recordings' scores it saved
in ``WORK/FOLD/generalization-{val,test}.json``). For every recipe, fold and task: the variant's
AUROC and its paired difference to the baseline's on the same recordings, with a subject-bootstrap
95% interval, on the val part (what a recipe may be chosen on) and on the test part (a heart site
or children that no training saw: reported, never used to choose). The settings each recipe
changes are read from its folds' ``config.json``. Output: ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from acula_edge.cli import Parser, describe, guarded
from acula_edge.errors import AculaError

PARTS = ("val", "test")


def load_scores(work: Path, fold: str, part: str) -> dict[str, Any]:
    from benchmarks.generalization import SCORES

    path = work / fold / SCORES.format(part=part)
    if not path.is_file():
        raise AculaError(f"{path} is missing: run `python -m benchmarks generalization --work {work}` first")
    return json.loads(path.read_text())


def changed_settings(work: Path, baseline: Path, fold: str) -> dict[str, Any]:
    """The preset fields of ``work``'s fold that differ from the baseline's (a field that a run's
    ``config.json`` predates counts as the preset's default)."""
    from acula_edge.pipeline import with_defaults

    def settings(w: Path) -> dict[str, Any]:
        return with_defaults(json.loads((w / fold / "config.json").read_text())["settings"])

    mine, base = settings(work), settings(baseline)
    return {k: v for k, v in mine.items() if base.get(k) != v and k != "description"}


def compare(baseline: Path, recipes: dict[str, Path], variant: str, n_boot: int) -> dict[str, Any]:
    """Per recipe, fold, task and part: AUROC and the paired difference to the baseline."""
    from acula_edge.metrics import auroc, paired_delta_ci
    from benchmarks.generalization import FOLDS, evaluation_name

    folds = [f for f in FOLDS if (baseline / f).is_dir()]
    if not folds:
        raise AculaError(f"--baseline {baseline}: no fold of the generalisation benchmark there")
    out: dict[str, Any] = {}
    for name, work in {"baseline": baseline, **recipes}.items():
        rows: dict[str, Any] = {}
        for fold in folds:
            if not (work / fold).is_dir():
                continue
            for part in PARTS:
                base, mine = load_scores(baseline, fold, part), load_scores(work, fold, part)
                for task, m in mine.items():
                    b = base.get(task)
                    if b is None or b["ids"] != m["ids"]:
                        raise AculaError(f"{work / fold}: its {part} recordings of {task} are not the baseline's")
                    if variant not in m["scores"]:
                        raise AculaError(f"{work / fold}: no {variant} scores (it has {', '.join(m['scores'])})")
                    y, groups = np.array(m["y"]), np.array(m["subjects"])
                    p, ref = np.array(m["scores"][variant]), np.array(b["scores"][variant])
                    cell: dict[str, Any] = {"auroc": round(auroc(y, p), 4), "recordings": len(y)}
                    if name != "baseline":
                        lo, hi = paired_delta_ci(y, ref, p, groups, n_boot)
                        cell["delta"] = round(auroc(y, p) - auroc(y, ref), 4)
                        cell["delta_ci95"] = [round(lo, 4), round(hi, 4)]
                    rows.setdefault(evaluation_name(fold, task), {})[part] = cell
        out[name] = {"work": str(work), "evaluations": rows,
                     "changes": {} if name == "baseline" else changed_settings(work, baseline, next(
                         f for f in folds if (work / f).is_dir()))}
    return out


def table(doc: dict[str, Any]) -> str:
    evaluations = list(doc["recipes"]["baseline"]["evaluations"])
    lines = [f"`{doc['variant']}` AUROC on val (chooses) and test (reported); for each recipe the paired difference "
             "to the baseline on the same recordings [95% subject-bootstrap interval].", "",
             "| recipe | changes | " + " | ".join(evaluations) + " |", "|---|---|" + "---|" * len(evaluations)]
    for name, r in doc["recipes"].items():
        cells = []
        for e in evaluations:
            c = r["evaluations"].get(e)
            if not c:
                cells.append("-")
                continue
            parts = []
            for part in PARTS:
                x = c[part]
                parts.append(f"{part} {x['auroc']:.3f}" + (f" ({x['delta']:+.3f} [{x['delta_ci95'][0]:+.2f}, "
                                                           f"{x['delta_ci95'][1]:+.2f}])" if "delta" in x else ""))
            cells.append("<br>".join(parts))
        changes = ", ".join(f"{k}={v}" for k, v in r["changes"].items()) or "-"
        lines.append(f"| {name} | {changes} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.common import save_with_table

    argv = list(sys.argv[1:] if argv is None else argv)
    p = Parser(prog="python -m benchmarks.ablations", description=describe(__doc__))
    p.add_argument("--baseline", required=True, help="the baseline recipe's work folder")
    p.add_argument("--recipe", action="append", default=[], metavar="NAME=WORK", help="a recipe's work folder (repeat)")
    p.add_argument("--variant", default="student-torch", help="which model's scores (default student-torch)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", default="benchmarks/results/ablations", help="OUT.json and OUT.md")
    a = p.parse_args(argv)
    recipes = {}
    for item in a.recipe:
        name, sep, work = item.partition("=")
        if not sep or not name or not work or name == "baseline":
            raise AculaError(f"--recipe {item!r}: write NAME=WORK (NAME not 'baseline')")
        recipes[name] = Path(work)
    doc = {"schema": 1, "variant": a.variant, "baseline": a.baseline,
           "recipes": compare(Path(a.baseline), recipes, a.variant, a.bootstrap)}
    save_with_table(doc, a.out, "benchmarks.ablations", argv, table(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
