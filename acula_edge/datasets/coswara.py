"""Coswara (IISc Bangalore): crowd-sourced breathing, cough and speech recordings with COVID-19 status.

Layout after the publisher's ``extract_data.py``: ``Extracted_data/<date>/<uid>/<sound>.wav``
(some copies put the date folders directly under the root), with ``combined_data.csv`` (column
legend in ``csv_labels_legend.json``) at the repository root; each user folder may also hold a
``metadata.json`` with the same fields, used when the CSV lacks the user. Coswara has some empty
or corrupt files: they are skipped and counted in one warning.
"""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path
from typing import Any, Callable

from acula_edge.data.records import Recording, parse_cell
from acula_edge.datasets import Dataset, Task, register_dataset
from acula_edge.datasets.common import binary, find_files, find_metadata_file, parse_flag, read_csv_rows, require
from acula_edge.device.audio import info
from acula_edge.errors import AudioError, DatasetError
from acula_edge.reports.facts import as_list, as_words

SOUNDS = {
    "breathing-deep": "breath", "breathing-shallow": "breath",
    "cough-heavy": "cough", "cough-shallow": "cough",
    "counting-normal": "speech", "counting-fast": "speech",
    "vowel-a": "speech", "vowel-e": "speech", "vowel-o": "speech",
}
NEGATIVE = {"healthy", "no_resp_illness_exposed", "resp_illness_not_identified", "recovered_full"}
# Self-reported flags (True when ticked) -> readable names for reports.
SYMPTOMS = {
    "cough": "cough", "cold": "cold", "fever": "fever", "diarrhoea": "diarrhoea",
    "bd": "breathing difficulties", "st": "sore throat", "ftg": "fatigue", "mp": "muscle pain",
    "loss_of_smell": "loss of smell and taste", "others_resp": "other respiratory illness",
}
CONDITIONS = {
    "asthma": "asthma", "ht": "hypertension", "diabetes": "diabetes", "ihd": "ischemic heart disease",
    "cld": "chronic lung disease", "pneumonia": "pneumonia", "others_preexist": "other pre-existing condition",
}
TEST_STATUS = {"p": "positive", "n": "negative"}
VACCINATION = {"y": "two doses", "p": "one dose", "n": "not vaccinated"}
SEXES = {"male": "male", "female": "female", "other": "other"}
log = logging.getLogger(__name__)


def covid_of(status: str | None) -> str | None:
    """positive_* -> positive; healthy, exposed, other illness, recovered -> negative; else None."""
    if not status:
        return None
    if status.startswith("positive"):
        return "positive"
    return "negative" if status in NEGATIVE else None


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    """User id to its row of ``combined_data.csv``."""
    columns, rows = read_csv_rows(path)
    if "id" not in columns or "covid_status" not in columns:
        raise DatasetError(f"{path}: not Coswara's combined_data.csv (needs columns id and covid_status)")
    return {row["id"].strip(): row for row in rows if (row.get("id") or "").strip()}


def _read_json(path: Path) -> dict[str, str]:
    """A user's ``metadata.json``, or an empty dict when absent or unreadable."""
    if not path.is_file():
        return {}
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        log.warning("coswara: unreadable %s", path)
        return {}
    return {str(k): "" if v is None else str(v) for k, v in d.items()} if isinstance(d, dict) else {}


def _describe(row: dict[str, str], date: str | None) -> tuple[dict, dict]:
    """Metadata and labels of one user."""
    meta: dict = {}
    age = parse_cell(row.get("a"))
    if isinstance(age, (int, float)) and age >= 0:
        meta["age_years"] = age
    sex = (row.get("g") or "").strip().lower()
    if sex in SEXES:
        meta["sex"] = SEXES[sex]
    for col, key in (("l_c", "country"), ("l_s", "state")):
        v = parse_cell(row.get(col))
        if v is not None:
            meta[key] = str(v)
    smoker = parse_flag(row.get("smoker"))
    if smoker is not None:
        meta["smoker"] = smoker
    for col, table in (("symptoms", SYMPTOMS), ("conditions", CONDITIONS)):
        found = [name for key, name in table.items() if parse_flag(row.get(key))]
        if found:
            meta[col] = found
    test = TEST_STATUS.get((row.get("test_status") or "").strip().lower())
    if test:
        meta["covid_test"] = test
        test_type = parse_cell(row.get("testType"))
        if test_type is not None:
            meta["covid_test_type"] = str(test_type)
    vacc = VACCINATION.get((row.get("vacc") or "").strip().lower())
    if vacc:
        meta["vaccination"] = vacc
    record_date = (row.get("record_date") or "").strip() or date
    if record_date:
        meta["record_date"] = record_date
    labels = {}
    status = (row.get("covid_status") or "").strip()
    if status:
        labels["covid_status"] = status
        if covid_of(status):
            labels["covid"] = covid_of(status)
    return meta, labels


def load_coswara(root: Path, sounds: list[str] | str | None = None) -> list[Recording]:
    """Records with labels ``covid_status`` and ``covid`` (positive/negative); ``sounds=`` restricts the sounds."""
    if isinstance(sounds, str):
        sounds = [s.strip() for s in sounds.split(",") if s.strip()]
    wanted = set(SOUNDS) if sounds is None else set(sounds)
    if not wanted:
        raise DatasetError(f"coswara: sounds names no sound; choose from {', '.join(SOUNDS)}")
    unknown = sorted(wanted - set(SOUNDS))
    if unknown:
        raise DatasetError(f"coswara: unknown sound(s) {', '.join(unknown)}; choose from {', '.join(SOUNDS)}")
    wavs = [p for p in find_files(root, (".wav",)) if p.stem.lower() in SOUNDS]
    require(wavs, "Coswara recordings (<date>/<user>/cough-heavy.wav, ...)", root)
    csv_path = find_metadata_file(root, ("combined_data.csv",), (w.parent.parent.parent for w in wavs))
    rows = _read_csv(csv_path) if csv_path else {}
    if csv_path is None:
        log.warning("coswara: no combined_data.csv in %s or its parent; using each user's metadata.json", root)

    out, bad, users = [], [], {}
    for wav in wavs:
        sound = wav.stem.lower()
        if sound not in wanted:
            continue
        try:
            i = info(wav)
        except AudioError as e:
            bad.append(str(e))
            continue
        uid = wav.parent.name
        d = wav.parent.parent.name
        date = f"{d[:4]}-{d[4:6]}-{d[6:]}" if re.fullmatch(r"20\d{6}", d) else None
        if uid not in users:
            users[uid] = _describe(rows.get(uid) or _read_json(wav.parent / "metadata.json"), date)
        meta, labels = users[uid]
        out.append(
            Recording(
                id=f"coswara/{uid}/{sound}",
                path=str(wav.resolve()),
                dataset="coswara",
                subject=f"coswara/{uid}",
                modality=SOUNDS[sound],
                sample_rate=i.sample_rate,
                duration=i.duration,
                metadata={**copy.deepcopy(meta), "sound": sound},
                labels=dict(labels),
            )
        )
    if bad:
        log.warning("coswara: skipped %d empty or unreadable file(s), e.g. %s", len(bad), bad[0])
    kept = sum(1 for w in wavs if w.stem.lower() in wanted)
    what = "readable Coswara recordings" + (f" of {', '.join(sorted(wanted))}" if sounds is not None else "")
    require(out, what, root,
            f"all {kept} such file(s) are empty or unreadable, e.g. {bad[0]}" if kept else
            f"none of the {len(wavs)} Coswara file(s) is one of these sounds")
    return out


def report_facts(r: Recording) -> dict[str, Any]:
    """The vocal task, reported symptoms and conditions, and a settled COVID-19 status."""
    m = r.metadata
    status = as_words(r.labels.get("covid_status"))
    return {
        "sound": as_words(m.get("sound")),
        "symptoms": as_list(m["symptoms"]) if "symptoms" in m else None,
        "conditions": as_list(m.get("conditions")),
        "covid_status": status if status and status != "under validation" else None,
    }


def _heavy_cough(label: Callable[[Recording], Any]) -> Callable[[Recording], Any]:
    """``label(record)`` on heavy-cough recordings, None on the other sounds."""
    return lambda r: None if r.metadata.get("sound") != "cough-heavy" else label(r)


register_dataset(Dataset(
    name="coswara",
    loader=load_coswara,
    facts=report_facts,
    licence="see the Coswara repository's terms",
    modalities=("breath", "cough", "speech"),
    tasks=(
        Task("coswara-smoker", "coswara", _heavy_cough(lambda r: binary(r.metadata.get("smoker"), {True}, {False})),
             "Coswara smokers vs non-smokers, heavy-cough recordings", modality="cough"),
        Task("coswara-sex", "coswara", _heavy_cough(lambda r: binary(r.metadata.get("sex"), {"female"}, {"male"})),
             "Coswara sex (female vs male), heavy-cough recordings", modality="cough"),
    ),
    pipeline_tasks=("coswara-smoker",),
))
