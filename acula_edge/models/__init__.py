"""Audio encoders: a registry of presets and the interface every encoder shares.

An encoder sees a fixed chunk of normalised log-mel (``n_mels`` x ``input_frames``, 64 x 256 for the
published sizes: 8.18 s at 16 kHz with hop 512). The base class :class:`AudioEncoder` owns
everything that does not depend on the architecture, once:

- :meth:`~AudioEncoder.normalize`: per-clip min-max scaling of the dB log-mel to [0, 1] (OPERA);
- :meth:`~AudioEncoder.chunk`: long recordings cut into fixed chunks (rule in :func:`num_chunks`);
- :meth:`~AudioEncoder.features`: normalise, chunk, encode, average the chunk features per input;
- :meth:`~AudioEncoder.msm_loss`: checks and normalises, then the architecture's masked
  spectrogram modelling loss;
- :meth:`~AudioEncoder.crop`: a random fixed-size crop per clip, for MSM pretraining.

An architecture subclasses it with a config dataclass (``config_class``, a subclass of
:class:`EncoderConfig`) and implements ``encode_chunks`` and ``_msm_loss``. Presets are factories
registered by name with :func:`register_encoder`; :func:`create_encoder` builds one, with
overrides. ``encoder.config.to_dict()`` carries the architecture and the preset name, so
:func:`encoder_from_config` rebuilds the same network from a checkpoint's JSON sidecar.

Importing this package needs torch and numpy only.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from acula_edge.errors import AculaError
from acula_edge.registry import Registry

__all__ = [
    "AudioEncoder",
    "EncoderConfig",
    "chunk_frames",
    "count_macs",
    "create_encoder",
    "encoder_from_config",
    "list_encoders",
    "minmax_normalize",
    "num_chunks",
    "register_encoder",
]


# --------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class EncoderConfig:
    """What every encoder config holds; architectures add their own fields.

    ``name`` is the preset it came from (kept for provenance); the architecture (``arch``, a class
    attribute of the config class) is what :func:`encoder_from_config` rebuilds from, so overridden
    fields survive a checkpoint round trip.
    """

    arch: ClassVar[str] = ""

    name: str = ""
    n_mels: int = 64
    input_frames: int = 256
    embed_dim: int = 384
    mask_ratio: float = 0.7

    def __post_init__(self) -> None:
        problems = []
        if self.n_mels <= 0 or self.input_frames <= 0 or self.embed_dim <= 0:
            problems.append("n_mels, input_frames and embed_dim must be positive")
        if not 0.0 < self.mask_ratio < 1.0:
            problems.append(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        problems += self.check()
        if problems:
            raise AculaError(f"bad {self.arch or 'encoder'} config: " + "; ".join(problems))

    def check(self) -> list[str]:
        """Architecture-specific problems (empty when valid); overridden by subclasses."""
        return []

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, with ``arch`` so that :func:`encoder_from_config` can rebuild it."""
        return {"arch": self.arch, **_jsonable(dataclasses.asdict(self))}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderConfig:
        """Inverse of :meth:`to_dict` (lists from JSON become tuples); rejects unknown keys."""
        d = dict(d)
        arch = d.pop("arch", cls.arch)
        if arch != cls.arch:
            raise AculaError(f"config is for encoder architecture {arch!r}, not {cls.arch!r}")
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise AculaError(f"unknown {cls.arch} encoder config keys: {sorted(unknown)} "
                             f"(known: {sorted(names)})")
        return cls(**{k: _tupled(v) for k, v in d.items()})

    def replace(self, **overrides: Any) -> EncoderConfig:
        """A copy with some fields changed; unknown names raise :class:`AculaError`."""
        names = {f.name for f in fields(self)}
        unknown = set(overrides) - names
        if unknown:
            raise AculaError(f"unknown {self.arch} encoder option(s) {sorted(unknown)}; "
                             f"known: {sorted(names)}")
        return dataclasses.replace(self, **{k: _tupled(v) for k, v in overrides.items()})


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def _tupled(v: Any) -> Any:
    return tuple(_tupled(x) for x in v) if isinstance(v, (list, tuple)) else v


def minmax_normalize(x: torch.Tensor) -> torch.Tensor:
    """Per-clip min-max scaling of ``[B, n_mels, frames]`` to [0, 1] (a constant clip becomes zeros);
    plain reductions only, so that it exports to ONNX and TFLite."""
    b = x.shape[0]
    flat = x.reshape(b, -1)
    lo = flat.amin(dim=1).view(b, 1, 1)
    hi = flat.amax(dim=1).view(b, 1, 1)
    return (x - lo) / (hi - lo).clamp_min(1e-8)


# --------------------------------------------------------------------------------------------
# Chunking rule


def num_chunks(n_frames: int, chunk_frames: int) -> int:
    """How many fixed chunks a recording of ``n_frames`` frames gives.

    Whole chunks, plus the last partial one when it holds at least half a chunk; a partial chunk
    shorter than that is dropped, unless it is the only one (a short recording is one padded chunk).
    """
    if n_frames <= 0:
        raise AculaError("an empty log-mel (0 frames) cannot be encoded")
    full, rem = divmod(n_frames, chunk_frames)
    n = full + (1 if 2 * rem >= chunk_frames else 0)
    return max(n, 1)


def count_macs(fn, *inputs: torch.Tensor) -> int:
    """Multiply-accumulates of ``fn(*inputs)`` (convolutions and matrix products, as torch's flop
    counter sees them), in eval mode and without gradients when ``fn`` is a module."""
    from torch.utils.flop_counter import FlopCounterMode

    was = getattr(fn, "training", None)
    if was is not None:
        fn.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            fn(*inputs)
    finally:
        if was:
            fn.train()
    return counter.get_total_flops() // 2


def chunk_frames(x: torch.Tensor, lengths: list[int], frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(chunks [N, n_mels, frames], owner [N])`` of clips ``x [B, n_mels, T]`` with ``lengths`` valid
    frames each, by the :func:`num_chunks` rule; a partial chunk is padded with its clip's minimum."""
    pieces, owner = [], []
    for i, n in enumerate(lengths):
        clip = x[i, :, :n]
        k = num_chunks(n, frames)
        need = k * frames
        if need > n:
            clip = torch.cat([clip, clip.amin().expand(clip.shape[0], need - n)], dim=1)
        else:
            clip = clip[:, :need]
        pieces.append(clip.reshape(clip.shape[0], k, frames).transpose(0, 1))
        owner += [i] * k
    return torch.cat(pieces), torch.tensor(owner, dtype=torch.long, device=x.device)


def pooled_chunks(blocks: Callable[[], Iterable[torch.Tensor]], frames: int,
                  encode: Callable[[torch.Tensor], torch.Tensor], scale: bool, max_chunks: int = 64) -> torch.Tensor:
    """``[1, K]``: the mean of ``encode(chunks [n, n_mels, frames])`` over one clip's chunks, the clip's
    log-mel given as consecutive blocks ``[n_mels, t]`` (each call of ``blocks()`` starts them anew).

    The same as :func:`chunk_frames` and a mean over the whole clip (min-max scaled over all its frames
    first with ``scale``, as :func:`minmax_normalize`), but ``max_chunks`` chunks at a time, so memory
    is bounded by a batch of chunks, not by the clip. The blocks are read twice: the clip's range first.
    """
    lo, hi, n = torch.tensor(float("inf")), torch.tensor(float("-inf")), 0
    for b in blocks():
        if b.shape[1]:
            lo, hi, n = torch.minimum(lo, b.amin()), torch.maximum(hi, b.amax()), n + b.shape[1]
    need = num_chunks(n, frames) * frames  # an empty clip: one clear error
    span = (hi - lo).clamp_min(1e-8)
    total, done, pending, step = None, 0, None, max_chunks * frames

    def run(x: torch.Tensor) -> None:
        nonlocal total
        z = encode(x.reshape(x.shape[0], -1, frames).transpose(0, 1)).sum(0, keepdim=True)
        total = z if total is None else total + z

    for b in blocks():
        b = (b - lo) / span if scale else b
        pending = b if pending is None else torch.cat([pending, b], dim=1)
        pending = pending[:, :need - done]  # frames past the last chunk are not used
        while pending.shape[1] >= step:
            run(pending[:, :step])
            done, pending = done + step, pending[:, step:]
    if done + pending.shape[1] < need:  # the last chunk padded with the clip's minimum (0 once scaled)
        pad = torch.zeros((), dtype=pending.dtype) if scale else lo
        pending = torch.cat([pending, pad.expand(pending.shape[0], need - done - pending.shape[1])], dim=1)
    if pending.shape[1]:
        run(pending)
    return total / (need // frames)


# --------------------------------------------------------------------------------------------
# Base class


class AudioEncoder(nn.Module):
    """Common interface: ``features(logmel [B, n_mels, frames]) -> [B, embed_dim]`` and ``msm_loss``.

    Input log-mels are in dB (as :class:`acula_edge.frontend.LogMel` makes them). Normalisation is
    idempotent (a clip already in [0, 1] with min 0 and max 1 is unchanged), so callers may also pass
    normalised or augmented spectrograms.
    """

    config_class: ClassVar[type[EncoderConfig]] = EncoderConfig
    #: Parameter-name prefixes of the parts used only by masked spectrogram modelling.
    msm_only_prefixes: ClassVar[tuple[str, ...]] = ()
    _archs: ClassVar[dict[str, type[AudioEncoder]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        arch = cls.config_class.arch
        if arch:
            AudioEncoder._archs[arch] = cls

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise AculaError(f"{type(self).__name__} needs a {self.config_class.__name__}, "
                             f"got {type(config).__name__}")
        self.config = config

    # ---- sizes

    @property
    def embed_dim(self) -> int:
        """Width ``D`` of :meth:`features` and :meth:`encode_chunks`."""
        return self.config.embed_dim

    @property
    def n_mels(self) -> int:
        return self.config.n_mels

    @property
    def input_frames(self) -> int:
        """Frames in one chunk, the fixed input the network sees."""
        return self.config.input_frames

    def num_parameters(self, part: str = "all") -> int:
        """Parameter count: ``"all"``, ``"encoder"`` (what :meth:`features` uses) or ``"msm"``."""
        if part not in ("all", "encoder", "msm"):
            raise AculaError(f"part must be 'all', 'encoder' or 'msm', got {part!r}")
        total = 0
        for name, p in self.named_parameters():
            msm = name.startswith(self.msm_only_prefixes) if self.msm_only_prefixes else False
            if part == "all" or (part == "msm") == msm:
                total += p.numel()
        return total

    # ---- input handling, once for every architecture

    def _check(self, logmel: torch.Tensor, what: str = "log-mel") -> torch.Tensor:
        if not isinstance(logmel, torch.Tensor):
            logmel = torch.as_tensor(logmel, dtype=torch.float32)
        if logmel.dim() == 2:
            logmel = logmel.unsqueeze(0)
        if logmel.dim() != 3 or logmel.shape[1] != self.n_mels:
            raise AculaError(f"{what} must be [batch, {self.n_mels} mels, frames], got {tuple(logmel.shape)}")
        if logmel.shape[-1] == 0:
            raise AculaError(f"{what} has 0 frames")
        return logmel

    def _lengths(self, logmel: torch.Tensor, lengths: Any) -> list[int]:
        b, _, t = logmel.shape
        if lengths is None:
            return [t] * b
        out = [int(n) for n in (lengths.tolist() if isinstance(lengths, torch.Tensor) else lengths)]
        if len(out) != b or any(n <= 0 or n > t for n in out):
            raise AculaError(f"lengths must give 1..{t} valid frames for each of the {b} clips, got {out}")
        return out

    def normalize(self, logmel: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        """Per-clip min-max scaling of a dB log-mel to [0, 1] (OPERA's).

        Minimum and maximum are taken over all mels and the clip's valid frames (``lengths``,
        default all). A constant clip becomes zeros. Frames past a clip's length are set to 0.
        """
        x = self._check(logmel)
        b, _, t = x.shape
        if lengths is None:
            return minmax_normalize(x)
        ns = self._lengths(x, lengths)
        valid = torch.arange(t, device=x.device)[None, :] < torch.tensor(ns, device=x.device)[:, None]
        valid = valid[:, None, :]
        big = torch.finfo(x.dtype).max
        lo = torch.where(valid, x, torch.full_like(x, big)).reshape(b, -1).amin(dim=1).view(b, 1, 1)
        hi = torch.where(valid, x, torch.full_like(x, -big)).reshape(b, -1).amax(dim=1).view(b, 1, 1)
        y = (x - lo) / (hi - lo).clamp_min(1e-8)
        return torch.where(valid, y, torch.zeros_like(y))

    def chunk(self, logmel: torch.Tensor, lengths: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Cut clips into fixed chunks: ``(chunks [N, n_mels, input_frames], owner [N])``.

        ``owner[i]`` is the clip chunk ``i`` came from. Per clip, :func:`num_chunks` decides how many:
        whole chunks, the last partial one kept when it is at least half a chunk, else dropped unless
        it is the only one. A kept partial chunk (or a short clip) is padded at the end with the
        clip's minimum value (0 after :meth:`normalize`).
        """
        x = self._check(logmel)
        return chunk_frames(x, self._lengths(x, lengths), self.input_frames)

    def crop(self, logmel: torch.Tensor, lengths: Any = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """One random ``input_frames`` window per clip (padded with its minimum when shorter).

        For MSM pretraining on recordings of any length; the start is drawn with ``generator``
        (a CPU generator) so crops are reproducible.
        """
        x = self._check(logmel)
        ns = self._lengths(x, lengths)
        f = self.input_frames
        out = []
        for i, n in enumerate(ns):
            clip = x[i, :, :n]
            if n < f:
                clip = torch.cat([clip, clip.amin().expand(clip.shape[0], f - n)], dim=1)
            elif n > f:
                s = int(torch.randint(0, n - f + 1, (1,), generator=generator))
                clip = clip[:, s:s + f]
            out.append(clip)
        return torch.stack(out)

    # ---- the generic paths

    def features(self, logmel: torch.Tensor, lengths: Any = None, max_chunks: int | None = None) -> torch.Tensor:
        """Embeddings ``[B, embed_dim]``: normalise, chunk, encode, average each clip's chunks.

        ``lengths`` gives each clip's valid frames when a batch is padded; ``max_chunks`` bounds how
        many chunks go through the network at once (memory). Train/eval mode and gradients are the
        caller's choice.
        """
        x = self.normalize(logmel, lengths)
        chunks, owner = self.chunk(x, lengths)
        if max_chunks and chunks.shape[0] > max_chunks:
            z = torch.cat([self.encode_chunks(c) for c in chunks.split(max_chunks)])
        else:
            z = self.encode_chunks(chunks)
        b = x.shape[0]
        total = torch.zeros(b, z.shape[1], dtype=z.dtype, device=z.device).index_add(0, owner, z)
        counts = torch.bincount(owner, minlength=b).to(z.dtype).unsqueeze(1)
        return total / counts

    def stream_features(self, blocks: Callable[[], Iterable[torch.Tensor]], max_chunks: int = 64) -> torch.Tensor:
        """:meth:`features` ``[1, embed_dim]`` of one clip given as log-mel blocks (:func:`pooled_chunks`)."""
        return pooled_chunks(blocks, self.input_frames, self.encode_chunks, True, max_chunks)

    def forward(self, logmel: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        """Same as :meth:`features`."""
        return self.features(logmel, lengths)

    def encode_chunks(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised chunks ``[N, n_mels, input_frames]`` to features ``[N, embed_dim]``."""
        raise NotImplementedError

    def msm_loss(self, logmel: torch.Tensor, mask_ratio: float | None = None,
                 generator: Generators = None) -> tuple[torch.Tensor, dict[str, Any]]:
        """Masked spectrogram modelling on one chunk per clip, ``[B, n_mels, input_frames]``.

        The clip is normalised, a ``mask_ratio`` share of it (default: the config's) hidden, and the
        network reconstructs it; the loss is the MSE on the masked part only. ``generator`` (on the
        input's device, or one CPU generator per clip: see :func:`random_keep`) makes the mask
        reproducible. Returns ``(loss, info)``; ``info`` holds at least
        ``mask_ratio``, the share actually masked, and ``mask`` (1 = masked).
        """
        x = self._check(logmel)
        if x.shape[-1] != self.input_frames:
            raise AculaError(f"msm_loss takes chunks of exactly {self.input_frames} frames, got "
                             f"{x.shape[-1]} (use encoder.crop() for longer or shorter clips)")
        ratio = self.config.mask_ratio if mask_ratio is None else float(mask_ratio)
        if not 0.0 < ratio < 1.0:
            raise AculaError(f"mask_ratio must be in (0, 1), got {ratio}")
        return self._msm_loss(self.normalize(x), ratio, generator)

    def _msm_loss(self, x: torch.Tensor, mask_ratio: float,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, Any]]:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.config.name!r}, embed_dim={self.embed_dim}, chunk={self.n_mels}x{self.input_frames}"


Generators = torch.Generator | Sequence[torch.Generator] | None


def random_keep(n: int, length: int, ratio: float, device: torch.device,
                generator: Generators = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """MAE-style per-sample random masking of ``length`` positions.

    ``generator`` is one generator on ``device`` for the whole batch, or a sequence of ``n`` CPU
    generators, one per sample (a sample's mask then depends only on its own generator, whatever
    batch or process it is in). Returns ``(ids_shuffle [n, length], ids_restore [n, length],
    n_keep)``: the first ``n_keep`` positions of ``ids_shuffle`` are kept,
    ``n_keep = round((1 - ratio) * length)`` (at least 1 kept and at least 1 masked).
    """
    n_keep = min(max(round((1.0 - ratio) * length), 1), length - 1)
    if isinstance(generator, (list, tuple)):
        if len(generator) != n:
            raise AculaError(f"give one generator per sample: {len(generator)} for {n} samples")
        noise = torch.stack([torch.rand(length, generator=g) for g in generator]).to(device)
    else:
        noise = torch.rand(n, length, device=device, generator=generator)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    return ids_shuffle, ids_restore, n_keep


# --------------------------------------------------------------------------------------------
# Registry

_FACTORIES: Registry[Callable[..., AudioEncoder]] = Registry("encoder")


def register_encoder(name: str) -> Callable[[Callable[..., AudioEncoder]], Callable[..., AudioEncoder]]:
    """Decorator: register ``factory(**overrides) -> AudioEncoder`` under ``name``."""
    return _FACTORIES.register(name)


def list_encoders() -> list[str]:
    """Names of the registered encoder presets, sorted."""
    return _FACTORIES.names()


def create_encoder(name: str, **overrides: Any) -> AudioEncoder:
    """Build the preset ``name``; ``overrides`` change config fields (unknown ones raise)."""
    return _FACTORIES.get(name)(**overrides)


def encoder_from_config(config: dict[str, Any] | EncoderConfig) -> AudioEncoder:
    """Rebuild an encoder (fresh weights) from ``encoder.config.to_dict()`` or a config object."""
    if isinstance(config, EncoderConfig):
        cls = AudioEncoder._archs.get(config.arch)
        if cls is None:
            raise AculaError(f"no encoder architecture {config.arch!r}")
        return cls(config)
    if not isinstance(config, dict):
        raise AculaError(f"encoder config must be a dict, got {type(config).__name__}")
    arch = config.get("arch")
    if arch is None:
        name = config.get("name")
        if name in _FACTORIES:
            return create_encoder(name, **{k: v for k, v in config.items() if k != "name"})
        raise AculaError("encoder config has neither 'arch' nor a registered 'name'; "
                         f"architectures: {sorted(AudioEncoder._archs)}")
    cls = AudioEncoder._archs.get(arch)
    if cls is None:
        raise AculaError(f"unknown encoder architecture {arch!r}; known: {sorted(AudioEncoder._archs)}")
    return cls(cls.config_class.from_dict(config))


# Architectures register their presets on import (torch only).
from acula_edge.models import cnn as _cnn  # noqa: F401
from acula_edge.models import vit as _vit  # noqa: F401
