"""COUGHVID (EPFL, Zenodo ``public_dataset/``): crowd-sourced coughs with self-reports and expert labels.

Audio is ``{uuid}.webm`` or ``{uuid}.ogg`` (or a converted ``.wav``/``.flac``) beside ``{uuid}.json``;
``metadata_compiled.csv`` gathers every JSON in one table: uuid, datetime, cough_detected, SNR,
latitude, longitude, age, gender, respiratory_condition, fever_muscle_pain, status, status_SSL
and, for up to four experts n = 1..4, quality_n, cough_type_n, dyspnea_n, wheezing_n, stridor_n,
choking_n, congestion_n, nothing_n, diagnosis_n, severity_n. soundfile cannot decode WebM, so
recordings held only as ``.webm`` are skipped and counted in one warning that says to convert them.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from acula_edge.data.records import Recording, parse_cell
from acula_edge.datasets import Dataset, Task, register_dataset
from acula_edge.datasets.common import (binary, binary_label, find_files, find_metadata_file, parse_flag,
                                        read_csv_rows, require)
from acula_edge.errors import DatasetError
from acula_edge.reports.facts import as_list, as_words

READABLE = (".wav", ".flac", ".ogg")  # in order of preference
EXPERTS = (1, 2, 3, 4)
EXPERT_FIELDS = ("quality", "cough_type", "dyspnea", "wheezing", "stridor", "choking", "congestion", "nothing",
                 "diagnosis", "severity")
FINDINGS = {"dyspnea": "dyspnea", "wheezing": "wheezing", "stridor": "stridor", "choking": "choking",
            "congestion": "nasal congestion"}
SEXES = {"male": "male", "female": "female", "other": "other"}
log = logging.getLogger(__name__)


def _text(v) -> str | None:
    """A stripped non-empty string, or None for empty and NA-like cells."""
    v = parse_cell(None if v is None else str(v))
    return None if v is None else str(v)


def _from_json(path: Path) -> dict[str, str]:
    """One recording's JSON flattened to the columns of ``metadata_compiled.csv``."""
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetError(f"{path}: unreadable COUGHVID metadata ({e})") from None
    row = {}
    for k, v in (d.items() if isinstance(d, dict) else ()):
        if isinstance(v, dict) and k.startswith("expert_labels_"):
            row.update({f"{field}_{k.rsplit('_', 1)[1]}": str(x) for field, x in v.items()})
        elif v is not None:
            row[k] = str(v)
    return row


def _expert(row: dict[str, str], field: str) -> str | None:
    """``field`` from the first expert who labelled it, preferring an informative value over 'unknown'."""
    values = [v for v in (_text(row.get(f"{field}_{e}")) for e in EXPERTS) if v]
    return next((v for v in values if v.lower() != "unknown"), values[0] if values else None)


def _describe(row: dict[str, str]) -> tuple[dict, dict]:
    """Metadata and labels of one recording from its CSV row (or flattened JSON)."""
    meta: dict = {}
    age = parse_cell(row.get("age"))
    if isinstance(age, (int, float)) and age >= 0:
        meta["age_years"] = int(age) if float(age).is_integer() else age
    sex = (_text(row.get("gender")) or "").lower()
    if sex in SEXES:
        meta["sex"] = SEXES[sex]
    for col in ("respiratory_condition", "fever_muscle_pain"):
        if parse_flag(row.get(col)) is not None:
            meta[col] = parse_flag(row.get(col))
    for col, key in (("cough_detected", "cough_detected"), ("SNR", "snr"), ("latitude", "latitude"),
                     ("longitude", "longitude")):
        v = parse_cell(row.get(col))
        if isinstance(v, (int, float)):
            meta[key] = float(v)
    if _text(row.get("datetime")):
        meta["recorded_at"] = _text(row.get("datetime"))
    first = next((e for e in EXPERTS if any(_text(row.get(f"{f}_{e}")) for f in EXPERT_FIELDS)), None)
    if first is not None:
        found = [name for key, name in FINDINGS.items() if parse_flag(row.get(f"{key}_{first}"))]
        if found:
            meta["audible_findings"] = found
    labels = {}
    for col, key in (("status", "status"), ("status_SSL", "status_ssl")):
        if _text(row.get(col)):
            labels[key] = _text(row.get(col))
    for field in ("cough_type", "quality", "diagnosis", "severity"):
        v = _expert(row, field)
        if v:
            labels[field] = v
    return meta, labels


def _read_csv(path: Path) -> dict[str, dict[str, str]]:
    """uuid to its row of ``metadata_compiled.csv`` (the unnamed pandas index column is ignored)."""
    columns, rows = read_csv_rows(path)
    if "uuid" not in columns:
        raise DatasetError(f"{path}: not COUGHVID's metadata_compiled.csv (no 'uuid' column)")
    return {row["uuid"].strip(): row for row in rows if (row.get("uuid") or "").strip()}


def load_coughvid(root: Path, min_cough_detected: float = 0.0) -> list[Recording]:
    """Records with labels ``status``, ``status_ssl``, ``cough_type``, ``quality``, ``diagnosis``, ``severity``.

    ``min_cough_detected`` keeps recordings whose cough-detector probability is at least that value
    (the publishers suggest 0.8 for clean cough sets).
    """
    try:
        threshold = float(min_cough_detected)
    except (TypeError, ValueError):
        raise DatasetError(f"coughvid: min_cough_detected must be a number, got {min_cough_detected!r}") from None
    audio: dict[str, dict[str, Path]] = {}
    for p in find_files(root, READABLE + (".webm",)):
        audio.setdefault(p.stem, {}).setdefault(p.suffix.lower(), p)
    require(list(audio), "COUGHVID recordings ({uuid}.webm/.ogg/.wav)", root)
    csv_path = find_metadata_file(root, ("metadata_compiled.csv",),
                                  (p.parent for f in audio.values() for p in f.values()))
    rows = _read_csv(csv_path) if csv_path else {}
    jsons = {p.stem: p for p in find_files(root, (".json",))} if csv_path is None else {}
    if csv_path is None and not jsons:
        raise DatasetError(f"no metadata_compiled.csv and no per-recording .json found under {root}: "
                           "is this COUGHVID's public_dataset folder?")

    out, webm_only, below = [], [], 0
    for uuid in sorted(audio):
        row = rows.get(uuid) if csv_path else (_from_json(jsons[uuid]) if uuid in jsons else None)
        if row is None:
            log.debug("coughvid: %s has no metadata", uuid)
            row = {}
        cough = parse_cell(row.get("cough_detected"))
        if threshold > 0 and not (isinstance(cough, (int, float)) and cough >= threshold):
            below += 1
            continue
        path = next((audio[uuid][ext] for ext in READABLE if ext in audio[uuid]), None)
        if path is None:
            webm_only.append(audio[uuid][".webm"])
            continue
        meta, labels = _describe(row)
        out.append(
            Recording(
                id=f"coughvid/{uuid}",
                path=str(path.resolve()),
                dataset="coughvid",
                subject=f"coughvid/{uuid}",
                modality="cough",
                metadata=meta,
                labels=labels,
            )
        )
    convert = (f"convert them beside the originals, e.g. ffmpeg -i '{webm_only[0]}' "
               f"'{webm_only[0].with_suffix('.wav')}', and load again" if webm_only else "")
    if webm_only:
        log.warning("coughvid: skipped %d recording(s) held only as WebM, which soundfile cannot decode; %s",
                    len(webm_only), convert)
    if below:
        log.info("coughvid: left out %d recording(s) with cough_detected below %g", below, threshold)
    no_audio = len(set(rows) - set(audio))
    if no_audio:
        log.warning("coughvid: %d uuid(s) in %s have no audio file", no_audio, csv_path.name)
    reasons = []
    if below:
        reasons.append(f"{below} recording(s) have cough_detected below min_cough_detected={threshold:g}")
    if webm_only:
        reasons.append(f"{len(webm_only)} WebM-only file(s) need converting with ffmpeg ({convert})")
    require(out, "readable COUGHVID recordings", root, "; ".join(reasons) or None)
    return out


def report_facts(r: Recording) -> dict[str, Any]:
    """The expert's cough type, findings and assessment, and what the user reported (never as a diagnosis)."""
    m, lab = r.metadata, r.labels
    status = as_words(lab.get("status"))
    expert = as_words(lab.get("diagnosis"))
    cough_type = as_words(lab.get("cough_type"))
    return {
        "cough_type": cough_type if cough_type in ("wet", "dry") else None,
        "expert_findings": as_list(m.get("audible_findings")),
        "expert_assessment": expert.replace(" cough", "").lower() if expert else None,
        "reported_status": status if status in ("healthy", "symptomatic", "COVID-19") else None,
        "symptoms": ("fever or muscle pain",) if m.get("fever_muscle_pain") is True else None,
        "conditions": ("a respiratory condition",) if m.get("respiratory_condition") is True else None,
        "diagnosis": None,
    }


register_dataset(Dataset(
    name="coughvid",
    loader=load_coughvid,
    facts=report_facts,
    licence="see the COUGHVID record's terms",
    modalities=("cough",),
    tasks=(
        Task("coughvid-covid", "coughvid", binary_label("status", {"COVID-19"}, {"healthy"}),
             "COUGHVID self-reported COVID-19 vs healthy",
             ("Cough recording. No known disease (healthy).", "Cough recording. Diagnosis: COVID-19.")),
        Task("coughvid-sex", "coughvid", lambda r: binary(r.metadata.get("sex"), {"female"}, {"male"}),
             "COUGHVID sex (female vs male)"),
    ),
    pipeline_tasks=("coughvid-covid",),
))
