"""Loaders for the publishers' layouts of ICBHI, CirCor, Coswara, COUGHVID, KAUH and PhysioNet 2016.

Each fixture builds a tiny copy of the real layout (real file and column names, NA cells, and
one awkward case each) and the tests assert the exact records the loader returns. The helpers the
loaders share (CSV reading, flags, metadata-file search, option checking) are tested at the end.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acula_edge.data.loaders import (adventitious_type, find_metadata_file, get_loader, list_formats, load,
                                     parse_flag, read_csv_rows)
from acula_edge.errors import DatasetError

PUBLIC = ["icbhi", "circor", "coswara", "coughvid", "kauh", "physionet2016"]


def tone(path: Path, rate: int, seconds: float = 0.5, fmt: str | None = None, subtype: str | None = None) -> Path:
    """Write a short sine (creating folders) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate, format=fmt, subtype=subtype)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[dict], encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})
    return path


def by_id(records) -> dict:
    return {r.id: r for r in records}


# ----------------------------------------------------------------------------------- ICBHI


@pytest.fixture
def icbhi_root(tmp_path) -> Path:
    """ICBHI_final_database/ with the split file one folder up, like the official download."""
    db = tmp_path / "ICBHI_final_database"
    tone(db / "101_1b1_Al_sc_Meditron.wav", 44100)
    write(db / "101_1b1_Al_sc_Meditron.txt", "0.036\t0.579\t0\t0\n0.579\t2.45\t1\t0\n")
    tone(db / "101_1b1_Pr_sc_Meditron.wav", 44100)  # no annotation file
    tone(db / "104_1b1_Ll_sc_Litt3200.WAV", 4000)  # upper-case extensions exist in copies
    write(db / "104_1b1_Ll_sc_Litt3200.TXT", "0.2 1.9 1 1\n1.9 3.3 0 1\n")
    tone(db / "200_2p2_Tc_mc_AKGC417L.wav", 44100)
    write(db / "200_2p2_Tc_mc_AKGC417L.txt", "0.5\t1.5\t0\t0\n")
    write(db / "ICBHI_Challenge_diagnosis.txt", "101\tURTI\n104\tCOPD\n200\tHealthy\n")
    write(db / "ICBHI_Challenge_demographic_information.txt",
          "101\t3\tF\tNA\t19\t99\n104\t70\tF\t33\tNA\tNA\n200\tNA\tNA\tNA\tNA\tNA\n")
    write(tmp_path / "ICBHI_challenge_train_test.txt",
          "101_1b1_Al_sc_Meditron\ttrain\n101_1b1_Pr_sc_Meditron\ttrain\n104_1b1_Ll_sc_Litt3200\ttest\n")
    return db


def test_icbhi_records(icbhi_root):
    recs = by_id(get_loader("icbhi")(icbhi_root))
    assert sorted(recs) == ["icbhi/101_1b1_Al_sc_Meditron", "icbhi/101_1b1_Pr_sc_Meditron",
                            "icbhi/104_1b1_Ll_sc_Litt3200", "icbhi/200_2p2_Tc_mc_AKGC417L"]
    a = recs["icbhi/101_1b1_Al_sc_Meditron"]
    assert (a.dataset, a.subject, a.modality) == ("icbhi", "icbhi/101", "lung")
    assert (a.split, a.site) == ("train", "anterior left")
    assert a.device == "WelchAllyn Meditron Master Elite Electronic Stethoscope"
    assert a.path == str((icbhi_root / "101_1b1_Al_sc_Meditron.wav").resolve())
    assert a.metadata == {"age_years": 3, "sex": "female", "weight_kg": 19, "height_cm": 99,
                          "location": "anterior left", "acquisition_mode": "single channel (sequential)",
                          "device": a.device, "recording_index": "1b1", "diagnosis": "URTI"}
    assert a.labels == {"diagnosis": "URTI", "crackle": 1, "wheeze": 0,
                        "adventitious": 1, "adventitious_type": "Crackle"}
    assert a.events == [
        {"start": 0.036, "end": 0.579, "type": "normal", "crackle": 0, "wheeze": 0},
        {"start": 0.579, "end": 2.45, "type": "crackle", "crackle": 1, "wheeze": 0},
    ]
    unannotated = recs["icbhi/101_1b1_Pr_sc_Meditron"]
    assert unannotated.labels == {"diagnosis": "URTI"} and unannotated.events == []
    assert unannotated.subject == a.subject

    b = recs["icbhi/104_1b1_Ll_sc_Litt3200"]
    assert (b.split, b.device, b.site) == ("test", "3M Littmann Electronic Stethoscope Model 3200", "lateral left")
    assert b.metadata["bmi"] == 33 and "weight_kg" not in b.metadata and b.metadata["age_years"] == 70
    assert b.labels == {"diagnosis": "COPD", "crackle": 1, "wheeze": 1,
                        "adventitious": 1, "adventitious_type": "Both"}
    assert [e["type"] for e in b.events] == ["both", "wheeze"]

    c = recs["icbhi/200_2p2_Tc_mc_AKGC417L"]
    assert c.split is None  # not listed in the split file
    assert c.metadata == {"location": "trachea", "acquisition_mode": "multichannel (simultaneous)",
                          "device": "AKG C417L Microphone", "recording_index": "2p2", "diagnosis": "Healthy"}
    assert c.labels == {"diagnosis": "Healthy", "crackle": 0, "wheeze": 0,
                        "adventitious": 0, "adventitious_type": "Normal"}


def test_icbhi_load_probes_audio(icbhi_root):
    recs = by_id(load("icbhi", icbhi_root))
    assert recs["icbhi/104_1b1_Ll_sc_Litt3200"].sample_rate == 4000
    assert recs["icbhi/101_1b1_Al_sc_Meditron"].sample_rate == 44100
    assert all(r.duration == pytest.approx(0.5) for r in recs.values())


def test_icbhi_kaggle_layout(tmp_path):
    """Kaggle copy: audio_and_txt_files/ nested one level below patient_diagnosis.csv and demographic_info.txt."""
    top = tmp_path / "Respiratory_Sound_Database"
    tone(top / "audio_and_txt_files" / "101_1b1_Al_sc_Meditron.wav", 4000)
    write(top / "audio_and_txt_files" / "101_1b1_Al_sc_Meditron.txt", "0.1 0.4 0 1\n")
    write(top / "patient_diagnosis.csv", "101,URTI\n")
    write(top / "demographic_info.txt", "101 3 F NA 19 99\n")
    write(top / "filename_format.txt", "Each audio file name is divided into 5 elements\n")
    (r,) = get_loader("icbhi")(tmp_path)
    assert r.labels == {"diagnosis": "URTI", "crackle": 0, "wheeze": 1,
                        "adventitious": 1, "adventitious_type": "Wheeze"}
    assert r.metadata["sex"] == "female" and r.split is None


# ----------------------------------------------------------------------------------- CirCor

CIRCOR_COLUMNS = [
    "Patient ID", "Recording locations:", "Age", "Sex", "Height", "Weight", "Pregnancy status", "Murmur",
    "Murmur locations", "Most audible location", "Systolic murmur timing", "Systolic murmur shape",
    "Systolic murmur grading", "Systolic murmur pitch", "Systolic murmur quality", "Diastolic murmur timing",
    "Diastolic murmur shape", "Diastolic murmur grading", "Diastolic murmur pitch", "Diastolic murmur quality",
    "Outcome", "Campaign", "Additional ID",
]
NAN_MURMUR = {c: "nan" for c in CIRCOR_COLUMNS[8:20]}
CIRCOR_PATIENTS = [
    ({"Patient ID": "2530", "Recording locations:": "AV+PV", "Age": "Child", "Sex": "Female", "Height": "98.0",
      "Weight": "15.9", "Pregnancy status": "False", "Murmur": "Absent", **NAN_MURMUR, "Outcome": "Normal",
      "Campaign": "CC2015", "Additional ID": "nan"}, ["AV", "PV"]),
    ({"Patient ID": "9979", "Recording locations:": "TV+MV+MV", "Age": "Infant", "Sex": "Male", "Height": "70.0",
      "Weight": "8.2", "Pregnancy status": "False", "Murmur": "Present", **NAN_MURMUR, "Murmur locations": "TV",
      "Most audible location": "TV", "Systolic murmur timing": "Holosystolic", "Systolic murmur shape": "Plateau",
      "Systolic murmur grading": "II/VI", "Systolic murmur pitch": "Medium", "Systolic murmur quality": "Harsh",
      "Outcome": "Abnormal", "Campaign": "CC2014", "Additional ID": "50001"}, ["TV", "MV_1", "MV_2"]),
    ({"Patient ID": "50001", "Recording locations:": "AV", "Age": "Child", "Sex": "Male", "Height": "nan",
      "Weight": "nan", "Pregnancy status": "False", "Murmur": "Absent", **NAN_MURMUR, "Outcome": "Abnormal",
      "Campaign": "CC2015", "Additional ID": "9979"}, ["AV"]),
    ({"Patient ID": "68000", "Recording locations:": "Phc", "Age": "nan", "Sex": "Female", "Height": "160.0",
      "Weight": "60.0", "Pregnancy status": "True", "Murmur": "Unknown", **NAN_MURMUR, "Outcome": "Normal",
      "Campaign": "CC2015", "Additional ID": "nan"}, ["Phc"]),
]


@pytest.fixture
def circor_root(tmp_path) -> Path:
    """the-circor-digiscope-phonocardiogram-dataset-1.0.3/ with training_data.csv and training_data/."""
    root = tmp_path / "the-circor-digiscope-phonocardiogram-dataset-1.0.3"
    data = root / "training_data"
    for row, recs in CIRCOR_PATIENTS:
        pid = row["Patient ID"]
        lines = [f"{pid} {len(recs)} 4000"]
        for rec in recs:
            stem = f"{pid}_{rec}"
            lines.append(f"{rec.split('_')[0]} {stem}.hea {stem}.wav {stem}.tsv")
            tone(data / f"{stem}.wav", 4000)
            write(data / f"{stem}.hea", f"{stem} 1 4000 2000\n{stem}.wav 16+44 1 16 0 0 0 0 PCG\n")
            write(data / f"{stem}.tsv", "0.000000\t0.100000\t0\n0.100000\t0.180000\t1\n0.180000\t0.300000\t2\n"
                                        "0.300000\t0.380000\t3\n0.380000\t0.500000\t4\n")
        lines += [f"#{c}: {row[c]}" for c in CIRCOR_COLUMNS[2:]]
        write(data / f"{pid}.txt", "\n".join(lines) + "\n")
    write_csv(root / "training_data.csv", CIRCOR_COLUMNS, [row for row, _ in CIRCOR_PATIENTS])
    return root


def test_circor_records(circor_root):
    recs = by_id(get_loader("circor")(circor_root))
    assert sorted(recs) == ["circor/2530_AV", "circor/2530_PV", "circor/50001_AV", "circor/68000_Phc",
                            "circor/9979_MV_1", "circor/9979_MV_2", "circor/9979_TV"]
    a = recs["circor/2530_AV"]
    assert (a.dataset, a.subject, a.modality) == ("circor", "circor/2530", "heart")
    assert (a.site, a.split, a.device) == ("aortic valve", None, None)
    assert a.metadata == {"age_group": "Child", "sex": "female", "height_cm": 98.0, "weight_kg": 15.9,
                          "pregnant": False, "campaign": "CC2015", "location": "aortic valve", "country": "Brazil"}
    assert a.labels == {"murmur": "Absent", "murmur_at_location": "Absent", "outcome": "Normal"}
    assert a.events == [{"start": 0.1, "end": 0.18, "type": "S1"}, {"start": 0.18, "end": 0.3, "type": "systole"},
                        {"start": 0.3, "end": 0.38, "type": "S2"}, {"start": 0.38, "end": 0.5, "type": "diastole"}]

    tv = recs["circor/9979_TV"]
    assert tv.labels == {"murmur": "Present", "murmur_at_location": "Present", "outcome": "Abnormal"}
    assert tv.metadata["systolic_murmur_timing"] == "Holosystolic"
    assert tv.metadata["systolic_murmur_grading"] == "II/VI"
    assert tv.metadata["murmur_locations"] == "TV" and tv.metadata["most_audible_location"] == "TV"
    assert "diastolic_murmur_timing" not in tv.metadata
    # A present murmur not heard at this location: Absent here.
    assert recs["circor/9979_MV_2"].labels["murmur_at_location"] == "Absent"
    assert recs["circor/9979_MV_1"].site == "mitral valve"
    # Additional ID links two ids of one child: both grouped under the smaller id.
    assert {recs[i].subject for i in ("circor/9979_TV", "circor/9979_MV_1", "circor/50001_AV")} == {"circor/9979"}
    assert "height_cm" not in recs["circor/50001_AV"].metadata

    phc = recs["circor/68000_Phc"]
    assert phc.labels == {"murmur": "Unknown", "murmur_at_location": "Unknown", "outcome": "Normal"}
    assert phc.metadata["pregnant"] is True and "age_group" not in phc.metadata
    assert phc.site == "other"


def test_circor_without_csv_reads_patient_txt(circor_root):
    from_csv = [r.to_dict() for r in get_loader("circor")(circor_root)]
    (circor_root / "training_data.csv").unlink()
    from_txt = [r.to_dict() for r in get_loader("circor")(circor_root / "training_data")]
    assert from_txt == from_csv


def test_circor_load_probes_audio(circor_root):
    recs = load("circor", circor_root)
    assert {(r.sample_rate, round(r.duration, 3)) for r in recs} == {(4000, 0.5)}


# ---------------------------------------------------------------------------------- Coswara

COSWARA_COLUMNS = [
    "id", "a", "covid_status", "record_date", "ep", "g", "l_c", "l_l", "l_s", "rU", "asthma", "cough", "smoker",
    "test_status", "ht", "cold", "diabetes", "diarrhoea", "um", "ihd", "bd", "st", "fever", "ftg", "mp",
    "loss_of_smell", "cld", "pneumonia", "ctScan", "testType", "test_date", "vacc", "ctDate", "ctScore",
    "others_resp", "others_preexist",
]


@pytest.fixture
def coswara_root(tmp_path) -> Path:
    """Coswara-Data/ with combined_data.csv and Extracted_data/<date>/<uid>/<sound>.wav."""
    root = tmp_path / "Coswara-Data"
    ext = root / "Extracted_data"
    for sound in ("breathing-deep", "cough-heavy", "counting-normal", "vowel-a"):
        tone(ext / "20200413" / "uidHealthy01" / f"{sound}.wav", 48000)
    tone(ext / "20210507" / "uidPositive02" / "breathing-shallow.wav", 48000)
    tone(ext / "20210507" / "uidPositive02" / "vowel-e.wav", 48000)
    write(ext / "20210507" / "uidPositive02" / "cough-shallow.wav", "")  # zero-byte file
    write(ext / "20210507" / "uidPositive02" / "cough-heavy.wav", "RIFF garbage")  # corrupt file
    tone(ext / "20210507" / "uidPending03" / "cough-heavy.wav", 48000)
    tone(ext / "20220224" / "uidJsonOnly04" / "counting-fast.wav", 48000)
    write(ext / "20220224" / "uidJsonOnly04" / "metadata.json",
          json.dumps({"a": "45", "covid_status": "recovered_full", "g": "female", "l_c": "India", "fever": "True"}))
    write_csv(root / "combined_data.csv", COSWARA_COLUMNS, [
        {"id": "uidHealthy01", "a": "28", "covid_status": "healthy", "record_date": "2020-04-13", "ep": "y",
         "g": "male", "l_c": "India", "l_l": "Bangalore", "l_s": "Karnataka", "rU": "n", "smoker": "True",
         "asthma": "True", "test_status": "na", "vacc": "n"},
        {"id": "uidPositive02", "a": "61", "covid_status": "positive_moderate", "record_date": "2021-05-07",
         "g": "female", "l_c": "India", "l_s": "Kerala", "cough": "True", "fever": "True", "ftg": "True",
         "diabetes": "True", "ht": "True", "test_status": "p", "testType": "RT-PCR", "vacc": "p"},
        {"id": "uidPending03", "a": "", "covid_status": "under_validation", "g": "other", "l_c": "India"},
    ])
    return root


def test_coswara_records(coswara_root, caplog):
    with caplog.at_level(logging.WARNING, logger="acula_edge.data.loaders.coswara"):
        recs = by_id(get_loader("coswara")(coswara_root))
    assert sorted(recs) == [
        "coswara/uidHealthy01/breathing-deep", "coswara/uidHealthy01/cough-heavy",
        "coswara/uidHealthy01/counting-normal", "coswara/uidHealthy01/vowel-a",
        "coswara/uidJsonOnly04/counting-fast", "coswara/uidPending03/cough-heavy",
        "coswara/uidPositive02/breathing-shallow", "coswara/uidPositive02/vowel-e",
    ]
    assert "skipped 2 empty or unreadable file(s)" in caplog.text
    assert {r.modality for k, r in recs.items() if "uidHealthy01" in k} == {"breath", "cough", "speech"}
    h = recs["coswara/uidHealthy01/cough-heavy"]
    assert (h.dataset, h.subject, h.modality) == ("coswara", "coswara/uidHealthy01", "cough")
    assert (h.split, h.device, h.site) == (None, None, None)
    assert (h.sample_rate, h.duration) == (48000, 0.5)
    assert h.metadata == {"age_years": 28, "sex": "male", "country": "India", "state": "Karnataka", "smoker": True,
                          "conditions": ["asthma"], "vaccination": "not vaccinated", "record_date": "2020-04-13",
                          "sound": "cough-heavy"}
    assert h.labels == {"covid_status": "healthy", "covid": "negative"}
    p = recs["coswara/uidPositive02/vowel-e"]
    assert p.modality == "speech"
    assert p.metadata == {"age_years": 61, "sex": "female", "country": "India", "state": "Kerala",
                          "symptoms": ["cough", "fever", "fatigue"], "conditions": ["hypertension", "diabetes"],
                          "covid_test": "positive", "covid_test_type": "RT-PCR", "vaccination": "one dose",
                          "record_date": "2021-05-07", "sound": "vowel-e"}
    assert p.labels == {"covid_status": "positive_moderate", "covid": "positive"}
    pending = recs["coswara/uidPending03/cough-heavy"]
    assert pending.labels == {"covid_status": "under_validation"}  # no covid label while under validation
    assert pending.metadata == {"sex": "other", "country": "India", "record_date": "2021-05-07", "sound": "cough-heavy"}
    j = recs["coswara/uidJsonOnly04/counting-fast"]  # not in the CSV: its metadata.json, date from the folder
    assert j.metadata == {"age_years": 45, "sex": "female", "country": "India", "symptoms": ["fever"],
                          "record_date": "2022-02-24", "sound": "counting-fast"}
    assert j.labels == {"covid_status": "recovered_full", "covid": "negative"}


def test_coswara_dates_under_root_and_sounds_option(coswara_root):
    loader = get_loader("coswara")
    full = [r.to_dict() for r in loader(coswara_root)]
    assert [r.to_dict() for r in loader(coswara_root / "Extracted_data")] == full
    coughs = loader(coswara_root, sounds=["cough-heavy", "cough-shallow"])
    assert sorted(r.id for r in coughs) == ["coswara/uidHealthy01/cough-heavy", "coswara/uidPending03/cough-heavy"]
    with pytest.raises(DatasetError, match="unknown sound"):
        loader(coswara_root, sounds=["sneeze"])


def test_coswara_load_keeps_header_values(coswara_root):
    recs = load("coswara", coswara_root)
    assert len(recs) == 8 and {(r.sample_rate, r.duration) for r in recs} == {(48000, 0.5)}


def test_coswara_everything_unreadable_is_a_clear_error(coswara_root):
    for wav in (coswara_root / "Extracted_data").rglob("*.wav"):
        wav.write_bytes(b"")
    with pytest.raises(DatasetError, match=r"no readable Coswara recordings.*all 10 such file\(s\) are empty"):
        get_loader("coswara")(coswara_root)


def test_coswara_cp1252_metadata(coswara_root, caplog):
    """A combined_data.csv saved by a Windows spreadsheet (cp1252, not UTF-8) still loads, with a warning."""
    csv_path = coswara_root / "combined_data.csv"
    _, rows = read_csv_rows(csv_path)
    rows[0]["l_s"], rows[0]["l_l"] = "Île-de-France", "Orléans"
    rows[0]["l_c"] = "France"
    write_csv(csv_path, COSWARA_COLUMNS, rows, encoding="cp1252")
    assert "é".encode("cp1252") in csv_path.read_bytes()
    with caplog.at_level(logging.WARNING, logger="acula_edge.data.loaders"):
        recs = by_id(get_loader("coswara")(coswara_root))
    h = recs["coswara/uidHealthy01/cough-heavy"]
    assert (h.metadata["country"], h.metadata["state"]) == ("France", "Île-de-France")
    assert "not UTF-8" in caplog.text and "combined_data.csv" in caplog.text


# --------------------------------------------------------------------------------- COUGHVID

EXPERT = ["quality", "cough_type", "dyspnea", "wheezing", "stridor", "choking", "congestion", "nothing",
          "diagnosis", "severity"]
COUGHVID_COLUMNS = (["", "uuid", "datetime", "cough_detected", "SNR", "latitude", "longitude", "age", "gender",
                     "respiratory_condition", "fever_muscle_pain", "status", "status_SSL"]
                    + [f"{f}_{e}" for e in (1, 2, 3, 4) for f in EXPERT])
U_OGG = "00039425-7f3a-42aa-ac13-834aaa2b6b92"
U_WEBM = "0007c6f1-5441-40e6-9aaf-a761d8f2da3b"
U_WAV = "00291cce-36a0-4a29-9e2d-c1d96ca17242"
U_LOW = "003117c6-7c2f-4a42-8f1e-5a6e6fb1d2c3"
U_GONE = "0034f3a6-8a8d-4c1b-9e8c-1a2b3c4d5e6f"


@pytest.fixture
def coughvid_root(tmp_path) -> Path:
    """public_dataset/ with metadata_compiled.csv (pandas index column first), .ogg/.webm/.json per uuid."""
    root = tmp_path / "public_dataset"
    tone(root / f"{U_OGG}.ogg", 48000, fmt="OGG", subtype="VORBIS")
    write(root / f"{U_WEBM}.webm", "\x1a\x45\xdf\xa3 webm bytes")  # only WebM: skipped, with a warning
    write(root / f"{U_WAV}.webm", "\x1a\x45\xdf\xa3 webm bytes")
    tone(root / f"{U_WAV}.wav", 48000)  # converted beside the original: the .wav is used
    tone(root / f"{U_LOW}.ogg", 48000, fmt="OGG", subtype="VORBIS")
    rows = [
        {"uuid": U_OGG, "datetime": "2020-04-13T21:30:59.801831+00:00", "cough_detected": "0.9609", "SNR": "18.1",
         "latitude": "31.3", "longitude": "34.8", "age": "15", "gender": "male", "respiratory_condition": "False",
         "fever_muscle_pain": "False", "status": "healthy", "status_SSL": "healthy",
         "quality_2": "good", "cough_type_2": "dry", "dyspnea_2": "False", "wheezing_2": "True",
         "stridor_2": "False", "choking_2": "False", "congestion_2": "True", "nothing_2": "False",
         "diagnosis_2": "healthy_cough", "severity_2": "mild"},
        {"uuid": U_WEBM, "cough_detected": "0.99", "age": "40", "gender": "female", "status": "COVID-19"},
        {"uuid": U_WAV, "datetime": "2020-05-01T10:00:00+00:00", "cough_detected": "0.85", "age": "", "gender": "",
         "respiratory_condition": "True", "status": "symptomatic",
         "quality_1": "ok", "cough_type_1": "unknown", "nothing_1": "True", "diagnosis_1": "upper_infection",
         "severity_1": "mild", "quality_3": "poor", "cough_type_3": "wet", "diagnosis_3": "lower_infection"},
        {"uuid": U_LOW, "cough_detected": "0.0132", "age": "33", "gender": "other"},
        {"uuid": U_GONE, "cough_detected": "0.9", "status": "healthy"},
    ]
    for i, r in enumerate(rows):
        r[""] = str(i)
    write_csv(root / "metadata_compiled.csv", COUGHVID_COLUMNS, rows)
    return root


def test_coughvid_records(coughvid_root, caplog):
    with caplog.at_level(logging.WARNING, logger="acula_edge.data.loaders.coughvid"):
        recs = by_id(get_loader("coughvid")(coughvid_root))
    assert sorted(recs) == [f"coughvid/{u}" for u in sorted([U_OGG, U_WAV, U_LOW])]
    assert "skipped 1 recording(s) held only as WebM" in caplog.text and "ffmpeg" in caplog.text
    assert "1 uuid(s) in metadata_compiled.csv have no audio file" in caplog.text
    o = recs[f"coughvid/{U_OGG}"]
    assert (o.dataset, o.subject, o.modality, o.split) == ("coughvid", f"coughvid/{U_OGG}", "cough", None)
    assert o.path == str((coughvid_root / f"{U_OGG}.ogg").resolve())
    assert o.metadata == {"age_years": 15, "sex": "male", "respiratory_condition": False, "fever_muscle_pain": False,
                          "cough_detected": 0.9609, "snr": 18.1, "latitude": 31.3, "longitude": 34.8,
                          "recorded_at": "2020-04-13T21:30:59.801831+00:00",
                          "audible_findings": ["wheezing", "nasal congestion"]}
    assert o.labels == {"status": "healthy", "status_ssl": "healthy", "cough_type": "dry", "quality": "good",
                        "diagnosis": "healthy_cough", "severity": "mild"}
    w = recs[f"coughvid/{U_WAV}"]
    assert w.path.endswith(".wav")
    assert w.metadata == {"respiratory_condition": True, "cough_detected": 0.85,
                          "recorded_at": "2020-05-01T10:00:00+00:00"}
    # First expert's labels, except an uninformative 'unknown' cough type when a later expert gave one.
    assert w.labels == {"status": "symptomatic", "cough_type": "wet", "quality": "ok",
                        "diagnosis": "upper_infection", "severity": "mild"}
    assert recs[f"coughvid/{U_LOW}"].labels == {}


def test_coughvid_min_cough_detected_and_probe(coughvid_root):
    recs = by_id(load("coughvid", coughvid_root, min_cough_detected=0.8))
    assert sorted(recs) == [f"coughvid/{u}" for u in sorted([U_OGG, U_WAV])]
    assert all(r.sample_rate == 48000 and r.duration == pytest.approx(0.5) for r in recs.values())


def test_coughvid_json_only(coughvid_root):
    (coughvid_root / "metadata_compiled.csv").unlink()
    write(coughvid_root / f"{U_OGG}.json", json.dumps({
        "datetime": "2020-04-13T21:30:59.801831+00:00", "cough_detected": "0.9609", "latitude": "31.3",
        "longitude": "34.8", "age": "15", "gender": "male", "respiratory_condition": "False",
        "fever_muscle_pain": "False", "status": "healthy",
        "expert_labels_2": {"quality": "good", "cough_type": "dry", "dyspnea": "False", "wheezing": "True",
                            "stridor": "False", "choking": "False", "congestion": "False", "nothing": "False",
                            "diagnosis": "healthy_cough", "severity": "mild"}}))
    recs = by_id(get_loader("coughvid")(coughvid_root, min_cough_detected=0.5))
    assert list(recs) == [f"coughvid/{U_OGG}"]
    assert recs[f"coughvid/{U_OGG}"].labels == {"status": "healthy", "cough_type": "dry", "quality": "good",
                                                "diagnosis": "healthy_cough", "severity": "mild"}
    assert recs[f"coughvid/{U_OGG}"].metadata["audible_findings"] == ["wheezing"]


def test_coughvid_cp1252_metadata(coughvid_root, caplog):
    csv_path = coughvid_root / "metadata_compiled.csv"
    _, rows = read_csv_rows(csv_path)
    rows[0]["diagnosis_2"] = "healthy_cough (vérifié)"  # é written as one cp1252 byte
    write_csv(csv_path, COUGHVID_COLUMNS, rows, encoding="cp1252")
    with caplog.at_level(logging.WARNING, logger="acula_edge.data.loaders"):
        recs = by_id(get_loader("coughvid")(coughvid_root))
    assert recs[f"coughvid/{U_OGG}"].labels["diagnosis"] == "healthy_cough (vérifié)"
    assert "metadata_compiled.csv is not UTF-8" in caplog.text


def test_coughvid_nothing_readable_is_a_clear_error(coughvid_root):
    for uuid in (U_OGG, U_WAV, U_LOW):
        for p in coughvid_root.glob(f"{uuid}.*"):
            if p.suffix != ".webm":
                p.unlink()
        (coughvid_root / f"{uuid}.webm").write_bytes(b"\x1a\x45\xdf\xa3 webm bytes")
    with pytest.raises(DatasetError, match=r"no readable COUGHVID recordings .*4 WebM-only file\(s\) need "
                                           r"converting with ffmpeg"):
        get_loader("coughvid")(coughvid_root)


def test_coughvid_threshold_removing_everything_is_a_clear_error(coughvid_root):
    with pytest.raises(DatasetError, match=r"4 recording\(s\) have cough_detected below min_cough_detected=0\.999"):
        get_loader("coughvid")(coughvid_root, min_cough_detected=0.999)


# ------------------------------------------------------------------------------------- KAUH

KAUH_FILES = [
    "BP1_Asthma,I E W,P L L,70,M.wav", "DP1_Asthma,I E W,P L L,70,M.wav", "EP1_Asthma,I E W,P L L,70,M.wav",
    "DP10_N,N,P R U,54,M.wav", "EP3_heart failure,Crep,P R L ,68,F.wav", "BP6_Plueral Effusion,I C B,P L R,81,M.wav",
    "DP20_Asthma and lung fibrosis,C,A R M,90,M.wav", "BP21_BRON,Crep,P R L ,20,M.WAV",
    "DP30_heart failure + COPD,E W,P L L R,60,F.wav",
]


@pytest.fixture
def kauh_root(tmp_path) -> Path:
    """The Mendeley download, unzipped: KAUH/Audio Files/*.wav beside Data annotation.xlsx."""
    root = tmp_path / "KAUH"
    for name in KAUH_FILES:
        tone(root / "Audio Files" / name, 4000)
    write(root / "Data annotation.xlsx", "not read")
    tone(root / "Stethoscope Files" / "BP1_Asthma,I E W,P L L,70,M.wav", 4000)  # raw exports: not counted twice
    return root


def test_kauh_records(kauh_root):
    recs = by_id(get_loader("kauh")(kauh_root))
    assert sorted(recs) == sorted(["kauh/BP1", "kauh/DP1", "kauh/EP1", "kauh/DP10", "kauh/EP3", "kauh/BP6",
                                   "kauh/DP20", "kauh/BP21", "kauh/DP30"])
    a = recs["kauh/BP1"]
    assert (a.dataset, a.subject, a.modality, a.split) == ("kauh", "kauh/1", "lung", None)
    assert a.device == "3M Littmann Electronic Stethoscope Model 3200" and a.site == "posterior left lower"
    assert a.path == str((kauh_root / "Audio Files" / "BP1_Asthma,I E W,P L L,70,M.wav").resolve())
    assert a.metadata == {"age_years": 70, "sex": "male", "diagnosis": "Asthma", "sound_type": "I E W",
                          "lung_sounds": "inspiratory and expiratory wheeze", "location_code": "P L L",
                          "location": "posterior left lower", "device": a.device, "filter_mode": "bell",
                          "country": "Jordan"}
    assert a.labels == {"diagnosis": "Asthma", "wheeze": 1, "crackle": 0,
                        "adventitious": 1, "adventitious_type": "Wheeze"}
    # One patient under three filter modes is one subject.
    assert {recs[i].subject for i in ("kauh/BP1", "kauh/DP1", "kauh/EP1")} == {"kauh/1"}
    assert [recs[i].metadata["filter_mode"] for i in ("kauh/BP1", "kauh/DP1", "kauh/EP1")] == \
        ["bell", "diaphragm", "extended"]
    n = recs["kauh/DP10"]
    assert n.labels == {"diagnosis": "Normal", "wheeze": 0, "crackle": 0,
                        "adventitious": 0, "adventitious_type": "Normal"}
    assert n.site == "posterior right upper"
    hf = recs["kauh/EP3"]
    assert hf.labels == {"diagnosis": "Heart Failure", "wheeze": 0, "crackle": 1,
                         "adventitious": 1, "adventitious_type": "Crackle"}
    assert hf.metadata["location_code"] == "P R L" and hf.metadata["sex"] == "female"
    pe = recs["kauh/BP6"]
    assert pe.labels["diagnosis"] == "Pleural Effusion" and pe.labels["crackle"] == 1
    assert pe.metadata["lung_sounds"] == "inspiratory crackles, bronchial breathing"
    assert pe.site == "posterior right lower"
    assert recs["kauh/DP20"].labels["diagnosis"] == "Asthma + Lung Fibrosis"
    assert recs["kauh/DP20"].site == "anterior right middle"
    assert recs["kauh/BP21"].labels["diagnosis"] == "Bronchitis"
    both = recs["kauh/DP30"]
    assert both.labels == {"diagnosis": "Heart Failure + COPD", "wheeze": 1, "crackle": 0,
                           "adventitious": 1, "adventitious_type": "Wheeze"}
    assert both.site == "posterior left and right lower"


def test_kauh_load_probes_audio(kauh_root):
    recs = load("kauh", kauh_root / "Audio Files")
    assert len(recs) == 9 and {(r.sample_rate, r.duration) for r in recs} == {(4000, 0.5)}


# --------------------------------------------------------------------------- PhysioNet 2016


@pytest.fixture
def physionet_root(tmp_path) -> Path:
    """The official download: training/training-a/ with REFERENCE.csv and REFERENCE-SQI.csv, and validation/."""
    root = tmp_path / "physionet-challenge-2016-1.0.0"
    a = root / "training" / "training-a"
    for name in ("a0001", "a0002", "a0003"):
        tone(a / f"{name}.wav", 2000)
    write(a / "a0001.hea", "a0001 1 2000 1000\na0001.wav 16+44 1 16 0 0 0 0 PCG\n")
    write(a / "REFERENCE.csv", "a0001,1\na0002,-1\na0003,1\n")
    # record,label,sqi: a0001 is abnormal but of poor quality; the label column must not leak in
    write(a / "REFERENCE-SQI.csv", "a0001,1,0\na0002,-1,1\na0003,1,1\n")
    v = root / "validation"  # re-lists a0001 of training-a
    tone(v / "a0001.wav", 2000)
    write(v / "REFERENCE.csv", "a0001,1\n")
    write(v / "REFERENCE-SQI.csv", "a0001,1,0\n")
    return root


def test_physionet2016_signal_quality_and_validation(physionet_root, caplog):
    with caplog.at_level(logging.INFO, logger="acula_edge.data.loaders.physionet2016"):
        recs = by_id(get_loader("physionet2016")(physionet_root))
    assert sorted(recs) == ["physionet2016/a0001", "physionet2016/a0002", "physionet2016/a0003"]  # no double count
    assert "validation" in caplog.text and "include_validation" in caplog.text
    a = recs["physionet2016/a0001"]
    assert a.labels == {"abnormal": "abnormal"}
    assert a.metadata == {"database": "training-a", "signal_quality": "poor"}
    assert (a.sample_rate, a.duration) == (2000, 0.5)
    assert a.path == str((physionet_root / "training" / "training-a" / "a0001.wav").resolve())
    assert recs["physionet2016/a0002"].metadata["signal_quality"] == "good"
    assert recs["physionet2016/a0003"].metadata["signal_quality"] == "good"

    more = by_id(load("physionet2016", physionet_root, include_validation=True))
    assert sorted(more) == sorted([*recs, "physionet2016/validation/a0001"])
    dup = more["physionet2016/validation/a0001"]
    assert dup.subject == a.subject  # the same recording: kept together by subject-grouped splits
    assert dup.metadata == {"database": "validation", "signal_quality": "poor"}
    # the validation folder itself, named as the root, is an ordinary set of records
    assert list(by_id(load("physionet2016", physionet_root / "validation"))) == ["physionet2016/a0001"]


def test_physionet2016_only_validation_and_bad_sqi(physionet_root):
    import shutil

    shutil.rmtree(physionet_root / "training")
    with pytest.raises(DatasetError, match="include_validation=True"):
        load("physionet2016", physionet_root)
    write(physionet_root / "validation" / "REFERENCE-SQI.csv", "a0001,1\n")  # no sqi column
    with pytest.raises(DatasetError, match="expected record,label,sqi with sqi 0 or 1"):
        load("physionet2016", physionet_root / "validation")
    write(physionet_root / "validation" / "REFERENCE-SQI.csv", "a0001,1,-1\n")  # a label where the sqi goes
    with pytest.raises(DatasetError, match="REFERENCE-SQI.csv: bad row"):
        load("physionet2016", physionet_root / "validation")


# ------------------------------------------------------------------------------ wrong folder


@pytest.mark.parametrize("name", PUBLIC)
def test_empty_folder_is_a_clear_error(tmp_path, name):
    with pytest.raises(DatasetError, match="is this the right folder"):
        load(name, tmp_path)


@pytest.mark.parametrize("name", ["icbhi", "circor", "coswara", "kauh"])
def test_unrelated_audio_is_a_clear_error(tmp_path, name):
    tone(tmp_path / "recording.wav", 8000)
    with pytest.raises(DatasetError, match="is this the right folder"):
        load(name, tmp_path)


def test_coughvid_without_metadata_is_a_clear_error(tmp_path):
    tone(tmp_path / "recording.wav", 8000)
    with pytest.raises(DatasetError, match="metadata_compiled.csv"):
        load("coughvid", tmp_path)


# --------------------------------------------------------------------------------- options


@pytest.mark.parametrize("name", list_formats())
def test_unknown_options_are_rejected(tmp_path, name):
    with pytest.raises(DatasetError, match=f"format {name} does not take option\\(s\\) bogus"):
        load(name, tmp_path, bogus=1)
    if name != "csv":  # only the generic CSV takes --labels
        with pytest.raises(DatasetError, match="does not take option\\(s\\) labels"):
            get_loader(name)(tmp_path, labels=["x"])


def test_a_filter_that_removes_everything_is_an_error(tmp_path):
    from acula_edge.data import synth

    synth.generate(tmp_path, 3, seed=0, cfg=synth.SynthConfig(modality_weights={"cough": 1.0}, duration=1.0))
    assert len(load("synthetic", tmp_path, modality="cough")) == 3
    with pytest.raises(DatasetError, match="no synthetic recordings of modality heart .*manifest has cough"):
        load("synthetic", tmp_path, modality="heart")


# --------------------------------------------------------------------------- shared helpers


def test_read_csv_rows(tmp_path, caplog):
    p = write(tmp_path / "m.csv", "\ufeffid,place\n1,Zürich\n\n2,\"a, b\"\n3\n")
    assert read_csv_rows(p) == (["id", "place"], [{"id": "1", "place": "Zürich"}, {"id": "2", "place": "a, b"},
                                                  {"id": "3", "place": None}])
    assert not caplog.records  # UTF-8 with a BOM: no warning
    p.write_bytes("id,place\r\n1,Orléans\r\n".encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="acula_edge.data.loaders"):
        assert read_csv_rows(p) == (["id", "place"], [{"id": "1", "place": "Orléans"}])
    assert "m.csv is not UTF-8" in caplog.text
    p.write_text("id,notes\n1,\"" + "x" * 200_000 + "\"\n")
    with pytest.raises(DatasetError, match=r"m\.csv: not a readable CSV file \(field larger than field limit"):
        read_csv_rows(p)
    with pytest.raises(DatasetError, match="cannot read the file"):
        read_csv_rows(tmp_path)  # a folder
    with pytest.raises(DatasetError, match="cannot read the file"):
        read_csv_rows(tmp_path / "absent.csv")


def test_parse_flag_and_adventitious_type():
    assert [parse_flag(v) for v in ("True", " yes", "Y", "1", 1, True)] == [True] * 6
    assert [parse_flag(v) for v in ("FALSE", "no", "n", "0", 0, False)] == [False] * 6
    assert [parse_flag(v) for v in (None, "", "nan", "NA", "maybe", 2)] == [None] * 6
    assert [adventitious_type(c, w) for c, w in ((0, 0), (1, 0), (0, 1), (1, 1))] == \
        ["Normal", "Crackle", "Wheeze", "Both"]
    with pytest.raises(ValueError):
        adventitious_type(2, 0)


def test_find_metadata_file(tmp_path):
    root = tmp_path / "data" / "audio"
    root.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    assert find_metadata_file(root, ("meta.csv",)) is None
    write(tmp_path / "elsewhere" / "META.CSV", "x")
    assert find_metadata_file(root, ("meta.csv",)) is None  # not near: only root, its parent and nearby
    assert find_metadata_file(root, ("meta.csv",), [tmp_path / "elsewhere"]) == tmp_path / "elsewhere" / "META.CSV"
    write(tmp_path / "data" / "Meta.csv", "x")  # the parent comes before nearby folders, any case
    assert find_metadata_file(root, ("meta.csv",), [tmp_path / "elsewhere"]) == tmp_path / "data" / "Meta.csv"
    write(root / "meta.csv", "x")
    assert find_metadata_file(root, ("meta.csv",)) == root / "meta.csv"
    write(tmp_path / "data" / "first.txt", "x")  # an earlier name wins over a nearer folder
    assert find_metadata_file(root, ("first.txt", "meta.csv")) == tmp_path / "data" / "first.txt"
