"""Training augmentations: waveform (time shift, background recordings, noise, random low-pass,
random frequency response, reverberation, gain, clipping) and spectrogram masks.

Every draw comes from a ``numpy.random.Generator`` given by the caller, one per clip, so a clip's
augmentation depends only on its seed: the same on any number of processes and after a resume.

The random low-pass matters for this field: sources are recorded at different rates (PhysioNet
2 kHz, SPRSound 8 kHz, phones 16-48 kHz) and an upsampled recording has an empty high band, so a
model can learn the source from its bandwidth instead of the pathology. Band-limiting training
clips at random cut-offs takes that cue away.

Background recordings (:class:`Backgrounds`: a folder of real speech, room or street noise) are
mixed in at a random SNR, so that a model meant for a phone hears what a phone hears.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from acula_edge.errors import AculaError


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings; a probability or size of 0 switches that augmentation off."""

    shift: float = 0.1  # largest time shift, as a share of the clip (zero filled, not circular)
    noise_prob: float = 0.5
    snr_db: tuple[float, float] = (15.0, 40.0)  # white noise at a random SNR in this range
    lowpass_prob: float = 0.5
    lowpass_hz: tuple[float, float] = (1000.0, 8000.0)  # random cut-off range (capped at Nyquist)
    gain_db: float = 6.0  # random gain in [-gain_db, +gain_db]
    time_masks: int = 2  # spectrogram time masks per clip
    time_mask_frac: float = 0.1  # widest time mask, as a share of the frames
    freq_masks: int = 2  # spectrogram frequency masks per clip
    freq_mask_bins: int = 8  # widest frequency mask, in mel bins
    eq_prob: float = 0.0  # a random smooth frequency response (another stethoscope or microphone)
    eq_db: float = 10.0  # its gain at each control frequency, uniform in [-eq_db, +eq_db]
    clip_prob: float = 0.0  # hard clipping at a random share of the clip's peak (cheap microphones)
    clip_level: tuple[float, float] = (0.3, 0.9)
    reverb_prob: float = 0.0  # a short synthetic room: exponentially decaying noise impulse response
    reverb_s: tuple[float, float] = (0.05, 0.3)  # decay time (to -60 dB) range
    backgrounds: str | None = None  # folder of background recordings (speech, rooms, street noise)
    background_prob: float = 0.0  # share of clips that get a random piece of one mixed in
    background_snr_db: tuple[float, float] = (0.0, 20.0)

    def __post_init__(self) -> None:
        ok = (0 <= self.shift < 1 and 0 <= self.noise_prob <= 1 and 0 <= self.lowpass_prob <= 1
              and self.snr_db[0] <= self.snr_db[1] and 0 < self.lowpass_hz[0] <= self.lowpass_hz[1]
              and self.gain_db >= 0 and self.time_masks >= 0 and self.freq_masks >= 0
              and 0 <= self.time_mask_frac < 1 and self.freq_mask_bins >= 0
              and 0 <= self.eq_prob <= 1 and self.eq_db >= 0
              and 0 <= self.clip_prob <= 1 and 0 < self.clip_level[0] <= self.clip_level[1] <= 1
              and 0 <= self.reverb_prob <= 1 and 0 < self.reverb_s[0] <= self.reverb_s[1]
              and 0 <= self.background_prob <= 1 and self.background_snr_db[0] <= self.background_snr_db[1])
        if not ok:
            raise AculaError(f"bad augmentation settings: {self}")
        if self.background_prob > 0 and not self.backgrounds:
            raise AculaError("background_prob > 0 needs a folder of background recordings")

    @classmethod
    def microphone(cls) -> "AugmentConfig":
        """Stronger settings for students that must survive real microphones (clipping, rooms)."""
        return cls(noise_prob=0.6, snr_db=(5.0, 40.0), lowpass_prob=0.5, gain_db=12.0, clip_prob=0.2,
                   reverb_prob=0.3, time_masks=0, freq_masks=0)

    @classmethod
    def off(cls) -> "AugmentConfig":
        """No augmentation at all."""
        return cls(shift=0.0, noise_prob=0.0, lowpass_prob=0.0, gain_db=0.0, time_masks=0, freq_masks=0)


EQ_POINTS = 6  # control frequencies of a random frequency response, log-spaced from 50 Hz to Nyquist


def random_eq(x: np.ndarray, sample_rate: int, max_db: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-phase FFT filter with a random smooth response: gains drawn in ``[-max_db, +max_db]`` at
    :data:`EQ_POINTS` log-spaced frequencies, interpolated over log frequency (flat below the first
    and above the last), the clip's RMS kept."""
    n = x.shape[-1]
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    points = np.geomspace(50.0, sample_rate / 2, EQ_POINTS)
    db = rng.uniform(-max_db, max_db, EQ_POINTS)
    gain = 10 ** (np.interp(np.log(np.maximum(f, 1.0)), np.log(points), db) / 20)
    y = np.fft.irfft(np.fft.rfft(x) * gain, n)
    rms_in, rms_out = float(np.sqrt(np.mean(x.astype(np.float64) ** 2))), float(np.sqrt(np.mean(y ** 2)))
    return (y * (rms_in / rms_out if rms_out > 0 else 1.0)).astype(np.float32)


def lowpass(x: np.ndarray, cutoff_hz: float, sample_rate: int, taper: float = 0.1) -> np.ndarray:
    """Zero-phase FFT low-pass: bins above ``cutoff_hz`` removed, a raised-cosine taper over the
    ``taper`` share of the cut-off below it (no ringing from a brick wall)."""
    n = x.shape[-1]
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(n, 1.0 / sample_rate)
    lo = cutoff_hz * (1.0 - taper)
    gain = np.clip((cutoff_hz - f) / max(cutoff_hz - lo, 1e-9), 0.0, 1.0)
    gain = 0.5 - 0.5 * np.cos(np.pi * gain)
    return np.fft.irfft(spec * gain, n).astype(np.float32)


AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au")


class Backgrounds:
    """The audio files of a folder (searched recursively, hidden files skipped), as random
    background segments. Each segment is read on its own (offset and duration), so that hour-long
    room or street recordings cost no more memory than short ones."""

    def __init__(self, folder: str | Path, sample_rate: int):
        from acula_edge.datasets.common import find_files

        folder = Path(folder)
        if not folder.is_dir():
            raise AculaError(f"background folder not found: {folder}")
        self.files = find_files(folder, AUDIO_SUFFIXES)
        if not self.files:
            raise AculaError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) in background folder {folder}")
        self.sample_rate = sample_rate
        self._seconds: dict[Path, float] = {}

    @classmethod
    def of(cls, cfg: AugmentConfig, sample_rate: int) -> "Backgrounds | None":
        """The background recordings ``cfg`` asks for, or None."""
        return cls(cfg.backgrounds, sample_rate) if cfg.backgrounds and cfg.background_prob > 0 else None

    def segment(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` samples from a random place of a random file (a short file is repeated)."""
        from acula_edge.device.audio import info, load

        path = self.files[int(rng.integers(len(self.files)))]
        want = n / self.sample_rate
        try:
            if path not in self._seconds:
                self._seconds[path] = info(path).duration
            offset = float(rng.uniform(0.0, max(0.0, self._seconds[path] - want)))
            x = load(path, sample_rate=self.sample_rate, offset=offset, duration=want)[0]
        except AculaError as e:
            raise AculaError(f"background recording {path}: {e}") from None
        if x.shape[0] == 0:
            return np.zeros(n, np.float32)
        return np.tile(x, n // x.shape[0] + 1)[:n]


def augment_waveform(x: np.ndarray, sample_rate: int, cfg: AugmentConfig, rng: np.random.Generator,
                     backgrounds: Backgrounds | None = None) -> np.ndarray:
    """One clip ``[samples]`` (float32): time shift, a background recording, noise, low-pass, a
    random frequency response, reverberation, gain, clipping.

    The background is scaled to a random SNR against the clip. Noise comes before the low-pass so
    that band-limiting also removes it from the high band (a band-limited source has no energy
    there at all).
    """
    x = np.asarray(x, np.float32).copy()
    n = x.shape[0]
    if cfg.shift > 0:
        s = int(rng.integers(-int(cfg.shift * n), int(cfg.shift * n) + 1))
        if s > 0:
            x = np.concatenate([np.zeros(s, np.float32), x[:-s]])
        elif s < 0:
            x = np.concatenate([x[-s:], np.zeros(-s, np.float32)])
    if cfg.background_prob > 0 and rng.random() < cfg.background_prob:
        if backgrounds is None:
            raise AculaError("background_prob > 0 but no background recordings were given")
        b = backgrounds.segment(n, rng).astype(np.float64)
        power, b_power = float(np.mean(x.astype(np.float64) ** 2)), float(np.mean(b ** 2))
        snr = rng.uniform(*cfg.background_snr_db)
        if b_power > 0:
            scale = np.sqrt(power / (b_power * 10 ** (snr / 10))) if power > 0 else 1e-2 / np.sqrt(b_power)
            x = (x + scale * b).astype(np.float32)
    if cfg.noise_prob > 0 and rng.random() < cfg.noise_prob:
        power = float(np.mean(x.astype(np.float64) ** 2))
        snr = rng.uniform(*cfg.snr_db)
        sigma = np.sqrt(power / 10 ** (snr / 10)) if power > 0 else 1e-4
        x = x + rng.standard_normal(n).astype(np.float32) * np.float32(sigma)
    if cfg.lowpass_prob > 0 and rng.random() < cfg.lowpass_prob:
        top = min(cfg.lowpass_hz[1], sample_rate / 2)
        bottom = min(cfg.lowpass_hz[0], top)
        x = lowpass(x, float(rng.uniform(bottom, top)), sample_rate)
    if cfg.eq_prob > 0 and rng.random() < cfg.eq_prob:
        x = random_eq(x, sample_rate, cfg.eq_db, rng)
    if cfg.reverb_prob > 0 and rng.random() < cfg.reverb_prob:
        x = reverberate(x, sample_rate, float(rng.uniform(*cfg.reverb_s)), rng)
    if cfg.gain_db > 0:
        x = x * np.float32(10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20))
    if cfg.clip_prob > 0 and rng.random() < cfg.clip_prob:
        peak = float(np.abs(x).max())
        if peak > 0:
            level = np.float32(peak * rng.uniform(*cfg.clip_level))
            x = np.clip(x, -level, level)
    return x.astype(np.float32)


def reverberate(x: np.ndarray, sample_rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a decaying-noise impulse response (``rt60`` seconds to -60 dB), direct path first,
    scaled back to the input's RMS."""
    n = max(1, int(rt60 * sample_rate))
    t = np.arange(n) / sample_rate
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0
    y = np.fft.irfft(np.fft.rfft(x, x.size + n) * np.fft.rfft(ir, x.size + n), x.size + n)[: x.size]
    rms_in, rms_out = float(np.sqrt(np.mean(x ** 2))), float(np.sqrt(np.mean(y ** 2)))
    return (y * (rms_in / rms_out if rms_out > 0 else 1.0)).astype(np.float32)


def spec_masks(n_mels: int, n_frames: int, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """A boolean ``[n_mels, n_frames]`` mask (True = hidden) of SpecAugment time and frequency bands."""
    m = np.zeros((n_mels, n_frames), bool)
    widest_t = int(cfg.time_mask_frac * n_frames)
    for _ in range(cfg.time_masks if widest_t > 0 else 0):
        w = int(rng.integers(1, widest_t + 1))
        s = int(rng.integers(0, n_frames - w + 1))
        m[:, s:s + w] = True
    widest_f = min(cfg.freq_mask_bins, n_mels - 1)
    for _ in range(cfg.freq_masks if widest_f > 0 else 0):
        w = int(rng.integers(1, widest_f + 1))
        s = int(rng.integers(0, n_mels - w + 1))
        m[s:s + w, :] = True
    return m


__all__ = ["AUDIO_SUFFIXES", "AugmentConfig", "Backgrounds", "augment_waveform", "lowpass", "random_eq", "reverberate",
           "spec_masks"]
