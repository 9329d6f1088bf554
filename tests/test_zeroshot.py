"""Zero-shot probabilities, prompt embeddings in an aligned checkpoint's space, operating points."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from acula_edge.errors import AculaError
from acula_edge.device.zeroshot import zero_shot_probabilities
from acula_edge.zeroshot import embed_prompts
from conftest import call_main, run_module


def test_zero_shot_probabilities():
    rng = np.random.default_rng(0)
    prompts = rng.standard_normal((2, 16))
    audio = np.concatenate([prompts[0] + 0.3 * rng.standard_normal((20, 16)),
                            prompts[1] + 0.3 * rng.standard_normal((20, 16))]) * 5.0  # scale does not matter
    pr = zero_shot_probabilities(audio, prompts)
    assert pr.shape == (40, 2) and np.allclose(pr.sum(1), 1.0, atol=1e-6)
    assert (pr[:20, 0] > 0.5).all() and (pr[20:, 1] > 0.5).all()
    warm, cold = (zero_shot_probabilities(audio, prompts, temperature=t)[:, 1] for t in (0.5, 1.0))
    assert np.array_equal(np.argsort(warm), np.argsort(cold))  # temperature keeps the ranking
    for bad in [(audio[:, :8], prompts), (audio, prompts[:1])]:
        with pytest.raises(AculaError):
            zero_shot_probabilities(*bad)


@pytest.mark.slow
def test_prompts_embed_into_an_aligned_checkpoints_space(tmp_path):
    from acula_edge.data.synth import generate

    generate(tmp_path / "corpus", 16, seed=2)
    run = tmp_path / "run"
    r = run_module("acula_edge.align", "train", "--manifest", str(tmp_path / "corpus" / "manifest.jsonl"),
                   "--encoder", "vit-tiny", "--max-steps", "1", "--batch-size", "8", "--out", str(run),
                   "--text-cache", str(tmp_path / "c.sqlite"), "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    prompts = ["Normal lung sounds.", "Wheezes are heard.", "Crackles are heard."]
    e = embed_prompts(str(run / "encoder.safetensors"), prompts)
    assert e.shape == (3, 512) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert all(float(e[i] @ e[j]) < 0.9999 for i, j in itertools.combinations(range(3), 2))
    assert np.array_equal(e, embed_prompts(str(run / "encoder.safetensors"), prompts))
    with pytest.raises(AculaError, match="non-empty"):
        embed_prompts(str(run / "encoder.safetensors"), ["", "x"])


def test_every_registered_question_has_one_prompt_per_class():
    from acula_edge.data.tasks import get_task, list_tasks

    asked = [t for t in list_tasks() if get_task(t).prompts]
    assert {"sprsound-adventitious", "physionet2016-abnormal", "synthetic-wet-cough"} <= set(asked)
    assert all(len(get_task(t).prompts) == 2 and len(set(get_task(t).prompts)) == 2 for t in asked)


@pytest.mark.slow
def test_zero_shot_cli_scores_files_and_tasks(tmp_path):
    import json

    from acula_edge.data.synth import generate
    from acula_edge.metrics import auroc

    records = generate(tmp_path / "corpus", 80, seed=4)
    # trained on a third of the subjects: the task is scored on the others only
    subjects = sorted({r.subject for r in records})
    trained = set(subjects[: len(subjects) // 3])
    seen = [r for r in records if r.subject in trained]
    from acula_edge.data.records import write_manifest

    write_manifest(seen, tmp_path / "seen.jsonl")
    run = tmp_path / "run"
    r = run_module("acula_edge.align", "train", "--manifest", str(tmp_path / "seen.jsonl"), "--encoder", "vit-tiny",
                   "--loss", "infonce", "--max-steps", "2", "--batch-size", "8", "--out", str(run),
                   "--text-cache", str(tmp_path / "c.sqlite"), "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    ckpt = str(run / "encoder.safetensors")
    files = [records[0].path, records[1].path]
    r = run_module("acula_edge.zeroshot", "--checkpoint", ckpt, "--prompt", "Normal lung sounds.",
                   "--prompt", "Wheezes are heard.", *files, "--out", str(tmp_path / "z.json"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "z.json").read_text())
    probs = np.array([f["probabilities"] for f in doc["files"]])
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-3)
    assert [line.split(":")[0] for line in r.stdout.splitlines()] == files
    r = run_module("acula_edge.zeroshot", "--checkpoint", ckpt, "--task", "synthetic-adventitious",
                   "--data", f"synthetic={tmp_path / 'corpus'}", "--out", str(tmp_path / "t.json"))
    assert r.returncode == 0, r.stderr
    doc = json.loads((tmp_path / "t.json").read_text())
    assert 0.0 <= doc["auroc"] <= 1.0 and doc["ci95"][0] <= doc["auroc"] <= doc["ci95"][1]
    lung = [x for x in records if x.labels.get("adventitious") in (0, 1) and x.subject not in trained]
    assert doc["recordings"] == len(lung) and doc["prompts"][1].startswith("Lung auscultation. Adventitious")
    # the AUROC is that of the positive prompt's probability on those recordings
    from acula_edge.zeroshot import score_records

    p = score_records(ckpt, lung, doc["prompts"])[:, 1]
    assert doc["auroc"] == pytest.approx(auroc(np.array([x.labels["adventitious"] for x in lung]), p), abs=1e-4)
    for args, expect in [(["--prompt", "only one", files[0]], "at least two"),
                         (["--prompt", "a", "--prompt", "b", str(tmp_path / "missing.wav")], "not found"),
                         (["--task", "synthetic-wheeze", "--data", f"synthetic={tmp_path / 'corpus'}"], "no registered prompts"),
                         (["--prompt", "a", "--prompt", "b", "--task", "synthetic-adventitious", files[0]], "not both")]:
        r = call_main("acula_edge.zeroshot", "--checkpoint", ckpt, *args)
        assert r.returncode == 2 and expect in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
