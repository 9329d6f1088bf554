"""Training data for MSM pretraining and alignment: recordings, their reports, random crops.

A clip's crop, augmentation and MSM mask are drawn from its own seed, derived from
``(run seed, epoch, recording index)``: a clip is the same whichever process of a ``torchrun`` job
loads it and whether or not the run was resumed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from acula_edge.augment import AugmentConfig, Backgrounds, augment_waveform, spec_masks
from acula_edge.data.records import Recording
from acula_edge.errors import AculaError
from acula_edge.training import clip_seed


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


__all__ = ["ClipSet", "collate", "subjects_of"]
