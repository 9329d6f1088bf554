"""A bundle's self-test: reference windows and what each of its model files gave on them where it
was exported (``selftest.npz``, listed with its sha256 in ``bundle.json`` under ``self_test``).

``python -m acula_edge.listen --self-test`` (and ``python -m export verify`` away from the source
checkpoint) runs every model file this machine has a runtime for on those windows and compares:
numpy and a runtime only, no checkpoint, no torch. It fails a file whose outputs moved beyond the
tolerance of its precision (a file changed after export with its checksum updated, a runtime that
computes differently) or whose inputs and outputs are not the ones ``bundle.json`` declares.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from acula_edge.cli import quiet_native
from acula_edge.errors import AculaError

SELF_TEST = "selftest.npz"
#: largest absolute difference per output allowed on a device, by precision: fp32 is rounding only
#: (export verify's bound against torch); int8 kernels differ between CPUs (onnxruntime's int8 file on
#: emulated Cortex-A72 against x86: 6e-4 on the embedding, 0.019 on a score; benchmarks/results/devices.md);
#: the modality and event probabilities are bounded as the scores are
TOLERANCE = {"fp32": {"embedding": 1e-4, "scores": 1e-3, "modality": 1e-3, "events": 1e-3},
             "int8": {"embedding": 0.02, "scores": 0.05, "modality": 0.05, "events": 0.05}}


def reference_windows(samples: int, rate: int) -> np.ndarray:
    """Two windows of 16-bit PCM ``[2, samples]``, the same on every machine: breath-like noise under
    a breathing envelope, then a low tone with clicks (crackle-like transients) over faint noise."""
    rng = np.random.default_rng(0)
    t = np.arange(samples) / rate
    breath = np.convolve(rng.standard_normal(samples), np.ones(8) / 8, mode="same")
    breath *= 0.25 * np.sin(np.pi * 0.5 * t) ** 2
    clicks = 0.01 * rng.standard_normal(samples) + 0.2 * np.sin(2 * np.pi * 120 * t)
    n = max(4, rate // 250)
    shape = np.exp(-np.arange(n) / (n / 4)) * np.sin(2 * np.pi * np.arange(n) / (n / 3))
    for start in rng.integers(0, samples - n, 12):
        clicks[start:start + n] += 0.5 * shape
    x = np.clip(np.stack([breath, clicks]), -1, 1)
    return np.round(x * 32767).astype(np.int16)


def make_self_test(bundle) -> tuple[bytes, dict[str, Any]]:
    """``(selftest.npz bytes, bundle.json's self_test entry)``: every model file of ``bundle`` run
    on :func:`reference_windows` here."""
    from acula_edge.device.runtime import model_files, runner

    pcm = reference_windows(bundle.window_samples, bundle.sample_rate)
    arrays = {"waveform_pcm16": pcm}
    names = model_files(bundle)
    for name in names:
        for k, v in runner(bundle, name)(pcm.astype(np.float32) / 32768).items():
            arrays[f"{name}:{k}"] = np.asarray(v, np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    tolerance = {p: {k: t[k] for k in bundle.outputs} for p, t in TOLERANCE.items()}
    return buf.getvalue(), {"file": SELF_TEST, "windows": int(len(pcm)), "files": sorted(names), "tolerance": tolerance}


def _reference(bundle) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    entry = bundle.meta.get("self_test")
    if not entry:
        raise AculaError(f"{bundle.path}: this bundle carries no self-test (exported without one): "
                         "python -m export add-self-test BUNDLE adds it where the bundle's files are known to be good")
    try:
        with np.load(bundle.path / entry["file"], allow_pickle=False) as z:
            ref = {k: z[k] for k in z.files}
    except Exception as e:  # a damaged archive whose checksum was updated with it
        raise AculaError(f"{bundle.path / entry['file']}: not a readable self-test ({str(e).splitlines()[0][:120]})") from None
    pcm = ref.get("waveform_pcm16")
    if pcm is None or pcm.dtype != np.int16 or pcm.ndim != 2 or pcm.shape[1] != bundle.window_samples:
        raise AculaError(f"{bundle.path / entry['file']}: its reference windows are not int16 windows of "
                         f"{bundle.window_samples} samples")
    return entry, ref


def run_self_test(bundle, threads: int = 1) -> list[dict[str, Any]]:
    """One result per model file: ``status`` ok, FAIL (with ``reason``) or skipped (no runtime here),
    and the largest absolute difference of each output to the exporter's."""
    from acula_edge.device.runtime import RUNTIMES, model_files, runnable, runner

    entry, ref = _reference(bundle)
    waves = ref["waveform_pcm16"].astype(np.float32) / 32768
    out = []
    for name, precision in model_files(bundle).items():
        r: dict[str, Any] = {"file": name, "precision": precision}
        out.append(r)
        fmt = "tflite" if name.endswith(".tflite") else "onnx"
        if not runnable(fmt):
            r.update(status="skipped", reason=f"no {fmt} runtime here ({' or '.join(RUNTIMES[fmt])})")
            continue
        if any(f"{name}:{k}" not in ref for k in bundle.outputs):
            r.update(status="FAIL", reason="the self-test holds no reference outputs for this file")
            continue
        try:
            with quiet_native():  # runtimes announce their delegates on the first call
                got = runner(bundle, name, threads)(waves)
        except AculaError as e:
            r.update(status="FAIL", reason=str(e).split(": ", 1)[-1])
            continue
        except Exception as e:  # the runtime refused the file or failed inside it
            r.update(status="FAIL", reason=f"does not run ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
            continue
        tol = {**TOLERANCE[precision], **entry["tolerance"][precision]}
        diff = {}
        for k in bundle.outputs:
            want = ref[f"{name}:{k}"]
            g = np.asarray(got.get(k), np.float32)
            diff[k] = float(np.abs(g - want).max()) if g.shape == want.shape else float("inf")
        r["max_abs_diff"] = diff
        bad = [f"{k} differs by {d:.2e} (> {tol[k]:g})" for k, d in diff.items() if not d <= tol[k]]  # NaN fails
        r.update(status="FAIL" if bad else "ok", **({"reason": "; ".join(bad)} if bad else {}))
    return out


def describe(result: dict[str, Any]) -> str:
    """One line for a file's result."""
    head = f"{result['file']:<44} {result['status']:<7}"
    if result["status"] == "ok":
        d = result["max_abs_diff"]
        return f"{head} max |diff| " + ", ".join(f"{k} {v:.1e}" for k, v in d.items())
    return f"{head} {result['reason']}"


__all__ = ["SELF_TEST", "TOLERANCE", "describe", "make_self_test", "reference_windows", "run_self_test"]
