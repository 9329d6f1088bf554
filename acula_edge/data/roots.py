"""Where each dataset lives (``--data FORMAT=PATH``, ``$ACULA_DATA``, conventional folders), a task's recordings
from there, and the training recordings of manifests and dataset folders."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from acula_edge.data.records import Recording, read_manifest
from acula_edge.data.tasks import Task, task_records
from acula_edge.errors import AculaError


def data_root(fmt: str, overrides: dict[str, str], root: str | None = None) -> Path | None:
    """Where dataset ``fmt`` lives: ``--data fmt=PATH``, ``$ACULA_DATA_<FMT>``, ``<--data-root or $ACULA_DATA>/fmt``,
    else the conventional ``./data/fmt`` or ``../shared/data/fmt`` (relative to the working directory)."""
    env = os.environ.get(f"ACULA_DATA_{fmt.upper()}")
    base = root or os.environ.get("ACULA_DATA")
    candidates = [overrides.get(fmt), env] + ([str(Path(base) / fmt)] if base else []) + \
                 [str(Path("data") / fmt), str(Path("..") / "shared" / "data" / fmt)]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    return None


def data_overrides(items: Sequence[str]) -> dict[str, str]:
    """``--data FORMAT=PATH`` arguments as ``{format: path}``."""
    from acula_edge.cli import data_pairs

    return dict(data_pairs(items))


def load_task_records(task: Task, overrides: dict[str, str], root: str | None, out: Path,
                      binary: bool = False) -> list[Recording]:
    """Recordings of ``task`` with a label (0/1 with ``binary``), from the resolved data root (the synthetic
    corpus is made if absent)."""
    from acula_edge.datasets import load

    if task.dataset.startswith("manifest:"):
        records = read_manifest(task.dataset.split(":", 1)[1])
        from acula_edge.datasets import probe

        probe(records)
    else:
        where = data_root(task.dataset, overrides, root)
        if where is None and task.dataset == "synthetic":
            from acula_edge.data.synth import generate

            where = out / "synthetic-corpus"
            if not (where / "manifest.jsonl").exists():
                print(f"no synthetic corpus given: writing 400 clips (seed 0) to {where}", file=sys.stderr)
                generate(where, 400, seed=0)
        if where is None:
            raise AculaError(f"no data for task {task.name}: give --data {task.dataset}=PATH, or set ACULA_DATA "
                             f"to a folder holding {task.dataset}/")
        records = load(task.dataset, where)
    return task_records(task, records, binary)


def load_sources(manifests: Sequence[str] = (), data: Sequence[str] = (), splits: Sequence[str] = ()) -> list[Recording]:
    """Recordings from manifests (JSONL or CSV) and ``FORMAT=PATH`` dataset folders.

    ``splits`` keeps only recordings whose ``split`` field is one of them (a manifest written by
    ``python -m acula_edge.data split``), so that an encoder is trained on training subjects only.
    """
    from acula_edge.cli import data_pairs
    from acula_edge.datasets import load

    records: list[Recording] = []
    for m in manifests:
        records += read_manifest(m)
    for fmt, path in data_pairs(data):
        records += load(fmt, path)
    if not records:
        raise AculaError("no training data: give --manifest PATH or --data FORMAT=PATH")
    if splits:
        have = sorted({str(r.split) for r in records})
        records = [r for r in records if r.split in splits]
        if not records:
            raise AculaError(f"no recording is in split {', '.join(splits)} (the manifests hold: {', '.join(have)})")
    missing = [r.path for r in records if not Path(r.path).is_file()]
    if missing:
        raise AculaError(f"{len(missing)} of {len(records)} training recordings are missing, e.g. {missing[0]}")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise AculaError(f"recording id {dup!r} appears twice among the training data (a manifest given twice?)")
    return records
