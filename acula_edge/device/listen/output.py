"""Where window results, events and the summary go: JSON lines, plain lines, or a live terminal view."""

from __future__ import annotations

import json
import sys
from collections import deque
from typing import IO, Any


def _fmt_p(p: float | None) -> str:
    return "  -  " if p is None else f"{p:5.3f}"


class Output:
    """Where window results and events go: JSON lines, plain lines, or a live terminal view."""

    def __init__(self, mode: str, heads: list[str], thresholds: dict[str, float], stream: IO[str] | None = None):
        self.mode, self.heads, self.thresholds = mode, heads, thresholds
        self.out = stream or sys.stdout
        self.events: deque = deque(maxlen=5)
        self.drawn = 0

    def emit(self, obj: dict[str, Any]) -> None:
        """Show one window result, event or note (``obj["type"]``)."""
        if self.mode == "json":
            self.out.write(json.dumps(obj) + "\n")
            self.out.flush()
        elif obj["type"] == "window":
            self._live(obj) if self.mode == "live" else self._line(obj)
        elif obj["type"] == "event":
            msg = (f"EVENT {obj['head']} at {obj['time_s']:.1f} s (smoothed {obj['score']:.3f} >= "
                   f"{obj['threshold']:.3f})")
            if self.mode == "live":
                self.events.append(msg)
            else:
                print(msg, file=self.out, flush=True)
        elif obj["type"] == "finding":
            msg = f"FINDING {obj['kind']}-like sound {obj['start']:.1f}-{obj['end']:.1f} s (peak {obj['peak']:.2f})"
            if self.mode == "live":
                self.events.append(msg)
            else:
                print(msg, file=self.out, flush=True)
        elif obj["type"] == "note":
            self._clear()
            print(obj["text"], file=self.out, flush=True)

    def _line(self, w: dict[str, Any]) -> None:
        q = w["quality"]
        head = f"{w['end_s']:8.2f} s  {q['status']:<8} {q['rms_db']:6.1f} dBFS{_routing(w)}"
        if w["scores"] is None:
            print(f"{head}  (no score)  {w['latency_ms']:.1f} ms", file=self.out, flush=True)
            return
        smoothed = {h: w["smoothed"].get(h) for h in self.heads}
        parts = "  ".join(f"{h} {_fmt_p(p)}{'*' if p is not None and p >= self.thresholds[h] else ' '}"
                          for h, p in smoothed.items())
        print(f"{head}  {parts}  {w['latency_ms']:.1f} ms", file=self.out, flush=True)

    def _clear(self) -> None:
        if self.mode == "live" and self.drawn:
            self.out.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _live(self, w: dict[str, Any]) -> None:
        q, width = w["quality"], 30
        name_w = max(len(h) for h in self.heads) if self.heads else 4
        lines = [f"t = {w['end_s']:.1f} s   signal: {q['status']} ({q['rms_db']:.0f} dBFS, peak {q['peak_db']:.0f}, "
                 f"clipped {100 * q['clipped']:.2f}%){_routing(w)}   latency {w['latency_ms']:.1f} ms"]
        for h in self.heads:
            p = None if w["smoothed"] is None else w["smoothed"].get(h)
            fill = 0 if p is None else int(round(p * width))
            mark = int(round(self.thresholds[h] * width))
            bar = "".join("#" if i < fill else ("|" if i == mark else ".") for i in range(width + 1))
            flag = "  ALERT" if p is not None and p >= self.thresholds[h] else ""
            lines.append(f"  {h:<{name_w}} [{bar}] {_fmt_p(p)}{flag}")
        lines += [f"  {e}" for e in self.events]
        self._clear()
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()
        self.drawn = len(lines)


def _routing(w: dict[str, Any]) -> str:
    """What a window was routed to, and how sure the modality head was (empty when not said)."""
    if "modality" not in w:
        return ""
    c = w.get("modality_confidence")
    return f"  {w['modality']}" + (f" ({c:.2f})" if c is not None else "")


def print_summary(s: dict[str, Any], mode: str, out: IO[str]) -> None:
    """The run's summary: one JSON object in ``json`` mode, else one line."""
    if mode == "json":
        out.write(json.dumps(s) + "\n")
        out.flush()
        return
    lat = s["latency_ms"]
    gated = ", ".join(f"{k} {v}" for k, v in s["gated"].items()) or "none"
    rtf = "-" if s["real_time_factor"] is None else f"{s['real_time_factor']:.4f}"
    routed = ", ".join(f"{k} {v}" for k, v in s.get("routed", {}).items())
    routed = f"; routed: {routed}" if routed else ""
    print(f"summary: {s['windows']} windows ({s['scored']} scored{routed}; gated: {gated}), {s['events']} events, "
          f"{s.get('findings', 0)} findings, "
          f"{s['audio_s']:.1f} s of audio in {s['wall_s']:.1f} s; latency per window p50 {lat['p50']} ms, "
          f"p95 {lat['p95']} ms, max {lat['max']} ms; real-time factor {rtf}; input overflows "
          f"{s['input_overflows']}, dropped blocks {s['dropped_blocks']}; CPU {s['cpu_percent']}%", file=out, flush=True)
