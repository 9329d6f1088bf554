"""Distillation of an aligned teacher into a student: ``python -m distill``.

The teacher's aligned embedding of fixed windows of every recording is computed once
(:mod:`distill.teacher`); each step then shows the student augmented versions of those windows
(microphone-like: noise, band limits, reverberation, gain, clipping, time shifts) and asks for the
teacher's clean answer. Terms (:mod:`distill.losses`): embedding distillation, in-batch relational
distillation, a text anchor (the report's embedding through the teacher's text projection) and,
for each head, BCE on the label mixed with the soft target of a logistic probe fitted on the
teacher's window embeddings; with ``modality_head``, cross-entropy of a modality head on each
recording's modality; with ``events``, class-balanced BCE of the frame-level event head on the
annotated events of the training recordings (the window's time shift is applied to its targets). The loop, resume, ``torchrun`` and logs are
:mod:`acula_edge.training`'s. Output: ``OUT/student.safetensors`` + sidecar.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from acula_edge.augment import AugmentConfig, Backgrounds, augment_waveform
from acula_edge.config import to_dict
from acula_edge.data.events import check_kinds, frame_targets, record_spans, step_timing
from acula_edge.data.records import Recording
from acula_edge.errors import AculaError
from acula_edge.frontend import DEFAULT_STUDENT_FRONTEND, FrontendConfig, get_frontend
from acula_edge.hashing import sha256_file
from acula_edge.metrics import mean_cosine
from acula_edge.text_source import TextSource
from acula_edge.training import Dist, Job, LoopConfig, clip_seed, gather, prepare, run, run_lock, steps_per_epoch
from distill.losses import DistillWeights, distill_loss
from acula_edge.models.students import Student, create_student
from distill.teacher import TeacherTargets, teacher_targets

STUDENT_NAME = "student.safetensors"


@dataclass(frozen=True)
class DistillConfig(LoopConfig, TextSource):
    """Everything that decides what a distillation run computes."""

    teacher: str = ""
    student: str = "mn-s"
    frontend: str = DEFAULT_STUDENT_FRONTEND  # the student's own log-mel front end (a registered name)
    act: str | None = None  # student activation override (hardswish, relu)
    heads: tuple[str, ...] = ()  # evaluate task names, one head each
    epochs: int = 20
    batch_size: int = 32
    lr: float = 2e-3
    warmup_steps: int = 20
    hop_s: float | None = None  # teacher windows every hop (default half a window)
    weights: DistillWeights = field(default_factory=DistillWeights)
    augment: AugmentConfig = field(default_factory=AugmentConfig.microphone)
    soft_l2: float = 0.01  # L2 of the teacher probes that give the soft targets
    event_labels: bool = False  # label each window by the annotated events it overlaps, where a recording has them
    sensitivity: float = 0.9  # operating point of each head, chosen on calibration recordings
    modality_head: bool = False  # a head telling the training data's modalities apart (listen routes by it)
    events: tuple[str, ...] = ()  # event kinds with frame-level outputs (acula_edge.data.events.EVENT_KINDS)

    def __post_init__(self) -> None:
        problems = self.loop_problems()
        if not self.teacher:
            problems.append("give the aligned teacher checkpoint (--teacher)")
        if self.batch_size < 2 or self.soft_l2 <= 0:
            problems.append("batch_size >= 2 and soft_l2 > 0")
        if not 0 < self.sensitivity <= 1:
            problems.append("sensitivity in (0, 1]")
        if len(set(self.heads)) != len(self.heads):
            problems.append("each head (task) once")
        try:
            check_kinds(self.events)
        except AculaError as e:
            problems.append(str(e))
        if self.text_online:
            problems.append("the text anchor uses cached or precomputed report embeddings, not text_online")
        if problems:
            raise AculaError("bad distillation config: " + "; ".join(problems))
        get_frontend(self.frontend)  # an unknown name is one clear error

    def student_frontend(self) -> FrontendConfig:
        """The student's front end."""
        return get_frontend(self.frontend)


def head_labels(records: list[Recording], heads: tuple, need_both: bool = True) -> np.ndarray:
    """``[N, H]`` float labels (NaN where a head's task does not apply to a recording); with
    ``need_both``, a head whose recordings lack a class is an error."""
    from acula_edge.data.tasks import binary_labels, get_task

    out = np.full((len(records), len(heads)), np.nan, np.float32)
    for j, name in enumerate(heads):
        out[:, j] = binary_labels(get_task(name), records)
        if need_both and len(np.unique(out[~np.isnan(out[:, j]), j])) < 2:
            raise AculaError(f"head {name}: the training data hold fewer than two of its classes")
    return out


#: the hysteresis ``on`` levels tried on the calibration recordings (``off`` 0.2 below)
EVENT_ON_GRID = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # 0.3 to 0.95
EVENT_OVERLAP_S = 0.25  # a window is positive when a positive event covers this much of it (or half the event)


def window_labels(records: list[Recording], heads: tuple, windows: list[tuple[str, int]], rate: int,
                  window_s: float, labels: np.ndarray) -> np.ndarray:
    """``[windows, H]`` labels: each window its recording's (``labels [N, H]``, rows in ``records``'
    order), except where a head's task names event types (:attr:`acula_edge.datasets.Task.events`)
    and the recording is annotated with events: then 1 when a positive event overlaps the window by
    :data:`EVENT_OVERLAP_S` (or by half of a shorter event), else 0."""
    from acula_edge.data.tasks import get_task

    index = {r.id: i for i, r in enumerate(records)}
    out = labels[[index[rid] for rid, _ in windows]].copy()
    for j, name in enumerate(heads):
        kinds = get_task(name).events
        if not kinds:
            continue
        for k, (rid, start) in enumerate(windows):
            r = records[index[rid]]
            if np.isnan(out[k, j]) or not r.events:
                continue
            t0 = start / rate
            out[k, j] = float(any(
                e["type"] in kinds and min(e["end"], t0 + window_s) - max(e["start"], t0)
                >= min(EVENT_OVERLAP_S, 0.5 * (e["end"] - e["start"])) for e in r.events))
    return out


class WindowSet:
    """Augmented teacher windows: key ``(epoch, row)`` -> ``{"wave", "row", "t0"}`` (or ``{"error"}``), at
    the student's ``sample_rate`` (a window starts at the same second as the teacher's).

    With ``timed``, the time shift is a shifted read of the recording (``t0``: the second the window
    starts at), so that targets in time can follow it; else it is the augmentation's, zero filled."""

    def __init__(self, records: list[Recording], targets: TeacherTargets, sample_rate: int, samples: int,
                 augment: AugmentConfig, seed: int, timed: bool = False):
        self.by_id = {r.id: r for r in records}
        self.windows, self.start_rate = targets.windows, targets.sample_rate
        self.sample_rate, self.samples, self.seed = sample_rate, samples, seed
        self.shift = int(augment.shift * samples) if timed else 0
        self.augment = dataclasses.replace(augment, shift=0.0) if timed else augment
        self.backgrounds = Backgrounds.of(augment, sample_rate)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        from acula_edge.device.audio import load

        epoch, row = key
        rid, start = self.windows[row]
        rng = np.random.default_rng(clip_seed(self.seed, epoch, row))
        t0 = start / self.start_rate
        if self.shift:
            t0 = max(0.0, t0 - int(rng.integers(-self.shift, self.shift + 1)) / self.sample_rate)
        try:
            x, _ = load(self.by_id[rid].path, sample_rate=self.sample_rate, offset=t0,
                        duration=self.samples / self.sample_rate + 0.05)
        except AculaError as e:
            return {"error": f"recording {rid}: {e}"}
        x = x[: self.samples]
        if x.shape[0] < self.samples:
            x = np.concatenate([x, np.zeros(self.samples - x.shape[0], np.float32)])
        return {"wave": augment_waveform(x, self.sample_rate, self.augment, rng, self.backgrounds), "row": row,
                "t0": t0}


def collate_windows(items: list[dict[str, Any]]) -> dict[str, Any]:
    for i in items:
        if "error" in i:
            return {"error": i["error"]}
    return {"wave": np.stack([i["wave"] for i in items]), "row": np.array([i["row"] for i in items]),
            "t0": np.array([i["t0"] for i in items])}


class DistillModel(nn.Module):
    """Student plus the combined loss; targets of the whole micro-batch are gathered over processes."""

    def __init__(self, student: Student, weights: DistillWeights, d: Dist, teacher_mean: np.ndarray,
                 positive_rate: np.ndarray | None = None, event_rate: np.ndarray | None = None):
        super().__init__()
        self.student, self.weights, self.d = student, weights, d
        self.register_buffer("teacher_mean", torch.from_numpy(teacher_mean.astype(np.float32)), persistent=False)
        as_t = lambda a: None if a is None else torch.from_numpy(a.astype(np.float32))  # noqa: E731
        self.positive_rate, self.event_rate = as_t(positive_rate), as_t(event_rate)

    def forward(self, logmel, teacher, text, labels, soft, modality, events):
        o = self.student.raw(logmel)
        emb = o["embedding"]
        g = lambda t: None if t is None else gather(t, self.d)  # noqa: E731
        dev = lambda t: None if t is None else t.to(emb.device)  # noqa: E731
        return distill_loss(g(emb), g(teacher), self.weights, g(text), g(o["logits"] if labels is not None else None),
                            g(labels), g(soft), self.teacher_mean, dev(self.positive_rate), g(o.get("modality")),
                            g(modality), g(o.get("events")), g(events), dev(self.event_rate))


class DistillJob(Job):
    name = "distill"
    stage = "distill"
    unit = "windows"

    def __init__(self, cfg: DistillConfig, records: list[Recording], targets: TeacherTargets, d: Dist,
                 calibration: list[Recording] = (), show_progress: bool = True):
        from acula_edge.checkpoint import load_projections, read_sidecar
        from acula_edge.frontend import LogMel

        self.cfg, self.records, self.targets, self.d = cfg, records, targets, d
        self.calibration, self.show_progress = list(calibration), show_progress
        self.fe = cfg.student_frontend()
        torch.manual_seed(cfg.seed)
        # the modality and event heads learn from real recordings, and from synthetic clips only without any:
        # a class or event learned from synthetic audio alone says nothing of real recordings
        taught = [r for r in records if r.dataset != "synthetic"] or records
        modalities = tuple(sorted({r.modality for r in taught})) if cfg.modality_head else ()
        if len(modalities) == 1:
            raise AculaError(f"a modality head needs training recordings of two modalities or more; these are all "
                             f"{modalities[0]}")
        opts = {"heads": tuple(cfg.heads), "modalities": modalities, "events": tuple(cfg.events),
                **({"act": cfg.act} if cfg.act else {})}
        self.student = create_student(cfg.student, **opts)
        self.logmel = LogMel(self.fe).to(d.device)
        self.ids = [f"{rid}@{start}" for rid, start in targets.windows]
        index = {r.id: i for i, r in enumerate(records)}
        self.record_of_row = np.array([index[rid] for rid, _ in targets.windows])
        samples = self.fe.num_samples(self.student.config.window_frames)
        self.dataset = WindowSet(records, targets, self.fe.sample_rate, samples, cfg.augment, cfg.seed,
                                 timed=bool(cfg.events))
        taught_ids = {r.id for r in taught}
        self.modality = (np.array([modalities.index(r.modality) if r.id in taught_ids and r.modality in modalities
                                   else -1 for r in records])[self.record_of_row] if modalities else None)
        self.spans, event_rate = {}, None
        if cfg.events:
            self.spans = record_spans(taught, cfg.events)
            if not self.spans:
                raise AculaError("--events needs annotated lung recordings (SPRSound, ICBHI or synthetic lung "
                                 "sounds with their events) in the training data")
            self.step = step_timing(self.fe.to_dict(), self.student.config.event_stride)
            rows = [w for w in targets.windows if w[0] in self.spans]
            every = frame_targets(self.spans, [(rid, st / targets.sample_rate) for rid, st in rows],
                                  self.student.config.event_steps, *self.step)
            event_rate = every.mean(axis=(0, 1))
        self.collate = collate_windows
        self.teacher_meta = read_sidecar(cfg.teacher)
        self.text = None
        self.text_proj = load_projections(cfg.teacher).get("text")  # saved with the student: prompts need it
        if cfg.weights.text:
            from acula_edge.text_source import text_side

            _, _, vectors = text_side(cfg, records, d)
            proj = self.text_proj
            if vectors.shape[1] != proj.in_dim:
                raise AculaError(f"the text model gives {vectors.shape[1]}-d embeddings but the teacher's text "
                                 f"projection takes {proj.in_dim}: give the teacher's --text-model")
            with torch.no_grad():
                self.text = torch.nn.functional.normalize(proj(torch.from_numpy(vectors)), dim=1).numpy()
        self.labels = None  # [windows, H]
        if cfg.heads:
            per_record = head_labels(records, tuple(cfg.heads))
            self.labels = (window_labels(records, tuple(cfg.heads), targets.windows, targets.sample_rate,
                                         samples / self.fe.sample_rate, per_record) if cfg.event_labels
                           else per_record[self.record_of_row])
        self.soft = self._soft_targets() if cfg.heads else None
        rate = None if self.labels is None else np.nanmean(self.labels, axis=0)
        self.model = DistillModel(self.student, cfg.weights, d, targets.vectors.mean(0), rate, event_rate)

    def _soft_targets(self) -> np.ndarray:
        """``[rows, H]``: each head's teacher probe (logistic regression on the teacher's window
        embeddings of the labelled recordings) applied to every window."""
        from acula_edge.probe import fit_probe, torch_threads

        rows_labels = self.labels
        out = np.full(rows_labels.shape, np.nan, np.float32)
        x = self.targets.vectors.astype(np.float64)
        for j in range(rows_labels.shape[1]):
            known = ~np.isnan(rows_labels[:, j])
            with torch_threads(1):
                probe = fit_probe(x[known], rows_labels[known, j].astype(int), 2, self.cfg.soft_l2)
            out[:, j] = probe(x)[:, 1]
        return out

    def inputs(self, batch: dict[str, Any], d: Dist) -> tuple:
        rows = batch["row"]
        rec = self.record_of_row[rows]
        with torch.no_grad():
            x = self.logmel(torch.from_numpy(batch["wave"]).to(d.device))
        as_t = lambda a: None if a is None else torch.from_numpy(np.ascontiguousarray(a)).to(d.device)  # noqa: E731
        events = None
        if self.spans:
            windows = [(self.targets.windows[r][0], t0) for r, t0 in zip(rows, batch["t0"])]
            events = frame_targets(self.spans, windows, self.student.config.event_steps, *self.step)
        return (x, as_t(self.targets.vectors[rows]), as_t(None if self.text is None else self.text[rec]),
                as_t(None if self.labels is None else self.labels[rows]),
                as_t(None if self.soft is None else self.soft[rows]),
                as_t(None if self.modality is None else self.modality[rows]), as_t(events))

    def describe(self) -> dict[str, Any]:
        s = self.student
        return {"student": s.config.to_dict(), "parameters": s.num_parameters(), "frontend": self.fe.to_dict(),
                "teacher": self.cfg.teacher, "recordings": len(self.records)}

    def operating_points(self) -> list[dict[str, Any]]:
        """Each head's threshold for ``cfg.sensitivity``, chosen on the calibration recordings (whole
        recordings, window probabilities averaged), with the sensitivity and specificity reached there."""
        from acula_edge.encoders import TorchEncoder
        from acula_edge.metrics import auroc
        from acula_edge.metrics import operating_point
        from acula_edge.models.students import WindowedStudent

        heads: list[dict[str, Any]] = [{"name": h, "task": h, "threshold": None} for h in self.cfg.heads]
        if not self.calibration or not heads:
            return heads
        student = copy.deepcopy(self.student).cpu()  # the encoder feeds CPU tensors; training may be on a GPU
        enc = TorchEncoder("calibration", WindowedStudent(student), self.fe.to_dict(),
                           threads=torch.get_num_threads(), show_progress=self.show_progress)
        p = enc.run(self.calibration, enc.model.stream_scores)
        y = head_labels(self.calibration, tuple(self.cfg.heads), need_both=False)
        for j, h in enumerate(heads):
            known = ~np.isnan(y[:, j])
            if len(np.unique(y[known, j])) < 2:
                h["calibration"] = "the calibration recordings hold fewer than two of its classes"
                continue
            op = operating_point(y[known, j], p[known, j], self.cfg.sensitivity)
            h["threshold"] = op.pop("threshold")
            h["calibration"] = {**op, "auroc": round(auroc(y[known, j], p[known, j]), 4),
                                "subjects": len({r.subject for r, k in zip(self.calibration, known) if k})}
        return heads

    def event_operating_point(self) -> dict[str, Any] | None:
        """The hysteresis of the event findings chosen on the annotated calibration recordings: per kind,
        the ``on`` level of :data:`EVENT_ON_GRID` (``off`` 0.2 below it) whose spans, built as ``listen``
        builds them (windows every half window), reach the best segment F1 at 0.5 s; None without event
        outputs or annotated calibration recordings."""
        from acula_edge.data.events import annotated, kind_spans
        from acula_edge.device.audio import load
        from acula_edge.device.findings import EventTimeline, timeline_of
        from acula_edge.device.windows import cut_windows
        from acula_edge.frontend import LogMel
        from acula_edge.metrics import segment_counts, segment_f1

        records = [r for r in self.calibration if annotated(r)]
        if not self.cfg.events or not records:
            return None
        student = copy.deepcopy(self.student).cpu().eval()
        logmel, rate = LogMel(self.fe), self.fe.sample_rate
        samples = self.fe.num_samples(student.config.window_frames)
        kinds = list(self.cfg.events)
        runs = []
        with torch.no_grad():
            for r in records:
                x = load(r.path, sample_rate=rate)[0]
                starts, clips = cut_windows(x, samples, samples // 2)
                ev = torch.sigmoid(student.raw(logmel(torch.from_numpy(clips)))["events"]).numpy()
                runs.append(([s_ / rate for s_ in starts], list(ev), x.size / rate, r))
        scored = {}
        for on in EVENT_ON_GRID:
            off = round(max(0.05, on - 0.2), 2)
            counts: dict[str, list] = {k: [] for k in kinds}
            for starts, ev, duration, r in runs:
                spans, _ = timeline_of(EventTimeline(kinds, *self.step, on=on, off=off), starts, ev)
                for k in kinds:
                    counts[k].append(segment_counts(kind_spans(r, k), [(x.start, x.end) for x in spans if x.kind == k],
                                                    duration))
            scored[on] = (off, {k: round(segment_f1(np.array(c)), 4) for k, c in counts.items()})
        f1 = lambda v, k: -1.0 if np.isnan(scored[v][1][k]) else scored[v][1][k]  # noqa: E731
        on = {k: max(scored, key=lambda v: f1(v, k)) for k in kinds}
        return {"on": on, "off": {k: scored[v][0] for k, v in on.items()}, "calibration": {
            "segment_f1": {k: scored[v][1][k] for k, v in on.items()}, "recordings": len(records),
            "subjects": len({r.subject for r in records})}}

    def finish(self, out: Path, step: int) -> dict[str, Any]:
        from acula_edge.checkpoint import save_checkpoint

        cfg = self.cfg
        subjects = sorted({r.subject for r in self.records})
        heads = self.operating_points()
        meta = self.teacher_meta
        extra = {"teacher": {"path": cfg.teacher, "sha256": sha256_file(cfg.teacher, persistent=True), "encoder": meta.get("encoder"),
                             "alignment_loss": (meta.get("training") or {}).get("loss")},
                 "text_teacher": meta.get("text_teacher"), "heads": heads, "window_s": self.targets.config["window_s"],
                 "parameters": self.student.num_parameters(), "trained_subjects_count": len(subjects),
                 "projections": {"text": self.text_proj.config()} if self.text_proj is not None else None}
        if "logit_scale" in meta:
            extra["logit_scale"] = meta["logit_scale"]
        events = self.event_operating_point()
        if events:
            extra["event_operating_point"] = events
        save_checkpoint(out / STUDENT_NAME, self.student, self.fe.to_dict(), {**to_dict(cfg), "steps": step},
                        subjects=subjects, extra=extra, kind="student",
                        modules={"text_proj": self.text_proj} if self.text_proj is not None else None,
                        subject_hashes=meta.get("trained_subjects_sha256", ()))
        return {"recordings": len(self.records), "subjects": len(subjects),
                "heads": {h["name"]: h.get("calibration") for h in heads if "calibration" in h},
                **({"events": events} if events else {})}


def distill(cfg: DistillConfig, records: list[Recording], out: str | Path, resume: bool = False,
            device: str | None = None, threads: int | None = None, progress_bar: bool = True,
            calibration: list[Recording] = ()) -> dict[str, Any]:
    """Compute (or reuse) the teacher targets, then train the student into ``out``; each head's
    threshold is then chosen on ``calibration`` (recordings of other subjects, e.g. a validation split)."""
    out = Path(out)
    shared = {r.subject for r in records} & {r.subject for r in calibration}
    if shared:
        raise AculaError(f"{len(shared)} subjects are both in the training and the calibration recordings "
                         f"(e.g. {sorted(shared)[0]!r}): calibrate on other subjects")
    if calibration and not cfg.heads:
        raise AculaError("calibration recordings choose head thresholds: give at least one --head")
    with run_lock(out):  # teacher targets and training: one run at a time in the folder
        return _distill(cfg, records, out, resume, device, threads, progress_bar, calibration)


def _distill(cfg: DistillConfig, records: list[Recording], out: Path, resume: bool, device: str | None,
             threads: int | None, progress_bar: bool, calibration: list[Recording]) -> dict[str, Any]:
    """:func:`distill` once it holds the run folder."""
    student_cfg = create_student(cfg.student).config
    from acula_edge.checkpoint import read_sidecar
    from acula_edge.text import teacher_settings

    teacher_meta = read_sidecar(cfg.teacher)
    # the text anchor must embed reports as the teacher's text side did (layer, pooling, length, model)
    s = teacher_settings(teacher_meta.get("text_teacher") or {}, cfg.text_model)
    cfg = dataclasses.replace(cfg, text_model=s["model"], text_layer=s["layer"], text_pooling=s["pooling"],
                              text_max_length=s["max_length"])
    fe = cfg.student_frontend()
    if fe.n_mels != student_cfg.n_mels:
        raise AculaError(f"front end {cfg.frontend} gives {fe.n_mels} mel bands but student {cfg.student} takes "
                         f"{student_cfg.n_mels}")
    window_s = fe.num_samples(student_cfg.window_frames) / fe.sample_rate
    targets = teacher_targets(cfg.teacher, records, out / "teacher-targets", window_s, cfg.hop_s,
                              show_progress=progress_bar, threads=threads or 1)
    ids = [f"{rid}@{start}" for rid, start in targets.windows]
    d, state = prepare(out, resume, cfg, ids, device, threads)
    steps_per_epoch(len(ids), cfg, "windows")
    return run(DistillJob(cfg, records, targets, d, calibration, progress_bar), out, d, state, progress_bar)


def agreement(student: Student, targets: TeacherTargets, records: list[Recording], fe_dict: dict,
              batch: int = 32, centred: bool = False) -> float:
    """Mean cosine between the student's embedding and the teacher's of the same clean windows.

    ``centred``: both minus the teacher's mean embedding first, so that only how windows differ
    counts (an aligned space can share a large common direction that a constant output matches)."""
    from acula_edge.device.audio import load
    from acula_edge.frontend import LogMel

    fe = FrontendConfig.from_dict(fe_dict)
    logmel = LogMel(fe)
    samples = fe.num_samples(student.config.window_frames)
    by_id = {r.id: r for r in records}
    cache: dict[str, np.ndarray] = {}
    embeddings = []
    was = student.training
    student.eval()
    with torch.no_grad():
        for k in range(0, len(targets.windows), batch):
            clips = []
            for rid, start in targets.windows[k:k + batch]:
                if rid not in cache:
                    cache = {rid: load(by_id[rid].path, sample_rate=fe.sample_rate)[0]}
                at = int(round(start * fe.sample_rate / targets.sample_rate))
                x = cache[rid][at:at + samples]
                clips.append(np.pad(x, (0, samples - x.shape[0])))
            embeddings.append(student(logmel(torch.from_numpy(np.stack(clips))))[0].numpy())
    student.train(was)
    return mean_cosine(targets.vectors, np.concatenate(embeddings), centred)


__all__ = ["DistillConfig", "DistillJob", "agreement", "distill"]
