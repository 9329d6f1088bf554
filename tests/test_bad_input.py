"""Every user-facing CLI over a corpus of bad input generated here: a clear ``error:`` line and a non-zero
exit, or a correct result, and never a traceback.

The CLIs run in this process (:func:`conftest.call_main`): an exception that escapes their guard fails
the test with its traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acula_edge.device.bundle import DEFAULT_BUNDLE
from conftest import call_main

RATE = 8000


def _tone(seconds: float, channels: int = 1, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    x = 0.1 * np.sin(2 * np.pi * 180 * t) + 0.02 * np.random.default_rng(0).standard_normal(t.size)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def _wav_header(rate: int, frames: int) -> bytes:
    """A PCM16 mono WAV header declaring ``rate`` and ``frames``."""
    data = frames * 2
    return (b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", data))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[str, bool]]:
    """Name -> (path, whether a CLI should accept it)."""
    d = tmp_path_factory.mktemp("corpus")
    out: dict[str, tuple[str, bool]] = {}

    def wav(name: str, x: np.ndarray, ok: bool, rate: int = RATE, subtype: str = "PCM_16") -> None:
        sf.write(d / name, x, rate, subtype=subtype)
        out[name.split(".")[0]] = (str(d / name), ok)

    wav("good.wav", _tone(12), True)
    wav("pcm24.wav", _tone(12), True, subtype="PCM_24")
    wav("eight_channels.wav", _tone(12, channels=8), True)
    wav("short.wav", _tone(0.1), True)  # gated "too short", not scored
    wav("long.wav", _tone(600), True)  # ten minutes
    nan = _tone(12)
    nan[4000:4100] = np.nan
    wav("nan.wav", nan, False, subtype="FLOAT")
    raw = (d / "good.wav").read_bytes()
    (d / "truncated.wav").write_bytes(raw[: len(raw) // 2])
    (d / "empty.wav").write_bytes(b"")
    (d / "not_audio.wav").write_bytes(np.random.default_rng(1).integers(0, 256, 5000, np.uint8).tobytes())
    (d / "text.wav").write_text("path,subject\nthis is not audio\n")
    (d / "zero_hz.wav").write_bytes(_wav_header(0, 8000) + b"\0" * 16000)
    (d / "one_mhz.wav").write_bytes(_wav_header(1_000_000, 80000) + b"\0" * 160000)
    (d / "clip.webm").write_bytes(b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01" + b"\0" * 4000)  # EBML: WebM/Matroska
    (d / "folder.wav").mkdir()
    os.symlink(d / "loop_b.wav", d / "loop_a.wav")
    os.symlink(d / "loop_a.wav", d / "loop_b.wav")
    odd = os.fsdecode(bytes(d) + b"/caf\xe9_\xff.wav")  # not UTF-8 (Latin-1 and a stray byte)
    shutil.copy(d / "good.wav", odd)
    out["non_utf8_name"] = (odd, True)
    for name in ("truncated", "empty", "not_audio", "text", "zero_hz", "one_mhz"):
        out[name] = (str(d / f"{name}.wav"), False)
    out["webm"] = (str(d / "clip.webm"), False)
    out["folder"] = (str(d / "folder.wav"), False)
    out["symlink_loop"] = (str(d / "loop_a.wav"), False)
    out["missing"] = (str(d / "missing.wav"), False)
    return out


def _clean(p, ok: bool | None, what: str) -> None:
    """No traceback; a failure is one last ``error:`` line and exit status 2 (``ok`` None: either), or
    exit status 1 with ``export verify``'s ``FAIL`` verdict (a result: the files disagree on these recordings)."""
    text = p.stdout + p.stderr
    assert "Traceback" not in text, (what, text[-2000:])
    if p.returncode == 1 and what.startswith("verify"):
        assert "FAIL" in text, (what, text[-2000:])
    elif p.returncode:
        last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
        assert p.returncode == 2 and last.startswith("error: "), (what, p.returncode, p.stderr[-2000:])
        assert sum(line.startswith("error:") for line in p.stderr.splitlines()) == 1, (what, p.stderr)
    if ok is not None:
        assert (p.returncode == 0) == ok, (what, p.returncode, p.stderr[-2000:])


def test_audio_corpus_through_listen_and_inspect(corpus):
    for name, (path, ok) in corpus.items():
        p = call_main("acula_edge.data.cli", "inspect", path)
        _clean(p, ok, f"inspect {name}")
        if name == "symlink_loop":
            assert "a symbolic link to nothing (broken, or a loop)" in p.stderr
        p = call_main("acula_edge.listen", "--file", path, "--no-realtime", "--json")
        _clean(p, ok, f"listen {name}")
        if ok:
            lines = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
            windows = [x for x in lines if x["type"] == "window"]
            assert windows, (name, p.stdout[-500:])
            if name == "short":
                assert [w["quality"]["status"] for w in windows] == ["too short"] and not windows[0].get("scores")


def _manifests(d: Path, corpus: dict[str, tuple[str, bool]]) -> dict[str, tuple[str, bool]]:
    """Name -> (manifest, whether the CLIs should accept it): broken files and manifests that point at bad audio."""
    rows = []
    for i in range(8):
        shutil.copy(corpus["good"][0], d / f"rec{i}.wav")
        rows.append((str(d / f"rec{i}.wav"), f"s{i}", i % 2))

    def csv(name: str, text: str, ok: bool) -> None:
        (d / f"{name}.csv").write_text(text)
        out[name] = (str(d / f"{name}.csv"), ok)

    out: dict[str, tuple[str, bool]] = {}
    csv("ok", "path,subject,label\n" + "".join(f"{p},{s},{y}\n" for p, s, y in rows), True)
    csv("header_only", "path,subject,label\n", False)
    csv("duplicate_rows", "path,subject,label\n" + "".join(f"{p},{s},{y}\n" for p, s, y in rows + rows[:1]), False)
    csv("no_path_column", "file,subject,label\n" + "".join(f"{p},{s},{y}\n" for p, s, y in rows), False)
    csv("maybe_label", "path,subject,label\n" + "".join(f"{p},{s},{'maybe' if s == 's3' else y}\n"
                                                         for p, s, y in rows), False)
    csv("missing_file", "path,subject,label\n" + "".join(f"{p if s != 's2' else corpus['missing'][0]},{s},{y}\n"
                                                          for p, s, y in rows), False)
    csv("empty_path", "path,subject,label\n" + "".join(f"{p if s != 's2' else ''},{s},{y}\n" for p, s, y in rows), False)
    (d / "latin1.csv").write_bytes("path,subject,label\n".encode() + "".join(
        f"{p},s\xe9{i},{y}\n" for i, (p, _, y) in enumerate(rows)).encode("latin-1"))
    out["latin1"] = (str(d / "latin1.csv"), False)
    (d / "garbage.jsonl").write_text('{"id": "a", "path": \n not json at all\n')
    out["garbage_jsonl"] = (str(d / "garbage.jsonl"), False)
    (d / "empty.jsonl").write_text("")
    out["empty_jsonl"] = (str(d / "empty.jsonl"), False)
    (d / "list.jsonl").write_text("[1, 2, 3]\n")
    out["not_objects_jsonl"] = (str(d / "list.jsonl"), False)
    for bad in ("truncated", "nan", "not_audio", "zero_hz", "webm", "symlink_loop"):
        csv(f"with_{bad}", "path,subject,label\n" + "".join(
            f"{corpus[bad][0] if s == 's1' else p},{s},{y}\n" for p, s, y in rows), False)
    return out


def test_bad_manifests_through_every_cli_that_reads_one(corpus, tmp_path):
    """reports, data summarize and split, evaluate, export verify and align (on the broken files)."""
    for name, (m, ok) in _manifests(tmp_path, corpus).items():
        # reports read metadata, not audio: a manifest naming a bad (but existing) recording may pass
        _clean(call_main("acula_edge.reports.cli", "--manifest", m, "--out", str(tmp_path / f"{name}.reports.jsonl")),
               None if name.startswith("with_") and name != "with_symlink_loop" else ok, f"reports {name}")
        _clean(call_main("acula_edge.data.cli", "summarize", m, "--format", "csv"), None, f"summarize {name}")
        _clean(call_main("acula_edge.data.cli", "split", m, "--label", "label", "--out", str(tmp_path / f"{name}.split.jsonl")),
               None, f"split {name}")
        _clean(call_main("acula_edge.evaluate", "--encoder", "logmel-stats", "--task", f"csv:{m}:label", "--manifest", m,
                         "--seeds", "1", "--bootstrap", "10", "--out", str(tmp_path / f"{name}.evaluate")),
               None, f"evaluate {name}")
        _clean(call_main("export.verify", str(DEFAULT_BUNDLE), "--data", m), None, f"verify {name}")
        if not ok and not name.startswith("with_"):  # a broken manifest stops training before it starts
            run = tmp_path / f"{name}.align"
            _clean(call_main("acula_edge.align.cli", "train", "--manifest", m, "--encoder", "vit-tiny", "--max-steps", "1",
                             "--out", str(run), "--quiet"), False, f"align {name}")
            assert not (run / "encoder.safetensors").exists(), name
            # nothing a failed run wrote may look like a result
            assert not (tmp_path / f"{name}.reports.jsonl").exists(), name


def _bundles(d: Path) -> dict[str, str]:
    """Name -> a broken copy of the default bundle."""
    out = {}

    def copy(name: str) -> Path:
        p = d / name
        shutil.copytree(DEFAULT_BUNDLE, p)
        out[name] = str(p)
        return p

    (d / "empty").mkdir()
    out["empty"] = str(d / "empty")
    (copy("garbage_json") / "bundle.json").write_text("{ not json")
    (copy("json_list") / "bundle.json").write_text("[]")
    p = copy("no_heads")
    meta = json.loads((p / "bundle.json").read_text())
    meta.pop("heads")
    (p / "bundle.json").write_text(json.dumps(meta))
    p = copy("truncated_model")
    for f in p.glob("model_*"):
        f.write_bytes(f.read_bytes()[:1000])
    p = copy("symlinked_model")
    for f in p.glob("model_*"):
        f.unlink()
        f.symlink_to(DEFAULT_BUNDLE / f.name)
    p = copy("huge_prompts")
    head = b"\x93NUMPY\x01\x00" + b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000000, 4096), }"
    head += b" " * (64 - (len(head) + 1) % 64) + b"\n"
    (p / "prompts.npy").write_bytes(head + b"\0" * 64)
    (d / "a_file").write_text("x")
    out["a_file"] = str(d / "a_file")
    return out


def test_bad_bundles_through_listen_and_verify(corpus, tmp_path):
    good = corpus["good"][0]
    for name, b in _bundles(tmp_path).items():
        _clean(call_main("acula_edge.listen", "--file", good, "--no-realtime", "--bundle", b), False, f"listen {name}")
        _clean(call_main("acula_edge.listen", "--self-test", "--bundle", b), False, f"self-test {name}")
        _clean(call_main("export.verify", b), False, f"verify {name}")
