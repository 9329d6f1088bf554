"""Records, manifests, the SPRSound / PhysioNet 2016 / CSV loaders, splits and the data CLI."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from acula_edge.data import MISSING, Recording, read_manifest, write_manifest
from acula_edge.data.summary import summarize
from acula_edge.data.loaders import list_formats, load
from acula_edge.data.splits import apply_split, kfold_subjects, split_subjects
from acula_edge.errors import DatasetError
from conftest import run_module, shared, write_tone


# ---- fixtures in the publishers' layouts ----

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


def test_two_copies_of_a_release_are_refused(sprsound_dir):
    import shutil

    shutil.copytree(sprsound_dir / "test_wav", sprsound_dir / "copy" / "test_wav")
    with pytest.raises(DatasetError, match="appears twice"):
        load("sprsound", sprsound_dir)


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


@pytest.mark.parametrize("fmt", list_formats())
def test_every_loader_rejects_an_empty_folder(tmp_path, fmt):
    with pytest.raises(DatasetError):
        load(fmt, tmp_path)


# ---- the real recordings beside the checkout ----

def test_real_sprsound_summary():
    s = summarize(load("sprsound", shared("sprsound")))
    assert (s["recordings"], s["subjects"]) == (984, 130)  # the inter-patient test split and 89 training children
    assert s["labels"]["record"] == {"Normal": 745, "CAS": 92, "DAS": 66, "CAS & DAS": 29, "Poor Quality": 52}
    assert s["splits"] == {"train": 629, "test_inter": 355}
    assert s["sample_rates"] == {"8000": 984}
    assert 11000 < s["total_duration_s"] < 11700


def test_real_physionet_summary():
    s = summarize(load("physionet2016", shared("physionet2016")))
    assert s["recordings"] == 899  # training-a (409) and training-b (490)
    assert s["labels"]["abnormal"] == {"abnormal": 396, "normal": 503}
    assert s["sample_rates"] == {"2000": 899}


# ---- manifests ----

def test_jsonl_manifest_round_trip_is_atomic(tmp_path, sprsound_dir):
    recs = load("sprsound", sprsound_dir)
    out = tmp_path / "m.jsonl"
    write_manifest(recs, out)
    assert read_manifest(out) == recs
    assert not list(tmp_path.glob(".m.jsonl.*"))  # no temp files left behind


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


# ---- splits ----

def _records(n_subjects=60, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for s in range(n_subjects):
        sick = rng.random() < 0.3
        for k in range(int(rng.integers(1, 6))):
            out.append(Recording(id=f"s{s}-{k}", path="x.wav", dataset="t", subject=f"s{s}", modality="lung",
                                 labels={"y": int(sick)} if rng.random() > 0.1 else {}))
    return out


def test_train_val_test_split_is_subject_disjoint_stratified_and_deterministic():
    recs = _records()
    a = split_subjects(recs, "y", seed=7)
    assert a == split_subjects(recs, "y", seed=7)
    assert a != split_subjects(recs, "y", seed=8)
    parts = apply_split(recs, a)
    assert set(parts) == {"train", "val", "test"}
    subjects = [{r.subject for r in rs} for rs in parts.values()]
    assert sum(len(s) for s in subjects) == len(set.union(*subjects))  # no subject in two parts
    overall = np.mean([r.labels["y"] for r in recs if "y" in r.labels])
    for name, want in [("train", 0.7), ("val", 0.1), ("test", 0.2)]:
        rs = parts[name]
        assert abs(len(rs) / len(recs) - want) < 0.05, name
        rate = np.mean([r.labels["y"] for r in rs if "y" in r.labels])
        assert abs(rate - overall) < 0.1, (name, rate, overall)


def test_kfold_covers_every_subject_once():
    recs = _records(40, seed=1)
    folds = kfold_subjects(recs, 5, "y", seed=0)
    assert set(folds.values()) == set(range(5)) and set(folds) == {r.subject for r in recs}
    sizes = Counter(folds[r.subject] for r in recs)
    assert max(sizes.values()) - min(sizes.values()) <= 0.1 * len(recs)
    with pytest.raises(DatasetError):
        kfold_subjects(recs[:2], 5)


# ---- CLI ----

def test_cli_summarize_json_and_manifest(tmp_path, sprsound_dir):
    out = tmp_path / "m.jsonl"
    p = run_module("acula_edge.data", "summarize", str(sprsound_dir), "--format", "sprsound", "--json", "--manifest", str(out))
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)
    assert (s["recordings"], s["subjects"]) == (4, 2)
    assert s["labels"]["adventitious"] == {"1": 2, "0": 1, MISSING: 1}
    assert s["sample_rates"] == {"8000": 4} and s["total_duration_s"] == 2.0
    assert len(read_manifest(out)) == 4


def test_cli_split_writes_a_manifest(tmp_path, physionet_dir):
    m = tmp_path / "m.jsonl"
    assert run_module("acula_edge.data", "summarize", str(physionet_dir), "--format", "physionet2016",
                      "--manifest", str(m)).returncode == 0
    p = run_module("acula_edge.data", "split", str(m), "--label", "abnormal", "--fractions", "1,1,1",
                   "--out", str(tmp_path / "s.jsonl"))
    assert p.returncode == 0, p.stderr
    assert sorted(r.split for r in read_manifest(tmp_path / "s.jsonl")) == ["test", "train", "val"]


def _assert_one_line_error(p):
    assert p.returncode == 2, (p.returncode, p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_cli_bad_audio_gives_one_line_and_nonzero_exit(tmp_path, sprsound_dir):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("hello")
    write_tone(tmp_path / "ok.wav", seconds=1.0)
    data = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 3])
    for name in ["empty.wav", "text.wav", "cut.wav", "missing.wav"]:
        print(_assert_one_line_error(run_module("acula_edge.data", "inspect", str(tmp_path / name))))
    # a corrupt recording inside a dataset
    (sprsound_dir / "test_wav" / "65121853_1.5_0_p1_4226.wav").write_bytes(b"RIFF\x00\x00")
    line = _assert_one_line_error(run_module("acula_edge.data", "summarize", str(sprsound_dir), "--format", "sprsound"))
    assert "65121853_1.5_0_p1_4226" in line
    # a binary file where a manifest is expected, and a wrong folder
    _assert_one_line_error(run_module("acula_edge.data", "summarize", str(tmp_path / "ok.wav"), "--format", "csv"))
    _assert_one_line_error(run_module("acula_edge.data", "split", str(tmp_path / "ok.wav"), "--out", str(tmp_path / "o.jsonl")))
    assert "no recordings" in _assert_one_line_error(
        run_module("acula_edge.data", "split", str(tmp_path / "empty.wav"), "--out", str(tmp_path / "o.jsonl")))
    _assert_one_line_error(run_module("acula_edge.data", "summarize", str(tmp_path), "--format", "physionet2016"))
    _assert_one_line_error(run_module("acula_edge.data", "split", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o.jsonl")))
    m = tmp_path / "m.jsonl"
    write_manifest(load("sprsound", sprsound_dir.parent / "sprsound", probe_audio=False), m)
    for bad in ["a,b,c", "0.5,0.5", "1,1,1,1"]:
        _assert_one_line_error(run_module("acula_edge.data", "split", str(m), "--fractions", bad, "--out", str(tmp_path / "o.jsonl")))


def test_cli_inspect_reports_the_file(tmp_path):
    write_tone(tmp_path / "a.flac", rate=4000, seconds=0.5, channels=2, fmt="FLAC")
    p = run_module("acula_edge.data", "inspect", "--json", str(tmp_path / "a.flac"))
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert (r["sample_rate"], r["channels"], r["duration_s"]) == (4000, 2, 0.5)
    assert 0.3 < r["peak"] <= 0.5


def test_console_script_dispatches_stages():
    p = run_module("acula_edge.cli", "data", "--help")
    assert p.returncode == 0 and "summarize" in p.stdout
    assert run_module("acula_edge.cli", "nonsense").returncode == 2
