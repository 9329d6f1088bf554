#!/usr/bin/env bash
# vit-small with the gpu-paper settings (batch 24, accumulation 2, AdamW 1e-5, CKA + MSM) on one
# GPU in bf16 for a few minutes: prints clips per second and peak GPU memory, MSM pretraining and
# alignment, and saves $OUT/gpu_align_speed.json.
#
# Needs torch with CUDA (2.11 or newer), numpy, soundfile and safetensors. Alignment also needs the
# text teacher (pip install 'acula-edge[text]'); where it cannot be installed, embed the reports of
# the same corpus on another machine and pass them (CORPUS and EMB below):
#   python -m acula_edge.data.synth --out C --n 960 --duration 9.2
#   python -m acula_edge.reports --manifest C/manifest.jsonl --out C/reports.jsonl
#   python -m acula_edge.text embed --reports C/reports.jsonl --out EMB
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
STEPS=${STEPS:-200}
extra=()
if [ -n "${CORPUS:-}" ]; then extra+=(--corpus "$CORPUS"); fi
if [ -n "${EMB:-}" ]; then extra+=(--text-embeddings "$EMB"); fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python -m benchmarks.align_speed --preset gpu-paper --device cuda --steps "$STEPS" --warmup 20 --repeats 1 --clips 960 \
  --threads 8 ${extra[@]+"${extra[@]}"} --out "$OUT/gpu_align_speed.json"
