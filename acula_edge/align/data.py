"""Training data for MSM pretraining and alignment: recordings, their reports, random crops.

A clip's crop, augmentation and MSM mask are drawn from its own seed, derived from
``(run seed, epoch, recording index)``: a clip is the same whichever process of a ``torchrun`` job
loads it and whether or not the run was resumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from acula_edge.augment import AugmentConfig, Backgrounds, augment_waveform, spec_masks
from acula_edge.data.records import Recording, read_manifest
from acula_edge.errors import AculaError
from acula_edge.training import clip_seed


def load_sources(manifests: Sequence[str] = (), data: Sequence[str] = (), splits: Sequence[str] = ()) -> list[Recording]:
    """Recordings from manifests (JSONL or CSV) and ``FORMAT=PATH`` dataset folders.

    ``splits`` keeps only recordings whose ``split`` field is one of them (a manifest written by
    ``python -m acula_edge.data split``), so that an encoder is trained on training subjects only.
    """
    from acula_edge.cli import data_pairs
    from acula_edge.datasets import load

    records: list[Recording] = []
    for m in manifests:
        records += read_manifest(m)
    for fmt, path in data_pairs(data):
        records += load(fmt, path)
    if not records:
        raise AculaError("no training data: give --manifest PATH or --data FORMAT=PATH")
    if splits:
        have = sorted({str(r.split) for r in records})
        records = [r for r in records if r.split in splits]
        if not records:
            raise AculaError(f"no recording is in split {', '.join(splits)} (the manifests hold: {', '.join(have)})")
    missing = [r.path for r in records if not Path(r.path).is_file()]
    if missing:
        raise AculaError(f"{len(missing)} of {len(records)} training recordings are missing, e.g. {missing[0]}")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise AculaError(f"recording id {dup!r} appears twice among the training data (a manifest given twice?)")
    return records


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


class ClipSet:
    """Random fixed-length crops of recordings, augmented, as a map-style dataset.

    An item key is ``(epoch, index)``; the item is a dict with ``wave`` ``[samples]`` float32,
    ``mask`` ``[n_mels, frames]`` bool (spectrogram masks, True = hidden), ``seed`` and ``index``.
    Works with ``torch.utils.data.DataLoader`` (workers decode in parallel) without importing torch.
    """

    def __init__(self, records: Sequence[Recording], sample_rate: int, samples: int, n_mels: int, frames: int,
                 augment: AugmentConfig, seed: int = 0):
        self.records = list(records)
        self.sample_rate = sample_rate
        self.samples = samples
        self.n_mels, self.frames = n_mels, frames
        self.augment = augment
        self.backgrounds = Backgrounds.of(augment, sample_rate)
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def crop(self, r: Recording, rng: np.random.Generator) -> np.ndarray:
        """A random window of ``samples`` samples (zero padded when the recording is shorter)."""
        from acula_edge.device.audio import info, load

        sr, need = self.sample_rate, self.samples
        dur = r.duration if r.duration else info(r.path).duration
        span = need / sr
        start = float(rng.uniform(0.0, dur - span)) if dur > span else 0.0
        try:
            x, _ = load(r.path, sample_rate=sr, offset=start, duration=span + 0.05)
        except AculaError as e:
            raise AculaError(f"recording {r.id}: {e}") from None
        if x.shape[0] >= need:
            return x[:need]
        return np.concatenate([x, np.zeros(need - x.shape[0], np.float32)])

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        """The item, or ``{"error": message}`` for a recording that cannot be read (so that a loader
        worker hands the message back instead of its traceback)."""
        epoch, index = key
        seed = clip_seed(self.seed, epoch, index)
        rng = np.random.default_rng(seed)
        try:
            clip = self.crop(self.records[index], rng)
        except AculaError as e:
            return {"error": str(e)}
        wave = augment_waveform(clip, self.sample_rate, self.augment, rng, self.backgrounds)
        return {"wave": wave, "mask": spec_masks(self.n_mels, self.frames, self.augment, rng),
                "seed": seed, "index": index}


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack a list of :class:`ClipSet` items into a batch (numpy arrays); ``{"error": ...}`` if any failed."""
    for i in items:
        if "error" in i:
            return {"error": i["error"]}
    return {"wave": np.stack([i["wave"] for i in items]), "mask": np.stack([i["mask"] for i in items]),
            "seed": [i["seed"] for i in items], "index": np.array([i["index"] for i in items])}


def subjects_of(records: Sequence[Recording]) -> list[str]:
    """Distinct subject ids, sorted."""
    return sorted({r.subject for r in records})


__all__ = ["ClipSet", "collate", "load_sources", "report_texts", "subjects_of"]
