"""The generic CSV manifest as a dataset format."""

from __future__ import annotations

import pytest

from acula_edge.datasets import load
from acula_edge.errors import DatasetError
from conftest import write_tone


def test_generic_csv_manifest(tmp_path):
    (tmp_path / "audio").mkdir()
    write_tone(tmp_path / "audio" / "a.wav", rate=16000, seconds=0.5)
    write_tone(tmp_path / "audio" / "b.wav", rate=16000, seconds=0.25)
    (tmp_path / "mine.csv").write_text(
        "path,subject,modality,age,smoker,label_cough\n"
        "audio/a.wav,p1,cough,54,yes,wet\n"
        f"{(tmp_path / 'audio' / 'b.wav').resolve()},p2,cough,NA,,dry\n")
    recs = load("csv", tmp_path / "mine.csv")
    assert [r.subject for r in recs] == ["p1", "p2"]
    assert recs[0].metadata == {"age": 54, "smoker": "yes"} and recs[1].metadata == {}
    assert [r.labels for r in recs] == [{"label_cough": "wet"}, {"label_cough": "dry"}]
    assert [r.duration for r in recs] == [0.5, 0.25]
    named = load("csv", tmp_path, labels=["smoker"])
    assert named[0].labels == {"smoker": "yes"} and "label_cough" in named[0].metadata


def test_csv_without_path_column_or_binary_is_a_clear_error(tmp_path):
    (tmp_path / "x.csv").write_text("file,label\na.wav,1\n")
    with pytest.raises(DatasetError, match="'path' column"):
        load("csv", tmp_path / "x.csv")
    write_tone(tmp_path / "y.csv", fmt="WAV")
    with pytest.raises(DatasetError, match="not a CSV text file"):
        load("csv", tmp_path / "y.csv")
