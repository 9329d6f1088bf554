"""Audio I/O: decode with soundfile, mix to mono, resample (polyphase), validate bad input.

Device side: imports only numpy and soundfile.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import numpy as np

from acula_edge.errors import AudioError

MIN_RATE, MAX_RATE = 1000, 768_000
_UNSUPPORTED_MAGIC = {
    b"\x1a\x45\xdf\xa3": "WebM/Matroska",
}


@dataclass(frozen=True)
class AudioInfo:
    """What the header of an audio file says."""

    path: str
    sample_rate: int
    frames: int
    channels: int
    format: str

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def _sf():
    import soundfile

    return soundfile


def info(path: str | os.PathLike) -> AudioInfo:
    """Validate an audio file's container and header and return what it declares."""
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{p}: " + ("a symbolic link to nothing (broken, or a loop)" if p.is_symlink() else "file not found"))
    if p.is_dir():
        raise AudioError(f"{p}: is a folder, not an audio file")
    size = p.stat().st_size
    if size == 0:
        raise AudioError(f"{p}: empty file")
    with open(p, "rb") as f:
        head = f.read(12)
    for magic, name in _UNSUPPORTED_MAGIC.items():
        if head.startswith(magic):
            raise AudioError(f"{p}: {name} container is not supported; convert it first, e.g. ffmpeg -i '{p}' out.wav")
    if head[4:8] == b"ftyp":
        raise AudioError(f"{p}: MP4/M4A container is not supported; convert it first, e.g. ffmpeg -i '{p}' out.wav")
    sf = _sf()
    try:
        with open(p, "rb") as f:  # an open file: libsndfile is never handed a name it cannot encode (non-UTF-8)
            i = sf.info(f)
    except Exception as e:  # soundfile raises LibsndfileError/RuntimeError for anything unreadable
        raise AudioError(f"{p}: not a readable audio file ({_short(e)})") from None
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        _check_wav_data(p, size)
    if not (MIN_RATE <= i.samplerate <= MAX_RATE):
        raise AudioError(f"{p}: implausible sample rate {i.samplerate} Hz (expected {MIN_RATE}–{MAX_RATE})")
    if i.frames <= 0:
        raise AudioError(f"{p}: holds no audio samples")
    return AudioInfo(str(p), int(i.samplerate), int(i.frames), int(i.channels), str(i.format))


def _short(e: Exception) -> str:
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return msg[:160]


def _check_wav_data(p: Path, size: int) -> None:
    """Raise if a WAV's data chunk declares more bytes than the file holds (a truncated download)."""
    with open(p, "rb") as f:
        f.seek(12)
        while True:
            hdr = f.read(8)
            if len(hdr) < 8:
                return
            cid, n = hdr[:4], struct.unpack("<I", hdr[4:])[0]
            if cid == b"data":
                held = size - f.tell()
                if n not in (0, 0xFFFFFFFF) and n > held:
                    raise AudioError(f"{p}: truncated (header declares {n} bytes of audio, the file holds {held})")
                return
            f.seek(n + (n & 1), 1)


def load(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[np.ndarray, int]:
    """Decode ``path`` to mono float32 in [-1, 1], resampled to ``sample_rate`` when given.

    ``offset`` and ``duration`` (seconds) select a part of the file. Returns ``(audio, rate)``.
    """
    i = info(path)
    if offset < 0 or (duration is not None and duration <= 0):
        raise AudioError(f"{path}: offset must be >= 0 and duration > 0 (got {offset}, {duration})")
    start = int(round(offset * i.sample_rate))
    if start >= i.frames:
        raise AudioError(f"{path}: offset {offset} s is past the end ({i.duration:.3f} s)")
    stop = None if duration is None else min(i.frames, start + int(round(duration * i.sample_rate)))
    try:
        with open(i.path, "rb") as f:
            x = _sf().read(f, start=start, stop=stop, dtype="float32", always_2d=True)[0]
    except Exception as e:
        raise AudioError(f"{path}: corrupt or truncated audio ({_short(e)})") from None
    if x.shape[0] == 0:
        raise AudioError(f"{path}: corrupt or truncated audio (no samples could be decoded)")
    x = _to_mono(x, path)
    if sample_rate is not None and sample_rate != i.sample_rate:
        _check_rate(sample_rate)
        x = resample(x, i.sample_rate, sample_rate)
        return x, sample_rate
    return x, i.sample_rate


def iter_blocks(
    path: str | os.PathLike, block_seconds: float = 10.0, sample_rate: int | None = None
) -> Iterator[np.ndarray]:
    """Read a long file in blocks of mono float32; concatenated, they equal :func:`load`."""
    i = info(path)
    rate = sample_rate or i.sample_rate
    _check_rate(rate)
    rs = None if rate == i.sample_rate else Resampler(i.sample_rate, rate)
    blocksize = max(1, int(block_seconds * i.sample_rate))
    decoded = 0
    try:
        with open(i.path, "rb") as f:
            for b in _sf().blocks(f, blocksize=blocksize, dtype="float32", always_2d=True):
                x = _to_mono(b, path)
                decoded += x.shape[0]
                y = rs.process(x) if rs else x
                if y.size:
                    yield y
    except AudioError:
        raise
    except Exception as e:
        raise AudioError(f"{path}: corrupt or truncated audio ({_short(e)})") from None
    if not decoded:
        raise AudioError(f"{path}: corrupt or truncated audio (no samples could be decoded)")
    if rs:
        tail = rs.flush()
        if tail.size:
            yield tail


def _to_mono(x: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Average channels; reject NaN/Inf; clip float files that exceed full scale."""
    x = x.mean(axis=1, dtype=np.float32) if x.shape[1] > 1 else x[:, 0]
    if not np.isfinite(x).all():
        raise AudioError(f"{path}: contains NaN or Inf samples")
    return np.clip(x, -1.0, 1.0, out=x)


def _check_rate(rate: int) -> None:
    if not (MIN_RATE <= int(rate) <= MAX_RATE):
        raise AudioError(f"implausible target sample rate {rate} Hz (expected {MIN_RATE}–{MAX_RATE})")


# ---- polyphase resampling (numpy only; same filter as scipy.signal.resample_poly) ----


@lru_cache(maxsize=32)
def _polyphase(up: int, down: int) -> tuple[np.ndarray, int]:
    """Kaiser-windowed sinc low-pass (beta 5, 10 zero crossings per side), as a [up, J] table."""
    r = max(up, down)
    half = 10 * r
    n = np.arange(2 * half + 1, dtype=np.float64)
    h = np.sinc((n - half) / r) / r * np.kaiser(2 * half + 1, 5.0)
    h *= up / h.sum()
    j = math.ceil(h.size / up)
    h = np.concatenate([h, np.zeros(j * up - h.size)])
    return h.reshape(j, up).T.astype(np.float32).copy(), half


def _ratio(src: int, dst: int) -> tuple[int, int]:
    g = math.gcd(int(src), int(dst))
    return int(dst) // g, int(src) // g


def resample(x: np.ndarray, src: int, dst: int) -> np.ndarray:
    """Resample a 1-D signal from ``src`` to ``dst`` Hz with a polyphase anti-aliasing filter."""
    if src == dst:
        return x.astype(np.float32, copy=False)
    r = Resampler(src, dst)
    return np.concatenate([r.process(x), r.flush()])


class Resampler:
    """Streaming polyphase resampler: chunked output equals offline output exactly."""

    def __init__(self, src: int, dst: int):
        self.up, self.down = _ratio(src, dst)
        self.table, self.half = _polyphase(self.up, self.down)
        self.taps = self.table.shape[1]
        self.buf = np.zeros(0, np.float32)  # input samples from absolute index self.buf_start
        self.buf_start = 0
        self.n_in = 0  # input samples seen
        self.n_out = 0  # output samples produced

    def _emit(self, last: int) -> np.ndarray:
        """Outputs ``self.n_out .. last-1`` from the buffered input (zeros outside it)."""
        if last <= self.n_out:
            return np.zeros(0, np.float32)
        step = 1 << 18
        y = np.concatenate([self._outputs(s, min(last, s + step)) for s in range(self.n_out, last, step)])
        self.n_out = last
        return y

    def _outputs(self, s: int, e: int) -> np.ndarray:
        """Output samples ``s .. e-1``.

        Output n reads taps ``table[phase(n)]`` over inputs ending at ``base(n)``; both advance
        regularly (n -> n + up moves base by ``down``, keeps the phase), so each of the ``up``
        residues is a strided correlation. Few outputs per residue: one gather is cheaper.
        """
        up, down, taps = self.up, self.down, self.taps
        lo = (s * down + self.half) // up - taps + 1  # oldest input index needed
        hi = ((e - 1) * down + self.half) // up  # newest
        seg = np.zeros(hi - lo + 1, np.float32)
        a, b = max(lo, self.buf_start), min(hi + 1, self.buf_start + self.buf.size)
        if b > a:
            seg[a - lo : b - lo] = self.buf[a - self.buf_start : b - self.buf_start]
        if e - s < 64 * up:
            n = np.arange(s, e, dtype=np.int64)
            pos = n * down + self.half
            idx = (pos // up - lo)[:, None] - np.arange(taps)[None, :]
            return np.einsum("ij,ij->i", self.table[pos % up], seg[idx])
        y = np.empty(e - s, np.float32)
        for r in range(min(up, e - s)):
            k = len(range(s + r, e, up))
            pos = (s + r) * down + self.half
            base, h = pos // up - lo, self.table[pos % up]
            acc = np.zeros(k, np.float32)
            for j in range(taps):
                start = base - j
                acc += h[j] * seg[start : start + (k - 1) * down + 1 : down]
            y[r::up] = acc
        return y

    def _trim(self) -> None:
        """Drop input no future output needs."""
        oldest = (self.n_out * self.down + self.half) // self.up - self.taps + 1
        drop = min(max(0, oldest - self.buf_start), self.buf.size)
        if drop:
            self.buf = self.buf[drop:]
            self.buf_start += drop

    def process(self, x: np.ndarray) -> np.ndarray:
        """Feed input samples; return every output sample they complete."""
        x = np.asarray(x, np.float32).ravel()
        self.buf = np.concatenate([self.buf, x])
        self.n_in += x.size
        # Output n is complete once its newest input index (n*down + half)//up has arrived.
        last = max(0, (self.n_in * self.up - 1 - self.half) // self.down + 1)
        y = self._emit(last)
        self._trim()
        return y

    def flush(self) -> np.ndarray:
        """Return the remaining outputs (input treated as zero past its end)."""
        total = -(-self.n_in * self.up // self.down)
        y = self._emit(total)
        self._trim()
        return y
