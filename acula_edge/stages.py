"""One stage runner for the pipeline and the benchmark scripts: each stage is a command of this
package's CLIs (or an in-process function) with the files it reads and writes.

A stage is skipped when it is up to date: the sha256 of its command and of its inputs' contents
matches the one recorded when it last finished (``FOLDER/<state>/NAME.json``), and its outputs
still have the digests it recorded. Paths inside the run folder are hashed relative to it, so a
copied or moved folder stays up to date. A killed training stage continues from its saved state
(``--resume``) while its key is unchanged; other stages start again. A stage's output goes to
``FOLDER/logs/NAME.log``; one progress line shows the whole run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from acula_edge.errors import AculaError
from acula_edge.hashing import path_digest


@dataclass
class Step:
    """One stage's work: a command (or an in-process function), what it reads and what it writes."""

    command: list[str] = field(default_factory=list)  # module and arguments, after "python -m"
    inputs: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    run: Callable[[], None] | None = None  # in-process work instead of a command
    resumable: Path | None = None  # a training run folder: continued with --resume after a kill
    stdout: Path | None = None  # where the command's stdout goes (else the log)
    torchrun: bool = False
    progress: tuple[Path, float] | None = None  # (metrics.jsonl, epochs) for the progress line
    ok_codes: tuple[int, ...] = (0,)  # exit codes that finish the stage (verify: 1 = a file failed a check)


def _stop_with_parent() -> None:  # pragma: no cover - runs in the child
    """A stage dies with its runner (Linux), so that a killed run leaves no stage writing on."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Display:
    """One progress line for the whole run: rewritten in place on a terminal, a line per event in a log."""

    def __init__(self, total: int, stream=sys.stderr) -> None:
        self.total, self.stream, self.tty = total, stream, stream.isatty()
        self.last = 0.0

    def show(self, i: int, name: str, text: str, final: bool = False) -> None:
        """Show stage ``i``'s state; off a terminal, only final states and one line per 30 s."""
        line = f"[{i}/{self.total}] {name:<10} {text}"
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        elif final or now - self.last >= 30:
            self.stream.write(line + "\n")
        else:
            return
        self.last = now
        self.stream.flush()


def training_progress(metrics: Path, epochs: float, max_steps: int | None) -> str:
    """``epoch 3.2/10`` (or ``step 5/8``) from the last line of a training run's ``metrics.jsonl``."""
    try:
        with open(metrics, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            last = json.loads(f.read().decode("utf-8", "replace").strip().splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return ""
    if max_steps:
        return f"step {last.get('step', 0)}/{max_steps}"
    return f"epoch {float(last.get('epoch', 0)):.1f}/{epochs:g}"


def clock(s: float) -> str:
    """Seconds as ``1m05s``."""
    return f"{int(s // 60)}m{int(s % 60):02d}s"


def error_line(log: Path) -> str:
    """The last ``error:`` line of a stage's log, else its last line."""
    try:
        lines = [x.strip() for x in log.read_text(encoding="utf-8", errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    errors = [x for x in lines if x.startswith("error:")]
    return (errors or lines or [""])[-1]


@contextlib.contextmanager
def locked(folder: Path, what: str = "run") -> Iterator[None]:
    """One runner at a time in a folder."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise AculaError(f"another {what} is running in {folder.parent}") from None
        yield


@dataclass
class Runner:
    """Runs named stages in ``folder``: logs in ``folder/logs``, what finished in ``folder/<state>``."""

    folder: Path
    nproc: int = 1  # processes of a ``torchrun`` stage
    max_steps: int | None = None  # the training stages' step cap, for the progress line
    state: str = ".stages"
    commands: list[str] = field(default_factory=list)  # every stage's command line, in order

    def rel(self, x: str | Path) -> str:
        """A path inside the folder written as ``RUN/...`` (anything else as it is)."""
        text, base = str(x), str(self.folder)
        return "RUN" + text[len(base):] if text == base or text.startswith(base + os.sep) else text

    def key(self, name: str, step: Step) -> str:
        """sha256 of the stage's command and of its inputs' contents (and of the package version)."""
        from acula_edge import __version__

        doc = {"stage": name, "command": [self.rel(c) for c in step.command],
               "inputs": {self.rel(p): path_digest(p) for p in step.inputs},
               "nproc": self.nproc if step.torchrun else 1, "code": __version__}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def up_to_date(self, state: Path, key: str, outputs: list[Path]) -> bool:
        """Whether the stage finished with this key and its outputs are still the ones it wrote."""
        try:
            done = json.loads(state.read_text())
        except (OSError, ValueError):
            return False
        return done.get("key") == key and all(done.get("outputs", {}).get(self.rel(p)) == path_digest(p)
                                              for p in outputs)

    def execute(self, name: str, step: Step, display: Display, i: int) -> None:
        """Run one stage's command (its output in ``logs/NAME.log``), showing its progress."""
        log = self.folder / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        if step.run is not None:
            display.show(i, name, "running")
            step.run()
            return
        py = [sys.executable]
        if step.torchrun and self.nproc > 1:
            py += ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(self.nproc)]
        cmd = py + ["-m", *step.command] + (["--resume"] if step.resumable and step.resumable.exists() else [])
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        t0 = time.monotonic()
        if step.stdout:
            step.stdout.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as err, contextlib.ExitStack() as stack:
            out = stack.enter_context(open(step.stdout.with_suffix(".tmp"), "w", encoding="utf-8")) if step.stdout else err
            err.write("$ " + shlex.join(["python", *cmd[1:]]) + "\n")
            err.flush()
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, preexec_fn=_stop_with_parent)
            try:
                while proc.poll() is None:
                    where = training_progress(*step.progress, self.max_steps) if step.progress else ""
                    display.show(i, name, f"{where}  {clock(time.monotonic() - t0)}".strip())
                    time.sleep(0.5)
            except BaseException:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                raise
        if proc.returncode not in step.ok_codes:
            raise AculaError(f"stage {name} failed (exit {proc.returncode}): {error_line(log) or 'no output'} "
                             f"(log: {log})")
        if step.stdout:
            os.replace(step.stdout.with_suffix(".tmp"), step.stdout)

    def run(self, stages: Sequence[tuple[str, Step | Callable[[], Step]]]) -> dict[str, dict[str, Any]]:
        """Run (or skip) the stages in order; what each did and took. A stage given as a function is
        built only when its turn comes (it may read what earlier stages wrote)."""
        from acula_edge.data.records import atomic_write_text

        meta = self.folder / self.state
        display = Display(len(stages))
        done: dict[str, dict[str, Any]] = {}
        for i, (name, make) in enumerate(stages, 1):
            step = make if isinstance(make, Step) else make()
            self.commands.append(shlex.join(["python", "-m", *step.command]) if step.run is None else step.command[0])
            key = self.key(name, step)
            state = meta / f"{name}.json"
            if self.up_to_date(state, key, step.outputs):
                seconds = json.loads(state.read_text())["seconds"]
                done[name] = {"status": "up to date", "seconds": seconds}
                display.show(i, name, f"up to date (took {clock(seconds)})", final=True)
                continue
            started = meta / f"{name}.started"
            resuming = step.resumable is not None and started.exists() and started.read_text() == key
            if not resuming:  # a fresh start: outputs of another configuration go
                for p in ([step.resumable] if step.resumable else []) + step.outputs:
                    if p.is_dir():
                        shutil.rmtree(p)
                    elif p.exists():
                        p.unlink()
                atomic_write_text(started, key)
            t0 = time.monotonic()
            self.execute(name, step, display, i)
            seconds = round(time.monotonic() - t0, 1)
            atomic_write_text(state, json.dumps({"key": key, "seconds": seconds,
                                                 "command": [self.rel(c) for c in step.command],
                                                 "outputs": {self.rel(p): path_digest(p) for p in step.outputs}},
                                                indent=2) + "\n")
            started.unlink(missing_ok=True)
            done[name] = {"status": "resumed" if resuming else "ran", "seconds": seconds}
            display.show(i, name, f"{done[name]['status']} in {clock(seconds)}", final=True)
        return done


__all__ = ["Display", "Runner", "Step", "clock", "error_line", "locked", "training_progress"]
