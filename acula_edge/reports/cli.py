"""``python -m acula_edge.reports``: write the clinical report of every recording of a dataset."""

from __future__ import annotations

import json
import string
import sys
import time
from pathlib import Path
from typing import Sequence

from acula_edge.cli import Parser, describe, guarded
from acula_edge.data.records import atomic_write_text, read_manifest
from acula_edge.errors import AculaError
from acula_edge.progress import progress
from acula_edge.reports import TEMPLATE_VERSION, REGISTERS, check, extract_facts, list_fields, render
from acula_edge.reports.facts import check_withhold
from acula_edge.reports.store import ReportEntry, ReportStore, metadata_hash


def _parser() -> Parser:
    from acula_edge.datasets import list_formats

    p = Parser(prog="python -m acula_edge.reports", description=describe(__doc__))
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", help="dataset folder in its publisher's layout (with --format)")
    src.add_argument("--manifest", help="a JSONL manifest (python -m acula_edge.data summarize --manifest)")
    p.add_argument("--format", choices=list_formats(), help="dataset format of --data")
    p.add_argument("--out", help="report store to write (JSONL)")
    p.add_argument("--llm", metavar="PATH", help="reword with a local causal LM (model folder or .gguf file)")
    p.add_argument("--withhold", nargs="+", default=[], metavar="FIELD", help="facts to leave out (see --list-fields)")
    p.add_argument("--register", choices=REGISTERS, default="clinical")
    p.add_argument("--seed", type=int, default=0, help="wording seed (default 0)")
    p.add_argument("--phrases", metavar="JSON", help="generic CSV: a JSON file mapping column -> phrase with {value}")
    p.add_argument("--labels", help="generic CSV: comma-separated label columns")
    p.add_argument("--show", type=int, default=0, metavar="N", help="print N reports, spread over the dataset, when done")
    p.add_argument("--list-fields", action="store_true", help="print the fact fields and exit")
    return p


def _phrases(path: str | None) -> dict[str, str] | None:
    if not path:
        return None
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AculaError(f"--phrases {path}: not a readable JSON file ({type(e).__name__})") from None
    if not isinstance(d, dict) or not all(isinstance(v, str) and _fields(v) == {"value"} for v in d.values()):
        raise AculaError(f"--phrases {path}: expected {{\"column\": \"phrase with {{value}}\", ...}} "
                         "({value} being the only placeholder)")
    return d


def _fields(phrase: str) -> set[str] | None:
    """The placeholders of a phrase, or None when it is not a valid format string."""
    try:
        return {name for _, name, _, _ in string.Formatter().parse(phrase) if name is not None}
    except ValueError:
        return None


def _check_records(records: list) -> None:
    """A report describes a recording that exists, from labels that say one thing: recordings missing on
    disk and labels that mix a binary pair with other values (``yes, no, maybe``) are one error."""
    from acula_edge.data.tasks import check_label_values

    missing = [r.path for r in records if not Path(r.path).is_file()]
    if missing:
        raise AculaError(f"{len(missing)} of {len(records)} recordings do not exist (first: {missing[0]})")
    check_label_values(records)


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m acula_edge.reports``."""
    a = _parser().parse_args(argv)
    if a.list_fields:
        for k, v in list_fields().items():
            print(f"{k:<18} {v}")
        return 0
    if not a.out or not (a.data or a.manifest) or (a.data and not a.format):
        raise AculaError("give --out and either --manifest or --data with --format")
    phrases = _phrases(a.phrases)
    check_withhold(a.withhold, phrases)
    if a.manifest:
        records = read_manifest(a.manifest)
    else:
        from acula_edge.datasets import load

        opts = {"labels": [c for c in a.labels.split(",") if c]} if a.labels else {}
        records = load(a.format, a.data, probe_audio=False, **opts)
    _check_records(records)
    rewriter = None
    if a.llm:
        from acula_edge.reports.llm import LocalRewriter

        rewriter = LocalRewriter(a.llm)
    requested = rewriter.name if rewriter else "template"
    requested_version = rewriter.version if rewriter else TEMPLATE_VERSION  # a new version redoes all
    store = ReportStore(a.out)
    counts = {"new": 0, "up_to_date": 0, "model_accepted": 0, "model_rejected": 0}
    t0 = time.perf_counter()
    try:
        for r in progress(records, desc="reports"):
            facts = extract_facts(r, a.withhold, phrases)
            h = metadata_hash(facts, register=a.register, seed=a.seed, phrases=phrases, generator=requested_version)
            if store.current(r.id, h, requested):
                counts["up_to_date"] += 1
                continue
            text = render(facts, a.register, a.seed, r.id, phrases)
            generator, version, reasons = "template", TEMPLATE_VERSION, []
            if rewriter:
                candidate = rewriter.rewrite(facts, text)
                verdict = check(facts, candidate)
                if verdict.ok:
                    text, generator, version = candidate, rewriter.name, rewriter.version
                    counts["model_accepted"] += 1
                else:
                    reasons = verdict.reasons
                    counts["model_rejected"] += 1
            store.add(ReportEntry(r.id, text, generator, version, h, requested, a.register, a.seed,
                                  sorted(a.withhold), [f.as_json() for f in facts], reasons))
            counts["new"] += 1
    finally:
        kept = store.finish(r.id for r in records)
    run = {"out": a.out, "recordings": len(records), **counts, "seconds": round(time.perf_counter() - t0, 2),
           "config": {k: v for k, v in vars(a).items() if k not in ("show", "list_fields")}}
    atomic_write_text(str(a.out) + ".run.json", json.dumps(run, indent=2) + "\n")
    if a.show and kept:
        step = max(1, len(kept) // a.show)
        for e in kept[::step][: a.show]:
            print(f"{e.id}: {e.text}")
    msg = f"wrote {len(kept)} reports to {a.out} ({counts['new']} new, {counts['up_to_date']} up to date)"
    if rewriter:
        n = counts["model_accepted"] + counts["model_rejected"]
        msg += f"; {requested}: {counts['model_accepted']}/{n} accepted by the fact guard, the rest kept the template"
    print(msg, file=sys.stderr)
    return 0
