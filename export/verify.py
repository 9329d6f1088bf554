"""``python -m export verify BUNDLE [--data MANIFEST] [--json]``: every model file against its source.

Each model file of the bundle (ONNX, TFLite, and the full-integer TFLite pair as one) and the
source checkpoint (torch) run on the same windows of the same recordings (``--data``, else a
small synthetic corpus), leaving out the subjects the checkpoint was trained on (all of them stay
when no other subject is left, and the report says so) and recordings too short to score (under half
a window, as ``listen`` gates them). A recording is decoded and run a batch of windows at a time, so
memory does not grow with its length but for the outputs kept for the comparison with torch (2 KB a
window and file with a 512-wide embedding). Reported per file: the largest absolute difference of
``embedding`` and ``scores`` to torch, the embeddings' centred cosine to torch's (:func:`acula_edge.metrics.mean_cosine`)
and each head's AUROC on the recordings its task labels (window probabilities averaged per
recording), with its sensitivity and specificity at the head's threshold. ``--task TASK=HEAD``
scores a head with another task's labels, such as a label column of the user's own CSV
(``csv:MANIFEST:COLUMN=HEAD``). Without the source checkpoint (a bundle away from where it was
built), the files are scored on their own and checked by the bundle's self-test
(:mod:`acula_edge.device.selftest`). Failing: an fp32 file off torch by more than
``atol + rtol * |torch|`` anywhere (atol 1e-4 on the embedding, 1e-3 on a head's probability, a
tenth of a percentage point: a head amplifies float32 rounding; rtol 1e-3, as rounding grows with
the value); an int8 file whose AUROC of a head falls more than 0.01 below the fp32 file's of the
same format, whose decisions at a head's threshold differ from that fp32 file's on more than 5% of
the windows, or whose scores drift from them by more than 0.05 on average (a shifted head keeps
its AUROC but not its decisions). The exit status is non-zero on failure.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from acula_edge.cli import Parser, guarded
from acula_edge.errors import AculaError

#: an fp32 file's absolute difference to torch allowed, per output
FP32_TOLERANCE = {"embedding": 1e-4, "scores": 1e-3, "modality": 1e-3, "events": 1e-3}
FP32_RTOL = 1e-3  # ... plus this share of torch's value
INT8_AUROC_DROP = 0.01
INT8_DECISIONS = 0.05  # largest share of windows whose decision at a head's threshold differs from fp32
INT8_MEAN_DRIFT = 0.05  # largest mean absolute difference of a head's scores to fp32
TORCH = "torch"  # the source checkpoint's run, beside the model files


def stream_outputs(path: str, runs: dict[str, Callable], sample_rate: int, samples: int, hop: int, batch: int = 32,
                   errors: dict[str, str] | None = None,
                   embeddings: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """Each run's outputs (``embedding [k, E]``, ``scores [k, H]``, ...) over a recording's windows
    (:func:`acula_edge.device.windows.iter_windows`), decoded and run ``batch`` windows at a time, so
    memory is bounded by a batch, not by the recording. Without ``embeddings`` each embedding is kept
    only as a ``[k, 1]`` column, 0 where it is finite and NaN where not (2 KB less per window and run).
    With ``errors``, a run that fails (other than with an :class:`AculaError`) is noted there as
    ``Type: message`` and left out from then on."""
    from acula_edge.device.windows import iter_windows

    parts: dict[str, list] = {k: [] for k in runs}
    for w in iter_windows(path, sample_rate, samples, hop, batch):
        for k, run in runs.items():
            if errors is not None and k in errors:
                continue
            try:
                o = dict(run(w))
                if not embeddings:
                    e = o["embedding"]
                    o["embedding"] = np.where(np.isfinite(e).all(axis=1, keepdims=True), 0.0, np.nan).astype(np.float32)
                parts[k].append(o)
            except AculaError:
                raise
            except Exception as e:  # the runtime refused the file or failed inside it (onnxruntime, LiteRT)
                if errors is None:
                    raise
                errors[k] = failure(e)
    return {k: {name: np.concatenate([p[name] for p in v]) for name in v[0]}
            for k, v in parts.items() if v and (errors is None or k not in errors)}


def failure(e: Exception) -> str:
    """A runtime's exception as one line: ``Type: first line of the message``."""
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def torch_run(model) -> Callable[[np.ndarray], dict[str, np.ndarray]]:
    """An edge model (:func:`export.model.edge_model`) as a run of :func:`stream_outputs`: windows to outputs."""
    import torch

    def run(w: np.ndarray) -> dict[str, np.ndarray]:
        with torch.no_grad():
            return {k: t.numpy() for k, t in zip(model.names, model(torch.from_numpy(w)))}

    return run


def labels_of(records: list, heads: list[dict[str, Any]], tasks: dict | None = None) -> np.ndarray:
    """``[N, H]`` labels from ``tasks`` (head name -> task; default: each head that is a registered
    task), NaN where a head's task does not label a recording."""
    from acula_edge.data.tasks import binary_labels, head_tasks

    tasks = head_tasks((), [h["name"] for h in heads]) if tasks is None else tasks
    out = np.full((len(records), len(heads)), np.nan, np.float32)
    for j, h in enumerate(heads):
        if h["name"] in tasks:
            out[:, j] = binary_labels(tasks[h["name"]], records)
    return out


def held_out(records: list, checkpoint: str | Path) -> tuple[list, int]:
    """The recordings of subjects the checkpoint was not trained on, and how many subjects were left out."""
    from acula_edge.checkpoint import read_sidecar
    from acula_edge.encoders import without_subjects

    kept = without_subjects(records, set(read_sidecar(checkpoint).get("trained_subjects_sha256") or []))
    return kept, len({r.subject for r in records}) - len({r.subject for r in kept})


def head_aurocs(labels: np.ndarray, scores: np.ndarray, heads: list[dict[str, Any]]) -> dict[str, float]:
    """Head name -> AUROC of ``scores [N, H]`` (one row per recording) for the heads with both classes."""
    from acula_edge.metrics import auroc

    out = {}
    for j, h in enumerate(heads):
        known = ~np.isnan(labels[:, j])
        if len(np.unique(labels[known, j])) == 2:
            out[h["name"]] = round(auroc(labels[known, j].astype(int), scores[known, j]), 4)
    return out


def head_metrics(records: list, scores: np.ndarray, heads: list[dict[str, Any]], n_boot: int = 1000,
                 tasks: dict | None = None) -> dict[str, Any]:
    """Each labelled head's AUROC on ``records`` (``scores [N, H]``, one row per recording) with a
    subject-level bootstrap interval, and its sensitivity and specificity at its threshold with
    Wilson intervals (labels as :func:`labels_of` gives them)."""
    from acula_edge.metrics import bootstrap_ci, wilson_ci

    labels = labels_of(records, heads, tasks)
    subjects = np.array([r.subject for r in records])
    aurocs, out = head_aurocs(labels, scores, heads), {}
    for j, h in enumerate(heads):
        if h["name"] not in aurocs:
            continue
        known = ~np.isnan(labels[:, j])
        yk, pk = labels[known, j].astype(int), scores[known, j]
        m: dict[str, Any] = {"auroc": aurocs[h["name"]],
                             "auroc_ci95": [round(v, 4) for v in bootstrap_ci(yk, pk, subjects[known], n_boot)],
                             "recordings": int(known.sum()), "subjects": len(set(subjects[known])),
                             "positives": int(yk.sum()), "negatives": int((1 - yk).sum())}
        if h.get("threshold") is not None:
            hit = pk >= h["threshold"]
            for name, k, n in (("sensitivity", int((hit & (yk == 1)).sum()), m["positives"]),
                               ("specificity", int((~hit & (yk == 0)).sum()), m["negatives"])):
                m[name] = round(k / n, 4)
                m[f"{name}_ci95"] = [round(v, 4) for v in wilson_ci(k, n)]
        out[h["name"]] = m
    return out


def source_or_none(b, checkpoint: str | None) -> str | None:
    """The bundle's source checkpoint (``checkpoint``, else its provenance's), or None when neither is
    given nor on this machine (a bundle away from where it was built); a wrong one is an error."""
    named = checkpoint or b.meta["provenance"].get("checkpoint")
    if checkpoint is None and (not named or not Path(named).is_file()):
        return None
    return str(b.source_checkpoint(checkpoint, "verifying"))


def verify(bundle_path: str | Path, data: str | None = None, checkpoint: str | None = None,
           tasks: Sequence[str] = (), n_boot: int = 200) -> dict[str, Any]:
    """Run every model file of the bundle and its source checkpoint on the same clips; the report.
    Without the source checkpoint the files are scored on their own (no comparison with torch).
    ``tasks``: ``TASK=HEAD`` mappings of label columns to heads (:func:`acula_edge.data.tasks.head_tasks`)."""
    from acula_edge.data.records import read_manifest
    from acula_edge.data.tasks import head_tasks
    from acula_edge.device.bundle import load_bundle
    from acula_edge.device.runtime import model_files, runner
    from acula_edge.device.windows import MIN_FILL, long_enough
    from acula_edge.metrics import mean_cosine
    from export.model import edge_model

    b = load_bundle(bundle_path)
    mapping = head_tasks(tasks, [h["name"] for h in b.heads])
    ckpt = source_or_none(b, checkpoint)
    with tempfile.TemporaryDirectory() as tmp:
        if data:
            records = read_manifest(data)
        else:
            from acula_edge.data.synth import generate

            records = generate(Path(tmp) / "synthetic", 32, seed=1)
        kept, left_out = held_out(records, ckpt) if ckpt else ([], 0)
        if kept:  # scores on training subjects would flatter the model; numerical checks can use them
            records = kept
        records, short = long_enough(records, b.window_samples / b.sample_rate)
        if not records:
            raise AculaError(f"every recording is too short to score (under {MIN_FILL:.0%} of a "
                             f"{b.meta['window_s']} s window)")
        hop = max(1, int(round(b.meta["hop_s"] * b.sample_rate)))
        runs: dict[str, Callable] = {}
        errors: dict[str, str] = {}
        if ckpt:
            runs[TORCH] = torch_run(edge_model(ckpt))
        files = model_files(b)
        for name in files:
            try:
                runs[name] = runner(b, name)
            except AculaError:
                raise  # a runtime that is not installed: one clear line
            except Exception as e:  # the runtime refused the file (onnxruntime, LiteRT)
                errors[name] = failure(e)
        outputs: dict[str, list[dict[str, np.ndarray]]] = {k: [] for k in runs}
        windows = 0
        for r in records:  # one recording's windows at a time: memory does not grow with its length
            got = stream_outputs(r.path, runs, b.sample_rate, b.window_samples, hop, errors=errors,
                                 embeddings=ckpt is not None)  # without torch to compare with: only their finiteness
            windows += max((len(o["scores"]) for o in got.values()), default=0)
            for k, o in got.items():
                outputs[k].append(o)
    if TORCH in errors:
        raise AculaError(f"the source checkpoint failed on the recordings: {errors[TORCH]}")
    labels = labels_of(records, b.heads, mapping)

    def scores_of(outs: list[dict[str, np.ndarray]]) -> dict[str, Any]:
        heads = head_metrics(records, np.stack([o["scores"].mean(0) for o in outs]), b.heads, n_boot, mapping)
        return {"auroc": {h: m["auroc"] for h, m in heads.items()}, "heads": heads}

    reference = outputs.get(TORCH)
    report: dict[str, Any] = {"bundle": str(b.path), "checkpoint": ckpt, "compared_with_source": ckpt is not None,
                              "data": data or "synthetic (32 clips, seed 1)",
                              "recordings": len(records), "windows": windows, "too_short": short,
                              "trained_subjects_left_out": left_out if kept else 0,
                              "training_subjects_only": bool(ckpt) and not kept,
                              "labelled_heads": {h: t.name for h, t in mapping.items()
                                                 if np.isfinite(labels[:, [x["name"] for x in b.heads].index(h)]).any()},
                              "torch": scores_of(reference) if reference else None, "files": {}, "failures": []}
    window_outputs: dict[str, dict[str, np.ndarray]] = {}  # each file's outputs of every window
    for name, precision in files.items():
        if name in errors:
            report["files"][name] = {"precision": precision, "error": errors[name]}
            report["failures"].append(f"{name}: does not run ({errors[name]})")
            continue
        outs = outputs[name]
        f: dict[str, Any] = {"precision": precision, **scores_of(outs)}
        report["files"][name] = f
        every = {k: np.concatenate([o[k] for o in outs]) for k in b.outputs}
        declared = {k: [len(b.heads)] if k == "scores" else v["shape"][1:] for k, v in b.meta["outputs"].items()}
        if ckpt is None:  # each embedding kept as one finiteness column (stream_outputs without embeddings)
            declared["embedding"] = [1]
        other = [k for k, v in every.items() if list(v.shape[1:]) != declared[k]]
        if other:  # the right last dimension, but not the shape bundle.json declares
            report["failures"].append(f"{name}: its {other[0]} output is {list(every[other[0]].shape[1:])} per window, "
                                      f"bundle.json declares {declared[other[0]]}")
            continue
        window_outputs[name] = every
        if not all(np.isfinite(v).all() for v in every.values()):
            report["failures"].append(f"{name}: gives NaN or infinite outputs")
            continue
        if reference is None:
            continue
        # np.max, not max(): a NaN anywhere must show in the difference
        diff = {k: float(np.abs(np.concatenate([g[k] for g in outs]) - np.concatenate([r[k] for r in reference])).max())
                for k in b.outputs}
        f["max_abs_diff"] = diff
        f["embedding_centred_cosine"] = round(mean_cosine(np.concatenate([r["embedding"] for r in reference]),
                                                          np.concatenate([o["embedding"] for o in outs])), 4)
        if precision == "fp32":
            f["tolerance_used"] = {k: round(tolerance_used([g[k] for g in outs], [r[k] for r in reference],
                                                           FP32_TOLERANCE[k]), 3) for k in b.outputs}
            report["failures"] += [f"{name}: {k} differs from torch by up to {diff[k]:.2e}, over "
                                   f"{FP32_TOLERANCE[k]} + {FP32_RTOL} x |torch|"
                                   for k, used in f["tolerance_used"].items() if not used <= 1]  # NaN fails too
    for name, f in report["files"].items():
        fp32_name = "model_fp32.tflite" if name.endswith(".tflite") else "model_fp32.onnx"
        fp32 = report["files"].get(fp32_name)
        if (f["precision"] != "int8" or "auroc" not in f or fp32 is None or "auroc" not in fp32
                or name not in window_outputs or fp32_name not in window_outputs):
            continue
        for head, want in fp32["auroc"].items():
            value = f["auroc"].get(head, float("nan"))
            if not (np.isfinite(value) and want - value <= INT8_AUROC_DROP):
                report["failures"].append(f"{name}: {head} AUROC {value:.3f} is more than {INT8_AUROC_DROP} "
                                          f"below fp32 ({want:.3f})")
        f["against_fp32"] = against_fp32(window_outputs[name]["scores"], window_outputs[fp32_name]["scores"], b.heads)
        least = float((b.meta["outputs"].get("modality") or {}).get("min_confidence", 1.0))
        f["outputs_against_fp32"] = outputs_against_fp32(window_outputs[name], window_outputs[fp32_name], least)
        for k, d in f["outputs_against_fp32"].items():
            if not d.get("routing_differs", 0.0) <= INT8_DECISIONS:
                report["failures"].append(f"{name}: sends {d['routing_differs']:.1%} of the windows {fp32_name} "
                                          f"routes to another modality (> {INT8_DECISIONS:.0%})")
            if not d.get("mean_abs_drift", 0.0) <= INT8_MEAN_DRIFT:
                report["failures"].append(f"{name}: {k} drifts from {fp32_name} by {d['mean_abs_drift']:.3f} on "
                                          f"average (> {INT8_MEAN_DRIFT})")
        for head, d in f["against_fp32"].items():
            if not d.get("decisions_differ", 0.0) <= INT8_DECISIONS:
                report["failures"].append(f"{name}: {head} decides otherwise than {fp32_name} at its threshold on "
                                          f"{d['decisions_differ']:.1%} of windows (> {INT8_DECISIONS:.0%})")
            if not d["mean_abs_drift"] <= INT8_MEAN_DRIFT:
                report["failures"].append(f"{name}: {head} scores drift from {fp32_name} by {d['mean_abs_drift']:.3f} "
                                          f"on average (> {INT8_MEAN_DRIFT})")
    if ckpt is None and b.meta.get("self_test"):  # away from the source: the exporter's own outputs instead
        from acula_edge.device.selftest import run_self_test

        report["self_test"] = run_self_test(b)
        report["failures"] += [f"{r['file']}: self-test: {r['reason']}" for r in report["self_test"] if r["status"] == "FAIL"]
    report["ok"] = not report["failures"]
    return report


def tolerance_used(got: list[np.ndarray], want: list[np.ndarray], atol: float, rtol: float = FP32_RTOL) -> float:
    """The largest ``|got - want| / (atol + rtol * |want|)``: at most 1 within tolerance (NaN anywhere gives NaN)."""
    g, w = np.concatenate(got).astype(np.float64), np.concatenate(want).astype(np.float64)
    return float(np.max(np.abs(g - w) / (atol + rtol * np.abs(w)))) if g.size else 0.0


def outputs_against_fp32(int8: dict[str, np.ndarray], fp32: dict[str, np.ndarray],
                         min_confidence: float = 1.0) -> dict[str, dict[str, float]]:
    """An int8 file's modality and event outputs against the fp32 file's, where the graph has them:
    of the windows the fp32 file routes to a modality (most likely one at ``min_confidence`` or
    above, as ``listen`` routes), the share the int8 file would send to another modality's heads
    (``routing_differs``; a window near the confidence bound that becomes unknown gets no score,
    and is counted apart in ``unknown_differs``), and the event probabilities' mean and largest
    absolute difference."""
    out: dict[str, dict[str, float]] = {}
    if "modality" in fp32:
        a, b = int8["modality"], fp32["modality"]
        sure = b.max(1) >= min_confidence
        other = a.argmax(1) != b.argmax(1)
        unsure = (a.max(1) >= min_confidence) != sure
        out["modality"] = {"routing_differs": round(float(other[sure].mean()) if sure.any() else 0.0, 4),
                           "unknown_differs": round(float(unsure.mean()), 4),
                           "mean_abs_drift": round(float(np.abs(a - b).mean()), 4)}
    if "events" in fp32:
        d = np.abs(int8["events"].astype(np.float64) - fp32["events"])
        out["events"] = {"mean_abs_drift": round(float(d.mean()), 4), "max_abs_drift": round(float(d.max()), 4)}
    return out


def against_fp32(int8: np.ndarray, fp32: np.ndarray, heads: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per head, an int8 file's window scores ``[N, H]`` against the fp32 file's: the share of windows
    whose decision at the head's threshold differs, and the mean and largest absolute score difference."""
    out = {}
    for j, h in enumerate(heads):
        a, b = int8[:, j].astype(np.float64), fp32[:, j].astype(np.float64)
        d = np.abs(a - b)
        out[h["name"]] = {"mean_abs_drift": round(float(d.mean()), 4), "max_abs_drift": round(float(d.max()), 4)}
        if h.get("threshold") is not None:
            t = h["threshold"]
            out[h["name"]]["decisions_differ"] = round(float(np.mean((a >= t) != (b >= t))), 4)
    return out


def describe_heads(heads: dict[str, Any]) -> str:
    """``head AUROC 0.812 [0.75, 0.87], sensitivity 0.90, specificity 0.41`` for each scored head."""
    out = []
    for h, m in heads.items():
        text = f"{h} AUROC {m['auroc']:.3f} [{m['auroc_ci95'][0]:.2f}, {m['auroc_ci95'][1]:.2f}]"
        if "sensitivity" in m:
            text += f", sensitivity {m['sensitivity']:.2f}, specificity {m['specificity']:.2f} at its threshold"
        out.append(text)
    return "; ".join(out)


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m export verify``."""
    p = Parser(prog="python -m export verify",
               description="Run every model file of a bundle and its source checkpoint on the same recordings and "
                           "report how far each file is from the source; the exit status is non-zero on failure. "
                           "Without the source checkpoint, the files are scored on the recordings on their own and "
                           "checked by the bundle's self-test.")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--data", metavar="MANIFEST", help="recordings to run (labels give each head's AUROC)")
    p.add_argument("--task", action="append", default=[], metavar="TASK=HEAD",
                   help="score HEAD with TASK's labels, e.g. csv:MANIFEST:COLUMN=physionet2016-abnormal for a label "
                        "column of your own (repeat; default: each head that is a registered task)")
    p.add_argument("--checkpoint", help="the source checkpoint (default: the one named in bundle.json)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    a = p.parse_args(argv)
    r = verify(a.bundle, a.data, a.checkpoint, a.task)
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        if not r["compared_with_source"]:
            where = "its source checkpoint is not on this machine"
            seen = "training subjects unknown"
        else:
            where = f"against {r['checkpoint']}"
            seen = ("training subjects only: AUROCs flatter the model" if r["training_subjects_only"] else
                    f"{r['trained_subjects_left_out']} subjects seen in training left out")
        short = f", {r['too_short']} too short to score left out" if r["too_short"] else ""
        print(f"{r['bundle']} ({where}): {r['recordings']} recordings, {r['windows']} windows of {r['data']} "
              f"({seen}{short})")
        if not r["labelled_heads"]:
            print("no head is labelled by these recordings: map a label column to a head with "
                  "--task csv:MANIFEST:COLUMN=HEAD")
        if r["torch"] is not None:
            print("torch: " + (describe_heads(r["torch"]["heads"]) or "no labelled head"))
        for name, f in r["files"].items():
            if "error" in f:
                print(f"{name}: {f['error']}")
                continue
            parts = [describe_heads(f["heads"])] if f["heads"] else []
            if "max_abs_diff" in f:
                diffs = ", ".join(f"{k} {v:.2e}" for k, v in f["max_abs_diff"].items())
                parts.insert(0, f"max |diff| {diffs}, centred cosine {f['embedding_centred_cosine']:.4f}")
            print(f"{name}: " + ("; ".join(parts) or "ran"))
        if "self_test" in r:
            from acula_edge.device.selftest import describe

            print("self-test (the exporter's outputs on the bundle's reference windows):")
            for result in r["self_test"]:
                print("  " + describe(result))
    for failure in r["failures"]:
        print(f"FAIL {failure}", file=sys.stderr)
    return 0 if r["ok"] else 1


__all__ = ["head_metrics", "held_out", "main", "outputs_against_fp32", "stream_outputs", "torch_run", "verify"]
