"""Metadata to canonical facts: one vocabulary for every dataset, so reports and the guard share it.

Each dataset has an extractor (a registry keyed by ``Recording.dataset``) that reads the record's
metadata, labels and events and returns :class:`Fact` objects with canonical keys. Unknown or
contradictory values are dropped: a report keeps to what is certain and says nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from acula_edge.data.records import Recording
from acula_edge.errors import AculaError

# Canonical fact keys, in the order reports mention them, with what each holds.
FIELDS: dict[str, str] = {
    "age_years": "age in years (number)",
    "age_group": "age group (neonate, infant, child, adolescent, young adult)",
    "sex": "male or female",
    "smoker": "smoking status (true/false)",
    "modality": "what was recorded (lung, heart, cough, breath, speech)",
    "sound": "the vocal task of a speech or breathing recording",
    "site": "auscultation site",
    "device": "recording device",
    "filter_mode": "stethoscope filter (bell, diaphragm, extended)",
    "signal_quality": "poor or good recording quality",
    "adventitious": "any adventitious lung sound (true/false)",
    "cas": "continuous adventitious sounds (true/false)",
    "das": "discontinuous adventitious sounds (true/false)",
    "wheeze": "wheezes (true/false)",
    "crackle": "crackles (true/false)",
    "crackle_type": "fine or coarse crackles",
    "rhonchi": "rhonchi (true/false)",
    "stridor": "stridor (true/false)",
    "bronchial_breathing": "bronchial breath sounds (true/false)",
    "resp_rate": "respiratory rate (breaths/min)",
    "heart_sounds": "heart sounds classified normal or abnormal",
    "murmur": "heart murmur (true/false)",
    "murmur_timing": "systolic or diastolic",
    "murmur_grade": "murmur grading (e.g. III/VI)",
    "murmur_shape": "murmur shape (e.g. plateau, diamond)",
    "murmur_pitch": "murmur pitch (low, medium, high)",
    "murmur_quality": "murmur quality (harsh, blowing, musical)",
    "murmur_locations": "sites where a murmur was heard",
    "rhythm": "regular or irregular rhythm",
    "heart_rate": "heart rate (beats/min)",
    "cough_type": "wet or dry cough",
    "expert_assessment": "what an expert listener judged a cough to be (COUGHVID)",
    "reported_status": "self-reported health status (COUGHVID: healthy, symptomatic, COVID-19)",
    "expert_findings": "findings an expert heard in a cough recording",
    "diagnosis": "diagnosis or condition",
    "conditions": "pre-existing conditions",
    "symptoms": "reported symptoms (an empty list: none reported)",
    "covid_status": "COVID-19 status",
    "outcome": "clinical outcome (normal or abnormal)",
}
# Facts a report must never state for these values (administrative, not clinical).
_ABSENT = {None, "", "nan", "na", "n/a", "unknown", "none given", "not given"}


@dataclass(frozen=True)
class Fact:
    """One certain statement about a recording, with a canonical key from :data:`FIELDS`."""

    key: str
    value: Any

    def as_json(self) -> list:
        """A JSON-able form (used for hashing)."""
        v = list(self.value) if isinstance(self.value, tuple) else self.value
        return [self.key, v]


Extractor = Callable[[Recording], dict[str, Any]]
_EXTRACTORS: dict[str, Extractor] = {}


def register_facts(*datasets: str) -> Callable[[Extractor], Extractor]:
    """Register ``fn(record) -> {key: value}`` (dataset-specific facts) for ``datasets``."""

    def deco(fn: Extractor) -> Extractor:
        for d in datasets:
            _EXTRACTORS[d] = fn
        return fn

    return deco


def list_fields() -> dict[str, str]:
    """Canonical fact keys and what each holds (the names ``--withhold`` takes)."""
    return dict(FIELDS)


# ---- small parsers ----

def _present(v: Any) -> bool:
    return not (v is None or (isinstance(v, str) and v.strip().lower() in _ABSENT))


def _number(v: Any) -> float | None:
    if isinstance(v, bool) or not _present(v):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x else None


def _flag(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    s = str(v).strip().lower() if v is not None else ""
    return {"yes": True, "y": True, "true": True, "present": True, "no": False, "n": False,
            "false": False, "absent": False}.get(s)


def _words(v: Any) -> str | None:
    """A categorical value as lower-case words ('Upper_infection' -> 'upper infection'), or None."""
    if not _present(v) or isinstance(v, bool):
        return None
    return re.sub(r"[_\s]+", " ", str(v)).strip()


def _diagnosis(v: Any) -> str | None:
    d = _words(v)
    return "healthy" if d and d.lower() in ("healthy", "normal", "healthy cough") else d


def _list(v: Any) -> tuple[str, ...] | None:
    if isinstance(v, (list, tuple)):
        items = [_words(x) for x in v]
    elif isinstance(v, str):
        items = [_words(x) for x in re.split(r"[,;+]", v)]
    else:
        return None
    return tuple(x for x in items if x)


# ---- the facts every dataset shares ----

def _common(r: Recording) -> dict[str, Any]:
    m = r.metadata
    f: dict[str, Any] = {"modality": r.modality if r.modality in ("lung", "heart", "cough", "breath", "speech") else None}
    age = _number(m.get("age_years", m.get("age")))
    if age is not None and 0 <= age <= 120:
        f["age_years"] = int(age) if float(age).is_integer() else round(age, 1)
    group = _words(m.get("age_group"))
    if group and group.lower() in ("neonate", "infant", "child", "adolescent", "young adult"):
        f["age_group"] = group.lower()
    sex = _words(m.get("sex"))
    if sex and sex.lower() in ("male", "female"):
        f["sex"] = sex.lower()
    f["smoker"] = _flag(m.get("smoker"))
    f["site"] = _words(r.site or m.get("site") or m.get("location"))
    f["device"] = _words(r.device or m.get("device"))
    f["diagnosis"] = _diagnosis(m.get("diagnosis") or m.get("condition"))
    if "symptoms" in m:
        s = m["symptoms"]
        f["symptoms"] = () if isinstance(s, str) and s.strip().lower() == "none" else _list(s)
    return f


def _label_flag(r: Recording, name: str) -> bool | None:
    return _flag(r.labels.get(name)) if name in r.labels else None


@register_facts("sprsound")
def _sprsound(r: Recording) -> dict[str, Any]:
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


def _adventitious_from_labels(r: Recording) -> dict[str, Any]:
    f: dict[str, Any] = {"wheeze": _label_flag(r, "wheeze"), "crackle": _label_flag(r, "crackle")}
    adv = _label_flag(r, "adventitious")
    if adv is not None and None not in (f["wheeze"], f["crackle"]) and adv != (f["wheeze"] or f["crackle"]):
        return {}
    f["adventitious"] = adv
    return f


@register_facts("icbhi")
def _icbhi(r: Recording) -> dict[str, Any]:
    f = _adventitious_from_labels(r)
    f["diagnosis"] = _diagnosis(r.labels.get("diagnosis") or r.metadata.get("diagnosis"))
    return f


@register_facts("kauh")
def _kauh(r: Recording) -> dict[str, Any]:
    f = _adventitious_from_labels(r)
    desc = str(r.metadata.get("lung_sounds") or "")
    if "bronchial" in desc:
        f["bronchial_breathing"] = True
    if f.get("crackle") and "crepitation" in desc:
        f["crackle_type"] = None
    f["filter_mode"] = _words(r.metadata.get("filter_mode"))
    return f


@register_facts("physionet2016")
def _physionet(r: Recording) -> dict[str, Any]:
    v = r.labels.get("abnormal")
    f: dict[str, Any] = {"heart_sounds": v if v in ("normal", "abnormal") else None}
    if r.metadata.get("signal_quality") == "poor":
        f["signal_quality"] = "poor"
    return f


CIRCOR_SITES = {"AV": "aortic valve", "PV": "pulmonary valve", "TV": "tricuspid valve", "MV": "mitral valve"}


@register_facts("circor")
def _circor(r: Recording) -> dict[str, Any]:
    m, lab = r.metadata, r.labels
    f: dict[str, Any] = {"site": None if _words(r.site) in (None, "other") else r.site}
    here = str(lab.get("murmur_at_location") or "").lower()
    patient = str(lab.get("murmur") or "").lower()
    timings = [t for t in ("systolic", "diastolic") if _present(m.get(f"{t}_murmur_timing"))]
    if here == "present" and patient == "present" and len(timings) == 1:
        t = timings[0]
        f["murmur"] = True
        f["murmur_timing"] = _words(m.get(f"{t}_murmur_timing")).lower()
        f["murmur_grade"] = _words(m.get(f"{t}_murmur_grading"))
        f["murmur_shape"] = (_words(m.get(f"{t}_murmur_shape")) or "").lower() or None
        f["murmur_pitch"] = (_words(m.get(f"{t}_murmur_pitch")) or "").lower() or None
        f["murmur_quality"] = (_words(m.get(f"{t}_murmur_quality")) or "").lower() or None
    elif here == "absent" and patient in ("absent", "present"):
        f["murmur"] = False
        if patient == "present":  # heard elsewhere on this patient
            sites = [CIRCOR_SITES[c.strip().upper()] for c in str(m.get("murmur_locations") or "").split("+")
                     if c.strip().upper() in CIRCOR_SITES]
            f["murmur_locations"] = tuple(sites) or None
    outcome = _words(lab.get("outcome"))
    f["outcome"] = outcome.lower() if outcome and outcome.lower() in ("normal", "abnormal") else None
    return f


@register_facts("coswara")
def _coswara(r: Recording) -> dict[str, Any]:
    m = r.metadata
    status = _words(r.labels.get("covid_status"))
    return {
        "sound": _words(m.get("sound")),
        "symptoms": _list(m["symptoms"]) if "symptoms" in m else None,
        "conditions": _list(m.get("conditions")),
        "covid_status": status if status and status != "under validation" else None,
    }


@register_facts("coughvid")
def _coughvid(r: Recording) -> dict[str, Any]:
    m, lab = r.metadata, r.labels
    status = _words(lab.get("status"))
    expert = _words(lab.get("diagnosis"))
    cough_type = _words(lab.get("cough_type"))
    return {
        "cough_type": cough_type if cough_type in ("wet", "dry") else None,
        "expert_findings": _list(m.get("audible_findings")),
        "expert_assessment": expert.replace(" cough", "").lower() if expert else None,
        "reported_status": status if status in ("healthy", "symptomatic", "COVID-19") else None,
        "symptoms": ("fever or muscle pain",) if m.get("fever_muscle_pain") is True else None,
        "conditions": ("a respiratory condition",) if m.get("respiratory_condition") is True else None,
        "diagnosis": None,
    }


@register_facts("synthetic")
def _synthetic(r: Recording) -> dict[str, Any]:
    lab = r.labels
    f = _adventitious_from_labels(r) if r.modality == "lung" else {}
    ct = lab.get("crackle_type")
    if f.get("crackle") and ct in ("fine", "coarse"):
        f["crackle_type"] = ct
    murmur = lab.get("murmur")
    if murmur in ("absent", "systolic", "diastolic"):
        f["murmur"] = murmur != "absent"
        f["murmur_timing"] = murmur if murmur != "absent" else None
    abnormal = lab.get("abnormal")
    f["heart_sounds"] = abnormal if abnormal in ("normal", "abnormal") else None
    f["rhythm"] = lab.get("rhythm") if lab.get("rhythm") in ("regular", "irregular") else None
    for k in ("heart_rate", "resp_rate"):
        x = _number(lab.get(k))
        f[k] = int(round(x)) if x is not None and 1 <= x <= 300 else None
    ct = lab.get("cough_type")
    f["cough_type"] = ct if ct in ("wet", "dry") else None
    if r.site == "mouth":
        f["site"] = None  # every cough and breath clip is recorded at the mouth: nothing to say
    return f


@register_facts("csv")
def _csv(r: Recording) -> dict[str, Any]:
    return {}


# Withholding a fact also withholds the facts that would give it away.
IMPLIES = {
    "wheeze": ("cas", "adventitious"), "rhonchi": ("cas", "adventitious"), "stridor": ("cas", "adventitious"),
    "crackle": ("das", "adventitious", "crackle_type"), "crackle_type": (),
    "cas": ("wheeze", "rhonchi", "stridor", "adventitious"), "das": ("crackle", "crackle_type", "adventitious"),
    "adventitious": ("cas", "das", "wheeze", "crackle", "crackle_type", "rhonchi", "stridor", "bronchial_breathing"),
    "murmur": ("murmur_timing", "murmur_grade", "murmur_shape", "murmur_pitch", "murmur_quality", "murmur_locations"),
    "age_years": ("age_group",), "age_group": ("age_years",),
}


def check_withhold(withhold: Iterable[str], phrases: dict[str, str] | None = None) -> set[str]:
    """The fields to leave out, with what they imply; an unknown field is an error."""
    withhold = set(withhold)
    unknown = withhold - set(FIELDS) - set(phrases or {})
    if unknown:
        raise AculaError(f"cannot withhold unknown field(s) {', '.join(sorted(unknown))}; "
                         f"fields: {', '.join(FIELDS)}")
    return withhold.union(*(IMPLIES.get(k, ()) for k in withhold))


def extract_facts(r: Recording, withhold: Iterable[str] = (), phrases: dict[str, str] | None = None) -> list[Fact]:
    """The certain facts about ``r`` in canonical order, without the ``withhold`` keys.

    ``phrases`` maps extra metadata columns (the generic CSV's) to a phrase with ``{value}``;
    each present column becomes a fact ``csv:<column>``. Withhold such a column by its name.
    """
    withhold = check_withhold(withhold, phrases)
    f = _common(r)
    f.update(_EXTRACTORS.get(r.dataset, _csv)(r))
    out = []
    for key in FIELDS:
        v = f.get(key)
        if key in withhold or v is None or (isinstance(v, str) and not _present(v)):
            continue
        out.append(Fact(key, v))
    for col in phrases or {}:
        v = r.metadata.get(col, r.labels.get(col))
        if col not in withhold and _present(v) and not isinstance(v, (list, dict)):
            out.append(Fact(f"csv:{col}", v))
    return out
