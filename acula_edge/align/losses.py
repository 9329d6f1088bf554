"""Alignment losses between projected audio and text embeddings, and the AcuLa loss combination.

Three representation-level objectives, each a ``torch.nn.Module`` whose
``forward(audio_proj [n, k], text_proj [n, k])`` returns a scalar, chosen by name from a registry:

``cka`` (default)
    ``1 - linear_cka(audio_proj, text_proj)``: standard linear CKA (Kornblith et al. 2019) on the
    n x n sample Gram matrices. Pairing-aware: it is high only when sample i's audio and sample i's
    report are placed alike relative to the rest of the batch.
``cka-feature``
    ``1 - feature_gram_cka(audio_proj, text_proj)``: the variant of the authors' released code, CKA
    on d x d feature Gram matrices. It cannot see which report belongs to which clip (see
    :func:`feature_gram_cka`); offered to reproduce the released code, not recommended.
``infonce``
    Symmetric InfoNCE (the CLIP loss) over L2-normalised embeddings with a learned temperature.

The AcuLa training loss is ``lambda_align * L_align + lambda_msm * L_msm`` (paper defaults 1 and 1),
formed in one place, :func:`msm_align_loss`.

All losses compute in float32 (float64 inputs stay float64) with autocast switched off inside, so
they are safe under bf16 autocast and with bf16 inputs; the result is a float32 (or float64) scalar
and gradients flow back to the inputs in their own dtype.

CKA is computed over the batch it is given. Under DDP each process sees its local batch: gather the
projections across processes first (with a differentiable all-gather) if the global-batch value is
wanted; InfoNCE likewise only uses in-batch negatives.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from acula_edge.errors import AculaError
from acula_edge.registry import Registry, check_options

__all__ = [
    "DEFAULT_LOSS",
    "CKALoss",
    "FeatureGramCKALoss",
    "InfoNCELoss",
    "create_loss",
    "feature_gram_cka",
    "linear_cka",
    "list_losses",
    "msm_align_loss",
    "register_loss",
]

DEFAULT_LOSS = "cka"
_LOSSES: Registry[Callable[..., nn.Module]] = Registry("alignment loss")
# Keeps the sums of squares (which enter a square root) away from zero; see _cka_core.
_TINY = 1e-30


# --------------------------------------------------------------------------------------------
# registry


def register_loss(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Class decorator: register a loss module class (or factory) under ``name``."""
    return _LOSSES.register(name)


def list_losses() -> list[str]:
    """Names of the registered alignment losses, sorted."""
    return _LOSSES.names()


def create_loss(name: str, **kw: Any) -> nn.Module:
    """Build the alignment loss registered under ``name`` with options ``kw``.

    An unknown name, or an option the loss does not take, is an :class:`AculaError` that names
    the choices.
    """
    factory = _LOSSES.get(name)
    check_options(factory, kw, f"alignment loss {name}")
    return factory(**kw)


# --------------------------------------------------------------------------------------------
# numerics helpers


def _compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32 (bf16, fp16, fp32 and integers upcast)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


@contextlib.contextmanager
def _no_autocast(device: torch.device) -> Iterator[None]:
    """Switch autocast off on ``device`` (so matmuls stay in float32 under a bf16 autocast)."""
    is_available = getattr(getattr(torch.amp, "autocast_mode", None), "is_autocast_available", None)
    if is_available is not None and not is_available(device.type):
        yield
        return
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def _check_pair(x: torch.Tensor, y: torch.Tensor, what: str) -> None:
    if x.dim() != 2 or y.dim() != 2:
        raise ValueError(f"{what} needs 2-D inputs [n, d], got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{what} needs the same number of samples (rows), got {x.shape[0]} and {y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError(f"{what} needs at least 2 samples in the batch, got {x.shape[0]}")


def _unit_frobenius(a: torch.Tensor) -> torch.Tensor:
    """``a / ||a||_F`` with the scale treated as a constant (0 stays 0).

    CKA is invariant to scaling each argument, so dividing by a constant-treated scale changes
    neither the value nor the gradient (a degree-0 homogeneous f has grad f(a/s) / s = grad f(a));
    it only keeps float32 sums of squares away from overflow and underflow. The max-abs step comes
    first so that squaring cannot overflow.
    """
    with torch.no_grad():
        m = a.abs().amax()
        m = torch.where(m > 0, m, torch.ones_like(m))
        s = m * torch.sqrt(((a / m) ** 2).sum())  # >= m > 0 unless a is all zero
        s = torch.where(s > 0, s, torch.ones_like(s))
    return a / s


def _cka_core(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``<A A^T, B B^T>_F / (||A A^T||_F ||B B^T||_F)`` for ``A [m, p]``, ``B [m, q]`` (already centred).

    Uses the cheaper of the two identical forms: the m x m Grams, or the "feature" form
    ``||B^T A||_F^2 / (||A^T A||_F ||B^T B||_F)`` (p x q, p x p, q x q products). Both inputs are
    first scaled to unit Frobenius norm (see :func:`_unit_frobenius`), so the self terms lie in
    [1/rank, 1] for any non-zero input and the clamps below never touch a real value; an all-zero
    (constant) input gives 0 with a zero, finite gradient.
    """
    a = _unit_frobenius(a)
    b = _unit_frobenius(b)
    m, p = a.shape
    q = b.shape[1]
    if m * m * (p + q) <= m * (p * q + p * p + q * q):
        ka, kb = a @ a.T, b @ b.T
        cross = (ka * kb).sum()
    else:
        ka, kb = a.T @ a, b.T @ b
        cross = ((b.T @ a) ** 2).sum()
    saa = (ka * ka).sum().clamp_min(_TINY)
    sbb = (kb * kb).sum().clamp_min(_TINY)
    return cross / (torch.sqrt(saa) * torch.sqrt(sbb))


# --------------------------------------------------------------------------------------------
# CKA


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Standard linear CKA (Kornblith et al. 2019) between ``x [n, d1]`` and ``y [n, d2]``.

    With ``K = X X^T`` and ``L = Y Y^T`` the n x n sample Gram matrices and ``H = I - 11^T / n``
    the centring matrix, ``HSIC(K, L) = tr(K H L H)`` (the 1/(n-1)^2 factor cancels) and

        CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)),

    computed as the identical ``||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)`` with ``Xc``,
    ``Yc`` the column-centred inputs (``H X``), or through the n x n Grams when that is cheaper.
    Row i of ``x`` is paired with row i of ``y``: shuffling the rows of one input changes the
    value. Invariant to orthogonal transforms and isotropic scaling of either input; in [0, 1];
    1 for identical inputs; 0 when an input is constant over the batch.

    float32 / bf16 / fp16 inputs are computed in float32 (float64 stays float64), with autocast off.
    Returns a 0-d tensor.
    """
    _check_pair(x, y, "linear_cka")
    with _no_autocast(x.device):
        dt = _compute_dtype(x, y)
        x, y = x.to(dt), y.to(dt)
        xc = x - x.mean(dim=0, keepdim=True)
        yc = y - y.mean(dim=0, keepdim=True)
        return _cka_core(xc, yc)


def feature_gram_cka(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """CKA on d x d feature Gram matrices: the variant of the AcuLa authors' released code.

    Exactly what is computed, for ``x``, ``y`` of shape ``[n, d]`` (equal ``d`` required):

        K = X^T X,  L = Y^T Y                  (d x d, raw inputs: no centring over samples)
        Kc = H_d K H_d,  Lc = H_d L H_d        (H_d = I_d - 11^T / d: centred over the features)
        CKA_feat = <Kc, Lc>_F / (||Kc||_F ||Lc||_F)

    i.e. the usual CKA formula with the roles of samples and features swapped, as in the released
    code's ``linear_HSIC`` applied to ``X^T X`` with a d x d centring matrix. Since
    ``H_d X^T X H_d = Xf^T Xf`` with ``Xf = X H_d`` (each sample's features minus that sample's mean
    feature), it is computed from ``Xf`` and ``Yf`` without forming ``H_d``.

    Why it is not pairing-aware: ``K`` and ``L`` each depend on one modality alone, and
    ``X^T X = sum_i x_i x_i^T`` is a sum over samples, so permuting the rows of ``y`` (giving clip i
    the report of clip j) leaves ``L`` unchanged and the value identical. Equivalently the numerator
    is ``<Kc, Lc> = ||Xf Yf^T||_F^2 = sum_{i,j} <xf_i, yf_j>^2``: every audio-report pair, matched or
    not, counts the same. It only asks that the two feature spaces have alike second-moment
    structure (feature j of the audio projection co-varies like feature j of the text
    projection), which also makes it depend on the order of the features, not only on the
    geometry of the embeddings. Standard :func:`linear_cka` instead compares the n x n sample
    similarity structures, which is what aligning each clip with its own report requires.

    Same dtype handling as :func:`linear_cka`. Returns a 0-d tensor.
    """
    _check_pair(x, y, "feature_gram_cka")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature_gram_cka needs equal feature widths, got {x.shape[1]} and {y.shape[1]}")
    with _no_autocast(x.device):
        dt = _compute_dtype(x, y)
        x, y = x.to(dt), y.to(dt)
        xf = x - x.mean(dim=1, keepdim=True)
        yf = y - y.mean(dim=1, keepdim=True)
        # The core's Grams of (Xf^T, Yf^T) [d, n] are Xf^T Xf = Kc and Yf^T Yf = Lc.
        return _cka_core(xf.T, yf.T)


# --------------------------------------------------------------------------------------------
# loss modules


@register_loss("cka")
class CKALoss(nn.Module):
    """``1 - linear_cka(audio_proj, text_proj)``: standard, pairing-aware linear CKA (the default)."""

    def __init__(self) -> None:  # no options; declared so that create_loss can name them
        super().__init__()

    def forward(self, audio_proj: torch.Tensor, text_proj: torch.Tensor) -> torch.Tensor:
        return 1.0 - linear_cka(audio_proj, text_proj)


@register_loss("cka-feature")
class FeatureGramCKALoss(nn.Module):
    """``1 - feature_gram_cka(audio_proj, text_proj)``: the released code's variant (ignores pairing)."""

    def __init__(self) -> None:  # no options; declared so that create_loss can name them
        super().__init__()

    def forward(self, audio_proj: torch.Tensor, text_proj: torch.Tensor) -> torch.Tensor:
        return 1.0 - feature_gram_cka(audio_proj, text_proj)


@register_loss("infonce")
class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE (the CLIP loss) with a learned temperature.

    Embeddings are L2-normalised; ``logits = exp(logit_scale) * a_hat @ t_hat^T`` with
    ``logit_scale`` a learnable scalar initialised to ``log(1 / init_temperature)`` (CLIP: 0.07)
    and clamped to at most ``log(max_logit_scale)`` (CLIP: 100) when used, so the logits are never
    scaled by more than 100. The loss is ``(CE(logits, arange(n)) + CE(logits^T, arange(n))) / 2``:
    clip i must pick report i among the batch's reports, and report i clip i.

    Above the clamp the parameter receives no gradient; :meth:`clamp_logit_scale_` (call it after
    ``optimizer.step()``, as OpenCLIP does) pulls a parameter that drifted above back to the bound.
    With ``learn_temperature=False`` the scale is a fixed buffer.
    """

    def __init__(self, init_temperature: float = 0.07, max_logit_scale: float = 100.0,
                 learn_temperature: bool = True) -> None:
        super().__init__()
        if not init_temperature > 0 or not max_logit_scale > 0:
            raise AculaError("infonce: init_temperature and max_logit_scale must be positive")
        self.max_log_scale = math.log(max_logit_scale)
        init = torch.tensor(math.log(1.0 / init_temperature), dtype=torch.float32)
        if learn_temperature:
            self.logit_scale = nn.Parameter(init)
        else:
            self.register_buffer("logit_scale", init)

    def scale(self) -> torch.Tensor:
        """The multiplier in use: ``exp(min(logit_scale, log(max_logit_scale)))``."""
        return self.logit_scale.float().clamp(max=self.max_log_scale).exp()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Clamp the stored ``logit_scale`` to ``log(max_logit_scale)`` in place."""
        self.logit_scale.clamp_(max=self.max_log_scale)

    def forward(self, audio_proj: torch.Tensor, text_proj: torch.Tensor) -> torch.Tensor:
        _check_pair(audio_proj, text_proj, "infonce")
        if audio_proj.shape[1] != text_proj.shape[1]:
            raise ValueError(f"infonce needs equal embedding widths, got {audio_proj.shape[1]} and "
                             f"{text_proj.shape[1]}")
        with _no_autocast(audio_proj.device):
            dt = _compute_dtype(audio_proj, text_proj)
            a = F.normalize(audio_proj.to(dt), dim=1)
            t = F.normalize(text_proj.to(dt), dim=1)
            logits = self.scale().to(dt) * (a @ t.T)
            target = torch.arange(logits.shape[0], device=logits.device)
            return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


# --------------------------------------------------------------------------------------------
# combination


def msm_align_loss(l_align: torch.Tensor | float | None, l_msm: torch.Tensor | float | None,
                   lambda_align: float = 1.0, lambda_msm: float = 1.0) -> torch.Tensor | float:
    """The AcuLa training loss ``lambda_align * l_align + lambda_msm * l_msm``.

    A term whose weight is 0 is left out entirely (it may then be ``None``, and a NaN in it cannot
    leak into the sum), so ``lambda_msm=0`` is alignment only and ``lambda_align=0`` MSM only.
    Negative weights, both weights 0, or a ``None`` term with a non-zero weight are a ``ValueError``.
    """
    if lambda_align < 0 or lambda_msm < 0:
        raise ValueError(f"loss weights must be >= 0, got lambda_align={lambda_align}, lambda_msm={lambda_msm}")
    terms = []
    for name, weight, value in (("l_align", lambda_align, l_align), ("l_msm", lambda_msm, l_msm)):
        if weight == 0:
            continue
        if value is None:
            raise ValueError(f"{name} is None but its weight is {weight}")
        terms.append(value if weight == 1 else weight * value)
    if not terms:
        raise ValueError("lambda_align and lambda_msm are both 0: nothing to train")
    return terms[0] if len(terms) == 1 else terms[0] + terms[1]
