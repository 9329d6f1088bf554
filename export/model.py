"""The deployable graph: waveform in, ``embedding`` and ``scores`` out (front end included).

:class:`EdgeModel` wraps a student with the shared log-mel front end (a DFT convolution, power, a
mel matrix product, log: plain ops that export to ONNX and TFLite), L2-normalises the embedding and
turns the head logits into probabilities, per the bundle contract: input ``waveform`` float32
``[batch, samples]`` in [-1, 1] at the front end's sample rate, one student window long.
"""

from __future__ import annotations

import torch
from torch import nn

from acula_edge.errors import AculaError


class EdgeModel(nn.Module):
    """``forward(waveform [B, samples]) -> (embedding [B, D], scores [B, H])``."""

    def __init__(self, student, frontend: dict):
        super().__init__()
        from acula_edge.frontend import FrontendConfig, LogMel

        self.fe = FrontendConfig.from_dict(frontend)
        if self.fe.n_mels != student.config.n_mels:
            raise AculaError(f"the front end gives {self.fe.n_mels} mel bands but the student takes "
                             f"{student.config.n_mels}")
        self.frontend, self.student = LogMel(self.fe), student
        self.samples = self.fe.num_samples(student.config.window_frames)

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding, logits = self.student(self.frontend(waveform))
        return embedding, torch.sigmoid(logits)


def edge_model(checkpoint: str) -> EdgeModel:
    """The deployable graph of a student checkpoint, in eval mode."""
    from distill.trainer import load_student

    student, meta = load_student(checkpoint)
    return EdgeModel(student, meta["frontend"]).eval()


__all__ = ["EdgeModel", "edge_model"]
