"""Tasks: a labelled question on one dataset's recordings, chosen by name (``get_task("sprsound-adventitious")``).

Each dataset module of :mod:`acula_edge.datasets` declares its tasks; this is their catalogue.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from acula_edge.data.records import MISSING, Recording
from acula_edge.datasets import Task, get_dataset, list_datasets
from acula_edge.errors import AculaError

__all__ = ["Task", "applies", "binary_labels", "check_label_values", "get_task", "head_tasks", "list_tasks", "task_modality",
           "task_records"]

#: the pairs of values a binary label column may hold (case-insensitive), negative first
BINARY_PAIRS = ((0, 1), (-1, 1), ("false", "true"), ("no", "yes"), ("negative", "positive"), ("normal", "abnormal"),
                ("absent", "present"))


def _catalogue() -> dict[str, Task]:
    """Every dataset's tasks by name, in the order of the datasets."""
    return {t.name: t for d in list_datasets() for t in get_dataset(d).tasks}


def list_tasks() -> list[str]:
    """Registered task names (plus ``csv:MANIFEST:COLUMN`` for any manifest)."""
    return list(_catalogue())


def get_task(name: str) -> Task:
    """A registered task, or ``csv:MANIFEST:COLUMN`` (any label or metadata column of a manifest)."""
    if name.startswith("csv:"):
        manifest, _, column = name[4:].rpartition(":")
        if not manifest or not column:
            raise AculaError(f"task {name!r}: write csv:MANIFEST:COLUMN")
        return Task(name, f"manifest:{manifest}",
                    lambda r: r.labels.get(column, r.metadata.get(column)), f"{column} of {manifest}")
    tasks = _catalogue()
    if name not in tasks:
        raise AculaError(f"unknown task {name!r}; choose from: {', '.join(tasks)} or csv:MANIFEST:COLUMN")
    return tasks[name]


def task_modality(task: Task) -> str | None:
    """What ``task`` screens: its own modality, else its dataset's when the dataset holds one only; None
    (any recording) for a manifest column or a dataset of several modalities."""
    if task.modality or task.dataset.startswith("manifest:"):
        return task.modality
    modalities = get_dataset(task.dataset).modalities
    return modalities[0] if len(modalities) == 1 else None


def task_records(task: Task, records: list[Recording], binary: bool = False) -> list[Recording]:
    """The recordings ``task`` labels, with the class under ``labels["_task"]`` (0/1 with ``binary``, as
    :func:`binary_labels` gives it); an error unless both classes occur."""
    kept = []
    ys = binary_labels(task, records) if binary else [task.label(r) for r in records]
    if not binary:
        _check_classes(task, [y for y in ys if y is not None and y != MISSING and y == y])
    for r, y in zip(records, ys):
        if y is not None and y != MISSING and y == y:
            y = int(y) if binary else y
            kept.append(Recording(**{**r.to_dict(), "labels": {**r.labels, "_task": y}}))
    if len({r.labels["_task"] for r in kept}) < 2:
        raise AculaError(f"task {task.name}: fewer than two classes among {len(kept)} labelled recordings")
    return kept


def _is_number(v: Any) -> bool:
    if isinstance(v, (bool, np.bool_)):
        return False
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def _check_classes(task: Task, values: Sequence[Any]) -> None:
    """Class labels are all text or all whole numbers: numbers beside text, or fractions (a measurement,
    not a class), are one error that names the values, not a many-class task."""
    numbers = [v for v in values if _is_number(v)]
    if (numbers and len(numbers) < len(values)) or any(not float(v).is_integer() for v in numbers):
        shown = ", ".join(sorted({str(_value(v)) for v in values})[:8])
        raise AculaError(f"task {task.name}: its labels are not classes (values: {shown}); give whole-number or "
                         "text classes, not both, and no fractions")


def applies(task: Task, r: Recording) -> bool:
    """Whether ``task`` can label ``r``: a manifest column labels any recording, a dataset's task its own."""
    return task.dataset.startswith("manifest:") or r.dataset == task.dataset


def _value(v: Any) -> Any:
    """A label value as it is compared with :data:`BINARY_PAIRS` (integral numbers as int, text lower-case)."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return int(v) if float(v).is_integer() else float(v)
    return str(v).strip().lower()


def binary_labels(task: Task, records: Sequence[Recording]) -> np.ndarray:
    """``[N]`` float 0/1 labels of ``task`` (NaN where it labels no class); values that are not one of
    :data:`BINARY_PAIRS` are one clear error that names them."""
    raw = [task.label(r) if applies(task, r) else None for r in records]
    known = [v is not None and v != MISSING and v == v for v in raw]
    values = {_value(v) for v, k in zip(raw, known) if k}
    pair = next((p for p in BINARY_PAIRS if values <= set(p)), None)
    if pair is None:
        shown = ", ".join(sorted(map(str, values))[:8])
        raise AculaError(f"task {task.name}: its labels are not binary (values: {shown}); a head is scored on 0/1, "
                         "no/yes, negative/positive or normal/abnormal")
    return np.array([float(_value(v) == pair[1]) if k else np.nan for v, k in zip(raw, known)], np.float32)


def check_label_values(records: Sequence[Recording]) -> None:
    """A label whose values hold both sides of a binary pair (0/1, no/yes, ...) and also other text,
    such as ``yes, no, maybe``, is one error that names the values: it is neither a binary label nor
    classes. Absent values (empty, NA, unknown) are not counted."""
    from acula_edge.reports.facts import is_present

    values: dict[str, set] = {}
    for r in records:
        for name, v in r.labels.items():
            if isinstance(v, (str, int, float, bool, np.integer, np.floating)) and is_present(v) and v == v:
                values.setdefault(name, set()).add(_value(v))
    for name, vs in sorted(values.items()):
        pair = next((p for p in BINARY_PAIRS if set(p) <= vs), None)
        other = sorted(str(v) for v in vs - set(pair or ()) if isinstance(v, str))
        if pair and other:
            shown = ", ".join(sorted(map(str, vs))[:8])
            raise AculaError(f"label {name!r} mixes {pair[0]}/{pair[1]} with {', '.join(other[:4])} (values: {shown}): "
                             "give a binary label one of 0/1, no/yes, false/true, negative/positive, normal/abnormal "
                             "or absent/present, and leave unknown values empty")


def head_tasks(specs: Sequence[str], heads: Sequence[str]) -> dict[str, Task]:
    """Head name -> the task whose labels score it. ``specs``: ``TASK=HEAD`` (e.g.
    ``csv:MANIFEST:COLUMN=physionet2016-abnormal``) or a registered ``TASK`` that is itself a head;
    without any, every head that is a registered task scores itself."""
    if not specs:
        catalogue = _catalogue()
        return {h: catalogue[h] for h in heads if h in catalogue}
    out: dict[str, Task] = {}
    for spec in specs:
        name, sep, head = spec.rpartition("=")
        if not sep:
            name = head = spec
        task = get_task(name)  # an unknown task: one clear error naming the registered ones
        if head not in heads:
            raise AculaError(f"--task {spec}: the bundle has no head {head!r} (its heads: {', '.join(heads)}); "
                             "write TASK=HEAD")
        if head in out:
            raise AculaError(f"--task {spec}: head {head} is scored by another --task already")
        out[head] = task
    return out
