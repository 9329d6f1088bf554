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

import functools
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from acula_edge.errors import AculaError
from acula_edge.device.runtime import SPLIT, Run

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
        for name, (fmt, precision) in b.models().items():
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


def teacher_model(spec: str | Path, projection: bool = True, aligned: bool = True):
    """``(module, front end config, input frames)`` of a teacher: ``module(waveform [B, samples])``
    is its embedding, ``module.network(logmel)`` the same from the log-mel. ``spec``: an encoder
    checkpoint (its L2-normalised audio projection on top with ``projection``, when it has one;
    ``aligned`` requires one) or an encoder name (random weights, for timing). The MSM decoder is
    not part of it."""
    import torch

    from acula_edge.frontend import FrontendConfig, LogMel

    parts = []
    if str(spec).endswith(".safetensors"):
        from acula_edge.checkpoint import load_checkpoint, load_projections
        from acula_edge.encoders import AlignedEncoder

        enc, meta = load_checkpoint(spec)
        proj = load_projections(spec).get("audio") if projection else None
        if proj is None and aligned:
            raise AculaError(f"{spec}: not an aligned teacher (no audio projection)")
        fe, net = FrontendConfig.from_dict(meta["frontend"]), (AlignedEncoder(enc, proj) if proj is not None else enc)
        parts = [proj] if proj is not None else []
    else:
        from acula_edge.models import create_encoder

        enc, fe = create_encoder(str(spec)).eval(), FrontendConfig()
        net = enc

    class Teacher(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.logmel, self.encoder, self.extra = LogMel(fe), enc, torch.nn.ModuleList(parts)

        def network(self, logmel):
            return net.features(logmel)

        def forward(self, waveform):
            return net.features(self.logmel(waveform))

    return Teacher().eval(), fe, enc.config.input_frames


def teacher_runner(checkpoint: str | Path, heads: str | Path | None, threads: int = 1) -> Run:
    """The aligned teacher in torch: windows -> (L2-normalised audio projection, each head's probability).

    ``heads``: an ``.npz`` with ``coef [D, H]`` and ``intercept [H]`` of logistic heads on that
    embedding (NaN columns for heads the teacher has none for)."""
    import torch

    torch.set_num_threads(threads)
    model = teacher_model(checkpoint)[0]
    h = np.load(heads) if heads else None

    def run(waves: np.ndarray) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            e = model(torch.from_numpy(np.asarray(waves, np.float32))).numpy()
        if h is None:
            return {"embedding": e, "scores": e[:, :0]}
        return {"embedding": e, "scores": 1.0 / (1.0 + np.exp(-(e.astype(np.float64) @ h["coef"] + h["intercept"])))}

    return run


def load_run(spec: Spec, threads: int = 1) -> Run:
    """The run function of a variant."""
    from acula_edge.device.runtime import runner, session
    from export.model import torch_runner

    if spec.kind == "file":
        from acula_edge.device.bundle import load_bundle

        return runner(load_bundle(spec.bundle), spec.file, threads)
    if spec.kind == "onnx":
        s = session(spec.file, threads)
        names = [o.name for o in s.get_outputs()]
        return lambda waves: dict(zip(names, s.run(names, {"waveform": np.asarray(waves, np.float32)})))
    if spec.kind == "torch":
        return torch_runner(spec.checkpoint, threads)
    if spec.kind == "teacher":
        return teacher_runner(spec.checkpoint, spec.heads, threads)
    raise AculaError(f"unknown variant kind {spec.kind!r}")


@functools.lru_cache(maxsize=None)
def network_cost(checkpoint: str, samples: int | None = None, projection: bool = False) -> dict[str, Any]:
    """Parameters and multiply-accumulates per second of audio of a checkpoint's network (a student;
    an encoder without its MSM decoder, and with its audio projection when ``projection``), over its
    own window, and of the log-mel front end over ``samples`` (default: that window) as the exported
    graphs compute it (the DFT as a matrix product)."""
    import torch

    from acula_edge.checkpoint import read_sidecar
    from acula_edge.frontend import FrontendConfig, LogMel
    from acula_edge.models import count_macs

    if read_sidecar(checkpoint).get("kind") == "student":
        from acula_edge.models.students import load_student

        student, meta = load_student(checkpoint)
        fe, frames = FrontendConfig.from_dict(meta["frontend"]), student.config.window_frames
        params, macs = student.num_parameters(), student.macs_per_window()
    else:
        model, fe, frames = teacher_model(checkpoint, projection, aligned=False)
        params = model.encoder.num_parameters("encoder") + sum(p.numel() for p in model.extra.parameters())
        macs = count_macs(model.network, torch.zeros(1, fe.n_mels, frames))
    window = fe.num_samples(frames)
    samples = samples or window
    return {"parameters": int(params), "window_s": round(window / fe.sample_rate, 3),
            "macs_per_s": int(macs * fe.sample_rate / window),
            "frontend_macs_per_s": int(count_macs(LogMel(fe), torch.zeros(1, samples)) * fe.sample_rate / samples)}


def cost(variant: Variant, student: str, window_samples: int) -> dict[str, Any]:
    """:func:`network_cost` of the variant's network (the teacher's with its projection, else the
    ``student`` checkpoint's) and the bytes that ship."""
    net = (network_cost(variant.spec.checkpoint, window_samples, projection=True) if variant.name == "teacher"
           else network_cost(student, window_samples))
    sizes = [Path(f).stat().st_size for f in variant.files]
    return {**net, "bytes": int(sum(sizes)), "bytes_per_file": sizes}


__all__ = ["FP32_OF", "LABELS", "Spec", "Variant", "cost", "discover", "int8_tool", "load_run", "network_cost",
           "teacher_model", "teacher_runner"]
