"""Tasks: a labelled question on one dataset's recordings, chosen by name (``get_task("sprsound-adventitious")``).

Each dataset module of :mod:`acula_edge.datasets` declares its tasks; this is their catalogue.
"""

from __future__ import annotations

from acula_edge.data.records import MISSING, Recording
from acula_edge.datasets import Task, get_dataset, list_datasets
from acula_edge.errors import AculaError

__all__ = ["Task", "get_task", "list_tasks", "task_records"]


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


def task_records(task: Task, records: list[Recording]) -> list[Recording]:
    """The recordings ``task`` labels, with the class under ``labels["_task"]``; an error unless both classes occur."""
    kept = []
    for r in records:
        y = task.label(r)
        if y is not None and y != MISSING and y == y:
            kept.append(Recording(**{**r.to_dict(), "labels": {**r.labels, "_task": y}}))
    if len({r.labels["_task"] for r in kept}) < 2:
        raise AculaError(f"task {task.name}: fewer than two classes among {len(kept)} labelled recordings")
    return kept
