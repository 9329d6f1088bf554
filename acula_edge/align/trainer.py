"""The training loop behind ``python -m acula_edge.align pretrain`` and ``train``.

One loop serves both: MSM pretraining is the alignment loss with ``lambda_align = 0`` and no text.

- **Batches.** ``batch_size`` is the global micro-batch: under ``torchrun`` each of W processes
  takes ``batch_size / W`` clips of it, projections are gathered (with gradients) so the alignment
  loss sees the whole micro-batch, and DDP averages gradients. The same command therefore trains
  the same model on 1 or W processes (up to float summation order), except for what each process
  draws or measures alone: dropout masks and BatchNorm statistics. ``accum`` micro-batches make
  one optimizer step.
- **Randomness.** A clip's crop, augmentation and MSM mask come from its own seed (run seed,
  epoch, index); dropout is seeded per micro-step (run seed, step, micro-step, rank). With the
  step counters saved, resuming replays exactly what the uninterrupted run would have done.
- **State.** ``OUT/resume.pt`` (model, optimizer, scheduler, counters, config; tensors and plain
  values only, read with ``weights_only=True``) is written atomically every ``save_every``
  optimizer steps and at the end of each epoch; ``OUT/encoder.safetensors`` (+ JSON sidecar) at
  the end, with the projection heads for alignment runs, and the hashed subject ids trained on.
- **Logs.** ``OUT/metrics.jsonl`` (a line per optimizer step), ``OUT/config.json``,
  ``OUT/result.json``, and a progress bar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from acula_edge.align.augment import AugmentConfig
from acula_edge.align.data import ClipSet, collate, micro_batches, report_texts, subjects_of
from acula_edge.align.losses import DEFAULT_LOSS, InfoNCELoss, create_loss, msm_align_loss
from acula_edge.data.records import Recording, atomic_write, atomic_write_text, read_jsonl
from acula_edge.errors import AculaError
from acula_edge.models.heads import Projection

RESUME_NAME = "resume.pt"
# Settings a resumed run may change: they do not change what is computed.
RESUME_FREE = ("save_every", "workers", "text_cache")
ENCODER_NAME = "encoder.safetensors"
METRICS_NAME = "metrics.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run computes (saved in ``config.json`` and the checkpoint)."""

    mode: str = "align"  # "pretrain" (MSM only) or "align"
    encoder: str | None = "vit-tiny"  # preset, when not starting from --init (None with --init)
    init: str | None = None  # checkpoint to start from
    epochs: int = 10
    max_steps: int | None = None  # stop (and end the schedule) after this many optimizer steps
    batch_size: int = 16  # global micro-batch, split over processes
    accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 10
    clip: float = 1.0  # gradient-norm clip (0: off)
    loss: str = DEFAULT_LOSS
    lambda_align: float = 1.0
    lambda_msm: float = 1.0
    mask_ratio: float | None = None  # default: the encoder's
    proj_hidden: int = 1024
    proj_out: int = 512
    dropout: float = 0.2
    seed: int = 0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    reports: str | None = None  # report store (JSONL); None: template reports from the metadata
    report_seed: int = 0
    text_model: str | None = None  # local folder or .gguf; None: the packaged all-MiniLM-L6-v2
    text_layer: int = -1
    text_pooling: str = "mean"
    text_max_length: int = 128
    text_online: bool = False  # run the teacher in the loop instead of once through the cache
    text_cache: str | None = None  # None: the default cache; "" : no cache
    text_embeddings: str | None = None  # folder from `acula_edge.text embed`: no teacher at training time
    save_every: int = 50
    workers: int = 0
    bf16: bool = True  # autocast to bf16 on CUDA (CPU stays fp32)

    def __post_init__(self) -> None:
        problems = []
        if self.mode not in ("pretrain", "align"):
            problems.append(f"mode is pretrain or align, got {self.mode!r}")
        for k in ("epochs", "batch_size", "accum", "save_every", "proj_hidden", "proj_out"):
            if getattr(self, k) < 1:
                problems.append(f"{k} must be >= 1")
        if not self.init and not self.encoder:
            problems.append("give an encoder preset or an --init checkpoint")
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("max_steps must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.clip < 0 or self.workers < 0:
            problems.append("lr > 0, weight_decay, warmup_steps, clip and workers >= 0")
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

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["augment"] = self.augment.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) - names:
            raise AculaError(f"unknown training settings {sorted(set(d) - names)}")
        if "augment" in d:
            d["augment"] = AugmentConfig.from_dict(d["augment"])
        return cls(**d)


# Published settings (DESIGN.md, "The method") and small ones for a 2-core CPU. The published
# pretraining schedule is not known here: gpu-paper's pretrain block is MAE-style defaults.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "cpu-tiny": {
        "pretrain": dict(encoder="vit-tiny", epochs=30, batch_size=16, lr=1e-3, weight_decay=0.05,
                         warmup_steps=20, clip=1.0, lambda_align=0.0),
        "align": dict(encoder="vit-tiny", epochs=15, batch_size=16, accum=1, lr=2e-4, weight_decay=0.01,
                      warmup_steps=10, clip=1.0),
    },
    "gpu-paper": {
        "pretrain": dict(encoder="vit-small", epochs=100, batch_size=128, lr=1.5e-4, weight_decay=0.05,
                         warmup_steps=400, clip=1.0, lambda_align=0.0, workers=8),
        "align": dict(encoder="vit-small", epochs=50, batch_size=24, accum=2, lr=1e-5, weight_decay=0.01,
                      warmup_steps=400, clip=1.0, proj_hidden=1024, proj_out=512, dropout=0.2,
                      lambda_align=1.0, lambda_msm=1.0, workers=8),
    },
}


def preset_config(preset: str, mode: str, **overrides: Any) -> TrainConfig:
    """The preset's settings for ``mode`` with ``overrides`` (None values ignored)."""
    if preset not in PRESETS:
        raise AculaError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    base = dict(PRESETS[preset][mode])
    if mode == "pretrain":
        base.setdefault("lambda_msm", 1.0)
    base.update({k: v for k, v in overrides.items() if v is not None})
    if base.get("init"):
        base["encoder"] = None  # the checkpoint decides (its config is in config.json and the sidecar)
    return TrainConfig(mode=mode, **base)


# --------------------------------------------------------------------------------------------
# distributed helpers


@dataclass
class Dist:
    """This process's place in a ``torchrun`` job (world 1 when run plainly)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def init_distributed(device: str | None = None) -> Dist:
    """Join the ``torchrun`` job from the environment (NCCL on CUDA, gloo on CPU), or run alone."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    want = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if want != "cpu" and not re.fullmatch(r"cuda(:\d+)?", want):
        raise AculaError(f"--device is cpu, cuda or cuda:N, got {want!r}")
    if want.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AculaError("--device cuda asked for, but torch sees no CUDA device")
        index = local if world > 1 else int(want.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise AculaError(f"no CUDA device {index}: torch sees {torch.cuda.device_count()}")
        dev = torch.device("cuda", index)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank, world, local, dev)


class _Gather(torch.autograd.Function):
    """All-gather along rows whose backward sums every process's gradient and returns this process's
    rows (each process computes the loss on the whole batch, so the sum is that loss's gradient)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather(x: torch.Tensor, d: Dist) -> torch.Tensor:
    """Concatenate every process's rows in rank order, keeping gradients to each process's own rows."""
    return x if d.world == 1 else _Gather.apply(x)


def step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, micro, rank, 1]).generate_state(1)[0])


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


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices and kernels, none on biases, norms, tokens and scales."""
    decay, plain = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            leaf = name.rsplit(".", 1)[-1]
            (plain if p.dim() < 2 or leaf.endswith("token") or "pos_embed" in leaf else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def linear_schedule(warmup: int, total: int):
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``."""
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))
    return f


# --------------------------------------------------------------------------------------------
# text side


def text_side(cfg: TrainConfig, records: list[Recording], d: Dist):
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


# --------------------------------------------------------------------------------------------
# the run


def teacher_info(cfg: TrainConfig, teacher) -> dict[str, Any] | None:
    """The text teacher's description (from the embeddings folder's config when precomputed)."""
    if teacher is not None:
        return teacher.describe()
    if cfg.text_embeddings:
        from acula_edge.text import CONFIG_NAME

        return {**json.loads((Path(cfg.text_embeddings) / CONFIG_NAME).read_text(encoding="utf-8")),
                "embeddings": str(cfg.text_embeddings)}
    return None


def _save_resume(path: Path, state: dict[str, Any]) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def load_resume(path: Path) -> dict[str, Any]:
    """A run's resume state (tensors and plain values only; never unpickles objects)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is one clear error
        raise AculaError(f"{path}: not a readable resume state ({type(e).__name__})") from None


def records_digest(records: list[Recording]) -> str:
    """sha256 over the training recordings' ids, in order (a resume must see the same data; the
    folder it lives in may move)."""
    import hashlib

    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.id}\n".encode("utf-8"))
    return h.hexdigest()


def _build_encoder(cfg: TrainConfig):
    from acula_edge.checkpoint import load_checkpoint
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models import create_encoder

    if cfg.init:
        encoder, meta = load_checkpoint(cfg.init)
        return encoder, FrontendConfig.from_dict(meta["frontend"]), set(meta.get("trained_subjects_sha256", ()))
    return create_encoder(cfg.encoder), FrontendConfig(), set()


def train(cfg: TrainConfig, records: list[Recording], out: str | os.PathLike, resume: bool = False,
          device: str | None = None, threads: int | None = None, progress_bar: bool = True) -> dict[str, Any]:
    """Run (or resume) a training run into folder ``out``; returns the result (also ``out/result.json``)."""
    from acula_edge.checkpoint import save_checkpoint, subject_hash
    from acula_edge.frontend import LogMel
    from acula_edge.progress import progress

    out = Path(out)
    d = init_distributed(device)
    if threads is not None:
        if threads < 1:
            raise AculaError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    state_path = out / RESUME_NAME
    state = None
    if state_path.exists():
        if not resume:
            raise AculaError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
        state = load_resume(state_path)
        saved = json.loads(state["config"])
        if state.get("records_sha256") != records_digest(records):
            raise AculaError(f"--resume with other training recordings than the run in {out} was started on")
        now = cfg.to_dict()
        diff = sorted(k for k in set(saved) | set(now) if k not in RESUME_FREE and saved.get(k) != now.get(k))
        if diff:
            raise AculaError(f"--resume with different settings than the run in {out}: {', '.join(diff)}")
    if cfg.batch_size % d.world:
        raise AculaError(f"batch_size {cfg.batch_size} does not split over {d.world} processes")
    local_b = cfg.batch_size // d.world
    per_epoch = len(records) // cfg.batch_size // cfg.accum
    if per_epoch < 1:
        raise AculaError(f"{len(records)} recordings do not fill one optimizer step of "
                         f"{cfg.batch_size} x {cfg.accum} clips: lower --batch-size or --accum")

    torch.manual_seed(cfg.seed)
    encoder, fe, prior_subjects = _build_encoder(cfg)
    teacher, texts, vectors = text_side(cfg, records, d) if cfg.align else (None, None, None)
    width = teacher.width if teacher else (vectors.shape[1] if vectors is not None else None)
    model = AlignModel(encoder, cfg, width, d).to(d.device)
    logmel = LogMel(fe).to(d.device)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    total = cfg.epochs * per_epoch if cfg.max_steps is None else min(cfg.max_steps, cfg.epochs * per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_schedule(min(cfg.warmup_steps, total), total))
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step = int(state["step"])
    ddp = model
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    clips = ClipSet(records, fe.sample_rate, fe.num_samples(encoder.input_frames), encoder.n_mels,
                    encoder.input_frames, cfg.augment, cfg.seed)
    subjects = subjects_of(records)
    trained = sorted(prior_subjects | {subject_hash(s) for s in subjects})
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if (d.device.type == "cuda" and cfg.bf16) \
        else contextlib.nullcontext()

    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(
            {"training": cfg.to_dict(), "encoder": encoder.config.to_dict(), "frontend": fe.to_dict(),
             "text_teacher": teacher_info(cfg, teacher), "recordings": len(records),
             "subjects": len(subjects), "world_size": d.world, "device": str(d.device),
             "steps": total, "steps_per_epoch": per_epoch}, indent=2) + "\n")
        _trim_metrics(out / METRICS_NAME, step)

    def save_state() -> None:
        if d.main:
            _save_resume(state_path, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                      "scheduler": sched.state_dict(), "step": step,
                                      "config": json.dumps(cfg.to_dict()), "subjects_sha256": trained,
                                      "records_sha256": records_digest(records)})
        d.barrier()

    t_start = time.perf_counter()
    clips_done = 0
    model.train()
    steps_bar = progress(range(step, total), total=total - step, desc=cfg.mode, enabled=progress_bar and d.main)
    bar = iter(steps_bar)
    while step < total:
        epoch, in_epoch = divmod(step, per_epoch)
        batches = micro_batches(len(records), cfg.batch_size, epoch, cfg.seed)
        todo = batches[in_epoch * cfg.accum: per_epoch * cfg.accum]
        todo = todo[: (total - step) * cfg.accum]
        loader = _loader(clips, [[(epoch, int(i)) for i in b[d.rank * local_b:(d.rank + 1) * local_b]] for b in todo],
                         cfg.workers)
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        for k, batch in enumerate(loader):
            if "error" in batch:  # a recording that cannot be read (from a loader worker, too)
                raise AculaError(batch["error"])
            micro = k % cfg.accum
            torch.manual_seed(step_seed(cfg.seed, step, micro, d.rank))
            wave = torch.from_numpy(batch["wave"]).to(d.device)
            with torch.no_grad():
                x = logmel(wave)
            mask = torch.from_numpy(batch["mask"]).to(d.device) if cfg.align else None
            text = None
            if cfg.align:
                idx = batch["index"]
                v = vectors[idx] if vectors is not None else teacher.embed([texts[i] for i in idx])
                text = torch.from_numpy(np.ascontiguousarray(v)).to(d.device)
            gens = [torch.Generator().manual_seed(int(s)) for s in batch["seed"]]
            last = micro == cfg.accum - 1
            sync = contextlib.nullcontext() if (last or d.world == 1) else ddp.no_sync()
            with sync:
                with autocast:
                    loss, parts = ddp(x, mask, text, gens)
                (loss / cfg.accum).backward()
            for name, v in {"loss": float(loss.detach()), **parts}.items():
                sums[name] = sums.get(name, 0.0) + v / cfg.accum
            if not last:
                continue
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip if cfg.clip > 0 else float("inf"))
            if not torch.isfinite(grad_norm):
                raise AculaError(f"step {step}: the loss or gradients became non-finite (lower --lr?)")
            opt.step()
            if isinstance(getattr(model, "align_loss", None), InfoNCELoss):
                model.align_loss.clamp_logit_scale_()
            opt.zero_grad(set_to_none=True)
            lr = sched.get_last_lr()[0]
            sched.step()
            step += 1
            next(bar, None)
            dt = time.perf_counter() - t0
            clips_done += cfg.batch_size * cfg.accum
            sums = _mean_over_ranks(sums, d)
            if d.main:
                line = {"step": step, "epoch": epoch + (in_epoch + 1) / per_epoch, "lr": lr,
                        **{k: round(v, 6) for k, v in sums.items()}, "grad_norm": round(float(grad_norm), 4),
                        "clips_per_s": round(cfg.batch_size * cfg.accum / dt, 2), "seconds": round(dt, 4)}
                with open(out / METRICS_NAME, "a", encoding="utf-8") as f:
                    f.write(json.dumps(line) + "\n")
            in_epoch += 1
            sums = {}
            if step % cfg.save_every == 0 or in_epoch == per_epoch or step == total:
                save_state()
            t0 = time.perf_counter()  # a step's time covers its data and compute, not the saving
    for _ in bar:  # close the bar
        pass
    seconds = time.perf_counter() - t_start
    result = {"steps": step, "epochs": round(step / per_epoch, 3), "seconds": round(seconds, 2),
              "clips_per_s": round(clips_done / seconds, 2) if clips_done else None,
              "world_size": d.world, "device": str(d.device), "recordings": len(records), "subjects": len(subjects)}
    if d.device.type == "cuda":
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(d.device) / 2**30, 3)
    if d.main:
        modules = {"audio_proj": model.audio_proj, "text_proj": model.text_proj} if cfg.align else None
        extra = {"text_teacher": teacher_info(cfg, teacher),
                 "projections": {"audio": model.audio_proj.config(), "text": model.text_proj.config()} if cfg.align else None}
        if isinstance(getattr(model, "align_loss", None), InfoNCELoss):
            extra["logit_scale"] = float(model.align_loss.scale().detach())
        save_checkpoint(out / ENCODER_NAME, encoder, fe.to_dict(), {**cfg.to_dict(), "steps": step},
                        subjects=subjects, extra={**extra, "trained_subjects_count": len(subjects)},
                        modules=modules, subject_hashes=prior_subjects)
        tail = list(read_jsonl(out / METRICS_NAME, "metrics log", tolerate_cut_tail=True))[-1:] if (out / METRICS_NAME).exists() else []
        result["final"] = tail[0][1] if tail else None
        atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    d.barrier()
    return result


def _mean_over_ranks(values: dict[str, float], d: Dist) -> dict[str, float]:
    """Each value averaged over the processes (one all-reduce, on the process group's device)."""
    if d.world == 1:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(values, t.tolist())}


def _loader(clips: ClipSet, keys: list[list[tuple[int, int]]], workers: int):
    """Batches of the given keys in order; ``workers`` processes decode ahead when > 0."""
    if workers == 0:
        return (collate([clips[k] for k in b]) for b in keys)
    from torch.utils.data import DataLoader

    return DataLoader(clips, batch_sampler=keys, num_workers=workers, collate_fn=collate, persistent_workers=False)


def _trim_metrics(path: Path, step: int) -> None:
    """Keep the metrics of steps up to ``step`` (a resumed run rewrites what came after its state)."""
    if not path.exists():
        return
    keep = [json.dumps(o) for _, o in read_jsonl(path, "metrics log", tolerate_cut_tail=True) if o.get("step", 0) <= step]
    atomic_write_text(path, "".join(k + "\n" for k in keep))


__all__ = ["PRESETS", "AlignModel", "TrainConfig", "init_distributed", "preset_config", "train"]
