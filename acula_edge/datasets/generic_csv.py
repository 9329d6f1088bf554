"""The generic CSV manifest of the contract, as a dataset format.

Its tasks are its columns (``csv:MANIFEST:COLUMN``, see :func:`acula_edge.data.tasks.get_task`) and
its report facts beyond the common ones are the columns given phrases (``reports --phrases``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from acula_edge.data.records import MODALITIES, Recording, read_csv_manifest
from acula_edge.datasets import Dataset, register_dataset
from acula_edge.datasets.common import require
from acula_edge.errors import DatasetError


def load_csv(root: Path, labels: list[str] | None = None, modality: str | None = None) -> list[Recording]:
    """``root`` is the CSV file, or a folder holding exactly one ``*.csv``."""
    if root.is_dir():
        found = sorted(root.glob("*.csv"))
        if len(found) != 1:
            raise DatasetError(f"{root}: expected one .csv manifest in the folder, found {len(found)}")
        root = found[0]
    records = read_csv_manifest(root, label_columns=labels, modality=modality)
    require(records, "recordings", root, "the CSV manifest has a header but no rows")
    return records


def report_facts(r: Recording) -> dict[str, Any]:
    """No facts of its own: a manifest's columns become facts through phrases."""
    return {}


register_dataset(Dataset(
    name="csv",
    loader=load_csv,
    facts=report_facts,
    licence="as the manifest's owner states it",
    modalities=MODALITIES,
))
