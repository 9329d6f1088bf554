"""TFLite (LiteRT) export: litert-torch conversion and int8 through ai-edge-quantizer.

- ``model_fp32.tflite``: the whole graph (waveform in, ``embedding`` and ``scores`` out), batch 1.
- ``model_int8.tflite``: the same graph with static int8 weights and activations on the network's
  ops only (those under :class:`export.model.EdgeNetwork`); the front end and its min-max
  normalisation stay fp32, as in the ONNX int8 file, and so does the embedding's L2 normalisation
  (:class:`export.model.L2Normalize`): runtimes up to tflite-runtime 2.14, the one 32-bit boards
  have, lack an int8 ``SQRT``.
- ``frontend_fp32.tflite`` + ``network_int8.tflite``: the full-integer pair. The front end alone
  (waveform in, normalised log-mel ``logmel`` out) and the network alone with every op int8 and
  int8 input and outputs (their scales and zero points are in the file's tensor details), for NPUs
  and microcontrollers that run integers only. Its ``embedding`` is not yet L2-normalised: the
  caller divides the dequantized vector by its norm.

Activation ranges come from a true min/max calibrator over the calibration windows: the quantizer's
default moving-average calibrator narrows a scalar head's range until the model fails.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from acula_edge.cli import quiet_native
from acula_edge.data.records import atomic_write
from acula_edge.errors import AculaError

#: tensor-name scope of the network's ops in a converted :class:`export.model.EdgeModel`, less
#: the L2 normalisation's
NETWORK_SCOPE = r"^(?!.*L2Normalize_unit).*EdgeNetwork_network.*"


def _named(module, input_name: str, output_names: Sequence[str]):
    """``module`` with its input called ``input_name`` and its outputs a dict (TFLite signature names)."""
    import torch

    class Named(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, **inputs):
            out = self.inner(inputs[input_name])
            out = out if isinstance(out, tuple) else (out,)
            return dict(zip(output_names, out))

    return Named().eval()


def convert(module, path: str | Path, example, input_name: str, output_names: Sequence[str]) -> Path:
    """Write ``module`` (eval mode) as a batch-1 .tflite with the signature ``serving_default``
    (``input_name`` in, ``output_names`` out); atomically."""
    try:
        with quiet_native():  # its import reports optional CUDA kernels it cannot load
            import litert_torch
    except ImportError as e:
        raise AculaError("TFLite export needs the 'tflite' extra: pip install 'acula-edge[tflite]'") from e

    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp) / "model.tflite"
        try:
            with quiet_native():
                litert_torch.convert(_named(module.eval(), input_name, output_names),
                                     sample_kwargs={input_name: example[:1]}).export(str(t))
        except Exception as e:  # the converter raises many kinds; one line names the model and the cause
            raise AculaError(f"TFLite conversion failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
        data = t.read_bytes()
    atomic_write(Path(path), lambda f: f.write(data))
    return Path(path)


def quantize(fp32: str | Path, out: str | Path, calibration: np.ndarray, scope: str = ".*") -> Path:
    """Static int8 (8-bit activations, 8-bit per-channel weights) of the ops whose tensors match
    ``scope``, calibrated with true min/max ranges on ``calibration`` (rows of the model's single
    input, which must be float32)."""
    from ai_edge_quantizer import calibrator, quantizer, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    from acula_edge.device.runtime import signature

    model = Path(fp32).read_bytes()
    r, name = signature(fp32)
    spec = r.get_input_details()[name]
    calibration = np.asarray(calibration, np.float32)
    if calibration.ndim != len(spec["shape"]) or calibration.shape[1:] != tuple(spec["shape"][1:]) or not len(calibration):
        raise AculaError(f"calibration data must be rows of shape {tuple(spec['shape'][1:])} for '{name}'")
    recipe = recipe_manager.RecipeManager()
    recipe.add_static_config(scope, "*", 8, 8)
    with quiet_native():
        cal = calibrator.Calibrator(model, num_threads=os.cpu_count() or 1, qsv_update_func=qsv_utils.min_max_update)
        cal.calibrate({"serving_default": [{name: row[None]} for row in calibration]}, recipe)
        q = quantizer.Quantizer(model)
        q.load_quantization_recipe(recipe.get_quantization_recipe())
        data = bytes(q.quantize(cal.get_model_qsvs(), enable_progress_report=False).quantized_model)
    atomic_write(Path(out), lambda f: f.write(data))
    return Path(out)


def export_tflite(model, work: str | Path, calibration: np.ndarray | None = None,
                  full_integer: bool = True) -> dict[str, Path]:
    """The TFLite files of an :class:`export.model.EdgeModel` in ``work``: ``model_fp32.tflite`` and,
    given calibration waveforms ``[N, samples]``, ``model_int8.tflite`` and (with ``full_integer``)
    the full-integer pair."""
    import torch

    from export.model import EdgeNetwork

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    example = torch.zeros(1, model.samples)
    files = {"model_fp32.tflite": convert(model, work / "model_fp32.tflite", example, "waveform", model.names)}
    if calibration is None:
        return files
    files["model_int8.tflite"] = quantize(files["model_fp32.tflite"], work / "model_int8.tflite", calibration,
                                          NETWORK_SCOPE)
    if not full_integer:
        return files
    front = convert(model.frontend, work / "frontend_fp32.tflite", example, "waveform", ("logmel",))
    with torch.no_grad():
        logmel = np.concatenate([model.frontend(torch.from_numpy(calibration[i:i + 64])).numpy()
                                 for i in range(0, len(calibration), 64)])
    network = EdgeNetwork(model.network.student, normalize=False).eval()
    net = convert(network, work / "network_fp32.tflite", torch.from_numpy(logmel[:1]), "logmel", network.names)
    files["frontend_fp32.tflite"] = front
    files["network_int8.tflite"] = quantize(net, work / "network_int8.tflite", logmel)
    return files


__all__ = ["NETWORK_SCOPE", "convert", "export_tflite", "quantize"]
