"""An EfficientNet-like CNN encoder (as OPERA-CE), with a SimMIM-style masked spectrogram loss.

Network: a stride-2 3x3 stem, stages of MBConv blocks (1x1 expansion, depthwise kxk, squeeze-and-
excitation, 1x1 projection; BatchNorm and SiLU; residual when the shape allows), a 1x1 head conv to
``embed_dim`` channels, global average pooling. The chunk is one channel, ``[1, n_mels, frames]``.

MSM: the normalised chunk is cut into ``mask_patch_mels x mask_patch_frames`` time-frequency
patches; a random ``mask_ratio`` of them per clip is set to 0 (``round((1 - ratio) * L)`` kept, as
in MAE); the encoder's feature map goes through a light decoder (a 1x1 conv to ``stride**2``
channels and a pixel shuffle back to full resolution, SimMIM's) and the loss is the MSE on the
masked area only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from acula_edge.errors import AculaError
from acula_edge.models import AudioEncoder, EncoderConfig, random_keep, register_encoder

#: EfficientNet-B0 stages: (expansion, channels, repeats, stride, kernel).
B0_STAGES = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
             (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))


@dataclass(frozen=True)
class CNNConfig(EncoderConfig):
    """EfficientNet-like sizes. ``embed_dim`` is the head width (the feature size)."""

    arch = "cnn"

    name: str = "cnn-small"
    n_mels: int = 64
    input_frames: int = 256
    embed_dim: int = 1280
    mask_ratio: float = 0.6
    stem_channels: int = 32
    stages: tuple = B0_STAGES
    se_ratio: float = 0.25
    bn_momentum: float = 0.01
    mask_patch_mels: int = 8
    mask_patch_frames: int = 8

    def check(self) -> list[str]:
        p = []
        try:
            stages = [tuple(int(v) for v in s) for s in self.stages]
            bad = [s for s in stages if len(s) != 5 or min(s) < 1 or s[4] % 2 == 0]
        except (TypeError, ValueError):
            return ["stages must be (expansion, channels, repeats, stride, odd kernel) tuples"]
        if not stages or bad:
            p.append(f"stages must be non-empty (expansion, channels, repeats, stride, odd kernel) tuples; bad: {bad}")
            return p
        s = self.stride
        if self.n_mels % s or self.input_frames % s:
            p.append(f"n_mels ({self.n_mels}) and input_frames ({self.input_frames}) must be multiples of the "
                     f"network's total stride ({s})")
        if self.mask_patch_mels < 1 or self.mask_patch_frames < 1 or self.n_mels % self.mask_patch_mels \
                or self.input_frames % self.mask_patch_frames:
            p.append("n_mels and input_frames must be multiples of mask_patch_mels and mask_patch_frames")
        if self.stem_channels < 1 or not 0 < self.se_ratio <= 1:
            p.append("stem_channels must be positive and se_ratio in (0, 1]")
        return p

    @property
    def stride(self) -> int:
        """Total downsampling of the feature map (stem 2 times the stage strides)."""
        s = 2
        for st in self.stages:
            s *= int(st[3])
        return s


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduced: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = nn.SiLU()
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


def conv_bn_act(cin: int, cout: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True,
                momentum: float = 0.01) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout, momentum=momentum, eps=1e-3)]
    if act:
        layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class MBConv(nn.Module):
    """Inverted residual: expand 1x1, depthwise kxk, squeeze-excite, project 1x1 (no activation)."""

    def __init__(self, cin: int, cout: int, expansion: int, stride: int, kernel: int, se_ratio: float,
                 momentum: float):
        super().__init__()
        mid = cin * expansion
        self.expand = conv_bn_act(cin, mid, 1, momentum=momentum) if expansion != 1 else nn.Identity()
        self.depthwise = conv_bn_act(mid, mid, kernel, stride, groups=mid, momentum=momentum)
        self.se = SqueezeExcite(mid, max(1, int(cin * se_ratio)))
        self.project = conv_bn_act(mid, cout, 1, act=False, momentum=momentum)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class CNNEncoder(AudioEncoder):
    """EfficientNet-like spectrogram CNN (OPERA-CE style) with a SimMIM MSM decoder."""

    config_class = CNNConfig
    msm_only_prefixes = ("decoder",)

    def __init__(self, config: CNNConfig | None = None):
        super().__init__(config or CNNConfig())
        c: CNNConfig = self.config
        m = c.bn_momentum
        self.stem = conv_bn_act(1, c.stem_channels, 3, 2, momentum=m)
        blocks: list[nn.Module] = []
        cin = c.stem_channels
        for expansion, channels, repeats, stride, kernel in c.stages:
            for i in range(int(repeats)):
                blocks.append(MBConv(cin, int(channels), int(expansion), int(stride) if i == 0 else 1,
                                     int(kernel), c.se_ratio, m))
                cin = int(channels)
        self.blocks = nn.Sequential(*blocks)
        self.head = conv_bn_act(cin, c.embed_dim, 1, momentum=m)
        s = c.stride
        self.decoder = nn.Sequential(nn.Conv2d(c.embed_dim, s * s, 1), nn.PixelShuffle(s))
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised chunks ``[N, n_mels, frames]`` to ``[N, embed_dim, n_mels/s, frames/s]``."""
        c = self.config
        if x.dim() != 3 or x.shape[1] != c.n_mels or x.shape[2] != c.input_frames:
            raise AculaError(f"chunks must be [N, {c.n_mels}, {c.input_frames}], got {tuple(x.shape)}")
        return self.head(self.blocks(self.stem(x.unsqueeze(1))))

    def encode_chunks(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature_map(x).mean(dim=(2, 3))

    def random_mask(self, n: int, mask_ratio: float, device: torch.device,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, int, int]:
        """Pixel mask ``[n, n_mels, frames]`` (1 = masked) over whole time-frequency patches."""
        c: CNNConfig = self.config
        rows, cols = c.n_mels // c.mask_patch_mels, c.input_frames // c.mask_patch_frames
        _, ids_restore, keep = random_keep(n, rows * cols, mask_ratio, device, generator)
        mask = (ids_restore >= keep).float().view(n, rows, cols)
        mask = mask.repeat_interleave(c.mask_patch_mels, 1).repeat_interleave(c.mask_patch_frames, 2)
        return mask, keep, rows * cols

    def _msm_loss(self, x: torch.Tensor, mask_ratio: float,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, Any]]:
        mask, keep, L = self.random_mask(x.shape[0], mask_ratio, x.device, generator)
        pred = self.decoder(self.feature_map(x * (1.0 - mask).to(x.dtype)))[:, 0]
        err = (pred.float() - x.float()) ** 2
        loss = (err * mask).sum() / mask.sum()
        return loss, {"mask_ratio": 1.0 - keep / L, "mask": mask, "pred": pred.detach(),
                      "patches": L, "kept": keep}


def _make(base: CNNConfig, overrides: dict[str, Any]) -> CNNEncoder:
    return CNNEncoder(base.replace(**overrides))


@register_encoder("cnn-small")
def cnn_small(**overrides: Any) -> CNNEncoder:
    """EfficientNet-B0 layout on 64 x 256 (stride 32, 1280-d features, about 4 M encoder parameters)."""
    return _make(CNNConfig(name="cnn-small"), overrides)


@register_encoder("cnn-tiny")
def cnn_tiny(**overrides: Any) -> CNNEncoder:
    """Fast on 2 CPU cores: 4 small stages on 64 x 128 (stride 16), 128-d features."""
    return _make(CNNConfig(name="cnn-tiny", input_frames=128, embed_dim=128, stem_channels=16,
                           stages=((1, 16, 1, 1, 3), (4, 24, 1, 2, 3), (4, 40, 1, 2, 3), (4, 64, 1, 2, 3))),
                 overrides)


__all__ = ["B0_STAGES", "CNNConfig", "CNNEncoder", "cnn_small", "cnn_tiny"]
