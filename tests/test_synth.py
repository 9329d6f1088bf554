"""The synthetic cardio-respiratory corpus: files, manifest, loader, labels, signals, metadata, CLI."""

from __future__ import annotations

import dataclasses
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from acula_edge.data import synth
from acula_edge.data.records import MISSING, read_manifest
from acula_edge.data.summary import summarize
from acula_edge.datasets import load
from acula_edge.errors import AculaError, DatasetError
from conftest import run_module

SR = 16000
N_CORPUS = 200


# ---- fixtures ----

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """200 clips written to disk once for the module: (folder, records returned by generate)."""
    out = tmp_path_factory.mktemp("synth") / "corpus"
    recs = synth.generate(out, N_CORPUS, seed=7)
    return out, recs


def _clips(modality: str, count: int, seed: int, **cfg) -> list[synth.SynthClip]:
    conf = synth.SynthConfig(**cfg)
    return [synth.generate_clip(np.random.default_rng([seed, i]), conf, modality=modality) for i in range(count)]


@pytest.fixture(scope="module")
def lung_clips():
    return _clips("lung", 160, 11)


def _auc(pos, neg) -> float:
    pos, neg = np.asarray(pos)[:, None], np.asarray(neg)[None, :]
    return float(np.mean(pos > neg) + 0.5 * np.mean(pos == neg))


def _highpass(x: np.ndarray, fc: float) -> np.ndarray:
    X = np.fft.rfft(x.astype(np.float64))
    X[np.fft.rfftfreq(len(x), 1 / SR) < fc] = 0
    return np.fft.irfft(X, len(x))


def tonality(x: np.ndarray) -> float:
    """Spectral peakiness in 100-1000 Hz: log10 peak/median power, mean over the 20% most tonal frames."""
    L, hop = 1024, 512
    k = (len(x) - L) // hop + 1
    fr = x[np.arange(L)[None, :] + hop * np.arange(k)[:, None]] * np.hanning(L)
    S = np.abs(np.fft.rfft(fr, axis=1)) ** 2
    f = np.fft.rfftfreq(L, 1 / SR)
    B = S[:, (f >= 100) & (f <= 1000)] + 1e-12
    pk = np.sort(np.log10(B.max(1) / np.median(B, 1)))
    return float(pk[-max(1, k // 5):].mean())


def transient_score(x: np.ndarray, B: int = 32, K: int = 25, thr: float = 4.0) -> float:
    """Percent of 2 ms blocks (above 200 Hz) whose energy exceeds ``thr`` x the local (50 ms) mean."""
    y = _highpass(x, 200)
    nb = len(y) // B
    e = (y[: nb * B].reshape(nb, B) ** 2).mean(1)
    local = np.convolve(e, np.ones(K) / K, "same") + 1e-12
    return float(np.mean(e / local > thr) * 100)


def heart_rate_from_audio(x: np.ndarray) -> float:
    """Heart rate from the autocorrelation of the 100 Hz amplitude envelope (lags 0.33-1.6 s)."""
    hop = SR // 100
    n = len(x) // hop * hop
    env = np.abs(x[:n]).reshape(-1, hop).mean(1)
    env = env - env.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1:]
    lags = np.arange(len(ac)) / 100
    ok = (lags >= 0.33) & (lags <= 1.6)
    return 60.0 / lags[ok][np.argmax(ac[ok])]


def _centroid(x: np.ndarray) -> float:
    S = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    return float((S * np.fft.rfftfreq(len(x), 1 / SR)).sum() / S.sum())


# ---- files, manifest, loader ----

def test_layout_manifest_and_loader_round_trip(corpus):
    out, recs = corpus
    assert len(recs) == N_CORPUS
    for name in (synth.MANIFEST_NAME, synth.CONFIG_NAME, synth.SUMMARY_NAME):
        assert (out / name).is_file()
    assert len(list((out / "audio").glob("*.wav"))) == N_CORPUS

    stored = read_manifest(out / "manifest.jsonl")
    assert [r.id for r in stored] == [r.id for r in recs]
    assert len({r.id for r in stored}) == N_CORPUS
    raw = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for s, r, line in zip(stored, recs, raw):
        assert line["path"] == f"audio/{s.id}.wav"  # stored relative to the corpus folder
        assert s.dataset == "synthetic"
        # read_manifest resolves it against the manifest's folder
        assert Path(r.path).is_absolute() and Path(r.path) == (out / line["path"]).resolve() == Path(s.path)
        assert s == r

    loaded = load("synthetic", out)
    assert [r.to_dict() for r in loaded] == [r.to_dict() for r in recs]
    assert all(Path(r.path).is_file() for r in loaded)
    hearts = load("synthetic", out / "manifest.jsonl", modality="heart")
    assert hearts and {r.modality for r in hearts} == {"heart"}

    conf = json.loads((out / "synth_config.json").read_text())
    assert conf["n"] == N_CORPUS and conf["seed"] == 7
    assert conf["config"]["sample_rate"] == SR and conf["config"]["duration"] == 5.0
    summary = json.loads((out / "synth_summary.json").read_text())
    assert summary == json.loads(json.dumps(summarize(recs)))  # the one summary schema of the data layer
    assert summary["recordings"] == N_CORPUS and sum(summary["modalities"].values()) == N_CORPUS
    assert summary["sample_rates"] == {str(SR): N_CORPUS} and summary["total_duration_s"] == 5.0 * N_CORPUS
    assert summary["labels"]["adventitious"][MISSING] == N_CORPUS - summary["modalities"]["lung"]
    assert set(summary["labels"]["heart_rate"]) == {"n", "min", "mean", "max", MISSING}


def test_loader_errors(tmp_path, corpus):
    with pytest.raises(DatasetError, match="manifest"):
        load("synthetic", tmp_path)
    out, recs = corpus
    broken = tmp_path / "broken"
    (broken / "audio").mkdir(parents=True)
    (broken / "manifest.jsonl").write_text((out / "manifest.jsonl").read_text())
    with pytest.raises(DatasetError, match="missing"):
        load("synthetic", broken)


def test_audio_rate_duration_range(corpus):
    _, recs = corpus
    for r in recs:
        assert r.sample_rate == SR and r.duration == 5.0
        info = sf.info(r.path)
        assert (info.samplerate, info.frames, info.channels, info.subtype) == (SR, 5 * SR, 1, "PCM_16")
    for r in recs[:40]:
        x, _ = sf.read(r.path, dtype="float32")
        assert np.isfinite(x).all() and np.abs(x).max() <= 1.0
        assert x.std() > 1e-3  # not silent


# ---- labels, metadata, events ----

def test_labels_match_modality_and_are_balanced(corpus):
    _, recs = corpus
    mods = Counter(r.modality for r in recs)
    assert set(mods) == {"lung", "heart", "cough", "breath"} and min(mods.values()) >= 20
    values: dict[str, Counter] = {}
    for r in recs:
        assert set(r.labels) == set(synth.LABELS[r.modality]), (r.id, r.labels)
        assert r.labels["condition"] == r.metadata["condition"] in synth.CONDITIONS
        for k, v in r.labels.items():
            values.setdefault(k, Counter())[v] += 1
        if r.modality == "lung":
            assert r.labels["adventitious"] == int(r.labels["wheeze"] or r.labels["crackle"])
            assert (r.labels["crackle_type"] == "none") == (r.labels["crackle"] == 0)
            assert 6 <= r.labels["resp_rate"] <= 70
        if r.modality == "heart":
            assert r.labels["murmur"] in synth.MURMURS and 40 <= r.labels["heart_rate"] <= 180
            assert r.labels["abnormal"] in ("abnormal", "normal")
            if r.labels["murmur"] != "absent" or r.labels["rhythm"] == "irregular":
                assert r.labels["abnormal"] == "abnormal"
    for task, yes, no in (("adventitious", 1, 0), ("wheeze", 1, 0), ("crackle", 1, 0),
                          ("abnormal", "abnormal", "normal")):
        c = values[task]
        assert set(c) == {yes, no}, (task, c)
        assert 0.05 <= c[yes] / (c[yes] + c[no]) <= 0.75, (task, c)
    assert set(values["cough_type"]) == {"wet", "dry"} and min(values["cough_type"].values()) >= 5
    assert values["murmur"]["absent"] > 0 and len(values["murmur"]) >= 2
    assert len(values["condition"]) >= 6


def test_metadata_sites_devices_subjects_and_events(corpus):
    _, recs = corpus
    by_subject = Counter(r.subject for r in recs)
    assert all(re.fullmatch(r"syn-\d{4}", s) for s in by_subject)
    assert max(by_subject.values()) <= 4 and sum(v > 1 for v in by_subject.values()) >= 10
    for r in recs:
        m = r.metadata
        assert set(m) == {"age", "sex", "smoker", "condition", "symptoms", "device", "site"}
        assert isinstance(m["age"], int) and 0 < m["age"] < 100
        assert m["sex"] in ("female", "male") and m["smoker"] in ("yes", "no")
        assert r.device == m["device"] in synth.DEVICES and r.site == m["site"]
        if r.modality == "lung":
            assert r.site in synth.LUNG_SITES
        elif r.modality == "heart":
            assert r.site in synth.HEART_SITES
        kinds = Counter(e["type"] for e in r.events)
        for e in r.events:
            assert 0 <= e["start"] < e["end"] <= r.duration
        if r.modality == "lung":
            assert (kinds["wheeze"] > 0) == bool(r.labels["wheeze"])
            assert (kinds["crackle"] > 0) == bool(r.labels["crackle"])
            assert kinds["inspiration"] > 0
        if r.modality == "heart":
            assert kinds["S1"] >= 3 and kinds["S2"] >= 3
            assert (kinds["murmur"] > 0) == (r.labels["murmur"] != "absent")
        if r.modality == "cough":
            assert kinds["cough"] >= 1
    # the same subject keeps its facts across clips
    facts: dict[str, tuple] = {}
    for r in recs:
        f = tuple(r.metadata[k] for k in ("age", "sex", "smoker", "condition"))
        assert facts.setdefault(r.subject, f) == f


def test_metadata_relates_to_condition_probabilistically():
    subs = [synth.sample_subject(np.random.default_rng([3, i]), i) for i in range(3000)]
    cond = np.array([s.condition for s in subs])
    age = np.array([s.age for s in subs])
    smoker = np.array([s.smoker == "yes" for s in subs])
    p_copd_smoker = np.mean(cond[smoker] == "COPD")
    p_copd_non = np.mean(cond[~smoker] == "COPD")
    assert p_copd_smoker > 2.5 * p_copd_non > 0  # smokers more often COPD, but not only them
    assert age[cond == "heart failure"].mean() > age[cond == "asthma"].mean() + 20
    assert np.mean(cond[age < 13] == "URTI") > 2 * np.mean(cond[age >= 18] == "URTI")
    assert 0.2 < np.mean(cond == "healthy") < 0.5
    # findings depend on the condition, but not deterministically
    wheeze = np.array([s.wheeze for s in subs])
    assert 0.5 < wheeze[cond == "asthma"].mean() < 0.9
    assert 0 < wheeze[cond == "healthy"].mean() < 0.1
    murmur = np.array([s.murmur != "absent" for s in subs])
    assert murmur[cond == "valve disease"].mean() > 0.6 > 0.15 > murmur[cond == "healthy"].mean() > 0


# ---- determinism ----

def _files(d: Path) -> dict[str, bytes]:
    return {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_prefix_property(tmp_path):
    a = _files(Path(synth.generate(tmp_path / "a", 12, seed=3)[0].path).parents[1])
    b = _files(Path(synth.generate(tmp_path / "b", 12, seed=3)[0].path).parents[1])
    assert a == b and len([k for k in a if k.endswith(".wav")]) == 12
    c = _files(Path(synth.generate(tmp_path / "c", 12, seed=4)[0].path).parents[1])
    wav_a = [v for k, v in a.items() if k.endswith(".wav")]
    wav_c = [v for k, v in c.items() if k.endswith(".wav")]
    assert a["manifest.jsonl"] != c["manifest.jsonl"]
    assert not set(wav_a) & set(wav_c)
    # clip i does not depend on how many clips are generated
    p = _files(Path(synth.generate(tmp_path / "p", 5, seed=3)[0].path).parents[1])
    for k, v in p.items():
        if k.endswith(".wav"):
            assert a[k] == v
    assert a["manifest.jsonl"].decode().splitlines()[:5] == p["manifest.jsonl"].decode().splitlines()


# ---- signals ----

def test_wheeze_clips_are_tonal(lung_clips):
    ton = np.array([tonality(c.audio) for c in lung_clips])
    wz = np.array([c.labels["wheeze"] == 1 for c in lung_clips])
    normal = np.array([c.labels["adventitious"] == 0 for c in lung_clips])
    assert wz.sum() >= 15 and normal.sum() >= 40
    assert ton[wz].mean() > ton[normal].mean() + 0.4
    assert _auc(ton[wz], ton[normal]) > 0.8


def test_crackle_clips_have_more_transients(lung_clips):
    ts = np.array([transient_score(c.audio) for c in lung_clips])
    cr = np.array([c.labels["crackle"] == 1 for c in lung_clips])
    normal = np.array([c.labels["adventitious"] == 0 for c in lung_clips])
    assert cr.sum() >= 15
    assert ts[cr].mean() > 1.3 * ts[normal].mean()
    assert _auc(ts[cr], ts[normal]) > 0.7


def test_heart_clips_are_periodic_at_the_heart_rate():
    base = synth.sample_subject(np.random.default_rng(5), 0)
    clips = []
    for i, hr in enumerate(np.linspace(55, 120, 24)):
        subj = dataclasses.replace(base, heart_rate=float(hr), irregular=False)
        clips.append(synth.generate_clip(np.random.default_rng([8, i]), subject=subj, modality="heart"))
    err = np.array([abs(heart_rate_from_audio(c.audio) / c.labels["heart_rate"] - 1) for c in clips])
    assert np.mean(err < 0.1) >= 0.8, err.round(2)
    # irregular rhythm: beat-to-beat intervals vary much more than in sinus rhythm
    def cv(clip):
        s1 = np.array([e["start"] for e in clip.events if e["type"] == "S1"])
        d = np.diff(s1)
        return d.std() / d.mean()

    irr = dataclasses.replace(base, heart_rate=75.0, irregular=True)
    reg = dataclasses.replace(base, heart_rate=75.0, irregular=False)
    cv_irr = [cv(synth.generate_clip(np.random.default_rng([9, i]), subject=irr, modality="heart")) for i in range(8)]
    cv_reg = [cv(synth.generate_clip(np.random.default_rng([9, i]), subject=reg, modality="heart")) for i in range(8)]
    assert np.mean(cv_irr) > 2.5 * np.mean(cv_reg)


def test_wet_coughs_are_lower_than_dry():
    clips = _clips("cough", 50, 13)
    wet = np.array([c.labels["cough_type"] == "wet" for c in clips])
    cen = np.array([_centroid(c.audio) for c in clips])
    assert 5 <= wet.sum() <= 45
    assert np.median(cen[wet]) < np.median(cen[~wet])
    assert all(any(e["type"] == "cough" for e in c.events) for c in clips)


def test_device_band_limits():
    def high_fraction(device, fc):
        clips = _clips("lung", 6, 17, devices=(device,))
        assert {c.device for c in clips} == {device}
        S = np.mean([np.abs(np.fft.rfft(c.audio.astype(np.float64))) ** 2 for c in clips], 0)
        return S[np.fft.rfftfreq(5 * SR, 1 / SR) > fc].sum() / S.sum()

    assert high_fraction("Littmann 3200", 2300) < 1e-3  # a 4 kHz stethoscope: nothing above 2 kHz
    assert high_fraction("AKG C417L", 2300) > 5 * high_fraction("Littmann 3200", 2300)


def test_other_rates_and_durations():
    cfg = synth.SynthConfig(sample_rate=8000, duration=2.5)
    for mod in synth.SYNTH_MODALITIES:
        c = synth.generate_clip(np.random.default_rng(1), cfg, modality=mod)
        assert c.audio.dtype == np.float32 and c.audio.shape == (20000,)
        assert np.abs(c.audio).max() <= 1.0 and c.sample_rate == 8000


def test_bad_config_raises_acula_errors():
    for bad in (dict(sample_rate=100), dict(duration=0.1), dict(clips_per_subject=(3, 1)),
                dict(modality_weights={"speech": 1.0}), dict(devices=("nope",))):
        with pytest.raises(synth.SynthError):
            synth.SynthConfig(**bad).validate()
    with pytest.raises(AculaError):
        list(synth.iter_clips(0, 1))


# ---- CLI ----

def test_cli_writes_corpus(tmp_path):
    out = tmp_path / "cli"
    res = run_module("acula_edge.data.synth", "--out", str(out), "--n", "6", "--seed", "1")
    assert res.returncode == 0, res.stderr
    assert len(read_manifest(out / "manifest.jsonl")) == 6
    assert len(list((out / "audio").glob("*.wav"))) == 6
    assert json.loads((out / "synth_config.json").read_text())["n"] == 6


@pytest.mark.parametrize("args", [["--n", "0"], ["--n", "-3"], ["--n", "many"], ["--sample-rate", "100"],
                                  ["--duration", "0"], ["--modalities", "speech"]])
def test_cli_bad_input_one_line_exit_2(tmp_path, capsys, args):
    rc = synth.main(["--out", str(tmp_path / "x"), *args])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err


def test_cli_bad_n_in_subprocess(tmp_path):
    res = run_module("acula_edge.data.synth", "--out", str(tmp_path / "x"), "--n", "0")
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and res.stderr.startswith("error: ")
