"""Distillation losses: values at known points, invariances, masking of missing labels, and that
descending them moves a student toward its targets."""

from __future__ import annotations

import pytest
import torch

from acula_edge.errors import AculaError
from distill.losses import (DistillWeights, distill_loss, embedding_loss, event_loss, head_loss, modality_loss,
                            relational_loss, text_anchor_loss)


def test_embedding_and_text_losses():
    torch.manual_seed(0)
    t = torch.randn(8, 16)
    assert float(embedding_loss(t * 3.0, t)) == pytest.approx(0.0, abs=1e-6)  # direction only
    assert float(embedding_loss(-t, t)) == pytest.approx(2.0, abs=1e-6)
    assert float(embedding_loss(t, t, "mse")) == pytest.approx(0.0, abs=1e-7)
    assert float(embedding_loss(torch.randn(8, 16), t, "mse")) > 0.05
    assert float(text_anchor_loss(t, t)) == pytest.approx(0.0, abs=1e-6)
    # centred: a constant output at the teacher's common direction scores well on cosine, not here
    common = torch.nn.functional.normalize(torch.randn(1, 16), dim=1)
    u = torch.nn.functional.normalize(common * 10 + 0.3 * torch.randn(8, 16), dim=1)
    mean = u.mean(0)
    constant = mean.expand(8, 16) + 1e-3 * torch.randn(8, 16)
    assert float(embedding_loss(constant, u)) < 0.01
    assert float(embedding_loss(constant, u, "centred", mean)) > 0.9
    assert float(embedding_loss(u * 2.0, u, "centred", mean)) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ValueError, match="mean embedding"):
        embedding_loss(u, u, "centred")
    with pytest.raises(AculaError):
        embedding_loss(t, t, "l1")
    with pytest.raises(ValueError):
        embedding_loss(t[:, :8], t)


def test_relational_losses_see_geometry_not_rotation():
    torch.manual_seed(1)
    t = torch.randn(10, 12)
    q, _ = torch.linalg.qr(torch.randn(12, 12))
    for kind in ("similarity", "cka"):
        assert float(relational_loss(t @ q, t, kind)) == pytest.approx(0.0, abs=1e-5)  # rotated: same geometry
        assert float(relational_loss(t[torch.randperm(10)], t, kind)) > 0.01  # other pairing: different
    with pytest.raises(ValueError):
        relational_loss(t[:1], t[:1])


def test_head_loss_mixes_labels_and_soft_targets_and_skips_missing():
    logits = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])
    labels = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    soft = torch.tensor([[0.7, 0.5], [0.2, 0.6]])
    known = ~torch.isnan(labels)
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    want_hard = bce(logits[known], labels[known])
    want_soft = bce(logits[known], soft[known])
    assert float(head_loss(logits, labels)) == pytest.approx(float(want_hard))
    assert float(head_loss(logits, labels, soft, 0.3)) == pytest.approx(float(0.3 * want_hard + 0.7 * want_soft))
    assert float(head_loss(logits, labels, soft, 1.0)) == pytest.approx(float(want_hard))
    assert float(head_loss(logits, torch.full_like(labels, float("nan")))) == 0.0


def test_balanced_head_loss_gives_both_classes_the_same_weight():
    # 1 positive in 5: unweighted BCE of one shared logit is least at the prior's log-odds, the
    # balanced one at 0 (both classes count the same); a rate of one half changes nothing
    labels = torch.tensor([[1.0], [0.0], [0.0], [0.0], [0.0]])
    rate = labels.mean(0)
    grid = torch.linspace(-3, 3, 601)
    plain = torch.stack([head_loss(torch.full_like(labels, float(c)), labels) for c in grid])
    balanced = torch.stack([head_loss(torch.full_like(labels, float(c)), labels, positive_rate=rate) for c in grid])
    assert float(grid[plain.argmin()]) == pytest.approx(float(torch.logit(rate)), abs=0.02)
    assert float(grid[balanced.argmin()]) == pytest.approx(0.0, abs=0.02)
    logits = torch.randn(5, 1)
    assert float(head_loss(logits, labels, positive_rate=torch.tensor([0.5]))) == pytest.approx(float(head_loss(logits, labels)))
    w = DistillWeights(embedding=0, relational=0, text=0, balance_heads=True)
    x = torch.randn(5, 4)
    on, _ = distill_loss(x, x, w, logits=logits, labels=labels, positive_rate=rate)
    off, _ = distill_loss(x, x, DistillWeights(embedding=0, relational=0, text=0), logits=logits, labels=labels,
                          positive_rate=rate)
    assert float(on) == pytest.approx(float(head_loss(logits, labels, positive_rate=rate)))
    assert float(off) == pytest.approx(float(head_loss(logits, labels)))


def test_descending_the_combined_loss_moves_a_student_toward_the_teacher():
    torch.manual_seed(2)
    teacher = torch.nn.functional.normalize(torch.randn(16, 8), dim=1)
    text = teacher + 0.1 * torch.randn(16, 8)
    labels = (teacher[:, :1] > 0).float()
    x = torch.randn(16, 32)  # wide enough to fit the targets exactly
    lin = torch.nn.Linear(32, 8)
    head = torch.nn.Linear(32, 1)
    opt = torch.optim.Adam([*lin.parameters(), *head.parameters()], lr=0.05)
    w = DistillWeights(relational_kind="cka")
    first = None
    for _ in range(200):
        loss, parts = distill_loss(lin(x), teacher, w, text, head(x), labels, torch.sigmoid(4 * teacher[:, :1]),
                                   teacher.mean(0))
        first = first if first is not None else parts
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert set(parts) == {"embedding", "relational", "text", "heads"}
    assert all(parts[k] < 0.2 * first[k] for k in ("embedding", "relational", "text")), (first, parts)
    assert parts["heads"] < 0.8 * first["heads"]  # soft targets leave an entropy floor
    with pytest.raises(AculaError, match="no distillation term"):
        distill_loss(lin(x), teacher, DistillWeights(embedding=0, relational=0, text=0, heads=0))
    with pytest.raises(AculaError):
        DistillWeights(embedding_kind="kl")


def test_modality_and_event_losses_leave_out_what_is_unknown_and_balance_rare_events():
    logits = torch.tensor([[4.0, -4.0], [-4.0, 4.0], [9.0, -9.0]])
    # the third window's modality is unknown (-1): its confident wrong answer costs nothing
    assert float(modality_loss(logits, torch.tensor([0, 1, -1]))) < 0.01
    assert float(modality_loss(logits, torch.tensor([1, 0, -1]))) > 7
    assert float(modality_loss(logits, torch.tensor([-1, -1, -1]))) == 0.0
    nan = float("nan")
    events = torch.zeros(2, 4, 1)
    targets = torch.tensor([[[0.0], [0.0], [0.0], [1.0]], [[nan], [nan], [nan], [nan]]])
    plain = float(event_loss(events, targets))
    assert plain == pytest.approx(float(torch.nn.functional.softplus(torch.tensor(0.0))), abs=1e-6)
    # "never" (misses the one positive) costs less than "always" (three false alarms) unbalanced; balanced at
    # the 25% positive rate (a positive weighs 2, a negative 2/3) the two classes weigh the same
    never = torch.tensor([[[-3.0], [-3.0], [-3.0], [-3.0]], [[0.0], [0.0], [0.0], [0.0]]])
    always = -never
    rate = torch.tensor([0.25])
    assert float(event_loss(never, targets)) < 0.5 * float(event_loss(always, targets))
    assert float(event_loss(never, targets, rate)) == pytest.approx(float(event_loss(always, targets, rate)), rel=1e-5)
    with pytest.raises(ValueError):
        event_loss(events, targets[:, :2])
    w = DistillWeights(embedding_kind="cosine", modality=0.5, events=2.0)
    t = torch.randn(3, 8)
    total, terms = distill_loss(t, t, w, modality=logits, modality_target=torch.tensor([1, 0, -1]),
                                events=torch.zeros(3, 4, 1), event_targets=torch.cat([targets, targets[:1]]))
    assert set(terms) >= {"modality", "events"} and terms["modality"] > 3.5 and terms["events"] == pytest.approx(
        2 * plain, abs=1e-5)
    with pytest.raises(AculaError):
        DistillWeights(events=-1.0)
