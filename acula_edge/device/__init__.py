"""The device wing: what a phone or a Raspberry Pi runs (numpy, soundfile, sounddevice and a runtime; no torch)."""
