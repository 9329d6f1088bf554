"""Benchmarks: accuracy versus latency, size and memory, and generator speed."""
