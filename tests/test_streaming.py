"""Long recordings are decoded block by block everywhere: the same numbers as the whole recording at
once, memory bounded by a block or a batch of windows (``python -m benchmarks.memory`` measures it),
and recordings under half a window left out as ``too short``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from acula_edge.data import Recording
from acula_edge.device import audio
from acula_edge.device.windows import MIN_FILL, cut_windows, iter_windows, long_enough, too_short
from acula_edge.frontend import FrontendConfig, get_frontend, iter_logmel, logmel
from acula_edge.device.bundle import DEFAULT_BUNDLE
from conftest import call_main



def _write(path, seconds: float, rate: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.05 * rng.standard_normal(t.size) + 0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32), rate)
    return str(path)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    return {(rate, seconds): _write(d / f"r{rate}_{seconds}.wav", seconds, rate, i)
            for i, (rate, seconds) in enumerate([(44100, 75.3), (16000, 9.1), (8000, 0.3), (2000, 0.01)])}


def test_iter_windows_are_the_whole_recordings_windows_in_batches(recordings):
    window, hop = 16512, 8256  # the students' 4.128 s window at 4 kHz, half of it as the hop
    for path in recordings.values():
        want = cut_windows(audio.load(path, sample_rate=4000)[0], window, hop)[1]
        for batch in (1, 5, 32):
            parts = list(iter_windows(path, 4000, window, hop, batch))
            assert all(1 <= len(p) <= batch for p in parts)
            got = np.concatenate(parts)
            assert got.shape == want.shape and np.allclose(got, want, atol=1e-6), (path, batch)


def test_iter_logmel_is_the_whole_recordings_logmel(recordings):
    for cfg in (FrontendConfig(), get_frontend("ausc-4k")):
        for path in recordings.values():
            want = logmel(np.pad(x := audio.load(path, sample_rate=cfg.sample_rate)[0], (0, max(0, cfg.n_fft - x.size))),
                          cfg)
            blocks = list(iter_logmel(path, cfg, block_frames=100))
            assert all(b.shape[1] <= 100 + cfg.n_fft // cfg.hop_length for b in blocks)
            got = np.concatenate(blocks, axis=1)
            assert got.shape == want.shape and np.abs(got - want).max() < 1e-3, (path, cfg.sample_rate)


def test_too_short_is_under_half_a_window(recordings):
    assert MIN_FILL == 0.5 and too_short(99, 200) and not too_short(100, 200)
    records = [Recording(id=str(k), path=p, dataset="x", subject=str(k), modality="lung") for k, p in recordings.items()]
    kept, short = long_enough(records, 4.128)
    assert short == 2 and {r.path for r in kept} == {recordings[44100, 75.3], recordings[16000, 9.1]}


def test_the_encoders_streamed_embeddings_equal_the_whole_recordings(recordings):
    import torch

    from acula_edge.encoders import make_encoder

    records = [Recording(id=str(k), path=p, dataset="x", subject=str(k), modality="lung") for k, p in recordings.items()]
    stats = make_encoder("logmel-stats")
    got, want = stats.embed(records), []
    assert np.isfinite(got[3]).all()  # shorter than one DFT: padded to one frame (it was NaN when read whole)
    for r in records[:3]:
        m = logmel(audio.load(r.path, sample_rate=stats.fe.sample_rate)[0], stats.fe).astype(np.float64)
        d = np.diff(m, axis=1)
        want.append(np.concatenate([m.mean(1), m.std(1), np.abs(d).mean(1), d.std(1)]))
    assert np.allclose(got[:3], np.array(want), atol=1e-4)
    vit = make_encoder("random-init:vit-tiny")
    with torch.inference_mode():
        want = [vit.model.features(vit.logmel(torch.from_numpy(audio.load(r.path, sample_rate=16000)[0])[None]))[0]
                for r in records[:2]]
    assert np.allclose(vit.embed(records[:2]), torch.stack(want).numpy(), atol=1e-4)


@pytest.mark.parametrize("frames", [40, 255, 256, 300, 383, 384, 2000])
def test_pooled_chunks_equal_the_whole_clips_features(frames):
    """Encoders (min-max over the whole clip) and students (each window its own), any block and batch size."""
    import torch

    from acula_edge.models import create_encoder
    from acula_edge.models.students import WindowedStudent, create_student

    torch.manual_seed(0)
    x = torch.randn(1, 64, frames) * 10 - 40
    encoder = create_encoder("vit-tiny").eval()
    student = WindowedStudent(create_student("mn-xs", heads=("a", "b"))).eval()
    for block in (7, 100, 5000):
        def blocks():
            return iter(x[0].split(block, dim=1))

        with torch.inference_mode():
            for max_chunks in (1, 3, 64):
                assert torch.allclose(encoder.stream_features(blocks, max_chunks), encoder.features(x), atol=1e-5)
                assert torch.allclose(student.stream_features(blocks, max_chunks), student.features(x), atol=1e-5)
                assert torch.allclose(student.stream_scores(blocks, max_chunks), student.scores(x), atol=1e-5)


def test_no_cli_decodes_a_whole_recording_at_once(recordings, tmp_path, monkeypatch):
    """``audio.load`` (the whole file in memory) is not called by inspect, evaluate or verify: they stream."""
    from acula_edge.data.synth import generate

    clips = generate(tmp_path / "clips", 16, seed=5)
    rows = [(r.path, f"s{i}", i % 2) for i, r in enumerate(clips)] + [(recordings[44100, 75.3], "long", 1),
                                                                      (recordings[2000, 0.01], "tiny", 0)]
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,subject,label\n" + "".join(f"{p},{s},{y}\n" for p, s, y in rows))

    def whole(*_, **__):
        raise AssertionError("a whole recording was decoded at once")

    monkeypatch.setattr(audio, "load", whole)
    p = call_main("acula_edge.data.cli", "inspect", recordings[44100, 75.3], "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["duration_s"] == 75.3
    p = call_main("export.verify", str(DEFAULT_BUNDLE), "--data", str(manifest), "--json")
    report = json.loads(p.stdout)
    assert report["recordings"] == len(rows) - 1 and report["too_short"] == 1
    p = call_main("acula_edge.evaluate", "--encoder", "logmel-stats", "--encoder", "random-init", "--task",
                  f"csv:{manifest}:label", "--manifest", str(manifest), "--seeds", "1", "--bootstrap", "10",
                  "--out", str(tmp_path / "evaluate"))
    assert p.returncode == 0, p.stderr
    assert "1 recordings too short to score" in p.stderr
    done = json.loads((tmp_path / "evaluate" / "results.json").read_text())["results"]
    assert {r["encoder"] for r in done} == {"logmel-stats", "random-init"}
    assert all(r["recordings"] == len(rows) - 1 for r in done)
