"""A tiny end-to-end distillation on the synthetic corpus: the student's agreement with the teacher
rises from chance to well above it; the checkpoint and the CLI's bad-input paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from acula_edge.checkpoint import read_sidecar
from acula_edge.data.records import read_manifest
from conftest import DISTILL_HEADS, call_main, kill_after_steps, run_module
from acula_edge.models.students import create_student
from distill.teacher import read_targets
from acula_edge.models.students import load_student
from acula_edge.frontend import DEFAULT_STUDENT_FRONTEND, get_frontend
from distill.trainer import agreement

HEADS = DISTILL_HEADS


def test_distillation_raises_student_teacher_agreement(distill_setup, distilled):
    root, manifest, cache = distill_setup
    out = distilled
    records = read_manifest(manifest)
    targets = read_targets(out / "teacher-targets")
    student, meta = load_student(out / "student.safetensors")
    torch.manual_seed(0)
    initial = create_student("mn-xs", heads=HEADS)  # the run's own initialisation (seed 0)
    before, after, c_before, c_after = [agreement(s, targets, records, meta["frontend"], centred=c)
                                        for c in (False, True) for s in (initial, student)]
    print(f"student-teacher cosine agreement: {before:.3f} at initialisation, {after:.3f} after 60 steps; "
          f"centred on the teacher's mean: {c_before:.3f} -> {c_after:.3f}")
    assert before < 0.2 and after > 0.6
    assert c_before < 0.05 and c_after > 0.15  # the student follows how windows differ, not only the common direction
    log = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(log) == 60 and {"embedding", "relational", "text", "heads", "modality", "events"} <= set(log[-1])
    # the synthetic corpus alone trains the modality head on its four modalities, and its lung clips' events
    assert student.config.modalities == ("breath", "cough", "heart", "lung")
    assert student.config.events == ("wheeze", "crackle")
    assert np.mean([x["modality"] for x in log[-10:]]) < np.mean([x["modality"] for x in log[:10]])
    assert log[-1]["embedding"] < 0.6 * log[0]["embedding"]
    assert meta["kind"] == "student" and [h["name"] for h in meta["heads"]] == list(HEADS)
    teacher_meta = json.loads((root / "teacher" / "encoder.json").read_text())
    # the student hears 4 kHz audio through its own front end while its targets came from the teacher's 16 kHz one
    assert meta["frontend"] == get_frontend(DEFAULT_STUDENT_FRONTEND).to_dict() != teacher_meta["frontend"]
    assert set(teacher_meta["trained_subjects_sha256"]) <= set(meta["trained_subjects_sha256"])
    assert meta["parameters"] == student.num_parameters() < 100_000
    emb, logits = student(torch.randn(2, 64, 128))
    assert emb.shape == (2, 512) and logits.shape == (2, 2)
    # evaluate takes a student checkpoint (windows averaged over each recording); it saw every subject
    ev = run_module("acula_edge.evaluate", "--encoder", str(out / "student.safetensors"), "--task", HEADS[0],
                    "--data", f"synthetic={manifest.parent}", "--allow-overlap", "--seeds", "1", "--bootstrap", "20",
                    "--out", str(root / "ev"))
    assert ev.returncode == 0 and "AUROC" in ev.stdout, ev.stderr[-1500:]


def test_int8_distilled_student_stays_close_to_fp32(distill_setup, distilled, tmp_path):
    pytest.importorskip("onnxruntime")
    from acula_edge.metrics import mean_cosine
    from export.onnx import export_student, logmel_windows, quantize_int8
    from acula_edge.device.runtime import session

    root, manifest, _ = distill_setup
    student, meta = load_student(distilled / "student.safetensors")
    records = read_manifest(manifest)
    windows = np.concatenate(logmel_windows(records, meta["frontend"], student.config.window_frames))
    cal, held = windows[::2], windows[1::2]
    fp32 = export_student(student, tmp_path / "fp32.onnx")
    int8 = quantize_int8(fp32, tmp_path / "int8.onnx", cal)
    a, b = (session(p).run(None, {"logmel": held}) for p in (fp32, int8))
    with torch.no_grad():
        ref = student(torch.from_numpy(held))
    np.testing.assert_allclose(a[0], ref[0].numpy(), atol=1e-4)
    spread = float(1 - (a[0] @ a[0].T).mean())
    kept = mean_cosine(a[0], b[0])
    print(f"int8 vs fp32 on {len(held)} windows: centred embedding cosine {kept:.3f} (fp32 spread {spread:.3f}); "
          f"head logits max |diff| {np.abs(a[1] - b[1]).max():.3f} (fp32 std {a[1].std():.3f})")
    assert spread > 1e-3  # the distilled student's embeddings differ between windows
    assert kept > 0.8


def test_every_exported_file_of_a_distilled_student_passes_verify(distill_setup, distilled, distilled_bundles,
                                                                    tmp_path):
    """ONNX and TFLite, fp32 and int8 (onnxruntime, Neural Compressor, ai-edge-quantizer, the
    full-integer pair) of a trained student: fp32 files match torch; int8 files keep how windows
    differ (centred embedding cosine to torch)."""
    import onnx

    from acula_edge.data.records import write_manifest

    root, manifest, _ = distill_setup
    ckpt = str(distilled / "student.safetensors")
    check = tmp_path / "check.jsonl"
    write_manifest(read_manifest(manifest)[::3], check)  # 16 clips keep the check short
    files = {}
    for quantizer in ("ort", "inc"):
        r = run_module("export", "verify", str(distilled_bundles / quantizer), "--data", str(check), "--json")
        report = json.loads(r.stdout)
        assert report["training_subjects_only"]  # every subject here trained the student, and the report says so
        files.update({(quantizer, k): v for k, v in report["files"].items()})
    for (quantizer, name), f in sorted(files.items()):
        print(f"{quantizer} {name}: max |diff| {max(f['max_abs_diff'].values()):.2e}, centred cosine "
              f"{f['embedding_centred_cosine']:.3f}, head AUROC {f['auroc']}")
        assert set(f["max_abs_diff"]) == {"embedding", "scores", "modality", "events"}
        if f["precision"] == "fp32":
            assert max(f["max_abs_diff"].values()) <= 1e-4
        else:
            # a 60-step student's windows differ little from each other: 0.77-0.99 measured across the int8 files
            assert f["embedding_centred_cosine"] > 0.7 and max(f["max_abs_diff"].values()) > 1e-4, name
    assert len(files) == 7
    for (quantizer, name), f in files.items():  # int8 routes as fp32 does and its event probabilities stay close
        if f["precision"] == "int8":
            d = f["outputs_against_fp32"]
            assert d["modality"]["routing_differs"] <= 0.05 and d["events"]["mean_abs_drift"] <= 0.05, (name, d)
    for quantizer, formats in (("ort", {"onnx", "tflite"}), ("inc", {"onnx"})):
        meta = json.loads((distilled_bundles / quantizer / "bundle.json").read_text())
        assert set(meta["default_precision"]) == formats  # listen's default: the faster file, as export timed them
        for fmt, chosen in meta["default_precision"].items():
            ms = meta["provenance"]["precision_timing"][fmt]["ms_per_window"]
            assert ms["fp32"] > 0 and chosen == ("int8" if ms["int8"] < 0.95 * ms["fp32"] else "fp32")
    r = run_module("export", "--checkpoint", ckpt, "--out", str(tmp_path / "b"), "--evaluate", str(manifest))
    assert r.returncode == 2 and "every subject was used to train this student" in r.stderr  # no scores on seen subjects
    inc = distilled_bundles / "inc"
    int8_weights = [i for i in onnx.load(str(inc / "model_int8.onnx")).graph.initializer
                    if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 4]
    assert len(int8_weights) > 20  # the convolutions' weights are stored as int8
    assert (inc / "model_int8.onnx").stat().st_size < (inc / "model_fp32.onnx").stat().st_size


def test_windowed_student_averages_its_windows():
    from acula_edge.models.students import WindowedStudent

    torch.manual_seed(0)
    s = create_student("mn-xs").eval()
    x = torch.randn(1, 64, 256) * 10 - 40
    with torch.no_grad():
        whole = WindowedStudent(s).features(x)
        parts = torch.stack([s(x[:, :, :128])[0][0], s(x[:, :, 128:])[0][0]]).mean(0)
    assert torch.allclose(whole[0], parts, atol=1e-6)


def test_distill_bad_input_is_one_clear_line(distill_setup, tmp_path):
    root, manifest, cache = distill_setup
    base = ["--manifest", str(manifest), "--out", str(tmp_path / "o"), "--max-steps", "1", "--quiet"]
    cases = [
        (["--student", "mn-xs", *base], "--teacher"),
        (["--teacher", str(root / "msm" / "encoder.safetensors"), *base], "not an aligned checkpoint"),
        (["--teacher", str(root / "teacher" / "encoder.safetensors"), "--student", "tiny", *base], "unknown student"),
        (["--teacher", str(root / "teacher" / "encoder.safetensors"), "--head", "nope", "--w-text", "0", *base],
         "unknown task"),
        (["--teacher", str(root / "teacher" / "encoder.safetensors"), "--backgrounds", str(tmp_path / "nope"), *base],
         "background folder not found"),
        (["--teacher", str(root / "teacher" / "encoder.safetensors"), "--background-prob", "0.3", *base],
         "needs --backgrounds"),
        (["--teacher", str(root / "teacher" / "encoder.safetensors"), "--augment", "eq_prob=2", *base],
         "bad augmentation settings"),
        (["--teacher", str(root / "teacher" / "encoder.safetensors"), "--augment", "loudness=2", *base],
         "--augment loudness=2: give FIELD=VALUE"),
        (["--teacher", str(root / "teacher" / "encoder.safetensors"), "--augment", "eq_prob=0.5", "--no-augment",
          *base], "--no-augment contradicts"),
    ]
    for args, expect in cases:
        r = call_main("distill.cli", *args)
        assert r.returncode == 2 and expect in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)


def test_distill_resumes_after_a_kill_to_the_same_student(distill_setup, tmp_path):
    root, manifest, cache = distill_setup
    args = ["distill", "--teacher", str(root / "teacher" / "encoder.safetensors"), "--student", "mn-xs",
            "--head", HEADS[0], "--manifest", str(manifest), "--max-steps", "12", "--batch-size", "8",
            "--save-every", "1", "--text-cache", cache, "--threads", "1", "--quiet"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    r = run_module(*args, "--out", str(full))
    assert r.returncode == 0, r.stderr
    kill_after_steps([*args, "--out", str(cut)], cut, 4)
    assert not (cut / "student.safetensors").exists()
    r = run_module(*args, "--out", str(cut), "--resume")
    assert r.returncode == 0, r.stderr
    a, b = (load_student(d / "student.safetensors")[0].state_dict() for d in (full, cut))
    assert all(torch.equal(a[k], b[k]) for k in a), "the resumed student differs from the uninterrupted one"
    from acula_edge.stages import locked

    with locked(cut / ".training", "training"):  # a live run holds the folder: teacher targets included
        r = call_main("distill.cli", *args[1:], "--out", str(cut), "--resume")
    assert r.returncode == 2 and r.stderr == f"error: another training is running in {cut}\n"


def test_a_distillations_config_file_starts_the_same_run(distill_setup, tmp_path):
    """``--config OUT/config.json`` gives the same resolved settings and student; flags given with it
    override it; an alignment run's config is refused in one line."""
    root, manifest, cache = distill_setup
    first, again = tmp_path / "first", tmp_path / "again"
    r = run_module("distill", "--teacher", str(root / "teacher" / "encoder.safetensors"), "--student", "mn-xs",
                   "--act", "relu", "--head", HEADS[0], "--w-relational", "0.25", "--embedding-kind", "cosine",
                   "--manifest", str(manifest), "--max-steps", "2", "--batch-size", "8", "--text-cache", cache,
                   "--threads", "1", "--quiet", "--out", str(first))
    assert r.returncode == 0, r.stderr
    config = first / "config.json"
    r = run_module("distill", "--config", str(config), "--manifest", str(manifest), "--threads", "1", "--quiet",
                   "--out", str(again))
    assert r.returncode == 0, r.stderr
    written = json.loads(config.read_text())
    assert written["stage"] == "distill" and written["training"]["weights"]["relational"] == 0.25
    assert written["training"]["heads"] == [HEADS[0]] and written["training"]["act"] == "relu"
    assert json.loads((again / "config.json").read_text()) == written
    a, b = (load_student(d / "student.safetensors")[0].state_dict() for d in (first, again))
    assert all(torch.equal(a[k], b[k]) for k in a)
    base = ["--manifest", str(manifest), "--out", str(tmp_path / "x")]
    r = call_main("distill.cli", "--config", str(config), "--w-text", "-1", *base)  # an override, checked as one
    assert r.returncode == 2 and "loss weights must be >= 0" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    r = call_main("distill.cli", "--config", str(root / "teacher" / "config.json"), *base)
    assert r.returncode == 2 and "a `align train` run's config, not a `distill` one" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and not (tmp_path / "x").exists()


def test_heads_get_thresholds_on_calibration_subjects_and_prompts_need_no_teacher(distill_setup, tmp_path):
    from acula_edge.data.records import Recording, write_manifest
    from acula_edge.data.splits import split_subjects
    from acula_edge.encoders import TorchEncoder
    from acula_edge.metrics import rates_at
    from acula_edge.zeroshot import embed_prompts
    from acula_edge.models.students import WindowedStudent
    from distill.trainer import head_labels

    root, manifest, cache = distill_setup
    records = read_manifest(manifest)
    heads = HEADS[:1]

    def both_classes(assign: dict) -> bool:
        return all(len(np.unique(y[~np.isnan(y)])) == 2 for part in ("train", "val")
                   for y in head_labels([r for r in records if assign[r.subject] == part], heads, need_both=False).T)

    # the first seed whose subject split leaves both classes on both sides (48 clips are few)
    assign = next(a for a in (split_subjects(records, None, {"train": 0.6, "val": 0.4}, seed=k) for k in range(50))
                  if both_classes(a))
    split = tmp_path / "split.jsonl"
    write_manifest([Recording(**{**r.to_dict(), "split": assign[r.subject]}) for r in records], split)
    teacher = root / "teacher" / "encoder.safetensors"
    args = ["--teacher", str(teacher), "--student", "mn-xs", "--manifest", str(split), "--split", "train",
            "--max-steps", "6", "--batch-size", "8", "--text-cache", cache, "--threads", "2", "--quiet",
            "--head", heads[0]]
    from conftest import write_tone

    (tmp_path / "bg").mkdir()
    write_tone(tmp_path / "bg" / "hum.wav", seconds=2.0, freq=120.0)
    r = run_module("distill", *args, "--calibrate-split", "val", "--sensitivity", "0.8", "--out", str(tmp_path / "s"),
                   "--backgrounds", str(tmp_path / "bg"), "--events", "wheeze", "crackle")
    assert r.returncode == 0, r.stderr
    # the findings' hysteresis is chosen on the annotated calibration (val) clips, and export carries it
    from distill.trainer import EVENT_ON_GRID

    op = read_sidecar(tmp_path / "s" / "student.safetensors")["event_operating_point"]
    assert set(op["on"]) == {"wheeze", "crackle"}
    assert all(op["on"][k] in EVENT_ON_GRID and op["off"][k] == pytest.approx(max(0.05, op["on"][k] - 0.2))
               for k in op["on"])
    assert op["calibration"]["recordings"] == sum(1 for x in read_manifest(split)
                                                 if x.split == "val" and x.modality == "lung" and x.events)
    assert "event findings: hysteresis wheeze on" in r.stderr
    from export.cli import graph_outputs

    meta = read_sidecar(tmp_path / "s" / "student.safetensors")
    spec = graph_outputs(meta["student"], meta["frontend"], 1, meta["event_operating_point"])["events"]
    assert (spec["on"], spec["off"]) == (op["on"], op["off"]) and spec["hysteresis_chosen_on"] == op["calibration"]
    augment = json.loads((tmp_path / "s" / "config.json").read_text())["training"]["augment"]
    assert augment["backgrounds"] == str((tmp_path / "bg").resolve()) and augment["background_prob"] == 0.5
    student, meta = load_student(tmp_path / "s" / "student.safetensors")
    val = [x for x in read_manifest(split) if x.split == "val"]
    enc = TorchEncoder("s", WindowedStudent(student), meta["frontend"])
    p = enc.run(val, enc.model.stream_scores)
    y = head_labels(val, heads, need_both=False)
    checked = 0
    for j, head in enumerate(meta["heads"]):
        known = ~np.isnan(y[:, j])
        if len(np.unique(y[known, j])) < 2:
            assert head["threshold"] is None and "fewer than two" in head["calibration"]
            continue
        cal = head["calibration"]
        assert cal["target_sensitivity"] == 0.8 and cal["sensitivity"] >= 0.8
        assert rates_at(y[known, j], p[known, j], head["threshold"]) == pytest.approx(
            (cal["sensitivity"], cal["specificity"]), abs=1e-4)
        checked += 1
        assert f"head {head['name']}: threshold for sensitivity >= 0.8" in r.stderr
    assert checked >= 1
    # the student carries the teacher's text projection: prompts embed identically without the teacher
    prompts = ["Normal lung sounds.", "Wheezes are heard."]
    assert np.array_equal(embed_prompts(str(tmp_path / "s" / "student.safetensors"), prompts),
                          embed_prompts(str(teacher), prompts))
    assert meta["teacher"]["alignment_loss"] == "cka"
    z = run_module("acula_edge.zeroshot", "--checkpoint", str(tmp_path / "s" / "student.safetensors"),
                   "--prompt", prompts[0], "--prompt", prompts[1], val[0].path)
    assert z.returncode == 0 and z.stdout.startswith(val[0].path) and "note:" in z.stderr and "InfoNCE" in z.stderr
    # calibrating on training subjects is refused
    r = call_main("distill.cli", *args, "--calibrate-split", "train", "--out", str(tmp_path / "t"))
    assert r.returncode == 2 and "both in the training and the calibration" in r.stderr


def test_event_labels_mark_the_windows_an_annotated_event_overlaps():
    """--event-labels: a window of an annotated recording is positive when a positive event covers
    0.25 s of it (or half of a shorter event); recordings without events keep their own label."""
    from acula_edge.data.records import Recording
    from distill.trainer import head_labels, window_labels

    events = [{"start": 1.0, "end": 1.5, "type": "Normal"}, {"start": 5.0, "end": 5.5, "type": "Fine Crackle"},
              {"start": 9.75, "end": 10.25, "type": "Wheeze"}]
    recs = [Recording(id="sprsound/a", path="a.wav", dataset="sprsound", subject="sprsound/1", modality="lung",
                      labels={"adventitious": 1}, events=events),
            Recording(id="sprsound/b", path="b.wav", dataset="sprsound", subject="sprsound/2", modality="lung",
                      labels={"adventitious": 1}),
            Recording(id="physionet2016/c", path="c.wav", dataset="physionet2016", subject="physionet2016/c",
                      modality="heart", labels={"abnormal": "abnormal"})]
    heads = ("sprsound-adventitious", "physionet2016-abnormal")
    rate, window_s = 1000, 4.0
    windows = [("sprsound/a", 0), ("sprsound/a", 2000), ("sprsound/a", 5375), ("sprsound/a", 6000),
               ("sprsound/b", 0), ("physionet2016/c", 0)]
    got = window_labels(recs, heads, windows, rate, window_s, head_labels(recs, heads, need_both=False))
    # [0, 4]: only a normal event; [2, 6]: the crackle; [5.375, 9.375]: 0.125 s of a 0.5 s crackle (less than
    # 0.25 s and than half of it); [6, 10]: 0.25 s of a 0.5 s wheeze
    assert got[:, 0].tolist()[:4] == [0.0, 1.0, 0.0, 1.0]
    assert got[4, 0] == 1.0 and np.isnan(got[5, 0]) and np.isnan(got[:5, 1]).all() and got[5, 1] == 1.0
