"""The synthetic corpus as a dataset format."""

from __future__ import annotations

import pytest

from acula_edge.datasets import load
from acula_edge.errors import DatasetError


def test_a_filter_that_removes_everything_is_an_error(tmp_path):
    from acula_edge.data import synth

    synth.generate(tmp_path, 3, seed=0, cfg=synth.SynthConfig(modality_weights={"cough": 1.0}, duration=1.0))
    assert len(load("synthetic", tmp_path, modality="cough")) == 3
    with pytest.raises(DatasetError, match="no synthetic recordings of modality heart .*manifest has cough"):
        load("synthetic", tmp_path, modality="heart")
