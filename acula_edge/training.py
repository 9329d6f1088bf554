"""The training loop every stage shares: ``torchrun`` DDP, accumulation, AdamW with warm-up and
linear decay, clipping, bf16 autocast on CUDA, exact resume, a JSONL metrics log and progress.

A stage (alignment, distillation) describes itself as a :class:`Job`: its model (whose ``forward``
returns ``(loss, {term: value})``), a map-style dataset keyed by ``(epoch, index)``, how a batch
becomes the model's inputs, and what to write at the end. :func:`run` does the rest.

- **Batches.** ``batch_size`` is the global micro-batch: under ``torchrun`` each of W processes
  takes ``batch_size / W`` items of it; models gather what their loss compares across the batch
  (:func:`gather`, with gradients) and DDP averages gradients. The same command therefore trains
  the same model on 1 or W processes (up to float summation order), except for what each process
  draws or measures alone: dropout masks and BatchNorm statistics. ``accum`` micro-batches make
  one optimizer step.
- **Randomness.** Items draw from their own seed (run seed, epoch, index); dropout is seeded per
  micro-step (run seed, step, micro-step, rank). With the step counter saved, resuming replays
  exactly what the uninterrupted run would have done (on CPU; CUDA kernels are not bitwise
  deterministic).
- **State.** ``OUT/resume.pt`` (model, optimizer, scheduler, step, config, a digest of the data;
  tensors and plain values only, read with ``weights_only=True``) is written atomically every
  ``save_every`` optimizer steps and at the end of each epoch.
- **Logs.** ``OUT/metrics.jsonl`` (a line per optimizer step), ``OUT/config.json``,
  ``OUT/result.json``, and a progress bar.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from acula_edge.config import to_dict
from acula_edge.data.records import atomic_write, atomic_write_text, read_jsonl
from acula_edge.errors import AculaError

RESUME_NAME = "resume.pt"
METRICS_NAME = "metrics.jsonl"
# Settings a resumed run may change: they do not change what is computed.
RESUME_FREE = ("save_every", "workers", "text_cache")


@dataclass(frozen=True)
class LoopConfig:
    """The loop's settings; every stage's config extends it."""

    epochs: int = 10
    max_steps: int | None = None  # stop (and end the schedule) after this many optimizer steps
    batch_size: int = 16  # global micro-batch, split over processes
    accum: int = 1
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 10
    clip: float = 1.0  # gradient-norm clip (0: off)
    seed: int = 0
    save_every: int = 50
    workers: int = 0
    bf16: bool = True  # autocast to bf16 on CUDA (CPU stays fp32)

    def loop_problems(self) -> list[str]:
        """What is wrong with the loop settings (empty when valid)."""
        problems = [f"{k} must be >= 1" for k in ("epochs", "batch_size", "accum", "save_every") if getattr(self, k) < 1]
        if self.max_steps is not None and self.max_steps < 1:
            problems.append("max_steps must be >= 1")
        if self.lr <= 0 or self.weight_decay < 0 or self.warmup_steps < 0 or self.clip < 0 or self.workers < 0:
            problems.append("lr > 0, weight_decay, warmup_steps, clip and workers >= 0")
        return problems


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


def clip_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one clip of one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(2, np.uint64)[0] >> np.uint64(1))


def micro_batches(n: int, batch: int, epoch: int, seed: int) -> list[np.ndarray]:
    """An epoch's micro-batches of record indices: a seeded permutation cut into full batches."""
    if n < batch:
        raise AculaError(f"{n} training recordings are fewer than one batch of {batch}: lower --batch-size")
    perm = np.random.default_rng([seed, epoch, 7]).permutation(n)
    return [perm[k * batch:(k + 1) * batch] for k in range(n // batch)]


def step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, step, micro, rank, 1]).generate_state(1)[0])


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


def data_digest(ids: Sequence[str]) -> str:
    """sha256 over the training items' ids, in order (a resume must see the same data; the folder it
    lives in may move)."""
    h = hashlib.sha256()
    for i in ids:
        h.update(f"{i}\n".encode("utf-8"))
    return h.hexdigest()


def _mean_over_ranks(values: dict[str, float], d: Dist) -> dict[str, float]:
    """Each value averaged over the processes (one all-reduce, on the process group's device)."""
    if d.world == 1:
        return values
    t = torch.tensor(list(values.values()), dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return {k: float(v) / d.world for k, v in zip(values, t.tolist())}


def _loader(dataset: Any, collate: Callable, keys: list[list[tuple[int, int]]], workers: int):
    """Batches of the given keys in order; ``workers`` processes decode ahead when > 0."""
    if workers == 0:
        return (collate([dataset[k] for k in b]) for b in keys)
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_sampler=keys, num_workers=workers, collate_fn=collate, persistent_workers=False)


def _trim_metrics(path: Path, step: int) -> None:
    """Keep the metrics of steps up to ``step`` (a resumed run rewrites what came after its state)."""
    if not path.exists():
        return
    keep = [json.dumps(o) for _, o in read_jsonl(path, "metrics log", tolerate_cut_tail=True) if o.get("step", 0) <= step]
    atomic_write_text(path, "".join(k + "\n" for k in keep))




# --------------------------------------------------------------------------------------------
# the loop


class Job:
    """What a stage gives :func:`run`. Subclasses set the attributes and may override the hooks.

    ``cfg``: a config dataclass (see :mod:`acula_edge.config`) with the loop's fields (``epochs``, ``max_steps``,
    ``batch_size``, ``accum``, ``lr``, ``weight_decay``, ``warmup_steps``, ``clip``, ``seed``,
    ``save_every``, ``workers``, ``bf16``). ``model``: ``forward(*inputs) -> (loss, parts)``.
    ``dataset[(epoch, index)]`` gives an item dict, or ``{"error": message}`` for unreadable data;
    ``collate`` stacks items. ``ids``: one id per index (the data digest). ``unit``: what an item
    is, for messages and logs (``clips``, ``windows``). ``stage``: the command that runs the job,
    recorded in ``config.json`` so that ``--config`` takes only its own stage's runs.
    """

    name = "train"
    stage = "train"
    unit = "clips"
    cfg: Any
    model: nn.Module
    dataset: Any
    collate: Callable[[list[dict[str, Any]]], dict[str, Any]]
    ids: Sequence[str]

    def inputs(self, batch: dict[str, Any], d: Dist) -> tuple:
        """The model's forward arguments for one micro-batch, on ``d.device``."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Called after each optimizer step (e.g. to clamp a learned temperature)."""

    def describe(self) -> dict[str, Any]:
        """What ``config.json`` records beside the training settings."""
        return {}

    def finish(self, out: Path, step: int) -> dict[str, Any]:
        """Write the stage's outputs (on the main process); extra fields for ``result.json``."""
        return {}

    def state_extra(self) -> dict[str, Any]:
        """Plain values stored in the resume state beside the loop's."""
        return {}


@contextlib.contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """One training at a time in run folder ``out`` (held by the main process of a distributed job): a
    ``--resume`` started while the run still lives is one error line instead of two runs interleaving."""
    from acula_edge.stages import locked

    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    with locked(Path(out) / ".training", "training"):
        yield


def prepare(out: Path, resume: bool, cfg: Any, ids: Sequence[str], device: str | None = None,
            threads: int | None = None) -> tuple[Dist, dict[str, Any] | None]:
    """Join the job, set threads, and read (and check) the resume state, before anything heavy loads
    (inside :func:`run_lock`)."""
    if threads is not None:
        if threads < 1:
            raise AculaError(f"--threads must be >= 1, got {threads}")
    d = init_distributed(device)
    if threads is not None:
        torch.set_num_threads(threads)
    return d, _resume_state(out, resume, cfg, ids)


def _resume_state(out: Path, resume: bool, cfg: Any, ids: Sequence[str]) -> dict[str, Any] | None:
    """The checked resume state of the run in ``out``, or None for a new run."""
    state_path = out / RESUME_NAME
    if not state_path.exists():
        return None
    if not resume:
        raise AculaError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    state = load_resume(state_path)
    if state.get("records_sha256") != data_digest(ids):
        raise AculaError(f"--resume with other training data than the run in {out} was started on")
    saved, now = json.loads(state["config"]), to_dict(cfg)
    diff = sorted(k for k in set(saved) | set(now) if k not in RESUME_FREE and saved.get(k) != now.get(k))
    if diff:
        raise AculaError(f"--resume with different settings than the run in {out}: {', '.join(diff)}")
    return state


def steps_per_epoch(n: int, cfg: Any, unit: str = "clips") -> int:
    """Optimizer steps in one pass over ``n`` items; fewer than one is an error."""
    per_epoch = n // cfg.batch_size // cfg.accum
    if per_epoch < 1:
        raise AculaError(f"{n} {unit} do not fill one optimizer step of {cfg.batch_size} x {cfg.accum}: "
                         "lower --batch-size or --accum")
    return per_epoch


def run(job: Job, out: Path, d: Dist, state: dict[str, Any] | None, progress_bar: bool = True) -> dict[str, Any]:
    """Train ``job`` into ``out`` (from ``state`` when resuming); returns the result (also ``out/result.json``)."""
    from acula_edge.progress import progress

    cfg, model = job.cfg, job.model
    if cfg.batch_size % d.world:
        raise AculaError(f"batch_size {cfg.batch_size} does not split over {d.world} processes")
    local_b = cfg.batch_size // d.world
    n = len(job.ids)
    per_epoch = steps_per_epoch(n, cfg, job.unit)
    model.to(d.device)
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
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if (d.device.type == "cuda" and cfg.bf16) \
        else contextlib.nullcontext()
    digest = data_digest(job.ids)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(
            {"stage": job.stage, "training": to_dict(cfg), **job.describe(), job.unit: n, "world_size": d.world,
             "device": str(d.device), "steps": total, "steps_per_epoch": per_epoch}, indent=2) + "\n")
        _trim_metrics(out / METRICS_NAME, step)

    def save_state() -> None:
        if d.main:
            _save_resume(out / RESUME_NAME, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                             "scheduler": sched.state_dict(), "step": step,
                                             "config": json.dumps(to_dict(cfg)), "records_sha256": digest,
                                             **job.state_extra()})
        d.barrier()

    t_start = time.perf_counter()
    done = 0
    model.train()
    bar = iter(progress(range(step, total), total=total - step, desc=job.name, enabled=progress_bar and d.main))
    while step < total:
        epoch, in_epoch = divmod(step, per_epoch)
        batches = micro_batches(n, cfg.batch_size, epoch, cfg.seed)
        todo = batches[in_epoch * cfg.accum: per_epoch * cfg.accum][: (total - step) * cfg.accum]
        keys = [[(epoch, int(i)) for i in b[d.rank * local_b:(d.rank + 1) * local_b]] for b in todo]
        t0 = time.perf_counter()
        sums: dict[str, float] = {}
        for k, batch in enumerate(_loader(job.dataset, job.collate, keys, cfg.workers)):
            if "error" in batch:  # unreadable data (from a loader worker, too)
                raise AculaError(batch["error"])
            micro = k % cfg.accum
            torch.manual_seed(step_seed(cfg.seed, step, micro, d.rank))
            inputs = job.inputs(batch, d)
            last = micro == cfg.accum - 1
            sync = contextlib.nullcontext() if (last or d.world == 1) else ddp.no_sync()
            with sync:
                with autocast:
                    loss, parts = ddp(*inputs)
                (loss / cfg.accum).backward()
            for name, v in {"loss": float(loss.detach()), **parts}.items():
                sums[name] = sums.get(name, 0.0) + v / cfg.accum
            if not last:
                continue
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip if cfg.clip > 0 else float("inf"))
            if not torch.isfinite(grad_norm):
                raise AculaError(f"step {step}: the loss or gradients became non-finite (lower --lr?)")
            opt.step()
            job.after_step()
            opt.zero_grad(set_to_none=True)
            lr = sched.get_last_lr()[0]
            sched.step()
            step += 1
            next(bar, None)
            dt = time.perf_counter() - t0
            done += cfg.batch_size * cfg.accum
            sums = _mean_over_ranks(sums, d)
            if d.main:
                line = {"step": step, "epoch": epoch + (in_epoch + 1) / per_epoch, "lr": lr,
                        **{k: round(v, 6) for k, v in sums.items()}, "grad_norm": round(float(grad_norm), 4),
                        f"{job.unit}_per_s": round(cfg.batch_size * cfg.accum / dt, 2), "seconds": round(dt, 4)}
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
              f"{job.unit}_per_s": round(done / seconds, 2) if done else None,
              "world_size": d.world, "device": str(d.device), job.unit: n}
    if d.device.type == "cuda":
        result["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(d.device) / 2**30, 3)
    if d.main:
        result.update(job.finish(out, step))
        log = out / METRICS_NAME
        tail = list(read_jsonl(log, "metrics log", tolerate_cut_tail=True))[-1:] if log.exists() else []
        result["final"] = tail[0][1] if tail else None
        atomic_write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    d.barrier()
    return result


__all__ = ["Dist", "Job", "LoopConfig", "clip_seed", "gather", "init_distributed", "load_resume", "micro_batches", "param_groups", "prepare", "run",
           "steps_per_epoch"]
