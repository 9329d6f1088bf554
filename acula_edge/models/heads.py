"""Projection heads of the method: audio D->1024->512 and text width->1024->512."""

from __future__ import annotations

from typing import Any

from torch import nn

from acula_edge.errors import AculaError


class Projection(nn.Sequential):
    """``Linear(in_dim, hidden), ReLU, Dropout(dropout), Linear(hidden, out)`` (AcuLa's projections).

    Layer indices (``0`` and ``3`` hold the weights) are part of the checkpoint format.
    """

    def __init__(self, in_dim: int, hidden: int = 1024, out: int = 512, dropout: float = 0.2):
        if min(in_dim, hidden, out) < 1 or not 0.0 <= dropout < 1.0:
            raise AculaError(f"bad projection sizes in={in_dim} hidden={hidden} out={out} dropout={dropout}")
        super().__init__(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out))
        self.in_dim, self.hidden, self.out_dim, self.dropout = in_dim, hidden, out, dropout

    def config(self) -> dict[str, Any]:
        """Constructor arguments, for a checkpoint's JSON sidecar: ``Projection(**p.config())``."""
        return {"in_dim": self.in_dim, "hidden": self.hidden, "out": self.out_dim, "dropout": self.dropout}

    def extra_repr(self) -> str:
        return f"{self.in_dim} -> {self.hidden} -> {self.out_dim}, dropout={self.dropout}"


__all__ = ["Projection"]
