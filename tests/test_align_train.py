"""MSM pretraining and alignment runs: losses fall, checkpoints, exact resume after a kill,
``torchrun`` with 2 CPU processes against one process, subject bookkeeping, bad input.

Real parts throughout: the synthetic corpus on disk, the packaged text teacher, gloo DDP.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from acula_edge.augment import AugmentConfig, augment_waveform, lowpass, spec_masks
from acula_edge.align.data import ClipSet
from acula_edge.data.roots import load_sources
from acula_edge.training import clip_seed, micro_batches
from acula_edge.checkpoint import load_checkpoint, subject_hash
from acula_edge.data.records import read_manifest, write_manifest
from acula_edge.data.synth import generate
from acula_edge.errors import AculaError
from acula_edge.models import create_encoder
from conftest import ROOT, call_main, kill_after_steps, run_module


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    generate(out, 48, seed=3)
    return out / "manifest.jsonl"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("textcache") / "cache.sqlite")


def align(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_module("acula_edge.align", *args, cwd=cwd)


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def pretrained(corpus, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("pre") / "run"
    r = align("pretrain", "--manifest", str(corpus), "--out", str(run), "--max-steps", "24", "--batch-size", "8",
              "--warmup-steps", "4", "--threads", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    return run


# ---------------------------------------------------------------- augmentations and data


def test_lowpass_removes_the_band_above_the_cutoff():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(16000).astype(np.float32)
    y = lowpass(x, 2000.0, 16000)
    spec_x, spec_y = np.abs(np.fft.rfft(x)), np.abs(np.fft.rfft(y))
    f = np.fft.rfftfreq(16000, 1 / 16000)
    assert spec_y[f > 2000].max() < 1e-3 * spec_x[f > 2000].mean()
    np.testing.assert_allclose(spec_y[f < 1700], spec_x[f < 1700], rtol=1e-4)


def test_random_eq_is_a_smooth_response_that_keeps_the_level():
    from acula_edge.augment import random_eq

    rate = 8000
    x = np.random.default_rng(0).standard_normal(rate * 2).astype(np.float32)
    y = random_eq(x, rate, 10.0, np.random.default_rng(1))
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=1e-3)
    ratio = np.abs(np.fft.rfft(y)) / np.abs(np.fft.rfft(x))
    db = 20 * np.log10(ratio[1:])
    assert 3 < db.max() - db.min() <= 40  # a real tilt, within +-10 dB of each other plus the level
    assert np.abs(np.diff(db)).max() < 0.1  # smooth: no two neighbouring bins jump
    assert np.array_equal(y, random_eq(x, rate, 10.0, np.random.default_rng(1)))


def test_augmentations_depend_only_on_the_clip_seed():
    x = np.sin(np.arange(32000) / 10).astype(np.float32)
    cfg = AugmentConfig(noise_prob=1.0, lowpass_prob=1.0)
    a = augment_waveform(x, 16000, cfg, np.random.default_rng(5))
    b = augment_waveform(x, 16000, cfg, np.random.default_rng(5))
    c = augment_waveform(x, 16000, cfg, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.allclose(a, c)
    np.testing.assert_array_equal(augment_waveform(x, 16000, AugmentConfig.off(), np.random.default_rng(5)), x)
    m = spec_masks(64, 128, AugmentConfig(time_masks=1, freq_masks=1, time_mask_frac=0.1, freq_mask_bins=8),
                   np.random.default_rng(1))
    full_cols, full_rows = m.all(axis=0).sum(), m.all(axis=1).sum()
    assert 1 <= full_cols <= 12 and 1 <= full_rows <= 8
    assert clip_seed(0, 1, 2) == clip_seed(0, 1, 2) != clip_seed(0, 2, 1)


def test_background_recordings_mix_in_at_the_drawn_snr(tmp_path):
    from acula_edge.augment import Backgrounds
    from conftest import write_tone

    (tmp_path / "bg" / "street").mkdir(parents=True)
    write_tone(tmp_path / "bg" / "street" / "hum.wav", rate=8000, seconds=0.5, freq=300.0)  # resampled, repeated
    (tmp_path / "bg" / "notes.txt").write_text("not audio")
    (tmp_path / "bg" / "._hum.wav").write_bytes(b"\0" * 4096)  # a macOS resource fork, not audio: skipped
    bg = Backgrounds(tmp_path / "bg", 16000)
    assert [p.name for p in bg.files] == ["hum.wav"]
    x = (0.3 * np.sin(2 * np.pi * 1000 * np.arange(32000) / 16000)).astype(np.float32)
    cfg = dataclasses.replace(AugmentConfig.off(), backgrounds=str(tmp_path / "bg"), background_prob=1.0,
                              background_snr_db=(10.0, 10.0))
    y = augment_waveform(x, 16000, cfg, np.random.default_rng(3), bg)
    added = y.astype(np.float64) - x
    snr = 10 * np.log10(np.mean(x.astype(np.float64) ** 2) / np.mean(added ** 2))
    spectrum = np.abs(np.fft.rfft(added))
    assert snr == pytest.approx(10.0, abs=0.05) and abs(np.fft.rfftfreq(32000, 1 / 16000)[spectrum.argmax()] - 300) < 2
    assert np.array_equal(y, augment_waveform(x, 16000, cfg, np.random.default_rng(3), bg))
    with pytest.raises(AculaError, match="no background recordings"):
        augment_waveform(x, 16000, cfg, np.random.default_rng(3))
    with pytest.raises(AculaError, match="needs a folder"):
        AugmentConfig(background_prob=0.5)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AculaError, match="no audio files"):
        Backgrounds(tmp_path / "empty", 16000)
    with pytest.raises(AculaError, match="not found"):
        Backgrounds(tmp_path / "missing", 16000)


def test_clips_and_batches(corpus):
    records = read_manifest(corpus)
    clips = ClipSet(records, 16000, 66048, 64, 128, AugmentConfig(), seed=1)
    a, b = clips[(0, 3)], clips[(0, 3)]
    assert a["wave"].shape == (66048,) and a["wave"].dtype == np.float32 and a["mask"].shape == (64, 128)
    assert np.array_equal(a["wave"], b["wave"]) and not np.array_equal(a["wave"], clips[(1, 3)]["wave"])
    batches = micro_batches(48, 16, epoch=0, seed=0)
    assert len(batches) == 3 and sorted(np.concatenate(batches)) == list(range(48))
    assert not np.array_equal(np.concatenate(batches), np.concatenate(micro_batches(48, 16, epoch=1, seed=0)))


def test_msm_masks_per_clip_do_not_depend_on_the_batch():
    torch.manual_seed(0)
    enc = create_encoder("vit-tiny")
    x = torch.randn(4, 64, 128)
    gens = lambda seeds: [torch.Generator().manual_seed(s) for s in seeds]  # noqa: E731
    _, whole = enc.msm_loss(x, generator=gens([1, 2, 3, 4]))
    _, half = enc.msm_loss(x[2:], generator=gens([3, 4]))
    assert torch.equal(whole["mask"][2:], half["mask"])
    assert abs(float(whole["mask"].float().mean()) - enc.config.mask_ratio) < 0.02


def test_split_filter_and_sources(corpus, tmp_path):
    records = read_manifest(corpus)
    subjects = sorted({r.subject for r in records})
    for r in records:
        r.split = "train" if r.subject in subjects[: len(subjects) // 2] else "test"
    write_manifest(records, tmp_path / "split.jsonl")
    train = load_sources([str(tmp_path / "split.jsonl")], splits=["train"])
    assert {r.subject for r in train} == set(subjects[: len(subjects) // 2])
    with pytest.raises(Exception, match="no recording is in split val"):
        load_sources([str(tmp_path / "split.jsonl")], splits=["val"])
    with pytest.raises(Exception, match="appears twice"):
        load_sources([str(corpus), str(corpus)])


# ---------------------------------------------------------------- runs


def test_pretrain_learns_and_writes_a_checkpoint(pretrained, corpus):
    m = metrics(pretrained)
    assert [x["step"] for x in m] == list(range(1, 25))
    first, last = np.mean([x["l_msm"] for x in m[:4]]), np.mean([x["l_msm"] for x in m[-4:]])
    assert last < 0.7 * first, (first, last)
    enc, meta = load_checkpoint(pretrained / "encoder.safetensors")
    subjects = {r.subject for r in read_manifest(corpus)}
    assert set(meta["trained_subjects_sha256"]) == {subject_hash(s) for s in subjects}
    assert meta["training"]["mode"] == "pretrain" and meta["training"]["steps"] == 24
    cfg = json.loads((pretrained / "config.json").read_text())
    assert cfg["steps"] == 24 and cfg["world_size"] == 1 and cfg["training"]["lambda_align"] == 0.0


@pytest.mark.parametrize("loss", ["cka", "cka-feature", "infonce"])
def test_align_from_a_pretrained_encoder(loss, pretrained, corpus, cache, tmp_path):
    run = tmp_path / "run"
    r = align("train", "--manifest", str(corpus), "--init", str(pretrained / "encoder.safetensors"),
              "--out", str(run), "--loss", loss, "--max-steps", "3", "--batch-size", "8", "--text-cache", cache,
              "--threads", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    m = metrics(run)
    assert len(m) == 3 and all(np.isfinite(x["l_align"]) and np.isfinite(x["l_msm"]) for x in m)
    tensors = load_file(str(run / "encoder.safetensors"))
    assert tensors["audio_proj.0.weight"].shape == (1024, 96) and tensors["text_proj.0.weight"].shape == (1024, 384)
    assert tensors["audio_proj.3.weight"].shape == (512, 1024)
    meta = json.loads((run / "encoder.json").read_text())
    assert meta["training"]["loss"] == loss and meta["text_teacher"]["width"] == 384
    pre = json.loads((pretrained / "encoder.json").read_text())
    assert set(pre["trained_subjects_sha256"]) <= set(meta["trained_subjects_sha256"])
    if loss == "infonce":
        assert 0 < meta["logit_scale"] <= 100
    before = load_file(str(pretrained / "encoder.safetensors"))
    assert not torch.equal(before["encoder.blocks.0.attn.qkv.weight"], tensors["encoder.blocks.0.attn.qkv.weight"])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "encoder.safetensors"))


@pytest.mark.slow
def test_resume_after_a_kill_gives_the_same_weights(corpus, cache, tmp_path):
    args = ["train", "--manifest", str(corpus), "--encoder", "vit-tiny", "--max-steps", "16", "--batch-size", "8",
            "--accum", "2", "--save-every", "1", "--text-cache", cache, "--threads", "1", "--quiet"]
    full = tmp_path / "full"
    r = align(*args, "--out", str(full))
    assert r.returncode == 0, r.stderr
    cut = tmp_path / "cut"
    kill_after_steps(["acula_edge.align", *args, "--out", str(cut)], cut, 4)
    assert not (cut / "encoder.safetensors").exists()
    saved = torch.load(cut / "resume.pt", weights_only=True)["step"]
    assert 3 <= saved < 16
    again = call_main("acula_edge.align.cli", *args, "--out", str(cut))  # without --resume: refused, nothing touched
    assert again.returncode == 2 and "--resume" in again.stderr and again.stderr.count("\n") == 1
    r = align(*args, "--out", str(cut), "--resume")
    assert r.returncode == 0, r.stderr
    a, b = _weights(full), _weights(cut)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    assert [x["step"] for x in metrics(cut)] == list(range(1, 17))
    assert [x["loss"] for x in metrics(cut)] == [x["loss"] for x in metrics(full)]
    changed = call_main("acula_edge.align.cli", *args, "--lr", "0.5", "--out", str(cut), "--resume")
    assert changed.returncode == 2 and "different settings" in changed.stderr and "lr" in changed.stderr
    fewer = tmp_path / "fewer.jsonl"
    write_manifest(read_manifest(corpus)[:40], fewer)
    other = call_main("acula_edge.align.cli", *[str(fewer) if x == str(corpus) else x for x in args], "--out", str(cut),
                      "--resume")
    assert other.returncode == 2 and "other training data" in other.stderr


@pytest.mark.slow
def test_a_second_training_in_a_live_run_folder_is_one_line(corpus, cache, tmp_path):
    """While a run holds its folder (here this process, as a live first run would), another training
    there, ``--resume`` or not, is refused before it loads anything; once it ends the folder is free."""
    from acula_edge.stages import locked

    out = tmp_path / "run"
    args = ["train", "--manifest", str(corpus), "--encoder", "vit-tiny", "--max-steps", "1", "--batch-size", "8",
            "--text-cache", cache, "--threads", "1", "--quiet", "--out", str(out)]
    with locked(out / ".training", "training"):
        for extra in ((), ("--resume",)):
            r = call_main("acula_edge.align.cli", *args, *extra)
            assert r.returncode == 2 and r.stderr == f"error: another training is running in {out}\n"
    assert not (out / "config.json").exists()
    r = align(*args)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_a_runs_config_file_starts_the_same_run(corpus, cache, tmp_path):
    """``--config OUT/config.json`` resolves the same settings and trains the same weights; flags
    given with it override it; another stage's config or none at all is one line."""
    first, again, changed = tmp_path / "first", tmp_path / "again", tmp_path / "changed"
    r = align("train", "--manifest", str(corpus), "--encoder", "vit-tiny", "--loss", "infonce", "--max-steps", "2",
              "--batch-size", "8", "--lr", "3e-4", "--dropout", "0.1", "--no-augment", "--text-cache", cache,
              "--threads", "1", "--quiet", "--out", str(first))
    assert r.returncode == 0, r.stderr
    config = first / "config.json"
    r = align("train", "--config", str(config), "--manifest", str(corpus), "--threads", "1", "--quiet", "--out", str(again))
    assert r.returncode == 0, r.stderr
    written = json.loads(config.read_text())
    assert written["stage"] == "align train" and written["training"]["lr"] == 3e-4
    assert json.loads((again / "config.json").read_text()) == written
    wa, wb = _weights(first), _weights(again)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    r = align("train", "--config", str(config), "--lr", "1e-4", "--max-steps", "1", "--manifest", str(corpus),
              "--threads", "1", "--quiet", "--out", str(changed))
    assert r.returncode == 0, r.stderr
    a, b = written["training"], json.loads((changed / "config.json").read_text())["training"]
    assert {k for k in a if a[k] != b[k]} == {"lr", "max_steps"} and (b["lr"], b["max_steps"]) == (1e-4, 1)
    for args, message in [
        (["pretrain", "--config", str(config)], "a `align train` run's config, not a `align pretrain` one"),
        (["train", "--config", str(config), "--preset", "cpu-tiny"], "give --preset or --config"),
        (["train", "--config", str(tmp_path / "none.json")], "none.json: no such file"),
        (["train", "--config", str(first / "metrics.jsonl")], "not valid JSON"),
    ]:
        r = call_main("acula_edge.align.cli", *args, "--manifest", str(corpus), "--out", str(tmp_path / "x"))
        assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_torchrun_two_cpu_processes_match_one(corpus, cache, tmp_path):
    """Global micro-batch 8 (2 x 4 under torchrun), accumulation 2, InfoNCE (a learned temperature
    shared by both processes), MSM: the same weights. Dropout is off: its masks are drawn per process."""
    args = ["train", "--manifest", str(corpus), "--encoder", "vit-tiny", "--loss", "infonce", "--max-steps", "3",
            "--batch-size", "8", "--accum", "2", "--dropout", "0", "--text-cache", cache, "--threads", "1", "--quiet"]
    one = tmp_path / "one"
    r = align(*args, "--out", str(one))
    assert r.returncode == 0, r.stderr
    two = tmp_path / "two"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                        "-m", "acula_edge.align", *args, "--out", str(two)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((two / "config.json").read_text())["world_size"] == 2
    a, b = _weights(one), _weights(two)
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    print(f"torchrun 2 processes against 1: largest weight difference {worst:.1e}")
    assert worst < 1e-4, worst
    moved = max(float((a[k] - _init(k)).abs().max()) for k in a if k.startswith("encoder.blocks.0.attn"))
    assert moved > 10 * max(worst, 1e-7)  # training moved the weights far more than the two runs differ
    ma, mb = metrics(one), metrics(two)
    np.testing.assert_allclose([x["loss"] for x in ma], [x["loss"] for x in mb], rtol=1e-5)


def _init(key: str) -> torch.Tensor:
    torch.manual_seed(0)
    return {f"encoder.{k}": v for k, v in create_encoder("vit-tiny").state_dict().items()}[key]


@pytest.mark.slow
def test_bad_input_is_one_clear_line(corpus, tmp_path):
    cases = [
        (["pretrain", "--manifest", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "a")], "not found"),
        (["pretrain", "--out", str(tmp_path / "b")], "no training data"),
        (["pretrain", "--manifest", str(corpus), "--out", str(tmp_path / "c"), "--batch-size", "64"], "do not fill one optimizer step"),
        (["train", "--manifest", str(corpus), "--out", str(tmp_path / "d"), "--loss", "nope"], "nope"),
        (["train", "--manifest", str(corpus), "--out", str(tmp_path / "e"), "--preset", "huge"], "unknown preset"),
        (["train", "--manifest", str(corpus), "--out", str(tmp_path / "f"), "--init", str(tmp_path / "x.safetensors")],
         "checkpoint not found"),
        (["train", "--manifest", str(corpus), "--out", str(tmp_path / "g"), "--reports", str(corpus)], "no 'text'"),
    ]
    # a recording that exists but cannot be decoded, met by a loader worker mid-epoch
    records = read_manifest(corpus)
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    records[7].path = str(tmp_path / "bad.wav")
    write_manifest(records, tmp_path / "bad.jsonl")
    cases += [
        (["pretrain", "--manifest", str(tmp_path / "bad.jsonl"), "--out", str(tmp_path / "h"), "--batch-size", "8",
          "--max-steps", "6", "--workers", "1"], "bad.wav"),
        (["pretrain", "--manifest", str(corpus), "--out", str(tmp_path / "i"), "--device", "tpu"], "--device is cpu"),
        (["pretrain", "--manifest", str(corpus), "--out", str(tmp_path / "j"), "--threads", "0"], "--threads must be"),
    ]
    for args, expect in cases:
        # in this process, but for the decoding failure met by a loader worker (a forked process)
        r = align(*args) if "--workers" in args else call_main("acula_edge.align.cli", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert expect in r.stderr and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)


def test_presets_hold_the_published_settings():
    from acula_edge.align.trainer import preset_config

    cfg = preset_config("gpu-paper", "align")
    assert (cfg.encoder, cfg.lr, cfg.weight_decay, cfg.warmup_steps, cfg.clip, cfg.epochs, cfg.batch_size,
            cfg.accum, cfg.proj_hidden, cfg.proj_out, cfg.dropout, cfg.loss) == \
        ("vit-small", 1e-5, 0.01, 400, 1.0, 50, 24, 2, 1024, 512, 0.2, "cka")
    assert (cfg.lambda_align, cfg.lambda_msm) == (1.0, 1.0)
    assert preset_config("cpu-tiny", "pretrain").lambda_align == 0.0


@pytest.mark.slow
def test_precomputed_report_embeddings_train_the_same_model(corpus, cache, tmp_path):
    """Reports written by the reports CLI and embedded by the text CLI give the same run as the
    trainer's own template reports through the cache (the teacher is not loaded at all)."""
    reports, emb = tmp_path / "reports.jsonl", tmp_path / "emb"
    r = run_module("acula_edge.reports", "--manifest", str(corpus), "--out", str(reports))
    assert r.returncode == 0, r.stderr
    r = run_module("acula_edge.text", "embed", "--reports", str(reports), "--out", str(emb), "--cache", cache, "--quiet")
    assert r.returncode == 0, r.stderr
    args = ["train", "--manifest", str(corpus), "--encoder", "vit-tiny", "--max-steps", "2", "--batch-size", "8",
            "--threads", "1", "--quiet"]
    a, b = tmp_path / "a", tmp_path / "b"
    assert align(*args, "--out", str(a), "--text-cache", cache).returncode == 0
    r = align(*args, "--out", str(b), "--text-embeddings", str(emb))
    assert r.returncode == 0, r.stderr
    wa, wb = _weights(a), _weights(b)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert json.loads((b / "encoder.json").read_text())["text_teacher"]["width"] == 384
    bad = call_main("acula_edge.align.cli", *args, "--out", str(tmp_path / "c"), "--text-embeddings", str(tmp_path))
    assert bad.returncode == 2 and "not an embeddings folder" in bad.stderr


def test_no_weight_decay_on_biases_norms_and_tokens():
    from acula_edge.training import param_groups

    enc = create_encoder("vit-tiny")
    decay, plain = param_groups(enc, 0.01)
    names = {id(p): n for n, p in enc.named_parameters()}
    plain_names = {names[id(p)] for p in plain["params"]}
    assert {"cls_token", "mask_token"} <= plain_names and all(n.endswith(("bias", "token")) or "norm" in n
                                                            for n in plain_names)
    assert all(p.dim() >= 2 for p in decay["params"]) and plain["weight_decay"] == 0.0
