"""What turns recordings into one vector each for the probe and zero-shot scoring: the log-mel
statistics baseline, a registered encoder at random initialisation, or a checkpoint (an aligned
encoder or a distilled student), chosen by :func:`make_encoder`."""

from __future__ import annotations

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

    def embed(self, records: list[Recording]) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError


class LogMelStats(Encoder):
    """Hand-made baseline: per-band mean and standard deviation of the log-mel, and of its time deltas."""

    name = "logmel-stats"

    def __init__(self) -> None:
        from acula_edge.frontend import FrontendConfig

        self.fe = FrontendConfig()

    def embed(self, records: list[Recording]) -> np.ndarray:
        from acula_edge.device.audio import load
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
        from acula_edge.device.audio import load

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
