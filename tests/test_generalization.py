"""``python -m benchmarks generalization`` on a small copy of the shared recordings (links to a few
records of each PhysioNet site and a few SPRSound children, in their publishers' layouts), with the
tiny preset: a heart site and children no stage trained on, every model's AUROC on both, and the
targets; then bad input as one line."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import call_main, run_module, shared
from acula_edge.errors import AculaError

FOLD = "site-a"


def small_copy(root: Path) -> dict[str, Path]:
    """Links to 12 records of each PhysioNet site (6 abnormal) and the recordings of 16 SPRSound children
    (8 with an adventitious recording), in the publishers' layouts."""
    phys, spr = shared("physionet2016"), shared("sprsound")
    for site in ("training-a", "training-b"):
        rows = [line.split(",") for line in (phys / site / "REFERENCE.csv").read_text().split()]
        keep = [r for r in rows if r[1] == "1"][:6] + [r for r in rows if r[1] == "-1"][:6]
        (root / "physionet2016" / site).mkdir(parents=True)
        (root / "physionet2016" / site / "REFERENCE.csv").write_text("".join(f"{a},{b}\n" for a, b in keep))
        for name, _ in keep:
            (root / "physionet2016" / site / f"{name}.wav").symlink_to(phys / site / f"{name}.wav")
    children: dict[str, list[Path]] = defaultdict(list)
    abnormal = set()
    for ann in sorted((spr / "train_json").glob("*.json")):
        child = ann.name.split("_")[0]
        children[child].append(ann)
        record = json.loads(ann.read_text())["record_annotation"]
        if record not in ("Normal", "Poor Quality"):
            abnormal.add(child)
    chosen = [c for c in children if c in abnormal][:8] + [c for c in children if c not in abnormal][:8]
    for sub in ("train_wav", "train_json"):
        (root / "sprsound" / sub).mkdir(parents=True)
    for c in chosen:
        for ann in children[c]:
            (root / "sprsound" / "train_json" / ann.name).symlink_to(ann)
            wav = spr / "train_wav" / f"{ann.stem}.wav"
            (root / "sprsound" / "train_wav" / wav.name).symlink_to(wav)
    return {"physionet2016": root / "physionet2016", "sprsound": root / "sprsound"}


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("generalization")
    data = small_copy(root / "data")
    out = root / "results" / "generalization"
    r = run_module("benchmarks", "generalization", "--preset", "tiny", "--fold", FOLD, "--work", str(root / "work"),
                   *(x for f, p in data.items() for x in ("--data", f"{f}={p}")), "--bootstrap", "50",
                   "--threads", "2", "--out", str(out))
    return root, out, r


def test_a_fold_is_trained_without_its_test_site_and_children_and_every_model_is_scored(benchmark):
    root, out, r = benchmark
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(out.with_suffix(".json").read_text())
    fold = doc["folds"][FOLD]
    assert fold["heart_trained_on"] == "training-a" and fold["heart_tested_on"] == "training-b"
    manifest = [json.loads(x) for x in (root / "work" / FOLD / "data" / "manifest.jsonl").read_text().splitlines()]
    heart = [m for m in manifest if m["dataset"] == "physionet2016"]
    assert {m["split"] for m in heart if m["metadata"]["database"] == "training-b"} == {"test"}
    assert {m["split"] for m in heart if m["metadata"]["database"] == "training-a"} == {"train", "val"}
    parts = defaultdict(set)
    for m in manifest:
        if m["dataset"] == "sprsound":
            parts[m["split"]].add(m["subject"])
    assert parts["test"] and not (parts["test"] & (parts["train"] | parts["val"])) and not parts["train"] & parts["val"]
    heart_task, lung_task = fold["tasks"]["physionet2016-abnormal"], fold["tasks"]["sprsound-adventitious"]
    assert heart_task["test"] == {"recordings": 12, "subjects": 12, "positives": 6}
    assert lung_task["test"]["subjects"] == len(parts["test"])
    models = {"logmel-stats", "msm", "teacher", "student-torch", "onnx-fp32", "onnx-int8-onnxruntime"}
    for task in (heart_task, lung_task):
        assert set(task["models"]) == models
        for cell in task["models"].values():
            test = cell["test"]
            assert 0 <= test["auroc"] <= 1 and test["ci95"][0] <= test["auroc"] <= test["ci95"][1]
            assert 0 <= cell["val"]["auroc"] <= 1
    # the files' rows were scored on every test recording of the task
    assert heart_task["models"]["onnx-fp32"]["test"]["recordings"] == 12
    targets = {t["target"]: t for t in doc["targets"]}
    assert "aligned - MSM only, mean of the real tasks" in targets
    assert "heart: onnx-int8-onnxruntime AUROC, mean over folds" in targets
    for t in targets.values():  # each verdict is its measured value against its goal
        goal = float(t["goal"].split()[-1])
        assert t["met"] == (t["value"] is not None and t["value"] >= goal), t
    table = out.with_suffix(".md").read_text()
    assert "| heart, training-a → training-b | 12 (6 pos) |" in table and "lung, unseen children" in table
    assert "What chose what:" in table and table in r.stdout


def test_an_ablation_keeps_the_baselines_teacher_and_is_compared_on_the_same_recordings(benchmark):
    """--from copies the baseline's fold, so that --set event_labels=true retrains only the student and
    what follows it; benchmarks.ablations pairs the two recipes' scores recording by recording."""
    root, _, r = benchmark
    assert r.returncode == 0, r.stderr[-3000:]
    data = [x for f in ("physionet2016", "sprsound") for x in ("--data", f"{f}={root / 'data' / f}")]
    r = run_module("benchmarks", "generalization", "--preset", "tiny", "--fold", FOLD, "--work", str(root / "events"),
                   "--from", str(root / "work"), "--set", "event_labels=true", *data, "--bootstrap", "50",
                   "--threads", "2", "--out", str(root / "results" / "events"))
    assert r.returncode == 0, r.stderr[-3000:]
    stages = json.loads((root / "events" / FOLD / "summary.json").read_text())["stages"]
    assert {k: stages[k]["status"] for k in ("msm", "align", "evaluate", "distill")} == {
        "msm": "up to date", "align": "up to date", "evaluate": "up to date", "distill": "ran"}
    copied = json.loads((root / "results" / "events.json").read_text())["folds"][FOLD]["tasks"]
    assert all({"logmel-stats", "msm", "teacher"} <= set(t["models"]) for t in copied.values())  # the kept probes
    out = root / "results" / "ablations"
    r = run_module("benchmarks.ablations", "--baseline", str(root / "work"), "--recipe", f"event labels={root / 'events'}",
                   "--bootstrap", "50", "--out", str(out))
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.with_suffix(".json").read_text())
    base, events = doc["recipes"]["baseline"], doc["recipes"]["event labels"]
    assert events["changes"] == {"event_labels": True}
    assert set(events["evaluations"]) == set(base["evaluations"]) == {
        "heart, training-a → training-b", f"lung, unseen children (model of {FOLD})"}
    for e, cell in events["evaluations"].items():
        for part in ("val", "test"):
            c = cell[part]
            assert c["recordings"] == base["evaluations"][e][part]["recordings"] and "delta" not in base["evaluations"][e][part]
            assert c["delta"] == pytest.approx(c["auroc"] - base["evaluations"][e][part]["auroc"], abs=1e-3)
            assert c["delta_ci95"][0] <= c["delta"] + 1e-9 and c["delta"] - 1e-9 <= c["delta_ci95"][1]
    assert "| event labels | event_labels=True |" in out.with_suffix(".md").read_text()
    r = call_main("benchmarks.ablations", "--baseline", str(root / "work"), "--recipe", "oops")
    assert r.returncode == 2 and "write NAME=WORK" in r.stderr and r.stderr.count("\n") == 1


def test_a_field_older_runs_lack_is_no_change_when_it_has_the_presets_default(tmp_path):
    from benchmarks.ablations import changed_settings

    for name, settings in {"old": {"label_weight": 1.0, "description": "x"},
                           "new": {"label_weight": 1.0, "balance_heads": False, "description": "y"},
                           "changed": {"label_weight": 1.0, "balance_heads": True}}.items():
        (tmp_path / name / "site-a").mkdir(parents=True)
        (tmp_path / name / "site-a" / "config.json").write_text(json.dumps({"settings": settings}))
    assert changed_settings(tmp_path / "new", tmp_path / "old", "site-a") == {}
    assert changed_settings(tmp_path / "changed", tmp_path / "old", "site-a") == {"balance_heads": True}
    from dataclasses import asdict, replace

    from acula_edge.pipeline import PRESETS, recipe_results

    older = {k: v for k, v in asdict(PRESETS["demo"]).items() if k != "balance_heads"}  # measured before the field
    results = tmp_path / "generalization.json"
    results.write_text(json.dumps({"settings": older, "card": {"title": "t"}}))
    assert recipe_results(str(results), PRESETS["demo"]) == {"title": "t"}
    with pytest.raises(AculaError, match="balance_heads=False there, True here"):
        recipe_results(str(results), replace(PRESETS["demo"], balance_heads=True))
    # runs from before the modality head and the event outputs trained neither: not the recipe of today's preset
    results.write_text(json.dumps({"settings": {k: v for k, v in older.items() if k not in ("modality_head", "events")},
                                   "card": {"title": "t"}}))
    with pytest.raises(AculaError, match=r"events=\[\] there, \['wheeze', 'crackle'\] here, modality_head=False there"):
        recipe_results(str(results), PRESETS["demo"])
    assert recipe_results(str(results), replace(PRESETS["demo"], modality_head=False, events=())) == {"title": "t"}


@pytest.mark.parametrize("args, message", [
    (["--data", "sprsound=/no/such/folder"], "no sprsound data at /no/such/folder"),
    (["--data", "icbhi=/tmp"], "--data icbhi: this benchmark takes physionet2016 and sprsound"),
    (["--fold", "site-c"], "argument --fold: invalid choice"),
    (["--bootstrap", "1"], "--bootstrap at least 10"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    r = call_main("benchmarks.generalization", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"), *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "w").exists()


def test_a_bundle_of_the_measured_recipe_carries_the_results_in_its_model_card(benchmark, tmp_path):
    """pipeline --card-results: the benchmark's table goes into the card of a run with the same recipe,
    and a run with another recipe is refused in one line."""
    from acula_edge.device.bundle import model_card
    from export.cli import read_card

    root, out, r = benchmark
    assert r.returncode == 0, r.stderr[-3000:]
    results = out.with_suffix(".json")
    doc = json.loads(results.read_text())
    assert doc["settings"]["max_steps"] == 16 and doc["card"]["columns"][:3] == [
        "evaluation", "test recordings", "log-mel statistics + probe"]
    assert [row[0] for row in doc["card"]["rows"]] == ["heart, training-a → training-b",
                                                      f"lung, unseen children (model of {FOLD})"]
    run = tmp_path / "run"
    p = run_module("acula_edge.pipeline", "--preset", "tiny", "--out", str(run), "--until", "manifests",
                   "--card-results", str(results))
    assert p.returncode == 0, p.stderr[-2000:]
    card = read_card(str(run / "data" / "card.json"))
    assert card["results"] == doc["card"]
    text = model_card({"window_s": 4.0, "sample_rate": 4000, "hop_s": 2.0, "card": card})
    heart = doc["folds"][FOLD]["tasks"]["physionet2016-abnormal"]["models"]["student-torch"]["test"]["auroc"]
    assert "## The recipe on sites and children it never saw" in text
    assert "| heart, training-a → training-b | 12 (12 subjects) | " in text and f"{heart:.3f} [" in text
    p = call_main("acula_edge.pipeline", "--preset", "tiny", "--out", str(tmp_path / "other"), "--set",
                  "distill_epochs=3", "--card-results", str(results))
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "measured another recipe" in p.stderr, p.stderr
    assert "distill_epochs=2 there, 3.0 here" in p.stderr and not (tmp_path / "other").exists()
