"""What a window holds and where its findings are: modality routing and event spans (numpy only).

**Routing.** A bundle whose graph has a ``modality`` output names its classes (the training data's
modalities) and the least confidence to route by (``min_confidence``): a window whose most likely
modality reaches it is routed there, else it is ``unknown`` and no head scores it.

**Event spans.** A graph's ``events`` output gives, per window, a probability per event kind
(``wheeze``, ``crackle``) for each step of ``step_s`` seconds (the first starting ``offset_s``
after the window). :class:`EventTimeline` places the steps of overlapping windows on one grid of
the stream (a window's steps at the grid cell nearest its start; cells covered by several windows
average them), and once no later window can cover a cell it runs each kind's hysteresis over it:
a span opens where the probability reaches ``on`` (reaching back over the cells just before it at
or above ``off``) and closes at the first cell below ``off`` (levels for every kind, or one per kind); spans shorter than ``min_s`` are
dropped. So one wheeze is one finding, not a run of flickering ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

UNKNOWN = "unknown"
#: defaults written into a bundle's description of its outputs (the exporter's choice, stored there)
MIN_CONFIDENCE = 0.8
EVENT_ON, EVENT_OFF, EVENT_MIN_S = 0.5, 0.3, 0.25


def route(probs: np.ndarray, classes: Sequence[str], min_confidence: float) -> tuple[str, float]:
    """``(modality, confidence)`` of one window's modality probabilities; :data:`UNKNOWN` when the
    most likely one is below ``min_confidence``."""
    k = int(np.argmax(probs))
    p = float(probs[k])
    return (classes[k] if p >= min_confidence else UNKNOWN), p


def level(value: float | dict[str, float], kind: str) -> float:
    """A hysteresis level of ``kind``: ``value`` itself, or its entry when it is one per kind."""
    return float(value[kind] if isinstance(value, dict) else value)


@dataclass(frozen=True)
class Span:
    """One finding: an event kind from ``start`` to ``end`` seconds, with its highest probability."""

    kind: str
    start: float
    end: float
    peak: float

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": round(self.start, 3), "end": round(self.end, 3), "peak": round(self.peak, 4)}


@dataclass
class _Hysteresis:
    kind: str
    on: float
    off: float
    min_s: float
    run_start: float | None = None
    active: bool = False
    peak: float = 0.0

    def feed(self, t: float, p: float | None) -> Span | None:
        """The cell starting at ``t`` with probability ``p`` (None: not scored); a span it closes."""
        if p is not None and p >= self.off:
            if self.run_start is None:
                self.run_start, self.peak = t, p
            self.peak = max(self.peak, p)
            self.active = self.active or p >= self.on
            return None
        return self.close(t)

    def close(self, t: float) -> Span | None:
        span = None
        if self.active and self.run_start is not None and t - self.run_start >= self.min_s:
            span = Span(self.kind, self.run_start, t, self.peak)
        self.run_start, self.active, self.peak = None, False, 0.0
        return span


@dataclass
class EventTimeline:
    """Event spans of a stream from its windows' step probabilities (see the module docstring)."""

    kinds: Sequence[str]
    step_s: float
    offset_s: float = 0.0
    on: float | dict[str, float] = EVENT_ON  # one level for every kind, or one per kind
    off: float | dict[str, float] = EVENT_OFF
    min_s: float = EVENT_MIN_S
    keep_cells: bool = False  # keep every settled cell's probabilities in ``cells`` (offline scoring)
    _sum: dict[int, np.ndarray] = field(default_factory=dict)
    _count: dict[int, int] = field(default_factory=dict)
    _next: int = 0
    _last: int = 0

    def __post_init__(self) -> None:
        self._tracks = [_Hysteresis(k, level(self.on, k), level(self.off, k), self.min_s) for k in self.kinds]
        self.cells: list[tuple[float, np.ndarray | None]] = []  # (start second, probabilities or None)

    @classmethod
    def of(cls, spec: dict[str, Any]) -> "EventTimeline":
        """From a bundle's ``outputs.events`` description."""
        return cls(list(spec["kinds"]), float(spec["step_s"]), float(spec["offset_s"]), spec["on"], spec["off"],
                   float(spec["min_s"]))

    def cell_start(self, g: int) -> float:
        return g * self.step_s + self.offset_s

    def add(self, start_s: float, probs: np.ndarray | None) -> list[Span]:
        """The window starting at ``start_s`` (windows come in time order) with step probabilities
        ``[steps, kinds]`` (None: a window not screened for events, e.g. gated or routed elsewhere);
        the spans that cells no later window can cover close."""
        g0 = int(round(start_s / self.step_s))
        if probs is not None:
            probs = np.asarray(probs, np.float64)
            for k in range(probs.shape[0]):
                g = g0 + k
                self._sum[g] = self._sum.get(g, 0.0) + probs[k]
                self._count[g] = self._count.get(g, 0) + 1
            self._last = max(self._last, g0 + probs.shape[0])
        return self._settle(g0)

    def finish(self) -> list[Span]:
        """Every remaining cell settled and open spans closed (the end of the stream)."""
        out = self._settle(max(self._last, self._next))
        end = self.cell_start(self._next)
        out += [s for t in self._tracks if (s := t.close(end)) is not None]
        return out

    def _settle(self, upto: int) -> list[Span]:
        out = []
        for g in range(self._next, upto):
            p = self._sum.pop(g, None)
            n = self._count.pop(g, 0)
            t0 = self.cell_start(g)
            if self.keep_cells:
                self.cells.append((t0, None if p is None else p / n))
            for j, track in enumerate(self._tracks):
                span = track.feed(t0, None if p is None else float(p[j]) / n)
                if span is not None:
                    out.append(span)
        self._next = max(self._next, upto)
        return out


def spans_of(kinds: Sequence[str], starts_s: Sequence[float], probs: Sequence[np.ndarray | None], step_s: float,
             offset_s: float = 0.0, on: float = EVENT_ON, off: float = EVENT_OFF,
             min_s: float = EVENT_MIN_S) -> list[Span]:
    """Every span of a whole recording's windows (start seconds, step probabilities), as listen finds them."""
    return timeline_of(EventTimeline(kinds, step_s, offset_s, on, off, min_s), starts_s, probs)[0]


def timeline_of(t: EventTimeline, starts_s: Sequence[float], probs: Sequence[np.ndarray | None]
                ) -> tuple[list[Span], EventTimeline]:
    """``t`` fed a whole recording's windows and finished: ``(its spans, t)`` (``t.cells`` holds the
    averaged steps when it keeps them)."""
    out = [s for start, p in zip(starts_s, probs) for s in t.add(start, p)]
    return out + t.finish(), t


__all__ = ["EVENT_MIN_S", "EVENT_OFF", "EVENT_ON", "EventTimeline", "MIN_CONFIDENCE", "Span", "UNKNOWN", "level", "route",
           "spans_of", "timeline_of"]
