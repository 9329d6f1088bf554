"""Summaries of a set of recordings: counts of subjects, duration, rates, splits and labels."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from acula_edge.data.records import MISSING, Recording


def summarize(records: list[Recording]) -> dict[str, Any]:
    """Counts of recordings, subjects, duration, sample rates, modalities, splits and label values.

    Categorical labels map each value (and ``"missing"``) to a count; real-valued labels such as
    a heart rate get ``n``, ``min``, ``mean``, ``max`` and ``missing`` instead.
    """
    names = sorted({k for r in records for k in r.labels})
    labels: dict[str, dict[str, Any]] = {}
    for n in names:
        values = [r.label(n) for r in records]
        present = [v for v in values if v != MISSING]
        if present and all(isinstance(v, float) for v in present):
            arr = np.asarray(present, dtype=np.float64)
            labels[n] = {"n": arr.size, "min": round(float(arr.min()), 3), "mean": round(float(arr.mean()), 3),
                         "max": round(float(arr.max()), 3), MISSING: len(values) - arr.size}
        else:
            labels[n] = dict(Counter(str(v) for v in values).most_common())
    rates = Counter(r.sample_rate for r in records)
    return {
        "recordings": len(records),
        "subjects": len({r.subject for r in records}),
        "total_duration_s": round(sum(r.duration for r in records), 3),
        "sample_rates": {str(k): v for k, v in sorted(rates.items())},
        "modalities": dict(Counter(r.modality for r in records).most_common()),
        "splits": dict(Counter(r.split or MISSING for r in records).most_common()),
        "labels": labels,
    }


def print_summary(s: dict[str, Any], where: str) -> None:
    """Print a summary from :func:`summarize` as a few readable lines."""
    print(f"{where}: {s['recordings']} recordings from {s['subjects']} subjects, "
          f"{s['total_duration_s'] / 3600:.2f} h")
    print("  sample rates: " + ", ".join(f"{k} Hz x{v}" for k, v in s["sample_rates"].items()))
    print("  modalities:   " + ", ".join(f"{k} {v}" for k, v in s["modalities"].items()))
    print("  splits:       " + ", ".join(f"{k} {v}" for k, v in s["splits"].items()))
    for name, counts in s["labels"].items():
        print(f"  label {name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
