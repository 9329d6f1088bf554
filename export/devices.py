"""``python -m export check-device``: a bundle on 64-bit and 32-bit ARM, under emulation, against this machine.

For each architecture it builds a Debian root from the distribution's packages (``mmdebstrap
--variant=extract``), installs the device side into it from the package index (aarch64: the
wheels of numpy, soundfile, sounddevice, onnxruntime and ai-edge-litert; armv7, which has none of
them: Debian's numpy and cffi and the ``tflite-runtime`` wheel), and runs, with ``qemu-user-static``
emulating a Raspberry Pi's CPU:

- ``python -m acula_edge.listen --self-test`` on the bundle;
- ``python -m acula_edge.listen --file`` on each recording with every model file the bundle holds
  that the architecture has a runtime for, whose window scores must equal this machine's within the
  bundle's self-test tolerance for the file's precision.

Emulation artefacts, not the project's: onnxruntime and LiteRT crash at import on the host's x86
``/proc/cpuinfo`` (the root gets an ARM one, which qemu serves), and ``--variant=extract`` runs no
package scripts (the BLAS and LAPACK links Debian's numpy needs are made here). Emulated timings
are not device timings: none is reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from acula_edge.cli import Parser, guarded
from acula_edge.errors import AculaError

REPO = Path(__file__).resolve().parents[1]
MIRROR = "http://deb.debian.org/debian"
SUITE, GLIBC = "bookworm", (2, 36)  # the base of Raspberry Pi OS 12 (Python 3.11)
#: the device side's own system libraries, beside Python
LIBRARIES = ("python3", "libstdc++6", "libsndfile1", "libportaudio2")
#: what each emulated CPU stands for, and the ``/proc/cpuinfo`` it gets (architecture, part, features)
CPUS = {
    "cortex-a72": ("Raspberry Pi 4", "8", "0xd08", "fp asimd evtstrm crc32 cpuid"),
    "cortex-a76": ("Raspberry Pi 5", "8", "0xd0b", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp "
                                                   "cpuid asimdrdm lrcpc dcpop asimddp"),
    "cortex-a7": ("Raspberry Pi 2 and 32-bit Raspberry Pi OS", "7", "0xc07",
                  "half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm"),
}


@dataclass(frozen=True)
class Arch:
    """How the device side is installed and run on one architecture."""

    debian: str  #: Debian's name of the architecture
    machine: str  #: the wheels' platform tag suffix
    qemu: str
    cpus: tuple[str, ...]
    system: tuple[str, ...]  #: Debian packages beside :data:`LIBRARIES`
    wheels: tuple[str, ...]  #: from the package index, pinned by constraints.txt
    no_deps: bool  #: install ``wheels`` without their dependencies (Debian provides those)


ARCHES = {
    "aarch64": Arch("arm64", "aarch64", "qemu-aarch64-static", ("cortex-a72", "cortex-a76"), (),
                    ("numpy", "soundfile", "sounddevice", "onnxruntime", "ai-edge-litert"), False),
    "armv7": Arch("armhf", "armv7l", "qemu-arm-static", ("cortex-a7",), ("python3-numpy", "python3-cffi"),
                  ("tflite-runtime", "soundfile", "sounddevice", "typing-extensions"), True),
}
#: what the report lists of each environment
PACKAGES = ("numpy", "onnxruntime", "ai-edge-litert", "tflite-runtime", "soundfile")
PROBE = ("import json, platform, importlib.metadata as m\n"
         "def v(p):\n    try:\n        return m.version(p)\n    except m.PackageNotFoundError:\n        return None\n"
         f"print(json.dumps({{'machine': platform.machine(), 'python': platform.python_version(), "
         f"'packages': {{p: v(p) for p in {PACKAGES!r}}}}}))")


def _run(cmd: Sequence[str], what: str, env: dict[str, str] | None = None, timeout: float = 1800) -> str:
    """stdout of ``cmd``; one line naming ``what`` and the last line of stderr when it fails."""
    try:
        r = subprocess.run(list(cmd), capture_output=True, text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AculaError(f"{what}: no answer in {timeout:.0f} s") from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or r.stdout.strip().splitlines() or [""])[-1]
        raise AculaError(f"{what} failed (exit {r.returncode}): {last}")
    return r.stdout


def build_root(arch: Arch, work: Path, mirror: str = MIRROR) -> Path:
    """A Debian root for ``arch`` under ``work`` (reused once complete)."""
    root = work / f"root-{arch.debian}"
    if (root / "usr" / "bin" / "python3").exists():
        return root
    tmp = work / f"root-{arch.debian}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    _run(["mmdebstrap", "--quiet", "--variant=extract", f"--arch={arch.debian}",
          f"--include={','.join(LIBRARIES + arch.system)}", SUITE, str(tmp), mirror], f"mmdebstrap ({arch.debian})")
    for lib in ("blas/libblas.so.3", "lapack/liblapack.so.3"):  # update-alternatives' links
        for found in tmp.glob(f"usr/lib/*/{lib}"):
            link = found.parent.parent / found.name
            if not link.exists():
                link.symlink_to(Path(found.parent.name) / found.name)
    tmp.rename(root)
    return root


def install_device_side(arch: Arch, root: Path, work: Path) -> Path:
    """The device side (its wheels and this checkout's ``acula_edge``) in a fresh folder under ``work``,
    for the root's Python; the folder goes on ``PYTHONPATH``."""
    site = work / f"site-{arch.debian}"
    shutil.rmtree(site, ignore_errors=True)
    python = os.path.basename(os.readlink(root / "usr" / "bin" / "python3"))  # python3.11
    major, minor = GLIBC
    tags = [f"manylinux_{major}_{m}_{arch.machine}" for m in range(17, minor + 1)] + [f"manylinux2014_{arch.machine}"]
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts",
           "--target", str(site), "--only-binary=:all:", "--implementation", "cp",
           "--python-version", python.removeprefix("python"), "-c", str(REPO / "constraints.txt"),
           *[x for t in tags for x in ("--platform", t)], *(["--no-deps"] if arch.no_deps else []), *arch.wheels]
    _run(cmd, f"pip install ({arch.machine} wheels)")
    shutil.copytree(REPO / "acula_edge", site / "acula_edge", ignore=shutil.ignore_patterns("__pycache__"))
    return site


def _cpuinfo(root: Path, cpu: str) -> None:
    """An ARM ``/proc/cpuinfo`` for ``cpu`` in the root (qemu's ``-L`` serves it in place of the host's)."""
    _, architecture, part, features = CPUS[cpu]
    (root / "proc").mkdir(exist_ok=True)
    (root / "proc" / "cpuinfo").write_text(
        f"processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
        f"CPU architecture: {architecture}\nCPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 3\n\n")


@dataclass
class Device:
    """An emulated board: runs Python in the root with the device side on its path."""

    arch: Arch
    root: Path
    site: Path
    cpu: str

    def command(self, *args: str) -> tuple[list[str], dict[str, str]]:
        """The command line and environment of ``python3 ARGS`` on this board."""
        _cpuinfo(self.root, self.cpu)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
               "LANG": "C.UTF-8", "QEMU_CPU": self.cpu, "PYTHONPATH": str(self.site), "PYTHONDONTWRITEBYTECODE": "1"}
        return [self.arch.qemu, "-L", str(self.root), str(self.root / "usr" / "bin" / "python3"), *args], env

    def python(self, *args: str, what: str) -> str:
        """stdout of ``python3 ARGS`` on this board; one error line when it fails."""
        cmd, env = self.command(*args)
        return _run(cmd, f"{what} on {self.arch.machine} ({self.cpu})", env=env)


def listen_file(python: Any, bundle: Path, recording: Path, backend: str, precision: str) -> list[dict]:
    """The window records of ``listen --file`` (as fast as it runs) with one model file."""
    args = ("-m", "acula_edge.listen", "--file", str(recording), "--no-realtime", "--json", "--warmup", "0",
            "--bundle", str(bundle), "--backend", backend, "--precision", precision)
    out = python(*args, what=f"listen --file {recording.name} ({backend} {precision})")
    return [r for r in map(json.loads, out.splitlines()) if r.get("type") == "window"]


def compare(ours: list[dict], theirs: list[dict]) -> dict[str, Any]:
    """Windows, windows whose gating differs, and the largest score difference of two runs of one recording."""
    if len(ours) != len(theirs):
        return {"windows": len(theirs), "mismatched": abs(len(ours) - len(theirs)), "max_abs_diff": None}
    diff, mismatched = 0.0, 0
    for a, b in zip(ours, theirs):
        sa, sb = a.get("scores"), b.get("scores")
        if a["quality"]["status"] != b["quality"]["status"] or (sa is None) != (sb is None) \
                or (sa is not None and set(sa) != set(sb)):
            mismatched += 1
        elif sa is not None:
            diff = max(diff, *(abs(sa[h] - sb[h]) for h in sa))
    return {"windows": len(theirs), "mismatched": mismatched, "max_abs_diff": diff}


def verdict(name: str, precision: str, per: list[dict[str, Any]], allowed: float) -> dict[str, Any]:
    """One file's row: ``ok`` when every recording gave the same windows, gated alike, with scores within
    ``allowed`` of this machine's."""
    diffs = [p["max_abs_diff"] for p in per]
    ok = all(d is not None and d <= allowed for d in diffs) and not any(p["mismatched"] for p in per)
    return {"file": name, "precision": precision, "status": "ok" if ok else "FAIL", "windows": sum(p["windows"] for p in per),
            "max_abs_diff": max((d for d in diffs if d is not None), default=None), "allowed": allowed, "recordings": per}


def check(arch_name: str, bundle_path: Path, recordings: list[Path], work: Path, cpus: Sequence[str] = (),
          mirror: str = MIRROR) -> dict[str, Any]:
    """Self-test and every runnable file of the bundle on each recording, on each of ``cpus``."""
    from acula_edge.device.bundle import load_bundle
    from acula_edge.device.runtime import runnable
    from acula_edge.device.selftest import TOLERANCE

    arch = ARCHES[arch_name]
    bundle = load_bundle(bundle_path)
    tolerance = (bundle.meta.get("self_test") or {}).get("tolerance", TOLERANCE)
    root = build_root(arch, work, mirror)
    site = install_device_side(arch, root, work)

    def host(*args: str, what: str) -> str:
        return _run([sys.executable, *args], f"{what} on this machine")

    reference = {}  # this machine's windows: (file, recording) -> records
    result: dict[str, Any] = {"arch": arch_name, "debian": f"{SUITE} {arch.debian}", "cpus": {}}
    for cpu in cpus or arch.cpus:
        device = Device(arch, root, site, cpu)
        env = json.loads(device.python("-c", PROBE, what="probe"))
        have = {"onnx": bool(env["packages"]["onnxruntime"]),
                "tflite": bool(env["packages"]["ai-edge-litert"] or env["packages"]["tflite-runtime"])}
        cmd, run_env = device.command("-m", "acula_edge.listen", "--self-test", "--bundle", str(bundle.path))
        r = subprocess.run(cmd, capture_output=True, text=True, env=run_env, timeout=1800)  # a failure is a result
        files = []
        for name, (fmt, precision) in sorted(bundle.models().items()):
            if not have[fmt]:
                files.append({"file": name, "precision": precision, "status": "not run",
                              "reason": f"no {fmt} runtime for {arch_name}"})
                continue
            if not runnable(fmt):
                raise AculaError(f"this machine has no {fmt} runtime to compare {name} with (install the 'tflite' extra)")
            print(f"{arch_name} ({cpu}): {name} on {len(recordings)} recording(s) ...", file=sys.stderr)
            per = []
            for rec in recordings:
                if (name, rec) not in reference:
                    reference[name, rec] = listen_file(host, bundle.path, rec, fmt, precision)
                theirs = listen_file(device.python, bundle.path, rec, fmt, precision)
                per.append({"recording": rec.name, **compare(reference[name, rec], theirs)})
            files.append(verdict(name, precision, per, tolerance[precision]["scores"]))
        result["cpus"][cpu] = {"board": CPUS[cpu][0], "environment": env, "self_test": {
            "passed": r.returncode == 0, "lines": [x for x in r.stdout.splitlines() + r.stderr.splitlines() if x.strip()]},
            "files": files}
    result["passed"] = all(c["self_test"]["passed"] and all(f["status"] != "FAIL" for f in c["files"])
                           for c in result["cpus"].values())
    return result


def markdown(doc: dict[str, Any]) -> str:
    """The report: one table of files per architecture and CPU, then the self-test lines."""
    lines = ["# The bundle on ARM, emulated", "",
             f"Bundle `{doc['bundle']}` ({doc['name']}: "
             f"{', '.join(f'`{n}` {h[:12]}' for n, h in sorted(doc['files'].items()))}, sha256 prefixes); "
             f"recordings: {', '.join(f'`{r}`' for r in doc['recordings'])}.",
             f"Reference: this machine ({doc['host']}). Each file's window scores from `listen --file` under "
             "qemu-user, against the same file's here. Emulated: no timing is reported (emulated time is not "
             "device time).", ""]
    for res in doc["results"]:
        for cpu, c in res["cpus"].items():
            env = c["environment"]
            pk = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
            lines += [f"## {res['arch']} ({res['debian']}), `{cpu}` ({c['board']})", "",
                      f"Python {env['python']} ({env['machine']}); {pk}.", "",
                      "| file | precision | windows | max abs Δ score | allowed | result |", "|---|---|---|---|---|---|"]
            for f in c["files"]:
                if f["status"] == "not run":
                    lines.append(f"| {f['file']} | {f['precision']} | | | | not run: {f['reason']} |")
                    continue
                d = "n/a" if f["max_abs_diff"] is None else f"{f['max_abs_diff']:.1e}"
                lines.append(f"| {f['file']} | {f['precision']} | {f['windows']} | {d} | {f['allowed']:g} | {f['status']} |")
            lines += ["", "`listen --self-test`:", "", "```", *c["self_test"]["lines"], "```", ""]
    lines.append(f"Result: {'passed' if all(r['passed'] for r in doc['results']) else 'FAILED'}.")
    return "\n".join(lines) + "\n"


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m export check-device``."""
    p = Parser(prog="python -m export check-device",
               description="Run a bundle on emulated ARM boards (Debian bookworm roots, qemu-user-static): its "
                           "self-test, and listen --file on recordings with every model file that the architecture "
                           "has a runtime for, compared with this machine. Needs root or unprivileged user "
                           "namespaces, mmdebstrap, qemu-user-static and the Debian mirror and package index "
                           "(it downloads packages); make check-arm installs the tools and runs it.")
    p.add_argument("--arch", action="append", choices=sorted(ARCHES), help="repeat; default: all")
    p.add_argument("--cpu", action="append", choices=sorted(CPUS),
                   help="emulated CPU (repeat; default: each architecture's Raspberry Pi CPUs)")
    p.add_argument("--bundle", help="bundle folder (default: the package's)")
    p.add_argument("--recording", action="append", default=[], metavar="FILE",
                   help="a recording to screen (repeat; default: the packaged example, which is synthetic)")
    p.add_argument("--work", default="runs/devices", help="folder for the roots (reused) and installs")
    p.add_argument("--mirror", default=MIRROR, help="Debian mirror")
    p.add_argument("--out", help="write OUT.json and OUT.md (e.g. benchmarks/results/devices)")
    a = p.parse_args(argv)
    from acula_edge.data.records import atomic_write_text
    from acula_edge.device.bundle import DEFAULT_BUNDLE, load_bundle
    from acula_edge.provenance import cpu_model

    recordings = [Path(r).resolve() for r in a.recording] or sorted((REPO / "acula_edge" / "examples").glob("*.flac"))
    for r in recordings:
        if not r.is_file():
            raise AculaError(f"--recording {r}: no such file")
    missing = [t for t in ("mmdebstrap", *(ARCHES[x].qemu for x in a.arch or ARCHES)) if shutil.which(t) is None]
    if missing:
        raise AculaError(f"check-device needs {', '.join(missing)}: apt-get install mmdebstrap qemu-user-static "
                         "(make check-arm does)")
    bundle = Path(a.bundle or DEFAULT_BUNDLE).resolve()
    meta = load_bundle(bundle).meta  # a bad bundle is one line before any download
    work = Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for name in a.arch or list(ARCHES):
        cpus = [c for c in a.cpu or () if CPUS[c][1] == ("8" if name == "aarch64" else "7")]
        print(f"{name}: building the root and installing the device side ...", file=sys.stderr)
        results.append(check(name, bundle, recordings, work, cpus, a.mirror))
    doc = {"bundle": str(bundle.relative_to(REPO) if bundle.is_relative_to(REPO) else bundle), "name": meta["name"],
           "files": {n: f["sha256"] for n, f in meta["files"].items() if f["format"] in ("onnx", "tflite")},
           "recordings": [r.name for r in recordings], "host": cpu_model(), "results": results,
           "command": " ".join(["python -m export check-device", *(argv if argv is not None else sys.argv[2:])])}
    text = markdown(doc)
    print(text, end="")
    if a.out:
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(f"{out}.json", json.dumps(doc, indent=2) + "\n")
        atomic_write_text(f"{out}.md", text)
    if not all(r["passed"] for r in results):
        print("error: the bundle does not run on ARM as it does here (see the table above)", file=sys.stderr)
        return 1
    return 0


__all__ = ["ARCHES", "CPUS", "build_root", "check", "compare", "install_device_side", "listen_file", "main", "markdown",
           "verdict"]
