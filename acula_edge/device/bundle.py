"""The bundle a device loads: one folder with ``bundle.json``, model files, prompts and a model card.

``bundle.json`` holds the schema version, name, sample rate, window and hop, the front-end config,
the input and output specs, the heads (meaning, what they screen, threshold, operating point), optional zero-shot
prompts, metrics, provenance and, for every file, its format, precision, size and sha256.
:func:`write_bundle` writes a whole bundle into a temporary folder beside the target and renames
it into place, so that a failure never leaves half a bundle; :func:`load_bundle` checks the schema
and every checksum and names what is wrong. numpy only: no torch on the device.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from acula_edge.data.records import MODALITIES, read_json
from acula_edge.errors import AculaError
from acula_edge.hashing import sha256_file

SCHEMA = 1
BUNDLE_JSON, CARD, PROMPTS = "bundle.json", "MODEL_CARD.md", "prompts.npy"
#: model file name -> (format, precision)
MODEL_FILES = {"model_fp32.onnx": ("onnx", "fp32"), "model_int8.onnx": ("onnx", "int8"),
               "model_fp32.tflite": ("tflite", "fp32"), "model_int8.tflite": ("tflite", "int8")}
#: the full-integer pair (file name -> (format, precision, part)): an fp32 front end (waveform in,
#: min-max normalised log-mel out) feeding an int8-in, int8-out network, for NPUs and microcontrollers
PART_FILES = {"frontend_fp32.tflite": ("tflite", "fp32", "frontend"),
              "network_int8.tflite": ("tflite", "int8", "network")}
#: every graph's outputs, and those a graph with a modality or event head adds (in this order)
OUTPUTS, EXTRA_OUTPUTS = ("embedding", "scores"), ("modality", "events")
REQUIRED = {"schema": int, "name": str, "sample_rate": int, "window_s": (int, float), "hop_s": (int, float),
            "frontend": dict, "input": dict, "outputs": dict, "heads": list, "metrics": dict, "provenance": dict,
            "files": dict}


def _self_test_ok(meta: dict[str, Any]) -> bool:
    """Whether ``self_test`` names a listed file and a tolerance per output for each precision held."""
    st = meta["self_test"]
    held = {MODEL_FILES[n][1] if n in MODEL_FILES else PART_FILES[n][1] for n in meta["files"]
            if n in MODEL_FILES or n in PART_FILES}
    tol = st.get("tolerance") if isinstance(st, dict) else None
    return (isinstance(st, dict) and isinstance(st.get("file"), str) and st["file"] in meta["files"] and isinstance(tol, dict)
            and all(isinstance(tol.get(p), dict) and all(isinstance(tol[p].get(k), (int, float))
                                                         for k in ("embedding", "scores")) for p in held))


def problems(meta: Any) -> list[str]:
    """What is wrong with a ``bundle.json`` document (empty when nothing)."""
    if not isinstance(meta, dict):
        return ["bundle.json is not a JSON object"]
    out = [f"'{k}' is missing" for k in REQUIRED if k not in meta]
    out += [f"'{k}' should be {t.__name__ if isinstance(t, type) else 'a number'}"
            for k, t in REQUIRED.items() if k in meta and not isinstance(meta[k], t)]
    if out:
        return out
    if meta["schema"] != SCHEMA:
        out.append(f"schema {meta['schema']} is not the supported {SCHEMA}")
    if meta["sample_rate"] <= 0 or meta["window_s"] <= 0 or meta["hop_s"] <= 0:
        out.append("sample_rate, window_s and hop_s must be positive")
    if meta["input"].get("name") != "waveform":
        out.append("the input must be 'waveform'")
    out += _output_problems(meta["outputs"])
    for i, h in enumerate(meta["heads"]):
        if not isinstance(h, dict) or not isinstance(h.get("name"), str):
            out.append(f"head {i} has no name")
        elif h.get("threshold") is not None and (not isinstance(h["threshold"], (int, float))
                                                 or not 0.0 <= h["threshold"] <= 1.0):
            out.append(f"head {h['name']}: threshold is not a number in [0, 1]")
        elif h.get("modality") is not None and h["modality"] not in MODALITIES:
            out.append(f"head {h['name']}: modality {h['modality']!r} is not one of {', '.join(MODALITIES)}")
    models = [n for n in meta["files"] if n in MODEL_FILES]
    if not models:
        out.append("no model file is listed")
    chosen = meta.get("default_precision", {})
    if not isinstance(chosen, dict) or any((f, p) not in {MODEL_FILES[n] for n in models} for f, p in chosen.items()):
        out.append("default_precision must name, per format, a precision the bundle holds a model file of")
    for name, f in meta["files"].items():
        if Path(name).name != name or name in (BUNDLE_JSON, "") or name.startswith("."):
            out.append(f"file name {name!r} is not a plain name in the bundle folder")
        elif not isinstance(f, dict) or not isinstance(f.get("sha256"), str) or len(f["sha256"]) != 64:
            out.append(f"file {name}: no sha256")
        elif name in MODEL_FILES and (f.get("format"), f.get("precision")) != MODEL_FILES[name]:
            out.append(f"file {name}: format and precision should be {MODEL_FILES[name]}")
        elif name in PART_FILES and (f.get("format"), f.get("precision"), f.get("part")) != PART_FILES[name]:
            out.append(f"file {name}: format, precision and part should be {PART_FILES[name]}")
    if len([n for n in meta["files"] if n in PART_FILES]) == 1:
        out.append(f"the full-integer pair needs both {' and '.join(PART_FILES)}")
    p = meta.get("prompts")
    if p is not None and (not isinstance(p, dict) or not isinstance(p.get("texts"), list)
                          or not isinstance(p.get("file"), str) or p["file"] not in meta["files"]):
        out.append("prompts need 'texts' and a listed 'file'")
    if meta.get("self_test") is not None and not _self_test_ok(meta):
        out.append("self_test needs a listed 'file' and a 'tolerance' (embedding, scores) for each precision held")
    return out


def _levels_ok(e: dict[str, Any], kinds: list) -> bool:
    """Whether ``on`` and ``off`` are numbers (or a number per kind) with 0 <= off <= on <= 1."""
    def of(v: Any, k: str) -> Any:
        return v.get(k) if isinstance(v, dict) else v

    return all(isinstance(of(e.get("on"), k), (int, float)) and isinstance(of(e.get("off"), k), (int, float))
               and 0 <= of(e["off"], k) <= of(e["on"], k) <= 1 for k in kinds)


def _output_problems(outputs: dict[str, Any]) -> list[str]:
    """What is wrong with ``bundle.json``'s ``outputs``."""
    if not set(OUTPUTS) <= set(outputs) <= set(OUTPUTS + EXTRA_OUTPUTS):
        return [f"the outputs must be {' and '.join(OUTPUTS)}, with {' or '.join(EXTRA_OUTPUTS)} where the graph has them"]
    out = []
    if not all(isinstance(v, dict) and isinstance(v.get("shape"), list) and v["shape"] for v in outputs.values()):
        return ["each output needs its shape"]
    m = outputs.get("modality")
    if m is not None:
        classes = m.get("classes")
        if (not isinstance(classes, list) or len(classes) < 2 or any(c not in MODALITIES for c in classes)
                or m["shape"][-1] != len(classes)):
            out.append(f"output modality needs 'classes' (two or more of {', '.join(MODALITIES)}), one per value")
        c = m.get("min_confidence")
        if not isinstance(c, (int, float)) or not 0 < c <= 1:
            out.append("output modality needs a 'min_confidence' in (0, 1]")
    e = outputs.get("events")
    if e is not None:
        kinds = e.get("kinds")
        if not isinstance(kinds, list) or not kinds or len(e["shape"]) != 3 or e["shape"][-1] != len(kinds):
            out.append("output events needs 'kinds' and a [batch, steps, kinds] shape")
        elif not all(isinstance(e.get(k), (int, float)) for k in ("step_s", "offset_s", "min_s")) \
                or not (e["step_s"] > 0 and e["min_s"] >= 0) or not _levels_ok(e, kinds):
            out.append("output events needs step_s > 0, offset_s, min_s >= 0 and, for every kind, 0 <= off <= on <= 1 "
                       "(one level, or one per kind)")
    return out


@dataclass
class Bundle:
    """A loaded, verified bundle."""

    path: Path
    meta: dict[str, Any]

    @property
    def sample_rate(self) -> int:
        return int(self.meta["sample_rate"])

    @property
    def window_samples(self) -> int:
        return int(round(self.meta["window_s"] * self.sample_rate))

    @property
    def heads(self) -> list[dict[str, Any]]:
        return list(self.meta["heads"])

    @property
    def outputs(self) -> tuple[str, ...]:
        """The model files' outputs, in order."""
        return OUTPUTS + tuple(k for k in EXTRA_OUTPUTS if k in self.meta["outputs"])

    @property
    def modalities(self) -> list[str]:
        """The modality head's classes (empty without one)."""
        return list((self.meta["outputs"].get("modality") or {}).get("classes", []))

    @property
    def events(self) -> dict[str, Any] | None:
        """The event output's description (kinds, step_s, offset_s, hysteresis on/off, min_s), or None."""
        return self.meta["outputs"].get("events")

    def screening(self, modality: str | None) -> list[dict[str, Any]]:
        """The heads that screen ``modality`` recordings, with those that screen any (all heads for None)."""
        return [h for h in self.heads if modality is None or h.get("modality") in (None, modality)]

    def models(self) -> dict[str, tuple[str, str]]:
        """Model file name -> (format, precision), for the files this bundle holds."""
        return {n: MODEL_FILES[n] for n in self.meta["files"] if n in MODEL_FILES}

    def split(self) -> tuple[Path, Path] | None:
        """``(front end, full-integer network)`` paths when the bundle holds the pair, else None."""
        parts = {PART_FILES[n][2]: self.path / n for n in self.meta["files"] if n in PART_FILES}
        return (parts["frontend"], parts["network"]) if len(parts) == 2 else None

    def default_precision(self, fmt: str) -> str | None:
        """The precision to run ``fmt`` at when none is asked for: the bundle's ``default_precision``
        (the faster file, as its exporter measured them), else int8 when it holds one (older bundles)."""
        held = {p for f, p in self.models().values() if f == fmt}
        chosen = (self.meta.get("default_precision") or {}).get(fmt)
        if chosen in held:
            return chosen
        return "int8" if "int8" in held else ("fp32" if held else None)

    def model_path(self, fmt: str, precision: str = "fp32") -> Path:
        for name, (f, p) in self.models().items():
            if (f, p) == (fmt, precision):
                return self.path / name
        raise AculaError(f"{self.path}: no {precision} {fmt} model (it holds {', '.join(self.models())})")

    def source_checkpoint(self, override: str | Path | None = None, needed_for: str = "this", hint: str = "") -> Path:
        """The checkpoint this bundle was exported from (``override``, else the path in its provenance),
        checked against the sha256 in its provenance; ``hint`` ends the error when it is missing."""
        ckpt = override or self.meta["provenance"].get("checkpoint")
        if not ckpt or not Path(ckpt).is_file():
            raise AculaError(f"{needed_for} needs the bundle's source checkpoint, and {ckpt} is not here: "
                             f"give --checkpoint{hint}")
        if sha256_file(ckpt) != self.meta["provenance"].get("checkpoint_sha256"):
            raise AculaError(f"{ckpt} is not the checkpoint {self.path} was exported from (sha256 differs)")
        return Path(ckpt)

    def prompts(self) -> tuple[list[str], np.ndarray] | None:
        """``(texts, embeddings [K, D])`` of the zero-shot prompts, or None."""
        p = self.meta.get("prompts")
        if not p:
            return None
        try:  # memory-mapped: a header claiming more than the file holds, or Python objects, is refused
            vectors = np.array(np.load(self.path / p["file"], mmap_mode="r", allow_pickle=False))
        except (ValueError, OSError, EOFError) as e:
            raise AculaError(f"{self.path / p['file']}: not an array of prompt embeddings "
                             f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})") from None
        if vectors.ndim != 2 or vectors.shape[0] != len(p["texts"]):
            raise AculaError(f"{self.path}: {p['file']} holds {vectors.shape} for {len(p['texts'])} prompts")
        return list(p["texts"]), vectors


_PACKAGE = Path(__file__).parent.parent  # acula_edge/: where pyproject's package data puts both
#: the demonstration bundle shipped inside the package (made by ``python -m acula_edge.pipeline --preset demo``)
DEFAULT_BUNDLE = _PACKAGE / "default_bundle"
#: a synthetic example recording shipped beside it (``make demo`` screens it)
EXAMPLE_RECORDING = _PACKAGE / "examples" / "example_lung.flac"


def default_bundle() -> Path:
    """The packaged default bundle's folder; a clear error when this installation has none."""
    if not (DEFAULT_BUNDLE / BUNDLE_JSON).is_file():
        raise AculaError(f"no --bundle given and this installation has no default bundle ({DEFAULT_BUNDLE}): "
                         "give --bundle BUNDLE")
    return DEFAULT_BUNDLE


def load_bundle(path: str | Path) -> Bundle:
    """Read ``path/bundle.json``, check its schema and the sha256 of every listed file."""
    path = Path(path)
    doc = path / BUNDLE_JSON
    if not doc.is_file():
        raise AculaError(f"{path}: not a bundle (no {BUNDLE_JSON})")
    meta = read_json(doc, BUNDLE_JSON)
    bad = problems(meta)
    if bad:
        raise AculaError(f"{doc}: " + "; ".join(bad))
    for name, f in meta["files"].items():
        p = path / name
        if p.is_symlink():  # a link could point at any model on the device
            raise AculaError(f"{path}: {name} is a symbolic link; a bundle holds its own files")
        if not p.is_file():
            raise AculaError(f"{path}: {name} is listed in {BUNDLE_JSON} but missing")
        if sha256_file(p) != f["sha256"]:
            raise AculaError(f"{path}: {name} was changed after export (sha256 differs from {BUNDLE_JSON})")
    return Bundle(path, meta)


def write_bundle(out: str | Path, meta: Mapping[str, Any], files: Mapping[str, str | Path | bytes],
                 card: str | None = None, overwrite: bool = False) -> Bundle:
    """Write a bundle folder atomically and return it loaded (so verified).

    ``files``: bundle file name -> source path or bytes (model files, ``prompts.npy``); their
    format, precision, size and sha256 are filled into ``bundle.json``. ``card`` is the model
    card's text (default :func:`model_card`). An existing folder is replaced only with ``overwrite``.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise AculaError(f"{out} exists; choose another folder or overwrite it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    old = out.with_name(f".{out.name}.old")
    moved = False  # whether the previous bundle is at ``old`` now
    try:
        listed: dict[str, dict[str, Any]] = {}
        for name, src in files.items():
            target = tmp / name
            if isinstance(src, bytes):
                target.write_bytes(src)
            else:
                if not Path(src).is_file():
                    raise AculaError(f"bundle file {name}: {src} not found")
                shutil.copyfile(src, target)
            fmt, precision = MODEL_FILES.get(name) or PART_FILES.get(name, (Path(name).suffix.lstrip("."), None))[:2]
            listed[name] = {"format": fmt, "precision": precision, "bytes": target.stat().st_size,
                            "sha256": sha256_file(target)}
            if name in PART_FILES:
                listed[name]["part"] = PART_FILES[name][2]
        doc = {**meta, "schema": SCHEMA, "files": listed}
        bad = problems(doc)
        if bad:
            raise AculaError("bad bundle description: " + "; ".join(bad))
        (tmp / CARD).write_text(card if card is not None else model_card(doc), encoding="utf-8")
        (tmp / BUNDLE_JSON).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.chmod(tmp, 0o755)
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
            moved = True
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved and not out.exists():
            old.rename(out)  # the previous bundle comes back
        raise
    return load_bundle(out)


def model_card(meta: Mapping[str, Any]) -> str:
    """A ``MODEL_CARD.md`` from a bundle description: intended use, limits, data, heads, metrics, files."""
    prov = meta.get("provenance", {})
    card = meta.get("card") or {}  # optional: summary, data (one row per dataset), limitations, results
    lines = [f"# {meta.get('name', 'acula-edge model')}", "",
             "**Not a medical device.** A research model for screening studies; it does not diagnose, and "
             "its scores must not guide care without a clinician and a validated device.", ""]
    if card.get("summary"):
        lines += [card["summary"], ""]
    lines += ["## Intended use",
             f"Input: {meta['window_s']:.2f} s windows of mono audio at {meta['sample_rate']} Hz (float32 in [-1, 1]), "
             f"every {meta['hop_s']:.2f} s. Output: an L2-normalised embedding in the aligned audio-text space and "
             "one probability per head.", ""]
    outputs = meta.get("outputs", {})
    if outputs.get("modality"):
        m = outputs["modality"]
        lines += [f"Routing: a modality head tells {', '.join(m['classes'])} recordings apart; `listen` scores a head "
                  f"only on windows routed to what it screens, and a window whose most likely modality is below "
                  f"{m['min_confidence']} is reported as unknown, with no score. Sounds of any other kind were never "
                  "shown to it.", ""]
    if outputs.get("events"):
        e = outputs["events"]
        lines += [f"Findings: the probability of {' and '.join(k + '-like' for k in e['kinds'])} sounds in each "
                  f"{e['step_s']:.3f} s step of a window, on {e.get('modality', 'any')} recordings; `listen` reports "
                  f"each as a span (hysteresis: on at {e['on']}, off below {e['off']}, at least {e['min_s']} s; chosen "
                  f"on {json.dumps(e.get('hysteresis_chosen_on', 'defaults'))}).", ""]
    lines += ["## Heads", ""]
    for h in meta.get("heads", []):
        op = h.get("operating_point") or {}
        at = (f"threshold {h['threshold']:.4f}: sensitivity {op.get('sensitivity')}, specificity "
              f"{op.get('specificity')} on {op.get('positives', '?')} positive and {op.get('negatives', '?')} negative "
              "validation recordings" if h.get("threshold") is not None else "no threshold chosen")
        screens = f"; screens {h['modality']} recordings" if h.get("modality") else ""
        lines.append(f"- `{h['name']}`: {h.get('meaning', '')} ({at}{screens})")
    lines += ["", "## Data and provenance", ""]
    if card.get("data"):
        lines += ["| dataset | recordings (subjects) used to train | held out for calibration / test | licence |",
                  "|---|---|---|---|"]
        lines += [f"| {d['dataset']} | {d['train']} | {d['held_out']} | {d['licence']} |" for d in card["data"]]
        lines.append("")
    lines += [f"- {k}: {v}" for k, v in prov.items()]
    lines += ["", "## Metrics", ""]
    metrics = dict(meta.get("metrics", {}))
    for name, m in (metrics.pop("heads", None) or {}).items():
        line = (f"- `{name}`: AUROC {m['auroc']:.3f} (95% CI {m['auroc_ci95'][0]:.2f}-{m['auroc_ci95'][1]:.2f}) on "
                f"{m['recordings']} recordings of {m['subjects']} subjects ({m['positives']} positive)")
        if "sensitivity" in m:
            line += (f"; at its threshold sensitivity {m['sensitivity']:.2f} ({m['sensitivity_ci95'][0]:.2f}-"
                     f"{m['sensitivity_ci95'][1]:.2f}), specificity {m['specificity']:.2f} "
                     f"({m['specificity_ci95'][0]:.2f}-{m['specificity_ci95'][1]:.2f})")
        lines.append(line)
    lines += [f"- {k}: {json.dumps(v)}" for k, v in metrics.items()]
    if lines[-1] == "":
        lines.append("- none recorded")
    results = card.get("results")
    if results:  # e.g. the recipe's figures on sites and children it never saw (benchmarks generalization)
        lines += ["", f"## {results['title']}", "", results["note"], "",
                  "| " + " | ".join(results["columns"]) + " |", "|" + "---|" * len(results["columns"])]
        lines += ["| " + " | ".join(map(str, row)) + " |" for row in results["rows"]]
    lines += ["", "## Limitations", "",
              "- Trained and evaluated on few subjects; intervals are wide. Numbers on synthetic audio test the "
              "machinery and are not clinical evidence.",
              "- Microphones, rooms and populations unlike the training data change the scores; check the "
              "operating point on your own validation recordings before any study."]
    lines += [f"- {x}" for x in card.get("limitations", [])]
    lines += ["", "## Files", ""]
    lines += [f"- `{n}`: {f.get('format')} {f.get('precision') or ''}, {f.get('bytes')} bytes, sha256 {f.get('sha256')}"
              for n, f in meta.get("files", {}).items()]
    return "\n".join(lines) + "\n"


__all__ = ["Bundle", "DEFAULT_BUNDLE", "EXAMPLE_RECORDING", "MODEL_FILES", "default_bundle", "PART_FILES", "SCHEMA", "load_bundle", "model_card", "problems", "write_bundle"]
