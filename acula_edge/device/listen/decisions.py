"""Per-head decisions: smoothing, a threshold with hysteresis and a refractory period, so that one
sustained finding gives one event."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Decider:
    """One head's decision: smoothed probability, threshold with hysteresis, refractory period."""

    name: str
    threshold: float
    smooth: int = 2
    hysteresis: float = 0.05
    refractory_s: float = 5.0
    history: deque = field(default_factory=deque)
    active: bool = False
    last_event: float | None = None

    def update(self, t: float, p: float | None) -> tuple[float | None, bool]:
        """Feed a window's probability (None: the window was gated); ``(smoothed, event starts)``.

        A gated window clears the smoothing and ends an active finding: the signal it rested on is gone.
        """
        if p is None:
            self.history.clear()
            self.active = False
            return None, False
        self.history.append(float(p))
        while len(self.history) > self.smooth:
            self.history.popleft()
        s = float(np.mean(self.history))
        if self.active:
            self.active = s >= self.threshold - self.hysteresis
            return s, False
        if s >= self.threshold and (self.last_event is None or t - self.last_event >= self.refractory_s):
            self.active, self.last_event = True, t
            return s, True
        return s, False
