"""CirCor DigiScope: a tiny copy of the PhysioNet layout (CSV and per-patient .txt) and its exact records."""

from __future__ import annotations

from pathlib import Path

import pytest

from acula_edge.datasets import get_loader, load
from conftest import by_id, tone, write, write_csv


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
