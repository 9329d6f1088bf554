"""PhysioNet/CinC Challenge 2016 heart sounds: ``training-x/REFERENCE.csv`` plus ``*.wav`` and ``*.hea``.

``REFERENCE.csv`` rows are ``record,label`` with 1 = abnormal and -1 = normal. Beside it, the
official release has ``REFERENCE-SQI.csv`` with rows ``record,label,sqi``: the last column is the
signal quality (1 = good, 0 = poor), stored as metadata ``signal_quality``; its label column is
never read. The official download also has a ``validation/`` folder that re-lists records of the
training sets: it is skipped unless ``include_validation=True`` (or ``root`` is that folder).
No patient id is published, so each record is its own subject: one patient may own several
records, and splits of this set cannot be guaranteed subject-disjoint.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from acula_edge.data.records import Recording
from acula_edge.datasets import Dataset, Task, register_dataset
from acula_edge.datasets.common import HEART_PROMPTS, binary_label, read_csv_lists, require
from acula_edge.errors import DatasetError

LABELS = {"1": "abnormal", "-1": "normal"}
QUALITY = {"1": "good", "0": "poor"}
VALIDATION = "validation"
log = logging.getLogger(__name__)


def _read_hea(path: Path) -> tuple[int, int]:
    """Sample rate and sample count from a WFDB header's first line."""
    first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].split()
    try:
        return int(float(first[2])), int(first[3])
    except (IndexError, ValueError):
        raise DatasetError(f"{path}: not a WFDB header") from None


def _read_sqi(path: Path) -> dict[str, str]:
    """Record name to signal quality (good/poor) from ``REFERENCE-SQI.csv`` (``record,label,sqi``)."""
    quality = {}
    for row in read_csv_lists(path):
        if not row[0].strip():
            continue
        sqi = row[-1].strip() if len(row) >= 3 else ""
        if sqi not in QUALITY:
            raise DatasetError(f"{path}: bad row {','.join(row)!r} (expected record,label,sqi with sqi 0 or 1)")
        quality[row[0].strip()] = QUALITY[sqi]
    return quality


def _in_validation(ref: Path, root: Path) -> bool:
    """Whether ``ref`` lies in a folder named ``validation`` below ``root``."""
    return any(part.lower() == VALIDATION for part in ref.relative_to(root).parent.parts)


def load_physionet2016(root: Path, include_validation: bool = False) -> list[Recording]:
    """Records labelled ``abnormal`` (normal/abnormal); signal quality when ``REFERENCE-SQI.csv`` exists.

    With ``include_validation`` the records of ``validation/`` are loaded too, as further
    recordings (id ``physionet2016/validation/<record>`` when the training set holds the same
    record) of the same subject as their training copy.
    """
    refs = sorted(p for p in root.rglob("REFERENCE.csv") if not p.name.startswith("."))
    require(refs, "REFERENCE.csv files (training-a ... training-f)", root)
    skipped = [r for r in refs if _in_validation(r, root)]
    if skipped and not include_validation:
        refs = [r for r in refs if r not in skipped]
        log.info("physionet2016: skipped %s (it repeats training records; include_validation=True loads it)",
                 ", ".join(str(r.parent.relative_to(root)) for r in skipped))
        require(refs, "REFERENCE.csv files outside validation/", root,
                f"only {VALIDATION}/ has one, and it repeats training records; load that folder itself "
                "or pass include_validation=True")
    refs.sort(key=lambda r: _in_validation(r, root))  # training copies first: they keep the plain ids
    out, seen = [], set()
    for ref in refs:
        folder = ref.parent
        sqi = folder / "REFERENCE-SQI.csv"
        quality = _read_sqi(sqi) if sqi.is_file() else {}
        for row in read_csv_lists(ref):
            if not row[0].strip():
                continue
            if len(row) < 2 or row[1].strip() not in LABELS:
                raise DatasetError(f"{ref}: bad row {','.join(row)!r} (expected record,1|-1)")
            name = row[0].strip()
            wav = folder / f"{name}.wav"
            if not wav.is_file():
                raise DatasetError(f"{ref}: lists {name} but {wav.name} is missing")
            rate, frames = 0, 0
            hea = folder / f"{name}.hea"
            if hea.is_file():
                rate, frames = _read_hea(hea)
            meta = {"database": folder.name}
            if name in quality:
                meta["signal_quality"] = quality[name]
            rid, rel = f"physionet2016/{name}", folder.relative_to(root).as_posix()
            if rid in seen and rel != ".":
                rid = f"physionet2016/{rel}/{name}"
            if rid in seen:
                raise DatasetError(f"{ref}: record {name} is listed twice")
            seen.add(rid)
            out.append(
                Recording(
                    id=rid,
                    path=str(wav.resolve()),
                    dataset="physionet2016",
                    subject=f"physionet2016/{name}",
                    modality="heart",
                    sample_rate=rate,
                    duration=frames / rate if rate else 0.0,
                    metadata=meta,
                    labels={"abnormal": LABELS[row[1].strip()]},
                )
            )
    require(out, "PhysioNet 2016 records", root, "every REFERENCE.csv is empty")
    return out


def report_facts(r: Recording) -> dict[str, Any]:
    """Whether the heart sounds were classified normal or abnormal, and a poor signal quality."""
    v = r.labels.get("abnormal")
    f: dict[str, Any] = {"heart_sounds": v if v in ("normal", "abnormal") else None}
    if r.metadata.get("signal_quality") == "poor":
        f["signal_quality"] = "poor"
    return f


register_dataset(Dataset(
    name="physionet2016",
    loader=load_physionet2016,
    facts=report_facts,
    licence="ODC-By 1.0 (PhysioNet/CinC Challenge 2016)",
    modalities=("heart",),
    tasks=(Task("physionet2016-abnormal", "physionet2016", binary_label("abnormal", {"abnormal"}, {"normal"}),
                "PhysioNet 2016 abnormal vs normal heart sounds", HEART_PROMPTS),),
    pipeline_tasks=("physionet2016-abnormal",),
))
