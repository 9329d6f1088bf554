"""One variant's latency and memory, in a process of its own: ``python -m benchmarks.measure JOB``.

JOB is JSON: ``spec`` (a :class:`benchmarks.variants.Spec`), ``threads``, ``pin_cpu`` (run on one
CPU), ``samples`` (window length), ``batches`` (batch sizes, timed in this order), ``runs`` (timed
calls per batch size) and ``warmup`` (untimed windows before each batch size's calls: ``warmup //
batch`` calls, at least 2). The thread count is pinned before any library starts its thread pools.
Prints one JSON object: the process's resident memory after its imports, after loading the model
and at its peak (KiB), and per batch size the calls' median, 95th percentile and mean in
milliseconds, the windows per second at the median and the peak memory so far (with batch sizes
in increasing order: the peak of running batches up to that size).

A process per measurement keeps one variant's memory and thread pools out of another's numbers.
"""

from __future__ import annotations

import json
import sys
from typing import Any


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return -1


def rss_kib() -> int:
    """Resident memory of this process now (KiB)."""
    return _status_kib("VmRSS:")


def peak_rss_kib() -> int:
    """The most resident memory this process has held since it started its program (``VmHWM``, KiB;
    unlike ``ru_maxrss`` it does not carry the parent's peak over a fork)."""
    return _status_kib("VmHWM:")


def measure(job: dict[str, Any]) -> dict[str, Any]:
    import time

    import numpy as np

    from benchmarks.variants import Spec, load_run

    spec = Spec(**job["spec"])
    if spec.kind in ("torch", "teacher"):
        import torch  # noqa: F401  (its import counts as the runtime's, not the model's)
    else:
        import onnxruntime  # noqa: F401
    mem = {"imports": rss_kib()}
    run = load_run(spec, job["threads"])
    mem["loaded"] = rss_kib()
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"batches": {}}
    for b in job["batches"]:
        x = (0.1 * rng.standard_normal((b, job["samples"]))).astype(np.float32)
        for _ in range(max(2, job["warmup"] // b)):  # the same number of warm-up windows at every batch size
            run(x)
        times = []
        for _ in range(int(job["runs"][str(b)])):
            t0 = time.perf_counter()
            run(x)
            times.append(time.perf_counter() - t0)
        ms = 1e3 * np.array(times)
        p50 = float(np.median(ms))
        out["batches"][str(b)] = {"p50_ms": round(p50, 4), "p95_ms": round(float(np.percentile(ms, 95)), 4),
                                  "mean_ms": round(float(ms.mean()), 4), "runs": len(times),
                                  "windows_per_s": round(1e3 * b / p50, 2), "peak_rss_kib": peak_rss_kib()}
    mem["peak"] = peak_rss_kib()
    out["rss_kib"] = mem
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    job = json.loads(argv[0])
    from benchmarks.common import pin_one_cpu, pin_threads

    pin_threads(job["threads"])
    if job.get("pin_cpu"):
        pin_one_cpu()
    from acula_edge.cli import quiet_native

    try:
        with quiet_native((2,)):  # runtimes announce their delegates
            result = measure(job)
    except Exception as e:  # reported as a missing figure, with its reason
        print(json.dumps({"error": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0][:300]}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
