"""``python -m benchmarks events``: what a bundle's modality and event outputs are worth on subjects
its student never saw.

On the ``test`` split of a pipeline manifest (``RUN/data/manifest.jsonl``: subjects split once, the
student trained on ``train`` and calibrated on ``val``), every model file of the bundle runs on
every window (the bundle's window and hop), and:

- **routing**, per dataset: the share of windows routed to the recording's own modality, of those
  left ``unknown``, and of recordings whose mean modality probability routes right;
- **event level** (recordings whose annotation locates events, e.g. SPRSound's): each annotated
  event segment's score is the mean over the steps inside it of the student's event probability
  (the larger of wheeze-like and crackle-like for "adventitious"), on the stream's timeline as
  ``listen`` builds it. AUROC against the segments annotated Normal, with subject-bootstrap
  intervals, beside a logistic probe on log-mel statistics of the same segments (fitted on the
  ``train`` children's segments, its L2 chosen on ``val``);
- **localisation**: segment-based F1 at 0.5 s (a segment is active when a span covers part of it)
  of the spans ``listen`` reports (the bundle's hysteresis, nothing tuned here), with the onset and
  offset errors of the annotated spans they overlap; the floor beside it is a log-mel statistics
  probe on each 0.5 s segment, its threshold chosen for F1 on ``val``;
- every file (int8 and fp32, ONNX and TFLite) scored the same way, its routing and event
  probabilities compared with the fp32 file of its format, and its latency per window (batch 1).

Results: ``benchmarks/results/events.{json,md}``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from acula_edge.cli import Parser, guarded
from acula_edge.errors import AculaError
from acula_edge.metrics import SEGMENT_S, active_segments, segment_counts, segment_f1

COMPARISONS = {"adventitious": None, "wheeze-like": "wheeze", "crackle-like": "crackle"}  # vs segments annotated Normal


def _parser() -> Parser:
    p = Parser(prog="python -m benchmarks events", description=(__doc__ or "").split("\n\n")[0].split(": ", 1)[-1])
    p.add_argument("--bundle", help="bundle folder (default: the package's default bundle)")
    p.add_argument("--manifest", required=True, help="a manifest with train/val/test splits by subject "
                   "(the pipeline's RUN/data/manifest.jsonl)")
    p.add_argument("--checkpoint", help="the bundle's source checkpoint: the test subjects are checked against the "
                   "subjects it was trained on (default: the one in the bundle's provenance, where it is here)")
    p.add_argument("--bootstrap", type=int, default=1000, help="subject-bootstrap resamples (default: %(default)s)")
    p.add_argument("--out", default="benchmarks/results/events", help="OUT.json and OUT.md (default: %(default)s)")
    return p


def _split(records: list, part: str) -> list:
    return [r for r in records if r.split == part]


def _windows_outputs(b, runs: dict[str, Any], path: str, batch: int = 32) -> tuple[list[float], dict[str, dict]]:
    """The window starts (seconds) of a recording and each file's outputs on them."""
    from acula_edge.device.audio import load
    from acula_edge.device.windows import cut_windows

    x = load(path, sample_rate=b.sample_rate)[0]
    hop = max(1, int(round(b.meta["hop_s"] * b.sample_rate)))
    starts, clips = cut_windows(x, b.window_samples, hop)
    out = {}
    for name, run in runs.items():
        parts = [run(clips[i:i + batch]) for i in range(0, len(clips), batch)]
        out[name] = {k: np.concatenate([o[k] for o in parts]) for k in parts[0]}
    return [s / b.sample_rate for s in starts], out


def _cells(spec: dict, starts: list[float], events: np.ndarray):
    """The recording's averaged event steps ``(starts [C], probs [C, K])`` and its spans, as listen builds them."""
    from acula_edge.device.findings import EventTimeline, timeline_of

    t = EventTimeline.of(spec)
    t.keep_cells = True
    spans, t = timeline_of(t, starts, list(events))
    cells = [(s, p) for s, p in t.cells if p is not None]
    if not cells:
        return np.zeros(0), np.zeros((0, len(spec["kinds"]))), spans
    return np.array([c[0] for c in cells]), np.stack([c[1] for c in cells]), spans


def _segment_score(cell_t: np.ndarray, cell_p: np.ndarray, step: float, start: float, end: float) -> np.ndarray:
    """The mean probability ``[K]`` of the steps whose centre lies in ``[start, end)`` (the nearest step
    when none does)."""
    centre = cell_t + step / 2
    inside = (centre >= start) & (centre < end)
    if not inside.any():
        inside = np.abs(centre - (start + end) / 2) == np.abs(centre - (start + end) / 2).min()
    return cell_p[inside].mean(0)


def _segments(records: list) -> list[tuple[Any, dict]]:
    """``(recording, event)`` of every annotated event segment (adventitious or Normal) of annotated recordings."""
    from acula_edge.data.events import annotated

    return [(r, e) for r in records if annotated(r) for e in r.events if e["end"] > e["start"]]


def _labels(events: list[dict]) -> dict[str, np.ndarray]:
    """Per comparison: 1 (the kind), 0 (Normal) or NaN (neither) for each event segment."""
    from acula_edge.data.events import EVENT_KINDS, is_kind

    normal = np.array([e.get("type") in ("Normal", "normal") for e in events])
    out = {}
    for name, kind in COMPARISONS.items():
        pos = np.array([any(is_kind(e, k) for k in ([kind] if kind else EVENT_KINDS)) for e in events])
        out[name] = np.where(pos, 1.0, np.where(normal, 0.0, np.nan))
    return out


def _logmel(path: str) -> np.ndarray:
    from acula_edge.frontend import FrontendConfig, iter_logmel

    return np.concatenate(list(iter_logmel(path, FrontendConfig())), axis=1)


def _stats(m: np.ndarray, frame_s: float, start: float, end: float) -> np.ndarray:
    from acula_edge.encoders import logmel_statistics

    a = int(np.clip(np.floor(start / frame_s), 0, m.shape[1] - 1))
    z = int(np.clip(np.ceil(end / frame_s), a + 1, m.shape[1]))
    return logmel_statistics(m[:, a:z])


def _probe(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], score) -> tuple[Any, float]:
    """A standardised logistic probe fitted on ``train`` with the L2 of :data:`acula_edge.probe.L2_GRID`
    that gives the best ``score(y, p)`` on ``val``; ``(predict(x) -> p, l2)``."""
    from acula_edge.probe import L2_GRID, fit_probe

    (xt, yt), (xv, yv) = train, val
    mu, sd = xt.mean(0), xt.std(0) + 1e-6
    fits = {l2: fit_probe((xt - mu) / sd, yt.astype(int), 2, l2) for l2 in L2_GRID}
    best = max(L2_GRID, key=lambda l2: score(yv, fits[l2]((xv - mu) / sd)[:, 1]))
    return (lambda x: fits[best]((x - mu) / sd)[:, 1]), best


def _auroc_ci(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n: int) -> dict[str, Any]:
    from acula_edge.metrics import auroc, bootstrap_ci

    keep = np.isfinite(y)
    y, p, g = y[keep], p[keep], groups[keep]
    if len(np.unique(y)) < 2:
        return {"auroc": None, "segments": int(keep.sum())}
    lo, hi = bootstrap_ci(y, p, g, n)
    return {"auroc": round(auroc(y, p), 4), "ci95": [round(lo, 4), round(hi, 4)], "positives": int(y.sum()),
            "negatives": int((y == 0).sum()), "subjects": len(set(g))}


def _f1_ci(counts: np.ndarray, groups: np.ndarray, n: int) -> dict[str, Any]:
    """Segment-based F1 of per-recording ``(tp, fp, fn)`` counts, with a subject-bootstrap interval."""
    from acula_edge.metrics import cluster_bootstrap

    lo, hi = cluster_bootstrap(groups, lambda idx: segment_f1(counts[idx]), n)
    tp, fp, fn = (int(v) for v in counts.sum(0))
    return {"f1": round(segment_f1(counts), 4), "ci95": [round(lo, 4), round(hi, 4)], "tp": tp, "fp": fp, "fn": fn}


def _onsets(reference: list[tuple[float, float]], found: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """``(|onset error|, |offset error|)`` of each annotated span against the found span overlapping it most."""
    out = []
    for s, e in reference:
        best = max(found, key=lambda f: min(e, f[1]) - max(s, f[0]), default=None)
        if best is not None and min(e, best[1]) - max(s, best[0]) > 0:
            out.append((abs(best[0] - s), abs(best[1] - e)))
    return out


def evaluate_file(b, name: str, per_record: list[dict], test_events: list, bootstrap: int) -> dict[str, Any]:
    """Routing, event-level AUROC and localisation of one model file (``per_record``: each test
    recording's ``record``, window ``starts`` and outputs by file)."""
    from acula_edge.data.events import kind_spans
    from acula_edge.device.findings import UNKNOWN, route
    from acula_edge.metrics import cluster_bootstrap, wilson_ci

    spec, classes = b.events, b.modalities
    least = float(b.meta["outputs"]["modality"]["min_confidence"])
    routing: dict[str, dict[str, Any]] = {}
    kinds = {(x["record"].dataset, x["record"].modality) for x in per_record}
    for ds, modality in sorted(kinds):
        rows = [x for x in per_record if (x["record"].dataset, x["record"].modality) == (ds, modality)]
        if sum(d == ds for d, _ in kinds) > 1:  # a corpus of several modalities (the synthetic one)
            ds = f"{ds}:{modality}"
        hits, unknown, groups, rec_hits = [], [], [], 0
        for x in rows:
            probs = x["outputs"][name]["modality"]
            routed = [route(p, classes, least)[0] for p in probs]
            hits += [m == x["record"].modality for m in routed]
            unknown += [m == UNKNOWN for m in routed]
            groups += [x["record"].subject] * len(routed)
            rec_hits += route(probs.mean(0), classes, least)[0] == x["record"].modality
        h, g = np.array(hits, float), np.array(groups)
        lo, hi = cluster_bootstrap(g, lambda idx: float(h[idx].mean()), bootstrap)
        rl, rh = wilson_ci(rec_hits, len(rows))
        routing[ds] = {"modality": rows[0]["record"].modality, "windows": len(h), "accuracy": round(float(h.mean()), 4),
                       "ci95": [round(lo, 4), round(hi, 4)], "unknown": round(float(np.mean(unknown)), 4),
                       "recordings": len(rows), "recording_accuracy": round(rec_hits / len(rows), 4),
                       "recording_ci95": [round(rl + 0.0, 4), round(rh, 4)]}
    annotated = [x for x in per_record if x["record"].id in test_events]
    scores = {k: [] for k in COMPARISONS}
    seg_groups, counts, groups, errors = [], {k: [] for k in spec["kinds"]}, [], {k: [] for k in spec["kinds"]}
    for x in annotated:
        r = x["record"]
        cell_t, cell_p, spans = _cells(spec, x["starts"], x["outputs"][name]["events"])
        for e in test_events[r.id]:
            p = _segment_score(cell_t, cell_p, spec["step_s"], e["start"], e["end"])
            for comp, kind in COMPARISONS.items():
                scores[comp].append(float(p.max() if kind is None else p[spec["kinds"].index(kind)]))
            seg_groups.append(r.subject)
        duration = r.duration or (x["starts"][-1] + b.meta["window_s"])
        for kind in spec["kinds"]:
            ref = kind_spans(r, kind)
            found = [(s.start, s.end) for s in spans if s.kind == kind]
            counts[kind].append(segment_counts(ref, found, duration))
            errors[kind] += _onsets(ref, found)
        groups.append(r.subject)
    labels = _labels([e for x in annotated for e in test_events[x["record"].id]])
    g = np.array(seg_groups)
    events = {comp: _auroc_ci(labels[comp], np.array(scores[comp]), g, bootstrap) for comp in COMPARISONS}
    loc = {}
    for kind in spec["kinds"]:
        c = np.array(counts[kind]).reshape(-1, 3)
        err = np.array(errors[kind]).reshape(-1, 2)
        ref_spans = sum(len(kind_spans(x["record"], kind)) for x in annotated)
        loc[kind] = {**_f1_ci(c, np.array(groups), bootstrap), "annotated_spans": ref_spans,
                     "spans_overlapped": int(len(err)),
                     "onset_error_s_median": round(float(np.median(err[:, 0])), 3) if len(err) else None,
                     "offset_error_s_median": round(float(np.median(err[:, 1])), 3) if len(err) else None}
    return {"routing": routing, "events": events, "localisation": loc, "scores": scores}


def logmel_floor(train: list, val: list, test: list, bootstrap: int) -> dict[str, Any]:
    """The log-mel statistics probes: event-segment AUROC and 0.5 s segment F1 (see the module docstring)."""
    from acula_edge.data.events import EVENT_KINDS, kind_spans
    from acula_edge.frontend import FrontendConfig
    from acula_edge.metrics import auroc
    from acula_edge.progress import progress

    fe = FrontendConfig()
    frame_s = fe.hop_length / fe.sample_rate
    parts = {}
    for part, records in (("train", train), ("val", val), ("test", test)):
        seg_x, seg_events, seg_groups, grid_x, grid_y, grid_rec = [], [], [], [], [], []
        for i, r in enumerate(progress(records, desc=f"log-mel {part}")):
            m = _logmel(r.path)
            for e in [e for _, e in _segments([r])]:
                seg_x.append(_stats(m, frame_s, e["start"], e["end"]))
                seg_events.append(e)
                seg_groups.append(r.subject)
            duration = m.shape[1] * frame_s
            for t in np.arange(0.0, max(duration, SEGMENT_S), SEGMENT_S):
                grid_x.append(_stats(m, frame_s, t, t + SEGMENT_S))
                grid_rec.append(i)
            grid_y.append(np.stack([active_segments(kind_spans(r, k), duration) for k in EVENT_KINDS], 1))
        parts[part] = {"x": np.array(seg_x), "labels": _labels(seg_events), "groups": np.array(seg_groups),
                       "gx": np.array(grid_x), "gy": np.concatenate(grid_y), "grec": np.array(grid_rec),
                       "records": records}
    tr, va, te = parts["train"], parts["val"], parts["test"]
    out: dict[str, Any] = {"events": {}, "localisation": {}, "scores": {}}
    def both(*ys: np.ndarray) -> bool:
        return all(len(np.unique(y[np.isfinite(y)])) == 2 for y in ys)

    for comp in COMPARISONS:
        k = {p: np.isfinite(parts[p]["labels"][comp]) for p in parts}
        if not both(*(parts[p]["labels"][comp] for p in parts)):
            out["events"][comp] = {"auroc": None, "reason": "train, val or test lacks a class of these segments"}
            out["scores"][comp] = [float("nan")] * len(te["x"])
            continue
        predict, l2 = _probe((tr["x"][k["train"]], tr["labels"][comp][k["train"]]),
                             (va["x"][k["val"]], va["labels"][comp][k["val"]]), auroc)
        p = predict(te["x"]) if len(te["x"]) else np.zeros(0)
        out["events"][comp] = {**_auroc_ci(te["labels"][comp], p, te["groups"], bootstrap), "l2": l2}
        out["scores"][comp] = [float(v) for v in p]
    def counts(y: np.ndarray, found: np.ndarray) -> np.ndarray:
        return np.array([(y & found).sum(), (~y & found).sum(), (y & ~found).sum()])

    def best(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
        """The threshold on ``p`` with the best segment F1 on ``y``, and that F1."""
        return max(((t, segment_f1(counts(y, p >= t))) for t in np.unique(np.round(p, 3))), key=lambda x: x[1])

    for j, kind in enumerate(EVENT_KINDS):
        yt, yv, ye = tr["gy"][:, j], va["gy"][:, j], te["gy"][:, j]
        if not both(yt.astype(float), yv.astype(float)):
            out["localisation"][kind] = {"f1": None, "reason": "train or val holds no annotated span of it"}
            continue
        predict, l2 = _probe((tr["gx"], yt), (va["gx"], yv), lambda y, p: best(y.astype(bool), p)[1])
        threshold = best(yv, predict(va["gx"]))[0]
        pe = predict(te["gx"]) >= threshold
        each = [te["grec"] == i for i in range(len(te["records"]))]
        per_record = np.array([counts(ye[k], pe[k]) for k in each]).reshape(-1, 3)
        always = np.array([counts(ye[k], np.ones(k.sum(), bool)) for k in each]).reshape(-1, 3)
        groups = np.array([r.subject for r in te["records"]])
        out["localisation"][kind] = {**_f1_ci(per_record, groups, bootstrap), "l2": l2, "threshold": float(threshold),
                                     "always_active_f1": round(segment_f1(always), 4)}
    return out


def _compare(b, per_record: list[dict], name: str, reference: str) -> dict[str, float]:
    """A file's routing and event probabilities against another file's, over every test window."""
    from acula_edge.device.findings import route

    least = float(b.meta["outputs"]["modality"]["min_confidence"])
    a = [route(p, b.modalities, least)[0] for x in per_record for p in x["outputs"][name]["modality"]]
    r = [route(p, b.modalities, least)[0] for x in per_record for p in x["outputs"][reference]["modality"]]
    d = np.concatenate([np.abs(x["outputs"][name]["events"] - x["outputs"][reference]["events"]).ravel()
                        for x in per_record])
    return {"routing_agrees": round(float(np.mean(np.array(a) == np.array(r))), 4),
            "events_mean_abs_diff": round(float(d.mean()), 4), "events_max_abs_diff": round(float(d.max()), 4)}


def _table(doc: dict[str, Any]) -> str:
    ref = doc["files"][doc["reference"]]
    lines = [f"Bundle `{doc['bundle']}`, {doc['test_recordings']} test recordings of subjects the student never saw "
             f"({doc['subjects_checked']}).", "",
             "**Routing** (" + doc["reference"] + "; windows, 95% subject-bootstrap interval; recordings by their mean "
             "probability, Wilson interval)", "",
             "| dataset | modality | windows | accuracy | unknown | recordings | recording accuracy |", "|---|---|---|---|---|---|---|"]
    for ds, r in ref["routing"].items():
        lines.append(f"| {ds} | {r['modality']} | {r['windows']} | {r['accuracy']:.3f} [{r['ci95'][0]:.3f}, "
                     f"{r['ci95'][1]:.3f}] | {r['unknown']:.3f} | {r['recordings']} | {r['recording_accuracy']:.3f} "
                     f"[{r['recording_ci95'][0]:.3f}, {r['recording_ci95'][1]:.3f}] |")
    lines += ["", "**Event segments** (AUROC against segments annotated Normal, 95% subject-bootstrap interval)", "",
              "| segments | student events (" + doc["reference"] + ") | log-mel statistics probe | difference |",
              "|---|---|---|---|"]
    for comp in COMPARISONS:
        s, f, d = ref["events"][comp], doc["logmel"]["events"][comp], doc["difference"].get(comp)
        fmt = lambda m: "-" if m.get("auroc") is None else f"{m['auroc']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]"  # noqa: E731
        n = f"{s.get('positives', 0)} vs {s.get('negatives', 0)}"
        diff = "-" if not d else f"{d['delta']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
        lines.append(f"| {comp} ({n}) | {fmt(s)} | {fmt(f)} | {diff} |")
    lines += ["", f"**Localisation** (segment-based F1 at {SEGMENT_S} s; the student's spans as listen reports them)", "",
              "| kind | student F1 | log-mel probe F1 | always active | annotated spans | overlapped | median onset error | median offset error |",
              "|---|---|---|---|---|---|---|---|"]
    for kind, s in ref["localisation"].items():
        f = doc["logmel"]["localisation"][kind]
        med = lambda v: "-" if v is None else f"{v:.2f} s"  # noqa: E731
        floor = "-" if f.get("f1") is None else f"{f['f1']:.3f} [{f['ci95'][0]:.3f}, {f['ci95'][1]:.3f}]"
        lines.append(f"| {kind}-like | {s['f1']:.3f} [{s['ci95'][0]:.3f}, {s['ci95'][1]:.3f}] | {floor} | "
                     f"{f.get('always_active_f1', float('nan')):.3f} | {s['annotated_spans']} | "
                     f"{s['spans_overlapped']} | {med(s['onset_error_s_median'])} | {med(s['offset_error_s_median'])} |")
    lines += ["", "**Every file** (routing and events against the fp32 file of its format; latency: median ms per "
              "window, batch 1, one thread, the whole graph)", "",
              "| file | routing " + " / ".join(ref["routing"]) + " | adventitious AUROC | " +
              " / ".join(f"{k} F1" for k in ref["localisation"]) + " | routing agrees | event |diff| mean / max | ms |",
              "|---|---|---|---|---|---|---|"]
    for name, f in doc["files"].items():
        c = f.get("against_fp32") or {}
        lines.append(f"| {name} | " + " / ".join(f"{r['accuracy']:.3f}" for r in f["routing"].values())
                     + f" | {f['events']['adventitious']['auroc'] or float('nan'):.3f} | "
                     + " / ".join(f"{v['f1']:.3f}" for v in f["localisation"].values())
                     + f" | {c.get('routing_agrees', '-')} | "
                     + (f"{c['events_mean_abs_diff']:.4f} / {c['events_max_abs_diff']:.4f}" if c else "-")
                     + f" | {doc['latency_ms'][name]:.2f} |")
    return "\n".join(lines) + "\n"


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks events``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    a = _parser().parse_args(argv)
    from acula_edge.data.records import read_manifest
    from acula_edge.device.bundle import default_bundle, load_bundle
    from acula_edge.device.runtime import model_files, runner, median_latency
    from acula_edge.metrics import paired_delta_ci, auroc
    from acula_edge.progress import progress
    from acula_edge.provenance import machine, versions
    from benchmarks.common import save_with_table
    from export.verify import held_out

    b = load_bundle(a.bundle or default_bundle())
    if not b.modalities or not b.events:
        raise AculaError(f"{b.path}: its model has no modality and event outputs (export a student distilled with "
                         "--modality-head and --events)")
    records = read_manifest(a.manifest)
    records = [r for r in records if r.dataset != "synthetic"] or records  # real recordings where there are any
    test, train, val = (_split(records, p) for p in ("test", "train", "val"))
    if not test or not train or not val:
        raise AculaError(f"{a.manifest}: needs train, val and test splits (the pipeline's RUN/data/manifest.jsonl)")
    test = [r for r in test if r.modality in b.modalities]  # routing is scored where the head knows the answer
    ckpt = a.checkpoint or b.meta["provenance"].get("checkpoint")
    checked = "not checked: the source checkpoint is not here"
    if ckpt and Path(ckpt).is_file():
        kept, left = held_out(test, ckpt)
        if left:
            raise AculaError(f"{left} test subjects trained the student: choose a manifest whose test split it never saw")
        checked = f"none of them among the student's training subjects, checked against {ckpt}"
    files = list(model_files(b))
    runs = {n: runner(b, n) for n in files}
    per_record = []
    for r in progress(test, desc="model files"):
        starts, outs = _windows_outputs(b, runs, r.path)
        per_record.append({"record": r, "starts": starts, "outputs": outs})
    test_events = {r.id: [e for _, e in _segments([r])] for r in test}
    test_events = {k: v for k, v in test_events.items() if v}
    reference = next(n for n in files if n == "model_fp32.onnx") if "model_fp32.onnx" in files else files[0]
    doc: dict[str, Any] = {"bundle": str(b.path), "manifest": a.manifest, "reference": reference,
                           "test_recordings": len(test), "subjects_checked": checked, "files": {}}
    for name in files:
        doc["files"][name] = evaluate_file(b, name, per_record, test_events, a.bootstrap)
    for name in files:
        fmt_fp32 = "model_fp32.tflite" if name.endswith(".tflite") else "model_fp32.onnx"
        if name != fmt_fp32 and fmt_fp32 in files:
            doc["files"][name]["against_fp32"] = _compare(b, per_record, name, fmt_fp32)
    annotated_train = [r for r in train if _segments([r])]
    annotated_val = [r for r in val if _segments([r])]
    annotated_test = [x["record"] for x in per_record if x["record"].id in test_events]
    doc["logmel"] = logmel_floor(annotated_train, annotated_val, annotated_test, a.bootstrap)
    groups = np.array([x["record"].subject for x in per_record if x["record"].id in test_events
                       for _ in test_events[x["record"].id]])
    labels = _labels([e for x in per_record if x["record"].id in test_events for e in test_events[x["record"].id]])
    doc["difference"] = {}
    for comp in COMPARISONS:
        y, s = labels[comp], np.array(doc["files"][reference]["scores"][comp])
        f = np.array(doc["logmel"]["scores"][comp])
        k = np.isfinite(y)
        if len(np.unique(y[k])) == 2:
            lo, hi = paired_delta_ci(y[k], f[k], s[k], groups[k], a.bootstrap)
            doc["difference"][comp] = {"delta": round(auroc(y[k], s[k]) - auroc(y[k], f[k]), 4),
                                       "ci95": [round(lo, 4), round(hi, 4)]}
    one = np.zeros((1, b.window_samples), np.float32)
    one[0] = 0.01 * np.random.default_rng(0).standard_normal(b.window_samples)
    doc["latency_ms"] = median_latency({n: (lambda r=runs[n]: r(one)) for n in files})
    for f in doc["files"].values():
        f.pop("scores")
    doc["logmel"].pop("scores")
    doc.update(machine=machine(), versions=versions())
    save_with_table(doc, a.out, "benchmarks", ["events", *argv], _table(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
