"""The ``acula-edge`` console script and the error handling every CLI shares."""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import os
import re
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
    "demo": ("acula_edge.demo", "the default bundle screens the example recording in real time"),
    "pipeline": ("acula_edge.pipeline", "every stage in one command, from recordings to a verified, benchmarked bundle"),
    "benchmarks": ("benchmarks.__main__", "accuracy against latency, size and memory for every variant of a bundle"),
}

#: the program name of the stage that :func:`main` runs (``acula-edge <stage>``); None under ``python -m``
_stage_prog: str | None = None

_DOUBLE_BACKTICKS = re.compile(r"``(.+?)``", re.DOTALL)


def plain(text: str) -> str:
    """``text`` without reST's double backticks (``like this`` reads: like this)."""
    return _DOUBLE_BACKTICKS.sub(r"\1", text)


def describe(doc: str) -> str:
    """A parser description from a module docstring: its first paragraph on one line, without a leading
    ``command``: (the usage line names the command)."""
    first = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.match(r"``[^`]+``(?: \([^)]*\))?: (.+)", first)
    return m[1][0].upper() + m[1][1:] if m else first


class _PlainHelp:
    """Help formatting without reST's double backticks (mixed into an argparse formatter)."""

    def _format_text(self, text: str) -> str:  # description and epilog
        return super()._format_text(plain(text))

    def _expand_help(self, action: argparse.Action) -> str:  # an option's or a sub-command's help
        return plain(super()._expand_help(action))


class _SubCommands(argparse._SubParsersAction):
    """Sub-commands whose parsers take their description from their one-line help when given none."""

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        text = kwargs.get("help")
        if text and "description" not in kwargs:
            kwargs["description"] = text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")
        return super().add_parser(name, **kwargs)


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error:`` line (through :func:`guarded`), whose help
    shows no reST markup, and whose ``python -m MODULE`` program name reads ``acula-edge <stage>`` when the
    console script runs the stage (sub-commands follow)."""

    def __init__(self, prog: str | None = None, *args, **kwargs) -> None:
        if _stage_prog and prog and prog.startswith("python -m "):
            prog = " ".join([_stage_prog, *prog.split()[3:]])
        formatter = kwargs.get("formatter_class", argparse.HelpFormatter)
        if not issubclass(formatter, _PlainHelp):
            kwargs["formatter_class"] = type(f"Plain{formatter.__name__}", (_PlainHelp, formatter), {})
        super().__init__(prog, *args, **kwargs)
        self.register("action", "parsers", _SubCommands)

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


def _help() -> str:
    from acula_edge import __doc__ as summary

    stages = "\n".join(f"  {name:<11}{text}" for name, (_, text) in STAGES.items())
    return (f"usage: acula-edge [-h] [-V] <stage> [options]\n\n{describe(summary)}\n\nstages:\n{stages}\n\n"
            "options:\n  -h, --help     show this help message and exit\n"
            "  -V, --version  print the version and exit\n\n"
            "acula-edge <stage> --help shows a stage's options; each stage also runs as python -m MODULE.\n")


def main(argv: Sequence[str] | None = None) -> int:
    """``acula-edge <stage> [options]``: run one stage of the toolkit."""
    global _stage_prog
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(_help(), end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    if args[0] in ("-V", "--version"):
        from acula_edge import __version__

        print(f"acula-edge {__version__}")
        return 0
    if args[0] not in STAGES:
        print(f"error: unknown stage {args[0]!r}; choose one of: {', '.join(STAGES)} (see acula-edge --help)",
              file=sys.stderr)
        return 2
    _stage_prog = f"acula-edge {args[0]}"
    try:
        module = importlib.import_module(STAGES[args[0]][0])
        return module.main(args[1:])
    finally:
        _stage_prog = None


if __name__ == "__main__":
    # through the imported module, whose _stage_prog the stages' parsers read (not this __main__ copy)
    from acula_edge import cli

    raise SystemExit(cli.main())
