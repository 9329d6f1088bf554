"""Records, manifests, splits and the data CLI (each dataset's loader: tests/test_datasets_<name>.py)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from acula_edge.data import MISSING, Recording, read_manifest, write_manifest
from acula_edge.data.splits import apply_split, kfold_subjects, split_subjects
from acula_edge.datasets import load
from acula_edge.errors import DatasetError
from conftest import run_module, write_tone
from test_datasets_physionet2016 import physionet_dir  # noqa: F401  (fixture)
from test_datasets_sprsound import sprsound_dir  # noqa: F401  (fixture)


# ---- manifests ----

def test_jsonl_manifest_round_trip_is_atomic(tmp_path, sprsound_dir):
    recs = load("sprsound", sprsound_dir)
    out = tmp_path / "m.jsonl"
    write_manifest(recs, out)
    assert read_manifest(out) == recs
    assert not list(tmp_path.glob(".m.jsonl.*"))  # no temp files left behind


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


def test_a_manifest_without_recordings_is_one_error_whatever_its_format(tmp_path):
    """A CSV with its header and no rows, like an empty JSONL file, holds no recordings: every stage that
    reads one (export verify among them) stops on this line instead of stacking zero arrays."""
    (tmp_path / "empty.csv").write_text("path,subject,label\n")
    (tmp_path / "empty.jsonl").write_text("")
    for name in ("empty.csv", "empty.jsonl"):
        with pytest.raises(DatasetError, match="the manifest holds no recordings"):
            read_manifest(tmp_path / name)


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
