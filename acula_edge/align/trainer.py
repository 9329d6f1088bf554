"""MSM pretraining and AcuLa alignment: ``python -m acula_edge.align pretrain`` and ``train``.

One job serves both: MSM pretraining is the alignment loss with ``lambda_align = 0`` and no text.
The loop, resume, ``torchrun`` and logs are :mod:`acula_edge.training`'s; this module adds the
configuration and presets, the model (encoder, projection heads, loss; the projections are
gathered over processes so that the alignment loss sees the whole micro-batch), the text side
and the outputs: ``OUT/encoder.safetensors`` (+ JSON sidecar) with the projection heads for
alignment runs and the hashed subject ids trained on. A clip's crop, augmentation and MSM mask
come from its own seed (run seed, epoch, index).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from acula_edge.augment import AugmentConfig
from acula_edge.config import to_dict
from acula_edge.align.data import ClipSet, collate, subjects_of
from acula_edge.align.losses import DEFAULT_LOSS, InfoNCELoss, create_loss, msm_align_loss
from acula_edge.data.records import Recording
from acula_edge.errors import AculaError
from acula_edge.models.heads import Projection
from acula_edge.text_source import TextSource, teacher_info, text_side
from acula_edge.training import Dist, Job, LoopConfig, gather, prepare, run, run_lock, steps_per_epoch

ENCODER_NAME = "encoder.safetensors"


@dataclass(frozen=True)
class TrainConfig(LoopConfig, TextSource):
    """Everything that decides what a run computes (saved in ``config.json`` and the checkpoint)."""

    mode: str = "align"  # "pretrain" (MSM only) or "align"
    encoder: str | None = "vit-tiny"  # preset, when not starting from --init (None with --init)
    init: str | None = None  # checkpoint to start from
    loss: str = DEFAULT_LOSS
    lambda_align: float = 1.0
    lambda_msm: float = 1.0
    mask_ratio: float | None = None  # default: the encoder's
    proj_hidden: int = 1024
    proj_out: int = 512
    dropout: float = 0.2
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def __post_init__(self) -> None:
        problems = self.loop_problems()
        if self.mode not in ("pretrain", "align"):
            problems.append(f"mode is pretrain or align, got {self.mode!r}")
        if self.proj_hidden < 1 or self.proj_out < 1:
            problems.append("proj_hidden and proj_out must be >= 1")
        if not self.init and not self.encoder:
            problems.append("give an encoder preset or an --init checkpoint")
        if self.mode == "align" and self.batch_size < 2:
            problems.append("alignment needs batch_size >= 2 (the losses compare clips within a batch)")
        if self.mode == "pretrain" and self.lambda_msm <= 0:
            problems.append("pretraining is MSM: lambda_msm must be > 0")
        if self.mode == "align" and self.lambda_align <= 0:
            problems.append("alignment needs lambda_align > 0 (pretrain is the MSM-only command)")
        if self.lambda_align < 0 or self.lambda_msm < 0:
            problems.append("loss weights must be >= 0")
        from acula_edge.align.losses import list_losses

        if self.loss not in list_losses():
            problems.append(f"unknown loss {self.loss!r}; choose one of: {', '.join(list_losses())}")
        if self.mask_ratio is not None and not 0 < self.mask_ratio < 1:
            problems.append("mask_ratio must be in (0, 1)")
        if not 0 <= self.dropout < 1:
            problems.append("dropout must be in [0, 1)")
        if problems:
            raise AculaError("bad training config: " + "; ".join(problems))

    @property
    def align(self) -> bool:
        return self.mode == "align"


#: the ``python -m acula_edge.align`` command of each mode (the stage recorded in ``config.json``)
STAGES = {"pretrain": "align pretrain", "align": "align train"}


@dataclass(frozen=True)
class AlignPreset:
    """A preset's MSM pretraining and alignment settings."""

    pretrain: TrainConfig
    align: TrainConfig


# Published settings (DESIGN.md, "The method") and small ones for a 2-core CPU. The published
# pretraining schedule is not known here: gpu-paper's pretrain block is MAE-style defaults.
PRESETS: dict[str, AlignPreset] = {
    "cpu-tiny": AlignPreset(
        pretrain=TrainConfig(mode="pretrain", encoder="vit-tiny", epochs=30, batch_size=16, lr=1e-3,
                             weight_decay=0.05, warmup_steps=20, clip=1.0, lambda_align=0.0),
        align=TrainConfig(mode="align", encoder="vit-tiny", epochs=15, batch_size=16, accum=1, lr=2e-4,
                          weight_decay=0.01, warmup_steps=10, clip=1.0),
    ),
    "gpu-paper": AlignPreset(
        pretrain=TrainConfig(mode="pretrain", encoder="vit-small", epochs=100, batch_size=128, lr=1.5e-4,
                             weight_decay=0.05, warmup_steps=400, clip=1.0, lambda_align=0.0, workers=8),
        align=TrainConfig(mode="align", encoder="vit-small", epochs=50, batch_size=24, accum=2, lr=1e-5,
                          weight_decay=0.01, warmup_steps=400, clip=1.0, proj_hidden=1024, proj_out=512,
                          dropout=0.2, lambda_align=1.0, lambda_msm=1.0, workers=8),
    ),
}


def preset_config(preset: str, mode: str, **overrides: Any) -> TrainConfig:
    """The preset's settings for ``mode`` with ``overrides`` (None values ignored)."""
    if preset not in PRESETS:
        raise AculaError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    return configure(getattr(PRESETS[preset], mode), **overrides)


def configure(base: TrainConfig, **overrides: Any) -> TrainConfig:
    """``base`` with ``overrides`` (None values ignored); a checkpoint to start from (``init``)
    replaces the encoder preset, and an encoder preset a checkpoint."""
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes.get("init"):
        changes["encoder"] = None  # the checkpoint decides (its config is in config.json and the sidecar)
    elif changes.get("encoder"):
        changes["init"] = None
    return dataclasses.replace(base, **changes)


# --------------------------------------------------------------------------------------------
# model


class AlignModel(nn.Module):
    """Encoder, projection heads and the alignment loss: ``forward`` returns the training loss.

    ``forward(logmel, spec_mask, text, generators)`` with ``logmel`` one crop per clip (dB,
    ``[b, n_mels, input_frames]``), ``spec_mask`` the spectrogram masks of the alignment branch,
    ``text`` the teacher's embeddings ``[b, width]`` (alignment only) and one CPU generator per clip
    for the MSM mask. The MSM branch sees the unmasked crop (MAE masking is its own).
    """

    def __init__(self, encoder, cfg: TrainConfig, text_width: int | None, d: Dist):
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        self.d = d
        if cfg.align:
            if not text_width:
                raise AculaError("alignment needs the text teacher's width")
            self.audio_proj = Projection(encoder.embed_dim, cfg.proj_hidden, cfg.proj_out, cfg.dropout)
            self.text_proj = Projection(text_width, cfg.proj_hidden, cfg.proj_out, cfg.dropout)
            self.align_loss = create_loss(cfg.loss)
        if cfg.lambda_msm == 0:  # the decoder takes no part: freeze it (DDP wants every parameter used)
            for name, p in encoder.named_parameters():
                if encoder.msm_only_prefixes and name.startswith(encoder.msm_only_prefixes):
                    p.requires_grad_(False)

    def forward(self, logmel: torch.Tensor, spec_mask: torch.Tensor | None, text: torch.Tensor | None,
                generators: list[torch.Generator]) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        l_msm = l_align = None
        parts: dict[str, float] = {}
        if cfg.lambda_msm > 0:
            l_msm, _ = self.encoder.msm_loss(logmel, cfg.mask_ratio, generators)
            parts["l_msm"] = float(l_msm.detach())
        if cfg.align:
            x = logmel
            if spec_mask is not None:
                low = logmel.amin(dim=(1, 2), keepdim=True).expand_as(logmel)
                x = torch.where(spec_mask, low, logmel)
            a = gather(self.audio_proj(self.encoder.features(x)), self.d)
            t = gather(self.text_proj(text), self.d)
            l_align = self.align_loss(a.float(), t.float())
            parts["l_align"] = float(l_align.detach())
        return msm_align_loss(l_align, l_msm, cfg.lambda_align, cfg.lambda_msm), parts


# --------------------------------------------------------------------------------------------
# the run


def _build_encoder(cfg: TrainConfig):
    from acula_edge.checkpoint import load_checkpoint
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models import create_encoder

    if cfg.init:
        encoder, meta = load_checkpoint(cfg.init)
        return encoder, FrontendConfig.from_dict(meta["frontend"]), set(meta.get("trained_subjects_sha256", ()))
    return create_encoder(cfg.encoder), FrontendConfig(), set()


class AlignJob(Job):
    """MSM pretraining or alignment as a :class:`acula_edge.training.Job` over random crops of recordings."""

    unit = "clips"

    def __init__(self, cfg: TrainConfig, records: list[Recording], d: Dist):
        from acula_edge.frontend import LogMel

        self.cfg, self.records, self.d = cfg, records, d
        self.name, self.stage = cfg.mode, STAGES[cfg.mode]
        self.ids = [r.id for r in records]
        torch.manual_seed(cfg.seed)
        self.encoder, self.fe, self.prior_subjects = _build_encoder(cfg)
        self.teacher, self.texts, self.vectors = text_side(cfg, records, d) if cfg.align else (None, None, None)
        width = self.teacher.width if self.teacher else (self.vectors.shape[1] if self.vectors is not None else None)
        self.model = AlignModel(self.encoder, cfg, width, d)
        self.logmel = LogMel(self.fe).to(d.device)
        enc = self.encoder
        self.dataset = ClipSet(records, self.fe.sample_rate, self.fe.num_samples(enc.input_frames), enc.n_mels,
                               enc.input_frames, cfg.augment, cfg.seed)
        self.collate = collate
        self.subjects = subjects_of(records)

    def inputs(self, batch: dict[str, Any], d: Dist) -> tuple:
        with torch.no_grad():
            x = self.logmel(torch.from_numpy(batch["wave"]).to(d.device))
        mask = text = None
        if self.cfg.align:
            mask = torch.from_numpy(batch["mask"]).to(d.device)
            idx = batch["index"]
            v = self.vectors[idx] if self.vectors is not None else self.teacher.embed([self.texts[i] for i in idx])
            text = torch.from_numpy(np.ascontiguousarray(v)).to(d.device)
        gens = [torch.Generator().manual_seed(int(s)) for s in batch["seed"]]
        return x, mask, text, gens

    def after_step(self) -> None:
        if isinstance(getattr(self.model, "align_loss", None), InfoNCELoss):
            self.model.align_loss.clamp_logit_scale_()

    def describe(self) -> dict[str, Any]:
        return {"encoder": self.encoder.config.to_dict(), "frontend": self.fe.to_dict(),
                "text_teacher": teacher_info(self.cfg, self.teacher), "recordings": len(self.records),
                "subjects": len(self.subjects)}

    def finish(self, out: Path, step: int) -> dict[str, Any]:
        from acula_edge.checkpoint import save_checkpoint

        cfg, model = self.cfg, self.model
        modules = {"audio_proj": model.audio_proj, "text_proj": model.text_proj} if cfg.align else None
        extra = {"text_teacher": teacher_info(cfg, self.teacher),
                 "projections": {"audio": model.audio_proj.config(), "text": model.text_proj.config()}
                 if cfg.align else None, "trained_subjects_count": len(self.subjects)}
        if isinstance(getattr(model, "align_loss", None), InfoNCELoss):
            extra["logit_scale"] = float(model.align_loss.scale().detach())
        save_checkpoint(out / ENCODER_NAME, self.encoder, self.fe.to_dict(), {**to_dict(cfg), "steps": step},
                        subjects=self.subjects, extra=extra, modules=modules, subject_hashes=self.prior_subjects)
        return {"recordings": len(self.records), "subjects": len(self.subjects)}


def train(cfg: TrainConfig, records: list[Recording], out: str | os.PathLike, resume: bool = False,
          device: str | None = None, threads: int | None = None, progress_bar: bool = True) -> dict[str, Any]:
    """Run (or resume) a training run into folder ``out``; returns the result (also ``out/result.json``)."""
    out = Path(out)
    with run_lock(out):
        d, state = prepare(out, resume, cfg, [r.id for r in records], device, threads)
        steps_per_epoch(len(records), cfg, "recordings")  # fail before the teacher loads
        job = AlignJob(cfg, records, d)
        return run(job, out, d, state, progress_bar)


__all__ = ["PRESETS", "STAGES", "AlignJob", "AlignModel", "AlignPreset", "TrainConfig", "configure", "preset_config",
           "train"]
