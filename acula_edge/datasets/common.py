"""What the dataset modules share: one CSV reader (:func:`read_csv_rows`), one yes/no cell parser
(:func:`parse_flag`), one search for metadata files beside the audio (:func:`find_metadata_file`),
the ICBHI-style adventitious-sound classes (:func:`adventitious_type`), binary task labels
(:func:`binary_label`) and the zero-shot prompts several datasets ask.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

from acula_edge.data.records import Recording
from acula_edge.errors import DatasetError

# Recording-level classes from crackle and wheeze flags, indexed by crackle + 2 * wheeze (ICBHI, KAUH).
ADVENTITIOUS_TYPES = ("Normal", "Crackle", "Wheeze", "Both")
log = logging.getLogger(__name__)


def find_files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """All files under ``root`` with one of ``suffixes`` (case-insensitive), sorted, hidden ones skipped."""
    suffixes = tuple(s.lower() for s in suffixes)
    return sorted(
        p for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
    )


def require(found: list, what: str, root: Path, why: str | None = None) -> None:
    """Fail with a clear message when a loader found (or kept) nothing.

    Without ``why`` the message asks whether ``root`` is the right folder; with it (e.g. after
    every file was filtered out) the message says ``why`` instead.
    """
    if not found:
        hint = why or "is this the right folder and --format?"
        raise DatasetError(f"no {what} found under {root}: {hint}")


def _decode(path: Path) -> str:
    """The text of ``path``: UTF-8 (a BOM is dropped), else Latin-1 with a warning."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the file ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.warning("%s is not UTF-8; reading it as Latin-1 (Windows-1252 text such as 'é' reads correctly)",
                    path)
        return data.decode("latin-1")


def _csv_error(path: Path, e: csv.Error) -> DatasetError:
    first = (str(e).splitlines() or [type(e).__name__])[0]
    return DatasetError(f"{path}: not a readable CSV file ({first})")


def read_csv_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The column names and the rows (as dicts) of a CSV file with a header line.

    Reads UTF-8 (with or without a BOM) and falls back to Latin-1, with a logged warning, for
    files written in a legacy encoding. Unreadable or malformed files raise :class:`DatasetError`
    with one line naming the file. Rows are :class:`csv.DictReader` rows: blank lines are
    skipped, short rows are padded with None, extra cells go under the key None.
    """
    path = Path(path)
    text = _decode(path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    except csv.Error as e:
        raise _csv_error(path, e) from None
    return columns, rows


def read_csv_lists(path: Path) -> list[list[str]]:
    """The rows of a CSV file without a header line (e.g. PhysioNet's ``REFERENCE.csv``), blank rows dropped.

    Same decoding and errors as :func:`read_csv_rows`.
    """
    path = Path(path)
    text = _decode(path)
    try:
        return [row for row in csv.reader(io.StringIO(text, newline="")) if row]
    except csv.Error as e:
        raise _csv_error(path, e) from None


def parse_flag(v: Any) -> bool | None:
    """A yes/no cell as bool: true/yes/y/1 and false/no/n/0 (any case); anything else (empty, NA) as None."""
    s = str(v).strip().lower() if v is not None else ""
    if s in ("true", "yes", "y", "1"):
        return True
    if s in ("false", "no", "n", "0"):
        return False
    return None


def find_metadata_file(root: Path, names: Iterable[str], nearby: Iterable[Path] = ()) -> Path | None:
    """The metadata file named one of ``names`` (any case) in ``root``, its parent, or ``nearby`` folders.

    Names are tried in order (an earlier name wins over a later one anywhere); for each name the
    folders are searched in the order ``root``, ``root.parent``, then ``nearby`` (e.g. the folders
    around the audio files), without duplicates. None when no folder has one.
    """
    folders = [f for f in dict.fromkeys([root, root.parent, *nearby]) if f.is_dir()]
    listings: dict[Path, dict[str, list[Path]]] = {}

    def listing(folder: Path) -> dict[str, list[Path]]:
        if folder not in listings:
            found: dict[str, list[Path]] = {}
            for p in sorted(folder.iterdir()):
                found.setdefault(p.name.lower(), []).append(p)
            listings[folder] = found
        return listings[folder]

    for name in names:
        for folder in folders:
            exact = folder / name
            if exact.is_file():
                return exact
            p = next((p for p in listing(folder).get(name.lower(), []) if p.is_file()), None)
            if p is not None:
                return p
    return None


def adventitious_type(crackle: int, wheeze: int) -> str:
    """The recording-level class Normal, Crackle, Wheeze or Both from 0/1 crackle and wheeze flags."""
    if crackle not in (0, 1) or wheeze not in (0, 1):
        raise ValueError(f"crackle and wheeze must be 0 or 1, got {crackle!r} and {wheeze!r}")
    return ADVENTITIOUS_TYPES[int(crackle) + 2 * int(wheeze)]


def binary(value: Any, positive: set, negative: set) -> int | None:
    """1 for a value in ``positive``, 0 for one in ``negative``, else None (left out of the task)."""
    return 1 if value in positive else 0 if value in negative else None


def binary_label(name: str, positive: set = frozenset({1}),
                 negative: set = frozenset({0})) -> Callable[[Recording], int | None]:
    """A task's label function: the record's label ``name`` as 1 (``positive``), 0 (``negative``) or None."""
    return lambda r: binary(r.labels.get(name), positive, negative)


#: Zero-shot questions in the words of the clinical reports (acula_edge.reports): normal answer first.
LUNG_PROMPTS = ("Lung auscultation. Normal lung sounds with no adventitious sounds.",
                "Lung auscultation. Adventitious sounds are heard: wheezes or crackles.")
HEART_PROMPTS = ("Phonocardiogram. The heart sounds were classified as normal.",
                 "Phonocardiogram. The heart sounds were classified as abnormal.")
COUGH_PROMPTS = ("Cough recording. The cough sounds dry.", "Cough recording. The cough sounds wet.")
