"""What every benchmark shares: one pinned thread and CPU, the machine, versions, the saved JSON;
for the training benchmarks: subject splits and a training run's outputs (their stages run through
:class:`acula_edge.stages.Runner`, skipped when up to date)."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from acula_edge.data.splits import subject_parts  # noqa: F401  (re-exported for the scripts)
from acula_edge.provenance import cpu_model, machine, versions  # noqa: F401  (re-exported for the scripts)

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "BLIS_NUM_THREADS")


def pin_threads(n: int = 1) -> None:
    """Cap BLAS/OpenMP pools at ``n`` threads; call before numpy is imported."""
    for var in THREAD_VARS:
        os.environ[var] = str(n)


def pin_one_cpu() -> list[int] | None:
    """Restrict this process to its first allowed CPU; the CPUs in use, or None if unsupported."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    return sorted(os.sched_getaffinity(0))


def save_result(result: dict, out: str, module: str, argv: list[str], echo: bool = True) -> dict:
    """Add the exact command and write the JSON atomically, readable by all (printed too, with
    ``echo``); returns the result with the command."""
    from acula_edge.data.records import atomic_write_text

    result = {**result, "command": shlex.join(["python", "-m", module, *argv]), "python_executable": sys.executable}
    text = json.dumps(result, indent=2) + "\n"
    atomic_write_text(out, text)
    if echo:
        print(text, end="")
    print(f"saved to {out}", file=sys.stderr)
    return result


def save_with_table(doc: dict, out: str | Path, module: str, argv: list[str], table: str) -> None:
    """``OUT.json`` (the result with its command) and ``OUT.md`` (``table``, also printed), atomically."""
    from acula_edge.data.records import atomic_write_text

    out = Path(out)
    if out.suffix in (".json", ".md"):
        out = out.with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    save_result(doc, f"{out}.json", module, argv, echo=False)  # not with_suffix: OUT may hold a dot ("eq-0.5")
    atomic_write_text(Path(f"{out}.md"), table)
    print(table)


def trained(run_dir: Path, name: str = "encoder") -> list[Path]:
    """A training run's checkpoint and sidecar: the outputs that make its stage finished."""
    return [run_dir / f"{name}.safetensors", run_dir / f"{name}.json"]
