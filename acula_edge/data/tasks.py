"""Tasks: a labelled question on one dataset's recordings, chosen by name (``get_task("sprsound-adventitious")``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from acula_edge.data.records import MISSING, Recording
from acula_edge.errors import AculaError


@dataclass(frozen=True)
class Task:
    """A labelled subset of one dataset: ``label(record)`` gives a class, or None to leave it out."""

    name: str
    dataset: str
    label: Callable[[Recording], Any]
    description: str
    prompts: tuple[str, ...] | None = None  # zero-shot question: one text per class, negative first


_TASKS: dict[str, Task] = {}


def register_task(name: str, dataset: str, description: str,
                  prompts: tuple[str, ...] | None = None) -> Callable[[Callable], Callable]:
    """Register ``fn(record) -> class or None`` as task ``name`` on ``dataset``; ``prompts`` (one
    text per class, class 0 first) make it a zero-shot question."""

    def deco(fn: Callable[[Recording], Any]) -> Callable:
        _TASKS[name] = Task(name, dataset, fn, description, prompts)
        return fn

    return deco


def list_tasks() -> list[str]:
    """Registered task names (plus ``csv:MANIFEST:COLUMN`` for any manifest)."""
    return list(_TASKS)


def _binary(value: Any, positive: set, negative: set) -> int | None:
    return 1 if value in positive else 0 if value in negative else None


def _label(name: str, positive: set = frozenset({1}), negative: set = frozenset({0})) -> Callable:
    return lambda r: _binary(r.labels.get(name), positive, negative)


#: Zero-shot questions in the words of the clinical reports (acula_edge.reports): normal answer first.
LUNG_PROMPTS = ("Lung auscultation. Normal lung sounds with no adventitious sounds.",
                "Lung auscultation. Adventitious sounds are heard: wheezes or crackles.")
HEART_PROMPTS = ("Phonocardiogram. The heart sounds were classified as normal.",
                 "Phonocardiogram. The heart sounds were classified as abnormal.")
COUGH_PROMPTS = ("Cough recording. The cough sounds dry.", "Cough recording. The cough sounds wet.")

for _n in ("adventitious", "cas", "das"):
    register_task(f"sprsound-{_n}", "sprsound", f"SPRSound record-level {_n} (0/1); Poor Quality recordings left out",
                  LUNG_PROMPTS if _n == "adventitious" else None)(_label(_n))
register_task("physionet2016-abnormal", "physionet2016", "PhysioNet 2016 abnormal vs normal heart sounds",
              HEART_PROMPTS)(_label("abnormal", {"abnormal"}, {"normal"}))
register_task("synthetic-adventitious", "synthetic", "synthetic lung clips with wheezes or crackles",
              LUNG_PROMPTS)(_label("adventitious"))
register_task("synthetic-wheeze", "synthetic", "synthetic lung clips with wheezes")(_label("wheeze"))
register_task("synthetic-crackle", "synthetic", "synthetic lung clips with crackles")(_label("crackle"))
register_task("synthetic-abnormal-heart", "synthetic", "synthetic heart clips, abnormal vs normal", HEART_PROMPTS)(
    _label("abnormal", {"abnormal"}, {"normal"}))
register_task("synthetic-wet-cough", "synthetic", "synthetic coughs, wet vs dry", COUGH_PROMPTS)(
    _label("cough_type", {"wet"}, {"dry"}))
register_task("icbhi-copd", "icbhi", "ICBHI recordings of COPD patients vs all others")(
    lambda r: None if r.labels.get("diagnosis") is None else int(r.labels["diagnosis"] == "COPD"))
register_task("kauh-obstructive", "kauh", "KAUH obstructive disease (asthma, COPD) vs normal")(
    lambda r: _binary(r.labels.get("diagnosis"), {"Asthma", "COPD"}, {"Normal"}))
register_task("circor-murmur", "circor", "CirCor murmur heard at this location (present vs absent)",
              ("Cardiac auscultation. There is no murmur at this site.", "Cardiac auscultation. A murmur is heard."))(
    _label("murmur_at_location", {"Present"}, {"Absent"}))
register_task("coswara-smoker", "coswara", "Coswara smokers vs non-smokers, heavy-cough recordings")(
    lambda r: None if r.metadata.get("sound") != "cough-heavy" else _binary(r.metadata.get("smoker"), {True}, {False}))
register_task("coswara-sex", "coswara", "Coswara sex (female vs male), heavy-cough recordings")(
    lambda r: None if r.metadata.get("sound") != "cough-heavy" else _binary(r.metadata.get("sex"), {"female"}, {"male"}))
register_task("coughvid-covid", "coughvid", "COUGHVID self-reported COVID-19 vs healthy",
              ("Cough recording. No known disease (healthy).", "Cough recording. Diagnosis: COVID-19."))(
    _label("status", {"COVID-19"}, {"healthy"}))
register_task("coughvid-sex", "coughvid", "COUGHVID sex (female vs male)")(
    lambda r: _binary(r.metadata.get("sex"), {"female"}, {"male"}))


def get_task(name: str) -> Task:
    """A registered task, or ``csv:MANIFEST:COLUMN`` (any label or metadata column of a manifest)."""
    if name.startswith("csv:"):
        manifest, _, column = name[4:].rpartition(":")
        if not manifest or not column:
            raise AculaError(f"task {name!r}: write csv:MANIFEST:COLUMN")
        return Task(name, f"manifest:{manifest}",
                    lambda r: r.labels.get(column, r.metadata.get(column)), f"{column} of {manifest}")
    if name not in _TASKS:
        raise AculaError(f"unknown task {name!r}; choose from: {', '.join(_TASKS)} or csv:MANIFEST:COLUMN")
    return _TASKS[name]


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
