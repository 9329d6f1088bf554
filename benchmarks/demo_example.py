"""``python -m benchmarks.demo_example``: how a bundle's lung head sees ``make demo``'s example next
to real recordings it never trained on.

    python -m benchmarks.demo_example --manifest runs/demo/data/test.jsonl \\
        [--bundle acula_edge/default_bundle] [--head sprsound-adventitious] [--task TASK=HEAD] \\
        [--out benchmarks/results/demo_example]

For the manifest's recordings that the head's task labels (``--task`` maps another task, as in
``export verify``): each class's recording scores (window probabilities averaged, as the head's
threshold was chosen) with their 10th, 50th and 90th percentiles, and the share of each class at or
above the head's threshold. For the packaged example: each half's window scores and where the
normal half's mean falls among the real negatives. And the spectra: each class's median level per
band and the example halves', after RMS normalisation (dB, the bundle's sample rate), which shows
how far the synthetic example is from what the head learnt.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np

from acula_edge.cli import Parser, describe, guarded
from acula_edge.errors import AculaError

BANDS = (0, 100, 200, 400, 800, 1200, 1600, 2000)  # Hz


def band_levels(x: np.ndarray, rate: int, bands: Sequence[float] = BANDS, n: int = 512) -> list[float]:
    """Mean power (dB) of RMS-normalised ``x`` in each band: Hann-windowed periodograms of ``n``
    samples, half overlapping, averaged."""
    x = np.asarray(x, np.float64)
    x = x / max(float(np.sqrt(np.mean(x ** 2))), 1e-12)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, max(0, n - len(x)))), n)[::n // 2]
    power = (np.abs(np.fft.rfft(frames * np.hanning(n), axis=1)) ** 2).mean(0)
    f = np.fft.rfftfreq(n, 1 / rate)
    return [round(10 * float(np.log10(power[(f >= lo) & (f < hi)].mean() + 1e-20)), 1)
            for lo, hi in zip(bands, bands[1:]) if hi <= rate / 2]


def measure(manifest: str, bundle_path: str, head: str, tasks: Sequence[str] = ()) -> dict[str, Any]:
    """The head's scores and band levels on the manifest's labelled recordings and on the example."""
    from acula_edge.data.records import read_manifest
    from acula_edge.data.tasks import head_tasks
    from acula_edge.demo import EXAMPLE_CLIPS, example_audio
    from acula_edge.device.audio import load, resample
    from acula_edge.device.bundle import load_bundle
    from acula_edge.device.runtime import load_model
    from acula_edge.device.windows import cut_windows
    from export.verify import labels_of

    b = load_bundle(bundle_path)
    names = [h["name"] for h in b.heads]
    if head not in names:
        raise AculaError(f"--head {head}: the bundle's heads are {', '.join(names)}")
    j = names.index(head)
    threshold = float(b.heads[j]["threshold"])
    model = load_model(b, "onnx", "fp32")
    hop = max(1, int(round(b.meta["hop_s"] * b.sample_rate)))
    records = read_manifest(manifest)
    y = labels_of(records, b.heads, head_tasks(tasks, names))[:, j]
    kept = [(r, int(v)) for r, v in zip(records, y) if np.isfinite(v)]
    if len({v for _, v in kept}) < 2:
        raise AculaError(f"{manifest}: its recordings do not label both classes of {head} (map a task with --task)")
    classes: dict[int, dict[str, list]] = {0: {"scores": [], "bands": []}, 1: {"scores": [], "bands": []}}
    for r, v in kept:
        x = load(r.path, sample_rate=b.sample_rate)[0]
        classes[v]["scores"].append(float(model.run(cut_windows(x, b.window_samples, hop)[1])["scores"][:, j].mean()))
        classes[v]["bands"].append(band_levels(x, b.sample_rate))
    audio, rate = example_audio()
    x = resample(audio, rate, b.sample_rate)
    half = len(x) // 2
    example = {}
    for (clip, what), part in zip(EXAMPLE_CLIPS.items(), (x[:half], x[half:])):
        scores = model.run(cut_windows(part, b.window_samples, hop)[1])["scores"][:, j]
        example[what] = {"clip": clip, "window_scores": [round(float(s), 3) for s in scores],
                         "mean": round(float(scores.mean()), 3), "bands_db": band_levels(part, b.sample_rate)}
    negatives = np.array(classes[0]["scores"])
    first = next(iter(example.values()))
    return {
        "bundle": str(b.path), "head": head, "threshold": round(threshold, 4), "manifest": manifest, "model": model.file,
        "bands_hz": list(BANDS[:len(first["bands_db"]) + 1]),
        "real": {("negative" if v == 0 else "positive"): {
            "recordings": len(c["scores"]),
            "score_p10_p50_p90": [round(float(q), 3) for q in np.percentile(c["scores"], [10, 50, 90])],
            "at_or_above_threshold": round(float(np.mean(np.array(c["scores"]) >= threshold)), 3),
            "median_bands_db": [round(float(q), 1) for q in np.median(np.array(c["bands"]), 0)]}
            for v, c in classes.items()},
        "example": example,
        "negatives_below_the_normal_half": round(float(np.mean(negatives < first["mean"])), 3),
    }


def table(r: dict[str, Any]) -> str:
    """The result as Markdown."""
    bands = r["bands_hz"]
    head = " | ".join(f"{lo}–{hi} Hz" for lo, hi in zip(bands, bands[1:]))
    lines = [f"Head `{r['head']}` of {r['bundle']} ({r['model']}), threshold {r['threshold']}; real recordings from "
             f"{r['manifest']}; band levels in dB after RMS normalisation, at the bundle's sample rate.", "",
             f"| recordings | n | score p10 / p50 / p90 | at or above the threshold | {head} |",
             "|---|---|---|---|" + "---|" * (len(bands) - 1)]
    for name, c in r["real"].items():
        q = c["score_p10_p50_p90"]
        lines.append(f"| real, {name} | {c['recordings']} | {q[0]:.3f} / {q[1]:.3f} / {q[2]:.3f} | "
                     f"{c['at_or_above_threshold']:.2f} | " + " | ".join(f"{v:.1f}" for v in c["median_bands_db"]) + " |")
    for what, e in r["example"].items():
        lines.append(f"| example: {what} ({e['clip']}) | {len(e['window_scores'])} windows | "
                     f"{min(e['window_scores']):.3f}–{max(e['window_scores']):.3f} (mean {e['mean']:.3f}) | "
                     f"{np.mean(np.array(e['window_scores']) >= r['threshold']):.2f} | "
                     + " | ".join(f"{v:.1f}" for v in e["bands_db"]) + " |")
    lines += ["", f"The example's normal half scores above {r['negatives_below_the_normal_half']:.0%} of the real "
              "negative recordings (by its mean window score). The example is synthetic: no shared recording ships "
              "in the package."]
    return "\n".join(lines) + "\n"


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    from benchmarks.common import save_with_table

    argv = list(sys.argv[1:] if argv is None else argv)
    p = Parser(prog="python -m benchmarks.demo_example", description=describe(__doc__))
    p.add_argument("--manifest", required=True, help="recordings the head never trained on (e.g. a run's test split)")
    p.add_argument("--bundle", help="bundle folder (default: the package's default bundle)")
    p.add_argument("--head", default="sprsound-adventitious", help="the lung head (default: %(default)s)")
    p.add_argument("--task", action="append", default=[], metavar="TASK=HEAD", help="score HEAD with TASK's labels")
    p.add_argument("--out", default="benchmarks/results/demo_example", help="OUT.json and OUT.md")
    a = p.parse_args(argv)
    from acula_edge.device.bundle import default_bundle

    r = measure(a.manifest, a.bundle or str(default_bundle()), a.head, a.task)
    save_with_table(r, a.out, "benchmarks.demo_example", argv, table(r))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
