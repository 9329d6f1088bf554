"""``python -m acula_edge.evaluate``: frozen encoders judged by linear probes, AUROC with intervals.

The OPERA protocol: one embedding per recording from a frozen encoder; subject-grouped,
label-stratified train/val/test splits; a logistic-regression probe whose L2 strength is chosen
on validation AUROC only; 5 seeds; test AUROC as mean ± std over seeds, with a subject-level
bootstrap 95% interval. Several encoders run side by side on the same splits.

With ``--manifest`` files whose recordings all carry a ``split`` (train/val/test, as written by
``python -m acula_edge.data split`` or the pipeline), that split is used as it is: the probe is
fitted on train, chosen on val and scored on test, once (the probe's fit is deterministic).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from acula_edge.cli import Parser, guarded
from acula_edge.data.records import MISSING, Recording, atomic_write_text, read_manifest
from acula_edge.errors import AculaError
from acula_edge.progress import progress

# ---------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    """A labelled subset of one dataset: ``label(record)`` gives a class, or None to leave it out."""

    name: str
    dataset: str
    label: Callable[[Recording], Any]
    description: str
    prompts: tuple[str, ...] | None = None  # zero-shot question: one text per class, negative first


_TASKS: dict[str, Task] = {}


def register_task(name: str, dataset: str, description: str,
                  prompts: tuple[str, ...] | None = None) -> Callable[[Callable], Callable]:
    """Register ``fn(record) -> class or None`` as task ``name`` on ``dataset``; ``prompts`` (one
    text per class, class 0 first) make it a zero-shot question."""

    def deco(fn: Callable[[Recording], Any]) -> Callable:
        _TASKS[name] = Task(name, dataset, fn, description, prompts)
        return fn

    return deco


def list_tasks() -> list[str]:
    """Registered task names (plus ``csv:MANIFEST:COLUMN`` for any manifest)."""
    return list(_TASKS)


def _binary(value: Any, positive: set, negative: set) -> int | None:
    return 1 if value in positive else 0 if value in negative else None


def _label(name: str, positive: set = frozenset({1}), negative: set = frozenset({0})) -> Callable:
    return lambda r: _binary(r.labels.get(name), positive, negative)


#: Zero-shot questions in the words of the clinical reports (acula_edge.reports): normal answer first.
LUNG_PROMPTS = ("Lung auscultation. Normal lung sounds with no adventitious sounds.",
                "Lung auscultation. Adventitious sounds are heard: wheezes or crackles.")
HEART_PROMPTS = ("Phonocardiogram. The heart sounds were classified as normal.",
                 "Phonocardiogram. The heart sounds were classified as abnormal.")
COUGH_PROMPTS = ("Cough recording. The cough sounds dry.", "Cough recording. The cough sounds wet.")

for _n in ("adventitious", "cas", "das"):
    register_task(f"sprsound-{_n}", "sprsound", f"SPRSound record-level {_n} (0/1); Poor Quality recordings left out",
                  LUNG_PROMPTS if _n == "adventitious" else None)(_label(_n))
register_task("physionet2016-abnormal", "physionet2016", "PhysioNet 2016 abnormal vs normal heart sounds",
              HEART_PROMPTS)(_label("abnormal", {"abnormal"}, {"normal"}))
register_task("synthetic-adventitious", "synthetic", "synthetic lung clips with wheezes or crackles",
              LUNG_PROMPTS)(_label("adventitious"))
register_task("synthetic-wheeze", "synthetic", "synthetic lung clips with wheezes")(_label("wheeze"))
register_task("synthetic-crackle", "synthetic", "synthetic lung clips with crackles")(_label("crackle"))
register_task("synthetic-abnormal-heart", "synthetic", "synthetic heart clips, abnormal vs normal", HEART_PROMPTS)(
    _label("abnormal", {"abnormal"}, {"normal"}))
register_task("synthetic-wet-cough", "synthetic", "synthetic coughs, wet vs dry", COUGH_PROMPTS)(
    _label("cough_type", {"wet"}, {"dry"}))
register_task("icbhi-copd", "icbhi", "ICBHI recordings of COPD patients vs all others")(
    lambda r: None if r.labels.get("diagnosis") is None else int(r.labels["diagnosis"] == "COPD"))
register_task("kauh-obstructive", "kauh", "KAUH obstructive disease (asthma, COPD) vs normal")(
    lambda r: _binary(r.labels.get("diagnosis"), {"Asthma", "COPD"}, {"Normal"}))
register_task("circor-murmur", "circor", "CirCor murmur heard at this location (present vs absent)",
              ("Cardiac auscultation. There is no murmur at this site.", "Cardiac auscultation. A murmur is heard."))(
    _label("murmur_at_location", {"Present"}, {"Absent"}))
register_task("coswara-smoker", "coswara", "Coswara smokers vs non-smokers, heavy-cough recordings")(
    lambda r: None if r.metadata.get("sound") != "cough-heavy" else _binary(r.metadata.get("smoker"), {True}, {False}))
register_task("coswara-sex", "coswara", "Coswara sex (female vs male), heavy-cough recordings")(
    lambda r: None if r.metadata.get("sound") != "cough-heavy" else _binary(r.metadata.get("sex"), {"female"}, {"male"}))
register_task("coughvid-covid", "coughvid", "COUGHVID self-reported COVID-19 vs healthy",
              ("Cough recording. No known disease (healthy).", "Cough recording. Diagnosis: COVID-19."))(
    _label("status", {"COVID-19"}, {"healthy"}))
register_task("coughvid-sex", "coughvid", "COUGHVID sex (female vs male)")(
    lambda r: _binary(r.metadata.get("sex"), {"female"}, {"male"}))


def get_task(name: str) -> Task:
    """A registered task, or ``csv:MANIFEST:COLUMN`` (any label or metadata column of a manifest)."""
    if name.startswith("csv:"):
        manifest, _, column = name[4:].rpartition(":")
        if not manifest or not column:
            raise AculaError(f"task {name!r}: write csv:MANIFEST:COLUMN")
        return Task(name, f"manifest:{manifest}",
                    lambda r: r.labels.get(column, r.metadata.get(column)), f"{column} of {manifest}")
    if name not in _TASKS:
        raise AculaError(f"unknown task {name!r}; choose from: {', '.join(_TASKS)} or csv:MANIFEST:COLUMN")
    return _TASKS[name]


# ---------------------------------------------------------------- data roots


def data_root(fmt: str, overrides: dict[str, str], root: str | None = None) -> Path | None:
    """Where dataset ``fmt`` lives: ``--data fmt=PATH``, ``$ACULA_DATA_<FMT>``, ``<--data-root or $ACULA_DATA>/fmt``,
    else the conventional ``./data/fmt`` or ``../shared/data/fmt`` (relative to the working directory)."""
    env = os.environ.get(f"ACULA_DATA_{fmt.upper()}")
    base = root or os.environ.get("ACULA_DATA")
    candidates = [overrides.get(fmt), env] + ([str(Path(base) / fmt)] if base else []) + \
                 [str(Path("data") / fmt), str(Path("..") / "shared" / "data" / fmt)]
    for c in candidates:
        if c and Path(c).exists():
            return Path(c)
    return None


def data_overrides(items: Sequence[str]) -> dict[str, str]:
    """``--data FORMAT=PATH`` arguments as ``{format: path}``."""
    from acula_edge.cli import data_pairs

    return dict(data_pairs(items))


def load_task_records(task: Task, overrides: dict[str, str], root: str | None, out: Path) -> list[Recording]:
    """Recordings of ``task`` with a label, from the resolved data root (the synthetic corpus is made if absent)."""
    from acula_edge.data.loaders import load

    if task.dataset.startswith("manifest:"):
        records = read_manifest(task.dataset.split(":", 1)[1])
        from acula_edge.data.loaders import probe

        probe(records)
    else:
        where = data_root(task.dataset, overrides, root)
        if where is None and task.dataset == "synthetic":
            from acula_edge.data.synth import generate

            where = out / "synthetic-corpus"
            if not (where / "manifest.jsonl").exists():
                print(f"no synthetic corpus given: writing 400 clips (seed 0) to {where}", file=sys.stderr)
                generate(where, 400, seed=0)
        if where is None:
            raise AculaError(f"no data for task {task.name}: give --data {task.dataset}=PATH, or set ACULA_DATA "
                             f"to a folder holding {task.dataset}/")
        records = load(task.dataset, where)
    return task_records(task, records)


def task_records(task: Task, records: list[Recording]) -> list[Recording]:
    """The recordings ``task`` labels, with the class under ``labels["_task"]``; an error unless both classes occur."""
    kept = []
    for r in records:
        y = task.label(r)
        if y is not None and y != MISSING and y == y:
            kept.append(Recording(**{**r.to_dict(), "labels": {**r.labels, "_task": y}}))
    if len({r.labels["_task"] for r in kept}) < 2:
        raise AculaError(f"task {task.name}: fewer than two classes among {len(kept)} labelled recordings")
    return kept


# ---------------------------------------------------------------- encoders


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


class Encoder:
    """Something that turns recordings into one vector each."""

    name: str
    trained_subjects: set[str] = set()

    def embed(self, records: list[Recording]) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class LogMelStats(Encoder):
    """Hand-made baseline: per-band mean and standard deviation of the log-mel, and of its time deltas."""

    name = "logmel-stats"

    def __init__(self) -> None:
        from acula_edge.frontend import FrontendConfig

        self.fe = FrontendConfig()

    def embed(self, records: list[Recording]) -> np.ndarray:
        from acula_edge.audio import load
        from acula_edge.frontend import logmel

        out = []
        for r in progress(records, desc=self.name):
            m = logmel(load(r.path, sample_rate=self.fe.sample_rate)[0], self.fe).astype(np.float64)
            d = np.diff(m, axis=1) if m.shape[1] > 1 else np.zeros_like(m)
            out.append(np.concatenate([m.mean(1), m.std(1), np.abs(d).mean(1), d.std(1)]))
        return np.asarray(out, np.float32)


class TorchEncoder(Encoder):
    """A registered audio encoder (random initialisation or a checkpoint) over the shared front end."""

    def __init__(self, name: str, model, frontend: dict[str, Any] | None = None, trained: Sequence[str] = (),
                 threads: int = 1, show_progress: bool = True):
        import torch

        from acula_edge.frontend import FrontendConfig, LogMel

        self.name = name
        self.model = model.eval()
        self.fe = FrontendConfig.from_dict(frontend) if frontend else FrontendConfig()
        self.logmel = LogMel(self.fe)
        self.trained_subjects = set(trained)
        self.threads, self.show_progress = threads, show_progress
        self._torch = torch

    def embed(self, records: list[Recording]) -> np.ndarray:
        return self.run(records, self.model.features)

    def run(self, records: list[Recording], fn: Callable) -> np.ndarray:
        """``fn(logmel [1, n_mels, T]) -> [1, K]`` of every recording, stacked ``[N, K]``."""
        from acula_edge.audio import load

        torch = self._torch
        out = []
        with torch.inference_mode(), torch_threads(self.threads):
            for r in progress(records, desc=self.name, enabled=self.show_progress):
                x = torch.from_numpy(load(r.path, sample_rate=self.fe.sample_rate)[0])[None]
                if x.shape[1] < self.fe.n_fft:
                    x = torch.nn.functional.pad(x, (0, self.fe.n_fft - x.shape[1]))
                out.append(fn(self.logmel(x))[0].float().numpy())
        return np.asarray(out, np.float32)


BASELINES = ("random-init", "logmel-stats")


class AlignedEncoder:
    """An aligned encoder's recording embedding in the shared audio-text space:
    ``features(logmel)`` = the L2-normalised audio projection of the encoder's features."""

    def __init__(self, encoder, projection):
        self.encoder, self.projection = encoder, projection

    def eval(self) -> "AlignedEncoder":
        self.encoder.eval()
        self.projection.eval()
        return self

    def features(self, logmel):
        import torch

        return torch.nn.functional.normalize(self.projection(self.encoder.features(logmel)), dim=1)


def make_encoder(spec: str, threads: int = 1, aligned: bool = False) -> Encoder:
    """``random-init[:ARCH]``, ``logmel-stats``, or a checkpoint ``*.safetensors`` (an encoder or a student).

    ``aligned``: embed in the audio-text space (a student's embedding, an encoder's audio
    projection), as zero-shot scoring needs; an encoder without projections is then an error."""
    if aligned and not spec.endswith(".safetensors"):
        raise AculaError(f"{spec}: only aligned checkpoints embed in the audio-text space")
    if spec == "logmel-stats":
        return LogMelStats()
    if spec == "random-init" or spec.startswith("random-init:"):
        import torch

        from acula_edge.models import create_encoder

        arch = spec.split(":", 1)[1] if ":" in spec else "vit-tiny"
        torch.manual_seed(0)
        return TorchEncoder(spec, create_encoder(arch), threads=threads)
    p = Path(spec)
    if p.suffix == ".safetensors":
        from acula_edge.checkpoint import load_checkpoint, read_sidecar

        if read_sidecar(p).get("kind") == "student":
            from distill.students import WindowedStudent
            from distill.trainer import load_student

            student, meta = load_student(p)
            model = WindowedStudent(student)
        else:
            model, meta = load_checkpoint(p)
            if aligned:
                from acula_edge.checkpoint import load_projections

                proj = load_projections(p).get("audio")
                if proj is None:
                    raise AculaError(f"{p}: not an aligned checkpoint (no audio projection)")
                model = AlignedEncoder(model, proj)
        return TorchEncoder(str(p), model, meta["frontend"], meta.get("trained_subjects_sha256", ()), threads)
    if p.is_dir() and (p / "bundle.json").exists():
        raise AculaError(f"{p}: a bundle is checked with `python -m export verify {p} --data MANIFEST`; "
                         "evaluate probes checkpoints")
    raise AculaError(f"unknown encoder {spec!r}: give a checkpoint (*.safetensors) or one of {', '.join(BASELINES)}")


def without_subjects(records: list[Recording], hashes: set[str]) -> list[Recording]:
    """The recordings whose subject's hash (:func:`acula_edge.checkpoint.subject_hash`) is not in ``hashes``."""
    from acula_edge.checkpoint import subject_hash

    return [r for r in records if subject_hash(r.subject) not in hashes]


def unseen(records: list[Recording], seen: set[str], task: str) -> list[Recording]:
    """The recordings of subjects outside ``seen`` (hashed subjects the encoders were trained on)."""
    kept = without_subjects(records, seen)
    dropped = len({r.subject for r in records}) - len({r.subject for r in kept})
    print(f"{task}: {dropped} subjects the encoders were trained on left out; scoring {len(kept)} recordings of "
          f"{len({r.subject for r in kept})} unseen subjects", file=sys.stderr)
    if len({r.labels["_task"] for r in kept}) < 2:
        raise AculaError(f"task {task}: the subjects no encoder was trained on hold fewer than two classes")
    return kept


# ---------------------------------------------------------------- metrics and the probe


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


# ---------------------------------------------------------------- CLI


def _table(results: list[dict[str, Any]], encoders: list[str], tasks: list[str]) -> str:
    lines = ["| task | " + " | ".join(encoders) + " |", "|---|" + "---|" * len(encoders)]
    for t in tasks:
        cells = []
        for e in encoders:
            r = next(x for x in results if x["task"] == t and x["encoder"] == e)
            cells.append(f"{r['auroc_mean']:.3f} ± {r['auroc_std']:.3f} [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]")
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m acula_edge.evaluate``."""
    p = Parser(prog="python -m acula_edge.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--encoder", action="append", default=[], help="checkpoint or baseline (random-init, logmel-stats); repeat")
    p.add_argument("--task", action="append", default=[], help="task name or csv:MANIFEST:COLUMN; repeat")
    p.add_argument("--out", default="runs/evaluate", help="output folder (default runs/evaluate)")
    p.add_argument("--data", action="append", default=[], metavar="FORMAT=PATH", help="where a dataset lives; repeat")
    p.add_argument("--data-root", help="folder holding datasets in subfolders named by format (else $ACULA_DATA)")
    p.add_argument("--manifest", action="append", default=[], help="take the recordings from this manifest instead "
                   "(repeat); when each carries a train/val/test split, that split is used")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the interval")
    p.add_argument("--allow-overlap", action="store_true", help="score even when the encoder saw test subjects")
    p.add_argument("--unseen-only", action="store_true",
                   help="score only subjects that none of the encoders was trained on (the same recordings for all)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for embedding (default 1)")
    p.add_argument("--list-tasks", action="store_true")
    a = p.parse_args(argv)
    if a.list_tasks:
        for name, t in _TASKS.items():
            print(f"{name:<26} {t.description}")
        return 0
    if not a.encoder or not a.task:
        raise AculaError("give at least one --encoder and one --task (see --list-tasks)")
    if a.seeds < 1 or a.bootstrap < 1:
        raise AculaError("--seeds and --bootstrap must be positive")
    overrides = data_overrides(a.data)
    out = Path(a.out)
    tasks = [get_task(t) for t in a.task]
    encoders = [make_encoder(e, a.threads) for e in a.encoder]
    t0 = time.perf_counter()
    results = []
    listed = [r for m in a.manifest for r in read_manifest(m)]  # a missing one is one clear error
    for task in tasks:
        records = (task_records(task, [r for r in listed if r.dataset == task.dataset]) if a.manifest
                   else load_task_records(task, overrides, a.data_root, out))
        if a.unseen_only:
            records = unseen(records, set().union(*(e.trained_subjects for e in encoders)), task.name)
        for enc in encoders:
            emb = enc.embed(records)
            r = probe_task(emb, records, a.seeds, a.bootstrap, enc.trained_subjects, a.allow_overlap)
            results.append({"task": task.name, "encoder": enc.name, "allow_overlap": a.allow_overlap,
                            "unseen_only": a.unseen_only, **r})
            print(f"{task.name} | {enc.name}: AUROC {r['auroc_mean']:.3f} ± {r['auroc_std']:.3f} "
                  f"(95% CI {r['ci95'][0]:.2f}–{r['ci95'][1]:.2f}; {r['recordings']} recordings, "
                  f"{r['subjects']} subjects, " + ("the given split)" if r["fixed_split"] else f"{a.seeds} seeds)") + (" [test subjects overlap training]" if r["test_subject_overlap"] else ""))
    table = _table(results, [e.name for e in encoders], [t.name for t in tasks])
    from acula_edge.provenance import machine, versions

    doc = {"command": " ".join(["python -m acula_edge.evaluate", *(argv if argv is not None else sys.argv[1:])]),
           "protocol": ("frozen encoder, the manifests' own subject split, L2 logistic-regression probe fitted on "
                        "train and chosen on validation AUROC, test AUROC with a subject-bootstrap percentile interval"
                        if results and all(r["fixed_split"] for r in results) else
                        "frozen encoder, subject-grouped stratified 60/20/20 splits, L2 logistic-regression probe "
                        "chosen on validation AUROC, test AUROC mean ± std over seeds, 95% CI = mean of per-seed "
                        "subject-bootstrap percentile intervals"),
           "seconds": round(time.perf_counter() - t0, 1), "results": results, "machine": machine(),
           "versions": versions("numpy", "torch")}
    atomic_write_text(out / "results.json", json.dumps(doc, indent=2) + "\n")
    atomic_write_text(out / "results.md", table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
