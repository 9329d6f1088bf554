"""TFLite export (litert-torch, ai-edge-quantizer, run in LiteRT): the int8 file quantizes the
network and keeps the front end in fp32; the full-integer pair takes and gives int8; bad
calibration data is one clear error. That the fp32 waveform graph matches torch (within 1e-4) is
checked by `export verify` on the shared bundle (tests/test_export_cli.py) and on a distilled
student's bundle, with what int8 keeps of a trained student (tests/test_distill.py); the presets
share their blocks and differ only in width."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from acula_edge.errors import AculaError

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")
pytest.importorskip("ai_edge_quantizer")


def tensor_types(path) -> dict[str, list[tuple[str, str]]]:
    """Op name -> [(first input dtype, output dtype)] of a .tflite file."""
    from acula_edge.device.runtime import tflite_interpreter

    it = tflite_interpreter(path)
    it.allocate_tensors()
    dtype = {t["index"]: np.dtype(t["dtype"]).name for t in it.get_tensor_details()}
    out: dict[str, list[tuple[str, str]]] = {}
    for op in it._get_ops_details():  # the interpreter's op list (no public accessor)
        if len(op["inputs"]) and len(op["outputs"]) and op["inputs"][0] >= 0:
            out.setdefault(op["op_name"], []).append((dtype[op["inputs"][0]], dtype[op["outputs"][0]]))
    return out


def test_tflite_int8_and_the_full_integer_pair(student_ckpt, exported, tmp_path):
    """The TFLite files of the shared test bundle (`python -m export --formats onnx,tflite --int8`)."""
    from export.tflite import quantize

    bundle = student_ckpt[0] / "bundle"
    files = {n: bundle / n for n in ("model_fp32.tflite", "model_int8.tflite", "frontend_fp32.tflite",
                                     "network_int8.tflite")}
    assert all(f.is_file() for f in files.values())
    fp32, int8, net = (tensor_types(files[n]) for n in ("model_fp32.tflite", "model_int8.tflite", "network_int8.tflite"))
    assert all(i == "float32" for i, _ in fp32["CONV_2D"])
    assert int8["LOG"] == [("float32", "float32")] and int8["REDUCE_MIN"] == [("float32", "float32")]  # front end fp32
    assert all(i == "int8" and o == "int8" for i, o in int8["CONV_2D"])  # the network runs in int8
    assert int8["SQRT"] == [("float32", "float32")]  # the L2 norm: tflite-runtime 2.14 has no int8 SQRT
    for f in files.values():  # TFLite builtins only (no Flex or custom op): what LiteRT on Android runs
        assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", op) and op != "CUSTOM" for op in tensor_types(f)), f.name
    assert {t for op, types in net.items() if op != "DELEGATE" for t in types} == {("int8", "int8")}  # every op
    assert {"CONV_2D", "FULLY_CONNECTED", "LOGISTIC"} <= set(net) and "LOG" not in net
    assert files["model_int8.tflite"].stat().st_size < files["model_fp32.tflite"].stat().st_size
    assert files["network_int8.tflite"].stat().st_size < 0.5 * files["frontend_fp32.tflite"].stat().st_size

    from acula_edge.device.runtime import tflite_interpreter

    runner = tflite_interpreter(files["network_int8.tflite"]).get_signature_runner()
    assert {d["dtype"] for d in [*runner.get_input_details().values(), *runner.get_output_details().values()]} == {np.int8}
    with pytest.raises(AculaError, match="calibration data must be rows of shape"):
        quantize(files["model_fp32.tflite"], tmp_path / "bad.tflite", np.zeros((2, 100), np.float32))


def test_a_graph_litert_cannot_lower_is_one_clear_error(tmp_path):
    """torch.stft makes complex tensors, which TFLite has no type for (hence the DFT convolution)."""
    from export.tflite import convert

    class Stft(torch.nn.Module):
        def forward(self, waveform):
            return torch.stft(waveform, 64, return_complex=True).abs()

    with pytest.raises(AculaError, match="TFLite conversion failed"):
        convert(Stft(), tmp_path / "stft.tflite", torch.zeros(1, 256), "waveform", ("spectrum",))
    assert not (tmp_path / "stft.tflite").exists()
