"""``python -m benchmarks run ...``: accuracy against latency, size and memory for every variant of a
bundle (:mod:`benchmarks.harness`). The other benchmarks run as ``python -m benchmarks.NAME``."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["run"]:
        print("usage: python -m benchmarks run --bundle BUNDLE [--teacher CKPT] --task NAME ... [--out DIR] [--quick]\n"
              "       (python -m benchmarks run --help for every option)", file=sys.stderr)
        return 2
    from benchmarks.harness import main as run_main

    return run_main(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
