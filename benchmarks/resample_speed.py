"""Speed and accuracy of the numpy polyphase resampler on one core, against scipy when installed.

    python -m benchmarks.resample_speed [--seconds 600] [--repeats 5] [--out benchmarks/results/resample_speed.json]
"""

from __future__ import annotations

from benchmarks.common import machine, pin_one_cpu, pin_threads, save_result, versions

pin_threads(1)

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

PAIRS = [(2000, 16000), (8000, 16000), (44100, 16000), (48000, 16000), (16000, 8000)]


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (filter tables, page faults)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and save the JSON result."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.resample_speed", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=600.0, help="audio length per run (default 600)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="benchmarks/results/resample_speed.json")
    a = p.parse_args(argv)
    cpus = pin_one_cpu()
    import numpy as np

    from acula_edge.device.audio import resample

    try:
        from scipy.signal import resample_poly
    except ImportError:
        resample_poly = None
    rows = []
    for src, dst in PAIRS:
        x = np.random.default_rng(0).uniform(-0.5, 0.5, int(src * a.seconds)).astype(np.float32)
        ours = _median_seconds(lambda: resample(x, src, dst), a.repeats)
        row = {"from_hz": src, "to_hz": dst, "audio_s": a.seconds, "median_s": round(ours, 4),
               "realtime_factor": round(a.seconds / ours, 1)}
        if resample_poly is not None:
            g = np.gcd(src, dst)
            row["scipy_median_s"] = round(_median_seconds(lambda: resample_poly(x, dst // g, src // g), a.repeats), 4)
            row["ratio_to_scipy"] = round(ours / row["scipy_median_s"], 2)
            short = x[: src * 2]
            ref = resample_poly(short.astype(np.float64), dst // g, src // g)
            row["max_abs_diff_vs_scipy_float64"] = float(f"{np.abs(resample(short, src, dst) - ref).max():.2e}")
        rows.append(row)
        print(f"{src} -> {dst} Hz: {ours:.3f} s for {a.seconds:g} s of audio"
              + (f" (scipy {row['scipy_median_s']:.3f} s)" if "scipy_median_s" in row else ""), file=sys.stderr)
    save_result({"benchmark": "resample_speed", "threads": 1, "cpu_affinity": cpus, "repeats": a.repeats,
                 "rows": rows, "machine": machine(), "versions": versions("numpy", "scipy")},
                a.out, "benchmarks.resample_speed", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
