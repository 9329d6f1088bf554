"""PhysioNet/CinC Challenge 2016 heart sounds: ``training-x/REFERENCE.csv`` plus ``*.wav`` and ``*.hea``.

``REFERENCE.csv`` rows are ``record,label`` with 1 = abnormal and -1 = normal. No patient id is
published, so each record is its own subject: one patient may own several records, and splits of
this set cannot be guaranteed subject-disjoint.
"""

from __future__ import annotations

import csv
from pathlib import Path

from acula_edge.data.loaders import register_loader, require
from acula_edge.data.records import Recording
from acula_edge.errors import DatasetError

LABELS = {"1": "abnormal", "-1": "normal"}


def _read_hea(path: Path) -> tuple[int, int]:
    """Sample rate and sample count from a WFDB header's first line."""
    first = path.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].split()
    try:
        return int(float(first[2])), int(first[3])
    except (IndexError, ValueError):
        raise DatasetError(f"{path}: not a WFDB header") from None


@register_loader("physionet2016")
def load_physionet2016(root: Path, **options) -> list[Recording]:
    """Records labelled ``abnormal`` (normal/abnormal); signal quality when ``REFERENCE-SQI.csv`` exists."""
    refs = sorted(p for p in root.rglob("REFERENCE.csv") if not p.name.startswith("."))
    require(refs, "REFERENCE.csv files (training-a ... training-f)", root)
    out = []
    for ref in refs:
        folder = ref.parent
        quality = {}
        sqi = folder / "REFERENCE-SQI.csv"
        if sqi.is_file():
            with open(sqi, newline="") as f:
                quality = {row[0].strip(): row[1].strip() for row in csv.reader(f) if len(row) >= 2}
        with open(ref, newline="") as f:
            rows = [row for row in csv.reader(f) if row and row[0].strip()]
        for row in rows:
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
                meta["signal_quality"] = "good" if quality[name] == "1" else "poor"
            out.append(
                Recording(
                    id=f"physionet2016/{name}",
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
    return out
