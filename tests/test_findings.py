"""Modality routing and event spans (acula_edge.device.findings), and their targets (acula_edge.data.events)."""

from __future__ import annotations

import numpy as np
import pytest

from acula_edge.data.events import (EVENT_KINDS, annotated, check_kinds, frame_targets, is_kind, kind_spans,
                                    record_spans, step_labels, step_timing)
from acula_edge.data.records import Recording
from acula_edge.device.findings import UNKNOWN, EventTimeline, Span, route, spans_of
from acula_edge.errors import AculaError

STEP = 0.25


def test_a_window_routes_to_its_most_likely_modality_only_when_sure_enough():
    assert route(np.array([0.05, 0.95]), ["heart", "lung"], 0.8) == ("lung", pytest.approx(0.95))
    assert route(np.array([0.3, 0.7]), ["heart", "lung"], 0.8) == (UNKNOWN, pytest.approx(0.7))


def _steps(values: list[float], kinds: int = 1) -> np.ndarray:
    return np.repeat(np.asarray(values, np.float64)[:, None], kinds, axis=1)


def test_one_sustained_sound_is_one_span_and_flicker_above_off_does_not_split_it():
    # 0.2 (below off) | 0.4 (between) 0.9 0.45 0.8 0.35 | 0.1: one span from the first cell >= off
    p = [0.2, 0.4, 0.9, 0.45, 0.8, 0.35, 0.1, 0.1]
    spans = spans_of(["wheeze"], [0.0], [_steps(p)], STEP)
    assert spans == [Span("wheeze", 1 * STEP, 6 * STEP, 0.9)]


def test_a_run_that_never_reaches_on_is_no_finding_and_short_spans_are_dropped():
    assert spans_of(["crackle"], [0.0], [_steps([0.1, 0.45, 0.45, 0.45, 0.1])], STEP) == []
    # one cell above `on` (0.25 s) is kept at min_s 0.25, dropped at min_s 0.5
    one = _steps([0.1, 0.9, 0.1])
    assert len(spans_of(["crackle"], [0.0], [one], STEP, min_s=0.25)) == 1
    assert spans_of(["crackle"], [0.0], [one], STEP, min_s=0.5) == []


def test_overlapping_windows_average_on_the_streams_grid_and_kinds_are_tracked_apart():
    steps = 8
    # window 1 at 0 s sees a wheeze in its second half; window 2 at 1 s (4 cells later) sees it too but weaker;
    # the crackle channel is quiet throughout
    w1 = np.zeros((steps, 2))
    w1[4:8, 0] = 0.9
    w2 = np.zeros((steps, 2))
    w2[0:4, 0] = 0.5
    t = EventTimeline(EVENT_KINDS, STEP, on=0.6, off=0.3)
    assert t.add(0.0, w1) == []  # nothing settles before the second window's start is known
    # cells 0-3 settle when window 2 starts at 1 s: no span yet (the wheeze is still open)
    assert t.add(1.0, w2) == []
    out = t.finish()
    # cells 4-7 average (0.9 + 0.5) / 2 = 0.7 >= on: one wheeze from 1.0 to 2.0 s; cells 8-11 hold window 2's zeros
    assert out == [Span("wheeze", 1.0, 2.0, pytest.approx(0.7))]


def test_an_unscored_window_closes_an_open_span_and_the_end_of_the_stream_closes_the_last():
    t = EventTimeline(["wheeze"], STEP, offset_s=0.1)
    hot = _steps([0.9] * 4)
    assert t.add(0.0, hot) == []
    closed = t.add(2.0, None)  # cells 4-7 had no window: below off
    assert closed == [Span("wheeze", 0.1, 0.1 + 4 * STEP, 0.9)]
    assert t.add(2.0 + 4 * STEP, hot) == []  # cells 8-11 are a window starting at 3.0 s
    assert t.finish() == [Span("wheeze", 3.1, 3.1 + 4 * STEP, 0.9)]
    assert Span("wheeze", 3.1, 4.1, 0.9).to_dict() == {"kind": "wheeze", "start": 3.1, "end": 4.1, "peak": 0.9}


def _lung(events: list[dict], rid: str = "sprsound/a") -> Recording:
    return Recording(id=rid, path="a.wav", dataset="sprsound", subject="s1", modality="lung", events=events)


def test_event_kinds_from_each_datasets_annotation():
    assert is_kind({"type": "Stridor"}, "wheeze") and is_kind({"type": "Fine Crackle"}, "crackle")
    both = {"type": "Wheeze+Crackle"}
    assert is_kind(both, "wheeze") and is_kind(both, "crackle") and not is_kind({"type": "Normal"}, "wheeze")
    icbhi = {"type": "crackle", "crackle": 1, "wheeze": 0}
    assert is_kind(icbhi, "crackle") and not is_kind(icbhi, "wheeze") and is_kind({"type": "both", "wheeze": 1}, "wheeze")
    assert check_kinds(["crackle"]) == ("crackle",)
    with pytest.raises(AculaError, match="event kinds"):
        check_kinds(["murmur"])


def test_frame_targets_mark_the_steps_an_event_covers_and_leave_unannotated_recordings_unknown():
    events = [{"start": 1.0, "end": 1.6, "type": "Wheeze"}, {"start": 1.5, "end": 2.0, "type": "Rhonchi"},
              {"start": 3.1, "end": 3.2, "type": "Fine Crackle"}, {"start": 0.0, "end": 4.0, "type": "Normal"}]
    a = _lung(events)
    assert kind_spans(a, "wheeze") == [(1.0, 2.0)]  # overlapping events merged
    heart = Recording(id="physionet2016/b", path="b.wav", dataset="physionet2016", subject="b", modality="heart",
                      events=[{"start": 0, "end": 1, "type": "S1"}])
    bare = _lung([], "sprsound/c")
    assert annotated(a) and not annotated(heart) and not annotated(bare)
    spans = record_spans([a, heart, bare], EVENT_KINDS)
    assert list(spans) == ["sprsound/a"]
    t = frame_targets(spans, [("sprsound/a", 0.0), ("sprsound/a", 0.5), ("physionet2016/b", 0.0)], 16, STEP)
    assert t.shape == (3, 16, 2) and np.isnan(t[2]).all()
    # window at 0: steps [1.0, 1.25) .. [1.75, 2.0) are the wheeze; the 0.1 s crackle covers half of itself in [3.0, 3.25)
    assert np.flatnonzero(t[0, :, 0]).tolist() == [4, 5, 6, 7] and np.flatnonzero(t[0, :, 1]).tolist() == [12]
    assert np.flatnonzero(t[1, :, 0]).tolist() == [2, 3, 4, 5]  # the same wheeze, 0.5 s later in the window
    # a step needs half of itself covered (or half of a shorter event)
    assert step_labels([(1.0, 3.0)], np.array([0.8, 0.9]), STEP).tolist() == [0.0, 1.0]
    assert step_labels([(1.0, 1.1)], np.array([0.78, 1.0]), STEP).tolist() == [0.0, 1.0]


def test_event_steps_are_placed_by_the_front_ends_hop():
    step, offset = step_timing({"sample_rate": 4000, "hop_length": 128, "n_fft": 256}, 8)
    assert step == pytest.approx(0.256) and offset == pytest.approx(0.016)


def test_each_kind_can_have_its_own_hysteresis():
    probs = np.stack([[0.1, 0.7, 0.7, 0.1], [0.1, 0.7, 0.7, 0.1]], axis=1)
    spans = spans_of(["wheeze", "crackle"], [0.0], [probs], STEP, on={"wheeze": 0.9, "crackle": 0.6},
                     off={"wheeze": 0.7, "crackle": 0.4})
    assert spans == [Span("crackle", STEP, 3 * STEP, 0.7)]
