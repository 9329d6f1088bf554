"""``python -m acula_edge.demo``: the toolkit end to end on data it makes itself (device side only).

Writes a small synthetic cardio-respiratory corpus, loads it back through the data layer,
summarises it, and draws the front end's log-mel view of one clip per modality in the terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from acula_edge.cli import Parser, guarded

SHADES = " .:-=+*#%@"


def spectrogram_text(mel_db: np.ndarray, width: int = 64, height: int = 10) -> list[str]:
    """A log-mel ``[n_mels, frames]`` as rows of characters, high bands on top, 40 dB of range."""
    m, t = mel_db.shape
    bands = np.array_split(np.arange(m), height)
    cols = np.array_split(np.arange(t), min(width, t))
    grid = np.array([[mel_db[np.ix_(b, c)].mean() for c in cols] for b in bands])
    top = grid.max()
    level = np.clip((grid - (top - 40.0)) / 40.0, 0, 1)
    idx = np.minimum((level * len(SHADES)).astype(int), len(SHADES) - 1)
    return ["".join(SHADES[i] for i in row) for row in idx[::-1]]


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the demo."""
    from acula_edge.audio import load
    from acula_edge.data.summary import print_summary, summarize
    from acula_edge.data.loaders import load as load_dataset
    from acula_edge.data.synth import SynthConfig, generate
    from acula_edge.frontend import FrontendConfig, logmel

    p = Parser(prog="python -m acula_edge.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="demo-out", help="output folder (default demo-out)")
    p.add_argument("--n", type=int, default=40, help="synthetic clips to write (default 40)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)

    corpus = Path(a.out) / "synth"
    print(f"1. writing {a.n} synthetic clips to {corpus} (synthetic data: not clinical evidence)")
    generate(corpus, a.n, a.seed, SynthConfig())
    records = load_dataset("synthetic", corpus)
    print("2. loaded back through the data layer:")
    print_summary(summarize(records), str(corpus))

    fe = FrontendConfig()
    print(f"3. the front end's view ({fe.n_mels} log-mel bands {fe.f_min:g}-{fe.f_max:g} Hz, "
          f"hop {1000 * fe.hop_length / fe.sample_rate:.0f} ms), one clip per modality:")
    shown = set()
    for r in records:
        if r.modality in shown:
            continue
        shown.add(r.modality)
        x, _ = load(r.path, sample_rate=fe.sample_rate)
        labels = ", ".join(f"{k}={v}" for k, v in r.labels.items() if k != "condition")
        facts = ", ".join(f"{k} {r.metadata[k]}" for k in ("age", "sex", "smoker", "condition") if k in r.metadata)
        print(f"\n   {r.id}: {r.modality} at {r.site}, {r.device}; {facts}\n   labels: {labels}")
        for line in spectrogram_text(logmel(x, fe)):
            print("   |" + line + "|")
    print("\nTo screen audio with an exported bundle: python -m acula_edge.listen --file REC.wav --bundle BUNDLE "
          "(or --mic, or --demo for a synthetic stream).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
