"""OPERA-GT-style masked-autoencoder spectrogram ViT.

A chunk ``[n_mels, frames]`` is laid out as OPERA does, time first (``[frames, mels]``), and cut by a
Conv2d into ``patch_frames x patch_mels`` patches, giving a time-major token grid of
``(frames / patch_frames) x (mels / patch_mels)`` tokens. Fixed 2-D sin-cos position embeddings,
a class token (unused by the features, kept so OPERA-GT encoder weights map onto this one),
pre-norm transformer blocks (timm/MAE parameter names: ``blocks.i.norm1``, ``attn.qkv``,
``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``).

MSM (MAE): per clip a random ``mask_ratio`` of the patches is dropped (``round((1 - ratio) * L)``
kept), the encoder sees only the kept ones, a light decoder (linear to the decoder width, mask
tokens, decoder position embeddings, blocks, linear to patch pixels) reconstructs all patches, and
the loss is the MSE on the masked patches only.

Features: no masking, the patch tokens (class token excluded) are averaged. ``pool="mean_norm"``
(default) is OPERA's ``forward_feature``: mean of the last block's patch tokens, then the final
LayerNorm; ``"norm_mean"`` applies the final LayerNorm to every token first, then averages;
``"cls"`` takes the normalised class token.

Parameter counts (``num_parameters``): ``vit-small`` has 21.30 M in the encoder (the published
"21M" of OPERA-GT) and 26.14 M with the MSM decoder (256 wide, 6 deep).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from acula_edge.errors import AculaError
from acula_edge.models import AudioEncoder, EncoderConfig, random_keep, register_encoder

_POOLS = ("mean_norm", "norm_mean", "cls")


@dataclass(frozen=True)
class ViTConfig(EncoderConfig):
    """Masked-autoencoder ViT sizes. Defaults are the published OPERA-GT (``vit-small``)."""

    arch = "vit"

    name: str = "vit-small"
    n_mels: int = 64
    input_frames: int = 256
    embed_dim: int = 384
    mask_ratio: float = 0.7
    patch_mels: int = 4
    patch_frames: int = 4
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    decoder_dim: int = 256
    decoder_depth: int = 6
    decoder_heads: int = 8
    cls_token: bool = True
    pool: str = "mean_norm"
    norm_eps: float = 1e-6

    def check(self) -> list[str]:
        p = []
        if self.patch_mels <= 0 or self.patch_frames <= 0:
            p.append("patch sizes must be positive")
        elif self.n_mels % self.patch_mels or self.input_frames % self.patch_frames:
            p.append(f"n_mels ({self.n_mels}) and input_frames ({self.input_frames}) must be multiples of "
                     f"patch_mels ({self.patch_mels}) and patch_frames ({self.patch_frames})")
        if self.depth < 1 or self.decoder_depth < 1:
            p.append("depth and decoder_depth must be at least 1")
        if self.num_heads < 1 or self.embed_dim % self.num_heads:
            p.append(f"embed_dim ({self.embed_dim}) must be a multiple of num_heads ({self.num_heads})")
        if self.decoder_heads < 1 or self.decoder_dim % self.decoder_heads:
            p.append(f"decoder_dim ({self.decoder_dim}) must be a multiple of decoder_heads ({self.decoder_heads})")
        if self.embed_dim % 4 or self.decoder_dim % 4:
            p.append("embed_dim and decoder_dim must be multiples of 4 (2-D sin-cos position embeddings)")
        if self.pool not in _POOLS:
            p.append(f"pool must be one of {_POOLS}")
        if self.pool == "cls" and not self.cls_token:
            p.append("pool='cls' needs cls_token=True")
        if self.mlp_ratio <= 0:
            p.append("mlp_ratio must be positive")
        return p

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (time rows, mel columns)."""
        return self.input_frames // self.patch_frames, self.n_mels // self.patch_mels


def sincos_pos_embed_2d(dim: int, rows: int, cols: int, cls_token: bool = False) -> torch.Tensor:
    """MAE's fixed 2-D sin-cos embedding, ``[(1 +) rows * cols, dim]``, row-major over the grid.

    The first half of the channels encodes the column, the second half the row, each as
    ``[sin(pos * w), cos(pos * w)]`` with ``w = 10000 ** (-k / (dim / 4))``.
    """

    def one_d(d: int, pos: torch.Tensor) -> torch.Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2.0))
        out = pos.reshape(-1, 1) * omega[None, :]
        return torch.cat([torch.sin(out), torch.cos(out)], dim=1)

    r, c = torch.meshgrid(torch.arange(rows, dtype=torch.float64), torch.arange(cols, dtype=torch.float64),
                          indexing="ij")
    emb = torch.cat([one_d(dim // 2, c), one_d(dim // 2, r)], dim=1)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim, dtype=torch.float64), emb])
    return emb.float()


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, qkv_bias: bool = True):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(y.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (timm's ``Block`` layout and names)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True, eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """``[N, n_mels, frames]`` to tokens ``[N, L, D]``, time-major (OPERA's layout)."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.proj = nn.Conv2d(1, cfg.embed_dim, kernel_size=(cfg.patch_frames, cfg.patch_mels),
                              stride=(cfg.patch_frames, cfg.patch_mels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.transpose(1, 2).unsqueeze(1)).flatten(2).transpose(1, 2)


class ViTEncoder(AudioEncoder):
    """Masked-autoencoder spectrogram ViT (OPERA-GT style)."""

    config_class = ViTConfig
    msm_only_prefixes = ("decoder_", "mask_token")

    def __init__(self, config: ViTConfig | None = None):
        super().__init__(config or ViTConfig())
        c: ViTConfig = self.config
        rows, cols = c.grid
        self.num_patches = rows * cols
        self.n_extra = 1 if c.cls_token else 0
        self.patch_embed = PatchEmbed(c)
        if c.cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.register_buffer("pos_embed", sincos_pos_embed_2d(c.embed_dim, rows, cols, c.cls_token)[None])
        self.blocks = nn.ModuleList(Block(c.embed_dim, c.num_heads, c.mlp_ratio, c.qkv_bias, c.norm_eps)
                                    for _ in range(c.depth))
        self.norm = nn.LayerNorm(c.embed_dim, eps=c.norm_eps)

        self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_dim))
        self.register_buffer("decoder_pos_embed",
                             sincos_pos_embed_2d(c.decoder_dim, rows, cols, c.cls_token)[None])
        self.decoder_blocks = nn.ModuleList(
            Block(c.decoder_dim, c.decoder_heads, c.mlp_ratio, c.qkv_bias, c.norm_eps) for _ in range(c.decoder_depth))
        self.decoder_norm = nn.LayerNorm(c.decoder_dim, eps=c.norm_eps)
        self.decoder_pred = nn.Linear(c.decoder_dim, c.patch_frames * c.patch_mels)
        self._init_weights()

    def _init_weights(self) -> None:
        # MAE: patch embedding like a Linear, xavier Linears, LayerNorm 1/0, tokens N(0, 0.02).
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.proj.bias)
        if self.config.cls_token:
            nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # ---- pieces

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised chunks ``[N, n_mels, frames]`` to patch pixels ``[N, L, patch_frames * patch_mels]``,
        in token order (the layout the decoder predicts)."""
        c: ViTConfig = self.config
        rows, cols = c.grid
        n = x.shape[0]
        t = x.transpose(1, 2).reshape(n, rows, c.patch_frames, cols, c.patch_mels)
        return t.permute(0, 1, 3, 2, 4).reshape(n, rows * cols, c.patch_frames * c.patch_mels)

    def unpatchify(self, p: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`patchify`: ``[N, L, pf * pm]`` to ``[N, n_mels, frames]``."""
        c: ViTConfig = self.config
        rows, cols = c.grid
        n = p.shape[0]
        t = p.reshape(n, rows, cols, c.patch_frames, c.patch_mels).permute(0, 1, 3, 2, 4)
        return t.reshape(n, c.input_frames, c.n_mels).transpose(1, 2)

    def _with_cls(self, tokens: torch.Tensor) -> torch.Tensor:
        if not self.config.cls_token:
            return tokens
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(tokens.shape[0], -1, -1)
        return torch.cat([cls, tokens], dim=1)

    def _check_chunk(self, x: torch.Tensor) -> None:
        c = self.config
        if x.dim() != 3 or x.shape[1] != c.n_mels or x.shape[2] != c.input_frames:
            raise AculaError(f"chunks must be [N, {c.n_mels}, {c.input_frames}], got {tuple(x.shape)}")

    def encode_chunks(self, x: torch.Tensor) -> torch.Tensor:
        self._check_chunk(x)
        h = self._with_cls(self.patch_embed(x) + self.pos_embed[:, self.n_extra:])
        for blk in self.blocks:
            h = blk(h)
        pool = self.config.pool
        if pool == "mean_norm":
            return self.norm(h[:, self.n_extra:].mean(dim=1))
        h = self.norm(h)
        return h[:, 0] if pool == "cls" else h[:, self.n_extra:].mean(dim=1)

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised patch tokens after the final LayerNorm, ``[N, L, D]`` (no masking, no class token)."""
        self._check_chunk(x)
        h = self._with_cls(self.patch_embed(x) + self.pos_embed[:, self.n_extra:])
        for blk in self.blocks:
            h = blk(h)
        return self.norm(h)[:, self.n_extra:]

    def _msm_loss(self, x: torch.Tensor, mask_ratio: float,
                  generator: torch.Generator | None) -> tuple[torch.Tensor, dict[str, Any]]:
        n, L = x.shape[0], self.num_patches
        tokens = self.patch_embed(x) + self.pos_embed[:, self.n_extra:]
        ids_shuffle, ids_restore, keep = random_keep(n, L, mask_ratio, x.device, generator)
        d = tokens.shape[-1]
        kept = torch.gather(tokens, 1, ids_shuffle[:, :keep, None].expand(-1, -1, d))
        h = self._with_cls(kept)
        for blk in self.blocks:
            h = blk(h)
        h = self.decoder_embed(self.norm(h))

        dd = h.shape[-1]
        body = torch.cat([h[:, self.n_extra:], self.mask_token.to(h.dtype).expand(n, L - keep, -1)], dim=1)
        body = torch.gather(body, 1, ids_restore[:, :, None].expand(-1, -1, dd))
        y = torch.cat([h[:, :self.n_extra], body], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            y = blk(y)
        pred = self.decoder_pred(self.decoder_norm(y))[:, self.n_extra:]

        mask = torch.ones(n, L, device=x.device)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        per_patch = ((pred.float() - self.patchify(x).float()) ** 2).mean(dim=-1)
        loss = (per_patch * mask).sum() / mask.sum()
        return loss, {"mask_ratio": 1.0 - keep / L, "mask": mask, "pred": pred.detach(),
                      "patches": L, "kept": keep}


def _make(base: ViTConfig, overrides: dict[str, Any]) -> ViTEncoder:
    return ViTEncoder(base.replace(**overrides))


@register_encoder("vit-small")
def vit_small(**overrides: Any) -> ViTEncoder:
    """The published OPERA-GT size: 384 wide, 12 deep, 6 heads, 4x4 patches on 64 x 256, decoder
    256 x 6 (8 heads), mask 0.7. 21.3 M encoder parameters, 26.1 M with the decoder."""
    return _make(ViTConfig(name="vit-small"), overrides)


@register_encoder("vit-tiny")
def vit_tiny(**overrides: Any) -> ViTEncoder:
    """Trains on 2 CPU cores in minutes: 96 wide, 2 deep, 4 heads, 8x8 patches on 64 x 128
    (4.1 s chunks at the default front end), decoder 64 x 1, mask 0.7."""
    return _make(ViTConfig(name="vit-tiny", input_frames=128, embed_dim=96, depth=2, num_heads=4,
                           patch_mels=8, patch_frames=8, decoder_dim=64, decoder_depth=1, decoder_heads=4),
                 overrides)


__all__ = ["ViTConfig", "ViTEncoder", "sincos_pos_embed_2d", "vit_small", "vit_tiny"]
