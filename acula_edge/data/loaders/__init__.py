"""Loaders for each dataset's native layout, chosen by name: ``load("sprsound", root)``.

Also the helpers every loader shares: one CSV reader (:func:`read_csv_rows`), one yes/no cell
parser (:func:`parse_flag`), one search for metadata files beside the audio
(:func:`find_metadata_file`) and the ICBHI-style adventitious-sound classes
(:func:`adventitious_type`).
"""

from __future__ import annotations

import csv
import functools
import importlib
import inspect
import io
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

from acula_edge.data.records import Recording
from acula_edge.errors import AudioError, DatasetError
from acula_edge.registry import check_options

Loader = Callable[..., list[Recording]]
_LOADERS: dict[str, Loader] = {}
_MODULES = {
    "sprsound": "sprsound",
    "physionet2016": "physionet2016",
    "icbhi": "icbhi",
    "circor": "circor",
    "coswara": "coswara",
    "coughvid": "coughvid",
    "kauh": "kauh",
    "csv": "generic_csv",
    "synthetic": "synthetic",
}
# Recording-level classes from crackle and wheeze flags, indexed by crackle + 2 * wheeze (ICBHI, KAUH).
ADVENTITIOUS_TYPES = ("Normal", "Crackle", "Wheeze", "Both")
log = logging.getLogger(__name__)


def register_loader(name: str) -> Callable[[Loader], Loader]:
    """Register ``fn(root, *, option=default, ...) -> list[Recording]`` under ``name``.

    The registered loader takes exactly the keyword options ``fn`` declares after ``root``: any
    other option is a :class:`DatasetError` (``format X does not take option(s) ...``), so a
    misspelt or misplaced option never passes silently. ``root`` is turned into a ``Path``. The
    registered function's ``options`` attribute names the options it takes.
    """

    def deco(fn: Loader) -> Loader:
        params = list(inspect.signature(fn).parameters.values())[1:]  # after root
        if any(p.kind is p.VAR_KEYWORD for p in params):
            raise TypeError(f"loader {name!r} must declare its options, not take **kwargs")
        accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]

        @functools.wraps(fn)
        def loader(root: str | Path, **options: Any) -> list[Recording]:
            check_options(fn, options, f"format {name}", DatasetError, skip=1)
            return fn(Path(root), **options)

        loader.options = tuple(accepted)  # type: ignore[attr-defined]
        _LOADERS[name] = loader
        return loader

    return deco


def list_formats() -> list[str]:
    """Names of the dataset formats the loaders understand."""
    return list(_MODULES)


def get_loader(name: str) -> Loader:
    """The loader registered under ``name``."""
    if name not in _MODULES:
        raise DatasetError(f"unknown dataset format {name!r}; choose one of: {', '.join(_MODULES)}")
    if name not in _LOADERS:
        importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return _LOADERS[name]


def load(name: str, root: str | Path, probe_audio: bool = True, **options) -> list[Recording]:
    """Load the dataset at ``root`` in format ``name``; fill sample rate and duration from headers."""
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset path not found: {root}")
    records = get_loader(name)(root, **options)
    seen: dict[str, str] = {}
    for r in records:
        if r.id in seen:
            raise DatasetError(f"recording {r.id} appears twice ({seen[r.id]} and {r.path}): "
                               "does the folder hold two copies of a release?")
        seen[r.id] = r.path
    if probe_audio:
        probe(records)
    return records


def probe(records: list[Recording]) -> None:
    """Fill ``sample_rate`` and ``duration`` of records that lack them, from the audio headers."""
    from acula_edge.device.audio import info

    for r in records:
        if r.sample_rate and r.duration:
            continue
        try:
            i = info(r.path)
        except AudioError as e:
            raise DatasetError(f"recording {r.id}: {e}") from None
        r.sample_rate, r.duration = i.sample_rate, i.duration


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
