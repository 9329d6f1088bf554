"""Teacher targets: windows, one computation reused, rows equal to the teacher run directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acula_edge.device.audio import load
from acula_edge.device.windows import window_starts
from acula_edge.checkpoint import load_checkpoint, load_projections
from acula_edge.data.records import read_manifest
from acula_edge.data.synth import generate
from acula_edge.errors import AculaError
from acula_edge.frontend import FrontendConfig, LogMel
from conftest import run_module
from distill.teacher import teacher_targets


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    generate(root / "corpus", 16, seed=5)
    manifest = root / "corpus" / "manifest.jsonl"
    run = root / "run"
    r = run_module("acula_edge.align", "train", "--manifest", str(manifest), "--encoder", "vit-tiny", "--max-steps",
                   "1", "--batch-size", "8", "--out", str(run), "--text-cache", str(root / "c.sqlite"),
                   "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    pre = root / "pre"
    r = run_module("acula_edge.align", "pretrain", "--manifest", str(manifest), "--max-steps", "1",
                   "--batch-size", "8", "--out", str(pre), "--threads", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    return run / "encoder.safetensors", pre / "encoder.safetensors", read_manifest(manifest)


def test_targets_are_the_teachers_aligned_embeddings_computed_once(aligned, tmp_path):
    ckpt, msm_only, records = aligned
    t = teacher_targets(ckpt, records, tmp_path / "t", window_s=2.0, show_progress=False)
    fe = FrontendConfig()
    expected = sum(len(window_starts(load(r.path, fe.sample_rate)[0].shape[0], 32000, 16000)) for r in records)
    assert t.vectors.shape == (expected, 512) and len(t.windows) == expected
    np.testing.assert_allclose(np.linalg.norm(t.vectors, axis=1), 1.0, atol=1e-5)
    assert set(t.rows_of()) == {r.id for r in records}
    # row 3 against the teacher run by hand
    enc, _ = load_checkpoint(ckpt)
    proj = load_projections(ckpt)["audio"]
    rid, start = t.windows[3]
    rec = next(r for r in records if r.id == rid)
    x = torch.from_numpy(load(rec.path, fe.sample_rate)[0][start:start + 32000][None].copy())
    with torch.no_grad():
        want = torch.nn.functional.normalize(proj(enc.features(LogMel(fe)(x))), dim=1)[0].numpy()
    np.testing.assert_allclose(t.vectors[3], want, atol=1e-5)
    # the same request is read back, not recomputed; another window recomputes
    stamp = (tmp_path / "t" / "targets.npy").stat().st_mtime_ns
    again = teacher_targets(ckpt, records, tmp_path / "t", window_s=2.0, show_progress=False)
    assert (tmp_path / "t" / "targets.npy").stat().st_mtime_ns == stamp and np.array_equal(again.vectors, t.vectors)
    other = teacher_targets(ckpt, records, tmp_path / "t", window_s=1.0, show_progress=False)
    assert other.vectors.shape[0] > expected
    with pytest.raises(AculaError, match="not an aligned checkpoint"):
        teacher_targets(msm_only, records, tmp_path / "u", window_s=2.0, show_progress=False)
