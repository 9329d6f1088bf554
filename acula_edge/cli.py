"""The ``acula-edge`` console script and the error handling every CLI shares."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import sys
from typing import Callable, Iterator, Sequence

from acula_edge.errors import AculaError

# stage name -> module with main(argv) (heavy imports happen inside each stage)
STAGES = {
    "data": ("acula_edge.data.cli", "summarise datasets, inspect audio files, write manifests and splits"),
    "synth": ("acula_edge.data.synth", "write the synthetic cardio-respiratory corpus"),
    "reports": ("acula_edge.reports.cli", "write clinical reports from recordings' metadata"),
    "text": ("acula_edge.text", "embed reports with the frozen text teacher (cached)"),
    "align": ("acula_edge.align.cli", "MSM pretraining and AcuLa alignment of an audio encoder"),
    "distill": ("distill.cli", "distil an aligned teacher into a small student"),
    "export": ("export.cli", "a student checkpoint as a verified bundle (ONNX, TFLite, int8)"),
    "evaluate": ("acula_edge.evaluate", "linear-probe AUROC of frozen encoders, with intervals"),
    "zeroshot": ("acula_edge.zeroshot", "score recordings against free-text prompts (no retraining)"),
    "listen": ("acula_edge.listen", "screen live audio, a recording or a demo stream with a bundle, in real time"),
    "pipeline": ("acula_edge.pipeline", "every stage in one command, from recordings to a verified, benchmarked bundle"),
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error:`` line (through :func:`guarded`)."""

    def error(self, message: str):
        raise AculaError(f"{message} (see {self.prog} --help)")


def guarded(main: Callable[[Sequence[str] | None], int]) -> Callable[[Sequence[str] | None], int]:
    """Turn user errors into one ``error:`` line and exit code 2; Ctrl-C into exit code 130."""

    @functools.wraps(main)
    def wrapper(argv: Sequence[str] | None = None) -> int:
        try:
            return main(argv)
        except AculaError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # output piped into head and the like
            sys.stderr.close()
            return 0
        except OSError as e:  # permissions, full disk, a path that is a folder, ...
            print(f"error: {e.strerror or e}{': ' + str(e.filename) if e.filename else ''}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130

    return wrapper


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


@contextlib.contextmanager
def quiet_native(fds: tuple[int, ...] = (1, 2)) -> Iterator[None]:
    """Silence stdout and stderr (or the file descriptors ``fds``) at the descriptor level, also for
    native code (the progress and log lines of model converters and quantizers, an audio driver's
    complaints); restored afterwards, also on error."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        for fd in fds:
            os.dup2(null, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, keep in zip(fds, saved):
            os.dup2(keep, fd)
        for fd in (*saved, null):
            os.close(fd)


def data_pairs(items: Sequence[str]) -> list[tuple[str, str]]:
    """``--data FORMAT=PATH`` arguments as ``(format, path)`` pairs, in order."""
    out = []
    for d in items:
        fmt, sep, path = d.partition("=")
        if not sep or not path:
            raise AculaError(f"--data wants FORMAT=PATH, got {d!r}")
        out.append((fmt, path))
    return out


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
    for name, (typ, text) in LOOP_FLAGS.items():
        t.add_argument("--" + name.replace("_", "-"), type=typ, help=text)
    t.add_argument("--no-augment", action="store_true", help="no augmentation")
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
    """The augmentation the command line asks for (``--no-augment``, ``--backgrounds``), from the
    stage's default ``base``; None when it asks for nothing."""
    import dataclasses
    from pathlib import Path

    from acula_edge.align.augment import AugmentConfig, Backgrounds

    if a.no_augment:
        if a.backgrounds or a.background_prob is not None:
            raise AculaError("--no-augment and --backgrounds contradict each other")
        return AugmentConfig.off()
    if a.backgrounds:
        Backgrounds(a.backgrounds, 16000)  # a missing or empty folder fails here, before any work
        prob = 0.5 if a.background_prob is None else a.background_prob
        return dataclasses.replace(base, backgrounds=str(Path(a.backgrounds).resolve()), background_prob=prob)
    if a.background_prob is not None:
        raise AculaError("--background-prob needs --backgrounds DIR")
    return None


def loop_overrides(a: argparse.Namespace) -> dict:
    """The loop settings given on the command line (``--no-bf16`` included)."""
    out = {k: getattr(a, k) for k in LOOP_FLAGS if getattr(a, k, None) is not None}
    if getattr(a, "no_bf16", False):
        out["bf16"] = False
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``acula-edge <stage> [options]``: run one stage of the toolkit."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        out = sys.stdout if args else sys.stderr
        print("usage: acula-edge <stage> [options]\n\nstages:", file=out)
        for name, (_, text) in STAGES.items():
            print(f"  {name:<10} {text}", file=out)
        return 0 if args else 2
    if args[0] not in STAGES:
        print(f"error: unknown stage {args[0]!r}; choose one of: {', '.join(STAGES)}", file=sys.stderr)
        return 2
    module = importlib.import_module(STAGES[args[0]][0])
    return module.main(args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
