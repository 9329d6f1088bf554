"""``python -m benchmarks run --quick`` on a distilled student's bundles: every variant gets numbers,
the JSON keeps its schema, test subjects are never trained on; the statistics and plots it uses;
the GPU throughput script (on the CPU here: no GPU on the test machines)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from acula_edge.checkpoint import read_sidecar, subject_hash
from acula_edge.data.records import read_manifest, write_manifest
from acula_edge.data.synth import SynthConfig, generate
from conftest import DISTILL_HEADS, call_main, run_module

VARIANTS = ["teacher", "student-torch", "onnx-fp32", "onnx-int8-onnxruntime", "onnx-int8-neural-compressor",
            "tflite-fp32", "tflite-int8", "tflite-full-int8"]


@pytest.fixture(scope="module")
def quick_run(distill_setup, distilled, distilled_bundles, tmp_path_factory):
    root, manifest, _ = distill_setup
    tmp = tmp_path_factory.mktemp("bench")
    held = generate(tmp / "held", 64, seed=5, cfg=SynthConfig(id_prefix="held"))  # subjects nothing trained on
    data = tmp / "data.jsonl"
    write_manifest(read_manifest(manifest) + held, data)
    out = tmp / "out"
    r = run_module("benchmarks", "run", "--bundle", str(distilled_bundles / "ort"), "--bundle",
                   str(distilled_bundles / "inc"), "--teacher", str(root / "teacher" / "encoder.safetensors"),
                   *[x for t in DISTILL_HEADS for x in ("--task", t)], "--manifest", str(data), "--quick",
                   "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), out, data, distilled


def _finite(x) -> bool:
    return x is not None and np.isfinite(x) and x > 0


def test_quick_run_measures_every_variant(quick_run):
    doc, out, _, _ = quick_run
    print(f"quick run: {doc['seconds']} s")
    assert {"schema", "command", "machine", "versions", "tasks", "variants", "int8", "scaling", "references",
            "settings"} <= set(doc)
    assert doc["quick"] and doc["command"].startswith("python -m benchmarks run ")
    assert doc["machine"]["cpu_model"] and doc["machine"]["logical_cores"] >= 1
    assert "not installed" not in doc["versions"].values()
    assert [v["name"] for v in doc["variants"]] == VARIANTS
    for v in doc["variants"]:
        c = v["cost"]
        assert all(_finite(c[k]) for k in ("parameters", "macs_per_s", "frontend_macs_per_s", "bytes")), v["name"]
        for key in ("threads_1", "threads_all"):
            lat = v["latency"][key]
            assert _finite(lat["p50_ms"]) and lat["p95_ms"] >= lat["p50_ms"], (v["name"], key)
        assert all(_finite(x) for x in v["throughput"].values()) and _finite(v["real_time_factor"])
        m = v["memory"]
        assert m["peak_rss_mib"] >= m["loaded_rss_mib"] >= m["runtime_rss_mib"] > 10
        for task in DISTILL_HEADS:
            for mode in ("offline", "streaming"):
                a = v["accuracy"][task][mode]
                assert 0 <= a["ci95"][0] <= a["auroc"] <= a["ci95"][1] <= 1, (v["name"], task, mode)
    byname = {v["name"]: v for v in doc["variants"]}
    # one student: every student variant counts the same network; the int8 files are smaller than fp32
    assert len({byname[n]["cost"]["parameters"] for n in VARIANTS[1:]}) == 1
    assert byname["onnx-int8-onnxruntime"]["cost"]["bytes"] < byname["onnx-fp32"]["cost"]["bytes"]
    # the fp32 files compute what torch computes: the same AUROC, offline and streaming
    for task in DISTILL_HEADS:
        for mode in ("offline", "streaming"):
            ref = byname["student-torch"]["accuracy"][task][mode]["auroc"]
            assert all(abs(byname[n]["accuracy"][task][mode]["auroc"] - ref) < 0.02 for n in ("onnx-fp32", "tflite-fp32"))
    assert [r["variant"] for r in doc["int8"]] == VARIANTS[3:5] + VARIANTS[6:]
    for r in doc["int8"]:
        assert r["int8_by"] and _finite(r["speedup_1_thread"]) and _finite(r["size_ratio"])
        for task in DISTILL_HEADS:
            d = r["tasks"][task]["offline"]
            assert d["ci95"][0] <= d["delta_auroc"] <= d["ci95"][1]
    grid = doc["scaling"]
    assert set(grid["window"]) == {"teacher", "student-torch", "onnx-fp32", "onnx-int8-onnxruntime"}
    for name, points in grid["window"].items():
        assert [round(p["window_s"]) for p in points] == [2] and all(_finite(p["p50_ms"]) for p in points), name
        assert [p["batch"] for p in grid["batch"][name]] == [1, 8]
    assert [r["model"] for r in doc["references"]] == ["OPERA-GT", "YAMNet", "EfficientAT mn04"]
    # the vit-small encoder timed in the same run: every variant's speed-up per second of audio against it
    ref = doc["reference"]
    assert ref["encoder"] == "vit-small" and ref["ms_per_s"] == pytest.approx(ref["p50_ms"] / ref["window_s"], rel=1e-3)
    for v in doc["variants"]:
        assert v["ms_per_s"] == pytest.approx(v["latency"]["threads_1"]["p50_ms"] / doc["window_s"], rel=1e-2)
        assert v["speedup_vs_reference"] == pytest.approx(ref["ms_per_s"] / v["ms_per_s"], rel=2e-2)
    assert byname["onnx-fp32"]["speedup_vs_reference"] > 50  # the student runs far faster than the published encoder
    md = (out / "results.md").read_text()
    assert "| reference: vit-small encoder (torch fp32, random (timing only)" in md
    assert "not measured here" in md and "| ONNX int8 (Neural Compressor) |" in md and "Quick run" in md
    for png in ("pareto.png", "scaling.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / png).stat().st_size > 10_000


def test_test_subjects_are_never_trained_on(quick_run):
    doc, _, data, distilled = quick_run
    root = distilled.parent
    seen = {h for ckpt in (distilled / "student.safetensors", root / "teacher" / "encoder.safetensors")
            for h in read_sidecar(ckpt)["trained_subjects_sha256"]}
    records = read_manifest(data)
    assert all(r.subject.startswith("held") for r in records if subject_hash(r.subject) not in seen)
    for task, t in doc["tasks"].items():
        assert t["test"]["subjects"] > 0 and t["test"]["positives"] > 0 and t["test"]["negatives"] > 0
        # the teacher's heads were fitted on the student's training subjects only: the 48-clip corpus
        assert 0 < t["teacher_head"]["recordings"] <= 48


def test_bad_input_is_one_line(distilled_bundles, tmp_path):
    ort = str(distilled_bundles / "ort")
    for args, msg in ((["--bundle", ort, "--task", "physionet2016-abnormal"], "the bundle has no head"),
                      (["--bundle", ort, "--task", "no-such-task"], "unknown task"),
                      (["--bundle", str(tmp_path / "none"), "--task", DISTILL_HEADS[0]], str(tmp_path / "none")),
                      (["--bundle", ort, "--task", DISTILL_HEADS[0], "--manifest", str(tmp_path / "m.jsonl")],
                       "manifest not found"),
                      (["--bundle", ort, "--task", DISTILL_HEADS[0], "--teacher", str(tmp_path / "t.safetensors")],
                       "teacher checkpoint not found")):
        r = run_module("benchmarks", "run", *args, "--out", str(tmp_path / "o"))
        assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert msg in r.stderr
    r = run_module("benchmarks")
    assert r.returncode == 2 and "python -m benchmarks run" in r.stderr


def test_a_label_column_of_ones_own_csv_scores_a_head(distilled, distilled_bundles, tmp_path):
    """``--task csv:MANIFEST:COLUMN=HEAD`` with ``--manifest MANIFEST``: every labelled recording of the
    user's CSV (dataset ``csv``, no registered task) scores the head, its no/yes column read as 0/1."""
    import dataclasses
    import json as json_

    from acula_edge.device.bundle import load_bundle
    from benchmarks.harness import QUICK, score_bundles

    held = [r for r in generate(tmp_path / "held", 24, seed=5, cfg=SynthConfig(id_prefix="held"))
            if r.labels.get("adventitious") in (0, 1)]
    mine = tmp_path / "mine.csv"
    mine.write_text("path,subject,finding\n" + "".join(f"{r.path},{r.subject},{('no', 'yes')[r.labels['adventitious']]}\n"
                                                         for r in held))
    head = DISTILL_HEADS[0]
    sc = score_bundles([load_bundle(distilled_bundles / "ort")], str(distilled / "student.safetensors"), None,
                       [f"csv:{mine}:finding={head}"], tmp_path, dataclasses.replace(QUICK, max_test_recordings=None),
                       1, stream=False, manifests=[str(mine)])
    assert list(sc.data) == [head] and sc.data[head]["task"].name == f"csv:{mine}:finding"
    assert len(sc.records) == len(held) and {r.dataset for r in sc.records} == {"csv"}
    assert sorted(r.labels["_task"] for r in sc.data[head]["test"]) == sorted(r.labels["adventitious"] for r in held)
    for v in ("student-torch", "onnx-fp32", "tflite-int8"):
        cell = sc.accuracy[v][head]["offline"]
        assert cell["recordings"] == len(held) and cell["ci95"][0] <= cell["auroc"] <= cell["ci95"][1]
    # the same bundle away from its source checkpoint: benchmarks run says what still measures it
    away = tmp_path / "away"
    import shutil

    shutil.copytree(distilled_bundles / "ort", away)
    meta = json_.loads((away / "bundle.json").read_text())
    meta["provenance"]["checkpoint"] = str(tmp_path / "elsewhere.safetensors")
    (away / "bundle.json").write_text(json_.dumps(meta))
    r = run_module("benchmarks", "run", "--bundle", str(away), "--task", head, "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "give --checkpoint; without it, `python -m export " \
        f"verify {away} --data MANIFEST --task TASK=HEAD` scores every file" in r.stderr, r.stderr


def test_paired_interval_and_pareto_front():
    from acula_edge.metrics import auroc, paired_delta_ci
    from benchmarks.report import pareto_front

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    groups = np.arange(120) // 2
    a = y + rng.normal(0, 1.0, 120)
    lo, hi = paired_delta_ci(y, a, a, groups, n=200)
    assert lo == hi == 0.0  # the same scores: no difference in any resample
    better = y + rng.normal(0, 0.2, 120)
    lo, hi = paired_delta_ci(y, a, better, groups, n=200)
    assert 0 < lo <= auroc(y, better) - auroc(y, a) <= hi
    assert pareto_front([(1, 0.7), (2, 0.9), (3, 0.8), (0.5, 0.6), (4, 0.95)]) == [3, 0, 1, 4]


@pytest.mark.slow
def test_gpu_throughput_script_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    r = run_module("benchmarks.gpu_throughput", "--device", "cpu", "--teacher", "vit-tiny", "--students", "mn-xs",
                   "--batch", "2", "--seconds", "0.2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["rows"]
    assert [r["role"] for r in rows] == ["teacher", "student"]
    assert all(r[p]["windows_per_s"] > 0 for r in rows for p in ("bf16", "fp32"))


def test_demo_example_places_the_example_among_labelled_recordings(tmp_path):
    """benchmarks.demo_example on a synthetic lung manifest (the real test children are in the run's
    manifest, which a fresh clone lacks): scores per class, the example's halves and band levels."""
    from benchmarks.demo_example import band_levels

    records = generate(tmp_path / "lung", 16, seed=4, cfg=SynthConfig(duration=5.0, modality_weights={"lung": 1.0}))
    manifest = tmp_path / "lung.jsonl"
    write_manifest(records, manifest)
    out = tmp_path / "example"
    r = run_module("benchmarks.demo_example", "--manifest", str(manifest), "--task",
                   "synthetic-adventitious=sprsound-adventitious", "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.with_suffix(".json").read_text())
    labelled = sum(int(x.labels.get("adventitious") is not None) for x in records)
    assert doc["real"]["negative"]["recordings"] + doc["real"]["positive"]["recordings"] == labelled
    assert list(doc["example"]) == ["normal breath sounds", "coarse crackles"]
    for e in doc["example"].values():
        assert len(e["window_scores"]) == 3 and all(0 <= s <= 1 for s in e["window_scores"])
        assert len(e["bands_db"]) == len(doc["bands_hz"]) - 1 == 7  # 4 kHz: bands up to 2 kHz
    assert 0 <= doc["negatives_below_the_normal_half"] <= 1 and "| example: coarse crackles" in r.stdout
    # band levels: a 1 kHz tone puts its power in the 800-1200 Hz band, far above the others
    t = np.arange(4000) / 4000
    levels = band_levels(np.sin(2 * np.pi * 1000 * t), 4000)
    assert int(np.argmax(levels)) == 4 and levels[4] - max(levels[:4] + levels[5:]) > 30
    bad = run_module("benchmarks.demo_example", "--manifest", str(manifest), "--out", str(out))
    assert bad.returncode == 2 and "do not label both classes" in bad.stderr and bad.stderr.count("\n") == 1


@pytest.mark.slow
def test_memory_benchmark_measures_every_cli_at_each_length(tmp_path):
    from benchmarks.memory import TARGET_MB

    p = call_main("benchmarks.memory", "--hours", "0.02", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "m"))
    assert p.returncode == 0, p.stderr
    doc = json.loads((tmp_path / "m.json").read_text())
    assert [r["cli"] for r in doc["results"]] == ["listen --file", "data inspect", "export verify",
                                                  "evaluate logmel-stats", "evaluate random-init"]
    for r in doc["results"]:
        peaks = r["peak_rss_mb"]
        assert set(peaks) == {"short recordings only", "0.0025 h", "0.02 h", "0.02 h, fixed mmap threshold"}
        assert all(20 < v < 4 * TARGET_MB for v in peaks.values()), r
    assert doc["synthetic"] and "| evaluate random-init |" in (tmp_path / "m.md").read_text()


def test_events_benchmark_scores_routing_spans_and_every_file_on_unseen_subjects(distilled, distilled_bundles,
                                                                                 student_ckpt, exported, tmp_path):
    """``python -m benchmarks events`` on the distilled test bundle and synthetic subjects it never saw:
    the synthetic corpus annotates wheezes and crackles but no Normal segments, so the segment AUROCs
    are absent; the numbers of a 60-step student mean nothing (the shared data's test scores real ones)."""
    from acula_edge.data.records import Recording
    from acula_edge.data.splits import split_subjects

    held = generate(tmp_path / "held", 40, seed=7, cfg=SynthConfig(id_prefix="ev"))
    assign = split_subjects(held, None, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)
    manifest = tmp_path / "split.jsonl"
    write_manifest([Recording(**{**r.to_dict(), "split": assign[r.subject]}) for r in held], manifest)
    out = tmp_path / "events"
    r = run_module("benchmarks", "events", "--bundle", str(distilled_bundles / "ort"), "--manifest", str(manifest),
                   "--bootstrap", "20", "--out", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads((tmp_path / "events.json").read_text())
    files = ["model_fp32.onnx", "model_int8.onnx", "model_fp32.tflite", "model_int8.tflite",
             "frontend_fp32.tflite+network_int8.tflite"]
    assert list(doc["files"]) == files and set(doc["latency_ms"]) == set(files)
    assert all(v > 0 for v in doc["latency_ms"].values()) and "checked against" in doc["subjects_checked"]
    test = [x for x in held if assign[x.subject] == "test"]
    for name, f in doc["files"].items():
        routing = f["routing"]
        assert sum(v["recordings"] for v in routing.values()) == len(test)
        assert all(0 <= v["accuracy"] <= 1 and v["ci95"][0] <= v["accuracy"] <= v["ci95"][1] for v in routing.values())
        assert set(f["localisation"]) == {"wheeze", "crackle"}
        # these few synthetic test clips may hold no wheeze or crackle (F1 then NaN, or 0 with false findings)
        assert all(loc["annotated_spans"] >= 0 and (loc["f1"] != loc["f1"] or 0 <= loc["f1"] <= 1)
                   for loc in f["localisation"].values())
        assert all(v["auroc"] is None for v in f["events"].values())  # no segment annotated Normal
        if "int8" in name:
            assert 0 <= f["against_fp32"]["routing_agrees"] <= 1 and f["against_fp32"]["events_mean_abs_diff"] < 0.1
    assert "**Routing**" in (tmp_path / "events.md").read_text() and doc["command"].startswith("python -m benchmarks events")
    # a bundle without the outputs, and subjects the student trained on, are one line each
    r = call_main("benchmarks.events", "--bundle", str(student_ckpt[0] / "bundle"), "--manifest", str(manifest))
    assert r.returncode == 2 and "no modality and event outputs" in r.stderr and "Traceback" not in r.stderr
    seen = tmp_path / "seen.jsonl"
    trained = read_manifest(distilled.parent / "corpus" / "manifest.jsonl")
    write_manifest([Recording(**{**x.to_dict(), "split": ("test", "train", "val")[i % 3]})
                    for i, x in enumerate(trained)], seen)
    r = call_main("benchmarks.events", "--bundle", str(distilled_bundles / "ort"), "--manifest", str(seen))
    assert r.returncode == 2 and "test subjects trained the student" in r.stderr


@pytest.mark.slow
def test_events_benchmark_reproduces_the_default_bundles_routing_from_the_shared_data(tmp_path):
    """What the README runs from a fresh clone: the demo run's subject split (its manifests stage, in
    seconds) and ``benchmarks events`` on the default bundle. The split is the one the bundle was
    trained on, so the test recordings and the routing figures are those in
    benchmarks/results/events.json (the source checkpoint is not here: the subject check says so)."""
    from conftest import ROOT, shared

    data = [f"sprsound={shared('sprsound')}", f"physionet2016={shared('physionet2016')}"]
    r = run_module("acula_edge.pipeline", "--preset", "demo", "--out", str(tmp_path / "demo"),
                   *[x for d in data for x in ("--data", d)], "--until", "manifests")
    assert r.returncode == 0, r.stderr[-2000:]
    out = tmp_path / "events"
    r = run_module("benchmarks", "events", "--manifest", str(tmp_path / "demo" / "data" / "manifest.jsonl"),
                   "--bootstrap", "50", "--out", str(out))
    assert r.returncode == 0, r.stderr[-2000:]
    got = json.loads((tmp_path / "events.json").read_text())
    saved = json.loads((ROOT / "benchmarks" / "results" / "events.json").read_text())
    assert got["test_recordings"] == saved["test_recordings"]
    assert "not checked" in got["subjects_checked"] or "none of them among" in got["subjects_checked"]
    for name, f in got["files"].items():
        for ds, routing in f["routing"].items():
            assert routing["accuracy"] >= 0.98 and routing["recording_accuracy"] >= 0.98, (name, ds)
            assert routing["windows"] == saved["files"][name]["routing"][ds]["windows"]
    ref = got["files"]["model_fp32.onnx"]["events"]["adventitious"]
    assert ref["auroc"] == pytest.approx(saved["files"]["model_fp32.onnx"]["events"]["adventitious"]["auroc"], abs=0.01)
