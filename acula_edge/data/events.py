"""Event kinds the students locate in time, and their frame-level targets from annotations.

Two kinds of adventitious lung sound, as the clinical literature groups them:

- ``wheeze``: continuous (musical) sounds: SPRSound's Wheeze, Stridor and Rhonchi, ICBHI cycles
  flagged with wheezes, the synthetic corpus's wheezes;
- ``crackle``: discontinuous (explosive) sounds: SPRSound's Fine and Coarse Crackle, ICBHI cycles
  flagged with crackles, the synthetic corpus's crackles.

SPRSound's Wheeze+Crackle is both. Only lung recordings whose annotation lists events count as
annotated: elsewhere (heart sounds, recordings without events) the targets are unknown (NaN).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from acula_edge.data.records import Recording
from acula_edge.errors import AculaError

#: event kind -> the annotation types that are that kind
EVENT_TYPES: dict[str, frozenset[str]] = {
    "wheeze": frozenset({"Wheeze", "Stridor", "Rhonchi", "Wheeze+Crackle", "wheeze"}),
    "crackle": frozenset({"Fine Crackle", "Coarse Crackle", "Wheeze+Crackle", "crackle"}),
}
EVENT_KINDS = tuple(EVENT_TYPES)
#: the dataset formats whose annotations locate adventitious sounds in time
ANNOTATED_DATASETS = ("sprsound", "icbhi", "synthetic")


def check_kinds(kinds: Sequence[str]) -> tuple[str, ...]:
    """``kinds`` as a tuple, each a known event kind (else one clear error)."""
    bad = [k for k in kinds if k not in EVENT_TYPES]
    if bad or len(set(kinds)) != len(kinds):
        raise AculaError(f"event kinds are distinct names among {', '.join(EVENT_KINDS)}, got {', '.join(kinds)}")
    return tuple(kinds)


def is_kind(event: dict[str, Any], kind: str) -> bool:
    """Whether an annotated event is of ``kind`` (by its type, or ICBHI's 0/1 flag of that name)."""
    return event.get("type") in EVENT_TYPES[kind] or event.get(kind) == 1


def annotated(record: Recording) -> bool:
    """Whether a recording's annotation says where its adventitious sounds are (lung, with events)."""
    return record.modality == "lung" and bool(record.events)


def kind_spans(record: Recording, kind: str) -> list[tuple[float, float]]:
    """The annotated ``[start, end)`` seconds of ``kind`` in a recording, overlapping ones merged."""
    spans = sorted((float(e["start"]), float(e["end"])) for e in record.events if is_kind(e, kind))
    out: list[list[float]] = []
    for s, e in spans:
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def step_labels(spans: Sequence[tuple[float, float]], starts: np.ndarray, step_s: float) -> np.ndarray:
    """1.0 for each step ``[start, start + step_s)`` that an annotated span covers by half a step (or
    by half of a shorter span), else 0.0: ``starts`` any shape, the result the same."""
    starts = np.asarray(starts, np.float64)
    out = np.zeros(starts.shape, np.float32)
    for s, e in spans:
        need = min(0.5 * step_s, 0.5 * (e - s))
        overlap = np.minimum(starts + step_s, e) - np.maximum(starts, s)
        out[overlap >= max(need, 1e-9)] = 1.0
    return out


def step_timing(frontend: dict[str, Any], stride: int) -> tuple[float, float]:
    """``(step_s, offset_s)`` of event steps of ``stride`` log-mel frames: a step's length, and where
    the first step of a window starts after the window does (the centre of its frames' span, less
    half a step)."""
    rate, hop, n_fft = int(frontend["sample_rate"]), int(frontend["hop_length"]), int(frontend["n_fft"])
    return stride * hop / rate, (n_fft - hop) / (2 * rate)


def record_spans(records: Sequence[Recording], kinds: Sequence[str]) -> dict[str, list[list[tuple[float, float]]]]:
    """Recording id -> its :func:`kind_spans` of each of ``kinds``, for the :func:`annotated` recordings."""
    return {r.id: [kind_spans(r, k) for k in kinds] for r in records if annotated(r)}


def frame_targets(spans: dict[str, list[list[tuple[float, float]]]], windows: Sequence[tuple[str, float]],
                  steps: int, step_s: float, offset_s: float = 0.0) -> np.ndarray:
    """``[windows, steps, kinds]`` targets of the event steps of each window (``(recording id, start
    second)``): step ``k`` covers ``start + offset_s + [k, k + 1) * step_s`` seconds. ``spans`` is
    :func:`record_spans`; NaN for the windows of recordings it does not hold (not annotated)."""
    kinds = len(next(iter(spans.values()))) if spans else 0
    out = np.full((len(windows), steps, kinds), np.nan, np.float32)
    for i, (rid, start) in enumerate(windows):
        if rid in spans:
            t = start + offset_s + np.arange(steps) * step_s
            for j, kind in enumerate(spans[rid]):
                out[i, :, j] = step_labels(kind, t, step_s)
    return out


__all__ = ["ANNOTATED_DATASETS", "EVENT_KINDS", "EVENT_TYPES", "annotated", "check_kinds", "frame_targets", "is_kind", "kind_spans",
           "record_spans", "step_labels", "step_timing"]
