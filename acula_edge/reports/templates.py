"""Facts to a 2–3 sentence report, in a clinical or a plain register, worded by a seeded choice.

Sentence 1 says who was recorded, what, where and with what; sentence 2 the findings (present
and absent); sentence 3 the clinical context (diagnosis, symptoms, history, status). Only facts
are rendered; a fact that is absent from the list is never mentioned.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from acula_edge.reports.facts import Fact

REGISTERS = ("clinical", "plain")
LUNG_SIDES = ("left", "right", "anterior", "posterior", "lateral", "upper", "middle", "lower")


def _rng(seed: int, key: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"{seed}\x00{key}".encode()).digest()[:8], "big"))


def _num(x: Any) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _either(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _a(phrase: str) -> str:
    """``phrase`` with its indefinite article: 'an 8-year-old', 'an AKG C417L', 'a Meditron'."""
    first = phrase.split()[0] if phrase.split() else ""
    if first[:1].isdigit():
        n = first.split("-")[0].split(".")[0]
        vowel = n.startswith("8") or n in ("11", "18") or (len(n) in (5, 6) and n[:2] in ("11", "18"))
    elif first.isupper() and len(first) > 1:
        vowel = first[0] in "AEFHILMNORSX"
    else:
        vowel = first[:1].lower() in "aeiou"
    return ("an " if vowel else "a ") + phrase


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _subject(f: dict[str, Any], plain: bool, rng: random.Random) -> str:
    age, group, sex = f.get("age_years"), f.get("age_group"), f.get("sex")
    if plain and age is not None:
        noun = {"male": "boy" if age < 18 else "man", "female": "girl" if age < 18 else "woman"}.get(sex, "person")
        s = _a(f"{_num(age)}-year-old {noun}")
    elif age is not None:
        who = f"{sex} patient" if sex else "patient"
        s = rng.choice([_a(f"{_num(age)}-year-old {who}"), _a(f"{who} aged {_num(age)} years")])
    elif group:
        s = _a(group) + (f" ({sex})" if sex else "")
    else:
        s = f"a {sex} patient" if sex else ("a person" if plain else "a patient")
    if "smoker" in f:
        if plain:
            s += " who smokes" if f["smoker"] else " who does not smoke"
        else:
            s += rng.choice([", a current smoker", " who smokes"]) if f["smoker"] else \
                rng.choice([", a non-smoker", " who does not smoke"])
    return s


_WHAT = {
    "clinical": {"lung": ["Lung auscultation", "Chest auscultation", "Respiratory auscultation"],
                 "heart": ["Cardiac auscultation", "Heart sound recording", "Phonocardiogram"],
                 "cough": ["Cough recording", "Recording of coughs"],
                 "breath": ["Breath sound recording", "Recording of breathing"],
                 "speech": ["Voice recording", "Speech recording"]},
    "plain": {"lung": ["A recording of the lungs", "A recording of breathing sounds over the chest"],
              "heart": ["A recording of the heart", "A recording of the heartbeat"],
              "cough": ["A recording of coughing", "A recording of someone coughing"],
              "breath": ["A recording of breathing", "A recording of someone breathing"],
              "speech": ["A recording of speech", "A voice recording"]},
}


def _sentence_1(f: dict[str, Any], plain: bool, rng: random.Random) -> str:
    reg = "plain" if plain else "clinical"
    what = rng.choice(_WHAT[reg].get(f.get("modality", ""), ["A recording"] if plain else ["Recording"]))
    if "sound" in f:
        what += f" ({f['sound']})"
    site = f.get("site")
    if site:
        if f.get("modality") == "lung" and any(w in site.split() for w in LUNG_SIDES):
            what += f" at the {site} chest"
        elif f.get("modality") == "heart" and "area" not in site:
            what += f" at the {site} area"
        else:
            what += f" at the {site}"
    if f.get("device"):
        what += rng.choice([" with ", " using "]) + _a(f["device"])
        if f.get("filter_mode"):
            what += f" ({f['filter_mode']} mode)"
    return f"{what} {rng.choice(['in', 'from'])} {_subject(f, plain, rng)}."


_LUNG_TERMS = {
    "wheeze": ("wheezes", "wheezing (a whistling sound)"),
    "crackle": ("crackles", "crackles (short popping sounds)"),
    "rhonchi": ("rhonchi", "rhonchi (low snoring sounds)"),
    "stridor": ("stridor", "stridor (a harsh high-pitched sound)"),
    "bronchial_breathing": ("bronchial breath sounds", "bronchial breath sounds"),
}


def _lung_findings(f: dict[str, Any], plain: bool) -> tuple[list[str], list[str]]:
    i = 1 if plain else 0
    pos, neg = [], []
    for key, terms in _LUNG_TERMS.items():
        if key not in f:
            continue
        term = terms[i]
        if key == "crackle" and f.get("crackle_type") and f[key]:
            term = f"{f['crackle_type']} {term}"
        (pos if f[key] else neg).append(term)
    specific_cas = any(f.get(k) for k in ("wheeze", "rhonchi", "stridor"))
    specific_das = bool(f.get("crackle"))
    if f.get("cas") and not specific_cas:
        pos.append("continuous adventitious sounds")
    if f.get("das") and not specific_das:
        pos.append("discontinuous adventitious sounds")
    if f.get("adventitious") is True and not pos:
        pos.append("adventitious sounds")
    if f.get("adventitious") is False:
        neg = ["adventitious sounds"]
    return pos, neg


def _heart_findings(f: dict[str, Any], plain: bool, rng: random.Random) -> list[str]:
    out = []
    if f.get("murmur") is True:
        parts = [f"grade {f['murmur_grade']}"] if f.get("murmur_grade") else []
        parts += [f"{f[k]}" for k in ("murmur_quality", "murmur_shape") if f.get(k)]
        if f.get("murmur_pitch"):
            parts.append(f"{f['murmur_pitch']}-pitched")
        if f.get("murmur_timing"):
            parts.append(f["murmur_timing"])
        desc = " ".join(parts + ["murmur"])
        out.append(f"{_a(desc)} is heard" if not plain else f"there is {_a(desc)} (an extra whooshing sound)")
    elif f.get("murmur") is False:
        out.append(rng.choice(["no murmur is heard here", "there is no murmur at this site"]))
        if f.get("murmur_locations"):
            out.append(f"a murmur was heard at the {_join(list(f['murmur_locations']))} area"
                       + ("s" if len(f["murmur_locations"]) > 1 else ""))
    if f.get("heart_sounds"):
        out.append(f"the heart sounds were classified as {f['heart_sounds']}")
    if f.get("rhythm"):
        out.append(f"the rhythm is {f['rhythm']}")
    if f.get("heart_rate") is not None:
        out.append(f"the heart rate is about {_num(f['heart_rate'])} beats per minute")
    return out


def _sentence_2(f: dict[str, Any], plain: bool, rng: random.Random) -> str | None:
    clauses = []
    if f.get("signal_quality") == "poor":
        clauses.append("the recording quality is poor")
    pos, neg = _lung_findings(f, plain)
    if pos:
        verb = "is" if len(pos) == 1 and not pos[0].endswith("s") else "are"
        clauses.append(rng.choice([f"{_join(pos)} {verb} heard", f"auscultation reveals {_join(pos)}"])
                       if not plain else f"you can hear {_join(pos)}")
    if neg and pos:
        clauses.append(rng.choice([f"no {_either(neg)}", f"there are no {_either(neg)}"]))
    elif neg and f.get("adventitious") is False:  # the annotation says normal: no adventitious sound
        clauses.append(rng.choice([f"normal lung sounds with no {_either(neg)}",
                                   f"the lung sounds are normal, with no {_either(neg)}"]) if not plain
                       else f"the lungs sound normal, with no {_either(neg)}")
    elif neg:
        clauses.append(rng.choice([f"no {_either(neg)} are heard", f"there are no {_either(neg)}"]))
    clauses += _heart_findings(f, plain, rng)
    if f.get("cough_type"):
        clauses.append(rng.choice([f"the cough sounds {f['cough_type']}", f"the cough is {f['cough_type']}"]))
    if f.get("expert_assessment"):
        clauses.append(f"an expert judged the cough as {f['expert_assessment']}")
    if f.get("expert_findings"):
        clauses.append(f"an expert listener noted {_join(list(f['expert_findings']))}")
    if f.get("resp_rate") is not None:
        clauses.append(f"the respiratory rate is about {_num(f['resp_rate'])} breaths per minute")
    if not clauses:
        return None
    return _cap("; ".join(clauses)) + "."


def _sentence_3(f: dict[str, Any], plain: bool, rng: random.Random, extra: list[str]) -> str | None:
    parts = []
    d = f.get("diagnosis")
    if d:
        if d.lower() in ("healthy", "normal"):
            parts.append(rng.choice(["no known disease (healthy)", "clinically healthy"]) if not plain
                         else "the person is healthy")
        else:
            parts.append(rng.choice([f"diagnosis: {d}", f"clinical diagnosis of {d}"]) if not plain
                         else f"the diagnosis is {d}")
    if "symptoms" in f:
        s = list(f["symptoms"])
        parts.append(rng.choice([f"reported symptoms: {_join(s)}", f"symptoms include {_join(s)}"]) if s
                     else "no symptoms reported")
    if f.get("conditions"):
        parts.append(f"history of {_join(list(f['conditions']))}")
    if f.get("covid_status"):
        parts.append(f"COVID-19 status: {f['covid_status']}")
    if f.get("reported_status"):
        parts.append(f"self-reported status: {f['reported_status']}")
    if f.get("outcome"):
        parts.append(f"the clinical outcome was {f['outcome']}")
    parts += extra
    if not parts:
        return None
    return _cap("; ".join(parts)) + "."


def render(facts: list[Fact], register: str = "clinical", seed: int = 0, key: str = "",
           phrases: dict[str, str] | None = None) -> str:
    """The report for ``facts``; ``seed`` and ``key`` (the recording id) choose the wording."""
    if register not in REGISTERS:
        raise ValueError(f"register must be one of {REGISTERS}")
    rng = _rng(seed, key)
    plain = register == "plain"
    f = {x.key: x.value for x in facts if not x.key.startswith("csv:")}
    extra = [(phrases or {}).get(x.key[4:], x.key[4:].replace("_", " ") + ": {value}").format(value=x.value)
             for x in facts if x.key.startswith("csv:")]
    sentences = [_sentence_1(f, plain, rng), _sentence_2(f, plain, rng), _sentence_3(f, plain, rng, extra)]
    return " ".join(s for s in sentences if s)
