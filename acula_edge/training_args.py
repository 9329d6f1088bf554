"""The command-line flags every training stage shares (data, loop, augmentation, machine): parsing
only, so that ``--help`` imports no torch."""

from __future__ import annotations

import argparse

from acula_edge.errors import AculaError

# The training loop's flags (acula_edge.training.LoopConfig), shared by every training CLI.
LOOP_FLAGS: dict[str, tuple[type, str | None]] = {
    "epochs": (int, None),
    "max_steps": (int, "stop after this many optimizer steps (the schedule ends there)"),
    "batch_size": (int, "global micro-batch (split over torchrun processes)"),
    "accum": (int, "micro-batches per optimizer step"),
    "lr": (float, None),
    "weight_decay": (float, None),
    "warmup_steps": (int, None),
    "clip": (float, "gradient-norm clip (0: off)"),
    "seed": (int, None),
    "save_every": (int, "optimizer steps between resume states (and each epoch's end)"),
    "workers": (int, "data-loading processes (0: in the training process)"),
}


def add_run_arguments(p: argparse.ArgumentParser, out_required: bool = True) -> argparse._ArgumentGroup:
    """Data, loop and machine flags of a training CLI; returns the training group for the stage's own."""
    g = p.add_argument_group("data")
    g.add_argument("--manifest", action="append", default=[], help="JSONL or CSV manifest; repeat")
    g.add_argument("--data", action="append", default=[], metavar="FORMAT=PATH", help="a dataset folder; repeat")
    g.add_argument("--split", action="append", default=[],
                   help="keep only recordings of this split (e.g. train, from `acula_edge.data split`); repeat")
    g.add_argument("--out", required=out_required, help="run folder (outputs, resume state, logs)")
    g.add_argument("--resume", action="store_true", help="continue the run in --out from its last saved state")
    t = p.add_argument_group("training")
    t.add_argument("--config", metavar="FILE", help="start from the settings of a run's config.json (the flags "
                   "given alongside override them)")
    for name, (typ, text) in LOOP_FLAGS.items():
        t.add_argument("--" + name.replace("_", "-"), type=typ, help=text)
    t.add_argument("--no-augment", action="store_true", help="no augmentation")
    t.add_argument("--augment", action="append", default=[], metavar="FIELD=VALUE",
                   help="an augmentation setting (acula_edge.augment.AugmentConfig), e.g. eq_prob=0.5; repeat")
    t.add_argument("--backgrounds", metavar="DIR",
                   help="folder of background recordings (speech, rooms, street noise) mixed into training clips")
    t.add_argument("--background-prob", type=float,
                   help="share of clips that get a background (default 0.5 with --backgrounds)")
    t.add_argument("--no-bf16", action="store_true", help="fp32 on CUDA too")
    m = p.add_argument_group("machine")
    m.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available; LOCAL_RANK under torchrun)")
    m.add_argument("--threads", type=int, help="torch CPU threads per process")
    m.add_argument("--quiet", action="store_true", help="no progress bar")
    return t


def augment_override(a: argparse.Namespace, base):
    """The augmentation the command line asks for (``--no-augment``, ``--augment FIELD=VALUE``,
    ``--backgrounds``), from the stage's default ``base``; None when it asks for nothing."""
    import dataclasses
    from pathlib import Path

    from acula_edge.augment import AugmentConfig, Backgrounds

    from acula_edge.config import override

    if a.no_augment:
        if a.backgrounds or a.background_prob is not None or a.augment:
            raise AculaError("--no-augment contradicts --backgrounds and --augment")
        return AugmentConfig.off()
    if a.augment:
        base = override(base, a.augment, "--augment")
    if a.backgrounds:
        Backgrounds(a.backgrounds, 16000)  # a missing or empty folder fails here, before any work
        prob = 0.5 if a.background_prob is None else a.background_prob
        return dataclasses.replace(base, backgrounds=str(Path(a.backgrounds).resolve()), background_prob=prob)
    if a.background_prob is not None:
        raise AculaError("--background-prob needs --backgrounds DIR")
    return base if a.augment else None


def loop_overrides(a: argparse.Namespace) -> dict:
    """The loop settings given on the command line (``--no-bf16`` included)."""
    out = {k: getattr(a, k) for k in LOOP_FLAGS if getattr(a, k, None) is not None}
    if getattr(a, "no_bf16", False):
        out["bf16"] = False
    return out
