"""Loaders for each dataset's native layout, chosen by name: ``load("sprsound", root)``."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Callable

from acula_edge.data.records import Recording
from acula_edge.errors import AudioError, DatasetError

Loader = Callable[..., list[Recording]]
_LOADERS: dict[str, Loader] = {}
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
log = logging.getLogger(__name__)


def register_loader(name: str) -> Callable[[Loader], Loader]:
    """Register ``fn(root, **options) -> list[Recording]`` under ``name``."""

    def deco(fn: Loader) -> Loader:
        _LOADERS[name] = fn
        return fn

    return deco


def list_formats() -> list[str]:
    """Names of the dataset formats the loaders understand."""
    return list(_MODULES)


def get_loader(name: str) -> Loader:
    """The loader registered under ``name``."""
    if name not in _MODULES:
        raise DatasetError(f"unknown dataset format {name!r}; choose one of: {', '.join(_MODULES)}")
    if name not in _LOADERS:
        importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return _LOADERS[name]


def load(name: str, root: str | Path, probe_audio: bool = True, **options) -> list[Recording]:
    """Load the dataset at ``root`` in format ``name``; fill sample rate and duration from headers."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset path not found: {root}")
    records = get_loader(name)(root, **options)
    if probe_audio:
        probe(records)
    return records


def probe(records: list[Recording]) -> None:
    """Fill ``sample_rate`` and ``duration`` of records that lack them, from the audio headers."""
    from acula_edge.audio import info

    for r in records:
        if r.sample_rate and r.duration:
            continue
        try:
            i = info(r.path)
        except AudioError as e:
            raise DatasetError(f"recording {r.id}: {e}") from None
        r.sample_rate, r.duration = i.sample_rate, i.duration


def find_files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """All files under ``root`` with one of ``suffixes`` (case-insensitive), sorted, hidden ones skipped."""
    suffixes = tuple(s.lower() for s in suffixes)
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


def require(found: list, what: str, root: Path) -> None:
    """Fail with a clear message when a loader found nothing it recognises."""
    if not found:
        raise DatasetError(f"no {what} found under {root}: is this the right folder and --format?")
