"""ONNX int8 made by Intel Neural Compressor on the PyTorch side (``--quantizer inc``).

Neural Compressor 3.x quantizes PyTorch models only (its ONNX support moved to a package that pins
numpy<2). The network (:class:`export.model.EdgeNetwork`) is exported with
``neural_compressor.torch.export.export``, prepared with the default ``StaticQuantConfig`` (int8
per-channel symmetric weights, uint8 asymmetric per-tensor activations, min/max), calibrated on the
front end's output for the calibration windows and converted; the fp32 front end and the quantized
network then export to one QDQ ONNX graph. The exporter keeps the quantized weights as fp32
initializers with a QuantizeLinear after each: :func:`export.onnx.fold_weight_quantization` stores
them as int8 instead.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from acula_edge.cli import quiet_native
from acula_edge.data.records import atomic_write
from acula_edge.errors import AculaError


def quantize_inc(model, out: str | Path, calibration: np.ndarray, batch: int = 16) -> Path:
    """int8 ONNX of an :class:`export.model.EdgeModel` through Neural Compressor, calibrated on
    waveform windows ``[N, samples]``; the front end stays fp32."""
    import torch

    from export.onnx import export_onnx, fold_weight_quantization

    calibration = np.asarray(calibration, np.float32)
    if calibration.ndim != 2 or calibration.shape[1] != model.samples or not len(calibration):
        raise AculaError(f"calibration data must be waveform windows [N, {model.samples}]")
    try:
        with quiet_native():  # Neural Compressor logs every pass to stderr
            from neural_compressor.torch.export import export
            from neural_compressor.torch.quantization import StaticQuantConfig, convert, prepare
            from torchao.quantization.pt2e import allow_exported_model_train_eval
    except ImportError as e:
        raise AculaError("--quantizer inc needs the 'inc' extra: pip install 'acula-edge[inc]'") from e
    with torch.no_grad(), quiet_native():
        logmel = torch.cat([model.frontend(torch.from_numpy(calibration[i:i + batch]))
                            for i in range(0, len(calibration), batch)])
        graph = export(model.network, (logmel[:2],), dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
        if graph is None:
            raise AculaError("Neural Compressor could not export the network")
        prepared = prepare(graph, StaticQuantConfig())
        for i in range(0, len(logmel), batch):
            prepared(logmel[i:i + batch])
        network = convert(prepared)
    allow_exported_model_train_eval(network)  # so that .eval() on the whole graph is allowed

    class Quantized(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.frontend, self.network = model.frontend, network

        def forward(self, waveform: torch.Tensor):
            return self.network(self.frontend(waveform))

    with tempfile.TemporaryDirectory() as tmp:
        q = export_onnx(Quantized(), Path(tmp) / "inc.onnx", torch.from_numpy(calibration[:2]), "waveform", model.names)
        data = fold_weight_quantization(q).read_bytes()
    atomic_write(Path(out), lambda f: f.write(data))
    return Path(out)


__all__ = ["quantize_inc"]
