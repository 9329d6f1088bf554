"""A tiny end-to-end distillation on the synthetic corpus: the student's agreement with the teacher
rises from chance to well above it; the checkpoint and the CLI's bad-input paths."""

from __future__ import annotations

import json

import pytest
import torch

from acula_edge.data.records import read_manifest
from acula_edge.data.synth import generate
from conftest import kill_after_steps, run_module
from distill.students import create_student
from distill.teacher import read_targets
from distill.trainer import agreement, load_student

HEADS = ("synthetic-adventitious", "synthetic-abnormal-heart")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    generate(root / "corpus", 48, seed=3)
    manifest = root / "corpus" / "manifest.jsonl"
    cache = str(root / "cache.sqlite")
    r = run_module("acula_edge.align", "train", "--manifest", str(manifest), "--encoder", "vit-tiny", "--max-steps",
                   "20", "--batch-size", "8", "--out", str(root / "teacher"), "--text-cache", cache,
                   "--threads", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_module("acula_edge.align", "pretrain", "--manifest", str(manifest), "--max-steps", "1",
                   "--batch-size", "8", "--out", str(root / "msm"), "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    return root, manifest, cache


def test_distillation_raises_student_teacher_agreement(setup):
    root, manifest, cache = setup
    teacher = root / "teacher" / "encoder.safetensors"
    out = root / "student"
    args = ["--teacher", str(teacher), "--student", "mn-xs", "--manifest", str(manifest), "--out", str(out),
            "--max-steps", "30", "--batch-size", "16", "--text-cache", cache, "--threads", "2", "--quiet"]
    r = run_module("distill", *args, *[x for h in HEADS for x in ("--head", h)])
    assert r.returncode == 0, r.stderr
    records = read_manifest(manifest)
    targets = read_targets(out / "teacher-targets")
    student, meta = load_student(out / "student.safetensors")
    torch.manual_seed(0)
    initial = create_student("mn-xs", heads=HEADS)  # the run's own initialisation (seed 0)
    before, after = (agreement(s, targets, records, meta["frontend"]) for s in (initial, student))
    print(f"student-teacher cosine agreement: {before:.3f} at initialisation, {after:.3f} after 30 steps")
    assert before < 0.2 and after > 0.45 and after - before > 0.3
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 30 and {"embedding", "relational", "text", "heads"} <= set(log[-1])
    assert log[-1]["embedding"] < 0.6 * log[0]["embedding"]
    assert meta["kind"] == "student" and [h["name"] for h in meta["heads"]] == list(HEADS)
    teacher_meta = json.loads((root / "teacher" / "encoder.json").read_text())
    assert set(teacher_meta["trained_subjects_sha256"]) <= set(meta["trained_subjects_sha256"])
    assert meta["parameters"] == student.num_parameters() < 100_000
    emb, logits = student(torch.randn(2, 64, 128))
    assert emb.shape == (2, 512) and logits.shape == (2, 2)
    # evaluate takes a student checkpoint (windows averaged over each recording); it saw every subject
    ev = run_module("acula_edge.evaluate", "--encoder", str(out / "student.safetensors"), "--task", HEADS[0],
                    "--data", f"synthetic={manifest.parent}", "--allow-overlap", "--seeds", "1", "--bootstrap", "20",
                    "--out", str(root / "ev"))
    assert ev.returncode == 0 and "AUROC" in ev.stdout, ev.stderr[-1500:]


def test_windowed_student_averages_its_windows():
    from distill.students import WindowedStudent

    torch.manual_seed(0)
    s = create_student("mn-xs").eval()
    x = torch.randn(1, 64, 256) * 10 - 40
    with torch.no_grad():
        whole = WindowedStudent(s).features(x)
        parts = torch.stack([s(x[:, :, :128])[0][0], s(x[:, :, 128:])[0][0]]).mean(0)
    assert torch.allclose(whole[0], parts, atol=1e-6)


def test_distill_bad_input_is_one_clear_line(setup, tmp_path):
    root, manifest, cache = setup
    base = ["--manifest", str(manifest), "--out", str(tmp_path / "o"), "--max-steps", "1", "--quiet"]
    cases = [
        (["--student", "mn-xs", *base], "--teacher"),
        (["--teacher", str(root / "msm" / "encoder.safetensors"), *base], "not an aligned checkpoint"),
        (["--teacher", str(root / "teacher" / "encoder.safetensors"), "--student", "tiny", *base], "unknown student"),
        (["--teacher", str(root / "teacher" / "encoder.safetensors"), "--head", "nope", "--w-text", "0", *base],
         "unknown task"),
    ]
    for args, expect in cases:
        r = run_module("distill", *args)
        assert r.returncode == 2 and expect in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)


def test_distill_resumes_after_a_kill_to_the_same_student(setup, tmp_path):
    root, manifest, cache = setup
    args = ["distill", "--teacher", str(root / "teacher" / "encoder.safetensors"), "--student", "mn-xs",
            "--head", HEADS[0], "--manifest", str(manifest), "--max-steps", "24", "--batch-size", "8",
            "--save-every", "1", "--text-cache", cache, "--threads", "1", "--quiet"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    r = run_module(*args, "--out", str(full))
    assert r.returncode == 0, r.stderr
    kill_after_steps([*args, "--out", str(cut)], cut, 4)
    assert not (cut / "student.safetensors").exists()
    r = run_module(*args, "--out", str(cut), "--resume")
    assert r.returncode == 0, r.stderr
    a, b = (load_student(d / "student.safetensors")[0].state_dict() for d in (full, cut))
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed student differs from the uninterrupted one"
