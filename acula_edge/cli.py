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
    def wrapper(argv: Sequence[str] | None = None, **kwargs) -> int:
        try:
            return main(argv, **kwargs)
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
