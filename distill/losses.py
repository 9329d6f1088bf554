"""Distillation losses: the student learns the teacher's aligned embedding, its in-batch geometry,
the text anchor, and the task labels mixed with the teacher probe's soft targets.

All take the student's raw embedding (before L2 normalisation) ``[B, D]`` and targets of the same
batch; each returns a 0-d tensor. :func:`distill_loss` combines them with weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn import functional as F

from acula_edge.align.losses import linear_cka
from acula_edge.errors import AculaError

EMBEDDING_KINDS = ("centred", "cosine", "mse")
RELATIONAL_KINDS = ("similarity", "cka")


def embedding_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str = "cosine",
                   mean: torch.Tensor | None = None) -> torch.Tensor:
    """``cosine``: mean ``1 - cos(student, teacher)``; ``mse``: mean squared error of the two
    L2-normalised embeddings (the aligned space is compared by direction); ``centred``: ``cosine``
    plus ``1 - cos`` of the two normalised embeddings minus ``mean`` (the teacher's mean embedding).

    An aligned space can share a large common direction (CKA alignment ignores offsets): there a
    constant output already scores a high cosine, and the centred term asks for how windows differ."""
    if student.shape != teacher.shape:
        raise ValueError(f"student {tuple(student.shape)} and teacher {tuple(teacher.shape)} embeddings differ in shape")
    if kind == "centred":
        if mean is None:
            raise ValueError("the centred embedding loss needs the teacher's mean embedding")
        s = F.normalize(student, dim=1)
        return embedding_loss(s, teacher) + (1.0 - F.cosine_similarity(s - mean, teacher - mean, dim=1)).mean()
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(student, teacher, dim=1)).mean()
    if kind == "mse":
        return F.mse_loss(F.normalize(student, dim=1), F.normalize(teacher, dim=1))
    raise AculaError(f"embedding loss is one of {', '.join(EMBEDDING_KINDS)}, got {kind!r}")


def relational_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str = "similarity") -> torch.Tensor:
    """In-batch geometry: ``similarity``: MSE between the two cosine-similarity matrices; ``cka``:
    ``1 - linear CKA`` between the batches (pairing-aware, invariant to rotation and scale)."""
    if student.shape[0] != teacher.shape[0] or student.shape[0] < 2:
        raise ValueError("relational distillation needs the same batch of at least 2 on both sides")
    if kind == "similarity":
        s, t = F.normalize(student, dim=1), F.normalize(teacher, dim=1)
        return F.mse_loss(s @ s.T, t @ t.T)
    if kind == "cka":
        return 1.0 - linear_cka(student, teacher)
    raise AculaError(f"relational loss is one of {', '.join(RELATIONAL_KINDS)}, got {kind!r}")


def text_anchor_loss(student: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Mean ``1 - cos(student, projected report embedding)``: keeps the student where its report is."""
    return embedding_loss(student, text, "cosine")


def _balanced(targets: torch.Tensor, known: torch.Tensor, positive_rate: torch.Tensor | None) -> torch.Tensor | None:
    """Class-balancing weights of the known entries: ``0.5 / rate`` for a positive, ``0.5 / (1 - rate)``
    for a negative (``positive_rate`` per last-axis column; None without one)."""
    if positive_rate is None:
        return None
    rate = positive_rate.to(targets.dtype).clamp(1e-3, 1 - 1e-3).expand_as(targets)
    return torch.where(targets > 0.5, 0.5 / rate, 0.5 / (1 - rate))[known]


def head_loss(logits: torch.Tensor, labels: torch.Tensor, soft: torch.Tensor | None = None,
              label_weight: float = 0.5, positive_rate: torch.Tensor | None = None) -> torch.Tensor:
    """``label_weight * BCE(labels) + (1 - label_weight) * BCE(teacher soft targets)``.

    ``labels`` and ``soft`` are ``[B, H]`` in [0, 1]; a NaN label (the task does not apply to that
    recording, e.g. a heart head on a lung sound) leaves that entry out of both terms.
    ``positive_rate`` ``[H]``: each head's share of positive training windows; given, an entry counts
    ``0.5 / rate`` if positive and ``0.5 / (1 - rate)`` if not (class-balanced: both classes of a head
    weigh the same over the training set, and the mean weight stays 1).
    """
    if logits.shape != labels.shape or (soft is not None and soft.shape != labels.shape):
        raise ValueError("logits, labels and soft targets must have the same [batch, heads] shape")
    if not 0.0 <= label_weight <= 1.0:
        raise AculaError(f"label_weight must be in [0, 1], got {label_weight}")
    known = ~torch.isnan(labels)
    if not bool(known.any()):
        return logits.sum() * 0.0
    weight = _balanced(labels, known, positive_rate)
    loss = F.binary_cross_entropy_with_logits(logits[known], labels[known], weight)
    if soft is not None and label_weight < 1.0:
        soft_loss = F.binary_cross_entropy_with_logits(logits[known], soft[known], weight)
        loss = label_weight * loss + (1.0 - label_weight) * soft_loss
    return loss


def modality_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the modality head's logits ``[B, M]`` against each window's modality ``[B]``
    (class indices; -1: unknown, left out)."""
    known = target >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[known], target[known])


def event_loss(logits: torch.Tensor, targets: torch.Tensor, positive_rate: torch.Tensor | None = None) -> torch.Tensor:
    """BCE of the event head's step logits ``[B, T, K]`` against step targets of the same shape (NaN:
    the recording is not annotated, left out). ``positive_rate`` ``[K]``: each kind's share of positive
    annotated steps; given, both classes of a kind weigh the same over the training set (events are
    rare: most steps of most recordings hold none)."""
    if logits.shape != targets.shape:
        raise ValueError(f"event logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ in shape")
    known = ~torch.isnan(targets)
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(logits[known], targets[known], _balanced(targets, known, positive_rate))


@dataclass(frozen=True)
class DistillWeights:
    """Weights of the terms of :func:`distill_loss` (0 leaves a term out)."""

    embedding: float = 1.0
    embedding_kind: str = "centred"
    relational: float = 0.5
    relational_kind: str = "cka"
    text: float = 0.1
    heads: float = 1.0
    label_weight: float = 0.5  # lambda: labels against the teacher probe's soft targets
    balance_heads: bool = False  # each head's positive and negative training windows weigh the same
    modality: float = 0.2  # the modality head's cross-entropy
    events: float = 1.0  # the event head's class-balanced BCE

    def __post_init__(self) -> None:
        if min(self.embedding, self.relational, self.text, self.heads, self.modality, self.events) < 0:
            raise AculaError("distillation loss weights must be >= 0")
        if self.embedding_kind not in EMBEDDING_KINDS or self.relational_kind not in RELATIONAL_KINDS:
            raise AculaError(f"embedding_kind in {EMBEDDING_KINDS}, relational_kind in {RELATIONAL_KINDS}")
        if not 0.0 <= self.label_weight <= 1.0:
            raise AculaError("label_weight must be in [0, 1]")


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, w: DistillWeights, text: torch.Tensor | None = None,
                 logits: torch.Tensor | None = None, labels: torch.Tensor | None = None,
                 soft: torch.Tensor | None = None, mean: torch.Tensor | None = None,
                 positive_rate: torch.Tensor | None = None, modality: torch.Tensor | None = None,
                 modality_target: torch.Tensor | None = None, events: torch.Tensor | None = None,
                 event_targets: torch.Tensor | None = None,
                 event_rate: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted sum of the terms that have a weight and their inputs; ``(loss, {term: value})``.
    ``mean``: the teacher's mean embedding (for the centred embedding loss); ``positive_rate``: each
    head's share of positive training windows (used when ``w.balance_heads``); ``modality`` and
    ``events``: those heads' logits, with their targets (:func:`modality_loss`, :func:`event_loss`)."""
    terms: dict[str, torch.Tensor] = {}
    if w.embedding:
        terms["embedding"] = w.embedding * embedding_loss(student, teacher, w.embedding_kind, mean)
    if w.relational and student.shape[0] >= 2:
        terms["relational"] = w.relational * relational_loss(student, teacher, w.relational_kind)
    if w.text and text is not None:
        terms["text"] = w.text * text_anchor_loss(student, text)
    if w.heads and logits is not None and labels is not None:
        rate = positive_rate if w.balance_heads else None
        terms["heads"] = w.heads * head_loss(logits, labels, soft, w.label_weight, rate)
    if w.modality and modality is not None and modality_target is not None:
        terms["modality"] = w.modality * modality_loss(modality, modality_target)
    if w.events and events is not None and event_targets is not None:
        terms["events"] = w.events * event_loss(events, event_targets, event_rate)
    if not terms:
        raise AculaError("no distillation term has both a weight and its inputs")
    total = sum(terms.values())
    return total, {k: float(v.detach()) for k, v in terms.items()}


__all__ = ["DistillWeights", "distill_loss", "embedding_loss", "event_loss", "head_loss", "modality_loss", "relational_loss",
           "text_anchor_loss"]
