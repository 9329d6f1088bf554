"""CirCor DigiScope Phonocardiogram Dataset (PhysioNet Challenge 2022 training set).

Layout: ``training_data.csv`` (one row per patient) beside ``training_data/``, which holds per
patient ``{pid}.txt`` (``#Age: Child`` style lines with the same fields as the CSV) and per
recording ``{pid}_{loc}.wav`` (``{pid}_{loc}_{n}.wav`` for repeats), ``.hea`` and ``.tsv``
(segmentation ``start end state``: 1 = S1, 2 = systole, 3 = S2, 4 = diastole, 0 = unannotated).
Locations: AV, PV, TV, MV and Phc (any other). The CSV is used when present, else the ``.txt``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from acula_edge.data.records import Recording, parse_cell
from acula_edge.datasets import Dataset, Task, register_dataset
from acula_edge.datasets.common import binary_label, find_files, find_metadata_file, read_csv_rows, require
from acula_edge.errors import DatasetError
from acula_edge.reports.facts import as_words, is_present

LOCATIONS = {"AV": "aortic valve", "PV": "pulmonary valve", "TV": "tricuspid valve", "MV": "mitral valve",
             "Phc": "other"}
VALVES = {k: v for k, v in LOCATIONS.items() if k != "Phc"}  # the sites a report can name
STATES = {1: "S1", 2: "systole", 3: "S2", 4: "diastole"}
# CSV column (or .txt key) -> metadata key; murmur details are patient-level facts of the annotator.
META_FIELDS = {
    "Age": "age_group", "Sex": "sex", "Height": "height_cm", "Weight": "weight_kg",
    "Pregnancy status": "pregnant", "Murmur locations": "murmur_locations",
    "Most audible location": "most_audible_location",
    "Systolic murmur timing": "systolic_murmur_timing", "Systolic murmur shape": "systolic_murmur_shape",
    "Systolic murmur grading": "systolic_murmur_grading", "Systolic murmur pitch": "systolic_murmur_pitch",
    "Systolic murmur quality": "systolic_murmur_quality",
    "Diastolic murmur timing": "diastolic_murmur_timing", "Diastolic murmur shape": "diastolic_murmur_shape",
    "Diastolic murmur grading": "diastolic_murmur_grading", "Diastolic murmur pitch": "diastolic_murmur_pitch",
    "Diastolic murmur quality": "diastolic_murmur_quality", "Campaign": "campaign",
}
NAME = re.compile(r"^(\d+)_(AV|PV|TV|MV|Phc)(?:_(\d+))?$", re.IGNORECASE)
log = logging.getLogger(__name__)


def _value(v: str | None):
    """A field with 'nan'/'NA'/empty as None, booleans as bool, numbers as numbers."""
    v = parse_cell(v)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return v


def _pid(v) -> str | None:
    """A patient id as a plain integer string ('50001.0' -> '50001')."""
    v = parse_cell(v if isinstance(v, str) else str(v))
    if isinstance(v, (int, float)) and float(v).is_integer():
        return str(int(v))
    return None


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    """Patient id to its CSV row (column names stripped of whitespace)."""
    _, rows = read_csv_rows(path)
    out = {}
    for row in rows:
        row = {k.strip(): (v or "").strip() for k, v in row.items() if k is not None}  # None: extra cells
        pid = _pid(row.get("Patient ID", ""))
        if pid is None:
            raise DatasetError(f"{path}: a row without a numeric 'Patient ID' (is this training_data.csv?)")
        out[pid] = row
    return out


def _read_txt(path: Path) -> dict[str, str]:
    """The ``#Key: value`` lines of a patient description file, as a CSV-like row."""
    row = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("#") and ":" in line:
            key, _, value = line[1:].partition(":")
            row[key.strip()] = value.strip()
    return row


def _read_tsv(path: Path) -> list[dict]:
    """Segmentation intervals (S1, systole, S2, diastole) as events; unannotated spans are dropped."""
    events = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        f = line.split()
        if not f:
            continue
        try:
            start, end, state = float(f[0]), float(f[1]), int(float(f[2]))
        except (IndexError, ValueError):
            raise DatasetError(f"{path}:{n}: expected 'start end state', got {line.strip()!r}") from None
        if state in STATES:
            events.append({"start": start, "end": end, "type": STATES[state]})
    return events


def _location_label(murmur: str | None, locations: set[str], loc: str) -> str | None:
    """Murmur at this location: Present where the annotator heard one, Absent where not, else Unknown.

    A patient with murmur Present but this location missing from ``Murmur locations`` is Absent
    here: the field lists every location where at least one murmur was observed.
    """
    if murmur is None:
        return None
    if loc.upper() in locations:
        return "Present"
    if murmur == "Absent" or (murmur == "Present" and locations):
        return "Absent"
    return "Unknown"


def load_circor(root: Path) -> list[Recording]:
    """Records with labels ``murmur``, ``murmur_at_location``, ``outcome`` and S1/S2 segmentation events."""
    wavs = [p for p in find_files(root, (".wav",)) if NAME.match(p.stem)]
    require(wavs, "CirCor recordings (e.g. training_data/2530_AV.wav)", root)
    csv_path = find_metadata_file(root, ("training_data.csv",), (w.parent.parent for w in wavs))
    rows = _read_csv(csv_path) if csv_path else {}
    texts = {(p.parent, p.stem): p for p in find_files(root, (".txt",))}
    tsvs = {(p.parent, p.stem): p for p in find_files(root, (".tsv",))}

    out, unlabelled = [], 0
    for wav in wavs:
        pid, loc, _ = NAME.match(wav.stem).groups()
        loc = next(k for k in LOCATIONS if k.lower() == loc.lower())
        row = rows.get(pid)
        if row is None and (wav.parent, pid) in texts:
            row = _read_txt(texts[(wav.parent, pid)])
        row = row or {}
        if not row:
            unlabelled += 1
        values = {k: _value(v) for k, v in row.items()}
        meta = {key: values[col] for col, key in META_FIELDS.items() if values.get(col) is not None}
        if isinstance(meta.get("sex"), str):
            meta["sex"] = meta["sex"].lower()
        meta.update({"location": LOCATIONS[loc], "country": "Brazil"})
        murmur = values.get("Murmur")
        heard = {s.strip().upper() for s in str(values.get("Murmur locations") or "").split("+") if s.strip()}
        labels = {}
        if murmur is not None:
            labels["murmur"] = murmur
            labels["murmur_at_location"] = _location_label(murmur, heard, loc)
        if values.get("Outcome") is not None:
            labels["outcome"] = values["Outcome"]
        ids = [pid] + [i for i in [_pid(row.get("Additional ID", ""))] if i]
        tsv = tsvs.get((wav.parent, wav.stem))
        out.append(
            Recording(
                id=f"circor/{wav.stem}",
                path=str(wav.resolve()),
                dataset="circor",
                subject=f"circor/{min(ids, key=int)}",
                modality="heart",
                site=LOCATIONS[loc],
                metadata=meta,
                labels=labels,
                events=_read_tsv(tsv) if tsv else [],
            )
        )
    if unlabelled:
        log.warning("circor: %d recordings have no row in training_data.csv and no patient .txt", unlabelled)
    return out


def report_facts(r: Recording) -> dict[str, Any]:
    """The murmur at this site (with the annotator's description), or where else it was heard, and the outcome."""
    m, lab = r.metadata, r.labels
    f: dict[str, Any] = {"site": None if as_words(r.site) in (None, "other") else r.site}
    here = str(lab.get("murmur_at_location") or "").lower()
    patient = str(lab.get("murmur") or "").lower()
    timings = [t for t in ("systolic", "diastolic") if is_present(m.get(f"{t}_murmur_timing"))]
    if here == "present" and patient == "present" and len(timings) == 1:
        t = timings[0]
        f["murmur"] = True
        f["murmur_timing"] = as_words(m.get(f"{t}_murmur_timing")).lower()
        f["murmur_grade"] = as_words(m.get(f"{t}_murmur_grading"))
        f["murmur_shape"] = (as_words(m.get(f"{t}_murmur_shape")) or "").lower() or None
        f["murmur_pitch"] = (as_words(m.get(f"{t}_murmur_pitch")) or "").lower() or None
        f["murmur_quality"] = (as_words(m.get(f"{t}_murmur_quality")) or "").lower() or None
    elif here == "absent" and patient in ("absent", "present"):
        f["murmur"] = False
        if patient == "present":  # heard elsewhere on this patient
            sites = [VALVES[c.strip().upper()] for c in str(m.get("murmur_locations") or "").split("+")
                     if c.strip().upper() in VALVES]
            f["murmur_locations"] = tuple(sites) or None
    outcome = as_words(lab.get("outcome"))
    f["outcome"] = outcome.lower() if outcome and outcome.lower() in ("normal", "abnormal") else None
    return f


register_dataset(Dataset(
    name="circor",
    loader=load_circor,
    facts=report_facts,
    licence="see PhysioNet's CirCor DigiScope page",
    modalities=("heart",),
    tasks=(Task("circor-murmur", "circor", binary_label("murmur_at_location", {"Present"}, {"Absent"}),
                "CirCor murmur heard at this location (present vs absent)",
                ("Cardiac auscultation. There is no murmur at this site.",
                 "Cardiac auscultation. A murmur is heard.")),),
    pipeline_tasks=("circor-murmur",),
))
