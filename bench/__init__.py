"""Benchmarks and the load script, run by hand (never timed assertions in tests)."""
