"""The ``acula-edge`` console script: stages, --version, help texts, and help without heavy imports."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import subprocess
import sys

import pytest

from acula_edge import __version__
from acula_edge.cli import STAGES, Parser, describe, main
from conftest import ROOT, run_module

HEAVY = ("torch", "transformers", "litert_torch", "onnx")

# a fresh interpreter: the stage's help through the console script's main, then the heavy modules loaded
HELP_SNIPPET = """
import json, sys
from acula_edge.cli import main
try:
    code = main([sys.argv[1], "--help"])
except SystemExit as e:
    code = e.code
sys.stdout.flush()
print(json.dumps({"code": code or 0, "heavy": sorted(m for m in %r if m in sys.modules)}), file=sys.stderr)
""" % (HEAVY,)


def help_of(*argv: str) -> tuple[int, str, str]:
    """``acula-edge ARGV`` in this process: exit code, stdout, stderr (``--help`` exits through SystemExit)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as e:
            code = e.code or 0
    return code, out.getvalue(), err.getvalue()


def description(help_text: str) -> str:
    """The description paragraph of an argparse help text (between the usage and the first section)."""
    paragraphs = help_text.split("\n\n")
    return " ".join(paragraphs[1].split()) if len(paragraphs) > 1 else ""


@pytest.mark.parametrize("stage", list(STAGES))
def test_stage_help_is_complete_and_imports_nothing_heavy(stage):
    p = subprocess.run([sys.executable, "-c", HELP_SNIPPET, stage], capture_output=True, text=True, cwd=ROOT,
                       timeout=120)
    result = json.loads(p.stderr.strip().splitlines()[-1])
    assert result == {"code": 0, "heavy": []}, p.stderr
    assert p.stdout.startswith(f"usage: acula-edge {stage} "), p.stdout[:200]
    assert "``" not in p.stdout and "python -m" not in p.stdout.splitlines()[0]
    text = description(p.stdout)
    assert text.endswith("."), f"{stage}: the description stops mid-sentence: {text!r}"


@pytest.mark.parametrize("argv", [("data", "summarize"), ("data", "split"), ("align", "train"), ("align", "pretrain"),
                                  ("text", "embed"), ("export", "verify"), ("benchmarks", "run")])
def test_sub_command_help_follows_the_console_script(argv):
    code, out, _ = help_of(*argv, "--help")
    assert code == 0 and out.startswith(f"usage: acula-edge {' '.join(argv)} ")
    assert "``" not in out and description(out).endswith(".")


def test_usage_errors_name_the_command_that_was_run():
    code, out, err = help_of("align", "train", "--no-such-flag")
    assert code == 2 and err.startswith("error: ") and err.rstrip().endswith("(see acula-edge align train --help)")


def test_python_m_keeps_its_own_program_name():
    from acula_edge.align.cli import main as align_main

    help_of("align", "--help")  # the console script's name does not stay behind for later parsers
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        align_main(["train", "--help"])
    assert out.getvalue().startswith("usage: python -m acula_edge.align train ")
    p = run_module("export", "--help")
    assert p.returncode == 0 and p.stdout.startswith("usage: python -m export ")


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version(flag):
    p = run_module("acula_edge.cli", flag)
    assert (p.returncode, p.stdout, p.stderr) == (0, f"acula-edge {__version__}\n", "")


def test_top_level_help_lists_every_stage_and_the_version_flag():
    code, out, _ = help_of("--help")
    listed = [line.split()[0] for line in out.split("stages:\n")[1].split("\n\n")[0].splitlines()]
    assert code == 0 and listed == list(STAGES) and {"demo", "benchmarks"} <= set(listed)
    assert "--version" in out and "-V" in out
    code, out, err = help_of()
    assert code == 2 and out == "" and err.startswith("usage: acula-edge ")
    code, _, err = help_of("nonsense")
    assert code == 2 and err.startswith("error: unknown stage 'nonsense'")


def test_export_help_tells_how_to_verify():
    code, out, _ = help_of("export", "--help")
    assert code == 0 and "acula-edge export verify BUNDLE" in " ".join(out.split())


def test_benchmarks_without_a_command_shows_its_usage():
    code, out, err = help_of("benchmarks")
    assert code == 2 and err.startswith("usage: acula-edge benchmarks ") and "acula-edge benchmarks run" in err


def test_help_shows_no_double_backticks_whatever_the_formatter():
    for formatter in (argparse.HelpFormatter, argparse.RawDescriptionHelpFormatter):
        p = Parser(prog="prog", description="Runs ``python -m x`` fast.", epilog="See ``y``.",
                   formatter_class=formatter)
        p.add_argument("--flag", help="a ``literal`` flag (default %(default)s)", default=3)
        sub = p.add_subparsers()
        sub.add_parser("go", help="go ``now``")
        text = p.format_help()
        assert "``" not in text
        assert "Runs python -m x fast." in text and "See y." in text and "a literal flag (default 3)" in text
        assert "go now" in text


def test_describe_takes_the_first_paragraph_without_the_command():
    doc = """``python -m acula_edge.thing`` (``make thing``): does one thing, from here
    to there.

    More detail that the help leaves out.
    """
    assert describe(doc) == "Does one thing, from here to there."
    assert describe("A summary line.\n\nDetail.") == "A summary line."
