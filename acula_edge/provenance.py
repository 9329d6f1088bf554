"""Where and with what a number was measured: the machine and the library versions."""

from __future__ import annotations

import os


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else what platform knows."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """The machine a result was measured on."""
    import platform

    return {"cpu_model": cpu_model(), "logical_cores": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def versions(*modules: str) -> dict[str, str]:
    """Versions of the named installed modules (and acula_edge)."""
    import importlib

    out = {}
    for name in ("acula_edge", *modules):
        try:
            version = getattr(importlib.import_module(name), "__version__", None)
            if version is None:
                from importlib.metadata import PackageNotFoundError, version as dist_version

                try:
                    version = dist_version(name)
                except PackageNotFoundError:
                    version = "unknown"
            out[name] = version
        except ImportError:
            out[name] = "not installed"
    return out
