"""Throughput of the default text teacher (all-MiniLM-L6-v2, fp32) on TWO CPU cores, by batch size.

    python -m benchmarks.text_embed_speed [--n 256] [--repeats 5] [--batch-sizes 1,8,32]
        [--out benchmarks/results/text_embed_speed.json]

Pins BLAS/OpenMP pools and torch to two threads (before numpy and torch are imported) and the
process to the first two allowed CPUs. Builds ``--n`` realistic 2-3 sentence clinical reports from
hand-written parts (ages, sexes, conditions, sites, devices, findings; seeded, no external data),
loads the teacher offline, warms up, then embeds all reports ``--repeats`` times per batch size
(no cache: every text runs through the model) and reports the median reports per second, with the
token lengths, machine, library versions and the exact command, as JSON.
"""

from __future__ import annotations

from benchmarks.common import machine, pin_threads, save_result, versions

THREADS = 2
pin_threads(THREADS)

import argparse  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

AGES = [3, 8, 16, 24, 35, 47, 58, 63, 71, 82]
CHILDREN = ["boy", "girl", "child"]
ADULTS = ["man", "woman", "male patient", "female patient"]
CONDITIONS = ["chronic obstructive pulmonary disease", "asthma", "pneumonia", "bronchiectasis",
              "an upper respiratory tract infection", "heart failure", "no known cardiorespiratory disease",
              "suspected COVID-19", "a mitral valve prolapse", "bronchiolitis"]
LUNG_SITES = ["the trachea", "the anterior left chest", "the anterior right chest", "the posterior left base",
              "the posterior right base", "the left lateral chest"]
HEART_SITES = ["the aortic area", "the pulmonary area", "the tricuspid area", "the mitral area"]
DEVICES = ["a Littmann 3200 electronic stethoscope", "a Meditron stethoscope", "an AKG C417L microphone",
           "a smartphone microphone", "a WelchAllyn Meditron", "a digital stethoscope"]
LUNG_FINDINGS = ["Fine inspiratory crackles are heard", "Coarse crackles and expiratory wheezes are present",
                 "Breath sounds are vesicular without adventitious sounds",
                 "A high-pitched wheeze is heard on expiration", "Rhonchi clear partially after coughing",
                 "Inspiratory stridor is noted", "Air entry is reduced with scattered crackles"]
LUNG_QUALIFIERS = ["", " during both phases", " at end-inspiration", " that varies with posture"]
HEART_FINDINGS = ["A holosystolic murmur is audible", "The heart sounds are regular with no murmur",
                  "A diastolic murmur is faintly heard", "A mid-systolic click is heard",
                  "The second heart sound is widely split"]
HEART_QUALIFIERS = ["", " at rest", " that increases on inspiration", " with an irregular rhythm"]
EXTRAS = ["The recording lasts {s} seconds.", "The patient reports a dry cough for {d} days.",
          "Oxygen saturation was {o} percent at rest.", "The cough is productive, with fever for {d} days.",
          "No symptoms were reported.", "Background noise is moderate.", "The respiratory rate is {r} per minute."]


def make_reports(n: int, seed: int = 0) -> list[str]:
    """``n`` varied 2-3 sentence clinical reports (deterministic for a seed)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        age = rng.choice(AGES)
        who = rng.choice(CHILDREN if age < 18 else ADULTS)
        heart = rng.random() < 0.35
        article = "An" if age in (8, 18) or 80 <= age < 90 else "A"
        s1 = (f"{article} {age}-year-old {who} with {rng.choice(CONDITIONS)} was recorded at "
              f"{rng.choice(HEART_SITES if heart else LUNG_SITES)} with {rng.choice(DEVICES)}.")
        if heart:
            s2 = rng.choice(HEART_FINDINGS) + rng.choice(HEART_QUALIFIERS) + "."
        else:
            s2 = rng.choice(LUNG_FINDINGS) + rng.choice(LUNG_QUALIFIERS) + "."
        parts = [s1, s2]
        if rng.random() < 0.6:
            parts.append(rng.choice(EXTRAS).format(s=rng.randint(5, 30), d=rng.randint(1, 21),
                                                   o=rng.randint(88, 99), r=rng.randint(12, 40)))
        out.append(" ".join(parts))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print and save the JSON result."""
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m benchmarks.text_embed_speed", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=256, help="reports per timed run (default 256)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per batch size (default 5)")
    p.add_argument("--batch-sizes", default="1,8,32", help="comma-separated (default 1,8,32)")
    p.add_argument("--model", default=None, help="local model folder (default: the packaged all-MiniLM-L6-v2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/text_embed_speed.json", help="result JSON path")
    a = p.parse_args(argv)
    try:
        sizes = [int(x) for x in a.batch_sizes.split(",") if x.strip()]
    except ValueError:
        sizes = []
    if a.n < 1 or a.repeats < 1 or not sizes or min(sizes) < 1:
        print("error: --n, --repeats and --batch-sizes must be positive", file=sys.stderr)
        return 2

    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    cpus = None
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, set(allowed[:THREADS]))
        cpus = sorted(os.sched_getaffinity(0))
    os.environ["HF_HUB_OFFLINE"] = "1"
    import torch

    torch.set_num_threads(THREADS)
    from acula_edge.text import TextModelError, TextTeacher

    try:
        t0 = time.perf_counter()
        teacher = TextTeacher(a.model, device="cpu")
        load_s = time.perf_counter() - t0
    except TextModelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    reports = make_reports(a.n, a.seed)
    lengths = [len(x) for x in teacher.tokenize(reports)]
    teacher.batch_size = max(sizes)
    teacher.embed(reports[:64])  # warm-up: allocator, kernels, tokenizer

    by_size = {}
    for bs in sizes:
        teacher.batch_size = bs
        teacher.embed(reports[: max(bs * 2, 16)])  # warm-up at this shape
        runs = []
        for r in range(a.repeats):
            t0 = time.perf_counter()
            v = teacher.embed(reports)
            dt = time.perf_counter() - t0
            assert v.shape == (a.n, teacher.width)
            runs.append({"seconds": round(dt, 4), "reports_per_second": round(a.n / dt, 1)})
            print(f"batch {bs}: run {r + 1}/{a.repeats}: {a.n} reports in {dt:.2f} s = {a.n / dt:.1f} reports/s",
                  file=sys.stderr, flush=True)
        med = statistics.median(x["reports_per_second"] for x in runs)
        by_size[str(bs)] = {"median_reports_per_second": med, "median_ms_per_report": round(1000 / med, 2),
                            "runs": runs}

    result = {
        "benchmark": "text_embed_speed",
        "what": "acula_edge.text.TextTeacher.embed: tokenize + forward + masked mean pooling, fp32, no cache",
        "model_id": teacher.model_id,
        "width": teacher.width,
        "median_reports_per_second": {bs: d["median_reports_per_second"] for bs, d in by_size.items()},
        "by_batch_size": by_size,
        "n_reports": a.n,
        "tokens_per_report": {"mean": round(statistics.mean(lengths), 1), "min": min(lengths), "max": max(lengths)},
        "example_report": reports[0],
        "repeats": a.repeats,
        "model_load_seconds": round(load_s, 2),
        "load_average_before": [round(x, 2) for x in load_before] if load_before else None,
        "threads": THREADS,
        "torch_threads": torch.get_num_threads(),
        "cpu_affinity": cpus,
        "machine": machine(),
        "versions": versions("torch", "transformers"),
    }
    save_result(result, a.out, "benchmarks.text_embed_speed", argv)
    summary = ", ".join(f"batch {bs}: {d['median_reports_per_second']:.1f}" for bs, d in by_size.items())
    print(f"median reports/s on {THREADS} threads: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
