"""Datasets, one module each, chosen by name: ``load("sprsound", root)``, ``get_dataset("icbhi")``.

A dataset module (``acula_edge/datasets/<name>.py``) holds everything the package knows about one
dataset: its loader for the publisher's layout, its facts for the clinical reports, its tasks
(with zero-shot prompts where they exist), its licence, its modalities and the tasks the pipeline
trains heads for. It ends with ``register_dataset(Dataset(...))``. The loaders
(:func:`load`, :func:`list_formats`), the report facts (:func:`acula_edge.reports.extract_facts`),
the task catalogue (:func:`acula_edge.data.tasks.get_task`, ``list_tasks``) and the pipeline all
read this registry; the helpers the modules share live in :mod:`acula_edge.datasets.common`.

Adding a dataset is one new file plus its test: write ``acula_edge/datasets/<name>.py`` (copy the
shape of ``kauh.py``), add its name to ``_MODULES`` below (the order the CLIs list formats and
tasks in), and write ``tests/test_datasets_<name>.py`` with a tiny copy of the publisher's layout
and the exact records it must give. ``tests/test_datasets.py`` checks that every registered dataset
declares a loader, a licence, a modality, a facts extractor and at least one task.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from acula_edge.data.records import Recording, check_unique
from acula_edge.errors import AudioError, DatasetError
from acula_edge.registry import check_options

Loader = Callable[..., list[Recording]]
Extractor = Callable[[Recording], dict[str, Any]]

# dataset name -> its module in this package, in the order the CLIs list them
_MODULES = {
    "sprsound": "sprsound",
    "physionet2016": "physionet2016",
    "icbhi": "icbhi",
    "circor": "circor",
    "coswara": "coswara",
    "coughvid": "coughvid",
    "kauh": "kauh",
    "csv": "generic_csv",
    "synthetic": "synthetic",
}


@dataclass(frozen=True)
class Task:
    """A labelled subset of one dataset: ``label(record)`` gives a class, or None to leave it out."""

    name: str
    dataset: str
    label: Callable[[Recording], Any]
    description: str
    prompts: tuple[str, ...] | None = None  # zero-shot question: one text per class, negative first
    events: frozenset[str] = frozenset()  # annotated event types that make a stretch of a recording positive
    modality: str | None = None  # what it screens (lung, heart, cough, ...); None: its dataset's only modality


@dataclass(frozen=True)
class Dataset:
    """What the package knows about one dataset format."""

    name: str
    loader: Loader  # fn(root, *, option=default, ...) -> list[Recording]
    facts: Extractor  # fn(record) -> {canonical fact key: value} (acula_edge.reports.facts.FIELDS)
    licence: str  # as its publisher states it (written into model cards)
    modalities: tuple[str, ...]  # what its recordings hold (lung, heart, cough, breath, speech)
    tasks: tuple[Task, ...] = ()
    pipeline_tasks: tuple[str, ...] = ()  # the pipeline's heads on it; its subject split is stratified on them


_DATASETS: dict[str, Dataset] = {}


def _checked_loader(name: str, fn: Loader) -> Loader:
    """``fn`` taking exactly the keyword options it declares after ``root`` (others: one DatasetError)."""
    params = list(inspect.signature(fn).parameters.values())[1:]  # after root
    if any(p.kind is p.VAR_KEYWORD for p in params):
        raise TypeError(f"loader {name!r} must declare its options, not take **kwargs")
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

    @functools.wraps(fn)
    def loader(root: str | Path, **options: Any) -> list[Recording]:
        check_options(fn, options, f"format {name}", DatasetError, skip=1)
        return fn(Path(root), **options)

    loader.options = tuple(accepted)  # type: ignore[attr-defined]
    return loader


def register_dataset(dataset: Dataset) -> Dataset:
    """Register ``dataset`` under its name; its loader then rejects options it does not declare.

    The registered loader takes exactly the keyword options ``fn`` declares after ``root``: any
    other option is a :class:`DatasetError` (``format X does not take option(s) ...``), so a
    misspelt or misplaced option never passes silently. ``root`` is turned into a ``Path``. The
    loader's ``options`` attribute names the options it takes.
    """
    foreign = [t.name for t in dataset.tasks if t.dataset != dataset.name]
    if foreign:
        raise ValueError(f"dataset {dataset.name!r} declares tasks of another dataset: {', '.join(foreign)}")
    unknown = sorted(set(dataset.pipeline_tasks) - {t.name for t in dataset.tasks})
    if unknown:
        raise ValueError(f"dataset {dataset.name!r}: pipeline task(s) {', '.join(unknown)} are not its tasks")
    registered = dataclasses.replace(dataset, loader=_checked_loader(dataset.name, dataset.loader))
    _DATASETS[dataset.name] = registered
    return registered


def list_datasets() -> list[str]:
    """Names of the registered datasets."""
    return list(_MODULES)


def list_formats() -> list[str]:
    """Names of the dataset formats the loaders understand (the ``--format`` choices)."""
    return list_datasets()


def get_dataset(name: str) -> Dataset:
    """The dataset registered under ``name`` (its module imported on first use)."""
    if name not in _MODULES:
        raise DatasetError(f"unknown dataset format {name!r}; choose one of: {', '.join(_MODULES)}")
    if name not in _DATASETS:
        importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return _DATASETS[name]


def get_loader(name: str) -> Loader:
    """The loader of dataset ``name``."""
    return get_dataset(name).loader


def load(name: str, root: str | Path, probe_audio: bool = True, **options) -> list[Recording]:
    """Load the dataset at ``root`` in format ``name``; fill sample rate and duration from headers."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset path not found: {root}")
    records = get_loader(name)(root, **options)
    check_unique(records, hint="does the folder hold two copies of a release?")
    if probe_audio:
        probe(records)
    return records


def probe(records: list[Recording]) -> None:
    """Fill ``sample_rate`` and ``duration`` of records that lack them, from the audio headers."""
    from acula_edge.device.audio import info

    for r in records:
        if r.sample_rate and r.duration:
            continue
        try:
            i = info(r.path)
        except AudioError as e:
            raise DatasetError(f"recording {r.id}: {e}") from None
        r.sample_rate, r.duration = i.sample_rate, i.duration
