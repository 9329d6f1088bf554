"""The one window rule, for whole recordings and for streams.

A recording of ``n`` samples is cut into windows of ``window`` samples: one every ``hop`` samples
while a whole window fits, plus one ending at the last sample when the tail left after the last of
them is at least half a window (shorter tails add too little new audio to be worth a window); a
recording no longer than one window gives that recording, zero-padded, as one window, and an empty
one gives none. :func:`cut_windows` applies the rule to a whole waveform (teacher targets, export
calibration and verification, benchmarks); :class:`Windower` applies it to a stream, block by block,
and gives exactly the same windows whatever the block sizes.
"""

from __future__ import annotations

import numpy as np

from acula_edge.errors import AculaError


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of the windows of a recording of ``n_samples`` samples (the module's rule)."""
    if n_samples <= 0:
        return []
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    tail = n_samples - (starts[-1] + window)
    if 2 * tail >= window:
        starts.append(n_samples - window)
    return starts


def cut_windows(x: np.ndarray, window: int, hop: int) -> tuple[list[int], np.ndarray]:
    """The starts (:func:`window_starts`) and windows ``[k, window]`` of a waveform, a short one zero-padded."""
    starts = window_starts(x.shape[0], window, hop)
    clips = np.zeros((len(starts), window), np.float32)
    for i, s in enumerate(starts):
        piece = x[s:s + window]
        clips[i, :piece.shape[0]] = piece
    return starts, clips


class Windower:
    """Ring buffer over a stream: the windows :func:`cut_windows` cuts from the whole recording.

    :meth:`push` gives the windows every ``hop`` as soon as their last sample arrives (the first ends
    at sample ``window``, the k-th at ``window + k * hop``); :meth:`finish`, at the end of the stream,
    gives what only the end decides: the tail window, or the zero-padded window of a short stream.
    """

    def __init__(self, window: int, hop: int):
        if window <= 0 or hop <= 0:
            raise AculaError("window and hop must be positive")
        self.window, self.hop = window, hop
        self.ring = np.zeros(window, np.float32)  # the last `window` samples received
        self.total = 0  # samples received
        self.next_end = window
        self.cut = 0  # windows given so far

    def _write(self, x: np.ndarray) -> None:
        pos = self.total % self.window
        first = min(x.size, self.window - pos)
        self.ring[pos:pos + first] = x[:first]
        if x.size > first:
            self.ring[:x.size - first] = x[first:]
        self.total += x.size

    def _last(self, n: int) -> np.ndarray:
        """The last ``n <= window`` samples received, in order."""
        pos = self.total % self.window
        ordered = np.concatenate([self.ring[pos:], self.ring[:pos]]) if self.total >= self.window \
            else self.ring[:self.total]
        return ordered[ordered.size - n:]

    def push(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Feed samples; return ``(end sample, window)`` for every window they complete."""
        x = np.asarray(x, np.float32).ravel()
        out = []
        while x.size:
            take = min(self.next_end - self.total, x.size, self.window)
            self._write(x[:take])
            x = x[take:]
            if self.total == self.next_end:
                out.append((self.total, self._last(self.window)))
                self.next_end += self.hop
                self.cut += 1
        return out

    def finish(self) -> list[tuple[int, np.ndarray]]:
        """At the end of the stream: ``(end sample, window)`` of the windows that only its end decides."""
        out = []
        for start in window_starts(self.total, self.window, self.hop)[self.cut:]:
            # past the windows every hop there is at most one, and it ends at the last sample
            w = np.zeros(self.window, np.float32)
            piece = self._last(self.total - start)
            w[:piece.size] = piece
            out.append((self.total, w))
        self.cut += len(out)
        return out
