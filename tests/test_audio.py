"""Audio I/O: decoding, mix-down, polyphase resampling, block reading, and every kind of bad input."""

from __future__ import annotations

import struct

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from acula_edge.device import audio
from acula_edge.errors import AudioError
from conftest import write_tone


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_decodes_formats_to_mono_float32(tmp_path, fmt, subtype):
    path = tmp_path / f"tone.{fmt.lower()}"
    written = write_tone(path, rate=8000, seconds=0.5, channels=2, subtype=subtype, fmt=fmt)
    x, rate = audio.load(path)
    assert rate == 8000 and x.dtype == np.float32 and x.ndim == 1
    assert x.shape[0] == 4000
    assert np.abs(x).max() <= 1.0
    expected = written.mean(axis=1)
    tol = 0.05 if subtype == "VORBIS" else 1e-4  # lossy codec
    assert np.abs(x - expected).max() < tol


def test_a_file_name_that_is_not_utf8_is_read(tmp_path):
    """Bytes that are not UTF-8 in a name (an old Latin-1 file system): Python holds them as surrogates,
    which libsndfile cannot be given; the decoder opens the file itself."""
    import os

    x = (0.1 * np.sin(np.arange(8000) / 5)).astype(np.float32)
    sf.write(tmp_path / "plain.wav", x, 8000, subtype="FLOAT")
    name = os.fsdecode(os.fsencode(str(tmp_path)) + b"/caf\xe9.wav")
    os.rename(tmp_path / "plain.wav", name)
    assert audio.info(name).frames == 8000
    y, rate = audio.load(name)
    assert rate == 8000 and np.array_equal(y, x)
    assert np.array_equal(np.concatenate(list(audio.iter_blocks(name, block_seconds=0.25))), x)


def test_offset_and_duration_select_a_part(tmp_path):
    write_tone(tmp_path / "a.wav", rate=4000, seconds=2.0)
    full, _ = audio.load(tmp_path / "a.wav")
    part, _ = audio.load(tmp_path / "a.wav", offset=0.5, duration=0.25)
    assert np.array_equal(part, full[2000:3000])


@pytest.mark.parametrize("src,dst", [(8000, 16000), (2000, 16000), (4000, 16000), (44100, 16000), (48000, 16000), (22050, 8000)])
def test_resampling_matches_scipy_resample_poly(src, dst):
    x = np.random.default_rng(0).standard_normal(src * 2).astype(np.float32) * 0.2
    y = audio.resample(x, src, dst)
    g = np.gcd(src, dst)
    ref = resample_poly(x.astype(np.float64), dst // g, src // g)
    err = float(np.abs(y - ref).max())
    print(f"resample {src}->{dst}: max abs error vs scipy {err:.2e}")
    assert y.shape == ref.shape and err < 1e-5


def test_resampler_streaming_equals_offline():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(44100).astype(np.float32) * 0.2
    offline = audio.resample(x, 44100, 16000)
    r, parts, i = audio.Resampler(44100, 16000), [], 0
    while i < x.size:
        n = int(rng.integers(1, 3000))
        parts.append(r.process(x[i:i + n]))
        i += n
    parts.append(r.flush())
    chunked = np.concatenate(parts)
    err = float(np.abs(chunked - offline).max())
    print(f"streaming resampler vs offline: max abs difference {err:.1e}")
    assert chunked.shape == offline.shape and err < 1e-6


def test_resampling_removes_content_above_the_new_nyquist():
    rate = 16000
    t = np.arange(rate) / rate
    x = (0.5 * np.sin(2 * np.pi * 300 * t) + 0.5 * np.sin(2 * np.pi * 6000 * t)).astype(np.float32)
    y = audio.resample(x, rate, 8000)  # 6 kHz must not alias to 2 kHz
    spec = np.abs(np.fft.rfft(y[1000:-1000] * np.hanning(y.size - 2000)))
    freqs = np.fft.rfftfreq(y.size - 2000, 1 / 8000)
    alias = spec[np.abs(freqs - 2000) < 50].max()
    kept = spec[np.abs(freqs - 300) < 50].max()
    assert alias / kept < 1e-3


@pytest.mark.parametrize("target", [None, 16000])
def test_blocks_concatenate_to_the_whole_file(tmp_path, target):
    path = tmp_path / "long.flac"
    sf.write(str(path), np.random.default_rng(2).uniform(-0.5, 0.5, (8000 * 7, 2)).astype(np.float32), 8000)
    whole, _ = audio.load(path, sample_rate=target)
    blocks = list(audio.iter_blocks(path, block_seconds=1.3, sample_rate=target))
    assert len(blocks) > 3
    assert np.allclose(np.concatenate(blocks), whole, atol=1e-6)


def _wav_with_rate(path, rate):
    write_tone(path, rate=8000, seconds=0.1)
    b = bytearray(path.read_bytes())
    b[24:28] = struct.pack("<I", rate)
    b[28:32] = struct.pack("<I", rate * 2)
    path.write_bytes(bytes(b))


def _bad_files(tmp):
    """Each kind of bad input, and the words its error must contain."""
    cases = {}
    cases["missing"] = (tmp / "nope.wav", "not found")
    (tmp / "text.wav").write_text("this is not audio\n")
    cases["not audio"] = (tmp / "text.wav", "not a readable audio file")
    (tmp / "empty.wav").write_bytes(b"")
    cases["empty"] = (tmp / "empty.wav", "empty file")
    write_tone(tmp / "full.wav", seconds=1.0)
    data = (tmp / "full.wav").read_bytes()
    (tmp / "truncated.wav").write_bytes(data[: len(data) // 2])
    cases["truncated wav"] = (tmp / "truncated.wav", "truncated")
    write_tone(tmp / "full.flac", seconds=3.0, fmt="FLAC")
    data = (tmp / "full.flac").read_bytes()
    (tmp / "truncated.flac").write_bytes(data[: len(data) // 2])
    cases["truncated flac"] = (tmp / "truncated.flac", "corrupt or truncated")
    x = np.zeros(800, np.float32)
    x[100] = np.nan
    sf.write(str(tmp / "nan.wav"), x, 8000, subtype="FLOAT")
    cases["nan"] = (tmp / "nan.wav", "NaN or Inf")
    x[100] = np.inf
    sf.write(str(tmp / "inf.wav"), x, 8000, subtype="FLOAT")
    cases["inf"] = (tmp / "inf.wav", "NaN or Inf")
    _wav_with_rate(tmp / "rate.wav", 5_000_000)
    cases["absurd rate"] = (tmp / "rate.wav", "implausible sample rate")
    sf.write(str(tmp / "nosamples.wav"), np.zeros((0, 1), np.float32), 8000)
    cases["no samples"] = (tmp / "nosamples.wav", "no audio samples")
    # The first bytes of a real WebM file (EBML header, DocType "webm"): soundfile cannot decode it.
    (tmp / "cough.webm").write_bytes(bytes.fromhex("1a45dfa39f4286810142f7810142f2810442f381084282847765626d42878104428581021853806701"))
    cases["webm"] = (tmp / "cough.webm", "WebM/Matroska container is not supported")
    (tmp / "folder.wav").mkdir()
    cases["folder"] = (tmp / "folder.wav", "is a folder")
    return cases


def test_bad_input_raises_one_clear_typed_error(tmp_path):
    for name, (path, words) in _bad_files(tmp_path).items():
        with pytest.raises(AudioError) as e:
            audio.load(path)
        msg = str(e.value)
        print(f"{name}: {msg}")
        assert words in msg and "\n" not in msg, name


def test_out_of_range_offset_or_duration_is_an_error(tmp_path):
    write_tone(tmp_path / "a.wav", rate=8000, seconds=1.0)
    for kw in [{"offset": -0.5}, {"duration": -0.2}, {"duration": 0.0}, {"offset": 1.5}]:
        with pytest.raises(AudioError):
            audio.load(tmp_path / "a.wav", **kw)
    x, _ = audio.load(tmp_path / "a.wav", offset=0.5, duration=5.0)  # clipped at the end
    assert x.size == 4000


def test_bad_target_rate_is_rejected(tmp_path):
    write_tone(tmp_path / "a.wav")
    with pytest.raises(AudioError, match="implausible target sample rate"):
        audio.load(tmp_path / "a.wav", sample_rate=10)
