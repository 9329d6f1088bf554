"""The generic CSV manifest of the contract, as a dataset format."""

from __future__ import annotations

from pathlib import Path

from acula_edge.data.loaders import register_loader, require
from acula_edge.data.records import Recording, read_csv_manifest
from acula_edge.errors import DatasetError


@register_loader("csv")
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
