"""The one window rule: whole recordings (``cut_windows``) and streams (``Windower``) get the same windows."""

from __future__ import annotations

import numpy as np
import pytest

from acula_edge.device.windows import Windower, cut_windows, window_starts
from acula_edge.errors import AculaError


def test_window_starts():
    assert window_starts(100, 200, 100) == [0]
    assert window_starts(200, 200, 100) == [0]
    assert window_starts(400, 200, 100) == [0, 100, 200]
    assert window_starts(450, 200, 100) == [0, 100, 200]  # a 50-sample tail is dropped
    assert window_starts(500, 200, 200) == [0, 200, 300]  # a 100-sample tail gets a window ending at the end
    assert window_starts(480, 200, 200) == [0, 200]
    assert window_starts(0, 200, 100) == []  # no audio, no window


def test_cut_windows_pads_a_short_recording_and_ends_the_tail_window_at_the_last_sample():
    x = np.arange(1, 501, dtype=np.float32)
    starts, clips = cut_windows(x, 200, 200)
    assert starts == [0, 200, 300] and clips.shape == (3, 200)
    np.testing.assert_array_equal(clips[2], x[300:])
    starts, clips = cut_windows(x[:50], 200, 100)
    assert starts == [0] and np.array_equal(clips[0, :50], x[:50]) and not clips[0, 50:].any()


def stream(x: np.ndarray, window: int, hop: int, seed: int) -> list[tuple[int, np.ndarray]]:
    """Every window a :class:`Windower` gives for ``x`` fed in random blocks, larger and smaller than the window."""
    w = Windower(window, hop)
    rng = np.random.default_rng(seed)
    got, i = [], 0
    while i < x.size:
        n = int(rng.integers(1, 2.5 * window))
        got += w.push(x[i:i + n])
        i += n
    got += w.finish()
    assert w.finish() == []  # the end is decided once
    return got


# with a window of 1000 samples; the tail left after the windows every hop is shorter than the hop,
# so only a hop longer than half a window can leave a tail that gets a window
@pytest.mark.parametrize("n,hop,tail", [
    (10_000, 300, False),  # the last window every hop ends at 9700: a 300-sample tail is dropped
    (10_000, 500, False),  # the default hop, half a window
    (10_400, 800, True),  # a 600-sample tail: one more window, ending at the last sample
    (10_300, 800, True),  # a tail of exactly half a window
    (10_299, 800, False),  # one sample less
    (9_600, 1500, True),  # a hop longer than the window: the samples between windows are skipped
    (9_700, 300, False),  # the windows every hop end exactly at the last sample
    (1_000, 300, False),  # exactly one window
    (400, 300, False),  # shorter than a window: one zero-padded window
    (1, 300, False),
])
def test_windower_cuts_the_same_windows_as_the_whole_recording(n, hop, tail):
    x = np.arange(1, n + 1, dtype=np.float32)
    starts, clips = cut_windows(x, 1000, hop)
    assert (starts[-1] == n - 1000 and starts[-1] % hop != 0) == tail
    for seed in range(5):
        got = stream(x, 1000, hop, seed)
        assert [end for end, _ in got] == [min(s + 1000, n) for s in starts]
        np.testing.assert_array_equal(np.stack([w for _, w in got]), clips)


def test_an_empty_stream_has_no_window_and_bad_sizes_are_refused():
    assert Windower(1000, 300).finish() == [] and cut_windows(np.zeros(0, np.float32), 1000, 300)[0] == []
    with pytest.raises(AculaError):
        Windower(0, 300)
