"""Zero-shot screening through the aligned space, and operating points for screening heads.

A screening question is a set of free-text prompts, one per answer (for example
``["normal lung sounds", "wheezes heard"]``). The text teacher embeds them and the aligned
checkpoint's text projection maps them into the audio encoder's space (:func:`embed_prompts`, needs
torch); a recording's answer probabilities are then a softmax over its cosine similarities to the
prompts (:func:`zero_shot_probabilities`, numpy only, the same on a device). A user adds a question
without retraining.

:func:`operating_point` picks a head's threshold on validation data for a stated sensitivity, and
:func:`rates_at` reports sensitivity and specificity at a threshold on other data.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from acula_edge.errors import AculaError


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def zero_shot_probabilities(audio: np.ndarray, prompts: np.ndarray, temperature: float = 0.05) -> np.ndarray:
    """``[N, K]`` softmax over the cosine similarities of ``audio`` ``[N, D]`` to ``prompts`` ``[K, D]``.

    ``temperature`` scales the similarities before the softmax (an aligned model's learned InfoNCE
    temperature is a natural choice); it changes the probabilities but not their ranking.
    """
    audio, prompts = np.atleast_2d(audio), np.atleast_2d(prompts)
    if audio.shape[1] != prompts.shape[1]:
        raise AculaError(f"audio embeddings are {audio.shape[1]}-d but prompt embeddings {prompts.shape[1]}-d")
    if prompts.shape[0] < 2:
        raise AculaError("a zero-shot question needs at least two prompts (one per answer)")
    if not temperature > 0:
        raise AculaError(f"temperature must be positive, got {temperature}")
    logits = _unit(audio) @ _unit(prompts).T / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def embed_prompts(checkpoint: str, prompts: Sequence[str], text_model: str | None = None,
                  cache: str | None = None) -> np.ndarray:
    """``[K, D]`` L2-normalised prompt embeddings in ``checkpoint``'s aligned space.

    The checkpoint's teacher settings (layer, pooling, length) are reused; ``text_model`` defaults
    to the model it was trained with when that path exists here, else the packaged default.
    """
    import os

    import torch

    from acula_edge.checkpoint import load_projections, read_sidecar
    from acula_edge.text import EmbeddingCache, TextTeacher, embed_with_cache

    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise AculaError("give non-empty prompt texts")
    meta = read_sidecar(checkpoint)
    heads = load_projections(checkpoint)
    if "text" not in heads:
        raise AculaError(f"{checkpoint}: not an aligned checkpoint (no text projection)")
    info = meta.get("text_teacher") or {}
    model = text_model or (info.get("model") if info.get("model") and os.path.exists(info["model"]) else None)
    teacher = TextTeacher(model, layer=info.get("layer", -1), pooling=info.get("pooling", "mean"),
                          max_length=info.get("max_length", 128))
    if info.get("width") not in (None, teacher.width):
        raise AculaError(f"the text model is {teacher.width}-d but {checkpoint} was aligned with a "
                         f"{info['width']}-d teacher: give --text-model")
    c = EmbeddingCache(cache) if cache else None
    try:
        vectors = embed_with_cache(teacher, list(prompts), c)
    finally:
        if c:
            c.close()
    with torch.no_grad():
        z = heads["text"](torch.from_numpy(vectors))
    return _unit(z.numpy()).astype(np.float32)


def rates_at(y: np.ndarray, p: np.ndarray, threshold: float) -> tuple[float, float]:
    """``(sensitivity, specificity)`` of ``p >= threshold`` against binary ``y``."""
    y, p = np.asarray(y).astype(bool), np.asarray(p, np.float64)
    pos, neg = y.sum(), (~y).sum()
    if pos == 0 or neg == 0:
        raise AculaError("sensitivity and specificity need both classes")
    hit = p >= threshold
    return float((hit & y).sum() / pos), float((~hit & ~y).sum() / neg)


def operating_point(y: np.ndarray, p: np.ndarray, min_sensitivity: float = 0.9) -> dict[str, Any]:
    """The threshold with the best specificity among those reaching ``min_sensitivity`` on (``y``, ``p``).

    Thresholds are the observed scores (``p >= t`` is positive). Returns ``threshold``,
    ``sensitivity``, ``specificity``, ``target_sensitivity`` and the counts used.
    """
    if not 0.0 < min_sensitivity <= 1.0:
        raise AculaError(f"the sensitivity target must be in (0, 1], got {min_sensitivity}")
    y, p = np.asarray(y).astype(bool), np.asarray(p, np.float64)
    if y.shape != p.shape or y.ndim != 1:
        raise AculaError("labels and scores must be 1-d and of the same length")
    # From the highest score down, sensitivity only grows and specificity only falls: the first
    # threshold that reaches the target is the most specific one (the lowest score always does).
    for t in np.unique(p)[::-1]:
        sens, spec = rates_at(y, p, t)
        if sens >= min_sensitivity - 1e-12:
            break
    return {"threshold": float(t), "sensitivity": round(sens, 4), "specificity": round(spec, 4),
            "target_sensitivity": min_sensitivity, "positives": int(y.sum()), "negatives": int((~y).sum())}


__all__ = ["embed_prompts", "operating_point", "rates_at", "zero_shot_probabilities"]
