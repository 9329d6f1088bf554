"""ICBHI 2017: tiny copies of the official and the Kaggle layouts and the exact records they give."""

from __future__ import annotations

from pathlib import Path

import pytest

from acula_edge.datasets import get_loader, load
from conftest import by_id, tone, write


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
