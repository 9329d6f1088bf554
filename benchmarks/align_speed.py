"""Training throughput (clips per second) of MSM pretraining and alignment, on CPU or one GPU.

    python -m benchmarks.align_speed                      # vit-tiny, cpu-tiny preset, 2 CPU threads
    python -m benchmarks.align_speed --preset gpu-paper --device cuda --steps 300 \\
        --out gpu_align_speed.json                        # vit-small, published settings, bf16

Writes a synthetic corpus (``--clips`` clips, long enough for the encoder's crop) to a temporary
folder, then for each mode runs the real trainer (data loading, augmentation, front end, text
teacher, optimizer) ``--repeats`` times for ``--warmup`` + ``--steps`` optimizer steps and reports
the median over repeats of each run's median clips per second of the timed steps (a step's time
covers its data and compute, not checkpoint saving), with peak GPU memory on CUDA. Prints and
saves JSON with the machine, versions and command.
``benchmarks/gpu_align.sh`` runs the GPU measurement on a machine with CUDA.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from benchmarks.common import machine, save_result, versions


def measure(mode: str, preset: str, manifest: Path, work: Path, steps: int, warmup: int, device: str | None,
            threads: int | None, text_cache: str, text_embeddings: str | None = None) -> dict:
    """One mode's throughput from the trainer's own per-step log."""
    import torch

    from acula_edge.align.trainer import preset_config, train
    from acula_edge.data.records import read_manifest

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    cfg = preset_config(preset, mode, max_steps=warmup + steps, epochs=10**6, save_every=10**6,
                        text_cache=text_cache if mode == "align" else None,
                        text_embeddings=text_embeddings if mode == "align" else None)
    out = work / mode
    result = train(cfg, read_manifest(manifest), out, device=device, threads=threads, progress_bar=False)
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    timed = [x["clips_per_s"] for x in log[warmup:]]
    return {"mode": mode, "encoder": cfg.encoder, "batch_size": cfg.batch_size, "accum": cfg.accum,
            "clips_per_step": cfg.batch_size * cfg.accum, "loss": cfg.loss if mode == "align" else "msm",
            "bf16": bool(cfg.bf16 and result["device"].startswith("cuda")), "device": result["device"],
            "timed_steps": len(timed), "median_clips_per_s": round(statistics.median(timed), 2),
            "min_clips_per_s": round(min(timed), 2), "max_clips_per_s": round(max(timed), 2),
            "peak_gpu_memory_gib": result.get("peak_gpu_memory_gib"), "last_loss": log[-1]["loss"]}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.align_speed", description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="cpu-tiny", help="cpu-tiny (default) or gpu-paper")
    p.add_argument("--modes", default="pretrain,align", help="comma-separated: pretrain, align")
    p.add_argument("--steps", type=int, default=30, help="timed optimizer steps per mode (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (default 5)")
    p.add_argument("--repeats", type=int, default=3, help="fresh runs per mode; the median of their medians (default 3)")
    p.add_argument("--clips", type=int, default=192, help="synthetic clips to train on (default 192)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    p.add_argument("--corpus", help="train on this synthetic corpus folder instead of writing one")
    p.add_argument("--text-embeddings", help="report embeddings of --corpus from `acula_edge.text embed` "
                                             "(for machines without the text teacher installed)")
    p.add_argument("--out", default="benchmarks/results/align_speed.json", help="result JSON path")
    a = p.parse_args(argv)
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if a.steps < 1 or a.warmup < 0 or a.repeats < 1 or a.clips < 2 or any(m not in ("pretrain", "align") for m in modes):
        print("error: --steps >= 1, --warmup >= 0, --clips >= 2, --modes from pretrain,align", file=sys.stderr)
        return 2
    import torch

    from acula_edge.align.trainer import preset_config
    from acula_edge.data.synth import SynthConfig, generate
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models import create_encoder

    frames = create_encoder(preset_config(a.preset, "align").encoder).input_frames
    seconds = FrontendConfig().num_samples(frames) / FrontendConfig().sample_rate + 1.0
    with tempfile.TemporaryDirectory(prefix="align-speed-") as tmp:
        work = Path(tmp)
        corpus = Path(a.corpus) if a.corpus else work / "corpus"
        if not a.corpus:
            generate(corpus, a.clips, seed=0, cfg=SynthConfig(duration=seconds))
        runs = []
        for m in modes:
            reps = [measure(m, a.preset, corpus / "manifest.jsonl", work / f"r{i}", a.steps, a.warmup, a.device,
                            a.threads, str(work / "text-cache.sqlite"), a.text_embeddings) for i in range(a.repeats)]
            medians = [r["median_clips_per_s"] for r in reps]
            runs.append({**reps[len(reps) // 2], "median_clips_per_s": round(statistics.median(medians), 2),
                         "repeat_medians": medians,
                         "min_clips_per_s": min(r["min_clips_per_s"] for r in reps),
                         "max_clips_per_s": max(r["max_clips_per_s"] for r in reps),
                         "peak_gpu_memory_gib": max((r["peak_gpu_memory_gib"] or 0) for r in reps) or None})
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() and runs[0]["device"].startswith("cuda") else None
    result = {"what": "training throughput: clips per second through the whole step (data, augmentation, front end, "
                      "forward, backward, optimizer): per run the median over timed steps, then the median over repeats",
              "preset": a.preset, "threads": a.threads, "clip_seconds": round(seconds, 2), "runs": runs,
              "gpu": gpu, "machine": machine(), "versions": versions("torch", "numpy")}
    save_result(result, a.out, "benchmarks.align_speed", argv)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
