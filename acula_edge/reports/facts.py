"""Metadata to canonical facts: one vocabulary for every dataset, so reports and the guard share it.

The facts every dataset shares (age, sex, site, device, ...) are read here; each dataset module
(:mod:`acula_edge.datasets`) adds its own from the record's metadata, labels and events, with the
parsers below. :func:`extract_facts` returns them as :class:`Fact` objects with canonical keys.
Unknown or contradictory values are dropped: a report keeps to what is certain and says nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable

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


def list_fields() -> dict[str, str]:
    """Canonical fact keys and what each holds (the names ``--withhold`` takes)."""
    return dict(FIELDS)


# ---- small parsers (the dataset modules' extractors use them too) ----

def is_present(v: Any) -> bool:
    """Whether ``v`` holds a value (not None, empty, NA, unknown, ...)."""
    return not (v is None or (isinstance(v, str) and v.strip().lower() in _ABSENT))


def as_number(v: Any) -> float | None:
    """``v`` as a float, or None for absent, boolean, non-numeric or NaN values."""
    if isinstance(v, bool) or not is_present(v):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x == x else None


def as_flag(v: Any) -> bool | None:
    """``v`` as a bool (yes/no, true/false, present/absent, 1/0), else None."""
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)) and v in (0, 1):
        return bool(v)
    s = str(v).strip().lower() if v is not None else ""
    return {"yes": True, "y": True, "true": True, "present": True, "no": False, "n": False,
            "false": False, "absent": False}.get(s)


def as_words(v: Any) -> str | None:
    """A categorical value as lower-case words ('Upper_infection' -> 'upper infection'), or None."""
    if not is_present(v) or isinstance(v, bool):
        return None
    return re.sub(r"[_\s]+", " ", str(v)).strip()


def as_diagnosis(v: Any) -> str | None:
    """A diagnosis as words, with healthy, normal and healthy cough all as 'healthy'."""
    d = as_words(v)
    return "healthy" if d and d.lower() in ("healthy", "normal", "healthy cough") else d


def as_list(v: Any) -> tuple[str, ...] | None:
    """A list, or a string split on , ; +, as a tuple of words (None for anything else)."""
    if isinstance(v, (list, tuple)):
        items = [as_words(x) for x in v]
    elif isinstance(v, str):
        items = [as_words(x) for x in re.split(r"[,;+]", v)]
    else:
        return None
    return tuple(x for x in items if x)


# ---- the facts every dataset shares ----

def _common(r: Recording) -> dict[str, Any]:
    m = r.metadata
    f: dict[str, Any] = {"modality": r.modality if r.modality in ("lung", "heart", "cough", "breath", "speech") else None}
    age = as_number(m.get("age_years", m.get("age")))
    if age is not None and 0 <= age <= 120:
        f["age_years"] = int(age) if float(age).is_integer() else round(age, 1)
    group = as_words(m.get("age_group"))
    if group and group.lower() in ("neonate", "infant", "child", "adolescent", "young adult"):
        f["age_group"] = group.lower()
    sex = as_words(m.get("sex"))
    if sex and sex.lower() in ("male", "female"):
        f["sex"] = sex.lower()
    f["smoker"] = as_flag(m.get("smoker"))
    f["site"] = as_words(r.site or m.get("site") or m.get("location"))
    f["device"] = as_words(r.device or m.get("device"))
    f["diagnosis"] = as_diagnosis(m.get("diagnosis") or m.get("condition"))
    if "symptoms" in m:
        s = m["symptoms"]
        f["symptoms"] = () if isinstance(s, str) and s.strip().lower() == "none" else as_list(s)
    return f


def label_flag(r: Recording, name: str) -> bool | None:
    """The record's label ``name`` as a bool, or None when it has none; a value that is neither a flag
    nor absent (``maybe``) is an error that names it."""
    v = r.labels.get(name)
    flag = as_flag(v)
    if flag is None and is_present(v) and v == v:
        raise AculaError(f"recording {r.id}: label {name} is {v!r}, not yes/no, true/false, present/absent or 0/1")
    return flag


def adventitious_from_labels(r: Recording) -> dict[str, Any]:
    """Wheeze, crackle and adventitious facts from 0/1 labels; none when they contradict each other."""
    f: dict[str, Any] = {"wheeze": label_flag(r, "wheeze"), "crackle": label_flag(r, "crackle")}
    adv = label_flag(r, "adventitious")
    if adv is not None and None not in (f["wheeze"], f["crackle"]) and adv != (f["wheeze"] or f["crackle"]):
        return {}
    f["adventitious"] = adv
    return f


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
    from acula_edge.datasets import get_dataset, list_datasets

    withhold = check_withhold(withhold, phrases)
    f = _common(r)
    if r.dataset in list_datasets():
        f.update(get_dataset(r.dataset).facts(r))
    out = []
    for key in FIELDS:
        v = f.get(key)
        if key in withhold or v is None or (isinstance(v, str) and not is_present(v)):
            continue
        out.append(Fact(key, v))
    for col in phrases or {}:
        v = r.metadata.get(col, r.labels.get(col))
        if col not in withhold and is_present(v) and not isinstance(v, (list, dict)):
            out.append(Fact(f"csv:{col}", v))
    return out
