"""The linear probe of the OPERA protocol: an L2 logistic regression on frozen embeddings, its strength
chosen on validation AUROC, test AUROC with a subject-bootstrap interval."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from acula_edge.data.records import Recording
from acula_edge.errors import AculaError
from acula_edge.metrics import auroc, bootstrap_ci


@contextlib.contextmanager
def torch_threads(n: int):
    """Run torch ops on ``n`` threads inside the block. Small per-recording batches and the probe gain
    nothing from more, and on a busy machine oversubscribed OpenMP threads slow them down many times."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(max(1, n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_probe(x: np.ndarray, y: np.ndarray, n_classes: int, l2: float, iters: int = 200):
    """Multinomial logistic regression with an L2 penalty (full-batch L-BFGS); returns ``predict(x) -> probs``."""
    import torch

    torch.manual_seed(0)
    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).long()
    w = torch.zeros(x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    w_, b_ = w.detach(), b.detach()

    def predict(z: np.ndarray) -> np.ndarray:
        return torch.softmax(torch.from_numpy(z).double() @ w_ + b_, 1).numpy()

    predict.coef, predict.intercept = w_.numpy(), b_.numpy()  # [D, C], [C]: logits = x @ coef + intercept
    return predict


L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)


FIXED_PARTS = ("train", "val", "test")


def fixed_split(records: list[Recording]) -> bool:
    """Whether every recording carries a train/val/test ``split`` (then the probe uses it as it is)."""
    return bool(records) and all(r.split in FIXED_PARTS for r in records)


def probe_task(emb: np.ndarray, records: list[Recording], seeds: int = 5, n_boot: int = 1000,
               forbidden: set[str] = frozenset(), allow_overlap: bool = False) -> dict[str, Any]:
    """Run the protocol on one encoder's embeddings of one task's recordings (the records' own split,
    once, when :func:`fixed_split`)."""
    from acula_edge.checkpoint import subject_hash
    from acula_edge.data.splits import split_subjects

    classes = sorted({r.labels["_task"] for r in records}, key=str)
    y = np.array([classes.index(r.labels["_task"]) for r in records])
    subjects = np.array([r.subject for r in records])
    per_seed, overlap = [], 0
    fixed = fixed_split(records)
    for seed in range(1 if fixed else seeds):
        if fixed:
            part = np.array([r.split for r in records])
        else:
            assign = split_subjects(records, "_task", {"train": 0.6, "val": 0.2, "test": 0.2}, seed)
            part = np.array([assign[s] for s in subjects])
        tr, va, te = (np.flatnonzero(part == k) for k in ("train", "val", "test"))
        test_subjects = {subject_hash(s) for s in subjects[te]}
        overlap = max(overlap, len(test_subjects & forbidden))
        if overlap and not allow_overlap:
            raise AculaError(f"the encoder was trained on {overlap} of this task's test subjects: its AUROC would "
                             "be optimistic. Evaluate on other subjects, or pass --allow-overlap to score anyway")
        if any(len(np.unique(y[ix])) < len(classes) for ix in (tr, va, te)):
            per_seed.append({"seed": seed, "skipped": "a split lacks a class"})
            continue
        mu, sd = emb[tr].mean(0), emb[tr].std(0) + 1e-6
        z = (emb - mu) / sd
        with torch_threads(1):
            probes = {l2: fit_probe(z[tr], y[tr], len(classes), l2) for l2 in L2_GRID}
        val = {l2: auroc(y[va], f(z[va])) for l2, f in probes.items()}
        best = max(L2_GRID, key=lambda l2: (val[l2], l2))  # ties: the stronger penalty
        p = probes[best](z[te])
        lo, hi = bootstrap_ci(y[te], p, subjects[te], n_boot, seed)
        per_seed.append({"seed": seed, "l2": best, "val_auroc": round(val[best], 4),
                         "test_auroc": round(auroc(y[te], p), 4), "ci95": [round(lo, 4), round(hi, 4)],
                         "n": {"train": int(tr.size), "val": int(va.size), "test": int(te.size)},
                         "test_subjects": len(set(subjects[te]))})
    done = [s for s in per_seed if "test_auroc" in s]
    if not done:
        raise AculaError("the given split's train, validation or test part lacks a class" if fixed else
                         "no seed gave train, validation and test parts holding every class: too few subjects")
    a = np.array([s["test_auroc"] for s in done])
    return {"auroc_mean": round(float(a.mean()), 4), "auroc_std": round(float(a.std()), 4),
            "ci95": [round(float(np.mean([s["ci95"][0] for s in done])), 4),
                     round(float(np.mean([s["ci95"][1] for s in done])), 4)],
            "seeds": per_seed, "classes": [str(c) for c in classes], "recordings": len(records),
            "subjects": len(set(subjects)), "test_subject_overlap": overlap, "fixed_split": fixed}
