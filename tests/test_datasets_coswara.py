"""Coswara: a tiny copy of the extracted layout (with empty and corrupt files) and its exact records."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from acula_edge.datasets import get_loader, load
from acula_edge.datasets.common import read_csv_rows
from acula_edge.errors import DatasetError
from conftest import by_id, tone, write, write_csv


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
    with caplog.at_level(logging.WARNING, logger="acula_edge.datasets.coswara"):
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
    with caplog.at_level(logging.WARNING, logger="acula_edge.datasets"):
        recs = by_id(get_loader("coswara")(coswara_root))
    h = recs["coswara/uidHealthy01/cough-heavy"]
    assert (h.metadata["country"], h.metadata["state"]) == ("France", "Île-de-France")
    assert "not UTF-8" in caplog.text and "combined_data.csv" in caplog.text
