"""KAUH lung sounds (King Abdullah University Hospital, Jordan; Fraiwan et al. 2021, Mendeley Data).

``Audio Files/`` holds one file per patient and stethoscope filter mode, all facts in the name:
``{F}P{n}_{diagnosis},{sound type},{location},{age},{sex}.wav``, e.g. ``BP1_Asthma,I E W,P L L,70,M.wav``.
F is the filter mode of the 3M Littmann 3200 (B bell, D diaphragm, E extended). Sound types
combine I (inspiratory), E (expiratory), W (wheeze), C or Crep (crackles, crepitations), B or
Bronchial (bronchial breathing), N (normal). Locations combine A/P (anterior/posterior), L/R
(left/right) and U/M/L (upper/middle/lower). Whitespace around fields is irregular.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from acula_edge.data.records import Recording
from acula_edge.datasets import Dataset, Task, register_dataset
from acula_edge.datasets.common import adventitious_type, binary, find_files, require
from acula_edge.reports.facts import adventitious_from_labels, as_words

DEVICE = "3M Littmann Electronic Stethoscope Model 3200"
FILTERS = {"B": "bell", "D": "diaphragm", "E": "extended"}
# Lower-case spellings in the file names -> canonical names (BRON is bronchitis in the data paper).
DIAGNOSES = {
    "n": "Normal", "normal": "Normal", "asthma": "Asthma", "heart failure": "Heart Failure", "copd": "COPD",
    "pneumonia": "Pneumonia", "bron": "Bronchitis", "bronchitis": "Bronchitis", "lung fibrosis": "Lung Fibrosis",
    "plueral effusion": "Pleural Effusion", "pleural effusion": "Pleural Effusion",
}
PHASES = {"I": "inspiratory", "E": "expiratory"}
FINDINGS = {"W": "wheeze", "C": "crackles", "CREP": "crepitations", "B": "bronchial breathing",
            "BRONCHIAL": "bronchial breathing", "N": "normal"}
WHEEZE, CRACKLE = {"W"}, {"C", "CREP"}
SEXES = {"M": "male", "F": "female"}
NAME = re.compile(r"^([BDE])P(\d+)_(.*)$", re.IGNORECASE)
log = logging.getLogger(__name__)


def _squash(s: str) -> str:
    """Collapse runs of whitespace and strip."""
    return " ".join(s.split())


def diagnosis_name(raw: str) -> str:
    """Canonical diagnosis; combined ones ('heart failure + COPD', 'asthma and lung fibrosis') joined by ' + '."""
    parts = [p for p in re.split(r"\s*\+\s*|\s+and\s+", _squash(raw), flags=re.IGNORECASE) if p]
    return " + ".join(DIAGNOSES.get(p.lower(), p) for p in parts)


def _sound_tokens(raw: str) -> list[str]:
    """Upper-case codes of a sound type ('Crep+Bronchial' -> ['CREP', 'BRONCHIAL'])."""
    return [t for t in re.split(r"[\s+,&/]+", raw.upper()) if t]


def sound_description(raw: str) -> str | None:
    """Readable sound type, e.g. 'I E W' -> 'inspiratory and expiratory wheeze'; None if a code is unknown."""
    parts, phases = [], []
    for t in _sound_tokens(raw):
        if t in PHASES:
            phases.append(PHASES[t])
        elif t in FINDINGS:
            parts.append(" ".join([" and ".join(phases), FINDINGS[t]]).strip())
            phases = []
        else:
            return None
    return ", ".join(parts) if parts and not phases else None


def location_name(raw: str) -> str | None:
    """Readable chest zone, e.g. 'P L L' -> 'posterior left lower', 'A U R' -> 'anterior right upper'.

    L means left unless the side is already given (second L, or an R in the code), then lower.
    """
    tokens = raw.upper().split()
    if not tokens or tokens[0] not in ("A", "P"):
        return None
    sides, zones = [], []
    for t in tokens[1:]:
        if t == "R":
            sides.append("right")
        elif t in ("U", "M"):
            zones.append({"U": "upper", "M": "middle"}[t])
        elif t == "L":
            if "left" in sides or ("R" in tokens[1:] and tokens[1:].count("L") == 1):
                zones.append("lower")
            else:
                sides.append("left")
        else:
            return None
    words = ["anterior" if tokens[0] == "A" else "posterior"]
    sides = sorted(set(sides), key=["left", "right"].index)
    return " ".join(words + ([" and ".join(sides)] if sides else []) + zones)


def _audio_folder(root: Path) -> Path:
    """The publisher's ``Audio Files`` folder under ``root`` when there is one, else ``root``.

    Its copies in other folders (e.g. the raw stethoscope exports) would otherwise count twice.
    """
    if root.name.lower() == "audio files":
        return root
    found = sorted(p for p in root.rglob("*") if p.is_dir() and p.name.lower() == "audio files")
    return found[0] if found else root


def load_kauh(root: Path) -> list[Recording]:
    """Records with labels from the file names; subject = patient number.

    Labels: ``diagnosis``, ``wheeze``, ``crackle``, ``adventitious`` (0/1: crackle or wheeze) and
    ``adventitious_type`` (Normal/Crackle/Wheeze/Both).
    """
    folder = _audio_folder(root)
    wavs = [p for p in find_files(folder, (".wav",)) if NAME.match(p.stem)]
    require(wavs, "KAUH recordings (Audio Files/BP1_Asthma,I E W,P L L,70,M.wav, ...)", root)
    out, seen, odd = [], set(), []
    for wav in wavs:
        mode, number, rest = NAME.match(wav.stem).groups()
        fields = [_squash(f) for f in rest.split(",")]
        if len(fields) < 5:
            odd.append(wav.name)
            continue
        diagnosis, sound, loc, age, sex = ",".join(fields[:-4]), *fields[-4:]
        mode, patient = mode.upper(), str(int(number))
        meta: dict = {}
        if age.isdigit():
            meta["age_years"] = int(age)
        if sex.upper() in SEXES:
            meta["sex"] = SEXES[sex.upper()]
        labels: dict = {}
        if diagnosis:
            meta["diagnosis"] = labels["diagnosis"] = diagnosis_name(diagnosis)
        if sound:
            tokens = set(_sound_tokens(sound))
            wheeze, crackle = int(bool(tokens & WHEEZE)), int(bool(tokens & CRACKLE))
            meta["sound_type"] = sound
            if sound_description(sound):
                meta["lung_sounds"] = sound_description(sound)
            labels.update({"wheeze": wheeze, "crackle": crackle, "adventitious": int(crackle or wheeze),
                           "adventitious_type": adventitious_type(crackle, wheeze)})
        site = location_name(loc)
        if loc:
            meta["location_code"] = loc
        if site:
            meta["location"] = site
        meta.update({"device": DEVICE, "filter_mode": FILTERS[mode], "country": "Jordan"})
        rid = f"kauh/{mode}P{patient}"
        if rid in seen:
            rid = f"kauh/{wav.stem}"
        seen.add(rid)
        out.append(
            Recording(
                id=rid,
                path=str(wav.resolve()),
                dataset="kauh",
                subject=f"kauh/{patient}",
                modality="lung",
                device=DEVICE,
                site=site,
                metadata=meta,
                labels=labels,
            )
        )
    if odd:
        log.warning("kauh: skipped %d file(s) not named {F}P{n}_diagnosis,sound,location,age,sex, e.g. %s",
                    len(odd), odd[0])
    require(out, "KAUH recordings named {F}P{n}_diagnosis,sound,location,age,sex.wav", root)
    return out


def report_facts(r: Recording) -> dict[str, Any]:
    """Crackles and wheezes from the file name, bronchial breathing, and the stethoscope's filter."""
    f = adventitious_from_labels(r)
    desc = str(r.metadata.get("lung_sounds") or "")
    if "bronchial" in desc:
        f["bronchial_breathing"] = True
    if f.get("crackle") and "crepitation" in desc:
        f["crackle_type"] = None
    f["filter_mode"] = as_words(r.metadata.get("filter_mode"))
    return f


register_dataset(Dataset(
    name="kauh",
    loader=load_kauh,
    facts=report_facts,
    licence="see the KAUH dataset's terms",
    modalities=("lung",),
    tasks=(Task("kauh-obstructive", "kauh", lambda r: binary(r.labels.get("diagnosis"), {"Asthma", "COPD"}, {"Normal"}),
                "KAUH obstructive disease (asthma, COPD) vs normal"),),
    pipeline_tasks=("kauh-obstructive",),
))
