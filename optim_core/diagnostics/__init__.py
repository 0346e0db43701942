"""Diagnostics computed from a RunBatch, vectorised over runs."""
