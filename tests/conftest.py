"""Shared test helpers: paths to the real recordings beside the checkout, and audio and file writers."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
EXPORT_HEAD = "synthetic-adventitious"  # the head of the shared test bundle
DISTILL_HEADS = ("synthetic-adventitious", "synthetic-abnormal-heart")  # the heads of the distilled test student
SHARED_DATA = Path(os.environ.get("ACULA_SHARED_DATA", ROOT.parent / "shared" / "data"))
#: fixtures that train, export or stream in real time (a minute or more each on 2 cores): a test that
#: uses one is ``slow``, so that ``pytest -m "not slow"`` is the quick tier (``make test`` runs both)
SLOW_FIXTURES = {"student_ckpt", "exported", "distill_setup", "distilled", "distilled_bundles", "quick_run",
                 "pretrained", "aligned", "benchmark", "tiny", "pulse"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def shared(name: str) -> Path:
    """Path of a dataset in ../shared/data, or skip the test with the reason."""
    p = SHARED_DATA / name
    if not p.exists():
        pytest.skip(f"real recordings not present at {p} (they live beside the checkout in CI)")
    return p


def write_tone(path: Path, rate: int = 16000, seconds: float = 1.0, freq: float = 440.0,
               channels: int = 1, subtype: str = "PCM_16", fmt: str | None = None) -> np.ndarray:
    """Write a sine tone and return the float samples written (frames x channels)."""
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t)
    x = np.stack([x * (0.5 + 0.5 * c) for c in range(channels)], axis=1).astype(np.float32)
    sf.write(str(path), x, rate, subtype=subtype, format=fmt)
    return x


def tone(path: Path, rate: int, seconds: float = 0.5, fmt: str | None = None, subtype: str | None = None) -> Path:
    """Write a short sine (creating folders) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(rate * seconds)) / rate
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate, format=fmt, subtype=subtype)
    return path


def write(path: Path, text: str) -> Path:
    """Write ``text`` (creating folders) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_csv(path: Path, header: list[str], rows: list[dict], encoding: str = "utf-8") -> Path:
    """Write ``rows`` under ``header`` (missing cells empty) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in header})
    return path


def by_id(records) -> dict:
    """Records by their id."""
    return {r.id: r for r in records}


def run_module(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m <args>`` in a subprocess, capturing text output. The timeout only stops a hang:
    on a busy machine the tiny pipeline alone has taken over six minutes."""
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=1800)


def call_main(module: str, *args: str) -> subprocess.CompletedProcess:
    """Call ``module.main(args)`` in this process (no interpreter start-up, for the cases that stop
    before any work: bad input), with what it printed, as :func:`run_module` returns it."""
    import contextlib
    import importlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = importlib.import_module(module).main(list(args))
    return subprocess.CompletedProcess([module, *args], code, out.getvalue(), err.getvalue())


def onnx_model(window: int, dims: dict[str, int]) -> bytes:
    """A small ONNX graph, waveform ``[batch, window]`` in, ``{output: its first dims[output] samples}``
    out: a model file that is not the one a bundle describes (other outputs, other sizes)."""
    from onnx import TensorProto, helper

    nodes, inits = [], [helper.make_tensor("zero", TensorProto.INT64, [1], [0]),
                        helper.make_tensor("axis", TensorProto.INT64, [1], [1])]
    for name, n in dims.items():
        inits.append(helper.make_tensor(f"{name}_end", TensorProto.INT64, [1], [n]))
        nodes.append(helper.make_node("Slice", ["waveform", "zero", f"{name}_end", "axis"], [name]))
    graph = helper.make_graph(nodes, "swapped", [helper.make_tensor_value_info("waveform", TensorProto.FLOAT, ["batch", window])],
                              [helper.make_tensor_value_info(k, TensorProto.FLOAT, ["batch", n]) for k, n in dims.items()],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8).SerializeToString()


def kill_after_steps(module_args: list[str], run_dir: Path, steps: int, timeout: float = 240) -> None:
    """Start ``python -m <module_args>``, SIGKILL it once ``run_dir/metrics.jsonl`` has ``steps`` lines,
    and check that it was killed (not finished)."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", *module_args], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = run_dir / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= steps:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"


@pytest.fixture(scope="session")
def student_ckpt(tmp_path_factory):
    """An untrained mn-xs student saved as `python -m distill` saves one (export does not care how
    well it was trained)."""
    import torch

    from acula_edge.checkpoint import save_checkpoint
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models.students import create_student

    from acula_edge.data.synth import iter_clips
    from export.model import EdgeFrontend

    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    student = create_student("mn-xs", heads=(EXPORT_HEAD,))
    # BatchNorm statistics from a few synthetic windows (no gradient step): with its initial statistics an
    # untrained network's scores hardly depend on its input, and tests compare scores across windows
    front = EdgeFrontend(FrontendConfig().to_dict(), student.config.window_frames)
    windows = np.stack([a[:front.samples] for _, a in iter_clips(16, seed=11)]).astype(np.float32)
    for m in student.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # the statistics of this one batch
    with torch.no_grad():
        student.train()
        student.pooled(front(torch.from_numpy(windows)))
        student.eval()
    for m in student.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    calib = {"sensitivity": 0.9, "specificity": 0.5, "positives": 10, "negatives": 20, "auroc": 0.8}
    path = save_checkpoint(root / "student.safetensors", student, FrontendConfig().to_dict(), kind="student",
                           extra={"heads": [{"name": EXPORT_HEAD, "task": EXPORT_HEAD, "threshold": 0.42, "calibration": calib}],
                                  "parameters": student.num_parameters()})
    return root, path


@pytest.fixture(scope="session")
def exported(student_ckpt):
    """That student exported (ONNX and TFLite, fp32 and int8) and evaluated: a bundle shared by the
    export and listen tests, at ``student_ckpt[0] / "bundle"``."""
    root, ckpt = student_ckpt
    from acula_edge.data.records import write_manifest
    from acula_edge.data.synth import generate

    write_manifest(generate(root / "held-out", 24, seed=3), root / "held-out.jsonl")
    r = run_module("export", "--checkpoint", str(ckpt), "--out", str(root / "bundle"), "--formats", "onnx,tflite",
                   "--int8", "--evaluate", str(root / "held-out.jsonl"))
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="session")
def distill_setup(tmp_path_factory):
    """A synthetic corpus (48 clips), a teacher aligned on it for 20 steps and an encoder checkpoint
    without alignment (``root / "msm"``): ``(root, manifest, text cache)``; the teacher is
    ``root / "teacher" / "encoder.safetensors"``."""
    from acula_edge.data.synth import generate

    root = tmp_path_factory.mktemp("distill")
    generate(root / "corpus", 48, seed=3)
    manifest = root / "corpus" / "manifest.jsonl"
    cache = str(root / "cache.sqlite")
    r = run_module("acula_edge.align", "train", "--manifest", str(manifest), "--encoder", "vit-tiny", "--max-steps",
                   "20", "--batch-size", "8", "--out", str(root / "teacher"), "--text-cache", cache,
                   "--threads", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    import torch

    from acula_edge.checkpoint import save_checkpoint
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models import create_encoder

    torch.manual_seed(0)  # an encoder checkpoint without projections, as MSM pretraining leaves one
    save_checkpoint(root / "msm" / "encoder.safetensors", create_encoder("vit-tiny"), FrontendConfig().to_dict())
    return root, manifest, cache


@pytest.fixture(scope="session")
def distilled(distill_setup):
    """A 60-step distillation of mn-xs with the two :data:`DISTILL_HEADS`, a modality head and the
    wheeze and crackle event outputs: its run folder."""
    root, manifest, cache = distill_setup
    teacher = root / "teacher" / "encoder.safetensors"
    out = root / "student"
    args = ["--teacher", str(teacher), "--student", "mn-xs", "--manifest", str(manifest), "--out", str(out),
            "--max-steps", "60", "--batch-size", "16", "--text-cache", cache, "--threads", "2", "--quiet",
            "--modality-head", "--events", "wheeze", "crackle"]
    r = run_module("distill", *args, *[x for h in DISTILL_HEADS for x in ("--head", h)])
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def distilled_bundles(distill_setup, distilled, tmp_path_factory):
    """That student exported twice, int8 calibrated on the corpus: ``ort`` (ONNX and TFLite,
    onnxruntime's and ai-edge-quantizer's int8 and the full-integer pair) and ``inc`` (ONNX, Neural
    Compressor's int8); the folder holding both."""
    pytest.importorskip("litert_torch")
    pytest.importorskip("neural_compressor")
    _, manifest, _ = distill_setup
    out = tmp_path_factory.mktemp("bundles")
    for quantizer, formats in (("ort", "onnx,tflite"), ("inc", "onnx")):
        r = run_module("export", "--checkpoint", str(distilled / "student.safetensors"), "--out", str(out / quantizer),
                       "--formats", formats, "--int8", "--quantizer", quantizer, "--calibration", str(manifest))
        assert r.returncode == 0, r.stderr
    return out
