"""Checkpoints: weights in safetensors plus a JSON sidecar (configs, code version, trained subjects).

``run/encoder.safetensors`` holds tensors only (nothing is unpickled on load); ``run/encoder.json``
holds the encoder config (enough to rebuild it), the front-end config, the training config, the
code version and the sha256 of every subject id the weights were trained on (the leakage guard of
``acula_edge.evaluate``). Both files are written through a temp file and a rename.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

from acula_edge import __version__
from acula_edge.data.records import atomic_write, atomic_write_text, read_json
from acula_edge.errors import AculaError

SCHEMA = 1


def subject_hash(subject: str) -> str:
    """A short sha256 of a subject id: checkpoints name their training subjects without exposing them."""
    return hashlib.sha256(subject.encode("utf-8")).hexdigest()[:16]


def sidecar_path(path: str | Path) -> Path:
    """``x.safetensors`` -> ``x.json``."""
    return Path(path).with_suffix(".json")


def save_checkpoint(path: str | Path, model, frontend: dict[str, Any], training: dict[str, Any] | None = None,
                    subjects: Iterable[str] = (), extra: dict[str, Any] | None = None,
                    modules: dict[str, Any] | None = None, subject_hashes: Iterable[str] = (),
                    kind: str = "encoder") -> Path:
    """Write ``model``'s weights (as ``encoder.*``) and the sidecar; ``model.config.to_dict()`` rebuilds it.

    ``subjects`` are the ids trained on (stored hashed); ``subject_hashes`` adds already-hashed
    ones (those of the checkpoint a run started from). ``modules`` (e.g. projection heads) are
    stored beside the encoder under their own name prefixes. ``kind`` names the main model (its
    weights' prefix and its config's key in the sidecar): ``encoder``, or ``student``.
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise AculaError(f"a checkpoint path ends in .safetensors: {path}")
    state = {}
    for prefix, module in {kind: model, **(modules or {})}.items():
        state.update({f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()})
    atomic_write(path, lambda f: f.write(save(state)))
    meta = {"schema": SCHEMA, "code_version": __version__, "kind": kind, kind: model.config.to_dict(),
            "frontend": frontend, "training": training or {},
            "trained_subjects_sha256": sorted({subject_hash(s) for s in subjects} | set(subject_hashes)), **(extra or {})}
    atomic_write_text(sidecar_path(path), json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of a checkpoint, checked; a bad one is one clear error."""
    side = sidecar_path(path)
    if not Path(path).is_file():
        raise AculaError(f"checkpoint not found: {path}")
    if not side.is_file():
        raise AculaError(f"checkpoint {path} has no sidecar {side.name} (configs and provenance)")
    meta = read_json(side, "checkpoint sidecar")
    missing = [k for k in ("schema", meta.get("kind", "encoder"), "frontend") if k not in meta]
    if missing:
        raise AculaError(f"{side}: sidecar lacks {', '.join(missing)}")
    return meta


def load_weights(path: str | Path, module, prefix: str, what: str):
    """Load the tensors under ``prefix.`` of checkpoint ``path`` into ``module`` (all must fit)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise AculaError(f"{path}: not a readable safetensors file ({e})") from None
    p = prefix + "."
    result = module.load_state_dict({k[len(p):]: v for k, v in state.items() if k.startswith(p)}, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise AculaError(f"{path}: weights do not fit the {what} (missing {len(result.missing_keys)}, "
                         f"unexpected {len(result.unexpected_keys)} tensors)")
    return module.eval()


def load_checkpoint(path: str | Path):
    """``(encoder, sidecar)``: the encoder rebuilt from its config with the saved weights, in eval mode."""
    from acula_edge.models import encoder_from_config

    meta = read_sidecar(path)
    if meta.get("kind", "encoder") != "encoder":
        raise AculaError(f"{path} holds a {meta['kind']}, not an audio encoder")
    model = encoder_from_config(meta["encoder"])
    return load_weights(path, model, "encoder", f"{meta['encoder'].get('name')} encoder"), meta


def load_projections(path: str | Path) -> dict[str, Any]:
    """The projection heads saved beside an aligned encoder: ``{"audio": Projection, "text": Projection}``
    in eval mode (empty for an MSM-only checkpoint)."""
    from acula_edge.models.heads import Projection

    configs = read_sidecar(path).get("projections") or {}
    return {name: load_weights(path, Projection(**cfg), f"{name}_proj", f"{name} projection")
            for name, cfg in configs.items()}
