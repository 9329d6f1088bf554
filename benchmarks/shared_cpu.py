"""Training on a shared CPU: one short training command with OpenMP threads that spin and that sleep.

    python -m benchmarks.shared_cpu [--load 2] [--repeats 3] [--steps 10] [--threads 2]

Starts ``--load`` busy processes (another job on the machine), then runs ``python -m
acula_edge.align pretrain`` (the ``cpu-tiny`` preset's ``vit-tiny``, ``--steps`` steps of 16 clips
of a small synthetic corpus, ``--threads`` threads) in turns with ``OMP_WAIT_POLICY=ACTIVE`` (idle
OpenMP threads spin, the usual default) and ``PASSIVE`` (they sleep: what ``import acula_edge``
sets), and saves the wall-clock seconds of every run (the whole command) and their medians to
``benchmarks/results/shared_cpu.json``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from acula_edge.cli import Parser, describe, guarded

POLICIES = ("ACTIVE", "PASSIVE")


def _parser() -> Parser:
    p = Parser(prog="python -m benchmarks.shared_cpu", description=describe(__doc__))
    p.add_argument("--load", type=int, default=2, help="busy processes beside the training (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="runs per policy (default: %(default)s)")
    p.add_argument("--steps", type=int, default=10, help="training steps per run (default: %(default)s)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="training threads (default: every core)")
    p.add_argument("--out", default="benchmarks/results/shared_cpu.json")
    return p


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = _parser().parse_args(argv)
    from acula_edge.data.synth import generate
    from benchmarks.common import machine, save_result, versions

    seconds: dict[str, list[float]] = {p: [] for p in POLICIES}
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "corpus", 32, seed=0)
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(a.load)]
        try:
            for _ in range(a.repeats):
                for policy in POLICIES:
                    out = Path(tmp) / f"run-{policy}-{len(seconds[policy])}"
                    cmd = [sys.executable, "-m", "acula_edge.align", "pretrain", "--preset", "cpu-tiny", "--manifest",
                           str(Path(tmp) / "corpus" / "manifest.jsonl"), "--max-steps", str(a.steps), "--batch-size",
                           "16", "--threads", str(a.threads), "--quiet", "--out", str(out)]
                    t = time.perf_counter()
                    subprocess.run(cmd, env={**os.environ, "OMP_WAIT_POLICY": policy}, check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    seconds[policy].append(round(time.perf_counter() - t, 2))
                    print(f"{policy}: {seconds[policy][-1]:.1f} s", file=sys.stderr, flush=True)
        finally:
            for p in busy:
                p.kill()
                p.wait()
    doc = {"steps": a.steps, "batch": 16, "threads": a.threads, "busy_processes": a.load,
           "seconds": seconds, "median_s": {p: float(np.median(v)) for p, v in seconds.items()},
           "slowdown_spinning": round(float(np.median(seconds["ACTIVE"]) / np.median(seconds["PASSIVE"])), 2),
           "machine": machine(), "versions": versions("torch")}
    save_result(doc, a.out, "benchmarks.shared_cpu", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
