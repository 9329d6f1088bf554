"""``python -m acula_edge.demo`` (``make demo``): the packaged default bundle screens the packaged
example recording in real time, through the same loop as ``python -m acula_edge.listen --mic``.

Device side only: numpy, soundfile, onnxruntime. The default bundle is a demonstration model made
by ``python -m acula_edge.pipeline --preset demo``, not a medical device; the example recording is
synthetic: :func:`example_audio` makes it (``--write-example PATH`` writes it again).
"""

from __future__ import annotations

import sys
from typing import Sequence

from acula_edge.cli import Parser, describe, guarded


#: the example's two clips: (subject index, clip index) in the seed-0 lung-only corpus of 10 s clips
EXAMPLE_CLIPS = {"syn-0002_00": "normal breath sounds", "syn-0003_00": "coarse crackles"}


def example_audio():
    """The example recording: 10 s of normal breath sounds, then 10 s with coarse crackles (synthetic,
    16 kHz), and what each part holds."""
    import numpy as np

    from acula_edge.data.synth import SynthConfig, iter_clips

    cfg = SynthConfig(duration=10.0, modality_weights={"lung": 1.0}, sample_rate=16000)
    clips = {r.id: a for r, a in iter_clips(8, 0, cfg) if r.id in EXAMPLE_CLIPS}
    return np.concatenate([clips[k] for k in EXAMPLE_CLIPS]).astype(np.float32), cfg.sample_rate


@guarded
def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the demo."""
    from acula_edge.device import listen
    from acula_edge.device.bundle import EXAMPLE_RECORDING, default_bundle, load_bundle

    p = Parser(prog="python -m acula_edge.demo", description=describe(__doc__))
    p.add_argument("--no-realtime", action="store_true", help="as fast as the loop takes it")
    p.add_argument("--plain", action="store_true", help="plain lines even on a terminal")
    p.add_argument("--write-example", metavar="PATH", help="write the example recording (FLAC) and exit")
    a = p.parse_args(argv)
    if a.write_example:
        import soundfile as sf

        from acula_edge.data.synth import to_pcm16

        audio, rate = example_audio()
        sf.write(a.write_example, to_pcm16(audio), rate, format="FLAC", subtype="PCM_16")
        return 0
    b = load_bundle(default_bundle())
    metrics = (b.meta.get("metrics") or {}).get("heads", {})
    print(f"default bundle: {b.meta['name']} ({b.path})")
    print("  a demonstration model, not a medical device (see MODEL_CARD.md in that folder)")
    for h in b.heads:
        m = metrics.get(h["name"])
        held_out = (f"; held-out AUROC {m['auroc']:.2f} (95% CI {m['auroc_ci95'][0]:.2f}-{m['auroc_ci95'][1]:.2f}, "
                    f"{m['recordings']} recordings)" if m else "")
        print(f"  head {h['name']}: {h['meaning']}{held_out}")
    heads = [h["name"] for h in b.screening("lung")]  # the example is a lung recording: listen --modality lung
    print(f"example recording: {EXAMPLE_RECORDING} (synthetic: 10 s of {', then 10 s of '.join(EXAMPLE_CLIPS.values())}); "
          f"a lung recording, so the lung heads decide: {', '.join(heads) or 'every head'}\n", flush=True)
    flags = ["--file", str(EXAMPLE_RECORDING), *(["--modality", "lung"] if heads else [])] + \
        (["--no-realtime"] if a.no_realtime else []) + (["--plain"] if a.plain else [])
    code = listen.main(flags)
    sys.stderr.flush()
    print("\nNext: python -m acula_edge.listen --mic (a microphone; --list-devices), or --file REC.wav; "
          "--bundle BUNDLE for your own model.")
    return code


if __name__ == "__main__":
    sys.exit(main())
