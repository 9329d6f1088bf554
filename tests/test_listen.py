"""``python -m acula_edge.listen``: the streaming engine, the signal-quality gate, decisions, every
source (two real PortAudio capture devices among them), every backend, and the failure paths.

The bundle is the shared test bundle: an untrained ``mn-xs`` student exported to ONNX and TFLite.
Its scores carry no clinical meaning, so the event tests set the head's threshold from the student's
own offline scores: they test the decision logic on a real stream, not the model (the trained
default bundle arrives with the pipeline).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from acula_edge.device.bundle import DEFAULT_BUNDLE, load_bundle, write_bundle
from acula_edge.device.listen import Decider, Output, signal_quality
from acula_edge.device.windows import cut_windows
from capture import ALSA_NAME, PulseDaemon, alsa_file_device, pcm16
from conftest import EXPORT_HEAD as HEAD
from conftest import ROOT, onnx_model

RATE = 16000


@pytest.fixture(scope="module")
def bundle(student_ckpt, exported):
    return load_bundle(student_ckpt[0] / "bundle")


def clip(index: int) -> np.ndarray:
    """A synthetic clip (16 kHz, 5 s) of the corpus with seed 0, quantized as a device delivers it."""
    from acula_edge.data.synth import iter_clips

    for i, (_, audio) in enumerate(iter_clips(index + 1, seed=0)):
        if i == index:
            return pcm16(audio).astype(np.float32) / 32768
    raise IndexError(index)


def listen(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acula_edge.listen", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def records(stdout: str) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for line in stdout.splitlines():
        obj = json.loads(line)
        out.setdefault(obj["type"], []).append(obj)
    return out


def offline(bundle, x: np.ndarray, backend: str = "onnx", precision: str | None = None,
            hop: int | None = None) -> np.ndarray:
    """Scores ``[windows, heads]`` of the whole recording's windows (:func:`cut_windows`) run one at a time."""
    import acula_edge.listen  # noqa: F401  (the entry point registers the torch backend)
    from acula_edge.device.runtime import load_model

    m = load_model(bundle, backend, precision)
    hop = hop or int(round(bundle.meta["hop_s"] * bundle.sample_rate))
    return np.stack([m.run(w[None])["scores"][0] for w in cut_windows(x, bundle.window_samples, hop)[1]])


def streamed(objs: dict[str, list[dict]], head: str = HEAD) -> np.ndarray:
    return np.array([w["scores"][head] for w in objs["window"]])


# ------------------------------------------------------------------ engine parts (no device)


def test_signal_quality_names_silence_low_clipping_and_overload():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(RATE).astype(np.float32)
    assert signal_quality(np.zeros(RATE))["status"] == "silence"
    assert signal_quality(1e-5 * noise)["status"] == "silence"  # -100 dBFS
    assert signal_quality(2e-4 * noise)["status"] == "low"  # -74 dBFS
    assert signal_quality(0.01 * noise)["status"] == "ok"
    clipped = np.clip(0.3 * noise, -0.75, 0.75)  # an analogue stage clipping below full scale
    q = signal_quality(clipped)
    assert q["status"] == "clipping" and 0.001 < q["clipped"] < 0.05
    assert signal_quality(np.clip(3 * noise, -1, 1))["status"] == "overload"
    assert signal_quality(0.9 * np.sin(np.arange(RATE) * 0.05).astype(np.float32))["status"] == "ok"  # a loud pure tone
    assert signal_quality(clip(5))["status"] == "ok" and signal_quality(clip(0))["status"] == "ok"


def test_a_recording_shorter_than_half_a_window_is_gated_too_short_not_scored(tmp_path):
    """0.1 s would be one window of 97.6% zero padding; from half a window on it is scored, levels of its audio."""
    b = load_bundle(DEFAULT_BUNDLE)
    rng = np.random.default_rng(0)
    for seconds, status in ((0.1, "too short"), (0.45 * b.meta["window_s"], "too short"), (0.55 * b.meta["window_s"], "ok")):
        x = 0.05 * rng.standard_normal(int(seconds * b.sample_rate))  # at the bundle's rate: no resampling
        sf.write(tmp_path / "short.wav", x, b.sample_rate, subtype="PCM_16")
        r = listen("--file", str(tmp_path / "short.wav"), "--no-realtime", "--json")
        assert r.returncode == 0, r.stderr
        (w,) = records(r.stdout)["window"]
        assert w["quality"]["status"] == status and (w["scores"] is None) == (status != "ok"), (seconds, w)
        assert abs(w["quality"]["rms_db"] - 20 * np.log10(0.05)) < 1.5  # the audio's level, not the padding's
    assert "too short" in signal_quality(np.ones(100, np.float32) * 0.1, samples=10)["status"]


def test_a_sustained_finding_gives_one_event_with_hysteresis_and_refractory_period():
    d = Decider("h", threshold=0.5, smooth=1, hysteresis=0.1, refractory_s=10.0)
    probs = [0.2, 0.6, 0.7, 0.45, 0.55, 0.3, 0.9, 0.9]  # dips to 0.45 (within hysteresis), re-rises after 0.3
    fired = [d.update(float(t), p)[1] for t, p in enumerate(probs)]
    assert fired == [False, True, False, False, False, False, False, False]  # 0.9 at t=6 is inside 10 s
    d2 = Decider("h", threshold=0.5, smooth=1, hysteresis=0.1, refractory_s=2.0)
    assert [d2.update(float(t), p)[1] for t, p in enumerate(probs)].count(True) == 2
    d3 = Decider("h", threshold=0.5, smooth=3)
    assert d3.update(0, 0.9) == (0.9, True)
    assert d3.update(1, None) == (None, False) and not d3.history  # a gated window clears the smoothing
    assert d3.update(2, 0.2)[0] == pytest.approx(0.2)


def test_live_view_draws_bars_in_place_and_plain_lines_otherwise():
    w = {"type": "window", "end_s": 4.1, "quality": {"status": "ok", "rms_db": -30.0, "peak_db": -10.0, "clipped": 0.0},
         "scores": {"a": 0.8, "b": 0.1}, "smoothed": {"a": 0.8, "b": 0.1}, "latency_ms": 3.2}
    buf = io.StringIO()
    out = Output("live", ["a", "b"], {"a": 0.5, "b": 0.5}, buf)
    out.emit(w)
    out.emit({"type": "event", "head": "a", "time_s": 4.1, "score": 0.8, "threshold": 0.5})
    out.emit(w)
    text = buf.getvalue()
    assert "\x1b[3F\x1b[J" in text and "ALERT" in text and "#" * 24 in text and "EVENT a" in text
    buf = io.StringIO()
    Output("plain", ["a", "b"], {"a": 0.5, "b": 0.5}, buf).emit(w)
    assert "\x1b" not in buf.getvalue() and "a 0.800*" in buf.getvalue() and "b 0.100 " in buf.getvalue()


# ------------------------------------------------------------------ files, backends, device purity


def without(*modules: str) -> str:
    """``python -c`` code that runs ``listen`` where torch and ``modules`` cannot be imported (the
    device-side install, or a device without one of the runtimes)."""
    return ("import sys, runpy\nclass Missing:\n    def find_spec(self, name, path=None, target=None):\n"
            f"        if name.split('.')[0] in {('torch', *modules)!r}:\n"
            "            raise ImportError(name + ' is not installed here')\n"
            "sys.meta_path.insert(0, Missing())\nsys.argv = ['listen', *sys.argv[1:]]\n"
            "runpy.run_module('acula_edge.listen', run_name='__main__')\n")


def test_file_json_matches_offline_scores_in_an_environment_without_torch(bundle, tmp_path):
    from acula_edge.device.audio import resample

    x8 = resample(np.concatenate([clip(5), clip(0)]), RATE, 8000)  # an 8 kHz recording, as SPRSound's
    sf.write(tmp_path / "rec.wav", x8, 8000, subtype="FLOAT")
    x = resample(x8, 8000, RATE)  # what the stream's resampler must produce on the way in
    block = without()
    r = subprocess.run([sys.executable, "-c", block, "--file", str(tmp_path / "rec.wav"), "--bundle", str(bundle.path),
                        "--json", "--no-realtime"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    objs = records(r.stdout)
    # the bundle's default precision: the file its exporter measured faster
    assert len(objs["window"]) == 3 and objs["start"][0]["model"] == f"model_{bundle.default_precision('onnx')}.onnx"
    for w in objs["window"]:
        assert w["quality"]["status"] == "ok" and w["latency_ms"] > 0 and set(w["scores"]) == {HEAD}
    np.testing.assert_allclose(streamed(objs), offline(bundle, x)[:, 0], atol=1e-5)
    s = objs["summary"][0]
    assert s["windows"] == 3 and s["latency_ms"]["p95"] is not None and s["real_time_factor"] > 0
    # the torch backend says in one line that torch is missing
    r = subprocess.run([sys.executable, "-c", block, "--file", str(tmp_path / "rec.wav"), "--bundle", str(bundle.path),
                        "--backend", "torch"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: the torch backend needs torch: pip install 'acula-edge[train]' (or use --backend onnx)"]


@pytest.mark.parametrize("backend,precision", [("onnx", "fp32"), ("tflite", "fp32"), ("tflite", "int8"),
                                               ("torch", "fp32")])
def test_every_backend_streams_its_own_offline_scores(bundle, backend, precision, tmp_path):
    x = clip(5)
    sf.write(tmp_path / "rec.wav", x, RATE, subtype="PCM_16")
    r = listen("--file", str(tmp_path / "rec.wav"), "--bundle", str(bundle.path), "--json", "--no-realtime",
               "--backend", backend, "--precision", precision, "--hop", "0.5", "--threads", "2")
    assert r.returncode == 0, r.stderr
    objs = records(r.stdout)
    assert objs["start"][0]["backend"] == backend and objs["start"][0]["precision"] == precision
    hop = int(0.5 * RATE)
    np.testing.assert_allclose(streamed(objs), offline(bundle, x, backend, precision, hop)[:, 0], atol=1e-5)
    if precision == "fp32" and backend != "onnx":  # fp32 files agree with each other too
        np.testing.assert_allclose(streamed(objs), offline(bundle, x, "onnx", "fp32", hop)[:, 0], atol=1e-4)


def test_gated_windows_get_their_quality_and_no_score(bundle, tmp_path):
    rng = np.random.default_rng(1)
    w = bundle.window_samples
    parts = [np.zeros(w), 2e-4 * rng.standard_normal(w), np.clip(0.3 * rng.standard_normal(w), -0.75, 0.75),
             np.clip(3 * rng.standard_normal(w), -1, 1), clip(5)[:w]]
    sf.write(tmp_path / "mix.wav", np.concatenate(parts).astype(np.float32), RATE, subtype="FLOAT")
    r = listen("--file", str(tmp_path / "mix.wav"), "--bundle", str(bundle.path), "--json", "--no-realtime",
               "--hop", str(bundle.meta["window_s"]))
    assert r.returncode == 0, r.stderr
    objs = records(r.stdout)
    assert [o["quality"]["status"] for o in objs["window"]] == ["silence", "low", "clipping", "overload", "ok"]
    assert [o["scores"] is None for o in objs["window"]] == [True] * 4 + [False]
    assert objs["summary"][0]["gated"] == {"silence": 1, "low": 1, "clipping": 1, "overload": 1}


def test_prompts_the_bundle_carries_become_zero_shot_heads(bundle, tmp_path):
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2, bundle.meta["outputs"]["embedding"]["shape"][1])).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    texts = ["normal lung sounds", "wheezes heard"]
    files = {n: bundle.path / n for n in bundle.meta["files"]}
    buf = io.BytesIO()
    np.save(buf, vectors)
    files["prompts.npy"] = buf.getvalue()
    meta = {**bundle.meta, "prompts": {"texts": texts, "file": "prompts.npy"}}
    b = write_bundle(tmp_path / "with-prompts", meta, files)
    sf.write(tmp_path / "rec.wav", clip(5), RATE, subtype="PCM_16")
    base = ["--file", str(tmp_path / "rec.wav"), "--bundle", str(b.path), "--json", "--no-realtime"]
    r = listen(*base, "--prompt", "wheezes heard")  # one answer: the bundle's other prompt is the alternative
    assert r.returncode == 0, r.stderr
    for w in records(r.stdout)["window"]:
        p = [w["scores"][f"prompt:{t}"] for t in texts]
        assert sum(p) == pytest.approx(1.0, abs=1e-4) and 0 < p[1] < 1
    r = listen(*base, "--prompt", "crackles heard", "--prompt", "normal")  # new texts need the aligned checkpoint
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "text projection" in r.stderr


def test_demo_stream_announces_its_clips(bundle):
    r = listen("--demo", "--bundle", str(bundle.path), "--json", "--no-realtime", "--duration", "12")
    assert r.returncode == 0, r.stderr
    objs = records(r.stdout)
    assert objs["note"][0]["text"].startswith("demo clip syn-0001_00 from 0.0 s: heart")
    assert len(objs["window"]) == 4 and objs["summary"][0]["audio_s"] == pytest.approx(12.0)


# ------------------------------------------------------------------ failure behaviour


def one_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    return lines[0]


def test_bad_input_is_one_line(bundle, tmp_path):
    sf.write(tmp_path / "rec.wav", clip(5), RATE, subtype="PCM_16")
    rec = str(tmp_path / "rec.wav")
    tampered = tmp_path / "tampered"
    write_bundle(tampered, bundle.meta, {n: bundle.path / n for n in bundle.meta["files"]})
    with open(tampered / "model_int8.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01")
    (tmp_path / "noise.wav").write_bytes(b"RIFF....WAVEjunk")
    cases = [
        (["--file", rec, "--bundle", str(tampered)], "sha256"),
        (["--file", rec, "--bundle", str(tmp_path)], "not a bundle"),
        (["--file", str(tmp_path / "none.wav"), "--bundle", str(bundle.path)], "no such file"),
        (["--file", str(tmp_path), "--bundle", str(bundle.path)], "is a folder, not an audio file"),
        (["--file", str(tmp_path / "noise.wav"), "--bundle", str(bundle.path)], "noise.wav"),
        (["--bundle", str(bundle.path)], "choose one source"),
        (["--file", rec, "--bundle", str(bundle.path), "--threshold", "nohead=0.3"], "--threshold"),
        (["--file", rec, "--bundle", str(bundle.path), "--head", "nohead"], "--head nohead: the bundle's heads are"),
        (["--file", rec, "--bundle", str(bundle.path), "--backend", "coreml"], "unknown backend"),
        (["--file", rec, "--bundle", str(bundle.path), "--record", str(rec)], "exists"),
        (["--file", rec, "--bundle", str(bundle.path), "--backend", "torch", "--checkpoint", rec], "sha256 differs"),
        (["--file", rec, "--bundle", str(bundle.path), "--backend", "torch", "--checkpoint", str(tmp_path / "x")],
         "the torch backend needs the bundle's source checkpoint"),
    ]
    for args, expected in cases:
        r = listen(*args)
        assert r.returncode == 2 and expected in one_line(r), (args, r.stderr)


def test_a_model_file_other_than_the_one_bundle_json_describes_is_one_line(tmp_path):
    """A model swapped into a bundle with its sha256 updated (the checksum passes) is refused at load
    when its tensors are not the declared ones: it never scores under the wrong head names."""
    from acula_edge.device.bundle import EXAMPLE_RECORDING, default_bundle

    b = load_bundle(default_bundle())
    w, d, h = b.window_samples, int(b.meta["outputs"]["embedding"]["shape"][-1]), len(b.heads)
    cases = {"more scores": ({"embedding": d, "scores": h + 1}, w, f"scores[{h + 1}]"),
             "fewer scores": ({"embedding": d, "scores": h - 1}, w, f"scores[{h - 1}]"),
             "no scores": ({"embedding": d}, w, f"its outputs are embedding[{d}], bundle.json has"),
             "another window": ({"embedding": d, "scores": h}, w // 2, f"its input is waveform[{w // 2}]")}
    for case, (dims, window, expected) in cases.items():
        out = tmp_path / case.replace(" ", "-")
        write_bundle(out, b.meta, {**{n: b.path / n for n in b.meta["files"]}, "model_fp32.onnx": onnx_model(window, dims)})
        r = listen("--file", str(EXAMPLE_RECORDING), "--bundle", str(out), "--precision", "fp32", "--no-realtime")
        line = one_line(r)
        assert r.returncode == 2 and "model_fp32.onnx: not the model bundle.json describes" in line and expected in line, (case, line)
    r = listen("--file", str(EXAMPLE_RECORDING), "--bundle", str(out), "--precision", "int8", "--no-realtime", "--plain")
    assert r.returncode == 0, r.stderr  # the bundle's other files still run


def test_the_default_bundle_checks_itself_and_a_swapped_file_fails_in_one_line(tmp_path):
    """listen --self-test runs every file on the bundle's reference windows with numpy and a runtime
    (the device side); a file swapped for another with the same tensors and its sha256 updated fails,
    and so does one with other tensors; export verify away from the checkpoint runs the same check."""
    from acula_edge.device.bundle import default_bundle

    r = subprocess.run([sys.executable, "-c", without(), "--self-test"], capture_output=True, text=True, cwd=ROOT,
                       timeout=300)  # the device-side install: no torch
    assert r.returncode == 0 and "self-test passed: 4 of 4 files" in r.stdout, r.stdout + r.stderr
    assert [line.split()[:2] for line in r.stdout.splitlines()[1:5]] == [
        [n, "ok"] for n in ("model_fp32.onnx", "model_int8.onnx", "model_fp32.tflite", "model_int8.tflite")]
    r = subprocess.run([sys.executable, "-c", without("ai_edge_litert", "tflite_runtime"), "--self-test"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)  # a device with onnxruntime alone
    assert r.returncode == 0 and "self-test passed: 2 of 4 files (2 skipped: no runtime here)" in r.stdout, r.stdout
    assert r.stdout.count("skipped no tflite runtime here") == 2
    b = load_bundle(default_bundle())
    w, d, h = b.window_samples, int(b.meta["outputs"]["embedding"]["shape"][-1]), len(b.heads)
    dims = {k: int(v["shape"][-1]) for k, v in b.meta["outputs"].items()}  # the same last dimensions
    files = {n: b.path / n for n in b.meta["files"]}
    elsewhere = {**b.meta, "provenance": {**b.meta["provenance"], "checkpoint": str(tmp_path / "elsewhere.safetensors")}}
    write_bundle(tmp_path / "swapped", elsewhere, {**files, "model_int8.onnx": onnx_model(w, dims)})
    write_bundle(tmp_path / "mismatched", b.meta, {**files, "model_fp32.onnx": onnx_model(w, {**dims, "scores": h + 1})})
    for case, name, reason in (("swapped", "model_int8.onnx", "embedding differs by"),
                               ("mismatched", "model_fp32.onnx", f"its outputs are embedding[{d}] and events[2] and "
                                                                 f"modality[2] and scores[{h + 1}]")):
        r = listen("--self-test", "--bundle", str(tmp_path / case))
        assert r.returncode == 1 and one_line(r) == f"error: self-test failed: {name}", (case, r.stderr)
        failed = [line for line in r.stdout.splitlines() if " FAIL " in line]
        assert len(failed) == 1 and failed[0].startswith(name) and reason in failed[0], (case, r.stdout)
    r = subprocess.run([sys.executable, "-m", "export", "verify", str(tmp_path / "swapped")], capture_output=True,
                       text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 1 and "its source checkpoint is not on this machine" in r.stdout, r.stdout + r.stderr
    fails = [line for line in r.stderr.splitlines() if line.startswith("FAIL")]
    assert "FAIL model_int8.onnx: self-test: embedding differs by" in fails[-1], r.stderr
    assert all(line.startswith("FAIL model_int8.onnx: ") for line in fails), r.stderr  # its decisions differ too
    plain = {k: v for k, v in b.meta.items() if k != "self_test"}
    write_bundle(tmp_path / "older", plain, {n: p for n, p in files.items() if n != "selftest.npz"})
    r = listen("--self-test", "--bundle", str(tmp_path / "older"))
    assert r.returncode == 2 and "carries no self-test" in one_line(r) and "export add-self-test" in one_line(r)


def test_a_signed_bundle_is_refused_by_a_device_once_changed_or_signed_by_another_key(tmp_path):
    """export keygen / sign and listen --trusted-key (Ed25519, pyca cryptography): the signature covers
    bundle.json and so every file's sha256; a changed bundle with its checksums updated is refused."""
    from acula_edge.device.bundle import EXAMPLE_RECORDING, default_bundle

    b = load_bundle(default_bundle())
    files = {n: b.path / n for n in b.meta["files"]}
    write_bundle(tmp_path / "b", b.meta, files)
    for who in ("maker", "stranger"):
        r = subprocess.run([sys.executable, "-m", "export", "keygen", "--out", str(tmp_path / who)], capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "maker.pem").stat().st_mode & 0o077 == 0  # the private key is its owner's alone
    unsigned = listen("--self-test", "--bundle", str(tmp_path / "b"), "--trusted-key", str(tmp_path / "maker.pub.pem"))
    assert unsigned.returncode == 2 and "not signed" in one_line(unsigned)
    r = subprocess.run([sys.executable, "-m", "export", "sign", str(tmp_path / "b"), "--key", str(tmp_path / "maker.pem")],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and (tmp_path / "b" / "bundle.sig").stat().st_size == 64, r.stderr
    ok = listen("--self-test", "--bundle", str(tmp_path / "b"), "--trusted-key", str(tmp_path / "maker.pub.pem"))
    assert ok.returncode == 0 and "self-test passed" in ok.stdout, ok.stderr
    played = listen("--file", str(EXAMPLE_RECORDING), "--bundle", str(tmp_path / "b"), "--trusted-key",
                    str(tmp_path / "maker.pub.pem"), "--no-realtime", "--plain", "--duration", "5")
    assert played.returncode == 0, played.stderr
    stranger = listen("--self-test", "--bundle", str(tmp_path / "b"), "--trusted-key", str(tmp_path / "stranger.pub.pem"))
    assert stranger.returncode == 2 and "does not match --trusted-key" in one_line(stranger)
    # a threshold lowered after signing, the checksums still right: the bundle loads, but not as trusted
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    meta["heads"][0]["threshold"] = 0.01
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(meta, indent=2))
    assert load_bundle(tmp_path / "b").heads[0]["threshold"] == 0.01
    changed = listen("--self-test", "--bundle", str(tmp_path / "b"), "--trusted-key", str(tmp_path / "maker.pub.pem"))
    assert changed.returncode == 2 and "changed after signing" in one_line(changed)
    for key, message in ((tmp_path / "maker.pem", "not a PEM public key"), (tmp_path / "none.pem", "trusted key")):
        r = listen("--self-test", "--bundle", str(tmp_path / "b"), "--trusted-key", str(key))
        assert r.returncode == 2 and message in one_line(r), r.stderr
    r = subprocess.run([sys.executable, "-m", "export", "keygen", "--out", str(tmp_path / "maker")], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and "exists" in one_line(r)  # a key is never overwritten


def test_no_microphone_and_no_portaudio_are_one_line(bundle):
    # no device: PortAudio sees no card here (and no sound server at this address)
    env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent/native"}
    r = listen("--mic", "--bundle", str(bundle.path), env=env)
    assert r.returncode == 2 and one_line(r) == "error: no audio input device found: connect a microphone (see --list-devices)"
    # PortAudio missing: the library cannot be uninstalled for one test, so its import error is raised
    # the way sounddevice raises it when libportaudio is absent (a simulation, said so here)
    block = ("import sys, runpy\nclass NoPortAudio:\n    def find_spec(self, name, path=None, target=None):\n"
             "        if name == 'sounddevice':\n            raise OSError('PortAudio library not found')\n"
             "sys.meta_path.insert(0, NoPortAudio())\nsys.argv = ['listen', *sys.argv[1:]]\n"
             "runpy.run_module('acula_edge.listen', run_name='__main__')\n")
    r = subprocess.run([sys.executable, "-c", block, "--mic", "--bundle", str(bundle.path)], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 2 and "needs the PortAudio library" in one_line(r)


def test_ctrl_c_ends_with_the_summary(bundle, tmp_path):
    sf.write(tmp_path / "rec.wav", np.tile(clip(5), 4), RATE, subtype="PCM_16")
    # Ctrl-C's handler set explicitly: a shell's background job (and its children) would ignore SIGINT
    start = ("import runpy, signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
             "sys.argv = ['listen', *sys.argv[1:]]\nrunpy.run_module('acula_edge.listen', run_name='__main__')\n")
    p = subprocess.Popen([sys.executable, "-c", start, "--file", str(tmp_path / "rec.wav"), "--bundle",
                          str(bundle.path), "--json", "--hop", "0.5"], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    lines = []
    while sum('"window"' in line for line in lines) < 2:  # audio is flowing at real time
        lines.append(p.stdout.readline())
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130 and err.strip().splitlines() == ["stopped (interrupted)"]
    objs = records("".join(lines) + out)
    s = objs["summary"][0]
    assert s["windows"] >= 2 and 4.0 < s["audio_s"] < 15 and s["latency_ms"]["p50"] is not None


# ------------------------------------------------------------------ real capture devices


def test_alsa_capture_streams_bit_exact_windows_and_records_them(bundle, tmp_path):
    x = np.concatenate([clip(5), clip(0), clip(3)])
    env = alsa_file_device(tmp_path, x)
    r = listen("--list-devices", env=env)
    assert r.returncode == 0 and ALSA_NAME in r.stdout
    seconds = x.size / RATE
    r = listen("--mic", "--device", ALSA_NAME, "--samplerate", str(RATE), "--duration", str(seconds), "--bundle",
               str(bundle.path), "--json", "--record", str(tmp_path / "kept.wav"), env=env)
    assert r.returncode == 0, r.stderr
    objs = records(r.stdout)
    expected = offline(bundle, x)[:, 0]
    assert np.ptp(expected) > 1e-3  # the windows' scores differ, so matching them means something
    np.testing.assert_allclose(streamed(objs), expected, atol=1e-5)
    kept, rate = sf.read(tmp_path / "kept.wav", dtype="float32")
    assert rate == RATE and np.array_equal(kept, x)  # bit for bit what the device delivered


def test_alsa_capture_a_positive_raises_one_event_and_silence_none(bundle, tmp_path):
    positive = np.concatenate([clip(5), clip(5)])  # a lung clip with adventitious sounds, 10 s
    scores = offline(bundle, positive, hop=RATE)
    threshold = float(scores[:, 0].min()) - 0.01  # the untrained student's own scores set the operating point
    quiet = np.zeros(6 * RATE, np.float32)
    stream = np.concatenate([quiet, positive, quiet, positive, quiet])
    base = ["--mic", "--device", ALSA_NAME, "--samplerate", str(RATE), "--bundle", str(bundle.path), "--json",
            "--hop", "1", "--threshold", f"{HEAD}={threshold:.4f}"]
    env = alsa_file_device(tmp_path, stream)
    r = listen(*base, "--duration", str(stream.size / RATE), "--refractory", "60", env=env)
    assert r.returncode == 0, r.stderr
    objs = records(r.stdout)
    events = objs.get("event", [])
    assert len(events) == 1 and events[0]["head"] == HEAD and 6 < events[0]["time_s"] <= 6 + 10 + 1
    statuses = {w["quality"]["status"] for w in objs["window"]}
    assert statuses == {"ok", "silence"}
    r = listen(*base, "--duration", str(stream.size / RATE), "--refractory", "5", env=env)
    assert len(records(r.stdout)["event"]) == 2  # two findings far apart: two events
    silent_dir = tmp_path / "silent"
    silent_dir.mkdir()
    env = alsa_file_device(silent_dir, np.zeros(20 * RATE, np.float32))
    r = listen(*base, "--duration", "20", env=env)
    objs = records(r.stdout)
    assert r.returncode == 0 and "event" not in objs
    assert {w["quality"]["status"] for w in objs["window"]} == {"silence"} and objs["summary"][0]["scored"] == 0


@pytest.fixture
def pulse(tmp_path):
    d = PulseDaemon(tmp_path)
    yield d
    d.stop()


def test_pulse_real_time_capture_for_12_s_drops_nothing(bundle, pulse):
    x = np.concatenate([clip(i) for i in range(4)])  # 20 s of audio fed at real time
    feeder = pulse.feed(x)
    t0 = time.monotonic()
    r = listen("--mic", "--device", "pulse", "--duration", "12", "--bundle", str(bundle.path), "--json",
               env=pulse.env, timeout=90)
    wall = time.monotonic() - t0
    pulse.stop_feeding()
    feeder.join(timeout=5)
    assert r.returncode == 0, r.stderr
    objs = records(r.stdout)
    s = objs["summary"][0]
    assert s["input_overflows"] == 0 and s["dropped_blocks"] == 0
    assert s["audio_s"] == pytest.approx(12.0, abs=0.05) and 11.0 < s["wall_s"] < 22 and wall >= 11.0
    assert s["windows"] == len(objs["window"]) >= 4 and s["scored"] >= 1
    lat = s["latency_ms"]
    assert 0 < lat["p50"] <= lat["p95"] <= lat["max"] and 0 < s["real_time_factor"] < 1 and s["cpu_percent"] > 0


def test_a_device_that_vanishes_mid_stream_ends_with_one_line_and_the_summary(bundle, pulse):
    feeder = pulse.feed(np.tile(clip(5), 6))
    p = subprocess.Popen([sys.executable, "-m", "acula_edge.listen", "--mic", "--device", "pulse", "--bundle",
                          str(bundle.path), "--json"], cwd=ROOT, env=pulse.env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    first = [p.stdout.readline(), p.stdout.readline()]  # start and the first window: audio is flowing
    pulse.stop()  # the sound server, and with it the device, goes away
    out, err = p.communicate(timeout=30)
    feeder.join(timeout=5)
    assert p.returncode == 1 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: microphone 'pulse'") and "disconnected" in lines[0]
    objs = records("".join(first) + out)
    assert objs["summary"][0]["windows"] >= 1


def test_modality_scores_only_the_heads_that_screen_it():
    """The default bundle's heads screen lung (SPRSound) and heart (PhysioNet 2016) recordings."""
    example = str(ROOT / "acula_edge" / "examples" / "example_lung.flac")
    assert {h["name"]: h["modality"] for h in load_bundle(DEFAULT_BUNDLE).heads} == {
        "sprsound-adventitious": "lung", "physionet2016-abnormal": "heart"}
    for modality, head in (("lung", "sprsound-adventitious"), ("heart", "physionet2016-abnormal")):
        r = listen("--file", example, "--no-realtime", "--json", "--modality", modality)
        assert r.returncode == 0, r.stderr
        objs = records(r.stdout)
        assert objs["start"][0]["modality"] == modality and list(objs["start"][0]["thresholds"]) == [head]
        scored = [w for w in objs["window"] if w["scores"]]
        assert scored and all(w["modality"] == modality and list(w["scores"]) == [head] for w in scored)
        assert {e["head"] for e in objs.get("event", [])} <= {head}
    r = listen("--file", example, "--no-realtime", "--json")  # not said: the bundle's modality head routes it
    assert {(w["modality"], k) for w in records(r.stdout)["window"] if w["scores"] for k in w["scores"]} == {
        ("lung", "sprsound-adventitious")}
    assert "no head of this bundle screens cough recordings (they screen heart, lung)" in one_line(
        listen("--file", example, "--modality", "cough"))
    assert "--head physionet2016-abnormal does not screen lung recordings" in one_line(
        listen("--file", example, "--modality", "lung", "--head", "physionet2016-abnormal"))


def test_a_modality_head_routes_each_window_and_events_become_spans(distilled_bundles, tmp_path):
    """The distilled test student has a modality head (the synthetic corpus's four modalities) and
    wheeze and crackle outputs: each window is scored only by the heads that screen where it was
    routed, an unsure window by none, and findings are spans inside the stream."""
    b = load_bundle(distilled_bundles / "ort")
    screens = {h["name"]: h["modality"] for h in b.heads}
    assert set(screens.values()) == {"lung", "heart"} and b.modalities == ["breath", "cough", "heart", "lung"]
    x = np.concatenate([clip(i) for i in range(8)])
    path = tmp_path / "mixed.wav"
    sf.write(path, x, RATE, subtype="PCM_16")
    r = listen("--file", str(path), "--no-realtime", "--json", "--bundle", str(b.path))
    assert r.returncode == 0, r.stderr
    objs = records(r.stdout)
    assert objs["start"][0]["routing"] == "auto" and objs["start"][0]["event_kinds"] == ["wheeze", "crackle"]
    least = b.meta["outputs"]["modality"]["min_confidence"]
    scored = [w for w in objs["window"] if w["scores"] is not None]
    assert scored
    for w in scored:
        assert w["routing"] == "auto" and 0 <= w["modality_confidence"] <= 1
        if w["modality"] == "unknown":
            assert w["scores"] == {} and w["modality_confidence"] < least
        else:
            assert w["modality_confidence"] >= least
            assert set(w["scores"]) == {h for h, m in screens.items() if m == w["modality"]}
    s = objs["summary"][0]
    assert sum(s["routed"].values()) == s["scored"] and s["findings"] == len(objs.get("finding", []))
    for f in objs.get("finding", []):
        assert f["kind"] in ("wheeze", "crackle") and 0 <= f["start"] < f["end"] <= x.size / RATE + 0.5
        assert f["end"] - f["start"] >= b.events["min_s"] - 1e-6 and b.events["on"] <= f["peak"] <= 1
    forced = records(listen("--file", str(path), "--no-realtime", "--json", "--bundle", str(b.path),
                            "--modality", "heart").stdout)
    ok = [w for w in forced["window"] if w["scores"] is not None]
    assert all(w["modality"] == "heart" and w["routing"] == "forced" and list(w["scores"]) == ["synthetic-abnormal-heart"]
               for w in ok)
    assert "finding" not in forced  # events are lung findings: a heart recording gets none
    plain = listen("--file", str(path), "--no-realtime", "--plain", "--bundle", str(b.path), "--no-events")
    assert plain.returncode == 0 and "FINDING" not in plain.stdout
    assert any(f" {m} (" in plain.stdout for m in ("lung", "heart", "cough", "breath", "unknown"))


#: a SPRSound recording (the publisher's test folder) of a child in the default bundle's test split,
#: never trained on, with three wheezes annotated in its first 2.6 s; chosen among the test split's
#: wheezing recordings as one whose finding matches (the accuracy over all of them is in
#: benchmarks/results/events.md): this test checks the streaming path, not the model
WHEEZE_RECORDING = "65114720_0.9_0_p1_3737"


def test_a_wheeze_streamed_through_a_capture_device_is_found_where_it_was_annotated(tmp_path):
    """The default bundle on a real recording played through a capture device (ALSA, bit-exact, at the
    recording's own 8 kHz): every window is routed to lung, so no heart head scores it; the wheezes
    are one wheeze-like finding that starts within 0.5 s of the first and agrees with the annotation
    at the event benchmark's 0.5 s resolution; and the capture finds what the file does."""
    from acula_edge.data.events import kind_spans
    from acula_edge.datasets.sprsound import load_sprsound
    from acula_edge.metrics import segment_counts, segment_f1
    from conftest import shared

    root = shared("sprsound")
    rec = next(r for r in load_sprsound(root) if r.id.endswith(WHEEZE_RECORDING))
    x, rate = sf.read(rec.path, dtype="float32")
    annotated = kind_spans(rec, "wheeze")
    assert rate == 8000 and len(annotated) == 3
    env = alsa_file_device(tmp_path, x, rate=rate)
    r = listen("--mic", "--device", ALSA_NAME, "--samplerate", str(rate), "--duration", str(x.size / rate), "--json",
               env=env)
    assert r.returncode == 0, r.stderr
    objs = records(r.stdout)
    ok = [w for w in objs["window"] if w["quality"]["status"] == "ok"]
    assert ok and all(w["modality"] == "lung" and w["routing"] == "auto" and list(w["scores"]) == ["sprsound-adventitious"]
                      for w in ok)
    wheezes = [(f["start"], f["end"]) for f in objs.get("finding", []) if f["kind"] == "wheeze"]
    assert len(wheezes) == 1, objs.get("finding")
    assert abs(wheezes[0][0] - annotated[0][0]) <= 0.5
    counts = segment_counts(annotated, wheezes, x.size / rate)
    assert segment_f1(np.array(counts)) >= 0.75, (counts, wheezes, annotated)
    # the file played through listen --file finds the same spans: the capture device changes nothing
    offline = records(listen("--file", rec.path, "--no-realtime", "--json").stdout)
    assert offline.get("finding") == objs.get("finding")
