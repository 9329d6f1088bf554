"""SPRSound: a tiny copy of the publisher's layout, and the real recordings beside the checkout."""

from __future__ import annotations

import json

import pytest

from acula_edge.data.summary import summarize
from acula_edge.datasets import load
from conftest import shared, write_tone


@pytest.fixture()
def sprsound_dir(tmp_path):
    """A tiny SPRSound copy: test_wav/ and test_json/inter_test_json/, named patient_age_sex_loc_no."""
    root = tmp_path / "sprsound"
    (root / "test_wav").mkdir(parents=True)
    (root / "test_json" / "inter_test_json").mkdir(parents=True)
    items = {
        "65121853_1.5_0_p3_4109": {"record_annotation": "CAS", "event_annotation": [
            {"start": "1212", "end": "1938", "type": "Wheeze"}, {"start": "2498", "end": "3377", "type": "Wheeze"}]},
        "65121853_1.5_0_p1_4226": {"record_annotation": "Normal", "event_annotation": [
            {"start": "0", "end": "900", "type": "Normal"}]},
        "41249093_4.2_1_p2_3854": {"record_annotation": "CAS & DAS", "event_annotation": [
            {"start": "100", "end": "700", "type": "Fine Crackle"}, {"start": "800", "end": "1500", "type": "Rhonchi"}]},
        "41249093_4.2_1_p4_3855": {"record_annotation": "Poor Quality", "event_annotation": []},
    }
    for stem, ann in items.items():
        write_tone(root / "test_wav" / f"{stem}.wav", rate=8000, seconds=0.5)
        (root / "test_json" / "inter_test_json" / f"{stem}.json").write_text(json.dumps(ann))
    return root


def test_sprsound_fixture_records(sprsound_dir):
    recs = {r.id: r for r in load("sprsound", sprsound_dir)}
    assert len(recs) == 4
    r = recs["sprsound/65121853_1.5_0_p3_4109"]
    assert r.subject == "sprsound/65121853" and r.modality == "lung" and r.split == "test_inter"
    assert r.metadata == {"sex": "male", "age_years": 1.5, "location": "right posterior", "country": "China"}
    assert r.labels == {"record": "CAS", "adventitious": 1, "cas": 1, "das": 0, "wheeze": 1, "crackle": 0}
    assert r.events[0] == {"start": 1.212, "end": 1.938, "type": "Wheeze"}
    assert (r.sample_rate, r.duration) == (8000, 0.5)
    both = recs["sprsound/41249093_4.2_1_p2_3854"]
    assert both.metadata["sex"] == "female"
    assert both.labels == {"record": "CAS & DAS", "adventitious": 1, "cas": 1, "das": 1, "wheeze": 0, "crackle": 1}
    assert recs["sprsound/41249093_4.2_1_p4_3855"].labels == {"record": "Poor Quality"}


# ---- the real recordings beside the checkout ----

def test_real_sprsound_summary():
    s = summarize(load("sprsound", shared("sprsound")))
    assert (s["recordings"], s["subjects"]) == (984, 130)  # the inter-patient test split and 89 training children
    assert s["labels"]["record"] == {"Normal": 745, "CAS": 92, "DAS": 66, "CAS & DAS": 29, "Poor Quality": 52}
    assert s["splits"] == {"train": 629, "test_inter": 355}
    assert s["sample_rates"] == {"8000": 984}
    assert 11000 < s["total_duration_s"] < 11700
