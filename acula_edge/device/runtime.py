"""Inference backends for bundles: onnxruntime and LiteRT (numpy and a runtime only).

A training machine adds the ``torch`` backend (:func:`export.model.torch_model`) with
:func:`register_backend`; ``python -m acula_edge.listen`` does so where torch is installed.
:func:`load_model` picks a bundle's model file by backend and precision and returns a
:class:`Model` whose ``run`` maps windows ``[N, samples]`` to the outputs by name: ``embedding``
``[N, D]``, ``scores`` ``[N, H]`` and, where the graph has them, ``modality`` ``[N, M]`` and
``events`` ``[N, T, K]``.

:func:`runner` gives, for a model file of a bundle (or the full-integer pair), that function from
windows ``[N, samples]`` to the outputs: onnxruntime runs a batch at once,
LiteRT one window at a time (TFLite files take batch 1); the full-integer network's int8 input is
quantized from the fp32 front end's output and its int8 outputs dequantized, with the scales and
zero points stored in the file, and its embedding L2-normalised here.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from acula_edge.errors import AculaError

Outputs = dict[str, np.ndarray]
Run = Callable[[np.ndarray], Outputs]
#: the runtimes a format needs (any one of them)
RUNTIMES = {"onnx": ("onnxruntime",), "tflite": ("ai_edge_litert", "tflite_runtime")}
#: the name :func:`runner` gives the full-integer pair
SPLIT = "frontend_fp32.tflite+network_int8.tflite"


def tflite_interpreter(path: str | Path, threads: int = 1):
    """A LiteRT interpreter (``ai-edge-litert``; ``tflite-runtime`` as a fallback on old devices)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as e:
            raise AculaError("running .tflite files needs LiteRT: pip install ai-edge-litert") from e
    return Interpreter(model_path=str(path), num_threads=threads)


def signature(path: str | Path, threads: int = 1):
    """The ``serving_default`` signature runner of a .tflite file and its input name."""
    r = tflite_interpreter(path, threads).get_signature_runner()
    (name,) = r.get_input_details()
    return r, name


def _per_window(one: Callable[[np.ndarray], dict[str, np.ndarray]]) -> Run:
    """A batch run function from a one-window call (TFLite files take batch 1)."""

    def run(waves: np.ndarray) -> Outputs:
        outs = [one(w[None]) for w in np.asarray(waves, np.float32)]
        return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]} if outs else {}

    return run


def tflite_runner(path: str | Path, threads: int = 1) -> Run:
    """The run function of a whole-graph .tflite file (waveform in, embedding and scores out)."""
    return _whole(*signature(path, threads))


def _whole(r, name: str) -> Run:
    return _per_window(lambda w: r(**{name: w}))


def _split(fr, fname: str, nr, nname: str, network: str | Path) -> Run:
    """The full-integer pair's run function from its two signature runners and input names."""
    detail = nr.get_input_details()[nname]
    (scale, zero), info = detail["quantization"], np.iinfo(detail["dtype"])
    out_q = {k: d["quantization"] for k, d in nr.get_output_details().items()}
    if not scale or not all(q[0] for q in out_q.values()):
        raise AculaError(f"{network}: its input and outputs are not quantized (no scale)")

    def one(w: np.ndarray) -> dict[str, np.ndarray]:
        x = fr(**{fname: w})["logmel"]
        q = np.clip(np.round(x / scale) + zero, info.min, info.max).astype(detail["dtype"])
        out = {k: (v.astype(np.float32) - out_q[k][1]) * out_q[k][0] for k, v in nr(**{nname: q}).items()}
        out["embedding"] /= max(float(np.linalg.norm(out["embedding"])), 1e-12)  # the network leaves it to us
        return out

    return _per_window(one)


def session(path: str | Path, threads: int = 1):
    """An onnxruntime CPU session on ``threads`` threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _last_dims(shapes: dict[str, Any]) -> dict[str, Any]:
    """``{tensor: last dimension}`` (None where the file leaves it open)."""
    return {k: (int(v[-1]) if len(v) and isinstance(v[-1], (int, np.integer)) and v[-1] > 0 else None)
            for k, v in shapes.items()}


def check_io(bundle, name: str, inputs: dict[str, Any] | None, outputs: dict[str, Any] | None) -> None:
    """Refuse a model file whose tensors (``{name: shape}``; None: not checked) are not the ones
    ``bundle.json`` declares: input ``waveform`` of one window, outputs ``embedding``, ``scores`` with
    one score per head, and ``modality`` and ``events`` where it declares them."""
    wrong = []
    if inputs is not None and _last_dims(inputs) != {"waveform": bundle.window_samples}:
        wrong.append(f"its input is {_describe(_last_dims(inputs))}, bundle.json has waveform[{bundle.window_samples}]")
    if outputs is not None:
        want = {k: int(v["shape"][-1]) for k, v in bundle.meta["outputs"].items()}
        want["scores"] = len(bundle.heads)
        got = _last_dims(outputs)
        if set(got) != set(want) or any(got[k] not in (v, None) for k, v in want.items()):
            wrong.append(f"its outputs are {_describe(got)}, bundle.json has {_describe(want)} (one score per head)")
    if wrong:
        raise AculaError(f"{bundle.path / name}: not the model bundle.json describes: " + "; ".join(wrong))


def _describe(dims: dict[str, Any]) -> str:
    return " and ".join(f"{k}[{'?' if v is None else v}]" for k, v in sorted(dims.items())) or "none"


def _tflite_io(r) -> tuple[dict[str, Any], dict[str, Any]]:
    shape = lambda d: {k: list(v["shape"]) for k, v in d.items()}  # noqa: E731
    return shape(r.get_input_details()), shape(r.get_output_details())


def model_files(bundle) -> dict[str, str]:
    """Each runnable model of ``bundle`` (its files, and :data:`SPLIT` for the full-integer pair) -> precision."""
    out = {name: precision for name, (_, precision) in bundle.models().items()}
    if bundle.split() is not None:
        out[SPLIT] = "int8"
    return out


def runner(bundle, name: str, threads: int = 1) -> Run:
    """The run function of model file ``name`` of ``bundle`` (:data:`SPLIT` for the full-integer pair),
    after checking that its inputs and outputs are the ones ``bundle.json`` declares."""
    if name == SPLIT:
        pair = bundle.split()
        if pair is None:
            raise AculaError(f"{bundle.path}: no full-integer pair")
        front, net = signature(pair[0], threads), signature(pair[1], threads)
        check_io(bundle, pair[0].name, _tflite_io(front[0])[0], None)
        check_io(bundle, pair[1].name, None, _tflite_io(net[0])[1])
        return _split(*front, *net, pair[1])
    fmt, _ = bundle.models()[name]
    if fmt == "tflite":
        sig = signature(bundle.path / name, threads)
        check_io(bundle, name, *_tflite_io(sig[0]))
        return _whole(*sig)
    s = session(bundle.path / name, threads)
    check_io(bundle, name, {i.name: i.shape for i in s.get_inputs()}, {o.name: o.shape for o in s.get_outputs()})
    names = list(bundle.outputs)
    return lambda waves: dict(zip(names, s.run(names, {"waveform": np.asarray(waves, np.float32)})))


def median_latency(calls: dict[str, Callable[[], Any]], rounds: int = 5, each: int = 20,
                   warmup: int = 5) -> dict[str, float]:
    """Median milliseconds of each of ``calls``, timed in turns (``rounds`` of ``each`` calls of
    every one), so that all of them see the same load on a shared machine."""
    import time

    times: dict[str, list[float]] = {k: [] for k in calls}
    for f in calls.values():
        for _ in range(warmup):
            f()
    for _ in range(rounds):
        for k, f in calls.items():
            for _ in range(each):
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    return {k: round(float(np.median(t)) * 1e3, 4) for k, t in times.items()}


#: backend name -> the format of the bundle files it runs
BACKENDS = {"onnx": "onnx", "tflite": "tflite"}


@dataclass
class Model:
    """A runnable model of a bundle: ``run(windows [N, samples]) -> {output name: array}``."""

    backend: str
    file: str
    precision: str
    run: Run


#: ``load(bundle, precision, threads, checkpoint) -> Model`` of backends that run something other
#: than the bundle's own files (the torch backend: its source checkpoint; see :func:`register_backend`)
_EXTRA: dict[str, Callable[..., Model]] = {}


def register_backend(name: str, load: Callable[..., Model]) -> None:
    """Offer ``name`` to :func:`load_model` (``load(bundle, precision, threads, checkpoint) -> Model``).
    Training machines add the torch backend this way; the device side itself needs none."""
    _EXTRA[name] = load


def runnable(fmt: str) -> bool:
    """Whether this machine has a runtime for ``fmt``."""
    def found(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken install counts as none
            return False

    return any(found(m) for m in RUNTIMES[fmt])


def default_backend() -> str:
    """``onnx`` where onnxruntime is installed, else ``tflite`` where a LiteRT runtime is (32-bit ARM
    boards have only ``tflite-runtime``), else ``onnx`` (whose error names what to install)."""
    return next((b for b, fmt in BACKENDS.items() if runnable(fmt)), "onnx")


def list_backends() -> list[str]:
    """Names :func:`load_model` accepts here."""
    return [*BACKENDS, *_EXTRA]


def load_model(bundle, backend: str | None = None, precision: str | None = None, threads: int = 1,
               checkpoint: str | None = None) -> Model:
    """The bundle's model for ``backend`` at ``precision`` (by default the bundle's default precision for
    the backend's format: see :meth:`acula_edge.device.bundle.Bundle.default_precision`); ``backend`` defaults
    to :func:`default_backend`."""
    backend = backend or default_backend()
    if backend not in list_backends():
        raise AculaError(f"unknown backend {backend!r} (choose from {', '.join(list_backends())})")
    if precision not in (None, "int8", "fp32"):
        raise AculaError(f"unknown precision {precision!r} (choose int8 or fp32)")
    if backend in _EXTRA:
        return _EXTRA[backend](bundle, precision, threads, checkpoint)
    held = {p: n for n, (f, p) in bundle.models().items() if f == BACKENDS[backend]}
    if not held:
        raise AculaError(f"{bundle.path} holds no {backend} model (it holds {', '.join(bundle.models())})")
    precision = precision or bundle.default_precision(BACKENDS[backend])
    if precision not in held:
        raise AculaError(f"{bundle.path} holds no {precision} {backend} model (it holds {', '.join(bundle.models())})")
    try:
        return Model(backend, held[precision], precision, runner(bundle, held[precision], threads))
    except AculaError:
        raise
    except Exception as e:  # a runtime that refuses the file
        raise AculaError(f"{bundle.path / held[precision]}: {backend} cannot load it ({str(e).splitlines()[0][:200]})") from e


__all__ = ["BACKENDS", "Model", "Outputs", "RUNTIMES", "SPLIT", "check_io", "default_backend", "list_backends", "model_files", "load_model", "median_latency", "register_backend", "runnable", "runner", "session",
           "signature", "tflite_interpreter", "tflite_runner"]
