"""The import graph says what the layout promises: no import circle, and a device wing that reaches
neither torch nor training, export or benchmark code (imports inside functions count too)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from conftest import ROOT

PACKAGES = ("acula_edge", "distill", "export", "benchmarks")
DEVICE = "acula_edge.device"
#: what the device wing may run besides its own modules: errors, the shared CLI helpers, the file hash
#: (bundle checksums), the package inits on the way, and the numpy-only synthetic corpus behind ``listen --demo``
DEVICE_MAY_REACH = {"acula_edge", "acula_edge.errors", "acula_edge.cli", "acula_edge.hashing", "acula_edge.data",
                    "acula_edge.data.records", "acula_edge.data.summary", "acula_edge.data.synth"}
DEVICE_EXTERNAL = {"numpy", "soundfile", "sounddevice", "onnxruntime", "ai_edge_litert", "tflite_runtime", "cryptography"}


def modules_of(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file of ``packages`` under ``root``."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """The project modules and the external top-level packages that module ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    project, external = set(), set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for t in targets:
            if t.split(".")[0] in {m.split(".")[0] for m in modules}:
                while t not in modules and "." in t:  # `import a.b.attr`-like spellings: the module that holds it
                    t = t.rpartition(".")[0]
                if t in modules and t != name:
                    project.add(t)
            else:
                external.add(t.split(".")[0])
    return project, external


def graph(root: Path, packages: tuple[str, ...]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Project edges and external imports of every module of ``packages``."""
    modules = modules_of(root, packages)
    edges, external = {}, {}
    for name, path in modules.items():
        edges[name], external[name] = imports_of(name, path, modules)
    return edges, external


def related(a: str, b: str) -> bool:
    """Whether one module is a package that holds the other (its own parent or child)."""
    return a.startswith(b + ".") or b.startswith(a + ".")


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles (strongly connected groups of two or more modules), leaving out the edges
    between a package and its own submodules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if related(v, w) or w not in edges:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def device_leaks(edges: dict[str, set[str]], external: dict[str, set[str]], device: str, may_reach: set[str],
                 allowed_external: set[str]) -> list[str]:
    """Every project module outside ``may_reach`` and every external package outside ``allowed_external``
    (and the standard library) that the modules under ``device`` reach, with the path that reaches it."""
    start = [m for m in edges if m == device or m.startswith(device + ".")]
    via = {m: [m] for m in start}
    todo = list(start)
    while todo:
        m = todo.pop()
        parents = [".".join(m.split(".")[:i]) for i in range(1, m.count(".") + 1)]  # their __init__ runs first
        for n in sorted(edges[m] | {p for p in parents if p in edges}):
            if n not in via:
                via[n] = via[m] + [n]
                todo.append(n)
    problems = [" -> ".join(path) for m, path in sorted(via.items())
                if not (m == device or m.startswith(device + ".") or m in may_reach)]
    for m, path in sorted(via.items()):
        for e in sorted(external[m] - allowed_external - set(sys.stdlib_module_names)):
            problems.append(" -> ".join(path) + f" -> {e}")
    return problems


def test_no_import_circle():
    edges, _ = graph(ROOT, PACKAGES)
    assert len(edges) > 50 and {"acula_edge.listen", "distill.cli", "export.cli", "benchmarks.harness"} <= set(edges)
    assert circles(edges) == []


def test_the_device_wing_reaches_no_training_export_or_benchmark_code_and_no_torch():
    edges, external = graph(ROOT, PACKAGES)
    assert {"acula_edge.device.listen.cli", "acula_edge.device.windows", "acula_edge.device.runtime"} <= set(edges)
    assert "acula_edge.device.windows" in edges["distill.teacher"]  # the offline side uses the wing, not the reverse
    assert device_leaks(edges, external, DEVICE, DEVICE_MAY_REACH, DEVICE_EXTERNAL) == []


def test_the_checks_find_a_planted_circle_and_a_planted_torch_import(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import f\n",
        "pkg/b.py": "def f():\n    from . import a  # inside a function: still a circle\n",
        "pkg/train.py": "import torch\n",
        "pkg/device/__init__.py": "from pkg.device.x import run\n",  # a package and its own child: no circle
        "pkg/device/x.py": ("import json\nimport numpy as np\nimport pkg.device\n\n"
                            "def run():\n    import torch\n    from pkg import train\n"),
        "pkg/device/y.py": "from .x import run\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    edges, external = graph(tmp_path, ("pkg",))
    assert edges["pkg.device.y"] == {"pkg.device.x"} and edges["pkg.b"] == {"pkg.a"}
    assert circles(edges) == [["pkg.a", "pkg.b"]]
    assert device_leaks(edges, external, "pkg.device", {"pkg"}, {"numpy"}) == [
        "pkg.device.x -> pkg.train", "pkg.device.x -> torch", "pkg.device.x -> pkg.train -> torch"]
