"""ONNX export: int8 quantization (onnxruntime static QDQ) of a student on real log-mel windows (the
int8 file is smaller, its convolutions run quantized, the input normalisation stays fp32, bad
calibration data is one clear error; what int8 keeps of a trained student: tests/test_distill.py),
and the waveform-in graph of every student against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from acula_edge.errors import AculaError


@pytest.mark.slow
def test_int8_student_graph(tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    from acula_edge.data.synth import generate
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models.students import create_student
    from export.onnx import before_first_conv, export_student, logmel_windows, quantize_int8
    from acula_edge.device.runtime import session

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
    with pytest.raises(AculaError, match="calibration data must be 3-d inputs for 'logmel'"):
        quantize_int8(fp32, tmp_path / "bad.onnx", windows[0])


# the presets share their blocks and differ in width; mn-xs's waveform graph is checked against torch in
# the shared bundle (test_export_cli), so the widest preset is the one exported here
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mn-l"])
def test_waveform_in_graph_matches_torch_in_onnxruntime(name, tmp_path):
    """The deployable graph (front end included): input ``waveform``, outputs ``embedding`` and
    probabilities ``scores``, the same in onnxruntime as in torch on real synthetic recordings."""
    pytest.importorskip("onnxruntime")
    from acula_edge.device.audio import load
    from acula_edge.data.synth import generate
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models.students import create_student
    from export.model import EdgeModel
    from export.onnx import export_onnx
    from acula_edge.device.runtime import session

    torch.manual_seed(0)
    model = EdgeModel(create_student(name, heads=("a", "b")), FrontendConfig().to_dict()).eval()
    records = generate(tmp_path / "corpus", 3, seed=1)
    waves = np.stack([np.resize(load(r.path, sample_rate=16000)[0], model.samples) for r in records])
    path = export_onnx(model, tmp_path / "m.onnx", torch.zeros(2, model.samples), "waveform", ("embedding", "scores"))
    sess = session(path)
    assert [i.name for i in sess.get_inputs()] == ["waveform"]
    assert [o.name for o in sess.get_outputs()] == ["embedding", "scores"]
    got = sess.run(None, {"waveform": waves})
    with torch.no_grad():
        want = [t.numpy() for t in model(torch.from_numpy(waves))]
    assert got[0].shape == (3, 512) and got[1].shape == (3, 2) and ((got[1] > 0) & (got[1] < 1)).all()
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_int8_waveform_graph_keeps_the_front_end_in_fp32(tmp_path):
    """The front end (DFT convolution, power, mel, log) and the input normalisation stay fp32; the
    network's convolutions are quantized."""
    pytest.importorskip("onnxruntime")
    import onnx

    from acula_edge.device.audio import load
    from acula_edge.data.synth import generate
    from acula_edge.frontend import FrontendConfig
    from acula_edge.models.students import create_student
    from export.model import EdgeModel
    from export.onnx import before_first_conv, export_onnx, quantize_int8
    from acula_edge.device.runtime import session

    torch.manual_seed(0)
    model = EdgeModel(create_student("mn-xs", heads=("a",)), FrontendConfig().to_dict()).eval()
    records = generate(tmp_path / "corpus", 6, seed=2)
    waves = np.stack([np.resize(load(r.path, sample_rate=16000)[0], model.samples) for r in records])
    fp32 = export_onnx(model, tmp_path / "m.onnx", torch.zeros(2, model.samples), "waveform", ("embedding", "scores"))
    kept = before_first_conv(fp32)
    ops = {n.name: n.op_type for n in onnx.load(str(fp32)).graph.node}
    assert {"Log", "MatMul", "ReduceMin"} <= {ops[k] for k in kept} and "Conv" not in [ops[k] for k in kept]
    int8 = quantize_int8(fp32, tmp_path / "q.onnx", waves)
    graph = onnx.load(str(int8)).graph
    made = {o: n for n in graph.node for o in n.output}
    log = next(n for n in graph.node if n.op_type == "Log")
    assert made[log.input[0]].op_type != "DequantizeLinear"  # the log reads fp32 values
    dft = next(n for n in graph.node if n.op_type == "MatMul")  # the front end's DFT comes first
    assert all(made.get(i) is None or made[i].op_type != "DequantizeLinear" for i in dft.input)  # fp32 waveform
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert convs and all(made[c.input[1]].op_type == "DequantizeLinear" for c in convs)  # the network's weights are int8
    tail = [n for n in graph.node if n.op_type in ("Gemm", "Sigmoid", "ReduceL2")]  # after the last convolution
    assert len(tail) == 4 and all(made.get(i) is None or made[i].op_type != "DequantizeLinear"
                                  for n in tail for i in n.input)  # fp32 in, fp32 weights
    out = session(int8).run(None, {"waveform": waves})
    assert out[0].shape == (6, 512) and out[1].shape == (6, 1) and np.isfinite(out[0]).all()


def test_the_onnx_front_end_keeps_its_floor_on_band_limited_audio(tmp_path):
    """A recording made at 2 kHz and read at 16 kHz has empty high bands: there the log-mel sits on
    the log offset's floor, in onnxruntime as in torch (the ONNX exporter drops an offset written as a
    Python literal)."""
    pytest.importorskip("onnxruntime")
    from acula_edge.device.audio import load
    from acula_edge.frontend import FrontendConfig, LogMel
    from conftest import write_tone
    from export.onnx import export_onnx
    from acula_edge.device.runtime import session

    write_tone(tmp_path / "heart.wav", rate=2000, seconds=5.0, freq=90.0)
    fe = LogMel(FrontendConfig()).eval()
    x = load(tmp_path / "heart.wav", sample_rate=16000)[0][None, :66048]
    path = export_onnx(fe, tmp_path / "fe.onnx", torch.zeros(2, 66048), "waveform", ("logmel",))
    got = session(path).run(None, {"waveform": x})[0]
    with torch.no_grad():
        want = fe(torch.from_numpy(x)).numpy()
    assert want.min() == pytest.approx(-100.0, abs=0.01)  # the empty bands sit on the floor
    np.testing.assert_allclose(got, want, atol=0.05)  # dB (float32 noise in quiet bands); a lost offset is 38 dB off
