"""``python -m acula_edge.listen``: screen live audio, a recording or a demo stream with a bundle.

The screening loop is the device wing's (:mod:`acula_edge.device.listen`: numpy and a runtime
only). This entry point adds what a training machine may have: the ``torch`` backend (a bundle's
source checkpoint) and new ``--prompt`` texts embedded by the text teacher.
"""

from __future__ import annotations

import importlib.util
from typing import Sequence

import numpy as np

from acula_edge.device.listen import main as device_main
from acula_edge.device.runtime import Model, register_backend
from acula_edge.errors import AculaError


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # an import hook may refuse a module instead of reporting it absent
        return False


def _needs(modules: tuple[str, ...], what: str, extra: str, alternative: str = "") -> None:
    if not all(_installed(m) for m in modules):
        raise AculaError(f"{what} needs {' and '.join(modules)}: pip install 'acula-edge[{extra}]'{alternative}")


def torch_backend(bundle, precision: str | None, threads: int, checkpoint: str | None) -> Model:
    """The ``torch`` backend: the bundle's source checkpoint in fp32."""
    _needs(("torch",), "the torch backend", "train", " (or use --backend onnx)")
    from export.model import torch_model

    return torch_model(bundle, precision, threads, checkpoint)


def embed_prompts(checkpoint: str, texts: list[str]) -> np.ndarray:
    """New prompt texts embedded in ``checkpoint``'s aligned space by its text teacher."""
    _needs(("torch", "transformers"), "embedding new --prompt texts", "text")
    from acula_edge.zeroshot import embed_prompts as embed

    return embed(checkpoint, texts)


register_backend("torch", torch_backend)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m acula_edge.listen``."""
    return device_main(argv, embed_prompts=embed_prompts)


if __name__ == "__main__":
    raise SystemExit(main())
