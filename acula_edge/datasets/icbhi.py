"""ICBHI 2017 Respiratory Sound Database (``ICBHI_final_database/``), official or Kaggle copy.

Audio is ``{patient}_{index}_{location}_{mode}_{device}.wav`` (e.g. ``101_1b1_Al_sc_Meditron.wav``)
with a same-stem ``.txt`` holding one respiratory cycle per line: ``start end crackles wheezes``
(seconds, 0/1). Beside them, or one folder up: ``ICBHI_Challenge_diagnosis.txt`` (Kaggle:
``patient_diagnosis.csv``), ``ICBHI_Challenge_demographic_information.txt`` (Kaggle:
``demographic_info.txt``: ``patient age sex adult_BMI child_weight child_height`` with NA) and the
official split ``ICBHI_challenge_train_test.txt`` (``stem train|test``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from acula_edge.data.records import Recording, parse_cell
from acula_edge.datasets import Dataset, Task, register_dataset
from acula_edge.datasets.common import adventitious_type, find_files, find_metadata_file, require
from acula_edge.errors import DatasetError
from acula_edge.reports.facts import adventitious_from_labels, as_diagnosis

LOCATIONS = {
    "Tc": "trachea", "Al": "anterior left", "Ar": "anterior right", "Pl": "posterior left",
    "Pr": "posterior right", "Ll": "lateral left", "Lr": "lateral right",
}
MODES = {"sc": "single channel (sequential)", "mc": "multichannel (simultaneous)"}
DEVICES = {
    "AKGC417L": "AKG C417L Microphone",
    "LittC2SE": "3M Littmann Classic II SE Stethoscope",
    "Litt3200": "3M Littmann Electronic Stethoscope Model 3200",
    "Meditron": "WelchAllyn Meditron Master Elite Electronic Stethoscope",
}
DIAGNOSIS_FILES = ("ICBHI_Challenge_diagnosis.txt", "patient_diagnosis.csv")
DEMOGRAPHIC_FILES = ("ICBHI_Challenge_demographic_information.txt", "demographic_info.txt")
SPLIT_FILES = ("ICBHI_challenge_train_test.txt",)
SEXES = {"m": "male", "f": "female"}
NAME = re.compile(r"^(\d+)_([0-9A-Za-z]+)_(Tc|Al|Ar|Pl|Pr|Ll|Lr)_(sc|mc)_([0-9A-Za-z]+)$", re.IGNORECASE)
log = logging.getLogger(__name__)


def _canonical(value: str, table: dict[str, str]) -> str:
    """``value`` spelled as the table's key (file names vary in case), else unchanged."""
    return next((k for k in table if k.lower() == value.lower()), value)


def _rows(path: Path) -> list[list[str]]:
    """Non-empty lines split on tabs, commas or spaces."""
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    return [re.split(r"[\t, ]+", line.strip()) for line in text.splitlines() if line.strip()]


def _read_cycles(path: Path) -> list[dict]:
    """Respiratory cycles of one annotation file as events (seconds, crackle/wheeze flags)."""
    events = []
    for n, f in enumerate(_rows(path), 1):
        try:
            start, end, crackle, wheeze = float(f[0]), float(f[1]), int(f[2]), int(f[3])
        except (IndexError, ValueError):
            raise DatasetError(f"{path}:{n}: expected 'start end crackles wheezes', got {' '.join(f)!r}") from None
        if crackle not in (0, 1) or wheeze not in (0, 1):
            raise DatasetError(f"{path}:{n}: crackle and wheeze flags must be 0 or 1")
        events.append({"start": start, "end": end, "type": adventitious_type(crackle, wheeze).lower(),
                       "crackle": crackle, "wheeze": wheeze})
    return events


def _demographics(path: Path | None) -> dict[str, dict]:
    """Patient id to metadata (age, sex, BMI or child weight/height), NA values left out."""
    out: dict[str, dict] = {}
    if path is None:
        return out
    for f in _rows(path):
        if not f[0].isdigit():
            continue  # a header line
        f = f + [""] * (6 - len(f))
        age, sex, bmi, weight, height = (parse_cell(v) for v in f[1:6])
        meta = {}
        if isinstance(age, (int, float)):
            meta["age_years"] = age
        if isinstance(sex, str) and sex.lower() in SEXES:
            meta["sex"] = SEXES[sex.lower()]
        for key, v in (("bmi", bmi), ("weight_kg", weight), ("height_cm", height)):
            if isinstance(v, (int, float)):
                meta[key] = v
        out[f[0]] = meta
    return out


def load_icbhi(root: Path) -> list[Recording]:
    """Records with the patient's ``diagnosis``, recording labels and respiratory-cycle events.

    Recording labels (where a cycle annotation exists): ``crackle``, ``wheeze``, ``adventitious``
    (0/1: crackle or wheeze in any cycle) and ``adventitious_type`` (Normal/Crackle/Wheeze/Both).
    """
    wavs = [p for p in find_files(root, (".wav",)) if NAME.match(p.stem)]
    require(wavs, "ICBHI recordings (e.g. 101_1b1_Al_sc_Meditron.wav)", root)
    nearby = [d for w in wavs for d in (w.parent, w.parent.parent)]
    diag_file = find_metadata_file(root, DIAGNOSIS_FILES, nearby)
    diagnoses = {f[0]: f[1] for f in _rows(diag_file) if len(f) >= 2 and f[0].isdigit()} if diag_file else {}
    demographics = _demographics(find_metadata_file(root, DEMOGRAPHIC_FILES, nearby))
    split_file = find_metadata_file(root, SPLIT_FILES, nearby)
    splits = {f[0]: f[1].lower() for f in _rows(split_file) if len(f) >= 2} if split_file else {}
    if not diagnoses:
        log.warning("icbhi: no diagnosis file (%s) in %s or its parent", " or ".join(DIAGNOSIS_FILES), root)
    texts = {(p.parent, p.stem): p for p in find_files(root, (".txt",))}

    out = []
    for wav in wavs:
        patient, index, loc, mode, device = NAME.match(wav.stem).groups()
        loc, mode, device = _canonical(loc, LOCATIONS), mode.lower(), _canonical(device, DEVICES)
        stem = f"{patient}_{index}_{loc}_{mode}_{device}"
        device_name = DEVICES.get(device, device)
        meta = dict(demographics.get(patient, {}))
        meta.update({"location": LOCATIONS[loc], "acquisition_mode": MODES[mode], "device": device_name,
                     "recording_index": index})
        labels = {}
        if patient in diagnoses:
            meta["diagnosis"] = labels["diagnosis"] = diagnoses[patient]
        events = []
        ann = texts.get((wav.parent, wav.stem))
        if ann is not None:
            events = _read_cycles(ann)
            crackle = int(any(e["crackle"] for e in events))
            wheeze = int(any(e["wheeze"] for e in events))
            labels.update({"crackle": crackle, "wheeze": wheeze, "adventitious": int(crackle or wheeze),
                           "adventitious_type": adventitious_type(crackle, wheeze)})
        out.append(
            Recording(
                id=f"icbhi/{stem}",
                path=str(wav.resolve()),
                dataset="icbhi",
                subject=f"icbhi/{patient}",
                modality="lung",
                device=device_name,
                site=LOCATIONS[loc],
                split=splits.get(stem, splits.get(wav.stem)),
                metadata=meta,
                labels=labels,
                events=events,
            )
        )
    missing = sum(1 for r in out if not r.events)
    if missing:
        log.warning("icbhi: %d of %d recordings have no cycle annotation (.txt)", missing, len(out))
    return out


def report_facts(r: Recording) -> dict[str, Any]:
    """Crackles and wheezes in any cycle, and the patient's diagnosis."""
    f = adventitious_from_labels(r)
    f["diagnosis"] = as_diagnosis(r.labels.get("diagnosis") or r.metadata.get("diagnosis"))
    return f


register_dataset(Dataset(
    name="icbhi",
    loader=load_icbhi,
    facts=report_facts,
    licence="see the ICBHI 2017 challenge's terms",
    modalities=("lung",),
    tasks=(Task("icbhi-copd", "icbhi", lambda r: None if r.labels.get("diagnosis") is None
                else int(r.labels["diagnosis"] == "COPD"), "ICBHI recordings of COPD patients vs all others"),),
    pipeline_tasks=("icbhi-copd",),
))
