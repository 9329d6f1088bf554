"""Speed of the synthetic corpus generator on ONE core, WAV writing and manifest included.

    python -m benchmarks.synth_speed [--n 300] [--repeats 3] [--out benchmarks/results/synth_speed.json]

Pins BLAS/OpenMP pools to one thread (before numpy is imported) and the process to one CPU,
warms up (imports, caches, page cache), then generates ``--n`` five-second 16 kHz clips into a
fresh temporary folder ``--repeats`` times and reports the median clips per second, with the
machine, the library versions and the exact command, as JSON.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
             "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def pin_one_cpu() -> list[int] | None:
    """Restrict this process to its first allowed CPU; the CPUs in use, or None if unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    return sorted(os.sched_getaffinity(0))


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and save the JSON result."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.synth_speed", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=300, help="clips per timed run (default 300)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs (default 3)")
    p.add_argument("--warmup", type=int, default=30, help="clips generated before timing (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tmp-dir", default=None, help="where the temporary corpora go (default: system temp)")
    p.add_argument("--out", default="benchmarks/results/synth_speed.json", help="result JSON path")
    a = p.parse_args(argv)
    if a.n < 1 or a.repeats < 1 or a.warmup < 0:
        print("error: --n and --repeats must be positive and --warmup non-negative", file=sys.stderr)
        return 2

    cpus = pin_one_cpu()
    import numpy as np
    import soundfile

    from acula_edge import __version__
    from acula_edge.data.synth import SynthConfig, generate
    from acula_edge.data.records import atomic_write_text

    cfg = SynthConfig(sample_rate=16000, duration=5.0)
    runs = []
    with tempfile.TemporaryDirectory(prefix="synth_speed_", dir=a.tmp_dir) as tmp:
        if a.warmup:
            generate(Path(tmp) / "warmup", a.warmup, seed=a.seed + 1000, cfg=cfg)
        for r in range(a.repeats):
            out = Path(tmp) / f"run{r}"
            t0 = time.perf_counter()
            recs = generate(out, a.n, seed=a.seed + r, cfg=cfg)
            dt = time.perf_counter() - t0
            assert len(recs) == a.n
            runs.append({"seconds": round(dt, 4), "clips_per_second": round(a.n / dt, 1)})
            print(f"run {r + 1}/{a.repeats}: {a.n} clips in {dt:.2f} s = {a.n / dt:.1f} clips/s", flush=True)
            shutil.rmtree(out, ignore_errors=True)

    med = statistics.median(x["clips_per_second"] for x in runs)
    result = {
        "benchmark": "synth_speed",
        "what": "acula_edge.data.synth.generate: synthesis + 16-bit WAV writing + manifest, one core",
        "median_clips_per_second": med,
        "realtime_factor": round(med * cfg.duration, 1),
        "runs": runs,
        "n_clips": a.n,
        "repeats": a.repeats,
        "warmup_clips": a.warmup,
        "clip": {"seconds": cfg.duration, "sample_rate": cfg.sample_rate},
        "threads": 1,
        "cpu_affinity": cpus,
        "machine": {
            "cpu_model": cpu_model(),
            "logical_cores": os.cpu_count(),
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "soundfile": soundfile.__version__,
            "acula_edge": __version__,
        },
        "command": shlex.join(["python", "-m", "benchmarks.synth_speed", *argv]),
        "python_executable": sys.executable,
    }
    text = json.dumps(result, indent=2) + "\n"
    atomic_write_text(a.out, text)
    os.chmod(a.out, 0o644)  # a published result, readable by all
    print(text, end="")
    print(f"median {med:.1f} clips/s; saved to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
