"""Peak memory of every CLI that decodes audio, on one long recording.

    python -m benchmarks.memory [--hours 2] [--rate 8000] [--work runs/memory] [--out benchmarks/results/memory]

Writes synthetic recordings of ``--hours`` and of an eighth of it (noise with a low tone, PCM16,
written a minute at a time) and a manifest of each beside twenty short recordings of two classes (so
``evaluate`` can fit its probe), then runs each CLI in a process of its own and reads that process's
peak resident set size (``VmHWM``, Linux). The CLIs also run on the short recordings alone, and once
more on the longest with glibc's mmap threshold held fixed, which separates what the data need from
heap fragmentation. A peak that does not grow from the eighth to the whole length is bounded by a
batch, not by the recording. The audio is synthetic: this is a memory measurement, not a clinical
one. ``reports`` reads no audio and is not measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from acula_edge.cli import Parser, describe, guarded
from acula_edge.errors import AculaError
from benchmarks.common import machine, save_with_table, versions

TARGET_MB = 500  # the peak a CLI may use on a two-hour recording
# glibc's mmap threshold held at 64 KiB: large blocks go back to the system when freed, so the peak
# shows what the data need rather than how fragmented the heap became (glibc raises the threshold
# after large frees by default)
FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": "65536"}
DEFAULT_BUNDLE = Path(__file__).resolve().parents[1] / "acula_edge" / "default_bundle"


def write_long(path: Path, hours: float, rate: int) -> None:
    """``hours`` of noise and a 120 Hz tone, written a minute at a time (never held whole)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    total, minute = int(round(hours * 3600 * rate)), 60 * rate
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as f:
        for start in range(0, total, minute):
            t = np.arange(start, min(total, start + minute)) / rate
            f.write((0.05 * rng.standard_normal(t.size) + 0.1 * np.sin(2 * np.pi * 120 * t)).astype(np.float32))


# Runs a module as ``python -m`` does and, at exit, writes the process's own peak RSS (VmHWM, in kB) to
# argv[1]. Not ``ru_maxrss`` from ``wait4``: Linux carries the peak of the process it was forked from
# across ``exec``, so a child of a large parent (a test runner holding torch) would report the parent's.
_PEAK = """import atexit, runpy, sys
def _peak(path=sys.argv[1]):
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    with open(path, "w") as out:
        out.write(str(kb))
atexit.register(_peak)
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def peak_rss_mb(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, int, float]:
    """Run ``python -m ARGV`` (with ``env`` added to the environment); its peak RSS in MB, exit status and seconds."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        peak = Path(tmp) / "peak"
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", _PEAK, str(peak), *argv], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
        seconds = time.perf_counter() - t0
        err = p.stderr.decode(errors="replace")
        if p.returncode not in (0, 1) or not peak.exists():  # 1: export verify's FAIL verdict is a result
            raise AculaError(f"python -m {' '.join(argv)} exited {p.returncode}: {' '.join(err.strip().splitlines()[-1:])}")
        return int(peak.read_text()) / 1024, p.returncode, seconds


def commands(long: Path, manifest: Path, work: Path) -> dict[str, list[str]]:
    """Name -> ``python -m`` arguments of each CLI on the long recording (``manifest`` holds it)."""
    return {
        "listen --file": ["acula_edge.listen", "--file", str(long), "--no-realtime", "--json"],
        "data inspect": ["acula_edge.data", "inspect", str(long)],
        "export verify": ["export", "verify", str(DEFAULT_BUNDLE), "--data", str(manifest)],
        "evaluate logmel-stats": ["acula_edge.evaluate", "--encoder", "logmel-stats", "--task", f"csv:{manifest}:label",
                                  "--manifest", str(manifest), "--seeds", "1", "--bootstrap", "10",
                                  "--out", str(work / "evaluate")],
        "evaluate random-init": ["acula_edge.evaluate", "--encoder", "random-init", "--task", f"csv:{manifest}:label",
                                 "--manifest", str(manifest), "--seeds", "1", "--bootstrap", "10",
                                 "--out", str(work / "evaluate")],
    }


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks.memory``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = Parser(prog="python -m benchmarks.memory", description=describe(__doc__))
    p.add_argument("--hours", type=float, default=2.0)
    p.add_argument("--rate", type=int, default=8000, help="sample rate of the long recording (default 8000)")
    p.add_argument("--work", default="runs/memory", help="where the recordings go (default runs/memory)")
    p.add_argument("--out", default="benchmarks/results/memory")
    a = p.parse_args(argv)
    from acula_edge.data.synth import generate

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    short = generate(work / "short", 20, seed=3)
    rows = [(str(r.path), f"s{i}", i % 2) for i, r in enumerate(short)]
    lengths = {"short recordings only": None, f"{a.hours / 8:g} h": a.hours / 8, f"{a.hours:g} h": a.hours}
    peaks: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for label, hours in lengths.items():
        manifest = work / f"manifest_{hours or 0:g}h.csv"
        extra, audio = [], Path(rows[0][0])
        if hours:
            audio = work / f"long_{hours:g}h_{a.rate}hz.wav"
            if not audio.exists():
                write_long(audio.with_suffix(".partial.wav"), hours, a.rate)
                audio.with_suffix(".partial.wav").rename(audio)
            extra = [(str(audio.resolve()), "long", 1)]
        manifest.write_text("path,subject,label\n" + "".join(f"{p},{s},{y}\n" for p, s, y in rows + extra))
        for name, cmd in commands(audio, manifest, work).items():
            mb, _, took = peak_rss_mb(cmd)
            peaks.setdefault(name, {})[label] = round(mb, 1)
            seconds[name] = round(took, 1)  # the longest recording's run (the last)
            print(f"{name}, {label}: {mb:.0f} MB, {took:.0f} s", file=sys.stderr)
    longest = list(lengths)[-1]
    fixed = f"{longest}, fixed mmap threshold"
    for name, cmd in commands(audio, manifest, work).items():  # the longest recording's, again
        peaks[name][fixed] = round(peak_rss_mb(cmd, FIXED_MMAP)[0], 1)
        print(f"{name}, {fixed}: {peaks[name][fixed]:.0f} MB", file=sys.stderr)
    results = [{"cli": name, "peak_rss_mb": by, "seconds_longest": seconds[name],
                "within_target": by[longest] <= TARGET_MB} for name, by in peaks.items()]
    columns = [*lengths, fixed]
    lines = [f"Peak resident memory (RSS) of each CLI with one long recording (synthetic, {a.rate} Hz) beside 20 "
             f"short ones; target {TARGET_MB} MB at {longest}. Last column: the same run with glibc's "
             "`MALLOC_MMAP_THRESHOLD_=65536`.", "",
             "| CLI | " + " | ".join(columns) + f" | seconds at {longest} |", "|---" * (len(columns) + 2) + "|"]
    lines += [f"| {r['cli']} | " + " | ".join(f"{r['peak_rss_mb'][k]:.0f} MB" for k in columns)
              + f" | {r['seconds_longest']:.0f} |" for r in results]
    doc = {"hours": a.hours, "sample_rate": a.rate, "target_mb": TARGET_MB, "synthetic": True, "results": results,
           "all_within_target": all(r["within_target"] for r in results), "machine": machine(),
           "versions": versions("numpy", "torch", "onnxruntime", "ai-edge-litert")}
    save_with_table(doc, a.out, "benchmarks.memory", argv, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
