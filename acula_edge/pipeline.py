"""``python -m acula_edge.pipeline``: the whole method in one command, from recordings to a verified,
benchmarked bundle.

    python -m acula_edge.pipeline --preset demo --out runs/demo \\
        [--data sprsound=../shared/data/sprsound --data physionet2016=../shared/data/physionet2016]
    python -m acula_edge.pipeline --config RUN/config.json [--out OTHER]   # that run again (flags override it)
    python -m acula_edge.pipeline --preset demo --out runs/site-a --data ... \\
        --hold-out physionet2016:database=training-b    # test on a site the models never saw
    python -m acula_edge.pipeline --list-presets

Stages, in order, each one of this package's CLIs run as a subprocess (its output in ``RUN/logs/``):
synthetic corpus, manifests (every dataset's subjects split once into train/val/test), reports,
text embeddings, MSM pretraining, alignment, evaluation (linear probes), distillation, export,
verification, benchmarks. Encoders and the student are trained on the train subjects only; the
heads' thresholds are chosen on val; every accuracy reported is on test subjects (the exported
files' fidelity to the source model is checked on val and test).

A stage is skipped when it is up to date: the sha256 of its command and of its input files matches
the one recorded when it last finished, and its outputs are still those it wrote. A killed run
resumes where it stopped when the same command is given again (training stages from their last
saved state). Finally ``RUN/summary.json`` and ``RUN/summary.md``: AUROC per task for the teacher
and the student's files, with intervals, their sizes and latencies, and the time every stage took
when it last ran (their sum is the time to build the run from nothing).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import sys
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from acula_edge.cli import Parser, describe, guarded
from acula_edge.config import config_document, override, read_config
from acula_edge.errors import AculaError
from acula_edge.frontend import DEFAULT_STUDENT_FRONTEND
from acula_edge.stages import Runner, Step, clock, locked

FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}


def real_formats() -> list[str]:
    """The real datasets ``--data`` takes: those that name the tasks of the pipeline's heads."""
    from acula_edge.datasets import get_dataset, list_datasets

    return [f for f in list_datasets() if f != "synthetic" and get_dataset(f).pipeline_tasks]


@dataclass(frozen=True)
class Preset:
    """What one pipeline run trains and measures."""

    description: str
    synthetic: int  # clips of the synthetic corpus
    align_preset: str  # acula_edge.align preset (encoder and optimiser)
    pretrain_epochs: float
    align_epochs: float
    student: str
    distill_epochs: float
    frontend: str = DEFAULT_STUDENT_FRONTEND  # the student's log-mel front end (acula_edge.frontend)
    formats: str = "onnx"
    full_integer: bool = True  # the full-integer TFLite pair too (export without --no-full-integer)
    calibrator: str = "percentile"  # onnxruntime int8 activation ranges (export --calibrator)
    distill_hop: float = 2.0
    align_loss: str | None = None  # align train --loss (cka, cka-feature, infonce; default the align preset's)
    event_labels: bool = False  # distill --event-labels: windows labelled by the annotated events they overlap
    label_weight: float | None = None  # distill --label-weight (labels against the teacher probe's soft targets)
    head_weight: float | None = None  # distill --w-heads (the heads' loss against the teacher-matching terms)
    balance_heads: bool = False  # distill --balance-heads: a head's positive and negative windows weigh the same
    modality_head: bool = True  # distill --modality-head, where the training data hold two modalities or more
    events: tuple[str, ...] = ("wheeze", "crackle")  # distill --events, where the training data annotate events
    distill_augment: str = ""  # distill --augment settings, ';'-separated: "eq_prob=0.5;snr_db=20,40"
    bench: str = "full"  # benchmarks run: "full" or "quick"
    max_steps: int | None = None  # cap on every training stage's optimizer steps (the tiny preset)
    gpu: bool = False  # training stages on CUDA; MSM and alignment with torchrun over --nproc processes


PRESETS: dict[str, Preset] = {
    "tiny": Preset("a minute or two: checks every stage on a few synthetic clips (numbers mean nothing)",
                   synthetic=160, align_preset="cpu-tiny", pretrain_epochs=1, align_epochs=1, student="mn-xs",
                   distill_epochs=2, bench="quick", max_steps=16, calibrator="minmax"),
    "demo": Preset("about an hour on 2 CPU cores: the default bundle's recipe (vit-tiny teacher, mn-xs student, "
                   "ONNX and TFLite, fp32 and int8)", synthetic=400, align_preset="cpu-tiny", pretrain_epochs=30,
                   align_epochs=15, student="mn-xs", distill_epochs=8, formats="onnx,tflite",
                   full_integer=False, label_weight=1.0),
    "cpu-small": Preset("an hour or two on a laptop: more synthetic data and epochs, the mn-s student, ONNX and "
                        "TFLite", synthetic=1200, align_preset="cpu-tiny", pretrain_epochs=30, align_epochs=15,
                        student="mn-s", distill_epochs=8, formats="onnx,tflite"),
    "gpu-paper": Preset("the published recipe on one or more GPUs (torchrun): vit-small encoder, AdamW lr 1e-5, "
                        "50 alignment epochs, batch 24 x 2", synthetic=4000, align_preset="gpu-paper",
                        pretrain_epochs=100, align_epochs=50, student="mn-m", distill_epochs=30,
                        formats="onnx,tflite", gpu=True),
}


CONFIG_NAME = "config.json"  # in the run folder: the RunConfig it was built from


@dataclass(frozen=True)
class RunConfig:
    """What a pipeline run is built from: written to ``RUN/config.json``, read back by ``--config``."""

    preset: str  # the preset's name
    settings: Preset  # its fields, with the --set overrides
    data: dict[str, str] = field(default_factory=dict)  # dataset format -> folder
    threads: int = 1
    text_model: str | None = None
    hold_out: tuple[str, ...] = ()  # FORMAT:FIELD=VALUE: that dataset's matching recordings are its test part
    card_results: str | None = None  # a ``benchmarks generalization`` result of this recipe, for the model card


# ----------------------------------------------------------------------------- stages


@dataclass
class Run:
    """A pipeline run: its folder, preset, data and machine settings."""

    out: Path
    cfg: RunConfig
    nproc: int

    def p(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    @property
    def name(self) -> str:
        """The preset's name."""
        return self.cfg.preset

    @property
    def preset(self) -> Preset:
        """The preset's settings, with the overrides."""
        return self.cfg.settings

    @property
    def data(self) -> dict[str, Path]:
        """Dataset format -> folder."""
        return {f: Path(p) for f, p in self.cfg.data.items()}

    @property
    def threads(self) -> int:
        return self.cfg.threads

    @property
    def text_model(self) -> str | None:
        return self.cfg.text_model

    def hold_out(self, fmt: str) -> tuple[str, str] | None:
        """``(FIELD, VALUE)`` of the hold-out rule for dataset ``fmt``, if any."""
        for rule in self.cfg.hold_out:
            f, field_, value = parse_hold_out(rule)
            if f == fmt:
                return field_, value
        return None

    @property
    def tasks(self) -> list[str]:
        """The tasks of the heads: each real dataset's pipeline task, else the synthetic ones."""
        from acula_edge.datasets import get_dataset

        return ([t for f in self.data for t in get_dataset(f).pipeline_tasks]
                or list(get_dataset("synthetic").pipeline_tasks))

    @property
    def eval_tasks(self) -> list[str]:
        """The tasks of the linear probes: the heads' and the synthetic ones."""
        from acula_edge.datasets import get_dataset

        return list(dict.fromkeys(self.tasks + list(get_dataset("synthetic").pipeline_tasks)))

    @property
    def modalities(self) -> set[str]:
        """What the real datasets hold (the synthetic corpus's modalities when there are none)."""
        from acula_edge.datasets import get_dataset

        return {m for f in self.data for m in get_dataset(f).modalities} or set(get_dataset("synthetic").modalities)

    @property
    def annotates_events(self) -> bool:
        """Whether the training data say where their events are (a real dataset that annotates them, or
        the synthetic corpus alone)."""
        from acula_edge.data.events import ANNOTATED_DATASETS

        return bool(set(self.data) & set(ANNOTATED_DATASETS)) if self.data else True

    def training(self) -> list[str]:
        """Flags every training stage shares."""
        out = ["--manifest", str(self.p("data", "manifest.jsonl")), "--split", "train", "--quiet"]
        if self.preset.max_steps:
            out += ["--max-steps", str(self.preset.max_steps)]
        if not self.preset.gpu:
            out += ["--threads", str(self.threads), "--device", "cpu"]
        return out


def _num(x: float) -> str:
    return f"{x:g}"


def stage_synthetic(r: Run) -> Step:
    return Step(["acula_edge.data.synth", "--out", str(r.p("synthetic")), "--n", str(r.preset.synthetic),
                 "--seed", "0", "--quiet"], outputs=[r.p("synthetic")])


def stage_manifests(r: Run) -> Step:
    inputs = [r.p("synthetic")] + list(r.data.values())
    rules = [f"--hold-out={x}" for x in r.cfg.hold_out]
    if r.cfg.card_results:
        rules.append(f"--card-results={r.cfg.card_results}")
        inputs.append(Path(r.cfg.card_results))
    return Step(["(in-process) manifests", *(f"{k}={v}" for k, v in r.data.items()), json.dumps(FRACTIONS), *rules],
                inputs=inputs, outputs=[r.p("data")], run=lambda: write_manifests(r))


def stage_reports(r: Run) -> Step:
    m = r.p("data", "manifest.jsonl")
    return Step(["acula_edge.reports", "--manifest", str(m), "--out", str(r.p("reports", "reports.jsonl"))],
                inputs=[m], outputs=[r.p("reports")])


def stage_text(r: Run) -> Step:
    reports = r.p("reports", "reports.jsonl")
    cmd = ["acula_edge.text", "embed", "--reports", str(reports), "--out", str(r.p("text")), "--quiet"]
    if r.text_model:
        cmd += ["--model", r.text_model]
    return Step(cmd, inputs=[reports] + ([Path(r.text_model)] if r.text_model else []), outputs=[r.p("text")])


def stage_msm(r: Run) -> Step:
    run_dir = r.p("msm")
    return Step(["acula_edge.align", "pretrain", "--preset", r.preset.align_preset, *r.training(),
                 "--epochs", _num(r.preset.pretrain_epochs), "--out", str(run_dir)],
                inputs=[r.p("data", "manifest.jsonl")], outputs=[run_dir / "encoder.safetensors", run_dir / "encoder.json"],
                resumable=run_dir, torchrun=r.preset.gpu, progress=(run_dir / "metrics.jsonl", r.preset.pretrain_epochs))


def stage_align(r: Run) -> Step:
    run_dir, init = r.p("teacher"), r.p("msm", "encoder.safetensors")
    reports, text = r.p("reports", "reports.jsonl"), r.p("text")
    return Step(["acula_edge.align", "train", "--preset", r.preset.align_preset, *r.training(), "--init", str(init),
                 "--reports", str(reports), "--text-embeddings", str(text), "--epochs", _num(r.preset.align_epochs),
                 "--out", str(run_dir), *(["--loss", r.preset.align_loss] if r.preset.align_loss else [])],
                inputs=[r.p("data", "manifest.jsonl"), init, reports, text],
                outputs=[run_dir / "encoder.safetensors", run_dir / "encoder.json"], resumable=run_dir,
                torchrun=r.preset.gpu, progress=(run_dir / "metrics.jsonl", r.preset.align_epochs))


def stage_evaluate(r: Run) -> Step:
    encoders = [r.p("msm", "encoder.safetensors"), r.p("teacher", "encoder.safetensors")]
    m = r.p("data", "manifest.jsonl")
    cmd = ["acula_edge.evaluate", "--encoder", "logmel-stats", *(x for e in encoders for x in ("--encoder", str(e))),
           "--manifest", str(m), *(x for t in r.eval_tasks for x in ("--task", t)), "--out", str(r.p("evaluate")),
           "--threads", str(r.threads)]
    return Step(cmd, inputs=[m, *encoders], outputs=[r.p("evaluate")])


def stage_distill(r: Run) -> Step:
    run_dir, teacher = r.p("student"), r.p("teacher", "encoder.safetensors")
    reports, text = r.p("reports", "reports.jsonl"), r.p("text")
    cmd = ["distill", "--teacher", str(teacher), "--student", r.preset.student, "--frontend", r.preset.frontend,
           *r.training(),
           "--calibrate-split", "val", *(x for t in r.tasks for x in ("--head", t)),
           "--epochs", _num(r.preset.distill_epochs), "--hop", _num(r.preset.distill_hop),
           "--reports", str(reports), "--text-embeddings", str(text), "--out", str(run_dir)]
    cmd += ["--event-labels"] if r.preset.event_labels else []
    cmd += ["--modality-head"] if r.preset.modality_head and len(r.modalities) > 1 else []
    cmd += ["--events", *r.preset.events] if r.preset.events and r.annotates_events else []
    cmd += ["--label-weight", _num(r.preset.label_weight)] if r.preset.label_weight is not None else []
    cmd += ["--w-heads", _num(r.preset.head_weight)] if r.preset.head_weight is not None else []
    cmd += ["--balance-heads"] if r.preset.balance_heads else []
    cmd += [x for a in r.preset.distill_augment.split(";") if a.strip() for x in ("--augment", a.strip())]
    return Step(cmd, inputs=[r.p("data", "manifest.jsonl"), teacher, reports, text],
                outputs=[run_dir / "student.safetensors", run_dir / "student.json"], resumable=run_dir,
                progress=(run_dir / "metrics.jsonl", r.preset.distill_epochs))


def stage_export(r: Run) -> Step:
    ckpt, card, prompts = r.p("student", "student.safetensors"), r.p("data", "card.json"), r.p("data", "prompts.txt")
    train, test = r.p("data", "train.jsonl"), r.p("data", "test.jsonl")
    return Step(["export", "--checkpoint", str(ckpt), "--out", str(r.p("bundle")), "--formats", r.preset.formats,
                 "--name", f"acula-edge-{r.name}-{r.preset.student}",
                 "--int8", "--calibration", str(train), "--calibrator", r.preset.calibrator, "--evaluate", str(test), "--prompts", str(prompts),
                 "--card", str(card), "--overwrite",
                 *([] if r.preset.full_integer else ["--no-full-integer"])],
                inputs=[ckpt, ckpt.with_suffix(".json"), card, prompts, train, test], outputs=[r.p("bundle")])


def stage_verify(r: Run) -> Step:
    held_out = r.p("data", "held_out.jsonl")  # val and test: a fidelity check chooses nothing
    out = r.p("verify", "report.json")
    return Step(["export", "verify", str(r.p("bundle")), "--data", str(held_out), "--json"],
                inputs=[r.p("bundle"), held_out], outputs=[out], stdout=out, ok_codes=(0, 1))


def stage_benchmarks(r: Run) -> Step:
    teacher, m = r.p("teacher", "encoder.safetensors"), r.p("data", "train_test.jsonl")
    cmd = ["benchmarks", "run", "--bundle", str(r.p("bundle")), "--teacher", str(teacher), "--manifest", str(m),
           *(x for t in r.tasks for x in ("--task", t)), "--out", str(r.p("benchmarks"))]
    if r.preset.bench == "quick":
        cmd.append("--quick")
    return Step(cmd, inputs=[r.p("bundle"), teacher, m], outputs=[r.p("benchmarks")])


#: stage name -> (what it does, how it is built)
STAGES: dict[str, tuple[str, Callable[[Run], Step]]] = {
    "synthetic": ("synthetic corpus", stage_synthetic),
    "manifests": ("manifests and subject splits", stage_manifests),
    "reports": ("clinical reports", stage_reports),
    "text": ("text embeddings", stage_text),
    "msm": ("MSM pretraining", stage_msm),
    "align": ("alignment", stage_align),
    "evaluate": ("linear-probe evaluation", stage_evaluate),
    "distill": ("distillation", stage_distill),
    "export": ("export", stage_export),
    "verify": ("verification", stage_verify),
    "benchmarks": ("benchmarks", stage_benchmarks),
}


# ----------------------------------------------------------------------------- the manifests stage


def parse_hold_out(rule: str) -> tuple[str, str, str]:
    """``FORMAT:FIELD=VALUE`` -> ``(FORMAT, FIELD, VALUE)``; anything else is one clear error."""
    fmt, _, cond = rule.partition(":")
    field_, eq, value = cond.partition("=")
    if not fmt or not field_ or not eq or not value:
        raise AculaError(f"--hold-out {rule!r}: write FORMAT:FIELD=VALUE, e.g. physionet2016:database=training-b")
    return fmt, field_, value


def matches_rule(rec, field_: str, value: str) -> bool:
    """Whether a recording's metadata ``field_`` (else its ``site`` or ``device``) is ``value``."""
    got = rec.metadata.get(field_)
    if got is None and field_ in ("site", "device"):
        got = getattr(rec, field_)
    return got is not None and str(got) == value


def dataset_split(recs: list, task: str | list[str], rule: tuple[str, str] | None, fmt: str) -> dict[str, str]:
    """Subject -> part: one subject-grouped split stratified on ``task`` (:data:`FRACTIONS`, seed 0); with a
    hold-out ``rule``, the subjects of the matching recordings are the test part and the others are split
    into train and val in :data:`FRACTIONS`' proportions."""
    from acula_edge.data.splits import subject_parts

    if rule is None:
        return subject_parts(recs, task, FRACTIONS, seed=0)
    test = {x.subject for x in recs if matches_rule(x, *rule)}
    rest = [x for x in recs if x.subject not in test]
    if not test or not rest:
        seen = sorted({str(x.metadata.get(rule[0])) for x in recs})[:8]
        raise AculaError(f"--hold-out {fmt}:{rule[0]}={rule[1]}: {'no' if not test else 'every'} {fmt} recording "
                         f"matches (its {rule[0]} values: {', '.join(seen)})")
    return {**subject_parts(rest, task, {k: v for k, v in FRACTIONS.items() if k != "test"}, seed=0),
            **{s: "test" for s in test}}


def write_manifests(r: Run) -> None:
    """Every dataset's recordings with one subject split (stratified on its task's label, seed 0), and
    the files later stages read: ``manifest.jsonl`` (all, with ``split``), ``train.jsonl``,
    ``val.jsonl``, ``test.jsonl``, ``held_out.jsonl``, ``train_test.jsonl``, ``splits.json``, the bundle's
    ``prompts.txt`` and ``card.json``."""
    from acula_edge.data.records import Recording, atomic_write_text, write_manifest
    from acula_edge.data.tasks import get_task
    from acula_edge.datasets import get_dataset, load

    out = r.p("data")
    records: list[Recording] = []
    splits: dict[str, Any] = {}
    for fmt, where in {"synthetic": r.p("synthetic"), **r.data}.items():
        dataset = get_dataset(fmt)
        task = dataset.pipeline_tasks[0] if len(dataset.pipeline_tasks) == 1 else dataset.pipeline_tasks
        recs = load(fmt, where)
        rule = r.hold_out(fmt)
        assign = dataset_split(recs, task, rule, fmt)
        recs = [Recording(**{**x.to_dict(), "split": assign[x.subject]}) for x in recs]
        records += recs
        splits[fmt] = {"path": str(where), "licence": dataset.licence, "stratified_on": task,
                       **({"test_is": f"{rule[0]}={rule[1]}"} if rule else {}),
                       **{part: {"recordings": sum(x.split == part for x in recs),
                                 "subjects": len({x.subject for x in recs if x.split == part})} for part in FRACTIONS}}
    write_manifest(records, out / "manifest.jsonl")
    for name, parts in (("train", {"train"}), ("val", {"val"}), ("test", {"test"}), ("held_out", {"val", "test"}),
                        ("train_test", {"train", "test"})):
        write_manifest([x for x in records if x.split in parts], out / f"{name}.jsonl")
    atomic_write_text(out / "splits.json", json.dumps(splits, indent=2) + "\n")
    prompts = [p for t in r.tasks for p in (get_task(t).prompts or ())]
    atomic_write_text(out / "prompts.txt", "\n".join(prompts) + "\n")
    atomic_write_text(out / "card.json", json.dumps(card(r, splits), indent=2) + "\n")


def card(r: Run, splits: dict[str, Any]) -> dict[str, Any]:
    """The bundle's model-card additions: what it is, its data and licences, its limits."""
    from acula_edge.data.tasks import get_task

    def cell(s: dict[str, Any], *parts: str) -> str:
        return (f"{sum(s[p]['recordings'] for p in parts)} "
                f"({sum(s[p]['subjects'] for p in parts)})")

    rows = [{"dataset": fmt, "train": cell(s, "train"), "held_out": f"{cell(s, 'val')} / {cell(s, 'test')}",
             "licence": s["licence"]} for fmt, s in splits.items()]
    real = [f for f in splits if f != "synthetic"]
    results = {"results": recipe_results(r.cfg.card_results, r.preset)} if r.cfg.card_results else {}
    return {**results, "summary": (f"A demonstration model made by `python -m acula_edge.pipeline --preset {r.name}`: a "
                        f"{r.preset.student} student distilled from a {r.preset.align_preset} teacher aligned with the "
                        "frozen text teacher, trained on the synthetic corpus" +
                        (f" and {' and '.join(real)}" if real else "") + ". It shows the method end to end; it is not "
                        "a medical device and not a validated screening model."),
            "data": rows,
            "limitations": [x for x in [
                "Subjects were split once, stratified by each dataset's task label: train (encoders, student), val "
                "(thresholds), test (the metrics above, of the source checkpoint; `export verify` checks each file "
                "against it).",
                "Each head judges one kind of recording: " + ", ".join(
                    f"`{t}` {get_task(t).dataset} recordings" for t in r.tasks if not t.startswith("synthetic")) +
                "; on other sounds its score means nothing (`listen --modality`, or the modality head where there is "
                "one, scores only the heads that screen what is being listened to)." if real else "",
                f"The modality head learnt only {', '.join(sorted(r.modalities))} recordings: a cough, speech or any "
                "other sound is reported unknown only when the head is unsure, which it was never trained to be "
                "on such sounds." if r.preset.modality_head and len(r.modalities) > 1 and real else "",
                "The wheeze-like and crackle-like findings were learnt from the event annotations of the training "
                "children only; `python -m benchmarks events` measures them on the test children (event-level "
                "AUROC, segment F1 at 0.5 s, onset and offset errors)." if r.preset.events and r.annotates_events
                and real else "",
                "The synthetic corpus helped train the encoders and the student's embedding; its clips are not "
                "clinical evidence." if real else
                "The synthetic-* heads were trained and scored on synthetic audio only: they show the machinery and "
                "mean nothing on real recordings.",
                *(f"Every {fmt} recording with {s['test_is']} is in the test part (a source the model never saw); "
                  f"the other {fmt} subjects were split into train and val." for fmt, s in splits.items()
                  if s.get("test_is")),
                "PhysioNet 2016 publishes no patient ids: each recording counts as its own subject, so a patient may "
                "appear in more than one part." if "physionet2016" in splits else "",
                "The weights were learnt from the datasets above: check their licences before redistributing them."]
                if x]}


#: what runs saved before a field existed did, where that is not the field's default: they trained no
#: modality head and no event outputs
PREDATES = {"modality_head": False, "events": []}


def with_defaults(settings: dict[str, Any]) -> dict[str, Any]:
    """A run's saved preset ``settings`` with the fields it predates at what such runs did (their
    :class:`Preset` default, or :data:`PREDATES`); tuples as JSON lists."""
    defaults = {f.name: f.default for f in fields(Preset) if f.default is not MISSING}
    return json.loads(json.dumps({**defaults, **PREDATES, **settings}))


def recipe_results(path: str, preset: Preset) -> dict[str, Any]:
    """The model-card section (``card`` of ``python -m benchmarks generalization``'s JSON) that ``path``
    holds, when it measured the recipe of ``preset`` (every setting but the description the same)."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AculaError(f"--card-results {path}: cannot read it ({getattr(e, 'strerror', None) or e})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("card"), dict) or not isinstance(doc.get("settings"), dict):
        raise AculaError(f"--card-results {path}: not a result of python -m benchmarks generalization")
    mine = json.loads(json.dumps({k: v for k, v in asdict(preset).items() if k != "description"}))
    theirs = with_defaults(doc["settings"])
    differ = sorted(k for k in {*mine, *theirs} - {"description"} if mine.get(k) != theirs.get(k))
    if differ:
        raise AculaError(f"--card-results {path}: it measured another recipe (settings that differ: "
                         + ", ".join(f"{k}={theirs.get(k)!r} there, {mine.get(k)!r} here" for k in differ) + ")")
    return doc["card"]


# ----------------------------------------------------------------------------- summary


def summarize(r: Run, stages: dict[str, dict[str, Any]], command: str) -> dict[str, Any]:
    """``RUN/summary.json``: the data, every stage's time, and the teacher's and student's numbers."""
    def read(stage: str, *parts: str) -> dict[str, Any]:
        """A result of a stage of this invocation (a stage after --until may hold an older run's)."""
        path = r.p(*parts)
        return json.loads(path.read_text()) if stage in stages and path.exists() else {}

    ev = read("evaluate", "evaluate", "results.json")
    bench = read("benchmarks", "benchmarks", "results.json")
    bundle = read("export", "bundle", "bundle.json")
    verify = read("verify", "verify", "report.json")
    names = {str(r.p("msm", "encoder.safetensors")): "MSM only", str(r.p("teacher", "encoder.safetensors")): "teacher",
             "logmel-stats": "logmel-stats"}
    probes = [{"task": x["task"], "encoder": names.get(x["encoder"], x["encoder"]), "auroc": x["auroc_mean"],
               "ci95": x["ci95"], "test_subjects": x["seeds"][0].get("test_subjects")} for x in ev.get("results", [])]
    variants = []
    for v in bench.get("variants", []):
        variants.append({"variant": v["name"], "label": v["label"], "bytes": (v.get("cost") or {}).get("bytes"),
                         "p50_ms_1_thread": ((v.get("latency") or {}).get("threads_1") or {}).get("p50_ms"),
                         "peak_rss_mib": (v.get("memory") or {}).get("peak_rss_mib"),
                         "auroc": {t: {"auroc": a["offline"]["auroc"], "ci95": a["offline"]["ci95"]}
                                   for t, a in (v.get("accuracy") or {}).items() if (a or {}).get("offline")}})
    files = bundle.get("files", {})
    return {"preset": r.name, "settings": asdict(r.preset), "command": command,
            "data": read("manifests", "data", "splits.json"), "stages": stages,
            "seconds_total": round(sum(s["seconds"] for s in stages.values()), 1),
            "probe_auroc": probes, "variants": variants,
            "bundle": {"path": str(r.p("bundle")), "bytes": sum(f["bytes"] for f in files.values()),
                       "files": {n: f["bytes"] for n, f in files.items()}, "heads": bundle.get("heads", []),
                       "metrics": bundle.get("metrics", {}), "verified": verify.get("ok")},
            "synthetic_note": "synthetic-* tasks are on generated audio: they test the machinery, not clinical value"}


def markdown(s: dict[str, Any]) -> str:
    """The summary as Markdown tables."""
    def ci(a: dict[str, Any] | None) -> str:
        return f"{a['auroc']:.3f} [{a['ci95'][0]:.2f}, {a['ci95'][1]:.2f}]" if a else "-"

    tasks = sorted({t for v in s["variants"] for t in v["auroc"]})
    lines = [f"Preset `{s['preset']}`: `{s['command']}`", ""]
    if s["variants"]:  # the benchmark stage ran
        lines += ["| variant | KiB | p50 ms, 1 thread | " + " | ".join(f"{t} AUROC" for t in tasks) + " |",
                  "|---|---|---|" + "---|" * len(tasks)]
    for v in s["variants"]:
        kib = f"{v['bytes'] / 1024:.0f}" if v.get("bytes") else "-"
        ms = f"{v['p50_ms_1_thread']:.2f}" if v.get("p50_ms_1_thread") else "-"
        lines.append(f"| {v['label']} | {kib} | {ms} | " + " | ".join(ci(v["auroc"].get(t)) for t in tasks) + " |")
    ptasks = sorted({p["task"] for p in s["probe_auroc"]})
    encs = list(dict.fromkeys(p["encoder"] for p in s["probe_auroc"]))
    if ptasks:
        cell = {(p["task"], p["encoder"]): p for p in s["probe_auroc"]}
        lines += ["", "Linear probes on frozen embeddings (fitted on train, chosen on val, scored on test subjects):",
                  "", "| task | " + " | ".join(encs) + " |", "|---|" + "---|" * len(encs)]
        lines += [f"| {t} | " + " | ".join(ci(cell.get((t, e))) for e in encs) + " |" for t in ptasks]
    lines += ["", "| stage | status | time |", "|---|---|---|"]
    lines += [f"| {n} | {x['status']} | {clock(x['seconds'])} |" for n, x in s["stages"].items()]
    lines += [f"| total | | {clock(s['seconds_total'])} |", ""]
    if s["bundle"]["files"]:
        lines.append(f"Bundle: `{s['bundle']['path']}`, {s['bundle']['bytes'] / 1024:.0f} KiB, verified: "
                     f"{s['bundle']['verified']}.")
    lines.append(f"Note: {s['synthetic_note']}.")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- CLI


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m acula_edge.pipeline``."""
    from acula_edge.cli import data_pairs

    argv = list(sys.argv[1:] if argv is None else argv)
    p = Parser(prog="python -m acula_edge.pipeline", description=describe(__doc__))
    p.add_argument("--preset", help="one of: " + ", ".join(PRESETS))
    p.add_argument("--out", help="run folder (created; a rerun skips what is up to date and resumes the rest)")
    p.add_argument("--data", action="append", default=[], metavar="FORMAT=PATH",
                   help="a real dataset in its publisher's layout (repeat); formats: " + ", ".join(real_formats()))
    p.add_argument("--text-model", help="the frozen text teacher (local folder or .gguf; default the packaged "
                   "all-MiniLM-L6-v2)")
    p.add_argument("--threads", type=int, help="CPU threads per stage")
    p.add_argument("--nproc", type=int, help="GPU processes for the training stages (gpu presets; default: every "
                   "visible GPU)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a preset field (see --list-presets), e.g. --set distill_epochs=8; repeat")
    p.add_argument("--config", metavar="FILE", help="start from a run's RUN/config.json instead of a preset (the "
                   "flags given alongside override it; --out defaults to that run's folder)")
    p.add_argument("--hold-out", action="append", default=[], metavar="FORMAT:FIELD=VALUE",
                   help="make a dataset's recordings whose metadata FIELD is VALUE its whole test part and split the "
                   "rest into train and val, e.g. physionet2016:database=training-b (a site never trained on); repeat "
                   "for another dataset")
    p.add_argument("--card-results", metavar="FILE", help="a result of python -m benchmarks generalization with "
                   "this recipe (e.g. benchmarks/results/generalization.json): its per-site table goes into the "
                   "model card")
    p.add_argument("--until", choices=list(STAGES), help="stop after this stage")
    p.add_argument("--make-default", action="store_true", help="when the bundle passed verification, install it "
                   "as the package's default bundle (what listen uses without --bundle)")
    p.add_argument("--list-presets", action="store_true")
    a = p.parse_args(argv)
    if a.list_presets:
        for name, pr in PRESETS.items():
            listed = ", ".join(f"{k}={v}" for k, v in asdict(pr).items() if k != "description")
            print(f"{name:<10} {pr.description}\n           {listed}")
        return 0
    base = _run_config(a)
    out = Path(a.out) if a.out else None
    if out is None and a.config and (Path(a.config).parent / ".pipeline").is_dir():
        out = Path(a.config).parent  # a run's own config: that run
    if base is None or out is None:
        raise AculaError("give --preset (one of: " + ", ".join(PRESETS) + ") or --config RUN/config.json, and --out RUN")
    data = dict(base.data)
    if a.data:
        data = {}
        for fmt, path in data_pairs(a.data):
            if fmt not in real_formats():
                raise AculaError(f"--data {fmt}: the pipeline knows the formats {', '.join(real_formats())}")
            data[fmt] = str(Path(path).resolve())
    for fmt, path in data.items():
        if not Path(path).is_dir():
            raise AculaError(f"--data {fmt}: not a folder: {path}")
    threads = a.threads if a.threads is not None else base.threads
    if threads < 1:
        raise AculaError("--threads must be at least 1")
    hold = tuple(a.hold_out) if a.hold_out else base.hold_out
    for rule in hold:
        fmt = parse_hold_out(rule)[0]
        if fmt not in data:
            raise AculaError(f"--hold-out {rule}: {fmt} is not among the run's datasets (give --data {fmt}=PATH)")
    if len({parse_hold_out(x)[0] for x in hold}) < len(hold):
        raise AculaError("--hold-out: one rule per dataset")
    card_results = str(Path(a.card_results).resolve()) if a.card_results else base.card_results
    cfg = RunConfig(base.preset, override(base.settings, a.set), data, threads, a.text_model or base.text_model, hold,
                    card_results)
    preset = cfg.settings
    if card_results:
        recipe_results(card_results, preset)  # a wrong file is one error before any stage runs
    nproc = a.nproc or (_gpus() if preset.gpu else 1)
    if preset.gpu and nproc < 1:
        raise AculaError(f"preset {cfg.preset} trains on GPUs and none is visible; choose cpu-small or demo")
    r = Run(out, cfg, nproc)
    names = list(STAGES)[: list(STAGES).index(a.until) + 1] if a.until else list(STAGES)
    command = shlex.join(["python", "-m", "acula_edge.pipeline", *argv])
    print(f"pipeline {cfg.preset}: {len(names)} stages into {out} (logs in {out / 'logs'})", file=sys.stderr)
    runner = Runner(out, nproc, preset.max_steps, state=".pipeline")
    with locked(r.p(".pipeline"), "pipeline"):
        from acula_edge.data.records import atomic_write_text

        atomic_write_text(r.p(CONFIG_NAME), config_document(cfg, "pipeline"))
        stages = runner.run([(n, functools.partial(STAGES[n][1], r)) for n in names])
        summary = summarize(r, stages, command)
        atomic_write_text(r.p("summary.json"), json.dumps(summary, indent=2) + "\n")
        atomic_write_text(r.p("summary.md"), markdown(summary))
    print(markdown(summary))
    verified = summary["bundle"]["verified"]
    if verified is False:
        failures = json.loads(r.p("verify", "report.json").read_text()).get("failures", [])
        print(f"error: the bundle failed verification: {'; '.join(map(str, failures))} (see {r.p('verify', 'report.json')})",
              file=sys.stderr)
        return 1
    if a.make_default:
        if verified is not True:
            raise AculaError("--make-default needs a verified bundle: run the stages through verify")
        from acula_edge.device.bundle import DEFAULT_BUNDLE

        install_bundle(r.p("bundle"), DEFAULT_BUNDLE)
        print(f"installed {r.p('bundle')} as the default bundle: {DEFAULT_BUNDLE}", file=sys.stderr)
    return 0


def install_bundle(bundle: Path, target: Path) -> None:
    """Copy a bundle to ``target`` through :func:`acula_edge.device.bundle.write_bundle` (checksums checked on
    both sides; the old folder is replaced only once the new one is complete)."""
    from acula_edge.device.bundle import CARD, load_bundle, write_bundle

    b = load_bundle(bundle)
    meta = {k: v for k, v in b.meta.items() if k not in ("schema", "files")}
    write_bundle(target, meta, {n: b.path / n for n in b.meta["files"]}, card=(b.path / CARD).read_text(encoding="utf-8"),
                 overwrite=True)


def _run_config(a: argparse.Namespace) -> RunConfig | None:
    """The run a command starts from: the one ``--config`` names, else ``--preset``'s on every CPU core
    (None when it names neither)."""
    if a.config and a.preset:
        raise AculaError("give --preset or --config (a run's config.json), not both")
    if a.config:
        return read_config(a.config, RunConfig, "pipeline")
    return RunConfig(a.preset, PRESETS[a.preset], threads=os.cpu_count() or 1) if a.preset in PRESETS else None


def _gpus() -> int:
    """Visible CUDA devices (0 without torch or CUDA)."""
    try:
        import torch

        return torch.cuda.device_count()
    except ImportError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
