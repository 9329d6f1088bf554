"""The evaluator: AUROC, the probe protocol, intervals, the leakage guard, tasks and the CLI."""

from __future__ import annotations

import json

import pytest

from acula_edge.data import Recording, write_manifest
from acula_edge.data.synth import generate
from acula_edge.errors import AculaError
from acula_edge.data.tasks import get_task, list_tasks, task_modality
from conftest import call_main, run_module, shared


def test_task_registry():
    names = list_tasks()
    for t in ["sprsound-adventitious", "sprsound-cas", "sprsound-das", "physionet2016-abnormal", "icbhi-copd",
              "kauh-obstructive", "coswara-smoker", "coswara-sex", "coughvid-covid", "coughvid-sex", "circor-murmur",
              "synthetic-adventitious"]:
        assert t in names
    poor = Recording(id="a", path="x", dataset="sprsound", subject="a", modality="lung", labels={"record": "Poor Quality"})
    assert get_task("sprsound-adventitious").label(poor) is None
    assert get_task("csv:/tmp/m.csv:smoker").dataset == "manifest:/tmp/m.csv"
    with pytest.raises(AculaError, match="unknown task"):
        get_task("nope")


def test_each_task_says_what_it_screens():
    """A task's modality: its own, else its dataset's only one; a manifest column screens any recording."""
    screens = {name: task_modality(get_task(name)) for name in list_tasks()}
    assert {k for k, v in screens.items() if v == "heart"} == {"physionet2016-abnormal", "circor-murmur",
                                                              "synthetic-abnormal-heart"}
    assert screens["sprsound-adventitious"] == screens["synthetic-crackle"] == "lung"
    assert screens["coswara-smoker"] == screens["coughvid-covid"] == screens["synthetic-wet-cough"] == "cough"
    assert None not in screens.values() and task_modality(get_task("csv:/tmp/m.csv:label")) is None


def _one_line_error(p):
    assert p.returncode == 2, (p.stdout[-500:], p.stderr[-2000:])
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


@pytest.mark.slow
def test_cli_on_a_synthetic_task_and_a_manifest_column(tmp_path):
    corpus = tmp_path / "synth"
    generate(corpus, 160, seed=4)
    p = run_module("acula_edge.evaluate", "--encoder", "logmel-stats", "--task", "synthetic-adventitious",
                   "--data", f"synthetic={corpus}", "--out", str(tmp_path / "ev"), "--seeds", "2", "--bootstrap", "100")
    assert p.returncode == 0, p.stderr[-2000:]
    doc = json.loads((tmp_path / "ev" / "results.json").read_text())
    r = doc["results"][0]
    assert r["task"] == "synthetic-adventitious" and r["encoder"] == "logmel-stats"
    assert 0 <= r["ci95"][0] <= r["auroc_mean"] <= r["ci95"][1] <= 1 and len(r["seeds"]) == 2
    assert "| synthetic-adventitious |" in (tmp_path / "ev" / "results.md").read_text()
    # any manifest column is a task
    from acula_edge.datasets import load

    m = tmp_path / "m.jsonl"
    write_manifest(load("synthetic", corpus), m)
    p = run_module("acula_edge.evaluate", "--encoder", "logmel-stats", "--task", f"csv:{m}:smoker",
                   "--out", str(tmp_path / "ev2"), "--seeds", "1", "--bootstrap", "50")
    assert p.returncode == 0, p.stderr[-2000:]
    # a manifest whose recordings carry a split: fitted on train, chosen on val, scored on test, once
    from acula_edge.data.records import read_manifest
    from acula_edge.data.splits import subject_parts

    records = read_manifest(m)
    assign = subject_parts(records, "synthetic-adventitious", {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    write_manifest([Recording(**{**r.to_dict(), "split": assign[r.subject]}) for r in records], m)
    p = call_main("acula_edge.evaluate", "--encoder", "logmel-stats", "--task", "synthetic-adventitious",
                  "--manifest", str(m), "--out", str(tmp_path / "ev3"), "--seeds", "3", "--bootstrap", "50")
    assert p.returncode == 0, p.stderr
    r = json.loads((tmp_path / "ev3" / "results.json").read_text())["results"][0]
    lung = [x for x in records if x.modality == "lung"]
    want = {part: sum(assign[x.subject] == part for x in lung) for part in ("train", "val", "test")}
    assert r["fixed_split"] and len(r["seeds"]) == 1 and r["seeds"][0]["n"] == want and "the given split" in p.stdout


def test_cli_bad_input(tmp_path):
    _one_line_error(call_main("acula_edge.evaluate", "--encoder", "logmel-stats"))
    _one_line_error(call_main("acula_edge.evaluate", "--encoder", "nothing.bin", "--task", "sprsound-cas"))
    _one_line_error(call_main("acula_edge.evaluate", "--encoder", "logmel-stats", "--task", "sprsound-cas",
                               "--data", "sprsound"))
    (tmp_path / "x.safetensors").write_bytes(b"not weights")
    _one_line_error(call_main("acula_edge.evaluate", "--encoder", str(tmp_path / "x.safetensors"), "--task", "sprsound-cas"))


@pytest.mark.slow
def test_real_sprsound_random_init_and_hand_made_features(tmp_path):
    from acula_edge.datasets import load

    # the official inter-patient test split keeps the test short (the whole set is 984 recordings)
    records = [r for r in load("sprsound", shared("sprsound")) if r.split == "test_inter"]
    write_manifest(records, tmp_path / "test_inter.jsonl")
    p = run_module("acula_edge.evaluate", "--encoder", "random-init", "--encoder", "logmel-stats",
                   "--task", "sprsound-adventitious", "--manifest", str(tmp_path / "test_inter.jsonl"),
                   "--out", str(tmp_path), "--seeds", "2", "--bootstrap", "200")
    assert p.returncode == 0, p.stderr[-2000:]
    results = {r["encoder"]: r for r in json.loads((tmp_path / "results.json").read_text())["results"]}
    for r in results.values():
        assert r["recordings"] == 347 and r["subjects"] == 41  # 355 less 8 Poor Quality
        assert not r["fixed_split"]  # test_inter is not a train/val/test split: subject-grouped seeds
        assert 0 <= r["ci95"][0] <= r["ci95"][1] <= 1
    assert results["logmel-stats"]["auroc_mean"] > 0.6
    assert p.stdout.count("95% CI") == 2


@pytest.mark.slow
def test_checkpoint_subjects_are_refused_or_left_out(tmp_path):
    """A checkpoint trained on half the subjects: refused on the task, scored with --unseen-only
    (every encoder of the run on the same unseen subjects)."""
    import torch

    from acula_edge.checkpoint import save_checkpoint
    from acula_edge.datasets import load
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models import create_encoder

    corpus = tmp_path / "synth"
    generate(corpus, 160, seed=4)
    subjects = sorted({r.subject for r in load("synthetic", corpus)})
    seen = subjects[::2]
    torch.manual_seed(0)
    ckpt = save_checkpoint(tmp_path / "enc.safetensors", create_encoder("vit-tiny"), FrontendConfig().to_dict(),
                           subjects=seen)
    args = ["acula_edge.evaluate", "--encoder", str(ckpt), "--encoder", "logmel-stats", "--task",
            "synthetic-adventitious", "--data", f"synthetic={corpus}", "--seeds", "2", "--bootstrap", "50"]
    line = _one_line_error(run_module(*args, "--out", str(tmp_path / "ev")))
    assert "trained on" in line and "--allow-overlap" in line
    p = run_module(*args, "--unseen-only", "--out", str(tmp_path / "ev2"))
    assert p.returncode == 0, p.stderr[-2000:]
    task = get_task("synthetic-adventitious")
    in_task = {r.subject for r in load("synthetic", corpus) if task.label(r) is not None}
    left_out, unseen = len(in_task & set(seen)), len(in_task - set(seen))
    assert left_out > 0 and f"{left_out} subjects the encoders were trained on left out" in p.stderr
    results = json.loads((tmp_path / "ev2" / "results.json").read_text())["results"]
    assert {r["encoder"] for r in results} == {str(ckpt), "logmel-stats"}
    assert all(r["unseen_only"] and r["test_subject_overlap"] == 0 for r in results)
    assert [r["subjects"] for r in results] == [unseen, unseen]
