"""What every benchmark shares: one pinned thread and CPU, the machine, versions, the saved JSON;
for the training benchmarks: logged commands, finished-run checks, subject splits, cached evaluation."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
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


def run(cmd: list[str], log: list[str], needed: bool = True) -> None:
    """Log a command; run it (printed) when ``needed`` (its output is not in the work folder yet)."""
    line = shlex.join(["python", *cmd[1:]] if cmd[0] == sys.executable else cmd)
    log.append(line)
    if not needed:
        return
    print(f"$ {line}", file=sys.stderr, flush=True)
    r = subprocess.run(cmd)
    if r.returncode != 0:
        raise SystemExit(f"error: command failed ({r.returncode}): {line}")


def finished(run_dir: Path, epochs: int, recordings: int, checkpoint: str = "encoder.safetensors") -> bool:
    """Whether ``run_dir`` holds a finished run with these settings; another finished run is an error."""
    if not (run_dir / checkpoint).exists():
        return False  # not run, or interrupted: the trainer resumes it (and refuses other settings)
    cfg = json.loads((run_dir / "config.json").read_text())
    if cfg["training"]["epochs"] != epochs or cfg["recordings"] != recordings:
        raise SystemExit(f"error: {run_dir} holds a run with other settings; give a fresh --work")
    return True




def evaluate_once(cmd: list[str], out: Path, checkpoints: list[str], log: list[str]) -> Path:
    """Run an ``acula_edge.evaluate`` command unless ``out/results.json`` already holds its result,
    newer than every checkpoint; returns that file."""
    done = out / "results.json"
    same = (done.exists() and json.loads(done.read_text())["command"] == shlex.join(["python", "-m", *cmd[2:]])
            and all(done.stat().st_mtime > Path(e).stat().st_mtime for e in checkpoints if e.endswith(".safetensors")))
    run(cmd, log, needed=not same)
    return done
