"""Recording records, manifests, tasks, subject-grouped splits, synthetic corpus (the loaders: acula_edge.datasets)."""

from acula_edge.data.records import MISSING, Recording, read_csv_manifest, read_manifest, write_manifest

__all__ = ["MISSING", "Recording", "read_csv_manifest", "read_manifest", "write_manifest"]
