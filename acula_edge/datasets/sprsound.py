"""SPRSound (SJTU paediatric respiratory sounds): ``*.wav`` with same-stem ``*.json`` annotations.

File names are ``{patient}_{age_years}_{sex}_{location}_{recording}.wav`` with sex 0 = male,
1 = female and locations p1–p4 (left posterior, left lateral, right posterior, right lateral).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from acula_edge.data.records import Recording
from acula_edge.datasets import Dataset, Task, register_dataset
from acula_edge.datasets.common import LUNG_PROMPTS, binary_label, find_files, require
from acula_edge.errors import DatasetError

LOCATIONS = {"p1": "left posterior", "p2": "left lateral", "p3": "right posterior", "p4": "right lateral"}
SEXES = {"0": "male", "1": "female"}
DAS_EVENTS = {"Fine Crackle", "Coarse Crackle"}
CAS_EVENTS = {"Wheeze", "Stridor", "Rhonchi"}
#: the event types that make a stretch of a recording positive for each task
TASK_EVENTS = {"adventitious": frozenset(CAS_EVENTS | DAS_EVENTS | {"Wheeze+Crackle"}),
               "cas": frozenset(CAS_EVENTS | {"Wheeze+Crackle"}), "das": frozenset(DAS_EVENTS | {"Wheeze+Crackle"})}
log = logging.getLogger(__name__)


def _split_of(path: Path) -> str | None:
    """The publisher's split from the folder names (train, inter/intra-patient test)."""
    parts = [p.lower() for p in path.parts]
    if any("inter" in p and "test" in p for p in parts):
        return "test_inter"
    if any("intra" in p and "test" in p for p in parts):
        return "test_intra"
    if any("test" in p for p in parts):
        return "test"
    if any("train" in p for p in parts):
        return "train"
    return None


def load_sprsound(root: Path) -> list[Recording]:
    """Records with record-level labels (Normal, CAS, DAS, CAS & DAS, Poor Quality) and events."""
    wavs = find_files(root, (".wav",))
    require(wavs, "SPRSound .wav files", root)
    annotations = {p.stem: p for p in find_files(root, (".json",))}
    out, odd = [], []
    for wav in wavs:
        fields = wav.stem.split("_")
        if len(fields) != 5:
            odd.append(wav.name)
            continue
        patient, age, sex, loc, number = fields
        meta = {"sex": SEXES.get(sex, sex), "location": LOCATIONS.get(loc, loc), "country": "China"}
        try:
            meta["age_years"] = float(age)
        except ValueError:
            pass
        labels, events = {}, []
        ann = annotations.get(wav.stem)
        if ann is not None:
            try:
                a = json.loads(ann.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise DatasetError(f"{ann}: unreadable annotation ({e})") from None
            record = a.get("record_annotation", a.get("recording_annotation"))
            if record:
                labels["record"] = record
                if record != "Poor Quality":
                    labels["adventitious"] = int(record != "Normal")
                    labels["cas"] = int("CAS" in record)
                    labels["das"] = int("DAS" in record)
            for e in a.get("event_annotation", []):
                try:
                    events.append({"start": float(e["start"]) / 1000, "end": float(e["end"]) / 1000, "type": e["type"]})
                except (KeyError, ValueError, TypeError):
                    raise DatasetError(f"{ann}: malformed event {e!r}") from None
            types = {e["type"] for e in events}
            if types:
                labels["wheeze"] = int(bool(types & {"Wheeze", "Wheeze+Crackle"}))
                labels["crackle"] = int(bool(types & (DAS_EVENTS | {"Wheeze+Crackle"})))
        out.append(
            Recording(
                id=f"sprsound/{wav.stem}",
                path=str(wav.resolve()),
                dataset="sprsound",
                subject=f"sprsound/{patient}",
                modality="lung",
                device="Yunting model II stethoscope",
                site=meta["location"],
                split=_split_of(ann.relative_to(root) if ann else wav.relative_to(root)),
                metadata=meta,
                labels=labels,
                events=events,
            )
        )
    if odd:
        log.warning("sprsound: skipped %d file(s) not named patient_age_sex_location_number.wav, e.g. %s",
                    len(odd), odd[0])
    require(out, "SPRSound recordings named patient_age_sex_location_number.wav", root,
            f"none of the {len(wavs)} .wav file(s) is named that way, e.g. {wavs[0].name}")
    return out


def report_facts(r: Recording) -> dict[str, Any]:
    """Lung findings from the record and event annotations (none when the two disagree)."""
    record = r.labels.get("record")
    types = {e.get("type") for e in r.events}
    f: dict[str, Any] = {}
    if record == "Poor Quality":
        return {"signal_quality": "poor"}
    if record in ("Normal", "CAS", "DAS", "CAS & DAS"):
        f["cas"] = "CAS" in record
        f["das"] = "DAS" in record
        f["adventitious"] = record != "Normal"
    if types:
        f["wheeze"] = bool(types & {"Wheeze", "Wheeze+Crackle"})
        f["rhonchi"] = "Rhonchi" in types
        f["stridor"] = "Stridor" in types
        crackle_types = {t for t in ("Fine Crackle", "Coarse Crackle") if t in types}
        f["crackle"] = bool(crackle_types) or "Wheeze+Crackle" in types
        if len(crackle_types) == 1:
            f["crackle_type"] = crackle_types.pop().split()[0].lower()
        # event and record annotations must agree, else no lung finding is certain
        cas_events = f["wheeze"] or f["rhonchi"] or f["stridor"]
        if f.get("cas") is not None and (f["cas"] != cas_events or f["das"] != f["crackle"]):
            f = {}
    return f


register_dataset(Dataset(
    name="sprsound",
    loader=load_sprsound,
    facts=report_facts,
    licence="GPL-3.0 (SJTU SPRSound; see the dataset's LICENSE)",
    modalities=("lung",),
    tasks=tuple(Task(f"sprsound-{n}", "sprsound", binary_label(n),
                     f"SPRSound record-level {n} (0/1); Poor Quality recordings left out",
                     LUNG_PROMPTS if n == "adventitious" else None, TASK_EVENTS[n])
                for n in ("adventitious", "cas", "das")),
    pipeline_tasks=("sprsound-adventitious",),
))
