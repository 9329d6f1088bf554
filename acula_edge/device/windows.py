"""The one window rule, for whole recordings and for streams.

A recording of ``n`` samples is cut into windows of ``window`` samples: one every ``hop`` samples
while a whole window fits, plus one ending at the last sample when the tail left after the last of
them is at least half a window (shorter tails add too little new audio to be worth a window); a
recording no longer than one window gives that recording, zero-padded, as one window, and an empty
one gives none. :func:`cut_windows` applies the rule to a whole waveform (teacher targets, export
calibration, benchmarks); :class:`Windower` applies it to a stream, block by block, and gives
exactly the same windows whatever the block sizes; :func:`iter_windows` gives a file's windows in
batches, decoded block by block (``export verify``, the benchmark harness). A recording shorter than
:data:`MIN_FILL` of a window is ``too short`` to score (:func:`too_short`, :func:`long_enough`).
"""

from __future__ import annotations

import os
from typing import Iterator

import numpy as np

from acula_edge.errors import AculaError

#: a window needs at least this share of real audio: a recording shorter than this share of one window
#: is ``too short`` to score (the share below which a recording's tail gets no window of its own)
MIN_FILL = 0.5


def too_short(n_samples: int, window: int) -> bool:
    """Whether a recording of ``n_samples`` fills less than :data:`MIN_FILL` of its one zero-padded window."""
    return n_samples < MIN_FILL * window


def long_enough(records: list, window_s: float) -> tuple[list, int]:
    """The records (anything with a ``path``) whose recording fills at least :data:`MIN_FILL` of a
    window of ``window_s`` seconds, and how many do not: those are ``too short`` to score, as ``listen``
    gates them. Durations come from the files' headers."""
    from acula_edge.device.audio import info

    infos = [info(r.path) for r in records]
    kept = [r for r, i in zip(records, infos) if not too_short(i.frames, window_s * i.sample_rate)]
    return kept, len(records) - len(kept)


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Start samples of the windows of a recording of ``n_samples`` samples (the module's rule)."""
    if n_samples <= 0:
        return []
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    tail = n_samples - (starts[-1] + window)
    if tail >= MIN_FILL * window:
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


def iter_windows(path: str | os.PathLike, sample_rate: int, window: int, hop: int,
                 batch: int = 32) -> Iterator[np.ndarray]:
    """The windows of a recording (:func:`cut_windows` of it resampled to ``sample_rate``) in batches
    ``[k <= batch, window]``, decoded block by block: memory is bounded by a batch, not the recording."""
    from acula_edge.device.audio import iter_blocks

    w, pending = Windower(window, hop), []
    block_s = max(1.0, batch * hop / sample_rate)
    for block in iter_blocks(path, block_s, sample_rate=sample_rate):
        for _, x in w.push(block):
            pending.append(x)
            if len(pending) == batch:
                yield np.stack(pending)
                pending = []
    pending += [x for _, x in w.finish()]
    for i in range(0, len(pending), batch):
        yield np.stack(pending[i:i + batch])
