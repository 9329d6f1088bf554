"""The one log-mel front end shared by teacher, student and export.

A fixed windowed-DFT basis (one matrix product over frames cut from hop-long blocks where the DFT
size is a multiple of the hop, else a strided Conv1d), power, a mel matrix multiply, log: plain
torch ops that export to ONNX and TFLite (``torch.stft`` does not convert to TFLite). Only the DFT bins
that some mel filter uses are computed (:func:`used_bins`): below ``f_min`` and above ``f_max``
nothing is multiplied. The mel filterbank is built with numpy only, so the device side can reuse
it without torch.

Named front ends (:func:`get_frontend`, ``--frontend`` of ``python -m distill``):

| name | rate | DFT / hop | band | for |
|---|---|---|---|---|
| ``wide-16k`` | 16 kHz | 1024 / 512 | 50 Hz-8 kHz | the teachers (the ``FrontendConfig`` default) |
| ``lung-8k`` | 8 kHz | 512 / 256 | 50 Hz-4 kHz | lung sounds' whole recorded band |
| ``ausc-8k`` | 8 kHz | 512 / 256 | 50 Hz-2 kHz | auscultation's band at 8 kHz |
| ``ausc-4k`` | 4 kHz | 256 / 128 | 50 Hz-2 kHz | auscultation's band at 4 kHz: the students' default |

All give 64 mel bands, 31.25 frames a second, and 4.128 s for a 128-frame student window.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Iterator

import numpy as np

from acula_edge.registry import Registry


@dataclass(frozen=True)
class FrontendConfig:
    """Log-mel settings; travels inside every checkpoint and bundle.

    No centre padding: frame ``i`` covers samples ``[i*hop, i*hop + n_fft)``, so chunked
    (streaming) and offline processing give the same frames.
    """

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 512
    n_mels: int = 64
    f_min: float = 50.0
    f_max: float = 8000.0
    window: str = "hann"
    mel_scale: str = "slaney"  # "slaney" (librosa default) or "htk"
    mel_norm: str | None = "slaney"  # area normalisation of each triangle, or None
    power: float = 2.0
    log: str = "db"  # "db": 10*log10(mel + offset); "ln": natural log
    log_offset: float = 1e-10

    def __post_init__(self) -> None:
        from acula_edge.errors import AculaError

        problems = []
        if self.win_length > self.n_fft:
            problems.append("win_length must not exceed n_fft")
        if self.hop_length <= 0 or self.n_mels <= 0 or self.n_fft <= 0:
            problems.append("n_fft, hop_length and n_mels must be positive")
        if not (0 <= self.f_min < self.f_max <= self.sample_rate / 2):
            problems.append(f"need 0 <= f_min < f_max <= sample_rate/2 ({self.sample_rate / 2:g})")
        if self.window not in _WINDOWS:
            problems.append(f"window must be one of {sorted(_WINDOWS)}")
        if self.mel_scale not in ("slaney", "htk") or self.mel_norm not in ("slaney", None):
            problems.append("mel_scale is slaney|htk and mel_norm is slaney|None")
        if self.log not in ("db", "ln"):
            problems.append("log must be 'db' or 'ln'")
        if self.log_offset <= 0:
            problems.append("log_offset must be positive")
        if problems:
            raise AculaError("bad front-end config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FrontendConfig":
        """Inverse of :meth:`to_dict`; ignores nothing, rejects unknown keys."""
        from acula_edge.errors import AculaError

        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise AculaError(f"unknown front-end config keys: {sorted(unknown)}")
        return cls(**d)

    @property
    def n_freqs(self) -> int:
        """Number of DFT bins from 0 to Nyquist (:func:`used_bins` says which of them are computed)."""
        return self.n_fft // 2 + 1

    def num_frames(self, n_samples: int) -> int:
        """Frames produced from ``n_samples`` samples."""
        return 0 if n_samples < self.n_fft else 1 + (n_samples - self.n_fft) // self.hop_length

    def num_samples(self, n_frames: int) -> int:
        """Samples needed for ``n_frames`` frames."""
        return 0 if n_frames <= 0 else self.n_fft + (n_frames - 1) * self.hop_length


_WINDOWS = {
    "hann": lambda n: 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n),
    "hamming": lambda n: 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(n) / n),
    "rect": lambda n: np.ones(n),
}


def window(cfg: FrontendConfig) -> np.ndarray:
    """The periodic analysis window, zero-padded to ``n_fft`` and centred (as librosa does)."""
    w = _WINDOWS[cfg.window](cfg.win_length)
    left = (cfg.n_fft - cfg.win_length) // 2
    return np.pad(w, (left, cfg.n_fft - cfg.win_length - left))


def hz_to_mel(f: np.ndarray, htk: bool = False) -> np.ndarray:
    """Hertz to mels (Slaney's linear-then-log scale, or HTK's)."""
    f = np.asarray(f, np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, f / f_sp)


def mel_to_hz(m: np.ndarray, htk: bool = False) -> np.ndarray:
    """Mels to hertz (inverse of :func:`hz_to_mel`)."""
    m = np.asarray(m, np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(cfg: FrontendConfig) -> np.ndarray:
    """Triangular mel filters, shape ``[n_mels, n_freqs]``, float32."""
    htk = cfg.mel_scale == "htk"
    fft_hz = np.linspace(0, cfg.sample_rate / 2, cfg.n_freqs)
    mel_hz = mel_to_hz(np.linspace(hz_to_mel(cfg.f_min, htk), hz_to_mel(cfg.f_max, htk), cfg.n_mels + 2), htk)
    fdiff = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if cfg.mel_norm == "slaney":
        weights *= (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]
    return weights.astype(np.float32)


def used_bins(cfg: FrontendConfig) -> tuple[int, int]:
    """``(first, stop)``: the DFT bins some mel filter gives weight to; the others are never computed."""
    touched = np.flatnonzero(mel_filterbank(cfg).any(axis=0))
    return (int(touched[0]), int(touched[-1]) + 1) if touched.size else (0, cfg.n_freqs)


def band_filterbank(cfg: FrontendConfig) -> np.ndarray:
    """The mel filters over the used bins only, ``[n_mels, stop - first]``."""
    first, stop = used_bins(cfg)
    return np.ascontiguousarray(mel_filterbank(cfg)[:, first:stop])


def dft_basis(cfg: FrontendConfig) -> np.ndarray:
    """Windowed real-DFT basis of the used bins as Conv1d weights ``[2*bins, 1, n_fft]``: cosines then sines.

    Built in float32 as the exported ONNX graph rebuilds it (:func:`export.onnx.compact_front_end`):
    ``table[(k * n) mod n_fft] * window[n]``, so that torch, numpy and onnxruntime share the same
    values to the last bit (quiet bands sit near the log's floor, where one ulp shows)."""
    n = cfg.n_fft
    ang = 2 * np.pi * np.arange(n) / n
    idx = (np.arange(*used_bins(cfg))[:, None] * np.arange(n)[None, :]) % n
    w = window(cfg).astype(np.float32)
    cos, sin = np.cos(ang).astype(np.float32), (-np.sin(ang)).astype(np.float32)
    return np.concatenate([cos[idx] * w, sin[idx] * w])[:, None, :]


def logmel(waveform: np.ndarray, cfg: FrontendConfig | None = None) -> np.ndarray:
    """NumPy log-mel of ``[T]`` or ``[B, T]`` audio: the numbers of :class:`LogMel`, without torch."""
    cfg = cfg or FrontendConfig()
    x = np.asarray(waveform, np.float32)
    squeeze = x.ndim == 1
    x = np.atleast_2d(x)
    n = cfg.num_frames(x.shape[-1])
    if n == 0:
        out = np.zeros((x.shape[0], cfg.n_mels, 0), np.float32)
        return out[0] if squeeze else out
    frames = np.lib.stride_tricks.sliding_window_view(x, cfg.n_fft, axis=-1)[:, :: cfg.hop_length][:, :n]
    z = frames @ dft_basis(cfg)[:, 0, :].T  # [B, frames, 2F]
    f = z.shape[-1] // 2
    p = z[..., :f] ** 2 + z[..., f:] ** 2
    if cfg.power != 2.0:
        p = p ** (cfg.power / 2.0)
    mel = np.log(np.einsum("mf,btf->bmt", band_filterbank(cfg), p) + cfg.log_offset)
    out = (mel * (10.0 / math.log(10.0)) if cfg.log == "db" else mel).astype(np.float32)
    return out[0] if squeeze else out


_FRONTENDS: Registry[FrontendConfig] = Registry("front end")
DEFAULT_STUDENT_FRONTEND = "ausc-4k"


def register_frontend(name: str, cfg: FrontendConfig) -> None:
    """Make ``cfg`` choosable by ``name`` (``--frontend NAME``)."""
    _FRONTENDS.register(name)(cfg)


def get_frontend(name: str) -> FrontendConfig:
    """The front end registered as ``name``; an unknown name is one clear error."""
    return _FRONTENDS.get(name)


def list_frontends() -> list[str]:
    """Registered front-end names, sorted."""
    return _FRONTENDS.names()


def frontend_name(cfg: FrontendConfig) -> str | None:
    """The registered name of ``cfg``, or None for a front end of its own."""
    return next((k for k in _FRONTENDS.names() if _FRONTENDS.get(k) == cfg), None)


register_frontend("wide-16k", FrontendConfig())
register_frontend("lung-8k", FrontendConfig(sample_rate=8000, n_fft=512, win_length=512, hop_length=256, f_max=4000.0))
register_frontend("ausc-8k", FrontendConfig(sample_rate=8000, n_fft=512, win_length=512, hop_length=256, f_max=2000.0))
register_frontend("ausc-4k", FrontendConfig(sample_rate=4000, n_fft=256, win_length=256, hop_length=128, f_max=2000.0))


def _torch():
    import torch

    return torch


def _build_logmel():
    torch = _torch()
    nn = torch.nn

    class LogMel(nn.Module):
        """Waveform ``[B, T]`` float32 in [-1, 1] to log-mel ``[B, n_mels, frames]``.

        Where the DFT size is a multiple of the hop (every registered front end), frames are cut by
        slicing ``n_fft / hop`` shifted views of the hop-long blocks and the DFT is one matrix
        product: onnxruntime and LiteRT run it faster than the strided convolution used otherwise."""

        def __init__(self, cfg: FrontendConfig | None = None):
            super().__init__()
            self.cfg = c = cfg or FrontendConfig()
            basis = dft_basis(c)
            self.blocks = c.n_fft // c.hop_length if c.n_fft % c.hop_length == 0 else 0
            # [n_fft, 2 * bins] for the matrix product, or the Conv1d weights [2 * bins, 1, n_fft]
            dft = np.ascontiguousarray(basis[:, 0, :].T) if self.blocks else basis
            self.register_buffer("dft", torch.from_numpy(dft), persistent=False)
            self.register_buffer("mel", torch.from_numpy(np.ascontiguousarray(band_filterbank(c).T)), persistent=False)
            # a tensor, not a Python float: the ONNX exporter drops "+ 1e-10" written as a literal, which
            # sends empty bands (a 2 kHz recording upsampled to 16 kHz) from -100 dB to -140 dB
            self.register_buffer("offset", torch.tensor([c.log_offset], dtype=torch.float32), persistent=False)
            self.n_freqs = self.mel.shape[0]  # the used bins
            self.log_scale = 10.0 / math.log(10.0) if c.log == "db" else 1.0

        def spectrum(self, waveform):
            """Power (or magnitude**power) spectrum of the used bins ``[B, frames, bins]``."""
            hop = self.cfg.hop_length
            if self.blocks:
                n = (waveform.shape[-1] - self.cfg.n_fft) // hop + 1
                x = waveform[:, : (n + self.blocks - 1) * hop].reshape(waveform.shape[0], n + self.blocks - 1, hop)
                frames = torch.cat([x[:, j:j + n] for j in range(self.blocks)], dim=2) if self.blocks > 1 else x
                z = torch.matmul(frames, self.dft)
            else:
                z = nn.functional.conv1d(waveform.unsqueeze(1), self.dft, stride=hop).transpose(1, 2)
            re, im = z[..., : self.n_freqs], z[..., self.n_freqs :]
            p = re * re + im * im
            return p if self.cfg.power == 2.0 else p ** (self.cfg.power / 2.0)

        def forward(self, waveform):
            mel = torch.matmul(self.spectrum(waveform), self.mel).transpose(1, 2)
            return torch.log(mel + self.offset) * self.log_scale

    return LogMel


def __getattr__(name: str):
    # torch is imported only when the module is asked for it, so numpy-only users never pay for it.
    if name == "LogMel":
        cls = _build_logmel()
        globals()["LogMel"] = cls
        return cls
    raise AttributeError(name)


class StreamingLogMel:
    """Carries leftover samples between calls: the frames of the chunks equal those of the whole signal.
    ``transform`` maps a waveform ``[T]`` (numpy) to its log-mel ``[n_mels, frames]``: :func:`logmel` by
    default, or a torch :class:`LogMel`'s numbers, e.g. ``lambda x: module(torch.from_numpy(x)[None])[0]``."""

    def __init__(self, cfg: FrontendConfig | None = None, transform: Callable[[np.ndarray], Any] | None = None):
        self.cfg = cfg or FrontendConfig()
        self.transform = transform or (lambda x: logmel(x, self.cfg))
        self.buf = np.zeros(0, np.float32)

    def process(self, chunk: np.ndarray) -> Any:
        """Feed samples (1-D); return the newly completed frames ``[n_mels, k]`` (None when none)."""
        self.buf = np.concatenate([self.buf, np.asarray(chunk, np.float32).reshape(-1)])
        k = self.cfg.num_frames(self.buf.size)
        if k == 0:
            return None
        out = self.transform(self.buf[: self.cfg.num_samples(k)])
        self.buf = self.buf[k * self.cfg.hop_length:]
        return out


def iter_logmel(path: str | os.PathLike, cfg: FrontendConfig, transform: Callable[[np.ndarray], Any] | None = None,
                block_frames: int = 1024) -> Iterator[Any]:
    """A recording's log-mel in consecutive blocks of about ``block_frames`` frames, decoded and resampled
    to ``cfg.sample_rate`` block by block (:class:`StreamingLogMel`), so memory is bounded by a block, not
    by the recording. Concatenated along time they are the log-mel of the whole recording; one shorter
    than a DFT is zero-padded to one frame."""
    from acula_edge.device.audio import iter_blocks

    stream, total = StreamingLogMel(cfg, transform), 0
    for b in iter_blocks(path, block_frames * cfg.hop_length / cfg.sample_rate, sample_rate=cfg.sample_rate):
        total += b.size
        m = stream.process(b)
        if m is not None:
            yield m
    if total < cfg.n_fft:
        yield stream.process(np.zeros(cfg.n_fft - total, np.float32))
