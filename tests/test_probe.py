"""``acula_edge.probe``: the linear probe of the OPERA protocol and its leakage guard."""

from __future__ import annotations

import numpy as np
import pytest

from acula_edge.checkpoint import subject_hash
from acula_edge.data import Recording
from acula_edge.errors import AculaError
from acula_edge.probe import probe_task


def _records(n_subjects: int, per_subject: int, labels: np.ndarray) -> list[Recording]:
    out = []
    for s in range(n_subjects):
        for k in range(per_subject):
            out.append(Recording(id=f"s{s}-{k}", path="x.wav", dataset="t", subject=f"s{s}", modality="lung",
                                 labels={"_task": int(labels[s])}))
    return out


def test_probe_scores_one_on_separable_and_chance_on_shuffled_labels():
    rng = np.random.default_rng(1)
    y_subject = rng.integers(0, 2, 80)
    recs = _records(80, 2, y_subject)
    y = np.array([r.labels["_task"] for r in recs])
    emb = rng.normal(size=(len(recs), 16)).astype(np.float32)
    emb[:, 0] += 4.0 * y  # one informative direction
    sep = probe_task(emb, recs, seeds=3, n_boot=200)
    assert sep["auroc_mean"] > 0.97 and sep["ci95"][0] > 0.9
    shuffled = [Recording(**{**r.to_dict(), "labels": {"_task": int(v)}})
                for r, v in zip(recs, np.repeat(rng.permutation(y_subject), 2))]
    noise = probe_task(rng.normal(size=(len(recs), 16)).astype(np.float32), shuffled, seeds=5, n_boot=200)
    print(f"separable: {sep['auroc_mean']}, shuffled: {noise['auroc_mean']} ± {noise['auroc_std']}")
    assert 0.3 < noise["auroc_mean"] < 0.7
    assert noise["ci95"][0] < 0.5 < noise["ci95"][1]


def test_leakage_guard_refuses_seen_test_subjects():
    rng = np.random.default_rng(3)
    recs = _records(40, 1, rng.integers(0, 2, 40))
    emb = rng.normal(size=(40, 4)).astype(np.float32)
    seen = {subject_hash(r.subject) for r in recs}
    with pytest.raises(AculaError, match="trained on .* test subjects"):
        probe_task(emb, recs, seeds=1, n_boot=50, forbidden=seen)
    r = probe_task(emb, recs, seeds=1, n_boot=50, forbidden=seen, allow_overlap=True)
    assert r["test_subject_overlap"] > 0
    assert probe_task(emb, recs, seeds=1, n_boot=50, forbidden={subject_hash("someone else")})["test_subject_overlap"] == 0


