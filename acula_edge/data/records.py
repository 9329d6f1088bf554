"""The one record format every loader returns, and manifests (JSONL and the generic CSV)."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from acula_edge.errors import AculaError, DatasetError

MODALITIES = ("lung", "heart", "cough", "breath", "speech")
MISSING = "missing"


@dataclass
class Recording:
    """One audio recording with its subject, metadata, labels and optional event annotations.

    ``metadata`` holds facts a report may state (age, sex, site, device, symptoms, ...);
    ``labels`` holds the targets tasks choose by name. ``events`` are time-stamped annotations
    (seconds) such as SPRSound events or ICBHI respiratory cycles.
    """

    id: str
    path: str
    dataset: str
    subject: str
    modality: str
    sample_rate: int = 0
    duration: float = 0.0
    device: str | None = None
    site: str | None = None
    split: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of the record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Recording":
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        if not isinstance(d, dict):
            raise DatasetError("a record must be a JSON object")
        known = set(cls.__dataclass_fields__)
        extra = set(d) - known
        if extra:
            raise DatasetError(f"unknown record fields {sorted(extra)}")
        try:
            return cls(**d)
        except TypeError as e:
            raise DatasetError(f"bad record: {e}") from None

    def label(self, name: str) -> Any:
        """The value of label ``name``, or ``MISSING`` when unlabelled."""
        v = self.labels.get(name)
        return MISSING if v is None or v == "" else v


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(file)`` on a temp file beside ``path``, then rename it over ``path``.

    A crash or Ctrl-C never leaves half a file, and the file gets the usual mode (mkstemp's is 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, see :func:`atomic_write`."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def read_json(path: str | os.PathLike, what: str) -> Any:
    """A JSON file (``what`` names it in errors); missing or unreadable ones are one clear error."""
    path = Path(path)
    if not path.is_file():
        raise AculaError(f"{what} not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise AculaError(f"{path}: not a valid {what} ({e})") from None


def read_jsonl(path: str | os.PathLike, what: str = "JSONL file",
               error: type[AculaError] = DatasetError, tolerate_cut_tail: bool = False) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; anything else is one ``error`` line.

    With ``tolerate_cut_tail`` an unparsable last line without a newline (a write cut by a kill)
    is skipped instead.
    """
    path = Path(path)
    if not path.exists():
        raise error(f"{what} not found: {path}")
    if not path.is_file():
        raise error(f"{what} is not a file: {path}")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                if tolerate_cut_tail and not raw.endswith(b"\n"):
                    return
                raise error(f"{path}:{n}: not a JSON line ({type(e).__name__}); a {what} is JSONL") from None
            if not isinstance(obj, dict):
                raise error(f"{path}:{n}: each line of a {what} must be a JSON object")
            yield n, obj


def write_manifest(records: Iterable[Recording], path: str | os.PathLike) -> None:
    """Write records as JSONL (one record per line), atomically."""
    lines = [json.dumps(r.to_dict(), ensure_ascii=False, sort_keys=True) for r in records]
    atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_manifest(path: str | os.PathLike) -> list[Recording]:
    """Read a JSONL manifest written by :func:`write_manifest` (or a generic CSV by extension).

    Relative audio paths are taken relative to the manifest's folder (and made absolute).
    """
    if Path(path).suffix.lower() == ".csv":
        out = read_csv_manifest(path)
    else:
        base, out = Path(path).resolve().parent, []
        for n, obj in read_jsonl(path, "manifest"):
            try:
                r = Recording.from_dict(obj)
            except DatasetError as e:
                raise DatasetError(f"{path}:{n}: not a manifest line ({e})") from None
            if not Path(r.path).is_absolute():
                r.path = str((base / r.path).resolve())
            out.append(r)
    if not out:  # a CSV with a header and no rows too
        raise DatasetError(f"{path}: the manifest holds no recordings")
    check_unique(out, f"{path}: ", "give each row its own recording or id")
    return out


def check_unique(records: Iterable[Recording], where: str = "", hint: str = "") -> None:
    """Each recording id once: the same recording twice would count twice in every metric."""
    seen: dict[str, str] = {}
    for r in records:
        if r.id in seen:
            raise DatasetError(f"{where}recording {r.id} appears twice ({seen[r.id]} and {r.path})"
                               + (f": {hint}" if hint else ""))
        seen[r.id] = r.path


CSV_RESERVED = ("path", "subject", "split", "modality", "device", "site", "id")


def read_csv_manifest(
    path: str | os.PathLike,
    label_columns: Iterable[str] | None = None,
    modality: str | None = None,
) -> list[Recording]:
    """Read the generic CSV manifest of the contract.

    Column ``path`` (relative to the CSV's folder, or absolute) is required; ``subject``,
    ``split``, ``modality``, ``device``, ``site`` and ``id`` are optional. Every other column is
    metadata, except the label columns: those named in ``label_columns``, else ``label`` and
    columns starting with ``label_``. Sample rate and duration are left 0 (see ``probe``).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"CSV manifest not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            cols = reader.fieldnames or []
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as e:
        raise DatasetError(f"{path}: not a CSV text file ({type(e).__name__})") from None
    if "path" not in cols:
        shown = ", ".join(cols[:8]) or "none"
        raise DatasetError(f"{path}: the CSV needs a 'path' column (has: {shown})")
    if label_columns is None:
        labels = [c for c in cols if c == "label" or c.startswith("label_")]
    else:
        labels = list(label_columns)
        absent = [c for c in labels if c not in cols]
        if absent:
            raise DatasetError(f"{path}: label columns not in the CSV: {', '.join(absent)}")
    out = []
    for i, row in enumerate(rows):
        p = (row.get("path") or "").strip()
        if not p:
            raise DatasetError(f"{path}: row {i + 2} has an empty path")
        audio = Path(p) if Path(p).is_absolute() else path.parent / p
        rid = (row.get("id") or "").strip() or Path(p).with_suffix("").as_posix()
        mod = (row.get("modality") or "").strip() or modality or "unknown"
        meta = {k: parse_cell(v) for k, v in row.items() if k not in CSV_RESERVED and k not in labels and parse_cell(v) is not None}
        out.append(
            Recording(
                id=rid,
                path=str(audio),
                dataset="csv",
                subject=(row.get("subject") or "").strip() or rid,
                modality=mod,
                device=(row.get("device") or "").strip() or None,
                site=(row.get("site") or "").strip() or None,
                split=(row.get("split") or "").strip() or None,
                metadata=meta,
                labels={k: parse_cell(row.get(k)) for k in labels if parse_cell(row.get(k)) is not None},
            )
        )
    return out


def parse_cell(v: str | None) -> Any:
    """A CSV cell as int, float or stripped string; empty and NA-like cells become None."""
    if v is None:
        return None
    v = v.strip()
    if v == "" or v.lower() in ("na", "nan", "n/a", "none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v
