"""The helpers the dataset modules share: CSV reading, yes/no cells, metadata-file search, task labels."""

from __future__ import annotations

import logging

import pytest

from acula_edge.data.records import Recording
from acula_edge.datasets.common import (adventitious_type, binary, binary_label, find_files, find_metadata_file,
                                        parse_flag, read_csv_rows)
from acula_edge.errors import DatasetError
from conftest import write


def test_read_csv_rows(tmp_path, caplog):
    p = write(tmp_path / "m.csv", "\ufeffid,place\n1,Zürich\n\n2,\"a, b\"\n3\n")
    assert read_csv_rows(p) == (["id", "place"], [{"id": "1", "place": "Zürich"}, {"id": "2", "place": "a, b"},
                                                  {"id": "3", "place": None}])
    assert not caplog.records  # UTF-8 with a BOM: no warning
    p.write_bytes("id,place\r\n1,Orléans\r\n".encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="acula_edge.datasets"):
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


def test_find_files_any_case_sorted_without_hidden(tmp_path):
    for name in ("b.WAV", "a.wav", ".hidden.wav", "notes.txt", "sub/c.wav"):
        write(tmp_path / name, "x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_files(tmp_path, (".wav",))] == \
        ["a.wav", "b.WAV", "sub/c.wav"]


def test_binary_labels_leave_other_values_out():
    assert [binary(v, {"COPD"}, {"Normal"}) for v in ("COPD", "Normal", "URTI", None)] == [1, 0, None, None]
    label = binary_label("abnormal", {"abnormal"}, {"normal"})
    records = [Recording(id=str(i), path="x.wav", dataset="t", subject=str(i), modality="heart", labels=labels)
               for i, labels in enumerate([{"abnormal": "abnormal"}, {"abnormal": "normal"}, {"abnormal": "?"}, {}])]
    assert [label(r) for r in records] == [1, 0, None, None]
    assert binary_label("wheeze")(Recording(id="a", path="x.wav", dataset="t", subject="a", modality="lung",
                                            labels={"wheeze": 1})) == 1
