"""Zero-shot screening through the aligned space, and operating points for screening heads.

    python -m acula_edge.zeroshot --checkpoint CKPT --prompt "normal ..." --prompt "wheezes ..." FILE...
    python -m acula_edge.zeroshot --checkpoint CKPT --task sprsound-adventitious [--data sprsound=PATH]

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

import json
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from acula_edge.cli import Parser, guarded
from acula_edge.device.zeroshot import DEFAULT_TEMPERATURE, unit, zero_shot_probabilities
from acula_edge.errors import AculaError

def embed_prompts(checkpoint: str, prompts: Sequence[str], text_model: str | None = None,
                  cache: str | None = None) -> np.ndarray:
    """``[K, D]`` L2-normalised prompt embeddings in ``checkpoint``'s aligned space.

    The checkpoint's teacher settings (layer, pooling, length) are reused; ``text_model`` defaults
    to the model it was trained with when that path exists here, else the packaged default.
    """
    import torch

    from acula_edge.checkpoint import load_projections, read_sidecar
    from acula_edge.text import EmbeddingCache, TextTeacher, embed_with_cache, teacher_settings

    if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise AculaError("give non-empty prompt texts")
    meta = read_sidecar(checkpoint)
    heads = load_projections(checkpoint)
    if "text" not in heads:
        raise AculaError(f"{checkpoint}: not an aligned checkpoint (no text projection)")
    info = meta.get("text_teacher") or {}
    s = teacher_settings(info, text_model)
    teacher = TextTeacher(s.pop("model"), **s)
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
    return unit(z.numpy()).astype(np.float32)


def alignment_loss(checkpoint: str) -> str | None:
    """The loss that aligned ``checkpoint``'s audio and text spaces (a student's: its teacher's), if recorded."""
    from acula_edge.checkpoint import read_sidecar

    meta = read_sidecar(checkpoint)
    if meta.get("kind") == "student":
        return (meta.get("teacher") or {}).get("alignment_loss")
    return (meta.get("training") or {}).get("loss")


def temperature_of(checkpoint: str) -> float:
    """The checkpoint's learned InfoNCE temperature (``1 / logit_scale``) where it has one, else the default."""
    from acula_edge.checkpoint import read_sidecar

    scale = read_sidecar(checkpoint).get("logit_scale")
    return 1.0 / scale if scale else DEFAULT_TEMPERATURE


def score_records(checkpoint: str, records: list, prompts: Sequence[str], threads: int = 1,
                  text_model: str | None = None) -> np.ndarray:
    """``[N, K]`` zero-shot probabilities of ``records`` for ``prompts`` under an aligned encoder or student."""
    from acula_edge.encoders import make_encoder

    vectors = embed_prompts(checkpoint, prompts, text_model)
    audio = make_encoder(checkpoint, threads, aligned=True).embed(records)
    return zero_shot_probabilities(audio, vectors, temperature_of(checkpoint))


def task_auroc(checkpoint: str, task: str, records: list, prompts: Sequence[str] | None = None, threads: int = 1,
               text_model: str | None = None, n_boot: int = 1000) -> dict[str, Any]:
    """Zero-shot AUROC of ``checkpoint`` on ``task``'s labelled ``records`` (label in ``labels["_task"]``,
    as :func:`acula_edge.evaluate.load_task_records` gives them), with a subject-bootstrap 95% interval."""
    from acula_edge.data.tasks import get_task
    from acula_edge.metrics import auroc, bootstrap_ci

    prompts = tuple(prompts or get_task(task).prompts or ())
    if not prompts:
        raise AculaError(f"task {task} has no registered prompts: give --prompt, one per class (class 0 first)")
    y = np.array([r.labels["_task"] for r in records])
    classes = sorted(set(y.tolist()))
    if len(classes) != len(prompts):
        raise AculaError(f"task {task} has {len(classes)} classes ({classes}) but {len(prompts)} prompts were given")
    yi = np.searchsorted(np.array(classes), y)
    p = score_records(checkpoint, records, prompts, threads, text_model)
    lo, hi = bootstrap_ci(yi, p, np.array([r.subject for r in records]), n_boot)
    return {"task": task, "checkpoint": checkpoint, "auroc": round(auroc(yi, p), 4), "ci95": [round(lo, 4), round(hi, 4)],
            "recordings": len(records), "subjects": len({r.subject for r in records}), "prompts": list(prompts),
            "classes": [str(c) for c in classes]}


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m acula_edge.zeroshot``."""
    from acula_edge.data.records import Recording, atomic_write_text
    from acula_edge.checkpoint import read_sidecar
    from acula_edge.data.roots import data_overrides, load_task_records
    from acula_edge.data.tasks import get_task
    from acula_edge.encoders import unseen

    p = Parser(prog="python -m acula_edge.zeroshot",
               description="Score recordings against free-text prompts through an aligned checkpoint (encoder or student).")
    p.add_argument("files", nargs="*", help="audio files to score")
    p.add_argument("--checkpoint", required=True, help="aligned encoder or student checkpoint (*.safetensors)")
    p.add_argument("--prompt", action="append", default=[], help="one answer's text; repeat (at least two)")
    p.add_argument("--task", help="score a task's recordings instead of files: zero-shot AUROC (subjects the "
                                  "checkpoint was trained on are left out, since their reports stated the answer)")
    p.add_argument("--data", action="append", default=[], metavar="FORMAT=PATH", help="where a dataset lives; repeat")
    p.add_argument("--text-model", help="the checkpoint's text model (default: the one it was aligned with)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the result as JSON here")
    p.add_argument("--work", default="runs/zeroshot", help="--task: where a synthetic corpus is made when one is "
                   "needed (default runs/zeroshot)")
    a = p.parse_args(argv)
    if bool(a.files) == bool(a.task):
        raise AculaError("give audio files or --task, not both")
    loss = alignment_loss(a.checkpoint)
    if loss in ("cka", "cka-feature"):
        print(f"note: {a.checkpoint} was aligned with {loss}, which matches the geometry of the audio and text "
              "spaces but not their coordinates; zero-shot scores need an InfoNCE-aligned teacher "
              "(`align train --loss infonce`)", file=sys.stderr)
    if a.task:
        if not (a.prompt or get_task(a.task).prompts):
            raise AculaError(f"task {a.task} has no registered prompts: give --prompt, one per class (class 0 first)")
        records = load_task_records(get_task(a.task), data_overrides(a.data), None, Path(a.work))
        records = unseen(records, set(read_sidecar(a.checkpoint).get("trained_subjects_sha256") or []), a.task)
        doc: dict[str, Any] = task_auroc(a.checkpoint, a.task, records, a.prompt or None, a.threads, a.text_model)
        print(f"{a.task} | {a.checkpoint}: zero-shot AUROC {doc['auroc']:.3f} (95% CI {doc['ci95'][0]:.2f}–"
              f"{doc['ci95'][1]:.2f}; {doc['recordings']} recordings of {doc['subjects']} unseen subjects)")
    else:
        if len(a.prompt) < 2:
            raise AculaError("give at least two --prompt texts (one per answer)")
        missing = [f for f in a.files if not Path(f).is_file()]
        if missing:
            raise AculaError(f"audio file not found: {missing[0]}")
        records = [Recording(id=f, path=f, dataset="files", subject=f, modality="unknown") for f in a.files]
        probs = score_records(a.checkpoint, records, a.prompt, a.threads, a.text_model)
        doc = {"checkpoint": a.checkpoint, "prompts": a.prompt,
               "files": [{"path": f, "probabilities": [round(float(v), 4) for v in row]} for f, row in zip(a.files, probs)]}
        for f, row in zip(a.files, probs):
            best = int(row.argmax())
            print(f"{f}: " + ", ".join(f"{v:.3f}" for v in row) + f"  -> {a.prompt[best]}")
    if a.out:
        atomic_write_text(a.out, json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["alignment_loss", "embed_prompts", "score_records", "task_auroc", "temperature_of"]
