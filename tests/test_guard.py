"""The fact guard on adversarial rewordings (each rejected, naming the fact) and faithful ones (accepted)."""

import pytest

from acula_edge.reports import Fact, check

LUNG = [Fact("age_years", 8.1), Fact("sex", "female"), Fact("modality", "lung"), Fact("site", "left posterior"),
        Fact("adventitious", True), Fact("cas", True), Fact("das", False), Fact("wheeze", True),
        Fact("crackle", False), Fact("rhonchi", False), Fact("stridor", False)]
LUNG_TEXT = ("Lung auscultation at the left posterior chest in an 8.1-year-old female patient. "
             "Wheezes are heard; no crackles, rhonchi or stridor.")
NORMAL = [Fact("age_years", 8.1), Fact("sex", "female"), Fact("modality", "lung"), Fact("adventitious", False),
          Fact("wheeze", False), Fact("crackle", False), Fact("rhonchi", False), Fact("stridor", False)]
NORMAL_TEXT = "Lung auscultation in an 8.1-year-old girl. Normal lung sounds with no adventitious sounds."
HEART = [Fact("age_years", 70), Fact("sex", "male"), Fact("modality", "heart"), Fact("heart_sounds", "normal"),
         Fact("murmur", False), Fact("rhythm", "regular"), Fact("heart_rate", 82), Fact("diagnosis", "healthy")]
HEART_TEXT = ("Cardiac auscultation in a 70-year-old male patient. There is no murmur; the heart sounds were classified "
              "as normal; the rhythm is regular; the heart rate is about 82 beats per minute. No known disease (healthy).")
COPD = [Fact("modality", "lung"), Fact("wheeze", False), Fact("crackle", True), Fact("diagnosis", "COPD")]
COPD_TEXT = "Lung auscultation. Crackles are heard; no wheezes. Diagnosis: COPD."
MURMUR = [Fact("modality", "heart"), Fact("murmur", True), Fact("murmur_timing", "systolic"),
          Fact("murmur_shape", "plateau"), Fact("murmur_pitch", "low"), Fact("murmur_quality", "harsh")]
MURMUR_TEXT = "Cardiac auscultation. A harsh plateau low-pitched systolic murmur is heard."
COUGH = [Fact("modality", "cough"), Fact("cough_type", "dry"), Fact("covid_status", "positive"), Fact("symptoms", ())]
COUGH_TEXT = "Cough recording. The cough is dry. No symptoms reported; COVID-19 status: positive."
SYMPT = [Fact("modality", "cough"), Fact("symptoms", ("cough", "fever"))]
SYMPT_TEXT = "Cough recording. Reported symptoms: cough and fever."
CASES = {"lung": (LUNG, LUNG_TEXT), "normal": (NORMAL, NORMAL_TEXT), "heart": (HEART, HEART_TEXT),
         "copd": (COPD, COPD_TEXT), "murmur": (MURMUR, MURMUR_TEXT), "cough": (COUGH, COUGH_TEXT),
         "sympt": (SYMPT, SYMPT_TEXT)}


def _sub(case, old, new):
    text = CASES[case][1]
    assert old in text, old
    return text.replace(old, new)


@pytest.mark.parametrize("case", list(CASES))
def test_base_reports_pass(case):
    facts, text = CASES[case]
    assert check(facts, text).ok, check(facts, text).reasons


REJECT = [
    # 1. a normal lung finding dropped or flipped
    ("normal", _sub("normal", " Normal lung sounds with no adventitious sounds.", ""), "adventitious"),
    ("normal", _sub("normal", "Normal lung sounds with no adventitious sounds", "Abnormal breath sounds were heard"),
     "adventitious"),
    ("normal", _sub("normal", "Normal lung sounds with no adventitious sounds", "The lungs are not normal"),
     "adventitious"),
    ("normal", _sub("normal", "with no adventitious sounds", "; adventitious sounds are heard"), "adventitious"),
    ("normal", _sub("normal", "with no adventitious sounds", "but rhonchi"), "rhonchi"),
    # 2. negation cues and their scope
    ("lung", _sub("lung", "Wheezes are heard", "Wheezes could not be heard"), "wheeze"),
    ("lung", _sub("lung", "Wheezes are heard", "Wheezes cannot be heard"), "wheeze"),
    ("lung", _sub("lung", "Wheezes are heard", "Wheezes were ruled out"), "wheeze"),
    ("lung", _sub("lung", "Wheezes are heard", "Wheezes are unlikely"), "wheeze"),
    ("lung", _sub("lung", "Wheezes are heard", "Wheezes were never heard"), "wheeze"),
    ("lung", _sub("lung", "Wheezes are heard", "Possible wheezes"), "wheeze"),
    ("lung", _sub("lung", "Wheezes are heard", "Wheezes were possibly heard"), "wheeze"),
    ("lung", _sub("lung", "Wheezes are heard", "Wheezes were not heard"), "wheeze"),
    ("lung", _sub("lung", "Wheezes are heard", "Wheezes are absent"), "wheeze"),
    ("lung", _sub("lung", "Wheezes are heard; no crackles, rhonchi or stridor",
                  "Wheezes are heard; no rhonchi or stridor, crackles are heard"), "crackle"),
    ("lung", _sub("lung", "Wheezes are heard; no crackles, rhonchi or stridor",
                  "Wheezes are heard and crackles are heard, whereas rhonchi and stridor were not"), "crackle"),
    ("copd", _sub("copd", "Crackles are heard; no wheezes", "Crackles and wheezes were heard"), "wheeze"),
    ("copd", _sub("copd", "no wheezes", "wheezes cannot be excluded"), "wheeze"),
    ("heart", _sub("heart", "There is no murmur", "A murmur could not be excluded"), "murmur"),
    ("heart", _sub("heart", "There is no murmur", "A murmur is likely"), "murmur"),
    # 3. numbers by their cue
    ("heart", _sub("heart", "70-year-old", "82-year-old").replace("about 82", "about 70"), "age_years"),
    ("heart", _sub("heart", "70-year-old", "82-year-old").replace("about 82", "about 70"), "heart_rate"),
    ("lung", _sub("lung", "8.1-year-old", "81-year-old"), "age_years"),
    ("copd", _sub("copd", "Lung auscultation.", "Lung auscultation; respiratory rate 30 breaths per minute."),
     "resp_rate"),
    # 4. categorical facts negated or changed
    ("heart", _sub("heart", "were classified as normal", "were not classified as normal"), "heart_sounds"),
    ("heart", _sub("heart", "were classified as normal", "were classified as abnormal"), "heart_sounds"),
    ("heart", _sub("heart", "the rhythm is regular", "the rhythm is not regular"), "rhythm"),
    ("heart", _sub("heart", "the rhythm is regular", "the rhythm is irregular"), "rhythm"),
    ("cough", _sub("cough", "The cough is dry", "The cough is not dry"), "cough_type"),
    ("cough", _sub("cough", "The cough is dry", "The cough is wet"), "cough_type"),
    ("cough", _sub("cough", "status: positive", "status: not positive"), "covid_status"),
    ("murmur", _sub("murmur", "plateau", "diamond"), "murmur_shape"),
    ("murmur", _sub("murmur", "low-pitched", "high-pitched"), "murmur_pitch"),
    ("murmur", _sub("murmur", "harsh", "blowing"), "murmur_quality"),
    ("murmur", _sub("murmur", "systolic", "diastolic"), "murmur_timing"),
    # 5. diagnoses and symptoms
    ("copd", _sub("copd", "Diagnosis: COPD.", "COPD was ruled out."), "diagnosis"),
    ("copd", _sub("copd", "Diagnosis: COPD.", "No COPD."), "diagnosis"),
    ("copd", COPD_TEXT + " Suggestive of croup.", "croup"),
    ("copd", COPD_TEXT + " Bronchospasm is likely.", "bronchospasm"),
    ("copd", COPD_TEXT + " Known hypertension.", "hypertension"),
    ("copd", COPD_TEXT + " Reactive airway disease.", "reactive airway"),
    ("copd", COPD_TEXT + " Tuberculosis is possible.", "tuberculosis"),
    ("sympt", _sub("sympt", "Reported symptoms: cough and fever", "The patient denies cough and fever"), "fever"),
    ("cough", _sub("cough", "No symptoms reported", "Symptoms include fever"), "symptom"),
    ("sympt", SYMPT_TEXT + " Also a sore throat.", "sore throat"),
    # 6. facts outside the closed lists
    ("copd", _sub("copd", "Lung auscultation.", "Lung auscultation in a man."), "sex"),
    ("copd", COPD_TEXT + " She is unwell.", "sex"),
    ("copd", _sub("copd", "Lung auscultation.", "Lung auscultation in an elderly patient."), "age"),
    ("copd", _sub("copd", "Lung auscultation.", "Lung auscultation in a 64-year-old."), "age_years"),
    ("copd", COPD_TEXT + " The patient smokes.", "smoker"),
    ("copd", _sub("copd", "Lung auscultation.", "Lung auscultation at the right base."), "site"),
    ("heart", HEART_TEXT + " An S3 gallop is heard.", "gallop"),
    ("lung", LUNG_TEXT + " A pleural friction rub is heard.", "pleural_rub"),
    ("lung", LUNG_TEXT + " Crepitus is heard.", "crackle"),
    ("lung", LUNG_TEXT + " Popping sounds are heard.", "crackle"),
    ("lung", LUNG_TEXT + " Diminished breath sounds on the left.", "diminished_breath_sounds"),
    ("lung", LUNG_TEXT + " Tachypnoea is noted.", "tachypnoea"),
    ("lung", LUNG_TEXT + " She has a fever.", "fever"),
    ("lung", LUNG_TEXT + " The recording quality is poor.", "signal_quality"),
    ("lung", LUNG_TEXT + " Otherwise normal lung sounds.", "adventitious"),
]


@pytest.mark.parametrize("case,text,reason", REJECT, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(REJECT)])
def test_guard_rejects(case, text, reason):
    v = check(CASES[case][0], text)
    assert not v.ok and any(reason in r for r in v.reasons), (text, v.reasons)


ACCEPT = [
    ("lung", "An 8.1-year-old girl was auscultated at the left posterior chest: wheezing was present, "
             "without crackles, rhonchi or stridor."),
    ("lung", "Lung auscultation at the left posterior chest in an 8.1-year-old female patient revealed wheezes "
             "but no crackles, rhonchi or stridor."),
    ("normal", "Lung auscultation in an 8.1-year-old girl: the lungs sound normal."),
    ("normal", "Lung auscultation in an 8.1-year-old girl: no wheezes, crackles, rhonchi or stridor were heard."),
    ("copd", "Lung auscultation: no wheezes, crackles are heard. Diagnosis: COPD."),
    ("copd", "On lung auscultation crackles were heard, whereas wheezes were not. Diagnosis: COPD."),
    ("copd", "Crackles without wheezing on lung auscultation in a patient with COPD."),
    ("copd", "Lung auscultation: crackles, no wheezes. Diagnosis: chronic obstructive pulmonary disease."),
    ("copd", "On lung auscultation only crackles, no wheezes, were heard in this COPD patient."),
    ("heart", "A 70-year-old man was auscultated: no murmur, normal heart sounds and a regular rhythm at a heart "
              "rate of 82 bpm. He is clinically healthy."),
    ("murmur", "Cardiac auscultation reveals a systolic murmur, harsh, low-pitched and plateau in shape."),
    ("cough", "Recording of a dry cough; no symptoms were reported and the COVID-19 status is positive."),
    ("sympt", "Cough recording; the person reports cough and fever."),
]


@pytest.mark.parametrize("case,text", ACCEPT, ids=[f"{c}-{i}" for i, (c, _) in enumerate(ACCEPT)])
def test_guard_accepts_faithful_paraphrases(case, text):
    v = check(CASES[case][0], text)
    assert v.ok, (text, v.reasons)


def test_urti_expansion_is_the_same_diagnosis():
    facts = [Fact("modality", "lung"), Fact("crackle", True), Fact("diagnosis", "URTI")]
    assert check(facts, "Lung auscultation: crackles are heard. Upper respiratory tract infection.").ok
    assert not check(facts, "Lung auscultation: crackles are heard. Lower respiratory tract infection.").ok
