"""Students: every registered preset runs forward and backward, exports to ONNX and matches
onnxruntime; sizes span about 50k to 1M parameters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acula_edge.errors import AculaError
from acula_edge.models import create_encoder
from acula_edge.models.students import create_student, list_students, student_from_config


# the presets share their blocks and differ in width: the narrowest and the widest
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mn-xs", "mn-l"])
def test_student_forward_backward_onnx_parity(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    s = create_student(name, heads=("adventitious", "abnormal_heart"))
    cfg = s.config
    x = torch.randn(4, cfg.n_mels, cfg.window_frames) * 10 - 40
    emb, logits = s(x)
    assert emb.shape == (4, cfg.embed_dim) and logits.shape == (4, 2)
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)
    (emb.sum() + logits.sum()).backward()
    grads = [p.grad for p in s.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0

    from export.onnx import export_student

    s.eval()
    path = export_student(s, tmp_path / f"{name}.onnx")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (1, 3):
        xb = (torch.randn(b, cfg.n_mels, cfg.window_frames) * 10 - 40)
        got = sess.run(None, {"logmel": xb.numpy()})
        with torch.no_grad():
            want = [t.numpy() for t in s(xb)]
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)


def test_student_sizes_and_config_round_trip():
    teacher = create_encoder("vit-small").num_parameters("encoder")
    sizes = {n: create_student(n).num_parameters() for n in list_students()}
    assert 40_000 <= min(sizes.values()) <= 80_000 and 0.8e6 <= max(sizes.values()) <= 1.1e6
    assert teacher / sizes["mn-l"] >= 20  # the largest student is 20x smaller than vit-small's encoder
    s = create_student("mn-s", heads=("a",), act="relu", se=False)
    t = student_from_config(s.config.to_dict())
    t.load_state_dict(s.state_dict())
    x = torch.randn(2, 64, 128)
    s.eval(), t.eval()
    assert all(torch.equal(a, b) for a, b in zip(s(x), t(x)))
    assert not any(isinstance(m, torch.nn.Hardswish) for m in s.modules())
    assert create_student("mn-s").macs_per_window() > create_student("mn-xs").macs_per_window() > 0


def test_student_errors():
    with pytest.raises(AculaError, match="unknown student"):
        create_student("resnet")
    with pytest.raises(AculaError, match="unknown student option"):
        create_student("mn-s", depth=3)
    with pytest.raises(AculaError, match="act is one of"):
        create_student("mn-s", act="gelu")
    with pytest.raises(AculaError, match="takes \\[batch, 64, 128\\]"):
        create_student("mn-s")(torch.randn(2, 64, 100))


def test_the_modality_and_event_heads_add_outputs_and_keep_the_rest():
    torch.manual_seed(0)
    plain = create_student("mn-xs", heads=("a",))
    full = create_student("mn-xs", heads=("a",), modalities=("heart", "lung"), events=("wheeze", "crackle"))
    x = torch.randn(3, 64, 128) * 10 - 40
    o = full.eval().raw(x)
    assert {k: tuple(v.shape) for k, v in o.items()} == {"embedding": (3, 512), "logits": (3, 1), "modality": (3, 2),
                                                        "events": (3, 16, 2)}
    assert full.config.event_steps == 16 and plain.config.event_steps == 0 and set(plain.raw(x)) == {"embedding", "logits"}
    # the shared layers keep their names: a plain student's weights load into one with the new heads
    missing, unexpected = full.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("modality.", "event_head.")) for k in missing)
    t = student_from_config(full.config.to_dict())
    assert t.config == full.config and t.config.modalities == ("heart", "lung")


def test_event_head_config_errors():
    with pytest.raises(AculaError, match="event_stride 3"):
        create_student("mn-xs", events=("wheeze",), event_stride=3)
    with pytest.raises(AculaError, match="window_frames a multiple"):
        create_student("mn-xs", events=("wheeze",), window_frames=100)
    with pytest.raises(AculaError, match="at least two modalities"):
        create_student("mn-xs", modalities=("lung",))
