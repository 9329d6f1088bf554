"""Clinical reports written from each recording's metadata (the text side of alignment).

``make_report(record)`` gives a 2–3 sentence report that states only the record's facts;
``python -m acula_edge.reports`` writes a report store for a whole dataset.
"""

from __future__ import annotations

from acula_edge.data.records import Recording
from acula_edge.reports.facts import Fact, extract_facts, list_fields
from acula_edge.reports.guard import Verdict, check
from acula_edge.reports.templates import REGISTERS, render

TEMPLATE_VERSION = "templates-2"

__all__ = ["Fact", "REGISTERS", "TEMPLATE_VERSION", "Verdict", "check", "extract_facts", "list_fields",
           "make_report", "render"]


def make_report(record: Recording, seed: int = 0, register: str = "clinical", withhold: tuple[str, ...] = (),
                phrases: dict[str, str] | None = None) -> str:
    """The template report of ``record``; ``seed`` varies the wording deterministically."""
    return render(extract_facts(record, withhold, phrases), register, seed, record.id, phrases)
