"""Subject-grouped, label-stratified splits: train/val/test and k-fold, deterministic by seed.

A subject never appears in two parts. Subjects are placed greedily (largest first, ties in a
seeded random order) into the part that keeps each label's share closest to the part's target
fraction, as scikit-learn's StratifiedGroupKFold does.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable, Sequence

import numpy as np

from acula_edge.data.records import Recording
from acula_edge.errors import DatasetError

DEFAULT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


def _subject_counts(records: Iterable[Recording], label: str | None) -> tuple[list[str], list[str], np.ndarray]:
    """Subjects, label classes and a ``[subjects, classes]`` count matrix."""
    per: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        per[r.subject][str(r.label(label)) if label else "all"] += 1
    subjects = sorted(per)
    classes = sorted({c for cnt in per.values() for c in cnt})
    counts = np.array([[per[s][c] for c in classes] for s in subjects], dtype=np.float64)
    return subjects, classes, counts


def _assign(counts: np.ndarray, fractions: np.ndarray, seed: int) -> np.ndarray:
    """Greedy stratified assignment of subject rows to parts; returns a part index per subject."""
    n_sub, n_parts = counts.shape[0], fractions.size
    if n_sub < n_parts:
        raise DatasetError(f"cannot split {n_sub} subjects into {n_parts} non-empty parts")
    rng = np.random.default_rng(seed)
    order = rng.permutation(n_sub)
    order = order[np.argsort(-counts[order].sum(1), kind="stable")]
    totals = np.maximum(counts.sum(0), 1.0)
    part_counts = np.zeros((n_parts, counts.shape[1]))
    assignment = np.full(n_sub, -1)
    for i, s in enumerate(order):
        remaining = n_sub - i
        empty = np.flatnonzero(part_counts.sum(1) == 0)
        candidates = empty if remaining <= empty.size else np.arange(n_parts)
        best, best_cost = -1, np.inf
        for p in candidates:
            trial = part_counts.copy()
            trial[p] += counts[s]
            share = trial / totals  # each class's share per part
            size = trial.sum(1) / counts.sum()
            cost = ((share - fractions[:, None]) ** 2).sum() + ((size - fractions) ** 2).sum()
            if cost < best_cost - 1e-12:
                best, best_cost = p, cost
        part_counts[best] += counts[s]
        assignment[s] = best
    return assignment


def split_subjects(
    records: list[Recording],
    label: str | None = None,
    fractions: dict[str, float] | None = None,
    seed: int = 0,
) -> dict[str, str]:
    """Map each subject to a part name (default train 0.7 / val 0.1 / test 0.2), stratified on ``label``."""
    fractions = dict(fractions or DEFAULT_FRACTIONS)
    if any(f <= 0 for f in fractions.values()):
        raise DatasetError("split fractions must be positive")
    names = list(fractions)
    f = np.array([fractions[n] for n in names], dtype=np.float64)
    subjects, _, counts = _subject_counts(records, label)
    parts = _assign(counts, f / f.sum(), seed)
    return {s: names[p] for s, p in zip(subjects, parts)}


def kfold_subjects(records: list[Recording], k: int = 5, label: str | None = None, seed: int = 0) -> dict[str, int]:
    """Map each subject to a fold in ``0..k-1``, stratified on ``label``."""
    if k < 2:
        raise DatasetError("k-fold needs k >= 2")
    subjects, _, counts = _subject_counts(records, label)
    folds = _assign(counts, np.full(k, 1.0 / k), seed)
    return {s: int(p) for s, p in zip(subjects, folds)}


def apply_split(records: list[Recording], assignment: dict[str, str | int]) -> dict[str | int, list[Recording]]:
    """Group records by the part their subject was assigned to."""
    out: dict[str | int, list[Recording]] = defaultdict(list)
    for r in records:
        out[assignment[r.subject]].append(r)
    return dict(out)


def subject_parts(records: list, task: str | Sequence[str] | None, fractions: dict[str, float],
                  seed: int) -> dict[str, str]:
    """Subject -> part name, subject-grouped (stratified on ``task``'s label where given; on the
    joint labels of several tasks)."""
    from acula_edge.data.tasks import get_task

    tasks = [get_task(t) for t in ([task] if isinstance(task, str) else task or [])]
    labelled = []
    for r in records:
        y = [t.label(r) for t in tasks]
        key = str(y[0] if len(y) == 1 else (tuple(y) if y else None))
        labelled.append(Recording(**{**r.to_dict(), "labels": {**r.labels, "_strat": key}}))
    return split_subjects(labelled, "_strat", fractions, seed)
