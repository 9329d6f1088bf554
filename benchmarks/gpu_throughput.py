"""Teacher and student inference throughput on a GPU, bf16 against fp32, in a few minutes.

    python -m benchmarks.gpu_throughput [--teacher vit-small | CKPT] [--students mn-xs,mn-s,mn-m,mn-l]
        [--batch 256] [--seconds 20] [--device cuda] [--out benchmarks/results/gpu_throughput.json]

For each model: windows per second from waveform to embedding (the log-mel front end included) at
``--batch`` windows per call, under ``torch.autocast`` in bf16 and then in fp32 (the speed-up is a
ratio from the same run); medians of timed calls after warm-up, the device synchronised around
each; peak GPU memory per model and precision. Speed does not depend on the weights, so no
checkpoint is needed: by default the teacher is the ``gpu-paper`` encoder (``vit-small``, randomly
initialised) and the students are the presets; a checkpoint path times that model instead.

Needs torch with CUDA (``--device cpu`` runs the same measurement on the CPU, to check the script).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from benchmarks.common import machine, save_result, versions


def teacher_model(spec: str):
    """``(module: waveform [B, samples] -> embedding, samples, sample rate)`` of an encoder name or checkpoint."""
    from benchmarks.variants import teacher_model as build

    model, fe, frames = build(spec, aligned=False)
    return model, fe.num_samples(frames), fe.sample_rate


def student_model(spec: str):
    """``(EdgeModel, samples, sample rate)`` of a student preset or checkpoint."""
    from acula_edge.frontend import FrontendConfig
    from export.model import EdgeModel, edge_model

    if spec.endswith(".safetensors"):
        m = edge_model(spec)
    else:
        from acula_edge.models.students import create_student

        m = EdgeModel(create_student(spec), FrontendConfig().to_dict()).eval()
    return m, m.samples, m.fe.sample_rate


def throughput(model, samples: int, batch: int, device: str, bf16: bool, seconds: float) -> dict[str, Any]:
    """Windows per second at ``batch`` (median call), and peak device memory."""
    import numpy as np
    import torch

    model = model.to(device)
    x = 0.1 * torch.randn(batch, samples, device=device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times: list[float] = []
    with torch.inference_mode(), torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
        for _ in range(3):
            model(x)
        sync()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds or len(times) < 5:
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - t0)
    med = float(np.median(times))
    out = {"windows_per_s": round(batch / med, 1), "median_call_ms": round(1e3 * med, 3), "calls": len(times)}
    if device.startswith("cuda"):
        out["peak_memory_mib"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.gpu_throughput", description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="vit-small", help="an encoder name (random weights) or an aligned checkpoint")
    p.add_argument("--students", default="mn-xs,mn-s,mn-m,mn-l", help="comma-separated presets or checkpoints")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per model and precision")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", default="benchmarks/results/gpu_throughput.json")
    a = p.parse_args(argv)
    import torch

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: no CUDA device: this measures GPU throughput (--device cpu checks the script on a CPU)",
              file=sys.stderr)
        return 2
    models = [("teacher", a.teacher, teacher_model)] + [("student", s, student_model) for s in a.students.split(",") if s]
    rows = []
    for role, spec, build in models:
        model, samples, rate = build(spec)
        row = {"role": role, "model": spec, "parameters": sum(q.numel() for q in model.parameters()),
               "window_s": round(samples / rate, 3)}
        for name, bf16 in (("bf16", True), ("fp32", False)):
            row[name] = throughput(model, samples, a.batch, a.device, bf16, a.seconds)
        row["bf16_speedup"] = round(row["bf16"]["windows_per_s"] / row["fp32"]["windows_per_s"], 3)
        rows.append(row)
        print(f"{role} {spec}: {row['bf16']['windows_per_s']:.0f} windows/s bf16, "
              f"{row['fp32']['windows_per_s']:.0f} fp32 ({row['bf16_speedup']:.2f}x)", file=sys.stderr)
    device = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else machine()["cpu_model"]
    save_result({"device": device, "batch": a.batch, "seconds_per_measurement": a.seconds, "rows": rows,
                 "machine": machine(), "versions": versions("torch")}, a.out, "benchmarks.gpu_throughput", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
