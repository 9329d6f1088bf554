"""PhysioNet 2016: tiny copies of one training set and of the official download, and the real records."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from acula_edge.data.summary import summarize
from acula_edge.datasets import get_loader, load
from acula_edge.errors import DatasetError
from conftest import by_id, shared, tone, write, write_tone


@pytest.fixture()
def physionet_dir(tmp_path):
    """A tiny PhysioNet 2016 copy: training-a/REFERENCE.csv, WAVs and one WFDB header."""
    folder = tmp_path / "physionet2016" / "training-a"
    folder.mkdir(parents=True)
    (folder / "REFERENCE.csv").write_text("a0001,1\na0002,-1\na0003,1\n")
    for i, sec in enumerate([1.0, 0.5, 0.75], 1):
        write_tone(folder / f"a000{i}.wav", rate=2000, seconds=sec)
    (folder / "a0001.hea").write_text("a0001 1 2000 2000\na0001.wav 16+44 1 16 0 0 0 0 PCG\n")
    return folder.parent


def test_physionet_fixture_records(physionet_dir):
    recs = load("physionet2016", physionet_dir)
    assert [r.labels["abnormal"] for r in recs] == ["abnormal", "normal", "abnormal"]
    assert [r.duration for r in recs] == [1.0, 0.5, 0.75]
    assert {r.sample_rate for r in recs} == {2000}
    assert len({r.subject for r in recs}) == 3 and recs[0].modality == "heart"


def test_physionet_missing_audio_is_a_clear_error(physionet_dir):
    (physionet_dir / "training-a" / "a0002.wav").unlink()
    with pytest.raises(DatasetError, match="a0002.wav is missing"):
        load("physionet2016", physionet_dir)


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
    with caplog.at_level(logging.INFO, logger="acula_edge.datasets.physionet2016"):
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


# ---- the real recordings beside the checkout ----

def test_real_physionet_summary():
    s = summarize(load("physionet2016", shared("physionet2016")))
    assert s["recordings"] == 899  # training-a (409) and training-b (490)
    assert s["labels"]["abnormal"] == {"abnormal": 396, "normal": 503}
    assert s["sample_rates"] == {"2000": 899}
