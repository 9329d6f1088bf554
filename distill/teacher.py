"""Teacher targets computed once: the aligned teacher's embedding of fixed windows of every recording.

As EfficientAT stores its teacher's logits, distillation runs the (large) teacher once per window
instead of once per step: ``OUT/targets.npy`` (``[N, D]`` float32, L2-normalised, the teacher's
projected audio embedding in the aligned space), ``OUT/windows.json`` (recording id and start
sample of each row) and ``OUT/targets.json`` (teacher checkpoint sha256, front end, window and hop,
a digest of the recordings). The teacher sees clean audio; the student later sees the same window
augmented, so that it learns to give the clean answer from a degraded microphone signal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from acula_edge.data.records import Recording, atomic_write, atomic_write_text
from acula_edge.device.windows import cut_windows
from acula_edge.errors import AculaError
from acula_edge.hashing import sha256_file
from acula_edge.progress import progress

TARGETS_NAME, WINDOWS_NAME, CONFIG_NAME = "targets.npy", "windows.json", "targets.json"




@dataclass
class TeacherTargets:
    """Rows of teacher embeddings and the (recording id, start sample) each belongs to."""

    vectors: np.ndarray
    windows: list[tuple[str, int]]  # start samples at the teacher's rate
    config: dict

    @property
    def sample_rate(self) -> int:
        """The rate of the windows' start samples (the teacher's front end's)."""
        return int(self.config["frontend"]["sample_rate"])

    def rows_of(self) -> dict[str, list[int]]:
        """Recording id -> its row numbers."""
        out: dict[str, list[int]] = {}
        for i, (rid, _) in enumerate(self.windows):
            out.setdefault(rid, []).append(i)
        return out


def _describe(teacher: str | Path, records: Sequence[Recording], window_s: float, hop_s: float) -> dict:
    from acula_edge.checkpoint import read_sidecar

    meta = read_sidecar(teacher)
    from acula_edge.training import data_digest

    ids = data_digest([r.id for r in records])
    return {"teacher": str(teacher), "teacher_sha256": sha256_file(teacher, persistent=True), "frontend": meta["frontend"],
            "window_s": window_s, "hop_s": hop_s, "records_sha256": ids, "recordings": len(records)}


def read_targets(out: str | Path) -> TeacherTargets:
    out = Path(out)
    try:
        config = json.loads((out / CONFIG_NAME).read_text(encoding="utf-8"))
        windows = [tuple(w) for w in json.loads((out / WINDOWS_NAME).read_text(encoding="utf-8"))]
        vectors = np.load(out / TARGETS_NAME, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise AculaError(f"{out}: not a teacher-targets folder ({e})") from None
    if vectors.shape[0] != len(windows):
        raise AculaError(f"{out}: {TARGETS_NAME} and {WINDOWS_NAME} disagree")
    return TeacherTargets(vectors, windows, config)


def teacher_targets(teacher: str | Path, records: Sequence[Recording], out: str | Path, window_s: float,
                    hop_s: float | None = None, batch: int = 16, threads: int = 1,
                    show_progress: bool = True) -> TeacherTargets:
    """The teacher's aligned embedding of every window (``window_s`` long, every ``hop_s``, default
    half a window) of every recording; read from ``out`` when it already holds them for the same
    teacher file, recordings, front end and windows, else computed and written there atomically."""
    import torch

    from acula_edge.device.audio import load
    from acula_edge.checkpoint import load_checkpoint, load_projections
    from acula_edge.encoders import AlignedEncoder
    from acula_edge.probe import torch_threads
    from acula_edge.frontend import FrontendConfig, LogMel

    hop_s = hop_s or window_s / 2
    if window_s <= 0 or hop_s <= 0:
        raise AculaError("the window and hop must be positive")
    out = Path(out)
    want = _describe(teacher, records, window_s, hop_s)
    if (out / CONFIG_NAME).exists():
        have = read_targets(out)
        if have.config == want:
            return have
    encoder, _ = load_checkpoint(teacher)
    heads = load_projections(teacher)
    if "audio" not in heads:
        raise AculaError(f"{teacher}: not an aligned checkpoint (no audio projection); distil from "
                         "`python -m acula_edge.align train` output")
    aligned = AlignedEncoder(encoder, heads["audio"]).eval()
    fe = FrontendConfig.from_dict(want["frontend"])
    logmel = LogMel(fe)
    window, hop = int(round(window_s * fe.sample_rate)), int(round(hop_s * fe.sample_rate))
    rows: list[np.ndarray] = []
    windows: list[tuple[str, int]] = []
    with torch.inference_mode(), torch_threads(threads):
        for r in progress(records, desc="teacher targets", enabled=show_progress):
            starts, clips = cut_windows(load(r.path, sample_rate=fe.sample_rate)[0], window, hop)
            for k in range(0, len(starts), batch):
                rows.append(aligned.features(logmel(torch.from_numpy(clips[k:k + batch]))).float().numpy())
            windows += [(r.id, s) for s in starts]
    vectors = np.concatenate(rows).astype(np.float32)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_NAME).unlink(missing_ok=True)  # the set is incomplete until the config is back
    atomic_write(out / TARGETS_NAME, lambda f: np.save(f, vectors))
    atomic_write_text(out / WINDOWS_NAME, json.dumps([list(w) for w in windows]) + "\n")
    atomic_write_text(out / CONFIG_NAME, json.dumps(want, indent=2) + "\n")  # last: marks the set complete
    return TeacherTargets(vectors, windows, want)


__all__ = ["TeacherTargets", "read_targets", "teacher_targets"]
