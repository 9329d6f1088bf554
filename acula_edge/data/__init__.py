"""Recording records, manifests, dataset loaders, subject-grouped splits, synthetic corpus."""

from acula_edge.data.records import MISSING, Recording, read_csv_manifest, read_manifest, write_manifest

__all__ = ["MISSING", "Recording", "read_csv_manifest", "read_manifest", "write_manifest"]
