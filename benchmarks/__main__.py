"""``python -m benchmarks run ...``: accuracy against latency, size and memory for every variant of a
bundle (:mod:`benchmarks.harness`); ``python -m benchmarks generalization``: the recipe on a heart
site and children it never saw (:mod:`benchmarks.generalization`); ``python -m benchmarks events``:
a bundle's modality routing and event findings on unseen subjects (:mod:`benchmarks.events`). The other benchmarks run as
``python -m benchmarks.NAME``."""

from __future__ import annotations

import sys
from typing import Sequence

from acula_edge.cli import Parser, guarded


def _parser() -> Parser:
    p = Parser(prog="python -m benchmarks",
               description="Accuracy against latency, size and memory for every variant of a bundle.")
    p.epilog = (f"{p.prog} run --help shows the options of run. The single benchmarks behind the README's "
                "numbers run as python -m benchmarks.NAME (for example benchmarks.export or benchmarks.synth_speed).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", add_help=False, help="benchmark the bundles' variants on the test subjects of tasks")
    sub.add_parser("generalization", add_help=False,
                   help="train the recipe twice and score it on a heart site and children it never saw")
    sub.add_parser("events", add_help=False,
                   help="modality routing and event findings (spans) of a bundle on subjects it never saw")
    return p


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        from benchmarks.harness import main as run_main

        return run_main(argv[1:])
    if argv[:1] == ["generalization"]:
        from benchmarks.generalization import main as generalization_main

        return generalization_main(argv[1:])
    if argv[:1] == ["events"]:
        from benchmarks.events import main as events_main

        return events_main(argv[1:])
    p = _parser()
    p.parse_args(argv)  # --help, or a usage error
    p.print_help(sys.stderr)  # no command
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
