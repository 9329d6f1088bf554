"""The fact guard: does a reworded report state exactly the facts, no more, no fewer?

It rejects text that drops a fact, changes one (another age, the other side, wet for dry),
negates or hedges one (``no wheezes``, ``possible wheezes`` for wheezes) or adds a finding, a
diagnosis, a symptom, a number or a demographic that the facts do not hold.

Each mention is judged affirmed, negated or hedged. A negation cue before it (no, without,
denies, ruled out, ...) reaches it within its noun phrase: up to the next verb, and across
commas only through verbless list items (``no crackles, rhonchi or stridor``), never into a new
clause (``no wheezes, crackles are heard``). A cue after it (``were not``, ``are absent``,
``could not be heard``) negates it too; ``possible``, ``likely``, ``cannot be excluded`` hedge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from acula_edge.reports.facts import Fact

YES, NO, MAYBE = "yes", "no", "maybe"
# finding key -> regex of its mentions (keys the facts never hold are added findings)
FINDINGS = {
    "wheeze": r"wheez\w*|whistling",
    "crackle": r"crackl\w*|crepitation\w*|crepitus|\brales?\b|popping sounds?",
    "rhonchi": r"rhonch\w*|snoring sounds?",
    "stridor": r"stridor\w*",
    "bronchial_breathing": r"bronchial breath\w*",
    "murmur": r"murmur\w*",
    "adventitious": r"adventitious",
    "gallop": r"gallop\w*|\bs[34]\b|(?:third|fourth) heart sound",
    "pleural_rub": r"\brub\w*",
    "diminished_breath_sounds": r"(?:diminished|decreased|reduced|quiet|absent) breath sounds|breath sounds (?:are |were )?"
                                r"(?:diminished|decreased|reduced)",
    "tachypnoea": r"tachypn\w*",
    "tachycardia": r"tachycard\w*|bradycard\w*",
    "squawk": r"squawk\w*",
}
LUNG_NORMAL = r"normal (?:lung|breath)\w* sounds?|(?:lung|breath) sounds (?:are|were) (?:\w+ )?normal|" \
              r"lungs? (?:sound|sounds|are|were|is) (?:\w+ )?normal|lungs? (?:are |were )?clear|clear lungs?"
# diagnoses and conditions a rewording must not invent
DISEASES = r"asthma\w*|copd|chronic obstructive|pneumonia|bronchiectasis|bronchiolitis|bronchitis|urti|lrti|croup|" \
           r"bronchospasm|hypertension|reactive airway|heart failure|valve disease|covid|fibrosis|effusion|" \
           r"tuberculosis|\btb\b|cancer|infection|emphysema|pertussis|whooping|pneumothorax|influenza|\bflu\b|" \
           r"sepsis|\brsv\b|viral|diabetes|arrhythmia|fibrillation|stenosis|regurgitation|hypox\w*|" \
           r"saturation|edema|oedema|embolism"
EXPANSIONS = {"copd": r"chronic obstructive pulmonary disease", "urti": r"upper respiratory (?:tract )?infection",
              "lrti": r"lower respiratory (?:tract )?infection"}
SYMPTOMS = r"fever\w*|febrile|sore throat|headache|fatigue|dyspn\w*|shortness of breath|breathless\w*|" \
           r"chest pain|runny nose|loss of smell|anosmia|muscle pain|myalgia|diarrho?ea|chills|symptom\w*"
# mutually exclusive values: saying another one is a changed fact
OPPOSITES = {"wet": "dry", "dry": "wet", "left": "right", "right": "left", "systolic": "diastolic",
             "diastolic": "systolic", "regular": "irregular", "irregular": "regular", "normal": "abnormal",
             "abnormal": "normal", "anterior": "posterior", "posterior": "anterior", "fine": "coarse",
             "coarse": "fine", "poor": "good", "good": "poor"}
ALTERNATIVES = {"murmur_shape": "plateau|diamond|crescendo|decrescendo", "murmur_pitch": "low|medium|high",
                "murmur_quality": "harsh|blowing|musical", "filter_mode": "bell|diaphragm|extended"}
SEX_WORDS = {"male": r"\b(?:male|man|men|boy|he|his|him|gentleman)\b",
             "female": r"\b(?:female|woman|women|girl|she|her|hers|lady)\b"}
AGE_WORDS = r"\b(?:elderly|aged|old|older|young|younger|adult|child|children|infant|neonat\w*|newborn|baby|toddler|" \
            r"teen\w*|adolescent|middle-aged|years?)\b"
SITE_WORDS = r"\b(?:left|right|apex|apical|base|bases|basal|anterior|posterior|lateral|aortic|mitral|tricuspid|pulmonic)\b"
QUALITY_WORDS = r"\bquality\b|\bnois(?:e|y)\b|artefact|artifact"

VERB = re.compile(r"\b(?:is|are|was|were|be|been|being|has|have|had|heard|present|noted|detected|found|reveals?|"
                  r"revealed|shows?|showed|include[sd]?)\b")
PRE_NEG = re.compile(r"\b(?:no|not|never|without|absent|absence of|denies|denied|deny|negative for|free of|nor|"
                     r"neither|none|lack of|lacks|lacking|ruled out|excludes?|excluded)\b")
PRE_MAYBE = re.compile(r"\b(?:possible|possibly|probable|probably|\w*likely|suspected|suspect|suspicion of|may|"
                       r"might|questionable|perhaps|maybe|rule out|suggestive of|suggests?|previously)\b")
POST_VERB = re.compile(r"(?:\s*\b(?:is|are|was|were|be|been|could|can|cannot|did|do|does|has|have|had|seems?|"
                       r"appears?|remains?|now)\b)+")
POST_MAYBE = re.compile(r"(?:not|cannot) be (?:excluded|ruled out)|possibl\w*|probabl\w*|\w*likely|suspected|"
                        r"questionable|\b(?:may|might|could)\b(?! not be heard)|previously")
POST_NEG = re.compile(r"\b(?:not|never|absent|cannot|excluded|ruled out|gone|free|none)\b")
CLAUSE = re.compile(r"\.(?!\d)|[;:!?\n]|\b(?:but|whereas|while|although|though|however|only|except|apart from|"
                    r"other than|rather than|instead of)\b")
PHRASE_END = re.compile(r"\b(?:on|in|at|from|with|who|which|that)\b")  # a pre-cue's noun phrase ends here
SEGMENT = re.compile(r"[,()]")
NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.]*\d)")
NUMBER_CUES = {  # key -> (cue after the number, cue before it)
    "age_years": (r"^\s*-?\s*(?:years?|yrs?|y/?o\b|-year)", r"\b(?:aged?|age of|age is)\s*(?:about\s+)?$"),
    "heart_rate": (r"^\s*(?:beats|bpm|/min\b)", r"heart ?rate\s*(?:is|was|of|at)?\s*(?:about|around|approximately|~)?\s*$"),
    "resp_rate": (r"^\s*(?:breaths|/min\b)", r"(?:respiratory|breathing) rate\s*(?:is|was|of|at)?\s*"
                                            r"(?:about|around|approximately|~)?\s*$"),
}


@dataclass
class Verdict:
    """The guard's answer: ``ok`` and, when not, the reasons."""

    ok: bool
    reasons: list[str] = field(default_factory=list)


def _status(text: str, start: int, end: int, carry: bool = True) -> str:
    """Is the mention at ``text[start:end]`` affirmed (YES), negated (NO) or hedged (MAYBE)?

    ``carry``: a cue reaches it back through verbless list items (nouns; values are adjectives)."""
    cs = max([c.end() for c in CLAUSE.finditer(text, 0, start)], default=0)
    ce = next((c.start() for c in CLAUSE.finditer(text, end)), len(text))
    segs = SEGMENT.split(text[cs:start])  # segments before the mention; the last is the mention's own
    own_end = next((m.start() for m in SEGMENT.finditer(text, end, ce)), ce)
    own = segs[-1] + " " + text[end:own_end]
    own_has_verb = VERB.search(own) and not re.search(r"\b(?:or|nor)\b", own)
    # the cue after: the verb group that follows the mention, up to the next conjunction
    post = text[end:own_end]
    v = POST_VERB.search(post)
    v = v if v and re.fullmatch(r"\S*\s*(?:(?:and|or|nor)\s+[\w-]+(?:\s+[\w-]+)?)?\s*", post[:v.start()]) else None
    window = re.split(r"\b(?:and|or|with|but)\b", post[v.start():] if v else post[:12])[0]
    if POST_MAYBE.search(window):
        return MAYBE
    if POST_NEG.search(window):
        return NO
    # the cue before: after the last verb of its own segment, then back through verbless list items
    for i, seg in enumerate(reversed(segs)):
        if i > 0 and (own_has_verb or not carry):
            break
        verbs = list(VERB.finditer(seg))
        scope = seg[verbs[-1].end():] if verbs else seg
        scope = scope[max([m.start() for m in PHRASE_END.finditer(scope)], default=0):]
        if PRE_MAYBE.search(scope):
            return MAYBE
        if PRE_NEG.search(scope):
            return NO
        if verbs:
            break
    return YES


def _mentions(text: str, pattern: str, carry: bool = True) -> list[str]:
    return [_status(text, m.start(), m.end(), carry) for m in re.finditer(pattern, text)]


def _numbers(s: str) -> set[str]:
    return {n.rstrip("0").rstrip(".") if "." in n else n for n in NUMBER.findall(s)}


def _norm(n: str) -> str:
    return n.rstrip("0").rstrip(".") if "." in n else n


def _words_of(value) -> list[str]:
    vals = value if isinstance(value, tuple) else (value,)
    return [w for v in vals for w in re.findall(r"[a-z0-9\-/]+", str(v).lower())]


def check(facts: list[Fact], text: str) -> Verdict:
    """Compare ``text`` with ``facts``; see the module docstring for what is rejected."""
    t = " ".join(text.lower().split())
    t = re.sub(r"\bno known (?:disease|diagnosis|condition)s?\b", "healthy", t)
    for abbr, long in EXPANSIONS.items():
        t = re.sub(long, abbr, t)
    f = {x.key: x.value for x in facts}
    reasons = []
    known = " ".join(str(v).lower() for v in f.values()) + (" covid" if "covid_status" in f else "")

    # Reported symptoms, history and murmur sites may name a finding ("symptoms: wheezing"): they are
    # checked as words below, and taken out before findings are judged.
    items = [str(i).lower() for k in ("symptoms", "conditions", "expert_findings") for i in (f.get(k) or ())]
    locs = [str(i).lower() for i in (f.get("murmur_locations") or ())]
    parts = []
    for part in re.split(r"(?<=[.;])(?!\d)", t):
        if items and re.search(r"symptom|complain|report|history|present\w* with|noted|listener|expert", part):
            for item in items:
                part = re.sub(rf"\b{re.escape(item)}\b", " ", part)
        if any(loc in part for loc in locs) and "murmur" in part and f.get("site", "") not in part:
            part = " "
        parts.append(part)
    ft = "".join(parts)  # the findings text

    # numbers: every number said must be a fact's, and a numeric fact must stand by its cue
    allowed = set().union(*[_numbers(str(v)) for v in f.values()]) if f else set()
    for n in sorted(_numbers(re.sub(r"covid-19|sars-cov-2|\bs[1-4]\b", "x", t)) - allowed):
        reasons.append(f"states a number not in the facts: {n}")
    keyed: dict[str, set[str]] = {k: set() for k in NUMBER_CUES}
    for m in NUMBER.finditer(t):
        for key, (after, before) in NUMBER_CUES.items():
            if re.search(after, t[m.end():m.end() + 12]) or re.search(before, t[max(0, m.start() - 40):m.start()]):
                keyed[key].add(_norm(m.group()))
    for key in NUMBER_CUES:
        if key in f and keyed[key] != {_norm(str(f[key]))}:
            reasons.append(f"drops or changes {key} ({f[key]}; says {', '.join(sorted(keyed[key])) or 'nothing'})")
        elif key not in f and keyed[key] and not (key == "age_years" and "age_group" in f):
            reasons.append(f"adds {key} ({', '.join(sorted(keyed[key]))})")

    # demographics and context the facts do not hold
    if "sex" in f and f["sex"] in SEX_WORDS:
        if YES not in _mentions(t, SEX_WORDS[f["sex"]]):
            reasons.append(f"drops sex ({f['sex']})")
        other = "female" if f["sex"] == "male" else "male"
        if re.search(SEX_WORDS[other], t):
            reasons.append(f"changes sex to {other}")
    elif any(re.search(p, t) for p in SEX_WORDS.values()):
        reasons.append("adds sex, which is not in the facts")
    if "age_years" not in f and "age_group" not in f and re.search(AGE_WORDS, t):
        reasons.append("adds age, which is not in the facts")
    if "smoker" not in f and re.search(r"smok\w*|cigarette|tobacco|pack-year", t):
        reasons.append("adds smoker status, which is not in the facts")
    if "site" not in f and "murmur_locations" not in f and re.search(SITE_WORDS, ft) and \
            not any(re.search(SITE_WORDS, str(v).lower()) for v in f.values()):
        reasons.append("adds site, which is not in the facts")
    if "signal_quality" in f and not re.search(rf"{f['signal_quality']}[\w\s-]{{0,20}}(?:quality|recording|signal)|"
                                                rf"(?:quality|recording|signal)[\w\s-]{{0,20}}{f['signal_quality']}", t):
        reasons.append(f"drops or changes signal_quality ({f['signal_quality']})")
    if re.search(r"\b(?:brother|sister|mother|father|sibling|parents?|family|relatives?)\b", t):
        reasons.append("speaks of another person than the one recorded")
    if "signal_quality" not in f and "murmur_quality" not in f and re.search(QUALITY_WORDS, t):
        reasons.append("adds signal_quality, which is not in the facts")

    # findings: present ones affirmed, absent ones negated, others not mentioned at all
    lung_negative = f.get("adventitious") is False
    said = {key: _mentions(ft, pattern) for key, pattern in FINDINGS.items()}
    specific = {"cas": ("wheeze", "rhonchi", "stridor"), "das": ("crackle",),
                "adventitious": ("wheeze", "rhonchi", "stridor", "crackle", "bronchial_breathing")}
    for group, members in specific.items():
        if f.get(group) is True and YES not in said["adventitious"] + [s for m in members for s in said[m]]:
            reasons.append(f"drops the finding {group}")
    for key in FINDINGS:
        m = said[key]
        if f.get(key) is True:
            if key == "adventitious":
                continue  # covered above
            if YES not in m:
                reasons.append(f"drops or negates the finding {key}")
            elif set(m) != {YES}:
                reasons.append(f"both affirms and negates or hedges {key}")
        elif f.get(key) is False:
            if YES in m:
                reasons.append(f"affirms {key}, which the facts say is absent")
            elif MAYBE in m:
                reasons.append(f"hedges {key}, which the facts say is absent")
            elif not m and not (lung_negative and key != "murmur"):
                reasons.append(f"drops the absent finding {key}")
        elif key == "adventitious" and (f.get("cas") or f.get("das") or lung_negative):
            if lung_negative and set(m) - {NO}:
                reasons.append("affirms or hedges adventitious sounds, which the facts say are absent")
        elif m:
            reasons.append(f"adds the finding {key}, which is not in the facts")
    if lung_negative:
        normal = _mentions(ft, r"\bnormal\b|\bclear\b")
        negated = [s for k in specific["adventitious"] + ("adventitious",) for s in said[k]]
        if set(normal) - {YES}:
            reasons.append("negates or hedges the normal lung sounds (adventitious is false)")
        elif YES not in normal and NO not in negated:
            reasons.append("drops the normal lung finding (adventitious is false)")
        if YES in _mentions(ft, r"\babnormal\b") and "abnormal" not in known:
            reasons.append("says abnormal lung sounds, but adventitious is false")
    elif any(f.get(k) is True for k in specific["adventitious"] + ("adventitious", "cas", "das")) and \
            re.search(LUNG_NORMAL, ft):
        reasons.append("says normal lung sounds, but a finding (adventitious) is present")

    # diagnoses, conditions and symptoms: the facts' affirmed, no others
    for m in re.finditer(DISEASES, ft):
        if m.group(0) not in known:
            reasons.append(f"adds the diagnosis or condition '{m.group(0)}'")
    for m in re.finditer(SYMPTOMS, ft):
        w = m.group(0)
        if w in known:
            continue
        if w.startswith("symptom"):
            if f.get("symptoms") == () and _status(ft, m.start(), m.end()) == YES:
                reasons.append("adds symptoms, but none were reported")
            elif "symptoms" not in f:
                reasons.append("adds symptoms, which are not in the facts")
        else:
            reasons.append(f"adds the symptom '{w}'")

    # categorical facts: their words affirmed, their alternatives unsaid
    for key in ("site", "device", "filter_mode", "diagnosis", "cough_type", "murmur_timing", "murmur_grade",
                "murmur_shape", "murmur_pitch", "murmur_quality", "crackle_type", "rhythm", "heart_sounds", "outcome",
                "covid_status", "signal_quality", "age_group", "sound", "murmur_locations", "expert_assessment",
                "reported_status"):
        if key not in f:
            continue
        words = [w for w in _words_of(f[key]) if len(w) > 1]
        missing = [w for w in words if not re.search(rf"\b{re.escape(w)}\b", t)]
        if missing:
            reasons.append(f"drops or changes {key} ({f[key]}: missing {', '.join(missing)})")
        elif key not in ("device", "site", "murmur_locations", "sound"):
            st = _mentions(t, rf"\b{re.escape(str(f[key]).lower())}\b", carry=False)
            if set(st) - {YES}:
                reasons.append(f"negates or hedges {key} ({f[key]})")
        alts = [o for o in re.findall(r"\w+", ALTERNATIVES.get(key, "")) if o not in words]
        alts += [o for w in words if (o := OPPOSITES.get(w)) and o not in words]
        for o in alts:
            scope = t if key in ("heart_sounds", "outcome") else ft
            scope = re.sub(LUNG_NORMAL, " ", scope) if o == "normal" else scope
            if re.search(rf"\b{o}\b", scope) and o not in known.replace(str(f[key]).lower(), ""):
                reasons.append(f"changes {key}: says '{o}' for '{f[key]}'")
    for key in ("symptoms", "conditions", "expert_findings"):
        for item in f.get(key, ()) or ():
            st = _mentions(t, rf"\b{re.escape(str(item).lower())}\b")
            if YES not in st:
                reasons.append(f"drops or negates {key[:-1] if key.endswith('s') else key} '{item}'")
    if "smoker" in f:
        st = _mentions(t, r"\bsmok\w*")
        negated = NO in st or re.search(r"non-?smok", t)
        if not st:
            reasons.append("drops smoking status (smoker)")
        elif MAYBE in st or bool(negated) == bool(f["smoker"]):
            reasons.append("changes smoking status (smoker)")
    for key, value in f.items():
        if key.startswith("csv:") and str(value).lower() not in t:
            reasons.append(f"drops {key[4:]} ({value})")
    return Verdict(not reasons, reasons)
