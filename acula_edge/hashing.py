"""sha256 of files and folders, with one memo: a file is read again only when its size or times change.

The memo lives in this process and, for large files read by many runs (text models, teacher
checkpoints), in a small JSON file beside the embedding cache (:func:`memo_path`), so that a
multi-GB model is hashed once, not on every run. A file is known by its resolved path, size,
mtime and ctime: any write changes them (ctime cannot be set back), so a changed file is hashed
again. Standard library only: the device side checks bundles with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Sequence

MEMO_NAME = "file-hashes.json"
_MEMO_MAX_ENTRIES = 2000
_memo: dict[tuple[str, int, int, int], str] = {}  # this process's: (path, size, mtime_ns, ctime_ns) -> sha256


def memo_path() -> Path:
    """``$XDG_CACHE_HOME/acula-edge/file-hashes.json``, else under ``~/.cache``: the memo kept between runs."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "acula-edge" / MEMO_NAME


def _read(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return {}  # missing, unreadable or damaged: hash again
    return data if isinstance(data, dict) else {}


def _write(path: Path, memo: dict[str, dict[str, Any]]) -> None:
    """Write the memo atomically; an unwritable location only costs hashing again next time."""
    if len(memo) > _MEMO_MAX_ENTRIES:  # keep it small: drop the oldest entries (insertion order)
        memo = dict(list(memo.items())[-_MEMO_MAX_ENTRIES:])
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(memo, indent=0, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _read_bytes(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_digests(files: Sequence[str | os.PathLike], persistent: bool = False) -> dict[Path, str]:
    """sha256 (hex) of each file's bytes, from the memo where the file is unchanged; ``persistent``
    also keeps them in :func:`memo_path` for later runs (for large files)."""
    out: dict[Path, str] = {}
    stored: dict[str, dict[str, Any]] | None = None
    dirty = False
    for f in map(Path, files):
        real = f.resolve()
        st = real.stat()
        key = (str(real), st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        digest = _memo.get(key)
        if digest is None and persistent:
            if stored is None:
                stored = _read(memo_path())
            e = stored.get(key[0])
            if (isinstance(e, dict) and (e.get("size"), e.get("mtime_ns"), e.get("ctime_ns")) == key[1:]
                    and isinstance(e.get("sha256"), str) and re.fullmatch(r"[0-9a-f]{64}", e["sha256"])):
                digest = e["sha256"]
        if digest is None:
            digest = _read_bytes(real)
            if persistent and stored is not None:
                stored.pop(key[0], None)  # re-insert last: the newest entries survive trimming
                stored[key[0]] = {"size": key[1], "mtime_ns": key[2], "ctime_ns": key[3], "sha256": digest}
                dirty = True
        _memo[key] = digest
        out[f] = digest
    if dirty and stored is not None:
        _write(memo_path(), stored)
    return out


def sha256_file(path: str | os.PathLike, persistent: bool = False) -> str:
    """sha256 (hex) of one file's bytes (see :func:`file_digests`)."""
    return file_digests([path], persistent)[Path(path)]


def path_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, or of a folder's relative paths and file digests; ``missing`` if absent."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        h = hashlib.sha256()
        for p in sorted(q for q in path.rglob("*") if q.is_file()):
            h.update(f"{p.relative_to(path).as_posix()}\0{sha256_file(p)}\n".encode())
        return h.hexdigest()
    return "missing"


__all__ = ["file_digests", "memo_path", "path_digest", "sha256_file"]
