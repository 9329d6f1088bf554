"""The log-mel front end: against librosa, exported to ONNX, and chunked equal to offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acula_edge.errors import AculaError
from acula_edge.frontend import FrontendConfig, LogMel, StreamingLogMel, logmel, mel_filterbank

librosa = pytest.importorskip("librosa")

CONFIGS = {
    "default 16k": FrontendConfig(),
    "8k htk unnormalised, short window": FrontendConfig(
        sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=40, f_min=0.0, f_max=4000.0,
        mel_scale="htk", mel_norm=None),
    "2k heart": FrontendConfig(sample_rate=2000, n_fft=128, win_length=128, hop_length=32, n_mels=32,
                               f_min=20.0, f_max=1000.0, window="hamming", log="ln", log_offset=1e-6),
}


def _signal(rate: int, seconds: float = 4.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(rate * seconds)) / rate
    x = 0.1 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * (rate / 16) * t * (1 + t / 8))
    return x.astype(np.float32)


def _librosa_logmel(x: np.ndarray, c: FrontendConfig) -> np.ndarray:
    s = librosa.feature.melspectrogram(
        y=x, sr=c.sample_rate, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
        window=c.window if c.window != "rect" else "boxcar", center=False, power=c.power, n_mels=c.n_mels,
        fmin=c.f_min, fmax=c.f_max, htk=c.mel_scale == "htk", norm=c.mel_norm)
    s = s.astype(np.float64) + c.log_offset
    return 10 * np.log10(s) if c.log == "db" else np.log(s)


@pytest.mark.parametrize("name", CONFIGS)
def test_mel_filterbank_matches_librosa(name):
    c = CONFIGS[name]
    ref = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.f_min, fmax=c.f_max,
                              htk=c.mel_scale == "htk", norm=c.mel_norm)
    err = float(np.abs(mel_filterbank(c) - ref).max())
    print(f"[{name}] mel filterbank max abs error vs librosa: {err:.2e} (largest weight {ref.max():.3g})")
    assert err < 1e-6 * max(1.0, ref.max())


@pytest.mark.parametrize("name", CONFIGS)
def test_logmel_matches_librosa(name):
    c = CONFIGS[name]
    x = _signal(c.sample_rate)
    ours = LogMel(c)(torch.from_numpy(x)[None])[0].double().numpy()
    ref = _librosa_logmel(x, c)
    err = float(np.abs(ours - ref).max())
    unit = "dB" if c.log == "db" else "nats"
    print(f"[{name}] log-mel max abs error vs librosa: {err:.2e} {unit} over {ref.shape} (range {np.ptp(ref):.1f})")
    assert ours.shape == ref.shape == (c.n_mels, c.num_frames(x.size))
    assert err < (1e-3 if c.log == "db" else 1e-3 / 4.34)


@pytest.mark.parametrize("name", CONFIGS)
def test_numpy_logmel_equals_the_torch_module(name):
    c = CONFIGS[name]
    x = np.stack([_signal(c.sample_rate, 2.0), _signal(c.sample_rate, 2.0)[::-1].copy()])
    want = LogMel(c)(torch.from_numpy(x)).numpy()
    got = logmel(x, c)
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-3
    # one recording alone and in a batch: the same up to the BLAS's summation order (which varies by CPU)
    assert np.abs(logmel(x[0], c) - got[0]).max() < 1e-4 and logmel(x[0, : c.n_fft - 1], c).shape == (c.n_mels, 0)


def test_chunked_streaming_equals_offline():
    c = CONFIGS["default 16k"]
    x = _signal(c.sample_rate, 6.0)
    module = LogMel(c)
    offline = module(torch.from_numpy(x)[None])[0]
    stream = StreamingLogMel(c, lambda w: module(torch.from_numpy(w)[None])[0])
    rng, parts, i = np.random.default_rng(3), [], 0
    while i < x.size:
        n = int(rng.integers(1, 2 * c.n_fft))
        parts.append(stream.process(x[i:i + n]))
        i += n
    chunked = torch.cat([p for p in parts if p is not None], dim=1)
    err = float((chunked - offline).abs().max())
    print(f"streaming vs offline: {chunked.shape[1]} frames, max abs difference {err:.2e} dB")
    assert chunked.shape == offline.shape and err < 1e-3


def test_onnx_export_has_a_dynamic_batch_and_matches_torch(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    c = FrontendConfig()
    module = LogMel(c).eval()
    example = torch.from_numpy(np.stack([_signal(c.sample_rate, 2.0)] * 2))
    batch = torch.export.Dim("batch", min=1, max=1024)
    samples = torch.export.Dim("samples", min=c.n_fft, max=c.sample_rate * 600)
    path = tmp_path / "logmel.onnx"
    torch.onnx.export(module, (example,), str(path), input_names=["waveform"], output_names=["logmel"],
                      dynamo=True, external_data=False, opset_version=18,
                      dynamic_shapes={"waveform": {0: batch, 1: samples}})
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ops = {n.op_type for n in __import__("onnx").load(str(path)).graph.node}
    assert "STFT" not in ops and "DFT" not in ops and "Conv" not in ops and "MatMul" in ops  # the DFT: one product
    rng = np.random.default_rng(4)
    for b, seconds in [(1, 1.0), (3, 2.5), (8, 0.5)]:
        x = rng.uniform(-0.8, 0.8, (b, int(c.sample_rate * seconds))).astype(np.float32)
        got = sess.run(None, {"waveform": x})[0]
        want = module(torch.from_numpy(x)).detach().numpy()
        err = float(np.abs(got - want).max())
        print(f"onnxruntime vs torch, batch {b}, {seconds} s: max abs difference {err:.2e} dB")
        assert got.shape == want.shape and err < 1e-3


def test_config_round_trip_and_validation():
    c = CONFIGS["2k heart"]
    assert FrontendConfig.from_dict(c.to_dict()) == c
    assert c.num_frames(c.num_samples(10)) == 10 and c.num_frames(c.n_fft - 1) == 0
    with pytest.raises(AculaError, match="f_max"):
        FrontendConfig(sample_rate=8000, f_max=8000.0)
    with pytest.raises(AculaError, match="unknown"):
        FrontendConfig.from_dict({**c.to_dict(), "center": True})


def test_registered_front_ends_compute_only_the_bins_their_mel_filters_use():
    from acula_edge.frontend import get_frontend, list_frontends, used_bins

    assert set(list_frontends()) >= {"wide-16k", "lung-8k", "ausc-8k", "ausc-4k"}
    assert get_frontend("wide-16k") == FrontendConfig()  # the teachers' front end is the default config
    macs = {}
    for name in list_frontends():
        c = get_frontend(name)
        first, stop = used_bins(c)
        weights = mel_filterbank(c)
        assert not weights[:, :first].any() and not weights[:, stop:].any() and weights[:, first].any()
        assert first > 0  # nothing below f_min (50 Hz) is computed
        assert c.num_samples(128) / c.sample_rate == pytest.approx(4.128)  # one student window everywhere
        x = _signal(c.sample_rate, 2.0)
        got, want = logmel(x, c), LogMel(c)(torch.from_numpy(x)[None])[0].numpy()
        assert got.shape == want.shape == (64, c.num_frames(x.size)) and np.abs(got - want).max() < 1e-3
        macs[name] = 2 * (stop - first) * c.n_fft * c.sample_rate / c.hop_length
    # the 2 kHz band at 4 kHz costs a fifteenth of the 16 kHz front end
    assert macs["ausc-4k"] < macs["ausc-8k"] < macs["lung-8k"] < macs["wide-16k"] / 3 and \
        macs["wide-16k"] / macs["ausc-4k"] > 14
    with pytest.raises(AculaError, match="unknown front end 'x'; choose one of: ausc-4k"):
        get_frontend("x")


def test_the_matrix_product_dft_equals_the_convolution_one():
    """A DFT size that is a multiple of the hop runs as one matrix product; the strided convolution
    that other hops use gives the same log-mel."""
    c = FrontendConfig(sample_rate=4000, n_fft=256, win_length=256, hop_length=128, f_max=2000.0)
    odd = FrontendConfig(sample_rate=4000, n_fft=256, win_length=256, hop_length=96, f_max=2000.0)
    x = torch.from_numpy(np.stack([_signal(4000, 3.0), _signal(4000, 3.0)[::-1].copy()]))
    m = LogMel(c)
    assert m.blocks == 2 and LogMel(odd).blocks == 0
    conv = torch.nn.functional.conv1d(x.unsqueeze(1), m.dft.T.unsqueeze(1), stride=128)  # [B, 2F, frames]
    f = m.n_freqs
    power = conv[:, :f] ** 2 + conv[:, f:] ** 2
    want = torch.log(torch.matmul(m.mel.T, power) + c.log_offset) * m.log_scale
    assert torch.allclose(m(x), want, atol=1e-3)
    assert np.abs(LogMel(odd)(x).numpy() - logmel(x.numpy(), odd)).max() < 1e-3
