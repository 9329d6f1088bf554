"""``python -m acula_edge.align``: MSM pretraining (``pretrain``) and AcuLa alignment (``train``).

Runs alone or under ``torchrun`` (DDP: NCCL on CUDA, gloo on CPU); ``--batch-size`` is the global
micro-batch, so the same command trains the same model on any number of processes.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from acula_edge.cli import Parser, guarded
from acula_edge.training_args import add_run_arguments, augment_override, loop_overrides
from acula_edge.errors import AculaError


def _common(p: argparse.ArgumentParser) -> None:
    t = add_run_arguments(p)
    t.add_argument("--preset", help="cpu-tiny or gpu-paper (defaults of the flags above)")
    t.add_argument("--encoder", help="encoder preset when starting from random weights (see list_encoders())")
    t.add_argument("--init", help="checkpoint (*.safetensors) to start from")
    t.add_argument("--mask-ratio", type=float, help="MSM mask ratio (default: the encoder's)")


def _parser() -> Parser:
    p = Parser(prog="python -m acula_edge.align",
               description="MSM pretraining (pretrain) and AcuLa alignment (train) of an audio encoder.")
    p.add_argument("--list-presets", action="store_true", help="print the presets and exit")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    pre = sub.add_parser("pretrain", prog="python -m acula_edge.align pretrain",
                         help="masked spectrogram modelling from random weights (labels unused)")
    _common(pre)
    tr = sub.add_parser("train", prog="python -m acula_edge.align train",
                        help="align an encoder with the frozen text teacher (plus MSM)")
    _common(tr)
    a = tr.add_argument_group("alignment")
    a.add_argument("--loss", help="cka (default), cka-feature or infonce")
    a.add_argument("--lambda-align", type=float)
    a.add_argument("--lambda-msm", type=float, help="0: alignment only")
    a.add_argument("--proj-hidden", type=int)
    a.add_argument("--proj-out", type=int)
    a.add_argument("--dropout", type=float)
    a.add_argument("--reports", help="report store (JSONL with id and text); default: template reports")
    a.add_argument("--report-seed", type=int)
    a.add_argument("--text-model", help="local text model folder or .gguf (default: packaged all-MiniLM-L6-v2)")
    a.add_argument("--text-layer", type=int)
    a.add_argument("--text-pooling", choices=("mean", "cls", "last"))
    a.add_argument("--text-max-length", type=int)
    a.add_argument("--text-online", action="store_true", help="run the teacher in the loop (no cache)")
    a.add_argument("--text-embeddings", help="folder from `python -m acula_edge.text embed` (report ids = "
                                             "recording ids): no teacher loaded while training")
    c = a.add_mutually_exclusive_group()
    c.add_argument("--text-cache", help="embedding cache file (default: the user cache)")
    c.add_argument("--no-text-cache", action="store_true")
    return p


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m acula_edge.align``."""
    p = _parser()
    a = p.parse_args(argv)
    from acula_edge.align.trainer import PRESETS, STAGES, TrainConfig, configure, preset_config, train
    from acula_edge.config import read_config, to_dict
    from acula_edge.data.roots import load_sources

    if a.list_presets:
        print(json.dumps({name: to_dict(preset) for name, preset in PRESETS.items()}, indent=2))
        return 0
    if a.command is None:
        p.print_help(sys.stderr)
        return 2
    mode = "pretrain" if a.command == "pretrain" else "align"
    if a.config and a.preset:
        raise AculaError("give --preset or --config (a run's config.json), not both")
    if a.config:
        base = read_config(a.config, TrainConfig, STAGES[mode], key="training")
    else:
        base = preset_config(a.preset or "cpu-tiny", mode)
    if base.mode != mode:
        raise AculaError(f"--config {a.config}: a `{STAGES[base.mode]}` run's config, not a `{STAGES[mode]}` one")
    overrides = {k: getattr(a, k, None) for k in (
        "encoder", "init", "mask_ratio", "loss", "lambda_align", "lambda_msm", "proj_hidden", "proj_out",
        "dropout", "reports", "report_seed", "text_model", "text_layer", "text_pooling", "text_max_length",
        "text_cache", "text_embeddings")}
    overrides.update(loop_overrides(a))
    augment = augment_override(a, base.augment)
    if augment is not None:
        overrides["augment"] = augment
    if getattr(a, "text_online", False):
        overrides["text_online"] = True
    if getattr(a, "no_text_cache", False):
        overrides["text_cache"] = ""
    if a.init and a.encoder:
        raise AculaError("give --init (a checkpoint) or --encoder (a preset from random weights), not both")
    cfg = configure(base, **overrides)
    records = load_sources(a.manifest, a.data, a.split)
    result = train(cfg, records, a.out, resume=a.resume, device=a.device, threads=a.threads,
                   progress_bar=not a.quiet)
    if result.get("final") is not None:
        f = result["final"]
        losses = ", ".join(f"{k} {f[k]:.4f}" for k in ("loss", "l_align", "l_msm") if k in f)
        print(f"{a.command}: {result['steps']} steps ({result['epochs']} epochs) on {result['recordings']} recordings "
              f"of {result['subjects']} subjects in {result['seconds']:.1f} s; last step: {losses}; "
              f"checkpoint {a.out}/encoder.safetensors", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
