"""The per-window signal-quality gate: silence, too quiet, clipping and overload get no score."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from acula_edge.device.windows import too_short

#: the statuses :func:`signal_quality` gives; only ``ok`` windows are scored
QUALITY = ("ok", "silence", "low", "clipping", "overload", "too short")


@dataclass(frozen=True)
class QualityConfig:
    """Per-window signal-quality gate (levels in dB relative to full scale)."""

    silence_db: float = -80.0  # below: no signal at all (a muted or disconnected input)
    low_db: float = -65.0  # below: too quiet to score (quieter than almost every stethoscope recording)
    clip_level: float = 0.99  # |x| at or above this is at the converter's rail
    clip_fraction: float = 0.001  # more samples than this at a rail (or stuck at the peak): clipping
    overload_fraction: float = 0.05  # more than this, or an RMS above overload_db: overload
    overload_db: float = -3.0


def signal_quality(x: np.ndarray, cfg: QualityConfig = QualityConfig(), samples: int | None = None) -> dict[str, Any]:
    """``{"status", "rms_db", "peak_db", "clipped"}`` of one window; ``status`` is one of :data:`QUALITY`.
    ``samples``: how many of its samples are audio when the rest is zero padding (levels are of those;
    under :data:`~acula_edge.device.windows.MIN_FILL` of the window the status is ``too short``).

    Clipped samples are those at the converter's rail, or, when many samples share the window's peak
    magnitude exactly, those at it (an analogue stage that clips below full scale).
    """
    x = np.asarray(x, np.float32)
    short = samples is not None and too_short(samples, x.size)
    x = x if samples is None else x[:samples]
    a = np.abs(x)
    peak = float(a.max()) if a.size else 0.0
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if a.size else 0.0
    rms_db = 20 * math.log10(rms) if rms > 0 else -150.0
    clipped = a >= cfg.clip_level
    if peak >= 0.1:
        at_peak = a == peak
        if at_peak.sum() >= 8:  # natural audio reaches its peak magnitude once or a few times
            clipped |= at_peak
    frac = float(clipped.mean()) if a.size else 0.0
    if short:
        status = "too short"
    elif rms_db < cfg.silence_db:
        status = "silence"
    elif frac > cfg.overload_fraction or rms_db > cfg.overload_db:
        status = "overload"
    elif frac > cfg.clip_fraction:
        status = "clipping"
    elif rms_db < cfg.low_db:
        status = "low"
    else:
        status = "ok"
    return {"status": status, "rms_db": round(rms_db, 1),
            "peak_db": round(20 * math.log10(peak), 1) if peak > 0 else -150.0, "clipped": round(frac, 5)}
