"""AcuLa alignment: post-train an audio encoder so that its embeddings agree with a frozen text teacher.

The training loss is ``lambda_align * L_align + lambda_msm * L_msm``: a representation-level
alignment between projected audio and text embeddings (standard linear CKA by default, the
authors' feature-Gram CKA variant, or symmetric InfoNCE with a learned temperature) plus masked
spectrogram modelling. The alignment losses live in :mod:`acula_edge.align.losses` and are
re-exported here. This package needs torch (``pip install 'acula-edge[train]'``).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_LOSS",
    "CKALoss",
    "FeatureGramCKALoss",
    "InfoNCELoss",
    "create_loss",
    "feature_gram_cka",
    "linear_cka",
    "list_losses",
    "msm_align_loss",
    "register_loss",
]


def __getattr__(name: str) -> Any:
    # the losses (torch) load on first use, so that ``python -m acula_edge.align --help`` stays instant
    if name in __all__:
        from acula_edge.align import losses

        return getattr(losses, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
