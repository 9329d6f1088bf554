"""``python -m acula_edge.data``: summarise datasets, inspect audio, write manifests and splits."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import Any, Sequence

import numpy as np

from acula_edge.cli import Parser, guarded
from acula_edge.data.records import MISSING, Recording, atomic_write_text, read_manifest, write_manifest
from acula_edge.errors import AculaError


def summarize(records: list[Recording]) -> dict[str, Any]:
    """Counts of recordings, subjects, duration, sample rates, modalities, splits and label values.

    Categorical labels map each value (and ``"missing"``) to a count; real-valued labels such as
    a heart rate get ``n``, ``min``, ``mean``, ``max`` and ``missing`` instead.
    """
    names = sorted({k for r in records for k in r.labels})
    labels: dict[str, dict[str, Any]] = {}
    for n in names:
        values = [r.label(n) for r in records]
        present = [v for v in values if v != MISSING]
        if present and all(isinstance(v, float) for v in present):
            arr = np.asarray(present, dtype=np.float64)
            labels[n] = {"n": arr.size, "min": round(float(arr.min()), 3), "mean": round(float(arr.mean()), 3),
                         "max": round(float(arr.max()), 3), MISSING: len(values) - arr.size}
        else:
            labels[n] = dict(Counter(str(v) for v in values).most_common())
    rates = Counter(r.sample_rate for r in records)
    return {
        "recordings": len(records),
        "subjects": len({r.subject for r in records}),
        "total_duration_s": round(sum(r.duration for r in records), 3),
        "sample_rates": {str(k): v for k, v in sorted(rates.items())},
        "modalities": dict(Counter(r.modality for r in records).most_common()),
        "splits": dict(Counter(r.split or MISSING for r in records).most_common()),
        "labels": labels,
    }


def _print_summary(s: dict[str, Any], where: str) -> None:
    print(f"{where}: {s['recordings']} recordings from {s['subjects']} subjects, "
          f"{s['total_duration_s'] / 3600:.2f} h")
    print("  sample rates: " + ", ".join(f"{k} Hz x{v}" for k, v in s["sample_rates"].items()))
    print("  modalities:   " + ", ".join(f"{k} {v}" for k, v in s["modalities"].items()))
    print("  splits:       " + ", ".join(f"{k} {v}" for k, v in s["splits"].items()))
    for name, counts in s["labels"].items():
        print(f"  label {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _summarize_cmd(a: argparse.Namespace) -> int:
    from acula_edge.data.loaders import load

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
        _print_summary(s, str(a.path))
        if a.manifest:
            print(f"  manifest written to {a.manifest}")
    return 0


def _inspect_cmd(a: argparse.Namespace) -> int:
    import numpy as np

    from acula_edge.audio import info, load

    rows = []
    for path in a.files:
        i = info(path)
        x, _ = load(path)
        rows.append({"path": path, "sample_rate": i.sample_rate, "channels": i.channels,
                     "duration_s": round(i.duration, 3), "format": i.format,
                     "peak": round(float(np.abs(x).max()), 4),
                     "rms_dbfs": round(float(10 * np.log10(np.mean(x.astype(np.float64) ** 2) + 1e-12)), 1)})
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
        fr = dict(zip(("train", "val", "test"), (float(x) for x in a.fractions.split(","))))
        if len(fr) != 3:
            raise AculaError("--fractions needs three numbers: train,val,test")
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
    from acula_edge.data.loaders import list_formats

    p = Parser(prog="python -m acula_edge.data", description=__doc__)
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
