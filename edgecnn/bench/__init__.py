"""Measured latency, environment fingerprint, results I/O (issue: benchmarks)."""
