"""The synthetic corpus written by ``python -m acula_edge.data.synth``.

Layout: ``manifest.jsonl`` (one :class:`Recording` per line, ``path`` relative to the folder),
``audio/<id>.wav``, ``synth_config.json``. ``root`` is that folder or the manifest file itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from acula_edge.data.loaders import register_loader, require
from acula_edge.data.records import Recording, read_manifest
from acula_edge.data.synth import MANIFEST_NAME
from acula_edge.errors import DatasetError


@register_loader("synthetic")
def load_synthetic(
    root: Path,
    modality: str | Iterable[str] | None = None,
    manifest: str = MANIFEST_NAME,
    check_files: bool = True,
) -> list[Recording]:
    """Records of a synthetic corpus with their audio paths resolved to real absolute paths.

    ``modality`` keeps only the given modality (or modalities); ``check_files`` (default on)
    fails when a listed WAV is missing.
    """
    root = Path(root)
    if root.is_file():
        path, base = root, root.parent
    else:
        path, base = root / manifest, root
    if not path.is_file():
        raise DatasetError(
            f"no synthetic-corpus manifest at {path}; write one with "
            f"`python -m acula_edge.data.synth --out {base} --n 100`"
        )
    records = read_manifest(path)  # relative audio paths resolved against the manifest's folder
    if modality is not None:
        wanted = {modality} if isinstance(modality, str) else set(modality)
        kept = [r for r in records if r.modality in wanted]
        require(kept, f"synthetic recordings of modality {', '.join(sorted(wanted))}", path,
                f"the manifest has {', '.join(sorted({r.modality for r in records})) or 'no recordings'}")
        records = kept
    require(records, "synthetic recordings", path, "the manifest is empty; regenerate the corpus")
    if check_files:
        missing = [r.path for r in records if not Path(r.path).is_file()]
        if missing:
            raise DatasetError(
                f"{path}: {len(missing)} of {len(records)} audio files are missing, "
                f"e.g. {missing[0]}; regenerate the corpus"
            )
    return records
