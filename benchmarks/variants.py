"""The variants the benchmark compares, and how each one runs.

A variant is one way to deploy the same student (or the teacher it was distilled from):

| name | what runs |
|---|---|
| ``teacher`` | the aligned teacher in torch (fp32), with a logistic head per task on its aligned embedding |
| ``student-torch`` | the bundle's source checkpoint in torch (fp32) |
| ``onnx-fp32`` | ``model_fp32.onnx`` in onnxruntime |
| ``onnx-int8-onnxruntime`` / ``onnx-int8-neural-compressor`` | ``model_int8.onnx`` of each bundle, by its quantizer |
| ``tflite-fp32``, ``tflite-int8`` | ``model_fp32.tflite``, ``model_int8.tflite`` (ai-edge-quantizer) in LiteRT |
| ``tflite-full-int8`` | the full-integer pair: ``frontend_fp32.tflite`` + ``network_int8.tflite`` |

:func:`load_run` turns a variant's :class:`Spec` (plain JSON, so that a measuring process of its
own can rebuild it) into ``run(windows [N, samples]) -> (embedding [N, D], scores [N, H])``.
Torch is imported only for the torch variants.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acula_edge.errors import AculaError
from acula_edge.runtime import SPLIT, Run

LABELS = {"teacher": "teacher (torch fp32)", "student-torch": "student (torch fp32)", "onnx-fp32": "ONNX fp32",
          "onnx-int8-onnxruntime": "ONNX int8 (onnxruntime)", "onnx-int8-neural-compressor": "ONNX int8 (Neural Compressor)",
          "tflite-fp32": "TFLite fp32", "tflite-int8": "TFLite int8 (ai-edge-quantizer)",
          "tflite-full-int8": "TFLite full-integer network, fp32 front end"}
#: each int8 variant against the fp32 variant of its format
FP32_OF = {"onnx-int8-onnxruntime": "onnx-fp32", "onnx-int8-neural-compressor": "onnx-fp32",
           "tflite-int8": "tflite-fp32", "tflite-full-int8": "tflite-fp32"}


@dataclass
class Spec:
    """What a measuring process needs to rebuild a variant's run function.

    ``kind``: ``file`` (``bundle`` + ``file``, a bundle's model file or :data:`SPLIT`), ``onnx``
    (a standalone ONNX file at ``file``), ``torch`` (student ``checkpoint``) or ``teacher``
    (``checkpoint`` + ``heads``, an ``.npz`` of the logistic heads)."""

    kind: str
    file: str | None = None
    bundle: str | None = None
    checkpoint: str | None = None
    heads: str | None = None


@dataclass
class Variant:
    name: str
    spec: Spec
    precision: str
    backend: str
    files: list[str] = field(default_factory=list)  # what ships (sizes are summed)
    int8_by: str | None = None

    @property
    def label(self) -> str:
        return LABELS.get(self.name, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "backend": self.backend, "precision": self.precision,
                "int8_by": self.int8_by, "files": self.files, "spec": asdict(self.spec)}


def int8_tool(bundle, fmt: str) -> str | None:
    """Who made the bundle's int8 file of ``fmt`` (its provenance; older bundles name the quantizer option)."""
    from export.cli import INT8_TOOLS

    q = (bundle.meta.get("provenance") or {}).get("int8_calibration", {}).get("quantizer")
    if isinstance(q, dict):
        return q.get(fmt)
    return INT8_TOOLS.get(q, {}).get(fmt) if q else None


def discover(bundles: list, checkpoint: str | Path, teacher: str | Path | None = None,
             teacher_heads: str | Path | None = None) -> list[Variant]:
    """Every variant of ``bundles`` (the first file of each name wins), the student checkpoint in
    torch and, with ``teacher``, the teacher."""
    out: dict[str, Variant] = {}
    if teacher:
        out["teacher"] = Variant("teacher", Spec("teacher", checkpoint=str(teacher), heads=str(teacher_heads)),
                                 "fp32", "torch", [str(teacher)])
    out["student-torch"] = Variant("student-torch", Spec("torch", checkpoint=str(checkpoint)), "fp32", "torch",
                                   [str(checkpoint)])
    for b in bundles:
        files = {n: fp for n, fp in b.models().items()}
        for name, (fmt, precision) in files.items():
            tool = int8_tool(b, fmt) if precision == "int8" else None
            key = f"{fmt}-{precision}" + (f"-{tool}" if fmt == "onnx" and tool else "")
            out.setdefault(key, Variant(key, Spec("file", file=name, bundle=str(b.path)), precision,
                                        "onnxruntime" if fmt == "onnx" else "LiteRT", [str(b.path / name)], tool))
        pair = b.split()
        if pair is not None:
            out.setdefault("tflite-full-int8", Variant("tflite-full-int8", Spec("file", file=SPLIT, bundle=str(b.path)),
                                                       "int8", "LiteRT", [str(p) for p in pair], int8_tool(b, "tflite")))
    order = list(LABELS)
    return sorted(out.values(), key=lambda v: (order.index(v.name) if v.name in order else len(order), v.name))


def teacher_runner(checkpoint: str | Path, heads: str | Path | None, threads: int = 1) -> Run:
    """The aligned teacher in torch: windows -> (L2-normalised audio projection, each head's probability).

    ``heads``: an ``.npz`` with ``coef [D, H]`` and ``intercept [H]`` of logistic heads on that
    embedding (NaN columns for heads the teacher has none for)."""
    import torch

    from acula_edge.checkpoint import load_checkpoint, load_projections
    from acula_edge.evaluate import AlignedEncoder
    from acula_edge.frontend import FrontendConfig, LogMel

    torch.set_num_threads(threads)
    model, meta = load_checkpoint(checkpoint)
    proj = load_projections(checkpoint).get("audio")
    if proj is None:
        raise AculaError(f"{checkpoint}: not an aligned teacher (no audio projection)")
    enc = AlignedEncoder(model, proj).eval()
    logmel = LogMel(FrontendConfig.from_dict(meta["frontend"]))
    h = np.load(heads) if heads else None

    def run(waves: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.inference_mode():
            e = enc.features(logmel(torch.from_numpy(np.asarray(waves, np.float32)))).numpy()
        if h is None:
            return e, e[:, :0]
        return e, 1.0 / (1.0 + np.exp(-(e.astype(np.float64) @ h["coef"] + h["intercept"])))

    return run


def load_run(spec: Spec, threads: int = 1) -> Run:
    """The run function of a variant."""
    from acula_edge.runtime import runner, session, torch_runner

    if spec.kind == "file":
        from acula_edge.bundle import load_bundle

        return runner(load_bundle(spec.bundle), spec.file, threads)
    if spec.kind == "onnx":
        s = session(spec.file, threads)
        return lambda waves: tuple(s.run(None, {"waveform": np.asarray(waves, np.float32)}))
    if spec.kind == "torch":
        return torch_runner(spec.checkpoint, threads)
    if spec.kind == "teacher":
        return teacher_runner(spec.checkpoint, spec.heads, threads)
    raise AculaError(f"unknown variant kind {spec.kind!r}")


def cost(variant: Variant, window_samples: int) -> dict[str, Any]:
    """Parameters, multiply-accumulates per second of audio (network, and the log-mel front end as
    the exported graphs compute it: a DFT matrix product) and the bytes that ship."""
    import torch

    from acula_edge.checkpoint import read_sidecar
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models import count_macs
    from export.model import EdgeFrontend

    ckpt = variant.spec.checkpoint
    if variant.name != "teacher":
        ckpt = str(_bundle_checkpoint(variant)) if ckpt is None else ckpt
    meta = read_sidecar(ckpt)
    fe = FrontendConfig.from_dict(meta["frontend"])
    seconds = window_samples / fe.sample_rate
    front = EdgeFrontend(meta["frontend"], 1)
    front_macs = count_macs(front.logmel, torch.zeros(1, window_samples))
    if variant.name == "teacher":
        from acula_edge.checkpoint import load_checkpoint, load_projections
        from acula_edge.evaluate import AlignedEncoder

        model, _ = load_checkpoint(ckpt)
        proj = load_projections(ckpt)["audio"]
        enc = AlignedEncoder(model, proj).eval()
        frames = front.logmel(torch.zeros(1, window_samples)).shape[-1]
        macs = count_macs(enc.features, torch.zeros(1, fe.n_mels, frames))
        params = sum(p.numel() for m in (model, proj) for p in m.parameters())
    else:
        from distill.trainer import load_student

        student, _ = load_student(ckpt)
        macs, params = student.macs_per_window(), student.num_parameters()
    sizes = [Path(f).stat().st_size for f in variant.files]
    return {"parameters": int(params), "macs_per_s": int(macs / seconds), "frontend_macs_per_s": int(front_macs / seconds),
            "bytes": int(sum(sizes)), "bytes_per_file": sizes}


def _bundle_checkpoint(variant: Variant) -> Path:
    from acula_edge.bundle import load_bundle

    return load_bundle(variant.spec.bundle).source_checkpoint(None, "counting parameters")


__all__ = ["FP32_OF", "LABELS", "Spec", "Variant", "cost", "discover", "int8_tool", "load_run", "teacher_runner"]
