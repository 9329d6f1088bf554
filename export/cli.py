"""``python -m export``: a student checkpoint as a verified bundle (waveform in, embedding and scores out).

    python -m export --checkpoint runs/student/student.safetensors --out bundles/lung \\
        [--formats onnx,tflite] [--int8] [--quantizer ort|inc] [--calibration MANIFEST] [--prompts FILE]
    python -m export verify bundles/lung [--data MANIFEST] [--json]      (see :mod:`export.verify`)
    python -m export add-self-test bundles/lung     (a bundle exported without its self-test)
    python -m export keygen --out keys/acula; python -m export sign bundles/lung --key keys/acula.pem

Formats: ONNX fp32 (dynamic batch) and TFLite fp32 (batch 1). The ONNX files store the front end's
DFT basis as the few nodes that make it (:func:`export.onnx.compact_front_end`), about 4 MB less.
With ``--int8``, calibrated on the recordings of ``--calibration`` (else on a small synthetic
corpus), the front end kept in fp32: ONNX int8 made by onnxruntime (static QDQ, per channel;
:mod:`export.onnx`) or, with ``--quantizer inc``, by Intel Neural Compressor (:mod:`export.inc`);
TFLite int8 and the full-integer pair (:mod:`export.tflite`). The bundle is written to a temporary
folder and renamed into place (:mod:`acula_edge.device.bundle`), with its self-test: reference
windows and every model file's outputs on them (:mod:`acula_edge.device.selftest`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from acula_edge.cli import Parser, describe, guarded
from acula_edge.errors import AculaError

FORMATS = ("onnx", "tflite")
#: who makes each format's int8 file, by --quantizer (TFLite's is always ai-edge-quantizer)
INT8_TOOLS = {"ort": {"onnx": "onnxruntime", "tflite": "ai-edge-quantizer"},
              "inc": {"onnx": "neural-compressor", "tflite": "ai-edge-quantizer"}}
QUANTIZERS = tuple(INT8_TOOLS)


def graph_outputs(student: dict[str, Any], frontend: dict[str, Any], heads: int,
                  events: dict[str, Any] | None = None) -> dict[str, Any]:
    """``bundle.json``'s description of a student graph's outputs (``student``: its config as a dict;
    ``events``: the findings' hysteresis chosen on calibration recordings, else the defaults)."""
    from acula_edge.data.events import step_timing
    from acula_edge.device import findings

    out: dict[str, Any] = {
        "embedding": {"dtype": "float32", "shape": ["batch", student["embed_dim"]], "l2_normalised": True,
                      "space": "aligned audio-text"},
        "scores": {"dtype": "float32", "shape": ["batch", heads], "meaning": "probability per head"}}
    if student.get("modalities"):
        out["modality"] = {"dtype": "float32", "shape": ["batch", len(student["modalities"])],
                           "classes": list(student["modalities"]), "min_confidence": findings.MIN_CONFIDENCE,
                           "meaning": "probability of each modality (softmax); a window routes to the most likely "
                                      "one when it reaches min_confidence, else it is unknown"}
    if student.get("events"):
        step_s, offset_s = step_timing(frontend, student["event_stride"])
        steps = student["window_frames"] // student["event_stride"]
        out["events"] = {"dtype": "float32", "shape": ["batch", steps, len(student["events"])],
                         "kinds": list(student["events"]), "modality": "lung", "step_s": round(step_s, 6),
                         "offset_s": round(offset_s, 6), "on": (events or {}).get("on", findings.EVENT_ON),
                         "off": (events or {}).get("off", findings.EVENT_OFF), "min_s": findings.EVENT_MIN_S,
                         "hysteresis_chosen_on": (events or {}).get("calibration") or "defaults (no annotated "
                                                                                      "calibration recordings)",
                         "meaning": "probability of each event kind in each step of step_s seconds, the first "
                                    "offset_s after the window starts; spans by hysteresis (on, off, min_s)"}
    return out


def bundle_meta(checkpoint: str, meta: dict[str, Any], samples: int, hop_s: float | None,
                name: str | None = None) -> dict[str, Any]:
    """``bundle.json``'s description of a student checkpoint (everything but the files)."""
    from acula_edge import __version__
    from acula_edge.data.tasks import get_task, task_modality
    from acula_edge.hashing import sha256_file

    fe = meta["frontend"]
    window_s = samples / fe["sample_rate"]
    student = meta["student"]
    heads = []
    for h in meta.get("heads", []):
        try:
            task = get_task(h["task"])
            meaning, modality = task.description, task_modality(task)
        except AculaError:
            meaning, modality = h["task"], None
        op = h.get("calibration") if isinstance(h.get("calibration"), dict) else None
        heads.append({"name": h["name"], "meaning": meaning, "modality": modality, "threshold": h.get("threshold"),
                      "operating_point": op})
    return {"name": name or Path(checkpoint).parent.name or "student", "sample_rate": fe["sample_rate"],
            "window_s": round(window_s, 6), "hop_s": round(hop_s or window_s / 2, 6), "frontend": fe,
            "input": {"name": "waveform", "dtype": "float32", "shape": ["batch", samples], "range": [-1.0, 1.0]},
            "outputs": graph_outputs(student, fe, len(heads), meta.get("event_operating_point")),
            "heads": heads, "metrics": {},
            "provenance": {"checkpoint": str(checkpoint), "checkpoint_sha256": sha256_file(checkpoint, persistent=True),
                           "student": student["name"], "parameters": meta.get("parameters"),
                           "teacher": (meta.get("teacher") or {}).get("path"),
                           "teacher_sha256": (meta.get("teacher") or {}).get("sha256"),
                           "text_teacher": (meta.get("text_teacher") or {}).get("model_id"),
                           "trained_subjects": meta.get("trained_subjects_count"), "code_version": __version__}}


def calibration_waves(manifest: str | None, sample_rate: int, samples: int, work: Path):
    """Calibration waveforms from a manifest's recordings, else from a small synthetic corpus."""
    from acula_edge.data.records import read_manifest
    from export.onnx import waveform_windows

    if manifest:
        records = read_manifest(manifest)
    else:
        from acula_edge.data.synth import generate

        print("no --calibration manifest: calibrating on 64 synthetic clips (seed 0)", file=sys.stderr)
        records = generate(work / "synthetic", 64, seed=0)
    if not records:
        raise AculaError(f"calibration manifest {manifest} lists no recordings")
    return waveform_windows(records, sample_rate, samples)


def held_out_metrics(model, checkpoint: str, manifest: str, heads: list[dict[str, Any]], hop: int) -> dict[str, Any]:
    """The heads' metrics with intervals on the recordings of ``manifest`` whose subjects the student
    was not trained on (the torch graph on windows every ``hop`` samples, probabilities averaged per
    recording)."""
    import numpy as np

    from acula_edge.data.records import read_manifest
    from acula_edge.device.windows import long_enough
    from export.verify import head_metrics, held_out, stream_outputs, torch_run

    kept, left_out = held_out(read_manifest(manifest), checkpoint)
    if not kept:
        raise AculaError(f"{manifest}: every subject was used to train this student; give held-out recordings")
    kept, short = long_enough(kept, model.samples / model.fe.sample_rate)
    if not kept:
        raise AculaError(f"{manifest}: every held-out recording is too short to score (under half a window)")
    runs = {"torch": torch_run(model)}
    scores = np.stack([stream_outputs(r.path, runs, model.fe.sample_rate, model.samples, hop)["torch"]["scores"].mean(0)
                       for r in kept])
    return {"data": manifest, "recordings": len(kept), "subjects": len({r.subject for r in kept}),
            "trained_subjects_left_out": left_out, "too_short": short, "heads": head_metrics(kept, scores, heads)}


def read_card(path: str) -> dict[str, Any]:
    """The ``--card`` JSON, checked: a clear error instead of a half-written model card."""
    import json

    try:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AculaError(f"--card: file not found: {path}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise AculaError(f"--card: {path} is not JSON: {e}") from None
    results = card.get("results", {}) if isinstance(card, dict) else None
    ok = (isinstance(card, dict) and set(card) <= {"summary", "data", "limitations", "results"}
          and isinstance(card.get("summary", ""), str)
          and all(isinstance(d, dict) and {"dataset", "train", "held_out", "licence"} <= set(d) for d in card.get("data", []))
          and all(isinstance(x, str) for x in card.get("limitations", []))
          and isinstance(results, dict) and (not results or (
              {"title", "note", "columns", "rows"} <= set(results) and isinstance(results["columns"], list)
              and all(isinstance(r, list) and len(r) == len(results["columns"]) for r in results["rows"]))))
    if not ok:
        raise AculaError(f"--card: {path} must hold summary (text), data (rows with dataset, train, held_out, licence), "
                         "limitations (texts) and optionally results (title, note, columns, rows), nothing else")
    return card


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m export`` (and ``verify``, ``add-self-test``, ``check-device``, ``keygen``, ``sign``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["verify"]:
        from export.verify import main as verify_main

        return verify_main(argv[1:])
    if argv[:1] == ["add-self-test"]:
        return add_self_test_main(argv[1:])
    if argv[:1] == ["check-device"]:
        from export.devices import main as check_device_main

        return check_device_main(argv[1:])
    if argv[:1] in (["sign"], ["keygen"]):
        return sign_main(argv)
    return export_main(argv)


@guarded
def export_main(argv: Sequence[str]) -> int:
    """``python -m export --checkpoint CKPT --out BUNDLE ...``."""
    p = Parser(prog="python -m export", description=describe(__doc__))
    p.epilog = (f"Check a bundle against its source checkpoint: {p.prog} verify BUNDLE [--data MANIFEST] [--json] "
                f"({p.prog} verify --help for its options). Give a bundle exported without one its self-test: "
                f"{p.prog} add-self-test BUNDLE.")
    p.add_argument("--checkpoint", required=True, help="student checkpoint from `python -m distill`")
    p.add_argument("--out", required=True, help="bundle folder to write")
    p.add_argument("--formats", default="onnx", help=f"comma-separated, of: {', '.join(FORMATS)}")
    p.add_argument("--int8", action="store_true", help="also an int8 model per format (and the full-integer "
                   "TFLite pair)")
    p.add_argument("--no-full-integer", action="store_true", help="leave the full-integer TFLite pair out (a smaller "
                   "bundle for devices without an int8 accelerator)")
    p.add_argument("--quantizer", default="ort", help="who makes the ONNX int8 file: 'ort' (onnxruntime static "
                   "QDQ) or 'inc' (Intel Neural Compressor on the PyTorch side, exported to ONNX)")
    p.add_argument("--calibration", metavar="MANIFEST", help="recordings to calibrate int8 on")
    p.add_argument("--calibrator", default="minmax", help="onnxruntime int8: activation ranges from the min/max "
                   "(default) or the 99.99th percentile ('percentile') of the calibration windows")
    p.add_argument("--prompts", metavar="FILE", help="zero-shot prompts, one per line (embedded into prompts.npy)")
    p.add_argument("--evaluate", metavar="MANIFEST", help="held-out recordings: each head's AUROC, sensitivity and "
                   "specificity with intervals go into the bundle and its model card (subjects the student was "
                   "trained on are left out)")
    p.add_argument("--name", help="the bundle's name (default: the checkpoint's folder name)")
    p.add_argument("--card", metavar="JSON", help="model-card additions: {\"summary\": text, \"data\": [{\"dataset\", "
                   "\"train\", \"held_out\", \"licence\"}], \"limitations\": [text]}")
    p.add_argument("--hop", type=float, help="default hop between windows in seconds (default half a window)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    a = p.parse_args(argv)
    formats = [f for f in a.formats.split(",") if f]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown or not formats:
        raise AculaError(f"unknown format(s) {', '.join(unknown) or '(none)'}; this exporter writes: {', '.join(FORMATS)}")
    if a.quantizer not in QUANTIZERS:
        raise AculaError(f"unknown quantizer {a.quantizer!r}; choose one of: {', '.join(QUANTIZERS)}")
    from export.onnx import CALIBRATORS

    if a.calibrator not in CALIBRATORS:
        raise AculaError(f"unknown calibrator {a.calibrator!r}; choose one of: {', '.join(CALIBRATORS)}")
    if a.quantizer != "ort" and "onnx" not in formats:
        raise AculaError(f"--quantizer {a.quantizer} makes the ONNX int8 file: add onnx to --formats "
                         "(TFLite int8 is always made by ai-edge-quantizer)")
    if Path(a.out).exists() and not a.overwrite:
        raise AculaError(f"{a.out} exists; choose another folder or pass --overwrite")
    for flag, path in (("--calibration", a.calibration), ("--evaluate", a.evaluate)):
        if path and not Path(path).is_file():
            raise AculaError(f"{flag}: manifest not found: {path}")
    card = read_card(a.card) if a.card else None
    prompts: list[str] = []
    if a.prompts:
        if not Path(a.prompts).is_file():
            raise AculaError(f"prompts file not found: {a.prompts}")
        prompts = [line.strip() for line in Path(a.prompts).read_text(encoding="utf-8").splitlines() if line.strip()]
        if len(prompts) < 2:
            raise AculaError(f"{a.prompts}: give at least two prompts, one per line")

    import io

    import numpy as np
    import torch

    from acula_edge.device.bundle import write_bundle
    from acula_edge.device.selftest import SELF_TEST, make_self_test
    from export.model import edge_model
    from export.onnx import compact_front_end, export_onnx, quantize_int8

    from acula_edge.checkpoint import read_sidecar

    meta = read_sidecar(a.checkpoint)
    if meta.get("kind") != "student":
        raise AculaError(f"{a.checkpoint} is not a student checkpoint: distil one with `python -m distill`")
    if prompts and not (meta.get("projections") or {}).get("text"):  # before minutes of conversion
        raise AculaError(f"{a.checkpoint}: not an aligned checkpoint (no text projection): it cannot embed --prompts")
    model = edge_model(a.checkpoint)
    doc = bundle_meta(a.checkpoint, meta, model.samples, a.hop, a.name)
    if card:
        doc["card"] = card
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files: dict[str, Any] = {}
        waves = calibration_waves(a.calibration, model.fe.sample_rate, model.samples, work) if a.int8 else None
        if waves is not None:
            doc["provenance"]["int8_calibration"] = {"source": a.calibration or "synthetic corpus (64 clips, seed 0)",
                                                     "windows": int(waves.shape[0]), "onnxruntime_calibrator": a.calibrator,
                                                     "quantizer": {f: INT8_TOOLS[a.quantizer][f] for f in formats}}
        if "onnx" in formats:
            fp32 = export_onnx(model, work / "model_fp32.onnx", torch.zeros(2, model.samples), "waveform", model.names)
            files["model_fp32.onnx"] = fp32
            if waves is not None and a.quantizer == "inc":
                from export.inc import quantize_inc

                files["model_int8.onnx"] = quantize_inc(model, work / "model_int8.onnx", waves)
            elif waves is not None:
                files["model_int8.onnx"] = quantize_int8(fp32, work / "model_int8.onnx", waves, calibrator=a.calibrator)
            for onnx_file in [f for n, f in files.items() if n.endswith(".onnx")]:
                compact_front_end(onnx_file, doc["frontend"])  # after quantization, which reads the fp32 basis
        if "tflite" in formats:
            from export.tflite import export_tflite

            made = export_tflite(model, work / "tflite", waves, full_integer=not a.no_full_integer)
            files.update(made)
            if "network_int8.tflite" in made:
                doc["split"] = {"frontend": "frontend_fp32.tflite", "network": "network_int8.tflite",
                                "between": {"name": "logmel", "shape": [1, model.fe.n_mels, model.network.student.config.window_frames],
                                            "range": [0.0, 1.0], "note": "the front end's float32 output, quantized with "
                                            "the network input's scale and zero point; the network's int8 outputs "
                                            "are dequantized with their own, and the embedding then divided by "
                                            "its L2 norm"}}
        if a.evaluate:
            hop = max(1, int(round(doc["hop_s"] * model.fe.sample_rate)))
            doc["metrics"] = held_out_metrics(model, a.checkpoint, a.evaluate, doc["heads"], hop)
        if prompts:
            from acula_edge.zeroshot import embed_prompts

            buf = io.BytesIO()
            np.save(buf, embed_prompts(a.checkpoint, prompts))
            files["prompts.npy"] = buf.getvalue()
            doc["prompts"] = {"texts": prompts, "file": "prompts.npy"}
        doc["default_precision"], doc["provenance"]["precision_timing"] = default_precision(files, model.samples)
        files[SELF_TEST], doc["self_test"] = make_self_test(write_bundle(work / "bundle", doc, files))
        bundle = write_bundle(a.out, doc, files, overwrite=a.overwrite)
    for name, f in bundle.meta["files"].items():
        print(f"{name}: {f['bytes'] / 1024:.0f} KiB")
    print(f"bundle written to {bundle.path}", file=sys.stderr)
    return 0


@guarded
def add_self_test_main(argv: Sequence[str]) -> int:
    """``python -m export add-self-test BUNDLE``: give a bundle exported without one its self-test."""
    p = Parser(prog="python -m export add-self-test",
               description="Run every model file of a bundle on the self-test's reference windows here and store "
                           "the outputs in the bundle (selftest.npz), so that python -m acula_edge.listen --self-test "
                           "can check the files on a device. Run it where the files are known to be good: after "
                           "python -m export verify passed.")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--overwrite", action="store_true", help="replace a self-test the bundle already carries")
    a = p.parse_args(argv)
    from acula_edge.device.bundle import CARD, load_bundle, write_bundle
    from acula_edge.device.selftest import SELF_TEST, make_self_test

    b = load_bundle(a.bundle)
    if b.meta.get("self_test") and not a.overwrite:
        raise AculaError(f"{b.path} already carries a self-test; pass --overwrite to make it again")
    data, entry = make_self_test(b)
    files = {n: b.path / n for n in b.meta["files"] if n != SELF_TEST}
    card = (b.path / CARD).read_text(encoding="utf-8") if (b.path / CARD).is_file() else None
    b = write_bundle(b.path, {**b.meta, "self_test": entry}, {**files, SELF_TEST: data}, card=card, overwrite=True)
    print(f"{b.path}: self-test of {entry['windows']} windows for {', '.join(entry['files'])} "
          f"({b.meta['files'][SELF_TEST]['bytes'] / 1024:.0f} KiB)")
    return 0


@guarded
def sign_main(argv: Sequence[str]) -> int:
    """``python -m export keygen --out NAME`` and ``python -m export sign BUNDLE --key NAME.pem``."""
    from acula_edge.device.signing import generate_key, sign_bundle

    if argv[0] == "keygen":
        p = Parser(prog="python -m export keygen", description="Make an Ed25519 key pair for signing bundles: "
                   "NAME.pem (private: keep it off devices) and NAME.pub.pem (give it to devices: listen --trusted-key).")
        p.add_argument("--out", required=True, metavar="NAME", help="path and stem of the two key files")
        a = p.parse_args(argv[1:])
        generate_key(f"{a.out}.pem", f"{a.out}.pub.pem")
        print(f"private key {a.out}.pem, public key {a.out}.pub.pem")
        return 0
    p = Parser(prog="python -m export sign", description="Sign a bundle (its bundle.json, which holds every file's "
               "sha256) with an Ed25519 private key; the signature goes to BUNDLE/bundle.sig. A device run with "
               "python -m acula_edge.listen --trusted-key PUB.pem refuses the bundle if it changed after signing.")
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--key", required=True, help="Ed25519 private key (PEM, unencrypted), e.g. from python -m export keygen")
    a = p.parse_args(argv[1:])
    from acula_edge.device.bundle import load_bundle

    b = load_bundle(a.bundle)  # never sign a bundle whose files do not match its description
    print(f"signed {b.path}: {sign_bundle(b.path, a.key)}")
    return 0


def default_precision(files: dict[str, Any], samples: int) -> tuple[dict[str, str], dict[str, Any]]:
    """For each format with an fp32 and an int8 file: the precision ``listen`` runs by default, int8 only
    where it is at least 5% faster than fp32 here (batch 1, one thread, timed in turns), and the timings.
    Whether int8 keeps the accuracy is ``export verify``'s check."""
    import numpy as np

    from acula_edge.device.bundle import MODEL_FILES
    from acula_edge.device.runtime import median_latency, session, tflite_runner
    from acula_edge.provenance import cpu_model

    x = np.random.default_rng(0).uniform(-0.3, 0.3, (1, samples)).astype(np.float32)
    chosen: dict[str, str] = {}
    timing: dict[str, Any] = {}
    for fmt in FORMATS:
        pair = {p: files[n] for n, (f, p) in MODEL_FILES.items() if f == fmt and n in files}
        if len(pair) < 2:
            continue
        calls = {}
        for precision, path in pair.items():
            if fmt == "onnx":
                s = session(path, 1)
                calls[precision] = lambda s=s: s.run(None, {"waveform": x})
            else:
                r = tflite_runner(path, 1)
                calls[precision] = lambda r=r: r(x)
        ms = median_latency(calls)
        chosen[fmt] = "int8" if ms["int8"] < 0.95 * ms["fp32"] else "fp32"
        timing[fmt] = {"ms_per_window": ms, "threads": 1, "cpu": cpu_model()}
    return chosen, timing


if __name__ == "__main__":
    raise SystemExit(main())
