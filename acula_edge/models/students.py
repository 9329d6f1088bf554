"""Small students: MobileNetV3-style networks on the shared log-mel front end.

The design follows EfficientAT's ``mn`` family (MobileNetV3 on log-mel spectrograms) at the size
of MobileNetV3-Small, scaled by a width multiplier: presets from about 50k to about 1M
parameters. A student sees one fixed window of normalised log-mel (``window_frames`` frames: the
window length is part of its config) and gives

- ``embedding`` ``[B, embed_dim]``: L2-normalised, in the teacher's aligned space (trained to match
  the teacher's projected audio embedding);
- ``logits`` ``[B, H]``: one per task head (``heads``, names), sigmoid for probabilities;
- with ``modalities``, ``modality`` ``[B, M]``: logits of what the window holds (lung, heart, ...),
  softmax for probabilities: listen routes each window to the heads that screen it;
- with ``events``, ``events`` ``[B, T, K]``: logits per event kind (wheeze-like, crackle-like) for
  each step of ``event_stride`` frames, from the feature map at that stride (frequency-pooled by
  mean and max) joined with the deepest map's time profile; sigmoid for probabilities.

``act`` chooses the activation of the deeper blocks: ``hardswish`` (MobileNetV3) or ``relu``
(simpler to quantize); squeeze-and-excitation uses a hard sigmoid and can be switched off. Every
op is a plain convolution, BatchNorm, activation, pooling or linear layer, so students export to
ONNX and TFLite.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from acula_edge.errors import AculaError
from acula_edge.models import minmax_normalize, pooled_chunks
from acula_edge.registry import Registry

#: MobileNetV3-Small blocks: (kernel, expanded channels, out channels, squeeze-excite, hard activation, stride).
SMALL_BLOCKS = ((3, 16, 16, True, False, 2), (3, 72, 24, False, False, 2), (3, 88, 24, False, False, 1),
                (5, 96, 40, True, True, 2), (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
                (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1), (5, 288, 96, True, True, 2),
                (5, 576, 96, True, True, 1), (5, 576, 96, True, True, 1))
ACTIVATIONS = ("hardswish", "relu")


def make_divisible(v: float, divisor: int = 8) -> int:
    """MobileNet's channel rounding: a multiple of ``divisor``, never below 90% of ``v``."""
    n = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return n + divisor if n < 0.9 * v else n


@dataclass(frozen=True)
class StudentConfig:
    """A student's architecture; ``name`` is the preset it came from."""

    name: str = "mn-s"
    n_mels: int = 64
    window_frames: int = 128  # 4.1 s at the default front end (16 kHz, hop 512)
    width: float = 0.5
    stem_channels: int = 16
    blocks: tuple = SMALL_BLOCKS
    act: str = "hardswish"
    se: bool = True
    feature_dim: int = 256  # 1x1 conv width before pooling (scaled by width)
    embed_dim: int = 512  # the aligned space
    heads: tuple = ()
    dropout: float = 0.1
    modalities: tuple = ()  # classes of the modality head (none: no head)
    events: tuple = ()  # event kinds with frame-level outputs (none: no event head)
    event_stride: int = 8  # log-mel frames per event step: the network's stride where the event head taps
    event_channels: int = 32  # width of the event head

    def __post_init__(self) -> None:
        problems = []
        if self.act not in ACTIVATIONS:
            problems.append(f"act is one of {', '.join(ACTIVATIONS)}, got {self.act!r}")
        if not 0 < self.width <= 4 or min(self.n_mels, self.window_frames, self.stem_channels,
                                          self.feature_dim, self.embed_dim) < 1:
            problems.append("width in (0, 4] and positive sizes")
        if not 0 <= self.dropout < 1:
            problems.append("dropout in [0, 1)")
        try:
            bad = [b for b in self.blocks if len(b) != 6 or int(b[0]) % 2 == 0 or int(b[5]) not in (1, 2)]
        except (TypeError, ValueError):
            bad = ["unreadable"]
        if not self.blocks or bad:
            problems.append("blocks are (odd kernel, expanded, out, se, hard activation, stride 1 or 2) tuples")
        for what in ("heads", "modalities", "events"):
            names = getattr(self, what)
            if len(set(names)) != len(names) or not all(isinstance(h, str) and h for h in names):
                problems.append(f"{what} are distinct non-empty names")
        if len(self.modalities) == 1:
            problems.append("a modality head needs at least two modalities")
        if self.events and not self._event_tap_ok():
            problems.append(f"event_stride {self.event_stride} must be a stride the network reaches before its last "
                            f"downsampling, and window_frames a multiple of the network's total stride")
        if problems:
            raise AculaError(f"bad student config: {'; '.join(problems)}")

    def strides(self) -> list[int]:
        """The cumulative stride after the stem and after each block."""
        out = [2]
        for b in self.blocks:
            out.append(out[-1] * int(b[5]))
        return out

    def _event_tap_ok(self) -> bool:
        s = self.strides()
        return self.event_stride in s[:-1] and self.event_stride < s[-1] and self.window_frames % s[-1] == 0

    @property
    def event_steps(self) -> int:
        """Event steps per window (0 without an event head)."""
        return self.window_frames // self.event_stride if self.events else 0

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["blocks"] = [list(b) for b in self.blocks]
        for k in ("heads", "modalities", "events"):
            d[k] = list(getattr(self, k))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "StudentConfig":
        names = {f.name for f in fields(cls)}
        if set(d) - names:
            raise AculaError(f"unknown student config keys {sorted(set(d) - names)}; known: {sorted(names)}")
        d = dict(d)
        if "blocks" in d:
            d["blocks"] = tuple(tuple(b) for b in d["blocks"])
        for k in ("heads", "modalities", "events"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


def _act(hard: bool, cfg: StudentConfig) -> nn.Module:
    return nn.Hardswish() if hard and cfg.act == "hardswish" else nn.ReLU()


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        squeezed = make_divisible(channels / 4)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class InvertedResidual(nn.Module):
    """1x1 expansion, depthwise kxk (strided), optional squeeze-excite, 1x1 projection; residual when shapes allow."""

    def __init__(self, cin: int, exp: int, cout: int, kernel: int, stride: int, se: bool, hard: bool,
                 cfg: StudentConfig):
        super().__init__()
        layers: list[nn.Module] = []
        if exp != cin:
            layers += [nn.Conv2d(cin, exp, 1, bias=False), nn.BatchNorm2d(exp), _act(hard, cfg)]
        layers += [nn.Conv2d(exp, exp, kernel, stride, kernel // 2, groups=exp, bias=False), nn.BatchNorm2d(exp),
                   _act(hard, cfg)]
        if se and cfg.se:
            layers.append(SqueezeExcite(exp))
        layers += [nn.Conv2d(exp, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class EventHead(nn.Module):
    """Frame-level event logits ``[B, T, K]`` from the normalised log-mel ``[B, n_mels, frames]`` (each
    band's mean and maximum over each step, and of its frame-to-frame change: the spectrum and its
    transients at the step's resolution), the map at the
    event stride ``tap [B, C, F, T]`` (pooled over frequency by mean and by max: crackles are
    broadband, wheezes narrow tones) and the deepest map ``deep [B, C', F', T / ratio]`` (its time
    profile repeated ``ratio`` times): two ``1x3`` convolutions along time, then one logit per kind.
    Plain convolutions, pooling and reductions, so that it exports to ONNX and TFLite."""

    def __init__(self, n_mels: int, stride: int, tap_channels: int, deep_channels: int, width: int, kinds: int,
                 ratio: int):
        super().__init__()
        self.ratio, self.stride = ratio, stride
        layers: list[nn.Module] = []
        c = 4 * n_mels + 2 * tap_channels + deep_channels
        for _ in range(2):
            layers += [nn.Conv2d(c, width, (1, 3), padding=(0, 1), bias=False), nn.BatchNorm2d(width), nn.ReLU()]
            c = width
        self.mix = nn.Sequential(*layers)
        self.out = nn.Conv2d(width, kinds, 1)

    def forward(self, normalized: torch.Tensor, tap: torch.Tensor, deep: torch.Tensor) -> torch.Tensor:
        steps = tap.shape[-1]  # the strided convolutions round up: ceil(frames / stride)
        bands = normalized.unsqueeze(2)  # [B, n_mels, 1, frames]: the bands as channels
        change = F.pad((bands[..., 1:] - bands[..., :-1]).abs(), (1, 0))
        short = steps * self.stride - bands.shape[-1]
        if short:  # a window of another length than the student's (the benchmarks' scaling grid)
            bands, change = F.pad(bands, (0, short)), F.pad(change, (0, short))
        k = (1, self.stride)
        s = torch.cat([F.avg_pool2d(bands, k), F.max_pool2d(bands, k), F.avg_pool2d(change, k),
                       F.max_pool2d(change, k)], dim=1)
        t = torch.cat([tap.mean(dim=2, keepdim=True), tap.amax(dim=2, keepdim=True)], dim=1)
        d = deep.mean(dim=2, keepdim=True).unsqueeze(-1).expand(-1, -1, -1, -1, self.ratio).flatten(3)
        if d.shape[-1] != steps:
            d = d[..., :steps]
        return self.out(self.mix(torch.cat([s, t, d], dim=1)))[:, :, 0].transpose(1, 2)


class Student(nn.Module):
    """``forward(logmel [B, n_mels, window_frames]) -> (embedding [B, embed_dim], logits [B, H])``.

    The log-mel is in dB, as :class:`acula_edge.frontend.LogMel` makes it; the student normalises
    each window (min-max, as the teacher does) itself, so that an exported model holds everything
    after the front end. :meth:`features` gives the pooled features before the embedding head;
    :meth:`raw` every output (with the modality and event heads') before normalisation.
    """

    def __init__(self, config: StudentConfig):
        super().__init__()
        self.config = cfg = config
        c = make_divisible(cfg.stem_channels * cfg.width)
        layers: list[nn.Module] = [nn.Conv2d(1, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), _act(True, cfg)]
        widths = [c]
        for k, exp, out, se, hard, stride in cfg.blocks:
            e, o = make_divisible(exp * cfg.width), make_divisible(out * cfg.width)
            layers.append(InvertedResidual(c, e, o, int(k), int(stride), bool(se), bool(hard), cfg))
            c = o
            widths.append(c)
        f = make_divisible(cfg.feature_dim * cfg.width)
        layers += [nn.Conv2d(c, f, 1, bias=False), nn.BatchNorm2d(f), _act(True, cfg)]
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.embed = nn.Linear(f, cfg.embed_dim)
        self.heads = nn.Linear(f, len(cfg.heads)) if cfg.heads else None
        self.modality = nn.Linear(f, len(cfg.modalities)) if cfg.modalities else None
        self.tap, self.event_head = None, None
        if cfg.events:
            strides = cfg.strides()
            j = max(i for i, s in enumerate(strides) if s == cfg.event_stride)
            self.tap = 2 + j  # index in body: the stem's activation is 2, block i is 3 + i
            self.event_head = EventHead(cfg.n_mels, cfg.event_stride, widths[j], f, cfg.event_channels, len(cfg.events),
                                        strides[-1] // cfg.event_stride)
        self.feature_width = f

    def _check(self, logmel: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if logmel.dim() != 3 or logmel.shape[1] != cfg.n_mels or logmel.shape[2] != cfg.window_frames:
            raise AculaError(f"student {cfg.name} takes [batch, {cfg.n_mels}, {cfg.window_frames}] log-mel windows, "
                             f"got {tuple(logmel.shape)}")
        return logmel

    def features(self, logmel: torch.Tensor) -> torch.Tensor:
        """Pooled features ``[B, feature_width]``."""
        return self.pooled(minmax_normalize(self._check(logmel)))

    def trunk(self, normalized: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(deepest map [B, C, F', T'], map at the event stride or None)`` of normalised windows."""
        x, tap = normalized.unsqueeze(1), None
        for i, layer in enumerate(self.body):
            x = layer(x)
            if i == self.tap:
                tap = x
        return x, tap

    def pooled(self, normalized: torch.Tensor) -> torch.Tensor:
        """Pooled features of windows already min-max normalised to [0, 1] (the network proper)."""
        return self.trunk(normalized)[0].mean(dim=(2, 3))

    def outputs(self, normalized: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every output of normalised windows, as logits: ``embedding`` (before L2 normalisation),
        ``logits`` (``[B, 0]`` without heads) and, where the student has those heads, ``modality``
        and ``events``. The event head runs first, so that in an exported graph everything after the
        last convolution is pooling and linear layers (kept fp32 by int8 ONNX export)."""
        deep, tap = self.trunk(normalized)
        out = {}
        if self.event_head is not None:
            out["events"] = self.event_head(normalized, tap, deep)
        h = self.dropout(deep.mean(dim=(2, 3)))
        out["embedding"] = self.embed(h)
        out["logits"] = self.heads(h) if self.heads is not None else out["embedding"][:, :0]
        if self.modality is not None:
            out["modality"] = self.modality(h)
        return out

    def raw(self, logmel: torch.Tensor) -> dict[str, torch.Tensor]:
        """:meth:`outputs` of dB log-mel windows: what the losses use."""
        return self.outputs(minmax_normalize(self._check(logmel)))

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        o = self.raw(logmel)
        return F.normalize(o["embedding"], dim=1), o["logits"]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def macs_per_window(self) -> int:
        """Multiply-accumulates of one window through the network (convolutions and matrix products)."""
        from acula_edge.models import count_macs

        return count_macs(self, torch.zeros(1, self.config.n_mels, self.config.window_frames))

    def extra_repr(self) -> str:
        return f"name={self.config.name!r}, window={self.config.n_mels}x{self.config.window_frames}"


class WindowedStudent(nn.Module):
    """A student over whole recordings: each clip is cut into the student's windows (the encoders'
    chunk rule); ``features`` averages the L2-normalised window embeddings, ``scores`` the heads'
    window probabilities."""

    def __init__(self, student: Student):
        super().__init__()
        self.student = student

    @property
    def input_frames(self) -> int:
        """Frames of one window (the student's)."""
        return self.student.config.window_frames

    def _per_clip(self, logmel: torch.Tensor, output: int) -> torch.Tensor:
        from acula_edge.models import chunk_frames

        cfg = self.student.config
        if logmel.dim() != 3 or logmel.shape[1] != cfg.n_mels:
            raise AculaError(f"log-mel must be [batch, {cfg.n_mels}, frames], got {tuple(logmel.shape)}")
        windows, owner = chunk_frames(logmel, [logmel.shape[2]] * logmel.shape[0], cfg.window_frames)
        values = self._window_values(windows, output)
        b = logmel.shape[0]
        total = values.new_zeros(b, values.shape[1]).index_add(0, owner, values)
        return total / torch.bincount(owner, minlength=b).to(values.dtype).unsqueeze(1)

    def _window_values(self, windows: torch.Tensor, output: int) -> torch.Tensor:
        values = self.student(windows)[output]
        return torch.sigmoid(values) if output == 1 else values

    def features(self, logmel: torch.Tensor) -> torch.Tensor:
        """``[B, embed_dim]``: the mean window embedding of each clip."""
        return self._per_clip(logmel, 0)

    def scores(self, logmel: torch.Tensor) -> torch.Tensor:
        """``[B, H]``: each head's mean window probability."""
        self._check_heads()
        return self._per_clip(logmel, 1)

    def stream_features(self, blocks: Callable[[], Iterable[torch.Tensor]], max_chunks: int = 64) -> torch.Tensor:
        """:meth:`features` ``[1, embed_dim]`` of one clip given as log-mel blocks (:func:`pooled_chunks`)."""
        return pooled_chunks(blocks, self.input_frames, lambda w: self._window_values(w, 0), False, max_chunks)

    def stream_scores(self, blocks: Callable[[], Iterable[torch.Tensor]], max_chunks: int = 64) -> torch.Tensor:
        """:meth:`scores` ``[1, H]`` of one clip given as log-mel blocks."""
        self._check_heads()
        return pooled_chunks(blocks, self.input_frames, lambda w: self._window_values(w, 1), False, max_chunks)

    def _check_heads(self) -> None:
        if not self.student.config.heads:
            raise AculaError("this student has no task heads")


# --------------------------------------------------------------------------------------------
# registry

_STUDENTS: Registry[Callable[..., Student]] = Registry("student")


def register_student(name: str, base: StudentConfig) -> None:
    """Register a preset: ``create_student(name, **overrides)`` builds ``base`` with changes."""
    _STUDENTS.register(name)(lambda **kw: Student(_replace(dataclasses.replace(base, name=name), kw)))


def _replace(cfg: StudentConfig, overrides: dict[str, Any]) -> StudentConfig:
    names = {f.name for f in fields(cfg)}
    unknown = set(overrides) - names
    if unknown:
        raise AculaError(f"unknown student option(s) {sorted(unknown)}; known: {sorted(names)}")
    fixed = {k: tuple(v) if k in ("heads", "modalities", "events") else v for k, v in overrides.items()}
    return dataclasses.replace(cfg, **fixed)


def list_students() -> list[str]:
    """Registered student presets, sorted."""
    return _STUDENTS.names()


def create_student(name: str, **overrides: Any) -> Student:
    """Build the preset ``name``; ``overrides`` change config fields (``heads=("a", "b")``, ``act="relu"``)."""
    return _STUDENTS.get(name)(**overrides)


def student_from_config(d: dict[str, Any] | StudentConfig) -> Student:
    """Rebuild a student (fresh weights) from ``student.config.to_dict()``."""
    return Student(d if isinstance(d, StudentConfig) else StudentConfig.from_dict(d))


# Width presets of the MobileNetV3-Small layout, with the 512-d embedding head and no task heads:
# mn-xs 56k, mn-s 314k, mn-m 689k, mn-l 1.03M parameters (the vit-small encoder: 21.3M, 20.7x mn-l).
register_student("mn-xs", StudentConfig(width=0.15, feature_dim=256))
register_student("mn-s", StudentConfig(width=0.5))
register_student("mn-m", StudentConfig(width=0.75, feature_dim=384))
register_student("mn-l", StudentConfig(width=1.0, feature_dim=256))

def load_student(path: str | Path) -> tuple[Student, dict[str, Any]]:
    """``(student, sidecar)`` from a distillation checkpoint, in eval mode."""
    from acula_edge.checkpoint import load_weights, read_sidecar

    meta = read_sidecar(path)
    if meta.get("kind") != "student":
        raise AculaError(f"{path} is not a student checkpoint")
    return load_weights(path, student_from_config(meta["student"]), "student", "student"), meta


__all__ = ["SMALL_BLOCKS", "EventHead", "Student", "StudentConfig", "WindowedStudent", "create_student", "list_students", "register_student",
           "student_from_config"]
