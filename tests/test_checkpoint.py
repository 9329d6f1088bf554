"""Checkpoints: safetensors weights and a JSON sidecar that rebuilds the encoder, written atomically."""

from __future__ import annotations

import json

import pytest
import torch

from acula_edge.checkpoint import load_checkpoint, save_checkpoint, subject_hash
from acula_edge.errors import AculaError
from acula_edge.frontend import FrontendConfig
from acula_edge.models import create_encoder
from acula_edge.models.heads import Projection


def test_round_trip_rebuilds_the_same_encoder(tmp_path):
    torch.manual_seed(0)
    enc = create_encoder("vit-tiny")
    path = save_checkpoint(tmp_path / "run" / "encoder.safetensors", enc, FrontendConfig().to_dict(),
                           {"loss": "cka"}, subjects=["sprsound/1", "sprsound/2"],
                           modules={"audio_proj": Projection(enc.embed_dim, 32, 16)})
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["trained_subjects_sha256"] == sorted([subject_hash("sprsound/1"), subject_hash("sprsound/2")])
    assert "sprsound/1" not in path.with_suffix(".json").read_text()
    model, side = load_checkpoint(path)
    x = torch.randn(2, 64, 300)
    with torch.inference_mode():
        assert torch.equal(model.features(x), enc.eval().features(x))
    assert side["training"] == {"loss": "cka"} and side["frontend"]["n_mels"] == 64
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_bad_checkpoints_are_one_clear_error(tmp_path):
    with pytest.raises(AculaError, match="not found"):
        load_checkpoint(tmp_path / "none.safetensors")
    (tmp_path / "a.safetensors").write_bytes(b"junk")
    with pytest.raises(AculaError, match="no sidecar"):
        load_checkpoint(tmp_path / "a.safetensors")
    enc = create_encoder("cnn-tiny")
    p = save_checkpoint(tmp_path / "b.safetensors", enc, FrontendConfig().to_dict())
    p.write_bytes(b"junk")
    with pytest.raises(AculaError, match="not a readable safetensors"):
        load_checkpoint(p)
    side = json.loads(p.with_suffix(".json").read_text())
    save_checkpoint(tmp_path / "c.safetensors", create_encoder("vit-tiny"), FrontendConfig().to_dict())
    (tmp_path / "c.json").write_text(json.dumps(side))  # the sidecar of another architecture
    with pytest.raises(AculaError, match="do not fit"):
        load_checkpoint(tmp_path / "c.safetensors")
    with pytest.raises(AculaError, match=".safetensors"):
        save_checkpoint(tmp_path / "d.pt", enc, {})
