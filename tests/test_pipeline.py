"""``python -m acula_edge.pipeline``: every stage on the tiny preset, then up to date on a rerun, a
remade output that changes nothing downstream, a killed training stage resumed in a copied run
folder, subject splits no training stage crossed, and bad input as one line."""

from __future__ import annotations

import json
import shutil

import pytest

from conftest import call_main, kill_after_steps, run_module, shared

STAGES = ["synthetic", "manifests", "reports", "text", "msm", "align", "evaluate", "distill", "export", "verify",
          "benchmarks"]
TINY_TASKS = {"synthetic-adventitious", "synthetic-abnormal-heart", "synthetic-wet-cough"}


def pipeline(*args: str):
    return run_module("acula_edge.pipeline", *args)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipeline") / "run"
    r = pipeline("--preset", "tiny", "--out", str(out))
    return out, r


def test_tiny_preset_runs_every_stage(tiny):
    out, r = tiny
    s = json.loads((out / "summary.json").read_text())
    verify = json.loads((out / "verify" / "report.json").read_text())
    assert r.returncode == (0 if verify["ok"] else 1), r.stderr
    assert s["bundle"]["verified"] == verify["ok"]
    assert list(s["stages"]) == STAGES and all(x["status"] == "ran" for x in s["stages"].values())
    assert s["seconds_total"] == pytest.approx(sum(x["seconds"] for x in s["stages"].values()), abs=0.5)
    assert (out / "summary.md").read_text() in r.stdout
    finished = [line.split(" ran in ")[0].split() for line in r.stderr.splitlines() if " ran in " in line]
    assert finished == [[f"[{i}/11]", name] for i, name in enumerate(STAGES, 1)]  # one progress display
    # the summary's numbers come from the stages' own results
    assert {v["variant"] for v in s["variants"]} == {"teacher", "student-torch", "onnx-fp32", "onnx-int8-onnxruntime"}
    for v in s["variants"]:
        assert v["bytes"] > 0 and v["p50_ms_1_thread"] > 0 and set(v["auroc"]) == TINY_TASKS
        for a in v["auroc"].values():
            assert a["ci95"][0] <= a["auroc"] <= a["ci95"][1]
    assert {(p["task"], p["encoder"]) for p in s["probe_auroc"]} == {
        (t, e) for t in TINY_TASKS for e in ("logmel-stats", "MSM only", "teacher")}
    bundle = json.loads((out / "bundle" / "bundle.json").read_text())
    assert sum(f["bytes"] for f in bundle["files"].values()) == s["bundle"]["bytes"] < 2_000_000
    assert [h["name"] for h in bundle["heads"]] == ["synthetic-adventitious", "synthetic-abnormal-heart",
                                                    "synthetic-wet-cough"]
    assert len(bundle["prompts"]["texts"]) == 6 and (out / "bundle" / "prompts.npy").is_file()
    card = (out / "bundle" / "MODEL_CARD.md").read_text()
    assert "Not a medical device" in card and "demonstration model" in card and "Apache-2.0" in card


def test_the_front_end_benchmark_compares_students_of_one_run(tiny, tmp_path):
    """benchmarks.frontend on a copy of the run: the run's own student for its front end, a student
    distilled by the run's distill stage with only the front end changed, costs timed in one process
    and AUROC with intervals on the run's test subjects."""
    out, _ = tiny
    run = tmp_path / "run"
    shutil.copytree(out, run)
    r = run_module("benchmarks.frontend", "--run", str(run), "--frontend", "ausc-4k", "--no-tflite", "--rounds", "1",
                   "--calls", "3", "--out", str(tmp_path / "frontend"))
    assert r.returncode == 0, r.stderr[-2000:]
    doc = json.loads((tmp_path / "frontend.json").read_text())
    rows = doc["frontends"]
    assert list(rows) == ["wide-16k", "ausc-4k"] and doc["reference"] == "wide-16k"
    assert rows["ausc-4k"]["checkpoint"] == str(run / "student" / "student.safetensors")  # the run's own student
    assert rows["wide-16k"]["checkpoint"] == str(run / "frontends" / "wide-16k" / "student.safetensors")
    distill = json.loads((run / "frontends" / "wide-16k" / "student.json").read_text())
    assert distill["frontend"]["sample_rate"] == 16000 and distill["training"]["frontend"] == "wide-16k"
    c4, c16 = rows["ausc-4k"]["cost"], rows["wide-16k"]["cost"]
    assert c16["frontend_macs_per_s"] > 10 * c4["frontend_macs_per_s"] and c4["network_macs_per_s"] == c16["network_macs_per_s"]
    assert all(ms > 0 for row in rows.values() for ms in row["ms_per_s"].values())
    assert set(rows["ausc-4k"]["ms_per_s"]) == {"onnx-fp32", "onnx-int8"}
    for task in TINY_TASKS:
        ref, cell = rows["wide-16k"]["accuracy"][task], rows["ausc-4k"]["accuracy"][task]
        assert "delta" not in ref and cell["delta"] == pytest.approx(cell["auroc"] - ref["auroc"], abs=1e-3)
        assert cell["delta_ci"][0] <= cell["delta_ci"][1] and cell["recordings"] == ref["recordings"] > 0
    assert "| `ausc-4k` | 4 kHz / 256 / 128 | 50-2000 Hz |" in (tmp_path / "frontend.md").read_text()


def test_make_default_installs_an_identical_bundle_replacing_the_old(tiny, tmp_path):
    from acula_edge.pipeline import install_bundle

    out, _ = tiny
    target = tmp_path / "default_bundle"
    target.mkdir()
    (target / "stale.txt").write_text("an older bundle")
    install_bundle(out / "bundle", target)
    assert sorted(p.name for p in target.iterdir()) == sorted(p.name for p in (out / "bundle").iterdir())
    for f in (out / "bundle").iterdir():
        assert (target / f.name).read_bytes() == f.read_bytes(), f.name
    assert [p.name for p in tmp_path.iterdir()] == ["default_bundle"]  # no temporary or old folder left


def test_no_training_stage_saw_a_val_or_test_subject(tiny):
    from acula_edge.checkpoint import read_sidecar, subject_hash
    from acula_edge.data.records import read_manifest

    out, _ = tiny
    records = read_manifest(out / "data" / "manifest.jsonl")
    assert {r.split for r in records} == {"train", "val", "test"}
    parts = {}
    for r in records:
        parts.setdefault(r.subject, set()).add(r.split)
    assert all(len(p) == 1 for p in parts.values())  # a subject lies in one part
    held = {subject_hash(r.subject) for r in records if r.split != "train"}
    train = {subject_hash(r.subject) for r in records if r.split == "train"}
    for ckpt in ("msm/encoder.safetensors", "teacher/encoder.safetensors", "student/student.safetensors"):
        seen = set(read_sidecar(out / ckpt)["trained_subjects_sha256"])
        assert seen and seen <= train and not seen & held, ckpt
    ev = json.loads((out / "evaluate" / "results.json").read_text())
    test = {r.subject for r in records if r.split == "test"}
    for x in ev["results"]:
        assert x["fixed_split"] and x["seeds"][0]["test_subjects"] <= len(test)
    bench = json.loads((out / "benchmarks" / "results.json").read_text())  # read from train.jsonl + test.jsonl
    for t in bench["tasks"].values():
        assert 0 < t["test"]["subjects"] <= len(test) and t["teacher_head"]["subjects"] <= len(train)


def test_rerun_is_up_to_date_and_a_remade_output_changes_nothing_downstream(tiny):
    out, _ = tiny
    r = pipeline("--preset", "tiny", "--out", str(out))
    s = json.loads((out / "summary.json").read_text())
    assert all(x["status"] == "up to date" for x in s["stages"].values()), r.stderr
    prompts = out / "data" / "prompts.txt"
    kept = prompts.read_text()
    prompts.write_text("edited\n")  # an output no longer what its stage wrote: that stage runs again
    r = pipeline("--preset", "tiny", "--out", str(out), "--until", "export")
    s = json.loads((out / "summary.json").read_text())
    assert prompts.read_text() == kept
    assert {n: x["status"] for n, x in s["stages"].items()} == {
        n: ("ran" if n == "manifests" else "up to date") for n in STAGES[:9]}, r.stderr


def test_a_killed_training_stage_resumes_in_a_copied_run_folder(tiny, tmp_path):
    out, _ = tiny
    run = tmp_path / "moved"
    shutil.copytree(out, run, ignore=shutil.ignore_patterns("lock"))
    args = ["acula_edge.pipeline", "--preset", "tiny", "--out", str(run), "--until", "msm",
            "--set", "max_steps=none", "--set", "pretrain_epochs=4"]
    kill_after_steps(args, run / "msm", steps=9)
    r = run_module(*args)
    assert r.returncode == 0, r.stderr
    s = json.loads((run / "summary.json").read_text())
    assert {n: x["status"] for n, x in s["stages"].items()} == {
        "synthetic": "up to date", "manifests": "up to date", "reports": "up to date", "text": "up to date",
        "msm": "resumed"}
    result = json.loads((run / "msm" / "result.json").read_text())
    steps_per_epoch = result["steps"] / 4
    assert result["epochs"] == 4 and steps_per_epoch == int(steps_per_epoch)
    assert "--resume" in (run / "logs" / "msm.log").read_text().splitlines()[0]


def test_a_runs_config_file_starts_the_same_run(tiny, tmp_path):
    """RUN/config.json holds the preset, its data and threads; ``--config`` with it builds the same run
    (the same commands: up to date), in its own folder unless --out says otherwise; flags override it."""
    from acula_edge.config import to_dict
    from acula_edge.pipeline import PRESETS

    out, _ = tiny
    written = json.loads((out / "config.json").read_text())
    assert written == {"stage": "pipeline", "preset": "tiny", "settings": to_dict(PRESETS["tiny"]), "data": {},
                       "threads": written["threads"], "text_model": None, "hold_out": [], "card_results": None}
    copy = tmp_path / "copy"
    r = pipeline("--config", str(out / "config.json"), "--out", str(copy), "--until", "synthetic")
    assert r.returncode == 0, r.stderr
    assert (copy / "config.json").read_text() == (out / "config.json").read_text()
    assert (copy / "synthetic" / "manifest.jsonl").read_bytes() == (out / "synthetic" / "manifest.jsonl").read_bytes()
    r = pipeline("--config", str(copy / "config.json"), "--until", "synthetic", "--set", "distill_epochs=3",
                 "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads((copy / "summary.json").read_text())["stages"]["synthetic"]["status"] == "up to date"
    now = json.loads((copy / "config.json").read_text())
    assert now == {**written, "settings": {**written["settings"], "distill_epochs": 3.0}, "threads": 1}


def test_a_config_file_of_another_kind_is_one_line(tmp_path):
    training = tmp_path / "config.json"
    training.write_text(json.dumps({"stage": "align train", "training": {"lr": 0.1}}))
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"stage": "pipeline", "preset": "tiny", "settings": {"synthetic": 4}}))
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    for path, message in [(training, "a `align train` run's config, not a `pipeline` one"),
                          (unknown, "settings: missing Preset fields description, align_preset"),
                          (bad, "not valid JSON")]:
        r = call_main("acula_edge.pipeline", "--config", str(path), "--out", str(tmp_path / "run"))
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--preset", "huge", "--out", "x"], "give --preset (one of: tiny, demo, cpu-small, gpu-paper)"),
    (["--preset", "tiny", "--out", "x", "--data", "wav=/tmp"], "--data wav: the pipeline knows the formats"),
    (["--preset", "tiny", "--out", "x", "--data", "sprsound=/no/such/folder"], "not a folder: /no/such/folder"),
    (["--preset", "tiny", "--out", "x", "--set", "epochs=3"], "--set epochs=3: give FIELD=VALUE with FIELD one of"),
    (["--preset", "tiny", "--out", "x", "--set", "max_steps=many"],
     "--set max_steps=many: max_steps takes an integer or none"),
    (["--preset", "tiny", "--out", "x", "--set", "gpu=maybe"], "gpu takes true or false"),
    (["--preset", "tiny", "--config", "x/config.json"], "give --preset or --config"),
    (["--config", "x/config.json", "--out", "x"], "--config x/config.json: no such file"),
    (["--config", "x/config.json"], "no such file"),
    (["--preset", "tiny", "--out", "x", "--hold-out", "physionet2016"], "write FORMAT:FIELD=VALUE"),
    (["--preset", "tiny", "--out", "x", "--hold-out", "physionet2016:database=training-b"],
     "physionet2016 is not among the run's datasets"),
])
def test_bad_input_is_one_line(args, message, tmp_path):
    r = call_main("acula_edge.pipeline", *args)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "x").exists()


def test_a_failing_stage_is_one_line_naming_its_log(tmp_path):
    run = tmp_path / "run"
    r = pipeline("--preset", "tiny", "--out", str(run), "--text-model", str(tmp_path / "no-model"), "--until", "text")
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and last.startswith("error: stage text failed (exit 2): error:"), r.stderr
    assert last.endswith(f"(log: {run / 'logs' / 'text.log'})") and "Traceback" not in r.stderr
    empty = tmp_path / "sprsound"
    empty.mkdir()
    r = pipeline("--preset", "tiny", "--out", str(run), "--data", f"sprsound={empty}", "--until", "manifests")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("error:"), r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.slow
def test_hold_out_makes_a_site_the_whole_test_part(tmp_path):
    """--hold-out: every record of training-b is test, training-a is split into train and val only; a
    rule nothing matches is one line naming the values there are."""
    phys = shared("physionet2016")
    run = tmp_path / "run"
    r = pipeline("--preset", "tiny", "--out", str(run), "--data", f"physionet2016={phys}",
                 "--hold-out", "physionet2016:database=training-b", "--until", "manifests")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in (run / "data" / "manifest.jsonl").read_text().splitlines()]
    split = {(m["metadata"]["database"], m["split"]) for m in rows if m["dataset"] == "physionet2016"}
    assert split == {("training-a", "train"), ("training-a", "val"), ("training-b", "test")}
    splits = json.loads((run / "data" / "splits.json").read_text())["physionet2016"]
    assert splits["test_is"] == "database=training-b" and splits["test"]["recordings"] == 490
    assert splits["train"]["recordings"] + splits["val"]["recordings"] == 409
    assert splits["val"]["recordings"] == pytest.approx(409 / 4, abs=3)
    assert [json.loads(x)["split"] for x in (run / "data" / "val.jsonl").read_text().splitlines()] == \
        ["val"] * sum(1 for m in rows if m["split"] == "val")
    card = json.loads((run / "data" / "card.json").read_text())
    assert any("database=training-b is in the test part" in x for x in card["limitations"])
    r = pipeline("--preset", "tiny", "--out", str(tmp_path / "other"), "--data", f"physionet2016={phys}",
                 "--hold-out", "physionet2016:database=training-z", "--until", "manifests")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1] == ("error: --hold-out physionet2016:database=training-z: no physionet2016 "
                                                 "recording matches (its database values: training-a, training-b)")


def test_recipe_fields_reach_the_distill_command(tmp_path):
    from acula_edge.config import override
    from acula_edge.pipeline import PRESETS, Run, RunConfig, stage_align, stage_distill

    recipe = override(PRESETS["demo"], ["event_labels=true", "label_weight=1", "distill_augment=eq_prob=0.5;snr_db=20,40",
                                        "align_loss=infonce", "head_weight=4", "balance_heads=true"])
    align = stage_align(Run(tmp_path, RunConfig("demo", recipe), 1)).command
    assert align[align.index("--loss") + 1] == "infonce"
    assert "--loss" not in stage_align(Run(tmp_path, RunConfig("demo", PRESETS["demo"]), 1)).command
    cmd = stage_distill(Run(tmp_path, RunConfig("demo", recipe), 1)).command
    assert "--event-labels" in cmd and cmd[cmd.index("--label-weight") + 1] == "1" and cmd[cmd.index("--w-heads") + 1] == "4"
    assert "--balance-heads" in cmd
    assert [cmd[i + 1] for i, x in enumerate(cmd) if x == "--augment"] == ["eq_prob=0.5", "snr_db=20,40"]
    demo = stage_distill(Run(tmp_path, RunConfig("demo", PRESETS["demo"]), 1)).command
    assert demo[demo.index("--label-weight") + 1] == "1"  # the demo recipe: heads on labels alone
    plain = stage_distill(Run(tmp_path, RunConfig("tiny", PRESETS["tiny"]), 1)).command
    assert not {"--event-labels", "--label-weight", "--w-heads", "--augment", "--balance-heads"} & set(plain)


def test_presets_list():
    r = call_main("acula_edge.pipeline", "--list-presets")
    assert r.returncode == 0
    for name in ("tiny", "demo", "cpu-small", "gpu-paper"):
        assert f"\n{name} " in "\n" + r.stdout
    assert "align_preset=gpu-paper" in r.stdout
