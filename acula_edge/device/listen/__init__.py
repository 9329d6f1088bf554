"""Real-time screening on the device, ``python -m acula_edge.listen`` (numpy, soundfile, sounddevice
and a runtime only).

One concern per module: :mod:`.sources` (file, demo and microphone), :mod:`.quality` (the
signal-quality gate), :mod:`.decisions` (per-head events), :mod:`.output` (JSON, plain or live
view), :mod:`.engine` (the streaming engine and its loop) and :mod:`.cli` (the command line).
"""

from acula_edge.device.listen.cli import PromptEmbedder, main
from acula_edge.device.listen.decisions import Decider
from acula_edge.device.listen.engine import Listener, Recorder, run
from acula_edge.device.listen.output import Output, print_summary
from acula_edge.device.listen.quality import QUALITY, QualityConfig, signal_quality
from acula_edge.device.listen.sources import (DemoSource, DeviceLost, FileSource, MicSource, Source,
                                              input_devices)

__all__ = ["QUALITY", "Decider", "DemoSource", "DeviceLost", "FileSource", "Listener", "MicSource", "Output",
           "PromptEmbedder", "QualityConfig", "Recorder", "Source", "input_devices", "main", "print_summary", "run",
           "signal_quality"]
