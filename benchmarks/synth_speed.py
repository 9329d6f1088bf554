"""Speed of the synthetic corpus generator on ONE core, WAV writing and manifest included.

    python -m benchmarks.synth_speed [--n 300] [--repeats 3] [--out benchmarks/results/synth_speed.json]

Pins BLAS/OpenMP pools to one thread (before numpy is imported) and the process to one CPU,
warms up (imports, caches, page cache), then generates ``--n`` five-second 16 kHz clips into a
fresh temporary folder ``--repeats`` times and reports the median clips per second, with the
machine, the library versions and the exact command, as JSON.
"""

from __future__ import annotations

from benchmarks.common import machine, pin_one_cpu, pin_threads, save_result, versions

pin_threads(1)

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


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
    from acula_edge.data.synth import SynthConfig, generate

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
        "machine": machine(),
        "versions": versions("numpy", "soundfile"),
    }
    save_result(result, a.out, "benchmarks.synth_speed", argv)
    print(f"median {med:.1f} clips/s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
