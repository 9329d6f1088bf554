"""Synthetic cardio-respiratory corpus: lung, heart, cough and breath sounds with metadata and labels.

A toy stand-in for ICBHI / CirCor / Coswara-style data that needs no download, for tests, demos
and CPU-only smoke runs of the whole pipeline::

    python -m acula_edge.data.synth --out data/synth --n 500 --seed 0

writes ``audio/<id>.wav`` (16-bit PCM), ``manifest.jsonl`` (one :class:`Recording` per line,
``path`` relative to the output folder; load it with ``load("synthetic", folder)``),
``synth_config.json`` (the resolved configuration) and ``synth_summary.json`` (counts of
recordings, subjects, modalities and label values from :func:`acula_edge.data.summary.summarize`).

The generative story, per subject: age, sex and smoking are drawn first; the condition depends on
them (COPD in older smokers, asthma and URTI in the young, heart failure in the elderly, ...), with
plenty of noise; the subject's findings (wheeze, crackles and their type, murmur, irregular rhythm,
third heart sound, wet cough, respiratory and heart rate) depend on the condition, again
probabilistically, and each clip shows the subject's findings with some chance. So metadata
carries information that the audio labels do not, and vice versa.

Per clip, a modality (lung, heart, cough, breath), a site and a device are drawn. Sounds:

* lung: breath noise (vesicular, or bronchial at the trachea) under a breathing-cycle envelope,
  faint heart sounds; wheezes (tonal 100-1000 Hz, harmonics, glide, mostly expiratory) and
  crackles (fine: short, high, late-inspiratory; coarse: longer, lower, early-inspiratory).
* heart: S1/S2 (split components) at a heart rate, regular with sinus arrhythmia or irregular,
  optional S3, systolic (ejection or holosystolic) or diastolic (decrescendo or rumble) murmurs
  as band-limited noise between the sounds.
* cough: 1-4 coughs, each an explosive burst, a noisy intermediate phase and an optional voiced
  phase; wet coughs are lower, longer and rattle (transients), dry ones are higher and cleaner.
* breath: mouth breathing with vocal-tract resonances at the subject's respiratory rate.

Each device has its own band limits (a 4 kHz stethoscope keeps nothing above 2 kHz), frequency
response, additive noise at an SNR, hum and gain (phones clip now and then).

Labels (present only for the modality that has them):

* lung: ``adventitious`` (0/1: wheeze or crackle, as for SPRSound, ICBHI and KAUH), ``wheeze``,
  ``crackle`` (0/1), ``crackle_type`` (none/fine/coarse), ``resp_rate`` (breaths/min), ``condition``
* heart: ``abnormal`` (abnormal/normal, as for PhysioNet 2016: a murmur, an irregular rhythm or a
  third heart sound), ``murmur`` (absent/systolic/diastolic), ``rhythm`` (regular/irregular),
  ``heart_rate`` (beats/min), ``condition``
* cough: ``cough_type`` (wet/dry), ``condition``
* breath: ``resp_rate``, ``condition``

Deterministic by seed: subject ``k`` draws from ``SeedSequence(seed, spawn_key=(k, 0))`` and its
clip ``j`` from ``SeedSequence(seed, spawn_key=(k, j + 1))``, so a clip never depends on how many
clips are generated (``--n 10`` is a prefix of ``--n 1000``).

Label names mean the same in every dataset, so a task chosen by name (``adventitious``,
``abnormal``, ``wheeze``, ...) can mix this corpus with the real ones.

Imports only numpy and soundfile (device side); every loop is over events, never over samples.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from acula_edge import __version__
from acula_edge.data.records import Recording, atomic_write_text, write_manifest
from acula_edge.data.summary import summarize
from acula_edge.cli import Parser, guarded
from acula_edge.errors import AculaError

GENERATOR_VERSION = 2  # bump whenever the audio or the records for a given seed change
DATASET = "synthetic"
MANIFEST_NAME = "manifest.jsonl"  # the one definition: datasets/synthetic.py imports it
CONFIG_NAME = "synth_config.json"
SUMMARY_NAME = "synth_summary.json"
AUDIO_DIR = "audio"

SYNTH_MODALITIES = ("lung", "heart", "cough", "breath")
CONDITIONS = (
    "healthy",
    "asthma",
    "COPD",
    "pneumonia",
    "bronchiectasis",
    "heart failure",
    "valve disease",
    "COVID-19",
    "URTI",
)
LUNG_SITES = ("trachea", "anterior left", "anterior right", "posterior left", "posterior right",
              "lateral left", "lateral right")
_LUNG_SITE_W = (0.10, 0.13, 0.13, 0.19, 0.19, 0.13, 0.13)
HEART_SITES = ("aortic", "pulmonic", "tricuspid", "mitral")
MURMURS = ("absent", "systolic", "diastolic")

# Label names per modality (the tasks a downstream evaluation can choose by name).
LABELS = {
    "lung": ("adventitious", "wheeze", "crackle", "crackle_type", "resp_rate", "condition"),
    "heart": ("abnormal", "murmur", "rhythm", "heart_rate", "condition"),
    "cough": ("cough_type", "condition"),
    "breath": ("resp_rate", "condition"),
}


class SynthError(AculaError):
    """Bad options for the synthetic corpus (count, rate, duration, modalities, devices)."""


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class Device:
    """A recording device's signature: band limits, response, noise, hum and gain."""

    name: str
    kind: str  # stethoscope | microphone | phone
    highpass: float  # Hz
    hp_order: int
    lowpass: float  # Hz: the band limit (half the native rate for low-rate stethoscopes)
    lp_order: int
    peaks: tuple[tuple[float, float, float], ...]  # (centre Hz, width Hz, gain: 1 = +6 dB)
    snr_db: tuple[float, float]
    noise_tilt: float  # 0 white, 1 pink-ish (low-frequency handling/friction/room noise)
    hum: float  # mains hum amplitude relative to the device noise RMS (0 = none)
    peak: tuple[float, float]  # target peak level after the device's gain/AGC (> 1 clips)


DEVICES: dict[str, Device] = {
    d.name: d
    for d in (
        # Electronic stethoscope recording at 4 kHz: nothing above 2 kHz, bell-like low boost.
        Device("Littmann 3200", "stethoscope", 20.0, 2, 2000.0, 8, ((150.0, 120.0, 1.0),),
               (26.0, 40.0), 1.0, 0.0, (0.3, 0.7)),
        # Stethoscope recording at 8 kHz: band limit 4 kHz, mild presence bump.
        Device("Meditron", "stethoscope", 40.0, 2, 4000.0, 6, ((300.0, 250.0, 0.6),),
               (18.0, 32.0), 0.7, 0.0, (0.2, 0.6)),
        # Lavalier microphone in a stethoscope tube: wide band, noisier, mains hum.
        Device("AKG C417L", "microphone", 70.0, 2, 7000.0, 4, ((1000.0, 600.0, 0.3),),
               (12.0, 26.0), 0.5, 0.6, (0.15, 0.5)),
        # Phone at the mouth: low cut, presence peak, room noise, AGC that sometimes clips.
        Device("smartphone", "phone", 150.0, 3, 7600.0, 8, ((2800.0, 1200.0, 0.5),),
               (10.0, 28.0), 1.0, 0.3, (0.4, 1.05)),
    )
}
_DEVICE_W = {
    "lung": {"Littmann 3200": 0.40, "Meditron": 0.35, "AKG C417L": 0.25},
    "heart": {"Littmann 3200": 0.55, "Meditron": 0.35, "AKG C417L": 0.10},
    "cough": {"smartphone": 0.85, "AKG C417L": 0.15},
    "breath": {"smartphone": 0.85, "AKG C417L": 0.15},
}

# --------------------------------------------------------------------------- subjects

_COND_INDEX = {c: i for i, c in enumerate(CONDITIONS)}


def _table(default: float, **kw: float) -> np.ndarray:
    names = {"HF": "heart failure", "valve": "valve disease", "COVID": "COVID-19"}
    out = np.full(len(CONDITIONS), default)
    for k, v in kw.items():
        out[_COND_INDEX[names.get(k, k)]] = v
    return out


P_WHEEZE = _table(0.04, asthma=0.70, COPD=0.50, pneumonia=0.15, bronchiectasis=0.35, HF=0.20,
                  valve=0.05, COVID=0.10, URTI=0.15)
P_CRACKLE = _table(0.04, asthma=0.08, COPD=0.40, pneumonia=0.70, bronchiectasis=0.70, HF=0.60,
                   valve=0.10, COVID=0.35, URTI=0.08)
P_FINE = _table(0.5, COPD=0.4, pneumonia=0.35, bronchiectasis=0.15, HF=0.85, COVID=0.8)
P_SYSTOLIC = _table(0.06, healthy=0.07, valve=0.60, HF=0.35)
P_DIASTOLIC = _table(0.01, healthy=0.005, valve=0.25, HF=0.05)
P_IRREGULAR = _table(0.03, HF=0.35, valve=0.25, COPD=0.10)
P_S3 = _table(0.02, HF=0.40, valve=0.10)
P_WET = _table(0.30, healthy=0.25, asthma=0.20, COPD=0.65, pneumonia=0.80, bronchiectasis=0.90,
               HF=0.50, COVID=0.25, URTI=0.50)
RR_UP = _table(0.0, asthma=3.0, COPD=4.0, pneumonia=8.0, bronchiectasis=3.0, HF=5.0, COVID=5.0,
               URTI=2.0)
HR_UP = _table(0.0, COPD=6.0, pneumonia=15.0, HF=12.0, COVID=10.0, URTI=6.0, asthma=4.0)
SYMPTOMS = {
    "cough": _table(0.05, asthma=0.6, COPD=0.7, pneumonia=0.85, bronchiectasis=0.9, HF=0.3,
                    valve=0.1, COVID=0.7, URTI=0.8),
    "fever": _table(0.02, COPD=0.1, pneumonia=0.7, bronchiectasis=0.2, COVID=0.6, URTI=0.5),
    "shortness of breath": _table(0.03, asthma=0.7, COPD=0.8, pneumonia=0.6, bronchiectasis=0.5,
                                  HF=0.8, valve=0.4, COVID=0.4, URTI=0.1),
    "wheezing": _table(0.02, asthma=0.6, COPD=0.4, bronchiectasis=0.2, HF=0.1),
    "sputum": _table(0.03, COPD=0.5, pneumonia=0.6, bronchiectasis=0.85, URTI=0.3, COVID=0.15),
    "chest pain": _table(0.02, pneumonia=0.3, HF=0.2, valve=0.25, COVID=0.15),
    "sore throat": _table(0.03, URTI=0.6, COVID=0.4),
    "loss of smell": _table(0.005, COVID=0.4, URTI=0.05),
    "fatigue": _table(0.08, COPD=0.4, pneumonia=0.5, HF=0.6, valve=0.4, COVID=0.6, URTI=0.3),
    "leg swelling": _table(0.01, HF=0.5, valve=0.1),
}


@dataclass
class Subject:
    """One synthetic person: the facts a report may state, and the hidden phenotype."""

    id: str
    age: int
    sex: str
    smoker: str
    condition: str
    symptoms: tuple[str, ...]
    n_clips: int
    resp_rate: float  # breaths/min at rest
    heart_rate: float  # beats/min at rest
    wheeze: bool
    crackle: str  # none | fine | coarse
    murmur: str  # absent | systolic | diastolic
    murmur_kind: str  # "", ejection, holosystolic, decrescendo, rumble
    murmur_site: str
    irregular: bool
    s3: bool
    wet_cough: bool

    def metadata(self) -> dict[str, Any]:
        """Facts about the person (what a clinical report would state)."""
        return {
            "age": self.age,
            "sex": self.sex,
            "smoker": self.smoker,
            "condition": self.condition,
            "symptoms": ", ".join(self.symptoms) if self.symptoms else "none",
        }


def condition_probabilities(age: float, sex: str, smoker: bool) -> np.ndarray:
    """P(condition | age, sex, smoking), in the order of ``CONDITIONS``."""
    a, s, m = float(age), float(smoker), float(sex == "male")
    logit = np.array([
        1.2 - 0.02 * max(a - 40, 0),  # healthy
        0.1 + 0.9 * (a < 30) - 0.025 * max(a - 30, 0) + 0.2 * s,  # asthma
        -2.6 + 0.06 * max(a - 35, 0) + 1.9 * s,  # COPD
        -0.5 + 0.9 * (a < 6) + 0.03 * max(a - 60, 0) + 0.3 * s,  # pneumonia
        -1.7 + 0.015 * a,  # bronchiectasis
        -2.2 + 0.085 * max(a - 45, 0) + 0.3 * s + 0.2 * m - 2.0 * (a < 30),  # heart failure
        -1.0 + 0.04 * max(a - 50, 0) + 0.7 * (a < 15),  # valve disease
        -0.5 + 0.008 * a - 1.5 * (a < 12),  # COVID-19
        -0.2 + 1.1 * (a < 12) - 0.01 * a,  # URTI
    ])
    p = np.exp(logit - logit.max())
    return p / p.sum()


def sample_subject(rng: np.random.Generator, index: int, cfg: "SynthConfig | None" = None) -> Subject:
    """Draw subject number ``index`` (0-based): demographics, condition, findings, clip count."""
    cfg = cfg or SynthConfig()
    if rng.random() < 0.18:
        age = int(rng.integers(1, 18))
    else:
        age = int(np.clip(round(rng.normal(52, 18)), 18, 92))
    sex = "male" if rng.random() < 0.5 else "female"
    p_smoke = 0.0 if age < 15 else 0.16 + 0.06 * (sex == "male") + 0.10 * (35 <= age <= 75)
    smoker = bool(rng.random() < p_smoke)
    ci = int(rng.choice(len(CONDITIONS), p=condition_probabilities(age, sex, smoker)))
    cond = CONDITIONS[ci]
    symptoms = tuple(s for s, p in SYMPTOMS.items() if rng.random() < p[ci])

    base_rr = 40.0 if age < 1 else 28.0 if age < 6 else 21.0 if age < 13 else 15.0
    resp_rate = float(np.clip(base_rr + RR_UP[ci] + rng.normal(0, 2.5), 8, 60))
    base_hr = 110.0 if age < 6 else 90.0 if age < 13 else 72.0
    heart_rate = float(np.clip(base_hr + HR_UP[ci] + rng.normal(0, 9), 45, 170))

    wheeze = bool(rng.random() < P_WHEEZE[ci])
    crackle = "none"
    if rng.random() < P_CRACKLE[ci]:
        crackle = "fine" if rng.random() < P_FINE[ci] else "coarse"
    u = rng.random()
    p_sys = P_SYSTOLIC[ci] + (0.12 if age < 13 and cond == "healthy" else 0.0)  # innocent murmurs
    if u < p_sys:
        murmur = "systolic"
        kind = "ejection" if rng.random() < 0.55 else "holosystolic"
        msite = "aortic" if kind == "ejection" else "mitral"
    elif u < p_sys + P_DIASTOLIC[ci]:
        murmur = "diastolic"
        kind = "decrescendo" if rng.random() < 0.6 else "rumble"
        msite = "aortic" if kind == "decrescendo" else "mitral"
    else:
        murmur, kind, msite = "absent", "", ""
    irregular = bool(rng.random() < P_IRREGULAR[ci] + 0.004 * max(age - 60, 0))
    s3 = bool(rng.random() < P_S3[ci])
    wet = bool(rng.random() < P_WET[ci])
    lo, hi = cfg.clips_per_subject
    n_clips = int(rng.integers(lo, hi + 1))
    return Subject(
        id=f"{cfg.id_prefix}-{index + 1:04d}", age=age, sex=sex, smoker="yes" if smoker else "no",
        condition=cond, symptoms=symptoms, n_clips=n_clips, resp_rate=resp_rate,
        heart_rate=heart_rate, wheeze=wheeze, crackle=crackle, murmur=murmur, murmur_kind=kind,
        murmur_site=msite, irregular=irregular, s3=s3, wet_cough=wet,
    )


# --------------------------------------------------------------------------- config


@dataclass
class SynthConfig:
    """Everything that shapes the corpus besides ``n`` and ``seed``."""

    sample_rate: int = 16000
    duration: float = 5.0
    clips_per_subject: tuple[int, int] = (1, 4)
    modality_weights: dict[str, float] = field(
        default_factory=lambda: {"lung": 0.35, "heart": 0.25, "cough": 0.2, "breath": 0.2})
    devices: tuple[str, ...] | None = None  # None: all of DEVICES
    id_prefix: str = "syn"

    def validate(self) -> "SynthConfig":
        """Check the options; raise :class:`SynthError` with a clear message otherwise."""
        if not isinstance(self.sample_rate, (int, np.integer)) or not 4000 <= self.sample_rate <= 48000:
            raise SynthError(f"sample rate must be an integer from 4000 to 48000 Hz, got {self.sample_rate}")
        if not (isinstance(self.duration, (int, float)) and math.isfinite(self.duration)
                and 1.0 <= self.duration <= 600.0):
            raise SynthError(f"duration must be from 1 to 600 seconds, got {self.duration}")
        lo, hi = self.clips_per_subject
        if not (1 <= lo <= hi):
            raise SynthError(f"clips per subject must satisfy 1 <= min <= max, got {lo}-{hi}")
        bad = set(self.modality_weights) - set(SYNTH_MODALITIES)
        if bad:
            raise SynthError(f"unknown modalities {sorted(bad)}; choose from {', '.join(SYNTH_MODALITIES)}")
        w = list(self.modality_weights.values())
        if not w or any((not math.isfinite(v)) or v < 0 for v in w) or sum(w) <= 0:
            raise SynthError("modality weights must be non-negative with a positive sum")
        if self.devices is not None:
            unknown = [d for d in self.devices if d not in DEVICES]
            if unknown or not self.devices:
                raise SynthError(f"unknown devices {unknown}; choose from {', '.join(DEVICES)}")
        if not self.id_prefix or any(c in self.id_prefix for c in "/\\ "):
            raise SynthError(f"bad id prefix {self.id_prefix!r}")
        return self

    @property
    def n_samples(self) -> int:
        """Samples per clip."""
        return int(round(self.duration * self.sample_rate))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        d = asdict(self)
        d["clips_per_subject"] = list(self.clips_per_subject)
        d["devices"] = list(self.devices) if self.devices is not None else list(DEVICES)
        return d


# --------------------------------------------------------------------------- signal helpers

TWO_PI = 2.0 * math.pi


@lru_cache(maxsize=8)
def _freqs(n: int, sr: int) -> np.ndarray:
    """The rfft frequency grid (float32), with a tiny non-zero first bin."""
    f = np.fft.rfftfreq(n, 1.0 / sr)
    f[0] = f[1] * 0.5  # avoid division by zero in the shapes below
    f = f.astype(np.float32)
    f.flags.writeable = False
    return f


@lru_cache(maxsize=8)
def _time(n: int, sr: int) -> np.ndarray:
    t = (np.arange(n, dtype=np.float64) / sr).astype(np.float32)
    t.flags.writeable = False
    return t


def _bw(f: np.ndarray, lo: float | None, hi: float | None, order: int = 2) -> np.ndarray:
    """Butterworth-like band-pass magnitude (high-pass ``lo``, low-pass ``hi``)."""
    g = np.ones_like(f)
    if hi is not None:
        r = f * np.float32(1.0 / hi)
        r *= r
        g /= np.sqrt(1.0 + r ** order)
    if lo is not None:
        r = np.float32(lo) / f
        r *= r
        g /= np.sqrt(1.0 + r ** order)
    return g


def _bump(f: np.ndarray, centre: float, width: float, gain: float) -> np.ndarray:
    """``1 + gain`` at ``centre`` falling to 1 over about ``width`` Hz (a resonance)."""
    z = (f - np.float32(centre)) * np.float32(1.0 / width)
    return 1.0 + np.float32(gain) * np.exp(np.float32(-0.5) * z * z)


@lru_cache(maxsize=32)
def _device_shapes(name: str, n: int, sr: int) -> tuple[np.ndarray, np.ndarray, float]:
    """A device's response and noise power spectrum on the rfft grid, and the noise's energy."""
    d = DEVICES[name]
    f = _freqs(n, sr)
    h = _bw(f, None, min(d.lowpass, 0.45 * sr), d.lp_order) * _bw(f, d.highpass, None, d.hp_order)
    for c, w, g in d.peaks:
        h = h * _bump(f, c, w, g)
    noise = h * (1.0 / np.sqrt(1.0 + f / np.float32(200.0))) ** np.float32(d.noise_tilt)
    h, noise = h.astype(np.float32), noise.astype(np.float32)
    h.flags.writeable = False
    noise.flags.writeable = False
    n2 = noise * noise
    n2.flags.writeable = False
    return h, n2, float(n2.sum(dtype=np.float64))


@lru_cache(maxsize=64)
def _device_small(name: str, n: int, sr: int, L: int) -> np.ndarray:
    """A device's response sampled on the rfft grid of a short ``L``-sample buffer."""
    h = _device_shapes(name, n, sr)[0]
    out = np.interp(np.fft.rfftfreq(L, 1.0 / sr), _freqs(n, sr), h).astype(np.float32)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=64)
def _background(kind: str, name: str, n: int, sr: int) -> tuple[np.ndarray, float]:
    """Squared magnitude of a stationary background (through the device) and its energy."""
    f = _freqs(n, sr)
    lo, hi, order = _BACKGROUNDS[kind]
    b = _bw(f, lo, hi, order) * _device_shapes(name, n, sr)[0]
    b2 = (b * b).astype(np.float32)
    b2.flags.writeable = False
    return b2, float(b2.sum(dtype=np.float64))


# Stationary backgrounds (band, order): body sounds under a stethoscope, a room around a phone.
_BACKGROUNDS = {"body": (20.0, 300.0, 1), "heart_body": (20.0, 200.0, 2), "room": (60.0, 3000.0, 1)}


class _Ctx:
    """One clip being made: sizes, the device (its response is applied to every component as it
    is made, so no full-length forward FFT is needed), a 1 kHz control grid for envelopes, events."""

    def __init__(self, n: int, sr: int, device: Device):
        self.n, self.sr, self.dev = n, sr, device
        self.dur = n / sr
        self.hop = max(1, int(round(sr / 1000)))
        self.m = -(-n // self.hop) + 1
        self.tc = np.arange(self.m) * (self.hop / sr)
        self.f = _freqs(n, sr)
        self.h = _device_shapes(device.name, n, sr)[0]
        self.pad = int(0.008 * sr)  # room for the device filter's ringing around a transient
        self.events: list[dict[str, Any]] = []

    # -- components, each passed through the device response
    def noise(self, rng: np.random.Generator, mag: np.ndarray) -> np.ndarray:
        """Random-phase noise with magnitude spectrum ``mag``, unit RMS before the device."""
        m = mag.astype(np.float32, copy=False)
        scale = self.n / math.sqrt(2.0 * float(np.dot(m, m)) or 1.0)
        ph = rng.random(m.size, dtype=np.float32) * np.float32(TWO_PI)
        hm = m * self.h
        hm *= np.float32(scale)
        spec = np.empty(m.size, np.complex64)
        spec.real = hm * np.cos(ph)
        spec.imag = hm * np.sin(ph)
        return np.fft.irfft(spec, self.n)

    def gain(self, freq: float) -> float:
        """The device's gain at ``freq`` Hz (nearest bin)."""
        return float(self.h[min(self.h.size - 1, max(0, int(round(freq * self.n / self.sr))))])

    def filt(self, templates: np.ndarray) -> np.ndarray:
        """Short waveforms (rows) through the device, padded by ``self.pad`` on each side."""
        k, L = templates.shape
        P = self.pad
        Lp = -(-(L + 2 * P) // 256) * 256
        buf = np.zeros((k, Lp), np.float32)
        buf[:, P:P + L] = templates
        B = np.fft.rfft(buf, axis=1)
        B *= _device_small(self.dev.name, self.n, self.sr, Lp)
        return np.fft.irfft(B, Lp, axis=1)

    def place(self, x: np.ndarray, starts: np.ndarray, templates: np.ndarray, filtered: bool = False) -> None:
        """Add ``templates[i]`` into ``x`` at sample ``starts[i]`` (through the device unless
        ``filtered``, i.e. already from :meth:`filt`); vectorised, clipped to the clip."""
        if len(starts) == 0:
            return
        starts = np.asarray(starts, dtype=np.int64)
        if not filtered:
            templates = self.filt(templates)
        starts = starts - self.pad
        L = templates.shape[1]
        n = self.n
        for s0, w in zip(starts.tolist(), templates):
            a, b = max(0, s0), min(n, s0 + L)
            if b > a:
                x[a:b] += w[a - s0:b - s0]

    def up(self, e: np.ndarray) -> np.ndarray:
        """Linear interpolation of a control-rate envelope to the sample rate."""
        e = e.astype(np.float32, copy=False)
        w = np.arange(self.hop, dtype=np.float32) / np.float32(self.hop)
        a = e[:-1, None]
        return (a + (e[1:, None] - a) * w).ravel()[: self.n]

    def event(self, start: float, end: float, kind: str, **extra: Any) -> None:
        s, e = round(max(0.0, float(start)), 4), round(min(self.dur, float(end)), 4)
        if e > self.dur:
            e = math.floor(self.dur * 1e4) / 1e4
        if e - s > 1e-4:
            self.events.append({"start": s, "end": e, "type": kind, **extra})

    def finish(self, rng: np.random.Generator, x: np.ndarray, background: str, bg_level: float) -> np.ndarray:
        """Add background and device noise at an SNR (one inverse FFT), hum, gain, clip to [-1, 1]."""
        n, dev = self.n, self.dev
        ps = float(np.dot(x, x)) / n or 1e-12  # signal power, after the device
        snr = rng.uniform(*dev.snr_db)
        p_noise = ps / 10 ** (snr / 10)
        _, n2, n_energy = _device_shapes(dev.name, n, self.sr)
        b2, b_energy = _background(background, dev.name, n, self.sr)
        # mean(x^2) of irfft(mag * e^{i phase}) is 2 * sum(mag^2) / n^2
        c_dev = p_noise * n * n / (2.0 * n_energy)
        c_bg = ps * bg_level ** 2 * n * n / (2.0 * b_energy)
        mag = np.sqrt(np.float32(c_dev) * n2 + np.float32(c_bg) * b2)
        ph = rng.random(mag.size, dtype=np.float32) * np.float32(TWO_PI)
        spec = np.empty(mag.size, np.complex64)
        spec.real = mag * np.cos(ph)
        spec.imag = mag * np.sin(ph)
        y = np.fft.irfft(spec, n)
        y += x
        if dev.hum > 0:
            t = _time(n, self.sr)
            mains = 50.0 if rng.random() < 0.5 else 60.0
            a = np.float32(dev.hum * math.sqrt(2.0 * p_noise))
            y += a * (np.sin(np.float32(TWO_PI * mains) * t + np.float32(rng.uniform(0, TWO_PI)))
                      + np.float32(0.5) * np.sin(np.float32(TWO_PI * 3 * mains) * t + np.float32(rng.uniform(0, TWO_PI))))
        peak = max(float(y.max()), -float(y.min())) or 1.0
        y *= np.float32(rng.uniform(*dev.peak) / peak)
        np.clip(y, -1.0, 1.0, out=y)
        return y


def _cycles(rng: np.random.Generator, ctx: _Ctx, rate: float, insp: float, pause: float):
    """Breathing cycles covering the clip: starts, inspiration end, expiration end, periods (s)."""
    T = 60.0 / rate
    k = int(ctx.dur / (0.7 * T)) + 3
    periods = T * np.clip(1.0 + 0.08 * rng.standard_normal(k), 0.7, 1.3)
    starts = -rng.uniform(0.0, T) + np.concatenate([[0.0], np.cumsum(periods[:-1])])
    fi = np.clip(insp + 0.03 * rng.standard_normal(k), 0.25, 0.5)
    fp = np.clip(pause + 0.03 * rng.standard_normal(k), 0.0, 0.3)
    keep = starts < ctx.dur
    starts, periods, fi, fp = starts[keep], periods[keep], fi[keep], fp[keep]
    return starts, starts + fi * periods, starts + (1.0 - fp) * periods, periods


def _breath_env(rng, ctx: _Ctx, cyc, exp_amp: float, power: float = 1.2) -> np.ndarray:
    """Control-rate amplitude envelope: inspiration, expiration (``exp_amp``), pause."""
    starts, ie, ee, _ = cyc
    tc = ctx.tc
    i = np.clip(np.searchsorted(starts, tc, side="right") - 1, 0, len(starts) - 1)
    amp = np.clip(1.0 + 0.12 * rng.standard_normal(len(starts)), 0.6, 1.4)
    s, a, b = starts[i], ie[i], ee[i]
    x_in = (tc - s) / (a - s)
    x_ex = (tc - a) / (b - a)
    env = np.where(x_in < 1.0, np.sin(np.pi * np.clip(x_in, 0, 1)),
                   np.where(x_ex < 1.0, exp_amp * np.sin(np.pi * np.clip(x_ex, 0, 1)), 0.0))
    env = np.maximum(env, 0.0) ** power * amp[i]
    return env + 0.02  # never fully silent


def _phase_events(ctx: _Ctx, cyc) -> None:
    starts, ie, ee, _ = cyc
    for s, a, b in zip(starts, ie, ee):
        ctx.event(s, a, "inspiration")
        ctx.event(a, b, "expiration")


def _tone(rng, ctx: _Ctx, x: np.ndarray, t0: float, t1: float, f0: float, amp: float,
          glide: float, harmonics: Sequence[float]) -> None:
    """Add a gliding harmonic tone on [t0, t1) with raised-cosine ramps."""
    s0, s1 = max(0, int(t0 * ctx.sr)), min(ctx.n, int(t1 * ctx.sr))
    L = s1 - s0
    if L < 16:
        return
    u = np.arange(L) / L
    f = f0 * (1.0 + glide * u + 0.01 * np.sin(TWO_PI * rng.uniform(3, 8) * u * L / ctx.sr))
    ph = np.cumsum(f) * (TWO_PI / ctx.sr) + rng.uniform(0, TWO_PI)
    ph = np.mod(ph, TWO_PI).astype(np.float32)
    nyq = 0.45 * ctx.sr
    y = np.zeros(L, np.float32)
    for k, a in enumerate(harmonics, 1):
        fk = f0 * k * (1 + 0.5 * glide)
        if a > 0 and f0 * k * (1 + max(glide, 0)) < nyq:
            y += np.float32(a * ctx.gain(fk)) * np.sin(np.float32(k) * ph + np.float32(rng.uniform(0, TWO_PI)))
    r = max(1, min(L // 3, int(0.04 * ctx.sr)))
    ramp = (0.5 - 0.5 * np.cos(np.pi * np.arange(r) / r)).astype(np.float32)
    y[:r] *= ramp
    y[L - r:] *= ramp[::-1]
    x[s0:s1] += np.float32(amp) * y


def _crackles(rng, ctx: _Ctx, x: np.ndarray, times: np.ndarray, fine: bool, amp: float) -> None:
    """Add crackle transients (damped sinusoids: fine short/high, coarse long/low) at ``times``."""
    k = len(times)
    if k == 0:
        return
    if fine:
        f = rng.uniform(350, 800, k)
        tau = rng.uniform(0.0009, 0.0016, k)
    else:
        f = rng.uniform(120, 300, k)
        tau = rng.uniform(0.0025, 0.0045, k)
    a = amp * rng.uniform(0.5, 1.0, k) * np.where(rng.random(k) < 0.5, -1.0, 1.0)
    L = int(6 * tau.max() * ctx.sr) + 1
    t = np.arange(L) / ctx.sr
    w = a[:, None] * np.sin(TWO_PI * f[:, None] * t) * np.exp(-t / tau[:, None])
    ctx.place(x, np.round(times * ctx.sr), w)


def _beats(rng, ctx: _Ctx, hr: float, irregular: bool):
    """Beat onsets (s), their RR intervals and S1-S2 intervals, covering the clip."""
    RR = 60.0 / hr
    k = int(ctx.dur / (0.6 * RR)) + 3
    if irregular:  # atrial-fibrillation-like: irregularly irregular
        rr = RR * np.exp(0.22 * rng.standard_normal(k) - 0.5 * 0.22 ** 2)
    else:  # sinus rhythm with respiratory sinus arrhythmia
        rr = RR * (1.0 + 0.025 * rng.standard_normal(k)
                   + 0.03 * np.sin(TWO_PI * np.arange(k) * RR / rng.uniform(3, 5) + rng.uniform(0, TWO_PI)))
    rr = np.clip(rr, 0.3, 2.2)
    onsets = -rng.uniform(0.0, RR) + np.concatenate([[0.0], np.cumsum(rr[:-1])])
    keep = onsets < ctx.dur
    onsets, rr = onsets[keep], rr[keep]
    systole = np.minimum(0.04 + 0.30 * np.sqrt(rr), 0.6 * rr)
    return onsets, rr, systole


def _heart_templates(rng, sr: int, f_s1: float, f_s2: float, split1: float, split2: float):
    """S1 and S2 waveforms (two gaussian-windowed low-frequency components each)."""
    L = int(0.16 * sr)
    t = np.arange(L) / sr

    def comp(c, sigma, f):
        return np.exp(-0.5 * ((t - c) / sigma) ** 2) * np.sin(TWO_PI * f * (t - c) + rng.uniform(0, TWO_PI))

    s1 = comp(0.04, 0.012, f_s1) + 0.8 * comp(0.04 + split1, 0.011, f_s1 * rng.uniform(1.2, 1.6))
    s2 = comp(0.03, 0.008, f_s2) + 0.6 * comp(0.03 + split2, 0.008, f_s2 * rng.uniform(0.8, 1.1))
    return s1 / np.abs(s1).max(), s2 / np.abs(s2).max()


def _heart_sounds(rng, ctx: _Ctx, x: np.ndarray, hr: float, irregular: bool, amp: float,
                  s1_gain: float, s2_gain: float, s3: bool, events: bool):
    """Add S1/S2 (and S3) to ``x``; return the beat timing."""
    onsets, rr, systole = _beats(rng, ctx, hr, irregular)
    f1, f2 = rng.uniform(35, 70), rng.uniform(60, 110)
    sp1, sp2 = rng.uniform(0.01, 0.03), rng.uniform(0.02, 0.05)
    s1, s2 = _heart_templates(rng, ctx.sr, f1, f2, sp1, sp2)
    k = len(onsets)
    a1 = amp * s1_gain * np.clip(1 + 0.1 * rng.standard_normal(k), 0.6, 1.4)
    a2 = amp * s2_gain * np.clip(1 + 0.1 * rng.standard_normal(k), 0.6, 1.4)
    sr = ctx.sr
    s1f, s2f = ctx.filt(np.stack([s1, s2]))
    ctx.place(x, np.round(onsets * sr), a1[:, None] * s1f, filtered=True)
    ctx.place(x, np.round((onsets + systole - 0.03) * sr), a2[:, None] * s2f, filtered=True)
    d = rng.uniform(0.12, 0.17)  # S2 to S3
    has_s3 = (systole + d + 0.1 < rr) & s3
    if s3 and has_s3.any():
        L = int(0.12 * sr)
        t = np.arange(L) / sr
        w = np.exp(-0.5 * ((t - 0.05) / 0.015) ** 2) * np.sin(TWO_PI * rng.uniform(25, 40) * (t - 0.05))
        w = ctx.filt(w[None])[0] * (0.4 * amp * s2_gain * rng.uniform(0.6, 1.0))
        ctx.place(x, np.round((onsets[has_s3] + systole[has_s3] + d - 0.05) * sr),
                  np.broadcast_to(w, (int(has_s3.sum()), w.size)), filtered=True)
    if events:
        for o, sy, third in zip(onsets, systole, has_s3):
            ctx.event(o + 0.01, o + 0.07 + sp1, "S1")
            ctx.event(o + sy - 0.025, o + sy + sp2 + 0.025, "S2")
            if third:
                ctx.event(o + sy + d - 0.04, o + sy + d + 0.04, "S3")
    return onsets, rr, systole


# --------------------------------------------------------------------------- modalities


def _lung(rng, ctx: _Ctx, subj: Subject, site: str, f: np.ndarray):
    rate = float(np.clip(subj.resp_rate * (1 + 0.06 * rng.standard_normal()), 6, 70))
    cyc = _cycles(rng, ctx, rate, insp=rng.uniform(0.33, 0.45), pause=rng.uniform(0.0, 0.2))
    tracheal = site == "trachea"
    if tracheal:
        mag = _bw(f, rng.uniform(80, 150), rng.uniform(800, 1300), 2)
        exp_amp = rng.uniform(0.7, 1.0)
    else:
        mag = _bw(f, rng.uniform(50, 100), rng.uniform(180, 400), 2)
        exp_amp = rng.uniform(0.25, 0.55)
    x = ctx.noise(rng, mag) * ctx.up(_breath_env(rng, ctx, cyc, exp_amp))
    _phase_events(ctx, cyc)
    # faint heart sounds through the chest wall
    hb = rng.uniform(0.4, 1.0) if site == "anterior left" else rng.uniform(0.1, 0.4)
    _heart_sounds(rng, ctx, x, subj.heart_rate, subj.irregular, hb, 1.0, 0.7, False, False)

    starts, ie, ee, _ = cyc
    base = site.startswith(("posterior", "lateral"))
    wheeze = subj.wheeze and rng.random() < 0.85
    crackle = subj.crackle != "none" and rng.random() < (0.9 if base else 0.6 if tracheal else 0.75)
    if wheeze:
        _wheezes(rng, ctx, x, cyc, polyphonic=subj.condition == "COPD")
    if crackle:
        fine = subj.crackle == "fine"
        amp = rng.uniform(6.0, 14.0) if fine else rng.uniform(5.0, 12.0)
        placed = 0
        for s, a, b in zip(starts, ie, ee):
            d = a - s
            if fine:
                ts = s + d * rng.uniform(0.45, 0.95, rng.integers(4, 14))
            else:
                ts = s + d * rng.uniform(0.05, 0.5, rng.integers(2, 9))
                if rng.random() < 0.3:
                    ts = np.concatenate([ts, a + (b - a) * rng.uniform(0.05, 0.4, rng.integers(1, 4))])
            ts = np.sort(ts[(ts >= 0) & (ts < ctx.dur - 0.02)])
            if len(ts):
                _crackles(rng, ctx, x, ts, fine, amp)
                ctx.event(ts[0], ts[-1] + (0.006 if fine else 0.02), "crackle",
                          subtype=subj.crackle)
                placed += 1
        if not placed:  # the clip caught no usable cycle: put one cluster anywhere
            t0 = rng.uniform(0.1, ctx.dur - 0.5)
            ts = np.sort(t0 + rng.uniform(0, 0.3, rng.integers(4, 10)))
            _crackles(rng, ctx, x, ts, fine, amp)
            ctx.event(ts[0], ts[-1] + 0.02, "crackle", subtype=subj.crackle)
    labels = {
        "adventitious": int(wheeze or crackle),
        "wheeze": int(wheeze),
        "crackle": int(crackle),
        "crackle_type": subj.crackle if crackle else "none",
        "resp_rate": round(60.0 / float(np.mean(cyc[3])), 1),
        "condition": subj.condition,
    }
    return x, labels


def _wheezes(rng, ctx: _Ctx, x: np.ndarray, cyc, polyphonic: bool, amp_scale: float = 1.0) -> int:
    """Wheezes: tonal, mostly expiratory, 100-1000 Hz, harmonics, slight glide. Returns the count."""
    starts, ie, ee, _ = cyc
    n_tones = int(rng.integers(2, 4)) if polyphonic and rng.random() < 0.6 else 1
    f0s = np.exp(rng.uniform(math.log(120), math.log(900), n_tones))
    amp = rng.uniform(0.6, 2.0) * amp_scale
    placed = 0
    for s, a, b in zip(starts, ie, ee):
        if rng.random() > 0.85:
            continue
        lo, hi = (a, b) if rng.random() < 0.8 else (s, a)
        d = hi - lo
        t0 = lo + d * rng.uniform(0.0, 0.3)
        t1 = min(hi, t0 + max(0.25, d * rng.uniform(0.5, 0.95)))
        t0, t1 = max(t0, 0.0), min(t1, ctx.dur)
        if t1 - t0 < 0.12:
            continue
        for f0 in f0s:
            _tone(rng, ctx, x, t0, t1, f0 * rng.uniform(0.95, 1.05), amp / n_tones ** 0.5,
                  rng.uniform(-0.15, 0.1), (1.0, rng.uniform(0.2, 0.5), rng.uniform(0.05, 0.2)))
        ctx.event(t0, t1, "wheeze", frequency=round(float(f0s[0]), 1))
        placed += 1
    if not placed:
        t0 = rng.uniform(0.05, ctx.dur - 0.8)
        t1 = t0 + rng.uniform(0.3, 0.7)
        for f0 in f0s:
            _tone(rng, ctx, x, t0, t1, f0, amp / n_tones ** 0.5, rng.uniform(-0.15, 0.1),
                  (1.0, 0.3, 0.1))
        ctx.event(t0, t1, "wheeze", frequency=round(float(f0s[0]), 1))
        placed = 1
    return placed


_MURMUR_BAND = {"ejection": (100, 450), "holosystolic": (150, 600), "decrescendo": (200, 700),
                "rumble": (40, 150)}


def _heart(rng, ctx: _Ctx, subj: Subject, site: str, f: np.ndarray):
    # S1 loudest at the apex (mitral/tricuspid), S2 at the base (aortic/pulmonic)
    apex = site in ("mitral", "tricuspid")
    s1g, s2g = (1.0, rng.uniform(0.4, 0.7)) if apex else (rng.uniform(0.5, 0.8), 1.0)
    hr = float(np.clip(subj.heart_rate * (1 + 0.04 * rng.standard_normal()), 40, 180))
    s3 = subj.s3 and rng.random() < 0.7
    x = np.zeros(ctx.n, np.float32)
    onsets, rr, systole = _heart_sounds(rng, ctx, x, hr, subj.irregular, 1.0, s1g, s2g, s3, True)
    murmur = subj.murmur
    if murmur != "absent" and rng.random() > (0.95 if site == subj.murmur_site else 0.85):
        murmur = "absent"  # too soft to hear at this site in this clip
    if murmur != "absent":
        kind = subj.murmur_kind
        lo, hi = _MURMUR_BAND[kind]
        noise = ctx.noise(rng, _bw(f, lo, hi, 2))
        tc = ctx.tc
        i = np.clip(np.searchsorted(onsets, tc, side="right") - 1, 0, len(onsets) - 1)
        u = tc - onsets[i]
        sy, r = systole[i], rr[i]
        if murmur == "systolic":
            a, b = 0.06, sy - 0.015
            xx = (u - a) / (b - a)
            shape = np.sin(np.pi * np.clip(xx, 0, 1)) if kind == "ejection" else np.clip(np.minimum(6 * xx, 6 * (1 - xx)), 0, 1)
        else:
            a = sy + 0.05
            b = a + 0.6 * (r - a)
            xx = (u - a) / (b - a)
            inside = np.clip(xx, 0, 1)
            shape = np.minimum(1, 20 * inside) * np.exp(-2.5 * inside) if kind == "decrescendo" else np.sin(np.pi * inside) ** 2
        env = np.where((xx > 0) & (xx < 1), shape, 0.0)
        grade = rng.uniform(0.08, 0.3) * (1.0 if site == subj.murmur_site else rng.uniform(0.5, 0.8))
        x += noise * ctx.up(grade * env)
        for o, sy_, r_ in zip(onsets, systole, rr):
            if murmur == "systolic":
                ctx.event(o + 0.06, o + sy_ - 0.015, "murmur", subtype=kind)
            else:
                a_ = o + sy_ + 0.05
                ctx.event(a_, a_ + 0.6 * (r_ - sy_ - 0.05), "murmur", subtype=kind)
    inside = (onsets >= -1e-9) & (onsets < ctx.dur)
    rate = 60.0 / float(np.mean(rr[inside] if inside.sum() >= 2 else rr))
    labels = {
        "abnormal": "abnormal" if murmur != "absent" or subj.irregular or s3 else "normal",
        "murmur": murmur,
        "rhythm": "irregular" if subj.irregular else "regular",
        "heart_rate": round(rate, 1),
        "condition": subj.condition,
    }
    return x, labels, ("heart_body", rng.uniform(0.02, 0.06))  # body and breath noise


def _cough(rng, ctx: _Ctx, subj: Subject, f: np.ndarray):
    wet = subj.wet_cough if rng.random() < 0.9 else not subj.wet_cough
    if wet:
        mag = _bw(f, 80, rng.uniform(1200, 3000), 2) * _bump(f, rng.uniform(180, 400), 150, rng.uniform(1.0, 3.0))
    else:
        mag = _bw(f, rng.uniform(150, 300), rng.uniform(2500, 4500), 2) * _bump(f, rng.uniform(500, 900), 200, 1.5) \
            * _bump(f, rng.uniform(1300, 2300), 400, 1.0)
    noise = ctx.noise(rng, mag)
    env = np.zeros(ctx.m)
    tc = ctx.tc
    x_extra = np.zeros(ctx.n, np.float32)
    pitch = rng.uniform(250, 400) if subj.age < 13 else rng.uniform(170, 280) if subj.sex == "female" else rng.uniform(100, 160)
    t = rng.uniform(0.15, max(0.2, min(0.8, ctx.dur - 0.6)))
    n_max = int(rng.integers(1, 4)) + int(wet and rng.random() < 0.3)
    count = 0
    while count < n_max and t < ctx.dur - 0.3:
        p1 = rng.uniform(0.025, 0.05)
        p2 = rng.uniform(0.2, 0.4) if wet else rng.uniform(0.12, 0.25)
        voiced = rng.random() < 0.55
        p3 = rng.uniform(0.06, 0.16) if voiced else 0.0
        peak = rng.uniform(0.7, 1.0)
        # work on the control-grid slice around this cough only
        pre = 0.3
        i0 = max(0, int((t - pre) * ctx.sr / ctx.hop))
        i1 = min(ctx.m, int((t + p1 + p2) * ctx.sr / ctx.hop) + 2)
        if i1 <= i0:
            break
        tcs = tc[i0:i1]
        # inhalation before the cough
        xi = (tcs - (t - pre)) / (pre - 0.02)
        e0 = np.where((xi > 0) & (xi < 1), 0.04 * np.sin(np.pi * np.clip(xi, 0, 1)), 0.0)
        # explosive phase: a 3 ms attack, then decay towards the intermediate phase
        u = tcs - t
        att = np.clip(u / 0.003, 0, 1)
        e1 = np.where(u < p1, att * (1 - 0.55 * np.clip(u / p1, 0, 1)), 0.0)
        # intermediate phase: decaying turbulent noise (with rattle for wet coughs)
        v = (u - p1) / p2
        e2 = np.where((v >= 0) & (v < 1), 0.45 * np.exp(-2.2 * np.clip(v, 0, 1)) * np.clip((1 - v) * 8, 0, 1), 0.0)
        if wet:
            e2 *= 1 + 0.8 * (rng.random(i1 - i0) - 0.5)
        env[i0:i1] += e0 + peak * (e1 + e2)
        end = t + p1 + p2
        if wet:
            ts = np.sort(t + p1 + p2 * rng.uniform(0.0, 0.8, rng.integers(4, 12)))
            _crackles(rng, ctx, x_extra, ts[ts < ctx.dur - 0.02], False, peak * rng.uniform(0.4, 0.9))
        if voiced:
            t3 = t + p1 + p2 * rng.uniform(0.1, 0.3)
            harm = [1.0 / k for k in range(1, 1 + int(min(12, 3500 // pitch)))]
            _tone(rng, ctx, x_extra, t3, t3 + p3, pitch * rng.uniform(0.9, 1.1),
                  peak * rng.uniform(0.5, 1.0), rng.uniform(-0.15, 0.0), harm)
            end = max(end, t3 + p3)
        ctx.event(t, end, "cough", subtype="wet" if wet else "dry")
        count += 1
        t = end + rng.uniform(0.15, 0.9)
    x = noise * ctx.up(env * 3.0) + x_extra
    labels = {"cough_type": "wet" if wet else "dry", "condition": subj.condition}
    return x, labels, ("room", rng.uniform(0.005, 0.02))


def _breath(rng, ctx: _Ctx, subj: Subject, f: np.ndarray):
    rate = float(np.clip(subj.resp_rate * (1 + 0.06 * rng.standard_normal()), 6, 70))
    cyc = _cycles(rng, ctx, rate, insp=rng.uniform(0.35, 0.45), pause=rng.uniform(0.05, 0.25))
    mag = _bw(f, rng.uniform(120, 200), rng.uniform(1500, 2800), 2) \
        * _bump(f, rng.uniform(400, 700), 150, rng.uniform(0.5, 2.0)) \
        * _bump(f, rng.uniform(1100, 1800), 300, rng.uniform(0.3, 1.5))
    x = ctx.noise(rng, mag) * ctx.up(_breath_env(rng, ctx, cyc, rng.uniform(0.6, 1.0), 1.5))
    _phase_events(ctx, cyc)
    if subj.wheeze and rng.random() < 0.4:  # audible at the mouth, not labelled here
        _wheezes(rng, ctx, x, cyc, polyphonic=False, amp_scale=0.5)
    labels = {"resp_rate": round(60.0 / float(np.mean(cyc[3])), 1), "condition": subj.condition}
    return x, labels, ("room", rng.uniform(0.005, 0.02))


# --------------------------------------------------------------------------- clips


@dataclass
class SynthClip:
    """One generated clip: float32 audio in [-1, 1] and everything its record needs but a path."""

    audio: np.ndarray
    sample_rate: int
    subject: str
    modality: str
    device: str
    site: str
    metadata: dict[str, Any]
    labels: dict[str, Any]
    events: list[dict[str, Any]]

    def record(self, id: str, path: str) -> Recording:
        """The clip's :class:`Recording`, for audio stored at ``path``."""
        return Recording(
            id=id, path=path, dataset=DATASET, subject=self.subject, modality=self.modality,
            sample_rate=self.sample_rate, duration=round(len(self.audio) / self.sample_rate, 6),
            device=self.device, site=self.site, metadata=dict(self.metadata),
            labels=dict(self.labels), events=list(self.events),
        )


def _pick(rng, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[k] for k in names], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def generate_clip(rng: np.random.Generator, cfg: "SynthConfig | None" = None,
                  subject: Subject | None = None, modality: str | None = None) -> SynthClip:
    """Generate one clip from ``rng``; the subject and the modality are drawn unless given."""
    cfg = cfg or SynthConfig()
    subj = subject or sample_subject(rng, 0, cfg)
    mod = modality or _pick(rng, {k: v for k, v in cfg.modality_weights.items() if v > 0})
    if mod not in SYNTH_MODALITIES:
        raise SynthError(f"unknown modality {mod!r}; choose from {', '.join(SYNTH_MODALITIES)}")
    allowed = cfg.devices if cfg.devices is not None else tuple(DEVICES)
    dw = {k: v for k, v in _DEVICE_W[mod].items() if k in allowed} or {k: 1.0 for k in allowed}
    dev = DEVICES[_pick(rng, dw)]
    if mod == "lung":
        site = LUNG_SITES[int(rng.choice(len(LUNG_SITES), p=_LUNG_SITE_W))]
    elif mod == "heart":
        site = HEART_SITES[int(rng.integers(len(HEART_SITES)))]
    else:
        site = "mouth"
    ctx = _Ctx(cfg.n_samples, int(cfg.sample_rate), dev)
    f = ctx.f
    if mod == "lung":
        x, labels = _lung(rng, ctx, subj, site, f)
        bg = ("body", rng.uniform(0.01, 0.03))
    elif mod == "heart":
        x, labels, bg = _heart(rng, ctx, subj, site, f)
    elif mod == "cough":
        x, labels, bg = _cough(rng, ctx, subj, f)
    else:
        x, labels, bg = _breath(rng, ctx, subj, f)
    y = ctx.finish(rng, x, *bg)
    meta = subj.metadata()
    meta["device"] = dev.name
    meta["site"] = site
    ctx.events.sort(key=lambda e: (e["start"], e["type"]))
    return SynthClip(y, ctx.sr, subj.id, mod, dev.name, site, meta, labels, ctx.events)


def _seq(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def iter_clips(n: int, seed: int = 0, cfg: "SynthConfig | None" = None) -> Iterator[tuple[Recording, np.ndarray]]:
    """Yield ``n`` (record, audio) pairs; record paths are ``audio/<id>.wav`` (relative)."""
    cfg = (cfg or SynthConfig()).validate()
    n, seed = _check_n_seed(n, seed)
    done = 0
    k = 0
    while done < n:
        subj = sample_subject(_seq(seed, k, 0), k, cfg)
        for j in range(min(subj.n_clips, n - done)):
            clip = generate_clip(_seq(seed, k, j + 1), cfg, subj)
            rid = f"{subj.id}_{j:02d}"
            yield clip.record(rid, f"{AUDIO_DIR}/{rid}.wav"), clip.audio
            done += 1
        k += 1


def _check_n_seed(n: Any, seed: Any) -> tuple[int, int]:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise SynthError(f"the number of clips must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthError(f"the seed must be a non-negative integer, got {seed!r}")
    return int(n), int(seed)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] to int16, rounding to nearest (the exact bytes that are written)."""
    y = np.clip(audio, -1.0, 1.0) * np.float32(32767.0)
    return np.rint(y).astype(np.int16)


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write 16-bit PCM WAV (via soundfile, one buffered write)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, to_pcm16(audio), sample_rate, format="WAV", subtype="PCM_16")
    Path(path).write_bytes(buf.getvalue())


def generate(out_dir: str | Path, n: int, seed: int = 0, cfg: "SynthConfig | None" = None,
             progress: Callable[[int, int], None] | None = None) -> list[Recording]:
    """Write ``n`` clips, the manifest, the config and a summary under ``out_dir``.

    The manifest stores paths relative to ``out_dir``; the returned records carry the resolved
    absolute paths (what ``load("synthetic", out_dir)`` returns). Existing files of the same names
    are overwritten; nothing else is removed.
    """
    cfg = (cfg or SynthConfig()).validate()
    n, seed = _check_n_seed(n, seed)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise SynthError(f"output path exists and is not a folder: {out}")
    audio_dir = out / AUDIO_DIR
    audio_dir.mkdir(parents=True, exist_ok=True)
    records: list[Recording] = []
    for i, (rec, audio) in enumerate(iter_clips(n, seed, cfg), 1):
        write_wav(out / rec.path, audio, rec.sample_rate)
        records.append(rec)
        if progress is not None:
            progress(i, n)
    write_manifest(records, out / MANIFEST_NAME)
    conf = {
        "generator": "acula_edge.data.synth",
        "generator_version": GENERATOR_VERSION,
        "code_version": __version__,
        "n": n,
        "seed": seed,
        "config": cfg.to_dict(),
        "manifest": MANIFEST_NAME,
        "path_convention": "record paths are relative to this folder",
    }
    atomic_write_text(out / CONFIG_NAME, json.dumps(conf, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out / SUMMARY_NAME, json.dumps(summarize(records), indent=2, sort_keys=True) + "\n")
    base = out.resolve()
    return [_with_path(r, str(base / r.path)) for r in records]


def _with_path(r: Recording, path: str) -> Recording:
    return dataclasses.replace(r, path=path, metadata=dict(r.metadata), labels=dict(r.labels),
                               events=[dict(e) for e in r.events])


# --------------------------------------------------------------------------- CLI


def _parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="python -m acula_edge.data.synth",
        description="Write a synthetic cardio-respiratory corpus (WAVs, manifest.jsonl, config).",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n", type=int, default=100, help="number of clips (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--sample-rate", type=int, default=16000, help="Hz (default 16000)")
    p.add_argument("--duration", type=float, default=5.0, help="seconds per clip (default 5)")
    p.add_argument("--modalities", default=None,
                   help=f"comma-separated subset of {','.join(SYNTH_MODALITIES)} (default: all)")
    p.add_argument("--devices", default=None,
                   help=f"comma-separated subset of: {'; '.join(DEVICES)} (default: all)")
    p.add_argument("--clips-per-subject", default="1-4", help="min-max clips per subject (default 1-4)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _config_from_args(a: argparse.Namespace) -> SynthConfig:
    cfg = SynthConfig(sample_rate=a.sample_rate, duration=a.duration)
    if a.modalities:
        mods = [m.strip() for m in a.modalities.split(",") if m.strip()]
        bad = [m for m in mods if m not in SYNTH_MODALITIES]
        if bad or not mods:
            raise SynthError(f"unknown modalities {bad}; choose from {', '.join(SYNTH_MODALITIES)}")
        cfg.modality_weights = {k: v for k, v in cfg.modality_weights.items() if k in mods}
    if a.devices:
        cfg.devices = tuple(d.strip() for d in a.devices.split(",") if d.strip())
    try:
        lo, _, hi = a.clips_per_subject.partition("-")
        cfg.clips_per_subject = (int(lo), int(hi or lo))
    except ValueError:
        raise SynthError(f"--clips-per-subject wants MIN-MAX, e.g. 1-4, got {a.clips_per_subject!r}") from None
    return cfg.validate()


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    a = _parser().parse_args(argv)
    cfg = _config_from_args(a)
    _check_n_seed(a.n, a.seed)
    progress = None
    if not a.quiet and a.n >= 200:
        step = max(1, a.n // 10)

        def progress(i: int, total: int) -> None:
            if i % step == 0 or i == total:
                print(f"  {i}/{total} clips", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    recs = generate(a.out, a.n, a.seed, cfg, progress)
    dt = time.perf_counter() - t0
    if not a.quiet:
        subjects = len({r.subject for r in recs})
        print(f"wrote {len(recs)} clips from {subjects} subjects to {Path(a.out) / MANIFEST_NAME} "
              f"in {dt:.1f} s ({len(recs) / max(dt, 1e-9):.0f} clips/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
