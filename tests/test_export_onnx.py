"""ONNX export and int8 quantization (onnxruntime static QDQ) of a student on real log-mel windows:
the int8 file is smaller, its convolutions run quantized, the input normalisation stays fp32, and
bad calibration data is one clear error. (What int8 keeps of a trained student: tests/test_distill.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acula_edge.errors import AculaError


def test_int8_student_graph(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    from acula_edge.data.synth import generate
    from acula_edge.frontend import FrontendConfig
    from distill.students import create_student
    from export.onnx import before_first_conv, export_student, logmel_windows, quantize_int8, session

    records = generate(tmp_path / "corpus", 8, seed=5)
    windows = np.concatenate(logmel_windows(records, FrontendConfig().to_dict(), 128))
    assert windows.shape[1:] == (64, 128) and len(windows) >= 8
    torch.manual_seed(0)
    fp32 = export_student(create_student("mn-s", heads=("a", "b")).eval(), tmp_path / "fp32.onnx")
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", windows)
    out = session(int8).run(None, {"logmel": windows[:3]})
    assert out[0].shape == (3, 512) and out[1].shape == (3, 2) and np.isfinite(out[0]).all()
    assert int8.stat().st_size < 0.5 * fp32.stat().st_size
    graph = onnx.load(str(int8)).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 20
    assert not any(n.op_type == "QuantizeLinear" for n in graph.node if "logmel" in n.input)
    assert before_first_conv(fp32), "the normalisation runs before the first convolution"
    with pytest.raises(AculaError, match="calibration data"):
        quantize_int8(fp32, tmp_path / "bad.onnx", windows[0])
