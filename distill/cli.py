"""``python -m distill``: distil an aligned teacher into a small student (see :mod:`distill.trainer`)."""

from __future__ import annotations

import sys
from typing import Sequence

from acula_edge.cli import Parser, guarded
from acula_edge.training_args import add_run_arguments, augment_override, loop_overrides
from acula_edge.errors import AculaError
from acula_edge.frontend import DEFAULT_STUDENT_FRONTEND, list_frontends


def _parser() -> Parser:
    p = Parser(prog="python -m distill", description="Distil an aligned teacher checkpoint into a small student.")
    p.add_argument("--list-students", action="store_true", help="print the student presets and exit")
    p.add_argument("--teacher", help="aligned checkpoint from `python -m acula_edge.align train`")
    p.add_argument("--student", help="student preset (default mn-s; see --list-students)")
    p.add_argument("--act", choices=("hardswish", "relu"), help="student activation (default the preset's)")
    p.add_argument("--frontend", help="the student's log-mel front end, one of: " + ", ".join(list_frontends())
                   + f" (default {DEFAULT_STUDENT_FRONTEND}; see acula_edge.frontend)")
    p.add_argument("--head", action="append", default=[], help="a task head (evaluate task name); repeat")
    p.add_argument("--calibrate-split", metavar="SPLIT",
                   help="choose each head's threshold on the recordings of this split of the same data "
                        "(e.g. val; other subjects than the training ones)")
    p.add_argument("--sensitivity", type=float, help="the heads' operating point (default 0.9)")
    p.add_argument("--event-labels", action="store_true", default=None,
                   help="label each window by the annotated events it overlaps (SPRSound's wheezes and crackles) "
                        "instead of by its whole recording's label, where a recording has events")
    p.add_argument("--modality-head", action="store_true", default=None,
                   help="a head telling the training data's modalities apart (lung, heart, ...): listen routes each "
                        "window to the heads that screen what it holds")
    p.add_argument("--events", nargs="+", metavar="KIND",
                   help="frame-level outputs for these event kinds (wheeze, crackle), trained on the annotated "
                        "events of the training recordings")
    t = add_run_arguments(p, out_required=False)
    t.add_argument("--hop", type=float, help="seconds between teacher windows (default half a window)")
    w = p.add_argument_group("loss weights")
    w.add_argument("--w-embedding", type=float)
    w.add_argument("--embedding-kind", choices=("centred", "cosine", "mse"))
    w.add_argument("--w-relational", type=float)
    w.add_argument("--relational-kind", choices=("similarity", "cka"))
    w.add_argument("--w-text", type=float, help="text anchor (0: off, no text model loaded)")
    w.add_argument("--w-heads", type=float)
    w.add_argument("--w-modality", type=float, help="the modality head's cross-entropy")
    w.add_argument("--w-events", type=float, help="the event head's BCE")
    w.add_argument("--label-weight", type=float, help="lambda: labels against the teacher probe's soft targets")
    w.add_argument("--balance-heads", action="store_true", default=None,
                   help="class-balanced head loss: a head's positive and negative training windows weigh the same")
    x = p.add_argument_group("text anchor")
    x.add_argument("--reports", help="report store (JSONL); default: template reports")
    x.add_argument("--text-model", help="the teacher's text model (default: the packaged all-MiniLM-L6-v2)")
    x.add_argument("--text-cache", help="embedding cache file")
    x.add_argument("--text-embeddings", help="folder from `python -m acula_edge.text embed`")
    return p


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m distill``."""
    a = _parser().parse_args(argv)
    import dataclasses

    from acula_edge.config import read_config
    from acula_edge.data.roots import load_sources
    from acula_edge.models.students import create_student, list_students
    from distill.trainer import DistillConfig, DistillJob, distill

    if a.list_students:
        from acula_edge.models import create_encoder

        teacher = create_encoder("vit-small").num_parameters("encoder")
        for name in list_students():
            s = create_student(name)
            print(f"{name:<6} {s.num_parameters():>9,} parameters ({teacher / s.num_parameters():5.1f}x fewer than "
                  f"the vit-small encoder)  {s.macs_per_window() / 1e6:6.2f} M MACs per "
                  f"{s.config.window_frames}-frame window")
        return 0
    if not (a.teacher or a.config) or not a.out:
        raise AculaError("give --teacher CHECKPOINT (or --config RUN/config.json) and --out DIR (and data: --manifest "
                         "or --data)")
    if a.config:
        base = read_config(a.config, DistillConfig, DistillJob.stage, key="training")
    else:
        base = DistillConfig(teacher=a.teacher)
    weights = {k: v for k, v in {"embedding": a.w_embedding, "embedding_kind": a.embedding_kind,
                                 "relational": a.w_relational, "relational_kind": a.relational_kind,
                                 "text": a.w_text, "heads": a.w_heads, "label_weight": a.label_weight,
                                 "balance_heads": a.balance_heads, "modality": a.w_modality,
                                 "events": a.w_events}.items()
               if v is not None}
    given = {"teacher": a.teacher, "student": a.student, "heads": tuple(a.head) or None, "hop_s": a.hop,
             "frontend": a.frontend, "events": tuple(a.events) if a.events else None, "modality_head": a.modality_head,
             **{k: getattr(a, k) for k in ("reports", "text_model", "text_cache", "text_embeddings", "act",
                                           "sensitivity", "event_labels")}}
    fields = {k: v for k, v in given.items() if v is not None}
    fields.update(loop_overrides(a))
    augment = augment_override(a, base.augment)
    if augment is not None:
        fields["augment"] = augment
    cfg = dataclasses.replace(base, weights=dataclasses.replace(base.weights, **weights), **fields)
    create_student(cfg.student)  # an unknown preset fails before the teacher runs
    records = load_sources(a.manifest, a.data, a.split)
    calibration = load_sources(a.manifest, a.data, [a.calibrate_split]) if a.calibrate_split else []
    result = distill(cfg, records, a.out, resume=a.resume, device=a.device, threads=a.threads,
                     progress_bar=not a.quiet, calibration=calibration)
    f = result.get("final")
    if f:
        terms = ", ".join(f"{k} {f[k]:.4f}" for k in ("loss", "embedding", "relational", "text", "heads", "modality", "events")
                          if k in f)
        print(f"distill: {result['steps']} steps on {result['windows']} windows of {result['recordings']} recordings "
              f"in {result['seconds']:.1f} s; last step: {terms}; student {a.out}/student.safetensors", file=sys.stderr)
    for name, c in (result.get("heads") or {}).items():
        print(f"head {name}: " + (c if isinstance(c, str) else
              f"threshold for sensitivity >= {cfg.sensitivity}: sensitivity {c['sensitivity']:.2f}, specificity "
              f"{c['specificity']:.2f} on {c['positives'] + c['negatives']} calibration recordings "
              f"(AUROC {c['auroc']:.3f})"), file=sys.stderr)
    ev = result.get("events")
    if ev:
        f1 = ", ".join(f"{k} {v:.3f}" for k, v in ev["calibration"]["segment_f1"].items())
        levels = ", ".join(f"{k} on {ev['on'][k]}, off {ev['off'][k]}" for k in ev["on"])
        print(f"event findings: hysteresis {levels} (segment F1 at 0.5 s on "
              f"{ev['calibration']['recordings']} calibration recordings: {f1})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
