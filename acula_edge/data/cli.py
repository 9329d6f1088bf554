"""``python -m acula_edge.data``: summarise datasets, inspect audio, write manifests and splits."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Sequence

from acula_edge.cli import Parser, describe, guarded
from acula_edge.data.records import atomic_write_text, read_manifest, write_manifest
from acula_edge.data.summary import print_summary, summarize
from acula_edge.errors import AculaError


def _summarize_cmd(a: argparse.Namespace) -> int:
    from acula_edge.datasets import load

    options = {}
    if a.labels:
        options["labels"] = [c.strip() for c in a.labels.split(",") if c.strip()]
    records = load(a.format, a.path, **options)
    s = summarize(records)
    if a.manifest:
        write_manifest(records, a.manifest)
    if a.json:
        print(json.dumps({"path": str(a.path), "format": a.format, **s}))
    else:
        print_summary(s, str(a.path))
        if a.manifest:
            print(f"  manifest written to {a.manifest}")
    return 0


def _inspect_cmd(a: argparse.Namespace) -> int:
    import numpy as np

    from acula_edge.device.audio import info, iter_blocks

    rows = []
    for path in a.files:
        i = info(path)
        peak, energy, n = 0.0, 0.0, 0
        for x in iter_blocks(path):  # block by block: memory does not grow with the recording's length
            peak = max(peak, float(np.abs(x).max()))
            energy += float(np.sum(np.square(x, dtype=np.float64)))
            n += x.size
        rows.append({"path": path, "sample_rate": i.sample_rate, "channels": i.channels,
                     "duration_s": round(i.duration, 3), "format": i.format, "peak": round(peak, 4),
                     "rms_dbfs": round(float(10 * np.log10(energy / max(n, 1) + 1e-12)), 1)})
    for r in rows:
        print(json.dumps(r) if a.json else
              f"{r['path']}: {r['sample_rate']} Hz, {r['channels']} ch, {r['duration_s']} s, {r['format']}, "
              f"peak {r['peak']}, rms {r['rms_dbfs']} dBFS")
    return 0


def _split_cmd(a: argparse.Namespace) -> int:
    from acula_edge.data.splits import kfold_subjects, split_subjects

    records = read_manifest(a.manifest)
    if a.kfold:
        assign = {s: f"fold{k}" for s, k in kfold_subjects(records, a.kfold, a.label, a.seed).items()}
    else:
        try:
            values = [float(x) for x in a.fractions.split(",")]
        except ValueError:
            values = []
        if len(values) != 3:
            raise AculaError(f"--fractions needs three numbers train,val,test, got {a.fractions!r}")
        fr = dict(zip(("train", "val", "test"), values))
        assign = split_subjects(records, a.label, fr, a.seed)
    for r in records:
        r.split = assign[r.subject]
    write_manifest(records, a.out)
    counts = Counter(r.split for r in records)
    atomic_write_text(f"{a.out}.split.json", json.dumps(
        {"manifest": a.manifest, "label": a.label, "seed": a.seed, "kfold": a.kfold,
         "fractions": a.fractions, "recordings": dict(sorted(counts.items()))}, indent=2) + "\n")
    print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f" -> {a.out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m acula_edge.data``."""
    from acula_edge.datasets import list_formats

    p = Parser(prog="python -m acula_edge.data", description=describe(__doc__))
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("summarize", help="load a dataset in its native layout and summarise it")
    s.add_argument("path", help="dataset folder (or CSV manifest for --format csv)")
    s.add_argument("--format", required=True, choices=list_formats())
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.add_argument("--manifest", metavar="OUT.jsonl", help="also write the records as a JSONL manifest")
    s.add_argument("--labels", help="for --format csv: comma-separated label columns")
    s.set_defaults(fn=_summarize_cmd)
    i = sub.add_parser("inspect", help="validate audio files and print what they hold")
    i.add_argument("files", nargs="+")
    i.add_argument("--json", action="store_true")
    i.set_defaults(fn=_inspect_cmd)
    sp = sub.add_parser("split", help="subject-grouped, label-stratified train/val/test or k-fold split")
    sp.add_argument("manifest", help="JSONL manifest (or generic CSV)")
    sp.add_argument("--label", help="label to stratify on")
    sp.add_argument("--fractions", default="0.7,0.1,0.2", help="train,val,test (default 0.7,0.1,0.2)")
    sp.add_argument("--kfold", type=int, default=0, help="k folds instead of train/val/test")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out", required=True, help="output JSONL manifest with the split field set")
    sp.set_defaults(fn=_split_cmd)
    return p


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m acula_edge.data``."""
    a = build_parser().parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
