"""The benchmark's results as Markdown tables and matplotlib plots, and the published reference rows.

    python -m benchmarks.report benchmarks/results/suite/results.json   # render results.md and the plots again
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: published figures of related models, not measured here (no AUROC or latency on these tasks)
REFERENCES = [
    {"model": "OPERA-GT", "parameters": 21_000_000, "macs_per_s": None,
     "source": "Zhang et al. 2024, OPERA respiratory foundation models (about 21M parameters)"},
    {"model": "YAMNet", "parameters": 3_700_000, "macs_per_s": round(69.2e6 / 0.96),
     "source": "YAMNet model card: 3.7M weights, 69.2M multiplies per 0.96 s frame"},
    {"model": "EfficientAT mn04", "parameters": 980_000, "macs_per_s": round(0.11e9 / 10),
     "source": "Schmid et al. 2023, EfficientAT: 0.98M parameters, 0.11 GMACs per 10 s"},
]


def _f(x: Any, fmt: str = "{:.3f}") -> str:
    return "–" if x is None else fmt.format(x)


def _auroc(cell: dict[str, Any] | None) -> str:
    if not cell or cell.get("auroc") is None:
        return "–"
    lo, hi = cell["ci95"]
    text = f"{cell['auroc']:.3f} [{lo:.2f}, {hi:.2f}]"
    return text + (f" ({cell['not_scored']} gated)" if cell.get("not_scored") else "")


def markdown(doc: dict[str, Any]) -> str:
    """The whole report: data, accuracy, cost and speed, int8 against fp32, scaling, references."""
    v_all, tasks, cores = doc["variants"], list(doc["tasks"]), doc["threads_all"]
    ref = doc.get("reference") or {}  # results from before the reference row have none
    lines = [f"# Benchmark: every variant of `{doc['student']}` on {doc['machine']['cpu_model']}", ""]
    if doc["quick"]:
        lines += ["**Quick run** (`--quick`): a subset of the test subjects and few timed calls; it checks the "
                  "harness and is not for quoting.", ""]
    lines += [f"Made by `{doc['command']}` in {doc['seconds'] / 60:.1f} min on {doc['machine']['logical_cores']} "
              f"logical cores ({doc['machine']['platform']}). Versions: "
              + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()) + ".", "",
              f"Window {doc['window_s']} s at {doc['sample_rate']} Hz, hop {doc['hop_s']} s. Test recordings are of "
              "subjects that neither the student nor the teacher was trained on; intervals are 95% subject-bootstrap "
              "intervals. *Offline*: each recording's windows, the head's probabilities averaged. *Streaming*: the "
              "recording through `listen`'s loop (its own sample rate, streaming resampler, signal-quality gate; "
              "gated windows get no score). The teacher's heads are logistic regressions on its aligned embedding, "
              "fitted on the student's training subjects.", "",
              "| task | test recordings | subjects | positives | negatives | teacher head fitted on |",
              "|---|---|---|---|---|---|"]
    for t, d in doc["tasks"].items():
        th = d.get("teacher_head") or {}
        fit = (f"{th['recordings']} recordings of {th['subjects']} subjects (L2 {th['l2']:g})" if "recordings" in th
               else th.get("missing", "–"))
        lines.append(f"| {t}{' (synthetic)' if d['synthetic'] else ''} | {d['test']['recordings']} | "
                     f"{d['test']['subjects']} | {d['test']['positives']} | {d['test']['negatives']} | {fit} |")
    if any(d["synthetic"] for d in doc["tasks"].values()):
        lines += ["", "Synthetic tasks run on generated audio: they test the machinery, not clinical value."]
    lines += ["", "## AUROC", "", "| variant | " + " | ".join(f"{t} offline | {t} streaming" for t in tasks) + " |",
              "|---|" + "---|---|" * len(tasks)]
    for v in v_all:
        lines.append(f"| {v['label']} | " + " | ".join(
            f"{_auroc(v['accuracy'][t].get('offline'))} | {_auroc(v['accuracy'][t].get('streaming'))}" for t in tasks) + " |")
    tb = [str(b) for b in doc["settings"]["throughput_batches"]]
    lines += ["", "## Cost and speed", "",
              "Latency per window at batch 1 (medians and 95th percentiles of many calls after warm-up, one process "
              "per measurement); throughput in windows per second on all cores; real-time factor = one-thread median "
              "/ hop; peak resident memory of a process running the variant on one thread, and in brackets that process "
              "after importing its runtime, before loading the model. KiB: the files that ship; for the torch rows, the "
              "checkpoint file (the teacher's holds its encoder and both projections). The front end's MACs count its "
              "DFT as the exported graphs compute it (a matrix product); torch runs the same front end.", "",
              f"| variant | parameters | M MACs/s network + front end | KiB | peak RSS MiB (runtime alone) | p50 / p95 ms, 1 thread | "
              f"ms per s of audio, 1 thread | x faster than {ref.get('encoder', 'the reference')} | "
              f"p50 / p95 ms, {cores} threads | windows/s at batch {' / '.join(tb)} | real-time factor |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in v_all:
        c, l1, la = v["cost"], v["latency"]["threads_1"], v["latency"]["threads_all"]
        lines.append(f"| {v['label']} | {c['parameters']:,} | {c['macs_per_s'] / 1e6:.2f} + "
                     f"{c['frontend_macs_per_s'] / 1e6:.1f} | {c['bytes'] / 1024:.0f} | "
                     f"{_f(v['memory'].get('peak_rss_mib'), '{:.0f}')} ({_f(v['memory'].get('runtime_rss_mib'), '{:.0f}')}) | "
                     f"{_f(l1.get('p50_ms'), '{:.2f}')} / "
                     f"{_f(l1.get('p95_ms'), '{:.2f}')} | {_f(v.get('ms_per_s'), '{:.4f}')} | "
                     f"{_f(v.get('speedup_vs_reference'), '{:.0f}')} | "
                     f"{_f(la.get('p50_ms'), '{:.2f}')} / {_f(la.get('p95_ms'), '{:.2f}')} | "
                     + " / ".join(_f(v["throughput"].get(b), "{:.0f}") for b in tb)
                     + f" | {_f(v.get('real_time_factor'), '{:.4f}')} |")
    if ref.get("ms_per_s"):
        lines.append(f"| reference: {ref['encoder']} encoder ({ref['framework']}, {ref['weights']}, {ref['window_s']} s "
                     f"window) | | | | | {ref['p50_ms']:.1f} | {ref['ms_per_s']:.2f} | 1 | | | |")
    elif ref:
        lines.append(f"- not measured: the reference {ref.get('encoder')}: {ref.get('missing')}")
    missing = [(v["label"], k, m) for v in v_all for k, m in (v.get("missing") or {}).items()]
    lines += [f"- not measured: {label} ({k}): {m}" for label, k, m in missing]
    lines += ["", "## int8 against fp32 (same run)", "",
              "AUROC change of each int8 file against the fp32 file of its format (paired subject bootstrap interval), "
              "and its speed-up (fp32 median / int8 median) and size ratio.", "",
              "| int8 variant | quantizer | against | " + " | ".join(f"{t} ΔAUROC offline | {t} ΔAUROC streaming"
                                                             for t in tasks)
              + f" | speed-up 1 thread | speed-up {cores} threads | fp32 / int8 size |",
              "|---|---|---|" + "---|---|" * len(tasks) + "---|---|---|"]
    labels = {v["name"]: v["label"] for v in v_all}
    for row in doc["int8"]:
        cells = []
        for t in tasks:
            for mode in ("offline", "streaming"):
                c = row["tasks"][t].get(mode)
                cells.append("–" if not c else f"{c['delta_auroc']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]")
        lines.append(f"| {labels[row['variant']]} | {row['int8_by'] or '–'} | {labels[row['fp32']]} | "
                     + " | ".join(cells) + f" | {_f(row['speedup_1_thread'], '{:.2f}×')} | "
                     f"{_f(row['speedup_all_cores'], '{:.2f}×')} | {row['size_ratio']:.2f}× |")
    g = doc["scaling"]
    lines += ["", "## Scaling (one thread)", "",
              "Median latency of one window (ms) and peak resident memory (MiB) against window length; the ONNX rows "
              "re-export the student at each length.", ""]
    names = [n for n in g["window"] if g["window"][n]]
    if names:
        ws = [p["window_s"] for p in g["window"][names[0]]]
        lines += ["| variant | " + " | ".join(f"{w:g} s" for w in ws) + " |", "|---|" + "---|" * len(ws)]
        lines += [f"| {labels[n]} | " + " | ".join(f"{_f(p['p50_ms'], '{:.2f}')} ms, {_f(p.get('peak_rss_mib'), '{:.0f}')} MiB"
                                                  for p in g["window"][n]) + " |" for n in names]
        bs = [p["batch"] for p in g["batch"][names[0]]]
        lines += ["", "Per-window time (batch median / batch, ms) and peak memory against batch size, at the bundle's "
                  "window:", "", "| variant | " + " | ".join(f"batch {b}" for b in bs) + " |", "|---|" + "---|" * len(bs)]
        lines += [f"| {labels[n]} | " + " | ".join(
            f"{_f(None if p['p50_ms'] is None else p['p50_ms'] / p['batch'], '{:.2f}')} ms, "
            f"{_f(p.get('peak_rss_mib'), '{:.0f}')} MiB" for p in g["batch"][n]) + " |" for n in names]
    if g.get("not_in_grid"):
        lines += ["", "Not in the grid: " + ", ".join(labels[n] for n in g["not_in_grid"]) + " ("
                  + next(iter(g["not_in_grid"].values())) + ")."]
    lines += ["", "## Published figures (not measured here)", "",
              "| model | parameters | M MACs per s of audio | source |", "|---|---|---|---|"]
    for r in doc["references"]:
        lines.append(f"| {r['model']} | {r['parameters'] / 1e6:.2f}M | {_f(r['macs_per_s'] and r['macs_per_s'] / 1e6, '{:.1f}')}"
                     f" | {r['source']} |")
    lines += ["", "![AUROC against latency](pareto.png)", "", "![latency and memory against window length and batch size]"
              "(scaling.png)", ""]
    return "\n".join(lines)


def _save(fig, path: Path) -> None:
    """Save a figure atomically (a temp file, then a rename)."""
    tmp = path.with_name(f".{path.name}.part")
    fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")
    os.replace(tmp, path)


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both lower x and higher y, by increasing x."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def plots(doc: dict[str, Any], out: Path) -> list[Path]:
    """``pareto.png`` (offline AUROC against one-thread latency, marker area by bytes, one panel per
    task) and ``scaling.png`` (latency and memory against window length and batch size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(doc["tasks"])
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.2 * len(tasks), 4.8), squeeze=False)
    colours = {v["name"]: f"C{i % 10}" for i, v in enumerate(doc["variants"])}
    biggest = max(w["cost"]["bytes"] for w in doc["variants"])
    for ax, t in zip(axes[0], tasks):
        pts = []
        for v in doc["variants"]:
            x, acc = v["latency"]["threads_1"].get("p50_ms"), v["accuracy"][t]["offline"]
            if x is None or acc.get("auroc") is None:
                continue
            ax.errorbar(x, acc["auroc"], yerr=[[acc["auroc"] - acc["ci95"][0]], [acc["ci95"][1] - acc["auroc"]]],
                        fmt="none", ecolor=colours[v["name"]], alpha=0.35, lw=1, zorder=1)
            ax.scatter(x, acc["auroc"], s=30 + 400 * v["cost"]["bytes"] / biggest, color=colours[v["name"]], alpha=0.75,
                       edgecolors="k", linewidths=0.5, zorder=2, label=v["label"])
            pts.append((x, acc["auroc"]))
        front = pareto_front(pts)
        if len(front) > 1:
            ax.step([pts[i][0] for i in front], [pts[i][1] for i in front], where="post", color="k", lw=0.8, ls="--",
                    label="Pareto front", zorder=0)
        if pts and max(p[0] for p in pts) > 10 * min(p[0] for p in pts):
            ax.set_xscale("log")
        ax.set_xlabel("latency per window, ms (median, batch 1, 1 thread)")
        ax.set_ylabel("AUROC, offline (95% interval)")
        ax.set_title(f"{t}{' (synthetic)' if doc['tasks'][t]['synthetic'] else ''}", fontsize=9)
        ax.grid(alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=3, fontsize=7, markerscale=0.5, frameon=False,
               bbox_to_anchor=(0.5, -0.12), title="marker area: bytes shipped", title_fontsize=7)
    saved = [out / "pareto.png"]
    _save(fig, saved[0])
    plt.close(fig)

    g, labels = doc["scaling"], {v["name"]: v["label"] for v in doc["variants"]}
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for name in g["window"]:
        for row, key in ((0, "p50_ms"), (1, "peak_rss_mib")):
            pw = [p for p in g["window"][name] if p.get(key) is not None]
            axes[row][0].plot([p["window_s"] for p in pw], [p[key] for p in pw], "o-", color=colours[name],
                              label=labels[name])
            pb = [p for p in g["batch"][name] if p.get(key) is not None]
            ys = [p[key] / p["batch"] if key == "p50_ms" else p[key] for p in pb]
            axes[row][1].plot([p["batch"] for p in pb], ys, "o-", color=colours[name], label=labels[name])
    ticks = {0: sorted({p["window_s"] for ps in g["window"].values() for p in ps}),
             1: sorted({p["batch"] for ps in g["batch"].values() for p in ps})}
    for (r, c), ylabel in {(0, 0): "latency per window, ms (median, 1 thread)", (1, 0): "peak resident memory, MiB",
                           (0, 1): "time per window, ms (batch median / batch)",
                           (1, 1): "peak resident memory, MiB (batches up to this size)"}.items():
        ax = axes[r][c]
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks[c], [f"{t:g}" for t in ticks[c]])
        ax.minorticks_off()
        ax.set(xlabel="window length, s" if c == 0 else "batch size (bundle window)", ylabel=ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{doc['student']} on {doc['machine']['cpu_model']}", fontsize=9)
    saved.append(out / "scaling.png")
    _save(fig, saved[1])
    plt.close(fig)
    return saved


def write_report(doc: dict[str, Any], out: Path, module: str, argv: list[str]) -> dict[str, Any]:
    """``results.json`` (with the command), ``results.md`` and the plots, each written atomically."""
    from acula_edge.data.records import atomic_write_text
    from benchmarks.common import save_result

    doc = save_result(doc, str(out / "results.json"), module, argv, echo=False)
    atomic_write_text(out / "results.md", markdown(doc))
    plots(doc, out)
    print(f"results in {out}/: results.json, results.md, pareto.png, scaling.png")
    return doc


__all__ = ["REFERENCES", "main", "markdown", "pareto_front", "plots", "write_report"]


def main(argv: list[str] | None = None) -> int:
    """Render ``results.md`` and the plots again from a ``results.json``."""
    import json
    import sys

    from acula_edge.data.records import atomic_write_text

    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 1 or not Path(argv[0]).is_file():
        print("usage: python -m benchmarks.report RESULTS.json (from python -m benchmarks run)", file=sys.stderr)
        return 2
    path = Path(argv[0])
    doc = json.loads(path.read_text())
    atomic_write_text(path.with_name("results.md"), markdown(doc))
    plots(doc, path.parent)
    print(f"rendered {path.with_name('results.md')}, pareto.png and scaling.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

