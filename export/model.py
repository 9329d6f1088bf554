"""The deployable graph: waveform in, ``embedding`` and ``scores`` out (front end included), and
``modality`` and ``events`` where the student has those heads.

:class:`EdgeModel` is :class:`EdgeFrontend` (the shared log-mel front end: a DFT convolution,
power, a mel matrix product, log, plain ops that export to ONNX and TFLite; then the student's
per-window min-max normalisation) followed by :class:`EdgeNetwork` (the student's network, the
L2-normalised embedding, the heads' probabilities, the modality probabilities (softmax) and
the event kinds' probabilities per step), per the bundle contract: input ``waveform``
float32 ``[batch, samples]`` in [-1, 1] at the front end's sample rate, one student window long.
The two halves also export on their own: a full-integer network for NPUs and microcontrollers
takes its input from an fp32 front end.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from acula_edge.device.runtime import Model, Run
from acula_edge.errors import AculaError

OUTPUTS = ("embedding", "scores")  # every graph's; a student with those heads adds "modality" and "events"


def output_names(student) -> tuple[str, ...]:
    """The outputs of ``student``'s graph, in order."""
    cfg = student.config
    return OUTPUTS + (("modality",) if cfg.modalities else ()) + (("events",) if cfg.events else ())


class EdgeFrontend(nn.Module):
    """``forward(waveform [B, samples]) -> logmel [B, n_mels, frames]``, min-max normalised to [0, 1]."""

    def __init__(self, frontend: dict, window_frames: int):
        super().__init__()
        from acula_edge.frontend import FrontendConfig, LogMel

        self.fe = FrontendConfig.from_dict(frontend)
        self.logmel = LogMel(self.fe)
        self.samples = self.fe.num_samples(window_frames)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        from acula_edge.models import minmax_normalize

        return minmax_normalize(self.logmel(waveform))


class L2Normalize(nn.Module):
    """``x / max(||x||, eps)`` along dim 1: its own module so that its ops carry its name, and int8
    export can leave them in fp32 (older TFLite runtimes, such as tflite-runtime 2.14 on 32-bit
    boards, have no int8 ``SQRT``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, dim=1)


class EdgeNetwork(nn.Module):
    """``forward(logmel [B, n_mels, frames] in [0, 1]) -> (embedding [B, D], scores [B, H][, modality
    [B, M]][, events [B, T, K]])``: the outputs :attr:`names` lists.

    ``normalize=False`` leaves the embedding's L2 normalisation to the caller: an int8 division by
    a norm that quantizes to zero fails, so the full-integer network ends before it."""

    def __init__(self, student, normalize: bool = True):
        super().__init__()
        self.student = student
        self.unit = L2Normalize() if normalize else nn.Identity()
        self.names = output_names(student)

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, ...]:
        o = self.student.outputs(logmel)
        out = [self.unit(o["embedding"]), torch.sigmoid(o["logits"])]
        if "modality" in o:
            out.append(torch.softmax(o["modality"], dim=1))
        if "events" in o:
            out.append(torch.sigmoid(o["events"]))
        return tuple(out)


class EdgeModel(nn.Module):
    """``forward(waveform [B, samples]) -> (embedding [B, D], scores [B, H], ...)``: :attr:`names`."""

    def __init__(self, student, frontend: dict):
        super().__init__()
        self.frontend = EdgeFrontend(frontend, student.config.window_frames)
        if self.frontend.fe.n_mels != student.config.n_mels:
            raise AculaError(f"the front end gives {self.frontend.fe.n_mels} mel bands but the student takes "
                             f"{student.config.n_mels}")
        self.network = EdgeNetwork(student)
        self.fe, self.samples, self.names = self.frontend.fe, self.frontend.samples, self.network.names

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.network(self.frontend(waveform))


def edge_model(checkpoint: str) -> EdgeModel:
    """The deployable graph of a student checkpoint, in eval mode."""
    from acula_edge.models.students import load_student

    student, meta = load_student(checkpoint)
    return EdgeModel(student, meta["frontend"]).eval()


def torch_runner(checkpoint: str | Path, threads: int = 1) -> Run:
    """A student checkpoint run in torch (fp32): the torch backend runs a bundle's source checkpoint."""
    torch.set_num_threads(threads)
    model = edge_model(str(checkpoint))

    def run(waves: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            out = model(torch.from_numpy(np.asarray(waves, np.float32)))
        return {k: v.numpy() for k, v in zip(model.names, out)}

    return run


def torch_model(bundle, precision: str | None = None, threads: int = 1, checkpoint: str | None = None) -> Model:
    """The torch backend of :func:`acula_edge.device.runtime.load_model`: the bundle's source checkpoint in fp32."""
    if precision == "int8":
        raise AculaError("the torch backend runs the fp32 checkpoint; int8 runs with --backend onnx or tflite")
    ckpt = bundle.source_checkpoint(checkpoint, "the torch backend")
    return Model("torch", str(ckpt), "fp32", torch_runner(ckpt, threads))


__all__ = ["EdgeFrontend", "EdgeModel", "EdgeNetwork", "L2Normalize", "OUTPUTS", "edge_model", "output_names", "torch_model", "torch_runner"]
