"""Alignment losses: CKA (standard and the released feature-Gram variant), InfoNCE, the registry."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from acula_edge.align.losses import (
    CKALoss,
    InfoNCELoss,
    create_loss,
    feature_gram_cka,
    linear_cka,
    list_losses,
    msm_align_loss,
)
from acula_edge.errors import AculaError


def num(t: torch.Tensor) -> float:
    """A scalar tensor as a Python float (detached, so no autograd warning)."""
    return float(t.detach())


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, g: torch.Generator, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=dtype)


def orthogonal(d: int, g: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(randn(d, d, g=g, dtype=torch.float64))
    return (q * torch.sign(torch.diagonal(r))).float()


def correlated(n: int, d: int, g: torch.Generator, noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """x and y = x Q + noise: strongly related, row i of y belongs to row i of x."""
    x = randn(n, d, g=g)
    return x, x @ orthogonal(d, g) + noise * randn(n, d, g=g)


def explicit_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """The textbook formula in float64: HSIC(K, L) = tr(K H L H) on n x n Grams."""
    x, y = x.double(), y.double()
    n = x.shape[0]
    h = torch.eye(n, dtype=torch.float64) - torch.full((n, n), 1.0 / n, dtype=torch.float64)
    k, l = x @ x.T, y @ y.T

    def hsic(a, b):
        return torch.trace(a @ h @ b @ h)

    return num(hsic(k, l) / torch.sqrt(hsic(k, k) * hsic(l, l)))


# ---------------------------------------------------------------------------------------- CKA


def test_cka_is_one_for_identical_inputs():
    g = gen(1)
    for n, d in [(64, 32), (16, 128), (200, 8)]:  # both computation routes (n < d and n > d)
        x = randn(n, d, g=g)
        assert num(linear_cka(x, x)) == pytest.approx(1.0, abs=1e-5)
        assert num(feature_gram_cka(x, x)) == pytest.approx(1.0, abs=1e-5)


def test_cka_invariant_to_orthogonal_transforms_and_isotropic_scaling():
    g = gen(2)
    x, y = correlated(128, 24, g)
    x2 = randn(128, 40, g=g)  # a different width on one side
    base, base2 = num(linear_cka(x, y)), num(linear_cka(x2, y))
    assert 0.5 < base < 0.99
    q1, q2, q3 = orthogonal(24, g), orthogonal(24, g), orthogonal(40, g)
    assert num(linear_cka(x @ q1, y @ q2)) == pytest.approx(base, abs=1e-5)
    assert num(linear_cka(x2 @ q3, y @ q2)) == pytest.approx(base2, abs=1e-5)
    for c in (1e-3, 0.5, 7.0, 1e4):
        assert num(linear_cka(c * x, y)) == pytest.approx(base, abs=1e-5)
        assert num(linear_cka(x, c * y)) == pytest.approx(base, abs=1e-5)
    # also invariant to a constant shift of the samples (centring)
    assert num(linear_cka(x + 5.0, y - 3.0)) == pytest.approx(base, abs=1e-5)


def test_cka_matches_the_explicit_gram_hsic_formula():
    g = gen(3)
    for n, d1, d2 in [(50, 16, 16), (20, 64, 32), (300, 8, 12)]:
        x = randn(n, d1, g=g)
        y = x[:, :1].repeat(1, d2) * 0.5 + randn(n, d2, g=g)  # partly related
        want = explicit_cka(x, y)
        assert num(linear_cka(x, y)) == pytest.approx(want, abs=1e-5)
        assert num(linear_cka(x.double(), y.double())) == pytest.approx(want, abs=1e-10)


def test_standard_cka_sees_pairing_and_feature_gram_does_not():
    g = gen(4)
    x, y = correlated(128, 32, g)
    perm = torch.randperm(128, generator=g)
    paired, shuffled = num(linear_cka(x, y)), num(linear_cka(x, y[perm]))
    assert paired > 0.85
    assert shuffled < 0.35  # about d / (n + d) = 0.2, the value for unrelated data
    assert paired - shuffled > 0.5
    feat, feat_shuffled = num(feature_gram_cka(x, y)), num(feature_gram_cka(x, y[perm]))
    assert feat_shuffled == pytest.approx(feat, abs=1e-5)
    # and the loss modules agree with the functions
    assert num(create_loss("cka")(x, y[perm])) == pytest.approx(1 - shuffled, abs=1e-6)
    assert num(create_loss("cka-feature")(x, y[perm])) == pytest.approx(1 - feat, abs=1e-5)


def test_cka_of_independent_matrices_is_small():
    # For independent Gaussian X [n, d1], Y [n, d2]: E||Yc^T Xc||^2 ~ (n-1) d1 d2 and
    # E||Xc^T Xc||^2 ~ (n-1) d1 (n + d1), so CKA ~ sqrt(d1 d2 / ((n + d1)(n + d2))) = d / (n + d)
    # = 32 / 288 = 0.111 here, with a standard deviation of about 0.005 (measured over 500 draws).
    g = gen(5)
    n, d = 256, 32
    values = [num(linear_cka(randn(n, d, g=g), randn(n, d, g=g))) for _ in range(5)]
    for v in values:
        assert v < 0.3
        assert v == pytest.approx(d / (n + d), abs=0.04)


def test_cka_bf16_inputs_and_gradients():
    g = gen(6)
    x, y = correlated(64, 32, g)
    xb = x.bfloat16().requires_grad_()
    yb = y.bfloat16()
    v = linear_cka(xb, yb)
    assert v.dtype == torch.float32
    assert num(v) == pytest.approx(num(linear_cka(x, y)), abs=0.02)
    assert num(linear_cka(xb, xb)) == pytest.approx(1.0, abs=1e-5)
    (1 - v).backward()
    assert xb.grad is not None and xb.grad.dtype == torch.bfloat16 and torch.isfinite(xb.grad.float()).all()
    assert num(feature_gram_cka(xb, yb)) == pytest.approx(num(feature_gram_cka(x, y)), abs=0.02)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert create_loss("cka")(x, y).dtype == torch.float32
        assert num(create_loss("infonce")(x, y)) > 0


def test_cka_gradient_raises_alignment_and_constant_input_is_safe():
    g = gen(7)
    x = randn(32, 16, g=g).requires_grad_()
    y = randn(32, 16, g=g)
    loss_fn = CKALoss()
    start = num(loss_fn(x, y))
    for _ in range(30):  # plain gradient descent (torch.optim's first step imports dynamo: slow)
        (grad,) = torch.autograd.grad(loss_fn(x, y), x)
        with torch.no_grad():
            x -= 50.0 * grad
    assert num(loss_fn(x, y)) < start - 0.2
    const = torch.ones(8, 4, requires_grad=True)
    v = linear_cka(const, randn(8, 4, g=g))
    v.backward()
    assert num(v) == 0.0 and torch.isfinite(const.grad).all()


def test_cka_rejects_bad_shapes():
    g = gen(8)
    with pytest.raises(ValueError):
        linear_cka(randn(8, 4, g=g), randn(9, 4, g=g))
    with pytest.raises(ValueError):
        linear_cka(randn(1, 4, g=g), randn(1, 4, g=g))
    with pytest.raises(ValueError):
        feature_gram_cka(randn(8, 4, g=g), randn(8, 5, g=g))


# ---------------------------------------------------------------------------------------- InfoNCE


def test_infonce_is_symmetric():
    g = gen(10)
    a, t = correlated(48, 32, g, noise=1.0)
    loss = create_loss("infonce")
    assert num(loss(a, t)) == pytest.approx(num(loss(t, a)), abs=1e-6)


def test_infonce_near_log_n_for_random_embeddings_at_temperature_one():
    g = gen(11)
    n, k = 64, 256
    loss = InfoNCELoss()
    with torch.no_grad():
        loss.logit_scale.fill_(0.0)  # temperature 1
    v = num(loss(randn(n, k, g=g), randn(n, k, g=g)))
    assert v == pytest.approx(math.log(n), abs=0.05)


def test_infonce_small_for_perfect_pairs_with_large_logit_scale():
    g = gen(12)
    a = randn(32, 256, g=g)
    loss = InfoNCELoss()
    with torch.no_grad():
        loss.logit_scale.fill_(math.log(100.0))
    assert num(loss(a, 3.0 * a)) < 1e-3
    # the default temperature (0.07) is CLIP's, and the scale is clamped at 100
    fresh = InfoNCELoss()
    assert num(fresh.logit_scale) == pytest.approx(math.log(1 / 0.07), abs=1e-6)
    with torch.no_grad():
        fresh.logit_scale.fill_(10.0)
    assert num(fresh.scale()) == pytest.approx(100.0, rel=1e-5)
    fresh.clamp_logit_scale_()
    assert num(fresh.logit_scale) == pytest.approx(math.log(100.0), abs=1e-6)


def test_infonce_gradients_flow_to_logit_scale_and_inputs():
    g = gen(13)
    a = randn(16, 32, g=g).requires_grad_()
    t = randn(16, 32, g=g)
    loss = create_loss("infonce")
    params = list(loss.parameters())
    assert len(params) == 1 and params[0] is loss.logit_scale
    loss(a, t).backward()
    assert loss.logit_scale.grad is not None and num(loss.logit_scale.grad.abs()) > 0
    assert a.grad is not None and num(a.grad.abs().sum()) > 0
    ab = a.detach().bfloat16().requires_grad_()
    v = loss(ab, t.bfloat16())
    assert v.dtype == torch.float32 and math.isfinite(num(v))
    v.backward()
    assert ab.grad is not None and torch.isfinite(ab.grad.float()).all()
    fixed = create_loss("infonce", learn_temperature=False)
    assert list(fixed.parameters()) == []


# ---------------------------------------------------------------------------------------- registry


def test_registry_lists_and_rejects_unknown_names():
    assert {"cka", "cka-feature", "infonce"} <= set(list_losses())
    assert isinstance(create_loss("cka"), torch.nn.Module)
    with pytest.raises(AculaError) as e:
        create_loss("cosine")
    assert "cka" in str(e.value) and "infonce" in str(e.value)
    with pytest.raises(AculaError, match="temperature"):
        create_loss("cka", temperature=0.1)


def test_msm_align_loss_weights_the_terms():
    a, m = torch.tensor(0.25), torch.tensor(2.0)
    assert num(msm_align_loss(a, m)) == pytest.approx(2.25)
    assert num(msm_align_loss(a, m, lambda_align=2.0, lambda_msm=0.5)) == pytest.approx(1.5)
    assert num(msm_align_loss(a, None, lambda_msm=0.0)) == pytest.approx(0.25)
    assert num(msm_align_loss(torch.tensor(float("nan")), m, lambda_align=0.0)) == pytest.approx(2.0)
    with pytest.raises(ValueError):
        msm_align_loss(a, m, lambda_align=0.0, lambda_msm=0.0)
