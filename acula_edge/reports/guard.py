"""The fact guard: does a reworded report state exactly the facts, no more, no fewer?

It rejects text that drops a fact, changes one (another age, the other side, wet for dry),
negates one (``no wheezes`` for wheezes) or adds a finding or a diagnosis that the facts do
not hold. Findings are matched by word stems, and a mention counts as negated when a negation
cue (no, not, without, absent, denies, negative for, ...) stands before it in the same clause.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from acula_edge.reports.facts import Fact

# finding key -> regex of its mentions
FINDINGS = {
    "wheeze": r"wheez\w*",
    "crackle": r"crackl\w*|crepitation\w*|rales?\b",
    "rhonchi": r"rhonch\w*",
    "stridor": r"stridor\w*",
    "bronchial_breathing": r"bronchial breath\w*",
    "murmur": r"murmur\w*",
    "adventitious": r"adventitious",
}
# diagnoses and conditions a rewording must not invent
DISEASES = r"asthma|copd|chronic obstructive|pneumonia|bronchiectasis|bronchiolitis|bronchitis|urti|lrti|" \
           r"heart failure|valve disease|covid|fibrosis|effusion|tuberculosis|cancer|infection|emphysema"
# mutually exclusive values: saying the other one is a changed fact
OPPOSITES = {"wet": "dry", "dry": "wet", "male": "female", "female": "male", "left": "right", "right": "left",
             "systolic": "diastolic", "diastolic": "systolic", "regular": "irregular", "irregular": "regular",
             "normal": "abnormal", "abnormal": "normal", "anterior": "posterior", "posterior": "anterior",
             "fine": "coarse", "coarse": "fine", "poor": "good", "good": "poor"}
SEX_WORDS = {"male": r"\b(?:male|man|boy|he|his|him)\b", "female": r"\b(?:female|woman|girl|she|her)\b"}
NEGATION = re.compile(r"\b(?:no|not|without|absent|absence of|denies|denied|negative for|free of|nor|neither|"
                      r"none|lack of|lacks)\b")
POST_NEGATION = re.compile(r"^\W*(?:(?:is|are|was|were)\s+)?(?:absent|not (?:heard|present|detected|noted))")
CLAUSE = re.compile(r"[.;:!?\n]|,\s*(?:but|while|whereas|and)\b|\bbut\b")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)")


@dataclass
class Verdict:
    """The guard's answer: ``ok`` and, when not, the reasons."""

    ok: bool
    reasons: list[str] = field(default_factory=list)


def _mentions(text: str, pattern: str) -> list[bool]:
    """For each mention of ``pattern``: True when affirmed, False when negated."""
    out = []
    for m in re.finditer(pattern, text):
        starts = [c.end() for c in CLAUSE.finditer(text, 0, m.start())]
        clause_start = starts[-1] if starts else 0
        before = text[clause_start:m.start()]
        ends = [c.start() for c in CLAUSE.finditer(text, m.end())]
        after = text[m.end():ends[0] if ends else len(text)]
        out.append(not (NEGATION.search(before) or POST_NEGATION.search(after)))
    return out


def _numbers(s: str) -> set[str]:
    return {n.rstrip("0").rstrip(".") if "." in n else n for n in NUMBER.findall(s)}


def _words_of(value) -> list[str]:
    vals = value if isinstance(value, tuple) else (value,)
    return [w for v in vals for w in re.findall(r"[a-z0-9\-]+", str(v).lower())]


def check(facts: list[Fact], text: str) -> Verdict:
    """Compare ``text`` with ``facts``; see the module docstring for what is rejected."""
    t = " ".join(text.lower().split())
    f = {x.key: x.value for x in facts}
    reasons = []

    # Reported symptoms and history may name a finding ("symptoms: wheezing"): they are checked as
    # words below, and taken out before findings are judged.
    items = [str(i).lower() for k in ("symptoms", "conditions", "expert_findings") for i in (f.get(k) or ())]
    parts = []
    for part in re.split(r"(?<=[.;])", t):
        if items and re.search(r"symptom|complain|report|history|present\w* with|noted|listener|expert", part):
            for item in items:
                part = re.sub(rf"\b{re.escape(item)}\b", " ", part)
        parts.append(part)
    findings_text = "".join(parts)

    # numbers: every number said must be a fact's, and every numeric fact must be said
    allowed = set().union(*[_numbers(str(v)) for v in f.values()]) if f else set()
    for n in sorted(_numbers(re.sub(r"covid-19|sars-cov-2", "covid", t)) - allowed):
        reasons.append(f"states a number not in the facts: {n}")
    for key in ("age_years", "heart_rate", "resp_rate"):
        if key in f and not (_numbers(str(f[key])) <= _numbers(t)):
            reasons.append(f"drops or changes {key} ({f[key]})")

    # sex
    if "sex" in f and f["sex"] in SEX_WORDS:
        if not re.search(SEX_WORDS[f["sex"]], t):
            reasons.append(f"drops sex ({f['sex']})")
        other = "female" if f["sex"] == "male" else "male"
        if re.search(SEX_WORDS[other], t):
            reasons.append(f"changes sex to {other}")

    # findings: present ones affirmed, absent ones negated, others not mentioned at all
    lung_negative = f.get("adventitious") is False
    said = {key: _mentions(findings_text, pattern) for key, pattern in FINDINGS.items()}
    specific = {"cas": ("wheeze", "rhonchi", "stridor"), "das": ("crackle",),
                "adventitious": ("wheeze", "rhonchi", "stridor", "crackle", "bronchial_breathing")}
    for group, members in specific.items():
        if f.get(group) is True and not (any(said["adventitious"]) or any(any(said[m]) for m in members)):
            reasons.append(f"drops the finding {group}")
    for key in FINDINGS:
        m = said[key]
        if f.get(key) is True:
            if key == "adventitious":
                continue  # covered above
            if not any(m):
                reasons.append(f"drops or negates the finding {key}")
            elif not all(m):
                reasons.append(f"both affirms and negates {key}")
        elif f.get(key) is False:
            if any(m):
                reasons.append(f"affirms {key}, which the facts say is absent")
            elif not m and not (lung_negative and key != "murmur"):
                reasons.append(f"drops the absent finding {key}")
        elif key == "adventitious" and (f.get("cas") or f.get("das") or lung_negative):
            if lung_negative and any(m):
                reasons.append("affirms adventitious sounds, which the facts say are absent")
        elif m:
            reasons.append(f"adds the finding {key}, which is not in the facts")

    # diseases not in the facts
    known = " ".join(str(v).lower() for k, v in f.items() if k in ("diagnosis", "conditions", "covid_status", "symptoms"))
    known += " covid" if "covid_status" in f else ""
    for m in re.finditer(DISEASES, findings_text):
        if m.group(0) not in known and not (m.group(0) == "covid" and "covid" in known):
            reasons.append(f"adds the diagnosis or condition '{m.group(0)}'")

    # categorical facts: their words must appear, their opposites must not
    for key in ("site", "device", "diagnosis", "cough_type", "murmur_timing", "murmur_grade", "crackle_type",
                "rhythm", "heart_sounds", "outcome", "covid_status", "signal_quality", "age_group", "sound"):
        if key not in f:
            continue
        words = [w for w in _words_of(f[key]) if len(w) > 1]
        missing = [w for w in words if not re.search(rf"\b{re.escape(w)}\b", t)]
        if missing:
            reasons.append(f"drops or changes {key} ({f[key]}: missing {', '.join(missing)})")
        for w in words:
            o = OPPOSITES.get(w)
            if o and o not in words and re.search(rf"\b{o}\b", findings_text) and key != "heart_sounds":
                reasons.append(f"changes {key}: says '{o}' for '{w}'")
    for key in ("symptoms", "conditions", "expert_findings"):
        for item in f.get(key, ()) or ():
            if str(item).lower() not in t:
                reasons.append(f"drops {key[:-1] if key.endswith('s') else key} '{item}'")
    if "smoker" in f:
        says_smoker = re.search(r"\bsmok\w*", t)
        negated = says_smoker and not all(_mentions(t, r"\bsmok\w*")) or re.search(r"non-?smoker", t)
        if not says_smoker:
            reasons.append("drops smoking status")
        elif bool(negated) == bool(f["smoker"]):
            reasons.append("changes smoking status")
    for key, value in f.items():
        if key.startswith("csv:") and str(value).lower() not in t:
            reasons.append(f"drops {key[4:]} ({value})")
    return Verdict(not reasons, reasons)
