"""Zero-shot answers on the device: a softmax over cosine similarities between audio and prompt embeddings (numpy only)."""

from __future__ import annotations

import numpy as np

from acula_edge.errors import AculaError

DEFAULT_TEMPERATURE = 0.05


def unit(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` scaled to unit length (float64)."""
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def zero_shot_probabilities(audio: np.ndarray, prompts: np.ndarray,
                            temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
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
    logits = unit(audio) @ unit(prompts).T / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
