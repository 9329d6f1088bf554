"""COUGHVID: a tiny copy of public_dataset/ (WebM, OGG, converted WAV, JSON) and its exact records."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from acula_edge.datasets import get_loader, load
from acula_edge.datasets.common import read_csv_rows
from acula_edge.errors import DatasetError
from conftest import by_id, tone, write, write_csv


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
    with caplog.at_level(logging.WARNING, logger="acula_edge.datasets.coughvid"):
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
    with caplog.at_level(logging.WARNING, logger="acula_edge.datasets"):
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


def test_coughvid_without_metadata_is_a_clear_error(tmp_path):
    tone(tmp_path / "recording.wav", 8000)
    with pytest.raises(DatasetError, match="metadata_compiled.csv"):
        load("coughvid", tmp_path)
