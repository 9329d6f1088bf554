"""Where each recording's report and its text-teacher embedding come from, for every stage that
trains against text (alignment, and distillation's text anchor): a report store or the templates,
then the frozen teacher through the embedding cache, in the loop, or a precomputed embeddings folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from acula_edge.data.records import Recording
from acula_edge.errors import AculaError

if TYPE_CHECKING:  # annotations only: the training loop imports torch
    from acula_edge.training import Dist


@dataclass(frozen=True)
class TextSource:
    """Where each recording's report and its teacher embedding come from (alignment, text anchors)."""

    reports: str | None = None  # report store (JSONL); None: template reports from the metadata
    report_seed: int = 0
    text_model: str | None = None  # local folder or .gguf; None: the packaged all-MiniLM-L6-v2
    text_layer: int = -1
    text_pooling: str = "mean"
    text_max_length: int = 128
    text_online: bool = False  # run the teacher in the loop instead of once through the cache
    text_cache: str | None = None  # None: the default cache; "" : no cache
    text_embeddings: str | None = None  # folder from `acula_edge.text embed`: no teacher at training time


def report_texts(records: Sequence[Recording], reports: str | None = None, seed: int = 0) -> list[str]:
    """Each recording's report: from a report store (JSONL, by recording id) or the templates."""
    if reports is None:
        from acula_edge.reports import make_report

        return [make_report(r, seed=seed) for r in records]
    from acula_edge.text import read_reports

    ids, texts = read_reports(reports)
    by_id = dict(zip(ids, texts))
    missing = [r.id for r in records if r.id not in by_id]
    if missing:
        raise AculaError(f"{reports}: no report for {len(missing)} of {len(records)} recordings "
                         f"(first: {missing[0]!r}); write them with python -m acula_edge.reports")
    return [by_id[r.id] for r in records]


def text_side(cfg: TextSource, records: list[Recording], d: Dist):
    """``(teacher, texts, vectors)``: the frozen teacher and each record's report and embedding.

    Embeddings go through the cache once before training (rank 0 first, the others then read the
    cache); with ``text_online`` vectors is None and the teacher runs inside the loop.
    """
    from acula_edge.text import EmbeddingCache, TextTeacher, default_cache_path, embed_with_cache

    if cfg.text_embeddings:
        return None, None, read_embeddings(cfg.text_embeddings, records)
    texts = report_texts(records, cfg.reports, cfg.report_seed)
    teacher = TextTeacher(cfg.text_model, layer=cfg.text_layer, pooling=cfg.text_pooling,
                          device=str(d.device), max_length=cfg.text_max_length)
    if cfg.text_online:
        return teacher, texts, None
    path = None if cfg.text_cache == "" else Path(cfg.text_cache).expanduser() if cfg.text_cache else default_cache_path()
    vectors = None
    for turn in (0, 1):
        if (turn == 0) == d.main:
            cache = EmbeddingCache(path) if path else None
            try:
                vectors = embed_with_cache(teacher, texts, cache, show_progress=d.main)
            finally:
                if cache:
                    cache.close()
        d.barrier()
    if not np.isfinite(vectors).all():
        raise AculaError(f"the text teacher {teacher.path} gave non-finite embeddings")
    return teacher, texts, vectors


def read_embeddings(folder: str, records: list[Recording]) -> np.ndarray:
    """Each record's vector from a folder written by ``python -m acula_edge.text embed`` (by report id)."""
    from acula_edge.text import CONFIG_NAME, EMBEDDINGS_NAME, IDS_NAME

    where = Path(folder)
    try:
        ids = json.loads((where / IDS_NAME).read_text(encoding="utf-8"))
        vectors = np.load(where / EMBEDDINGS_NAME, allow_pickle=False)
        json.loads((where / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise AculaError(f"{where}: not an embeddings folder from `python -m acula_edge.text embed` ({e})") from None
    if vectors.ndim != 2 or len(ids) != vectors.shape[0] or not np.isfinite(vectors).all():
        raise AculaError(f"{where}: {EMBEDDINGS_NAME} does not match {IDS_NAME} or holds non-finite values")
    row = {rid: i for i, rid in enumerate(ids)}
    missing = [r.id for r in records if r.id not in row]
    if missing:
        raise AculaError(f"{where}: no embedding for {len(missing)} of {len(records)} recordings (first: {missing[0]!r})")
    return vectors[[row[r.id] for r in records]].astype(np.float32)


def teacher_info(cfg: TextSource, teacher) -> dict[str, Any] | None:
    """The text teacher's description (from the embeddings folder's config when precomputed)."""
    if teacher is not None:
        return teacher.describe()
    if cfg.text_embeddings:
        from acula_edge.text import CONFIG_NAME

        return {**json.loads((Path(cfg.text_embeddings) / CONFIG_NAME).read_text(encoding="utf-8")),
                "embeddings": str(cfg.text_embeddings)}
    return None


__all__ = ["TextSource", "read_embeddings", "report_texts", "teacher_info", "text_side"]
