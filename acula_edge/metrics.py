"""Screening metrics: AUROC, subject-bootstrap and Wilson intervals, operating points and the rates at a threshold (numpy only)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from acula_edge.errors import AculaError


def auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); ``scores [N]`` or ``[N, C]`` (macro one-vs-rest)."""
    y = np.asarray(y)
    if scores.ndim == 2:
        if scores.shape[1] == 2:
            return auroc(y, scores[:, 1])
        return float(np.mean([auroc((y == c).astype(int), scores[:, c]) for c in range(scores.shape[1])]))
    pos, neg = scores[y == 1], scores[y == 0]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(allv.size, np.float64)
    sorted_v = allv[order]
    i = 0
    while i < allv.size:  # average ranks over ties
        j = i
        while j + 1 < allv.size and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def cluster_bootstrap(groups: np.ndarray, stat: Callable[[np.ndarray], float], n: int = 1000,
                      seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of ``stat(indices)``, resampling whole subjects (cluster bootstrap);
    resamples where the statistic is undefined (NaN) are skipped."""
    rng = np.random.default_rng(seed)
    uniq = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in uniq]
    vals = []
    for _ in range(n):
        v = stat(np.concatenate([members[i] for i in rng.integers(0, uniq.size, uniq.size)]))
        if v == v:
            vals.append(v)
    if not vals:
        return float("nan"), float("nan")
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def bootstrap_ci(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of AUROC, resampling whole subjects (cluster bootstrap)."""
    return cluster_bootstrap(groups, lambda idx: auroc(y[idx], p[idx]), n, seed)


def paired_delta_ci(y: np.ndarray, reference: np.ndarray, other: np.ndarray, groups: np.ndarray, n: int = 1000,
                    seed: int = 0) -> tuple[float, float]:
    """95% interval of ``AUROC(other) - AUROC(reference)`` on the same recordings, resampling whole subjects."""
    return cluster_bootstrap(groups, lambda idx: auroc(y[idx], other[idx]) - auroc(y[idx], reference[idx]), n, seed)


def wilson_ci(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``k / n`` (sensitivity, specificity)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    den = 1 + z * z / n
    return float((centre - half) / den), float((centre + half) / den)


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


SEGMENT_S = 0.5  # resolution of the segment-based F1 of event spans


def active_segments(spans: Sequence[tuple[float, float]], duration: float, resolution: float = SEGMENT_S) -> np.ndarray:
    """Whether each ``resolution``-long segment of ``[0, duration)`` overlaps one of ``spans`` (seconds)."""
    grid = np.arange(0.0, max(duration, resolution), resolution)
    out = np.zeros(grid.size, bool)
    for s, e in spans:
        out |= (grid < e) & (grid + resolution > s)
    return out


def segment_counts(reference: Sequence[tuple[float, float]], found: Sequence[tuple[float, float]], duration: float,
                   resolution: float = SEGMENT_S) -> tuple[int, int, int]:
    """``(true positive, false positive, false negative)`` segments of found spans against annotated ones
    (segment-based evaluation of sound events, as sed_eval counts it)."""
    a, f = active_segments(reference, duration, resolution), active_segments(found, duration, resolution)
    return int((a & f).sum()), int((~a & f).sum()), int((a & ~f).sum())


def segment_f1(counts: np.ndarray) -> float:
    """F1 of summed ``[n, 3]`` (tp, fp, fn) counts; NaN when there is nothing to count."""
    tp, fp, fn = np.asarray(counts).reshape(-1, 3).sum(0)
    return float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else float("nan")


def mean_cosine(reference: np.ndarray, other: np.ndarray, centred: bool = True) -> float:
    """Mean cosine of ``other``'s rows to ``reference``'s; ``centred``: after removing ``reference``'s
    mean row, i.e. how much of the way inputs differ survives (the raw cosine of an aligned space
    sharing one large direction stays near 1 even for a constant output)."""
    mu = reference.mean(0) if centred else 0.0
    a, b = np.asarray(reference, np.float64) - mu, np.asarray(other, np.float64) - mu
    den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)
    return float(((a * b).sum(1) / den).mean())
