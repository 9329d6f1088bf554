"""KAUH: a tiny copy of the Mendeley download (facts in the file names) and its exact records."""

from __future__ import annotations

from pathlib import Path

import pytest

from acula_edge.datasets import get_loader, load
from conftest import by_id, tone, write


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
