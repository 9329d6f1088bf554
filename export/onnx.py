"""ONNX export of a student network and its int8 quantization (onnxruntime static QDQ).

The network takes the log-mel window (``logmel`` float32 ``[batch, n_mels, window_frames]``, in dB)
and gives ``embedding`` ``[batch, D]`` and ``logits`` ``[batch, H]``. :func:`quantize_int8` runs
onnxruntime's maintained route: ``quant_pre_process``, then ``quantize_static`` with QDQ nodes,
int8 weights (per channel) and activations, calibrated on real log-mel windows with min/max ranges.
Nodes named in ``exclude`` stay fp32 (by default everything before the first convolution, which
sees raw dB values, and everything after the last: pooling, embedding and heads).
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from acula_edge.data.records import atomic_write
from acula_edge.errors import AculaError

INPUT, OUTPUTS = "logmel", ("embedding", "logits")


def export_onnx(model, path: str | Path, example, input_name: str, output_names: Sequence[str],
                max_batch: int = 64) -> Path:
    """Write ``model`` (eval mode) as ONNX with a dynamic batch (``example``'s first axis); atomically."""
    import torch

    model = model.eval()
    batch = torch.export.Dim("batch", min=1, max=max_batch)
    path = Path(path)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter warns about optional torchvision ops these models never use
    try:
        with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            t = Path(tmp) / "model.onnx"
            try:
                torch.onnx.export(model, (example,), str(t), input_names=[input_name], output_names=list(output_names),
                                  dynamo=True, external_data=False, opset_version=18,
                                  dynamic_shapes={next(iter(_forward_args(model))): {0: batch}}, verbose=False)
            except Exception as e:  # the exporter raises many kinds; one line names the cause
                first = str(e).strip().splitlines()[0] if str(e).strip() else ""
                raise AculaError(f"ONNX export failed: {type(e).__name__}: {first}") from e
            data = t.read_bytes()
    finally:
        quiet.setLevel(level)
    atomic_write(path, lambda f: f.write(data))
    return path


def _forward_args(model) -> list[str]:
    """The names of ``model.forward``'s arguments (the keys of ``dynamic_shapes``)."""
    import inspect

    return [n for n in inspect.signature(model.forward).parameters]


def export_student(student, path: str | Path, max_batch: int = 64) -> Path:
    """The student network alone (log-mel window in) as ONNX with a dynamic batch."""
    import torch

    cfg = student.config
    return export_onnx(student, path, torch.zeros(2, cfg.n_mels, cfg.window_frames), INPUT, OUTPUTS, max_batch)


def before_first_conv(model_path: str | Path) -> list[str]:
    """Nodes to keep in fp32: those before the network's first (2-D) convolution. For a log-mel input
    that is the network's input normalisation; for a waveform input it is also the whole front end
    (the DFT as a matrix product or a 1-D convolution, power, mel product, log). Quantizing power,
    mel or log destroys accuracy, and an int8 waveform keeps 256 levels, too few for quiet body
    sounds: a PhysioNet head lost most of its AUROC with the DFT quantized."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    rank = {i.name: len(i.dims) for i in graph.initializer}
    names: list[str] = []
    for node in graph.node:
        if node.op_type == "Conv" and rank.get(node.input[1]) != 3:  # rank-3 weights: the front end's Conv1d DFT
            return names
        names.append(node.name)
    return names


def after_last_conv(model_path: str | Path) -> list[str]:
    """Nodes to keep in fp32 at the other end: those after the network's last convolution (pooling, the
    embedding and head layers, the sigmoid, the L2 normalisation). They cost a few thousand
    multiply-adds, and int8 there leaves a weakly separating head few distinct score levels: an
    undertrained student's scores all fell on one level, AUROC 0.5."""
    import onnx

    nodes = list(onnx.load(str(model_path)).graph.node)
    last = max((i for i, n in enumerate(nodes) if n.op_type == "Conv"), default=len(nodes) - 1)
    return [n.name for n in nodes[last + 1:] if n.name]


def logmel_windows(records: Sequence, frontend: dict, frames: int) -> list[np.ndarray]:
    """Each recording's log-mel windows ``[k, n_mels, frames]`` (the students' chunk rule): the
    network's input, for calibration and for checks."""
    import torch

    from acula_edge.device.audio import load
    from acula_edge.frontend import FrontendConfig, LogMel
    from acula_edge.models import chunk_frames

    fe = FrontendConfig.from_dict(frontend)
    logmel = LogMel(fe)
    out = []
    with torch.inference_mode():
        for r in records:
            m = logmel(torch.from_numpy(load(r.path, sample_rate=fe.sample_rate)[0])[None])
            out.append(chunk_frames(m, [m.shape[2]], frames)[0].numpy())
    return out


def waveform_windows(records: Sequence, sample_rate: int, samples: int, limit: int = 256,
                     seed: int = 0) -> np.ndarray:
    """Up to ``limit`` waveform windows ``[N, samples]`` cut from ``records`` (every half window),
    drawn at random: the waveform graph's calibration input. Unreadable files are skipped; none
    readable is one clear error."""
    from acula_edge.device.audio import load
    from acula_edge.device.windows import cut_windows

    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for i in rng.permutation(len(records)):
        try:
            x = load(records[i].path, sample_rate=sample_rate)[0]
        except AculaError:
            continue
        out.extend(cut_windows(x, samples, samples // 2)[1])
        if len(out) >= 4 * limit:
            break
    if not out:
        raise AculaError(f"none of the {len(records)} calibration recordings could be read")
    pick = rng.choice(len(out), min(limit, len(out)), replace=False)
    return np.stack([out[k] for k in sorted(pick)]).astype(np.float32)


#: activation range calibrators of :func:`quantize_int8`: min/max, or the 99.99th percentile of |x|
CALIBRATORS = ("minmax", "percentile")


def quantize_int8(fp32: str | Path, out: str | Path, calibration: np.ndarray,
                  exclude: Sequence[str] | None = None, batch: int = 16, calibrator: str = "minmax",
                  fmt: str = "qdq", per_channel: bool = True, op_types: Sequence[str] | None = None) -> Path:
    """Static int8 model of ``fp32`` calibrated on ``calibration``: inputs of the model's input
    (log-mel windows ``[N, n_mels, T]`` or waveforms ``[N, samples]``). ``calibrator``: how the
    activations' ranges are set (:data:`CALIBRATORS`; a percentile ignores rare outliers).

    ``exclude``: node names kept in fp32 (default: :func:`before_first_conv` and :func:`after_last_conv`).
    ``fmt``: ``qdq`` (QuantizeLinear/DequantizeLinear pairs around fp32 ops, int8 activations) or
    ``qoperator`` (QLinearConv and the like, uint8 activations); ``per_channel`` weight scales or
    one per tensor; ``op_types``: the op types to quantize (default every one onnxruntime can).
    """
    import onnx

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if calibrator not in CALIBRATORS:
        raise AculaError(f"unknown calibrator {calibrator!r}; choose one of: {', '.join(CALIBRATORS)}")
    if fmt not in ("qdq", "qoperator"):
        raise AculaError(f"unknown int8 format {fmt!r}; choose qdq or qoperator")
    graph_input = onnx.load(str(fp32)).graph.input[0]
    rank = len(graph_input.type.tensor_type.shape.dim)
    calibration = np.asarray(calibration, np.float32)
    if calibration.ndim != rank or calibration.shape[0] == 0:
        raise AculaError(f"calibration data must be {rank}-d inputs for '{graph_input.name}' with at least one row")

    class Windows(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{graph_input.name: calibration[i:i + batch]}
                                 for i in range(0, len(calibration), batch)])

        def get_next(self):
            return next(self.batches, None)

    out = Path(out)
    with tempfile.TemporaryDirectory() as tmp:
        pre, q = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        try:
            method = CalibrationMethod.MinMax if calibrator == "minmax" else CalibrationMethod.Percentile
            qdq = fmt == "qdq"
            quantize_static(str(pre), str(q), Windows(), quant_format=QuantFormat.QDQ if qdq else QuantFormat.QOperator,
                            per_channel=per_channel, activation_type=QuantType.QInt8 if qdq else QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=method,
                            op_types_to_quantize=list(op_types) if op_types else None,
                            nodes_to_exclude=list(before_first_conv(pre) + after_last_conv(pre) if exclude is None
                                                  else exclude),
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                           "CalibPercentile": 99.99})
        except ValueError as e:  # the percentile's histogram cannot bin an activation of (almost) no range
            if calibrator == "minmax":
                raise
            raise AculaError(f"percentile calibration failed ({e}): an activation hardly varies over the calibration "
                             "windows (an untrained network?); use the minmax calibrator") from None
        data = q.read_bytes()
    atomic_write(out, lambda f: f.write(data))
    return out


def fold_weight_quantization(path: str | Path) -> Path:
    """Store each QuantizeLinear of a constant (a weight) as its int8 or uint8 result, in place: the
    same graph, a quarter of the weight bytes. ONNX rounding (half to even) and saturation."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    keep, folded = [], []
    for n in g.node:
        if n.op_type != "QuantizeLinear" or len(n.input) < 3 or not all(i in inits for i in n.input[:3]):
            keep.append(n)
            continue
        w, scale, zero = (numpy_helper.to_array(inits[i]) for i in n.input[:3])
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        shape = [1] * w.ndim
        if scale.ndim:
            shape[axis % w.ndim] = -1
        info = np.iinfo(zero.dtype)
        q = np.clip(np.round(w / scale.reshape(shape)) + zero.reshape(shape).astype(np.int32), info.min, info.max)
        folded.append(numpy_helper.from_array(q.astype(zero.dtype), n.output[0]))
    needed = {i for n in keep for i in n.input} | {o.name for o in g.output}
    kept = [i for i in g.initializer if i.name in needed] + folded
    del g.node[:], g.initializer[:]
    g.node.extend(keep)
    g.initializer.extend(kept)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    atomic_write(Path(path), lambda f: f.write(data))
    return Path(path)


def strip_debug(graph) -> None:
    """Drop what only a debugger reads: each node's exporter notes (module paths, rewrite rules, about
    1.7 KB a node), doc strings and the inferred shapes of intermediate values."""
    for node in graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del graph.value_info[:]


def compact_front_end(path: str | Path, frontend: dict) -> Path:
    """Store the front end's DFT basis (``2 * bins * n_fft`` floats, about 4 MB at n_fft 1024) as the
    few nodes that make it, in place: ``basis[k, n] = table[(k * n) mod n_fft] * window[n]`` from a cos
    and a sin table of ``n_fft`` values. onnxruntime folds them back into the same basis when it loads
    the file, so the same graph runs; the file shrinks by the basis. A file without the basis (a
    log-mel input graph) keeps its graph. Either way :func:`strip_debug` runs on it."""
    import onnx
    from onnx import numpy_helper

    from acula_edge.frontend import FrontendConfig, dft_basis

    fe = FrontendConfig.from_dict(frontend)
    basis = dft_basis(fe)
    model = onnx.load(str(path))
    g = model.graph
    strip_debug(g)
    layouts = {basis.shape: None, basis.shape[::2][::-1]: [1, 0]}  # Conv1d weights, or [n_fft, 2 * bins] (a MatMul)
    flat = basis[:, 0, :]
    hit = next((i for i in g.initializer if tuple(i.dims) in layouts and np.allclose(
        numpy_helper.to_array(i).reshape(-1, fe.n_fft) if len(i.dims) == 3 else numpy_helper.to_array(i).T, flat,
        rtol=0, atol=1e-6)), None)
    if hit is not None:
        _compact_basis(g, hit, layouts[tuple(hit.dims)], fe, basis)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    atomic_write(Path(path), lambda fh: fh.write(data))
    return Path(path)


def _compact_basis(g, hit, perm: list[int] | None, fe, basis: np.ndarray) -> None:
    """Replace the initializer ``hit`` (the DFT basis) with the nodes that make it."""
    from onnx import helper, numpy_helper

    from acula_edge.frontend import used_bins, window

    flat = basis[:, 0, :]
    n = fe.n_fft
    ang = 2 * np.pi * np.arange(n) / n
    name = hit.name
    consts = {f"{name}/k": np.arange(*used_bins(fe), dtype=np.int64)[:, None], f"{name}/n": np.arange(n, dtype=np.int64)[None],
              f"{name}/size": np.array(n, np.int64),
              f"{name}/table": np.stack([np.cos(ang), -np.sin(ang)]).astype(np.float32),
              f"{name}/window": window(fe).astype(np.float32),
              f"{name}/shape": np.array(basis.shape if perm is None else flat.shape, np.int64)}
    nodes = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v, k)) for k, v in consts.items()]
    nodes += [helper.make_node("Mul", [f"{name}/k", f"{name}/n"], [f"{name}/kn"]),
              helper.make_node("Mod", [f"{name}/kn", f"{name}/size"], [f"{name}/idx"]),
              helper.make_node("Gather", [f"{name}/table", f"{name}/idx"], [f"{name}/rows"], axis=1),
              helper.make_node("Mul", [f"{name}/rows", f"{name}/window"], [f"{name}/windowed"])]
    if perm is None:
        nodes.append(helper.make_node("Reshape", [f"{name}/windowed", f"{name}/shape"], [name]))
    else:
        nodes += [helper.make_node("Reshape", [f"{name}/windowed", f"{name}/shape"], [f"{name}/rows2"]),
                  helper.make_node("Transpose", [f"{name}/rows2"], [name], perm=perm)]
    g.initializer.remove(hit)
    for i, node in enumerate(nodes):
        g.node.insert(i, node)


__all__ = ["CALIBRATORS", "after_last_conv", "before_first_conv", "compact_front_end", "export_onnx", "export_student", "fold_weight_quantization", "logmel_windows", "quantize_int8",
           "strip_debug", "waveform_windows"]
