"""The report store: JSONL, one report per recording, safe to interrupt and cheap to rerun.

Finished reports are appended to ``<out>.partial`` as they are made (a killed run keeps them);
:meth:`ReportStore.finish` merges everything into ``<out>`` through a temp file and a rename.
An entry is redone only when the facts, the options or the requested generator changed.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from acula_edge.data.records import atomic_write_text, read_jsonl
from acula_edge.errors import AculaError
from acula_edge.reports.facts import Fact


@dataclass
class ReportEntry:
    """One stored report."""

    id: str
    text: str
    generator: str  # "template" or "model:<name>"
    generator_version: str
    metadata_hash: str
    requested: str = "template"  # what the run asked for (a rejected model output falls back to template)
    register: str = "clinical"
    seed: int = 0
    withheld: list[str] = field(default_factory=list)
    facts: list[list[Any]] = field(default_factory=list)
    guard: list[str] = field(default_factory=list)  # the guard's reasons when a model output was rejected


def metadata_hash(facts: list[Fact], **options: Any) -> str:
    """A hash of the facts used and the options that shape the text."""
    blob = json.dumps({"facts": [f.as_json() for f in facts], **options}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_reports(path: str | os.PathLike) -> list[ReportEntry]:
    """Read a report store (or its ``.partial`` journal); a bad line is a one-line error."""
    out = []
    for n, d in read_jsonl(path, "report file", AculaError, tolerate_cut_tail=str(path).endswith(".partial")):
        try:
            out.append(ReportEntry(**d))
        except TypeError:
            raise AculaError(f"{path}:{n}: not a report line (fields: {', '.join(sorted(d))})") from None
    return out


class ReportStore:
    """Existing reports of ``path`` (and its journal), new ones, and the final atomic write."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.journal = self.path.with_name(self.path.name + ".partial")
        self.entries: dict[str, ReportEntry] = {}
        for p in (self.path, self.journal):
            if p.exists():
                self.entries.update({e.id: e for e in read_reports(p)})
        self._fh = None

    def current(self, rid: str, mhash: str, requested: str) -> ReportEntry | None:
        """The stored entry for ``rid`` if it is up to date, else None."""
        e = self.entries.get(rid)
        return e if e is not None and e.metadata_hash == mhash and e.requested == requested else None

    def add(self, entry: ReportEntry) -> None:
        """Keep ``entry`` and append it to the journal at once."""
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if self.journal.exists():  # a kill may have cut the last line: drop the fragment first
                data = self.journal.read_bytes()
                self.journal.write_bytes(data[: data.rfind(b"\n") + 1])
            self._fh = open(self.journal, "a", encoding="utf-8")
        self._fh.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
        self._fh.flush()
        self.entries[entry.id] = entry

    def finish(self, order: Iterable[str]) -> list[ReportEntry]:
        """Write the entries of ``order`` (the current recordings) to ``path`` atomically; drop the journal.

        With nothing stored at all (a run that failed before its first report) no file is written.
        """
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        kept = [self.entries[i] for i in order if i in self.entries]
        if not kept and not self.path.exists():
            return kept
        atomic_write_text(self.path, "".join(json.dumps(asdict(e), ensure_ascii=False) + "\n" for e in kept))
        self.journal.unlink(missing_ok=True)
        return kept
