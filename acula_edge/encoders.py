"""What turns recordings into one vector each for the probe and zero-shot scoring: the log-mel
statistics baseline, a registered encoder at random initialisation, or a checkpoint (an aligned
encoder or a distilled student), chosen by :func:`make_encoder`."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from acula_edge.data.records import Recording
from acula_edge.errors import AculaError
from acula_edge.probe import torch_threads
from acula_edge.progress import progress


class Encoder:
    """Something that turns recordings into one vector each."""

    name: str
    trained_subjects: set[str] = set()
    window_s: float | None = None  # the length of what the network sees at once (None: no window)

    def embed(self, records: list[Recording]) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class LogMelStats(Encoder):
    """Hand-made baseline: per-band mean and standard deviation of the log-mel, and of its time deltas."""

    name = "logmel-stats"

    def __init__(self) -> None:
        from acula_edge.frontend import FrontendConfig

        self.fe = FrontendConfig()

    def embed(self, records: list[Recording]) -> np.ndarray:
        from acula_edge.frontend import iter_logmel

        out = []
        for r in progress(records, desc=self.name):
            level, change, size = Moments(), Moments(), Moments()
            last = None
            for m in iter_logmel(r.path, self.fe):  # block by block: memory does not grow with the recording
                m = m.astype(np.float64)
                level.add(m)
                if last is not None or m.shape[1] > 1:
                    d = np.diff(m if last is None else np.concatenate([last, m], axis=1), axis=1)
                    change.add(d)
                    size.add(np.abs(d))
                last = m[:, -1:]
            zero = np.zeros_like(level.mean)
            out.append(np.concatenate([level.mean, level.std(), size.mean if size.n else zero,
                                       change.std() if change.n else zero]))
        return np.asarray(out, np.float32)


def logmel_statistics(m: np.ndarray) -> np.ndarray:
    """:class:`LogMelStats`'s features of one log-mel ``[bands, frames]`` held in memory (a segment):
    per band the mean and standard deviation, and the mean absolute and the standard deviation of
    the frame-to-frame change (zeros for a single frame)."""
    m = np.asarray(m, np.float64)
    d = np.diff(m, axis=1)
    zero = np.zeros(m.shape[0])
    return np.concatenate([m.mean(1), m.std(1), np.abs(d).mean(1) if d.shape[1] else zero,
                           d.std(1) if d.shape[1] else zero]).astype(np.float32)


class Moments:
    """Running per-row mean and standard deviation of ``[rows, t]`` blocks (Chan et al.'s pairwise
    update): the statistics of the blocks' concatenation along time, without keeping it."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, np.zeros(0), np.zeros(0)

    def add(self, x: np.ndarray) -> None:
        k = x.shape[1]
        if not k:
            return
        mu = x.mean(1)
        m2 = ((x - mu[:, None]) ** 2).sum(1)
        if not self.n:
            self.n, self.mean, self.m2 = k, mu, m2
            return
        d, total = mu - self.mean, self.n + k
        self.mean = self.mean + d * k / total
        self.m2 = self.m2 + m2 + d ** 2 * self.n * k / total
        self.n = total

    def std(self) -> np.ndarray:
        """Population standard deviation (``np.std``'s default)."""
        return np.sqrt(self.m2 / self.n)


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
        self.window_s = model.input_frames * self.fe.hop_length / self.fe.sample_rate
        self._torch = torch

    def embed(self, records: list[Recording]) -> np.ndarray:
        return self.run(records, self.model.stream_features)

    def run(self, records: list[Recording], fn: Callable) -> np.ndarray:
        """``fn(blocks, max_chunks) -> [1, K]`` of every recording, stacked ``[N, K]``: ``blocks()`` gives the
        recording's log-mel ``[n_mels, t]`` block by block (:func:`acula_edge.frontend.iter_logmel`) and the
        network sees :data:`MAX_CHUNKS` chunks at a time (``stream_features`` of the encoders and students,
        :func:`acula_edge.models.pooled_chunks`), so memory does not grow with a recording's length."""
        from acula_edge.frontend import iter_logmel

        torch = self._torch

        def transform(x: np.ndarray):
            return self.logmel(torch.from_numpy(x)[None])[0]

        out = []
        with torch.inference_mode(), torch_threads(self.threads):
            for r in progress(records, desc=self.name, enabled=self.show_progress):
                blocks = functools.partial(iter_logmel, r.path, self.fe, transform)
                out.append(fn(blocks, MAX_CHUNKS)[0].float().numpy())
        return np.asarray(out, np.float32)


MAX_CHUNKS = 64  # chunks (windows) of a recording that go through a network at once


BASELINES = ("random-init", "logmel-stats")


class AlignedEncoder:
    """An aligned encoder's recording embedding in the shared audio-text space:
    ``features(logmel)`` = the L2-normalised audio projection of the encoder's features."""

    def __init__(self, encoder, projection):
        self.encoder, self.projection = encoder, projection

    @property
    def input_frames(self) -> int:
        """Frames of one chunk (the encoder's)."""
        return self.encoder.input_frames

    def eval(self) -> "AlignedEncoder":
        self.encoder.eval()
        self.projection.eval()
        return self

    def features(self, logmel):
        import torch

        return torch.nn.functional.normalize(self.projection(self.encoder.features(logmel)), dim=1)

    def stream_features(self, blocks, max_chunks: int = 64):
        """:meth:`features` of one clip given as log-mel blocks (the encoder's ``stream_features``)."""
        import torch

        return torch.nn.functional.normalize(self.projection(self.encoder.stream_features(blocks, max_chunks)), dim=1)


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
            from acula_edge.models.students import WindowedStudent, load_student

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
